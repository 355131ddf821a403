//! Who is calling: the `Authorization` header (parsed exactly as APM Server does), client
//! certificates, or nobody.

use std::time::SystemTime;

use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::policy::Policy;
use crate::policy::compiled::IdentityKind;
use crate::policy::types::PrivilegeSet;

/// APM Server's hint in 401 bodies.
pub const EXPECTED_HEADER: &str = "expected 'Authorization: Bearer secret_token' or 'Authorization: ApiKey base64(API key ID:API key)'";

/// A credential as presented.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `Authorization` header.
    Missing,
    /// `Bearer <token>`.
    Bearer(&'a str),
    /// `ApiKey base64(id:key)`, decoded.
    ApiKey {
        /// Key id.
        id: String,
        /// Key secret.
        key: String,
        /// The header's token as sent (for Elasticsearch verification and cache keys).
        encoded: &'a str,
    },
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Missing => f.write_str("Missing"),
            Credential::Bearer(_) => f.write_str("Bearer(<secret>)"),
            Credential::ApiKey { id, .. } => write!(f, "ApiKey({id}, <secret>)"),
        }
    }
}

/// Why authentication failed. Messages are APM Server's 401 texts and never carry a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential and anonymous access is off.
    #[error(
        "authentication failed: missing or improperly formatted Authorization header: {EXPECTED_HEADER}"
    )]
    Missing,
    /// A scheme other than `Bearer` or `ApiKey`.
    #[error("authentication failed: unknown Authentication header {0}: {EXPECTED_HEADER}")]
    UnknownScheme(String),
    /// ApiKey not base64.
    #[error("authentication failed: improperly encoded ApiKey credentials: {0}")]
    BadEncoding(String),
    /// ApiKey without `:`.
    #[error(
        "authentication failed: improperly formatted ApiKey credentials: expected base64(ID:APIKey)"
    )]
    BadFormat,
    /// Wrong secret, unknown key, expired key, or a scheme not enabled.
    #[error("authentication failed")]
    Invalid,
}

/// Parses an `Authorization` header value exactly as APM Server: split at the first space,
/// case-sensitive schemes.
pub fn parse_authorization(value: Option<&str>) -> Result<Credential<'_>, AuthError> {
    let Some(value) = value else {
        return Ok(Credential::Missing);
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Ok(Credential::Missing);
    };
    match scheme {
        "Bearer" => Ok(Credential::Bearer(token)),
        "ApiKey" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(token)
                .map_err(|e| AuthError::BadEncoding(e.to_string()))?;
            let decoded = String::from_utf8(decoded).map_err(|_| AuthError::BadFormat)?;
            let (id, key) = decoded.split_once(':').ok_or(AuthError::BadFormat)?;
            Ok(Credential::ApiKey {
                id: id.to_string(),
                key: key.to_string(),
                encoded: token,
            })
        }
        other => Err(AuthError::UnknownScheme(other.to_string())),
    }
}

/// A client certificate as the TLS layer saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Subject, RFC 4514.
    pub subject: String,
    /// DNS subject alternative names.
    pub dns_sans: Vec<String>,
}

/// A resolved identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Kind.
    pub kind: IdentityKind,
    /// Name of the policy entry (`None` for anonymous and none).
    pub name: Option<String>,
    /// Role names.
    pub roles: std::sync::Arc<[String]>,
    /// Privileges.
    pub privileges: PrivilegeSet,
}

/// The result of authenticating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// Known.
    Identified(Identity),
    /// An API key the policy does not declare, to be verified by Elasticsearch.
    NeedsElasticsearch {
        /// Key id.
        id: String,
    },
    /// A declared API key whose secret could not be checked now (every verifier busy).
    Unverified,
}

/// Verifies an API key secret against its Argon2 PHC hash, on the calling thread (the tools;
/// the gateway verifies on [`super::argon2_pool::Argon2Pool`]).
pub fn verify_api_key(hash: &str, key: &str) -> bool {
    super::argon2_pool::verify_with_memory(hash, key, &mut Vec::new())
}

/// Whether a declared key has not expired.
pub fn is_live(key: &crate::policy::compiled::ApiKeyEntry) -> bool {
    key.expires.is_none_or(|e| e > SystemTime::now())
}

