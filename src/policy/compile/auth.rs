//! Compiles `[auth]`: secret tokens, API keys, Elasticsearch API keys, client-certificate
//! identities and anonymous access.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use super::context::zero_value;
use super::{Compiler, RoleTable, SecretUse};
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic};
use crate::policy::spanned::Sp;
use crate::policy::types::{Privilege, PrivilegeSet, datetime_to_system_time};

impl Compiler<'_> {
    pub(super) fn auth(
        &mut self,
        a: &ast::Auth,
        roles: &RoleTable<'_>,
        output: &OutputSettings,
        rum_enabled: bool,
        listeners: &[Arc<Listener>],
    ) -> AuthSettings {
        let mut out = AuthSettings::default();
        for (name, t) in &a.secret_token {
            let secret = self.secret(&t.secret, "secret token", SecretUse::SecretToken);
            let (role_names, privileges) = match &t.roles {
                Some(r) => self.role_refs(r, roles),
                None => (Vec::new(), PrivilegeSet::ALL),
            };
            if let Some(secret) = secret {
                out.secret_tokens.push(SecretTokenEntry {
                    name: name.value.clone(),
                    secret,
                    roles: role_names.into(),
                    privileges,
                });
            }
        }
        let mut ids: HashMap<&str, Range<usize>> = HashMap::new();
        for (name, k) in &a.api_key {
            if let Some(first) = ids.get(k.id.as_str()) {
                self.push(
                    Diagnostic::new(
                        Code::DuplicateApiKeyId,
                        format!("API key id `{}` is used twice", k.id.value),
                        k.id.span.clone(),
                        "used again here",
                    )
                    .with_label(first.clone(), "first used here")
                    .with_help(
                        "every API key needs its own id; create another with `apmgate keys new`",
                    ),
                );
            } else {
                ids.insert(k.id.as_str(), k.id.span.clone());
            }
            if k.id.is_empty() || k.id.contains(':') {
                self.push(Diagnostic::new(
                    Code::ValueOutOfRange,
                    "an API key id must be non-empty and without `:`",
                    k.id.span.clone(),
                    "invalid id",
                ));
            }
            match argon2::password_hash::PasswordHash::new(&k.hash) {
                Ok(h) if h.algorithm.as_str().starts_with("argon2") && h.hash.is_some() => {}
                Ok(h) => self.report(Code::InvalidHash, format!("unsupported hash algorithm `{}`", h.algorithm), k.hash.span.clone(), "not Argon2", "API key hashes are Argon2id PHC strings; `apmgate keys new` prints one"),
                Err(e) => self.report(Code::InvalidHash, format!("`hash` is not a PHC hash string: {e}"), k.hash.span.clone(), "not a hash", "paste the `hash` that `apmgate keys new` printed (it starts with `$argon2id$`); never the key itself"),
            }
            let expires = k.expires.as_ref().and_then(|e| {
                let t = datetime_to_system_time(&e.value.0);
                if t.is_none() {
                    self.push(Diagnostic::new(
                        Code::ValueOutOfRange,
                        "`expires` needs a full date-time with an offset",
                        e.span.clone(),
                        "e.g. 2027-01-01T00:00:00Z",
                    ));
                }
                if let Some(t) = t {
                    if t < SystemTime::now() {
                        self.report(
                            Code::ApiKeyExpired,
                            format!("API key `{}` has expired", name.value),
                            e.span.clone(),
                            "in the past",
                            "create a new key with `apmgate keys new`, or remove this one",
                        );
                    }
                }
                t
            });
            let (role_names, privileges) = self.role_refs(&k.roles, roles);
            out.api_keys.push(ApiKeyEntry {
                name: name.value.clone(),
                id: k.id.value.clone(),
                hash: k.hash.value.clone(),
                roles: role_names.into(),
                privileges,
                expires,
            });
        }
        if let Some(es) = &a.elasticsearch_api_keys {
            if es.enabled.as_ref().is_none_or(|e| e.value) {
                if !matches!(output, OutputSettings::Elasticsearch(_)) {
                    let span = es
                        .enabled
                        .as_ref()
                        .map(|e| e.span.clone())
                        .or_else(|| es.cache_size.as_ref().map(|c| c.span.clone()))
                        .unwrap_or(0..0);
                    let span = if span.is_empty() {
                        self.find_header("[auth.elasticsearch_api_keys]")
                    } else {
                        span
                    };
                    self.report(Code::EsApiKeysWithoutOutput, "API keys verified by Elasticsearch need an Elasticsearch output", span, "no cluster to ask", "add `[output.elasticsearch]`, or declare the keys in the policy with `[auth.api_key.NAME]`");
                }
                out.elasticsearch_api_keys = Some(EsApiKeySettings {
                    cache_size: es
                        .cache_size
                        .as_ref()
                        .map_or(KEY_CACHE_SIZE, |c| c.value.max(1)),
                    cache_ttl: self.positive_duration(&es.cache_ttl, KEY_CACHE_TTL),
                });
            }
        }
        for (name, c) in &a.client_cert {
            if c.subject.is_none() && c.san.is_none() {
                self.report(Code::IdentityWithoutPattern, format!("client-certificate identity `{}` matches nothing", name.value), name.span.clone(), "no `subject` or `san`", "add `subject = \"CN=*.agents.example.com\"` or `san = \"*.agents.example.com\"`");
            }
            let subject = c.subject.as_ref().and_then(|s| self.glob(s));
            let san = c.san.as_ref().and_then(|s| self.glob(s));
            let (role_names, privileges) = self.role_refs(&c.roles, roles);
            out.client_certs.push(ClientCertEntry {
                name: name.value.clone(),
                subject,
                san,
                roles: role_names.into(),
                privileges,
            });
        }
        if !a.client_cert.is_empty()
            && !listeners.iter().any(|l| {
                l.tls
                    .as_ref()
                    .is_some_and(|t| t.client_auth != ClientAuth::None)
            })
        {
            if let Some((name, _)) = a.client_cert.iter().next() {
                self.report(Code::ClientAuthWithoutCa, "client-certificate identities are declared but no listener asks for client certificates", name.span.clone(), "never presented", "set `client_auth` and `certificate_authorities` in the TLS profile of a listener");
            }
        }
        let anonymous_default = rum_enabled && out.is_configured() && a.anonymous.is_none();
        if let Some(anon) = &a.anonymous {
            if anon.enabled.as_ref().is_none_or(|e| e.value) {
                let (role_names, privileges) = match &anon.roles {
                    Some(r) => self.role_refs(r, roles),
                    None => (
                        Vec::new(),
                        [Privilege::EventWrite, Privilege::ConfigAgentRead]
                            .into_iter()
                            .collect(),
                    ),
                };
                let rl = anon.rate_limit.as_ref();
                let positive = |c: &mut Self, v: Option<&Sp<u64>>, name: &str, d: u64| match v {
                    Some(n) if n.value == 0 => {
                        c.push(
                            zero_value(format!("`{name}` must be at least 1"), n.span.clone())
                                .with_help(
                                    "to refuse anonymous callers, set `enabled = false` instead",
                                ),
                        );
                        d
                    }
                    Some(n) => n.value,
                    None => d,
                };
                let event_limit = positive(
                    self,
                    rl.and_then(|r| r.event_limit.as_ref()),
                    "event_limit",
                    300,
                );
                let ip_limit =
                    positive(self, rl.and_then(|r| r.ip_limit.as_ref()), "ip_limit", 1000);
                out.anonymous = Some(AnonymousSettings {
                    allow_agent: anon
                        .allow_agent
                        .as_ref()
                        .map_or_else(default_allow_agent, |l| {
                            l.iter().map(|s| s.value.clone()).collect()
                        }),
                    allow_service: anon.allow_service.iter().map(|s| s.value.clone()).collect(),
                    roles: role_names.into(),
                    privileges,
                    event_limit,
                    ip_limit,
                });
            }
        } else if anonymous_default {
            // APM Server switches anonymous access on when RUM is enabled with auth configured
            // and `anonymous.enabled` is unset; apmgate does the same so a migrated setup keeps
            // working. `apmgate explain` shows it.
            out.anonymous = Some(AnonymousSettings {
                allow_agent: default_allow_agent(),
                allow_service: Vec::new(),
                roles: Vec::new().into(),
                privileges: [Privilege::EventWrite, Privilege::ConfigAgentRead]
                    .into_iter()
                    .collect(),
                event_limit: 300,
                ip_limit: 1000,
            });
        }
        if !out.secret_tokens.is_empty() || !out.api_keys.is_empty() {
            for l in listeners
                .iter()
                .filter(|l| l.tls.is_none() && !l.bind.is_loopback())
            {
                let span = self.bind_spans.get(&l.name).cloned().unwrap_or(0..0);
                self.report(Code::TokenOverPlaintext, format!("listener `{}` accepts credentials over plaintext on `{}`", l.name, l.bind), span, "no TLS", "anyone on the network path can read secret tokens and API keys: add a TLS profile, or bind to loopback behind a TLS proxy");
            }
        }
        out
    }
}

pub(super) fn default_allow_agent() -> Vec<String> {
    vec!["rum-js".to_string(), "js-base".to_string()]
}
