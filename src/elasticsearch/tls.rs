//! Client TLS towards Elasticsearch, as the policy's `[output.elasticsearch.tls]` says.
//!
//! rustls (default): the system roots plus the configured CAs; `verification_mode` `full` and
//! `strict` verify chain and name (rustls only ever matches names against SANs, so the two
//! are the same here), `certificate` verifies the chain and ignores the name, `none` accepts
//! any certificate (handshake signatures are still checked). `ca_trusted_fingerprint` trusts
//! the certificate of the presented chain whose SHA-256 matches, as Beats does: the chain
//! must then verify up to it. native-tls: the platform's roots plus the configured CAs, with
//! the same modes; it cannot pin a fingerprint.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::policy::compiled::{ClientTlsSettings, TlsVersion, VerificationMode};

/// Why the TLS settings cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Elasticsearch TLS: {0}")]
pub struct ClientTlsError(pub String);

fn read(path: &std::path::Path) -> Result<Vec<u8>, ClientTlsError> {
    std::fs::read(path).map_err(|e| ClientTlsError(format!("cannot read {}: {e}", path.display())))
}

fn certs_of(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    crate::pem::read_certificates(path).map_err(|e| ClientTlsError(e.to_string()))
}

/// The client key as PKCS#8 DER (decrypted with the passphrase when it is encrypted).
fn client_key(tls: &ClientTlsSettings) -> Result<Option<PrivateKeyDer<'static>>, ClientTlsError> {
    let Some(path) = &tls.key else {
        return Ok(None);
    };
    let passphrase = tls.key_passphrase.as_ref().and_then(|p| p.value.as_ref());
    crate::pem::read_private_key(path, passphrase)
        .map(Some)
        .map_err(|e| ClientTlsError(e.to_string()))
}

/// The system roots plus the configured CAs.
fn roots(tls: &ClientTlsSettings) -> Result<RootCertStore, ClientTlsError> {
    let mut store = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::debug!("no system root certificates found");
    }
    for path in &tls.certificate_authorities {
        for cert in certs_of(path)? {
            store
                .add(cert)
                .map_err(|e| ClientTlsError(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(store)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration.
pub fn rustls_config(tls: &ClientTlsSettings) -> Result<rustls::ClientConfig, ClientTlsError> {
    let provider = provider();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = tls
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let verifier = Arc::new(Verifier::new(
        tls.verification_mode,
        roots(tls)?,
        tls.ca_trusted_fingerprint,
        provider.clone(),
    ));
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| ClientTlsError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.certificate, client_key(tls)?) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certs_of(cert)?, key)
            .map_err(|e| ClientTlsError(format!("client certificate: {e}")))?,
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// The native-tls connector.
pub fn native_connector(
    tls: &ClientTlsSettings,
) -> Result<native_tls::TlsConnector, ClientTlsError> {
    if tls.ca_trusted_fingerprint.is_some() {
        return Err(ClientTlsError(
            "`ca_trusted_fingerprint` needs the rustls backend".into(),
        ));
    }
    let mut b = native_tls::TlsConnector::builder();
    for path in &tls.certificate_authorities {
        for cert in certs_of(path)? {
            let c = native_tls::Certificate::from_der(&cert)
                .map_err(|e| ClientTlsError(format!("{}: {e}", path.display())))?;
            b.add_root_certificate(c);
        }
    }
    match tls.verification_mode {
        VerificationMode::Full | VerificationMode::Strict => {}
        VerificationMode::Certificate => {
            b.danger_accept_invalid_hostnames(true);
        }
        VerificationMode::None => {
            b.danger_accept_invalid_certs(true);
        }
    }
    let min = tls.versions.first().map(|v| match v {
        TlsVersion::Tls12 => native_tls::Protocol::Tlsv12,
        // native-tls has no TLS 1.3 minimum; 1.2 is the closest it can pin.
        TlsVersion::Tls13 => native_tls::Protocol::Tlsv12,
    });
    b.min_protocol_version(min);
    if let (Some(cert), Some(key)) = (&tls.certificate, client_key(tls)?) {
        let cert_pem = read(cert)?;
        let der = key.secret_der().to_vec();
        let pem = pem_encode("PRIVATE KEY", &der);
        let id = native_tls::Identity::from_pkcs8(&cert_pem, pem.as_bytes())
            .map_err(|e| ClientTlsError(format!("client certificate: {e}")))?;
        b.identity(id);
    }
    b.build().map_err(|e| ClientTlsError(e.to_string()))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Verifies Elasticsearch's certificate per `verification_mode` and `ca_trusted_fingerprint`.
struct Verifier {
    mode: VerificationMode,
    roots: RootCertStore,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    fingerprint: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("mode", &self.mode)
            .field("pinned", &self.fingerprint.is_some())
            .finish()
    }
}

impl Verifier {
    fn new(
        mode: VerificationMode,
        roots: RootCertStore,
        fingerprint: Option<[u8; 32]>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        let webpki = Self::webpki(&roots, &provider);
        Self {
            mode,
            roots,
            webpki,
            fingerprint,
            provider,
        }
    }

    fn webpki(
        roots: &RootCertStore,
        provider: &Arc<CryptoProvider>,
    ) -> Option<Arc<WebPkiServerVerifier>> {
        if roots.is_empty() {
            return None;
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
            .build()
            .ok()
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.mode == VerificationMode::None {
            return Ok(ServerCertVerified::assertion());
        }
        // A pinned CA found in the presented chain is trusted for this handshake.
        let pinned = self.fingerprint.and_then(|fp| {
            std::iter::once(end_entity)
                .chain(intermediates)
                .find(|c| <[u8; 32]>::from(Sha256::digest(c.as_ref())) == fp)
        });
        let pinned_verifier;
        let verifier = match pinned {
            Some(ca) => {
                let mut roots = self.roots.clone();
                roots.add(ca.clone().into_owned()).map_err(|_| {
                    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
                })?;
                pinned_verifier = Self::webpki(&roots, &self.provider);
                pinned_verifier.as_ref()
            }
            None => self.webpki.as_ref(),
        };
        let Some(verifier) = verifier else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        // A self-signed pinned end-entity certificate is its own trust anchor.
        if pinned.is_some_and(|p| p.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.mode == VerificationMode::Certificate => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