/// Authenticates a request. `verify` checks an API key secret against a hash, `None` when it
/// cannot now (the runtime answers from its cache; `explain` hashes).
pub fn authenticate(
    policy: &Policy,
    credential: &Credential<'_>,
    cert: Option<&PeerCertificate>,
    verify: &dyn Fn(&str, &str) -> Option<bool>,
) -> Result<Authentication, AuthError> {
    let auth = &policy.auth;
    if !auth.is_configured() {
        return Ok(Authentication::Identified(Identity {
            kind: IdentityKind::None,
            name: None,
            roles: Vec::new().into(),
            privileges: PrivilegeSet::ALL,
        }));
    }
    match credential {
        Credential::Bearer(token) => {
            // Every token is compared, so timing does not tell which entry matched.
            let mut found = None;
            for t in &auth.secret_tokens {
                if let Some(secret) = &t.secret.value {
                    let a = secret.expose().as_bytes();
                    let equal = a.len() == token.len() && bool::from(a.ct_eq(token.as_bytes()));
                    if equal && found.is_none() {
                        found = Some(t);
                    }
                }
            }
            found
                .map(|t| {
                    Authentication::Identified(Identity {
                        kind: IdentityKind::SecretToken,
                        name: Some(t.name.clone()),
                        roles: t.roles.clone(),
                        privileges: t.privileges,
                    })
                })
                .ok_or(AuthError::Invalid)
        }
        Credential::ApiKey { id, key, .. } => {
            if let Some(k) = auth.api_keys.iter().find(|k| &k.id == id) {
                if !is_live(k) {
                    return Err(AuthError::Invalid);
                }
                return match verify(&k.hash, key) {
                    Some(true) => Ok(Authentication::Identified(Identity {
                        kind: IdentityKind::ApiKey,
                        name: Some(k.name.clone()),
                        roles: k.roles.clone(),
                        privileges: k.privileges,
                    })),
                    Some(false) => Err(AuthError::Invalid),
                    None => Ok(Authentication::Unverified),
                };
            }
            if auth.elasticsearch_api_keys.is_some() {
                return Ok(Authentication::NeedsElasticsearch { id: id.clone() });
            }
            Err(AuthError::Invalid)
        }
        Credential::Missing => {
            if let Some(cert) = cert {
                for c in &auth.client_certs {
                    let subject_ok = c.subject.as_ref().is_none_or(|g| g.matches(&cert.subject));
                    let san_ok = c
                        .san
                        .as_ref()
                        .is_none_or(|g| cert.dns_sans.iter().any(|s| g.matches(s)));
                    if subject_ok && san_ok {
                        return Ok(Authentication::Identified(Identity {
                            kind: IdentityKind::ClientCert,
                            name: Some(c.name.clone()),
                            roles: c.roles.clone(),
                            privileges: c.privileges,
                        }));
                    }
                }
            }
            match &auth.anonymous {
                Some(a) => Ok(Authentication::Identified(Identity {
                    kind: IdentityKind::Anonymous,
                    name: None,
                    roles: a.roles.clone(),
                    privileges: a.privileges,
                })),
                None => Err(AuthError::Missing),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_parsing_matches_apm_server() {
        assert_eq!(parse_authorization(None), Ok(Credential::Missing));
        assert_eq!(
            parse_authorization(Some("Bearer abc")),
            Ok(Credential::Bearer("abc"))
        );
        assert_eq!(
            parse_authorization(Some("bearer abc")),
            Err(AuthError::UnknownScheme("bearer".into()))
        );
        assert_eq!(
            parse_authorization(Some("Bearerabc")),
            Ok(Credential::Missing)
        );
        assert_eq!(
            parse_authorization(Some("ApiKey aWQ6a2V5"))
                .map(|c| matches!(c, Credential::ApiKey { .. })),
            Ok(true)
        );
        assert_eq!(
            parse_authorization(Some("ApiKey aWRrZXk=")),
            Err(AuthError::BadFormat)
        );
        assert!(matches!(
            parse_authorization(Some("ApiKey !!!")),
            Err(AuthError::BadEncoding(_))
        ));
        assert_eq!(
            AuthError::UnknownScheme("Basic".into()).to_string(),
            format!(
                "authentication failed: unknown Authentication header Basic: {EXPECTED_HEADER}"
            )
        );
    }
}
