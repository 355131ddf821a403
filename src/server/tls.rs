//! TLS acceptors from the policy's profiles: rustls (default) or native-tls.
//!
//! rustls gets exactly what the profile says: versions, TLS 1.2 cipher suites, key exchange
//! groups, ALPN from the listener's protocols, and client certificates verified per
//! `client_auth` against the profile's CAs. native-tls (OpenSSL here) takes the certificate
//! and key; the compiler refuses profile options it cannot honour.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::access::identity::PeerCertificate;
use crate::policy::compiled::{ClientAuth, Listener, Protocol, TlsBackend, TlsProfile, TlsVersion};

/// A TLS acceptor.
#[derive(Clone)]
pub enum Acceptor {
    /// rustls.
    Rustls(tokio_rustls::TlsAcceptor),
    /// native-tls.
    Native(Arc<tokio_native_tls::TlsAcceptor>),
}

/// Why a profile cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("TLS profile `{profile}`: {reason}")]
pub struct TlsError {
    profile: String,
    reason: String,
}

fn err(profile: &TlsProfile, reason: impl std::fmt::Display) -> TlsError {
    TlsError {
        profile: profile.name.clone(),
        reason: reason.to_string(),
    }
}

fn load_key(profile: &TlsProfile) -> Result<PrivateKeyDer<'static>, TlsError> {
    let passphrase = profile
        .key_passphrase
        .as_ref()
        .and_then(|p| p.value.as_ref());
    crate::pem::read_private_key(&profile.key, passphrase).map_err(|e| err(profile, e))
}

fn load_certs(
    profile: &TlsProfile,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    crate::pem::read_certificates(path).map_err(|e| err(profile, e))
}

fn provider(profile: &TlsProfile) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if !profile.cipher_suites.is_empty() {
        p.cipher_suites.retain(|s| match s {
            rustls::SupportedCipherSuite::Tls13(_) => true,
            rustls::SupportedCipherSuite::Tls12(_) => {
                let name = format!("{:?}", s.suite());
                profile.cipher_suites.contains(&name)
            }
        });
    }
    if !profile.curves.is_empty() {
        p.kx_groups.retain(|g| {
            let name = match g.name() {
                rustls::NamedGroup::X25519 => "X25519",
                rustls::NamedGroup::secp256r1 => "P-256",
                rustls::NamedGroup::secp384r1 => "P-384",
                _ => "",
            };
            profile.curves.iter().any(|c| c == name)
        });
    }
    p
}

/// Builds the acceptor of a listener's TLS profile.
pub fn acceptor(listener: &Listener, profile: &TlsProfile) -> Result<Acceptor, TlsError> {
    let certs = load_certs(profile, &profile.certificate)?;
    let key = load_key(profile)?;
    if profile.backend == TlsBackend::NativeTls {
        let cert_pem = std::fs::read(&profile.certificate).map_err(|e| err(profile, e))?;
        let key_pem = match &key {
            PrivateKeyDer::Pkcs8(k) => pem_encode("PRIVATE KEY", k.secret_pkcs8_der()),
            _ => std::fs::read(&profile.key).map_err(|e| err(profile, e))?,
        };
        let identity =
            native_tls::Identity::from_pkcs8(&cert_pem, &key_pem).map_err(|e| err(profile, e))?;
        let mut builder = native_tls::TlsAcceptor::builder(identity);
        let min = profile
            .versions
            .first()
            .copied()
            .unwrap_or(TlsVersion::Tls12);
        builder.min_protocol_version(Some(match min {
            TlsVersion::Tls12 => native_tls::Protocol::Tlsv12,
            // The compiler refuses TLS 1.3 with native-tls (E412), which never negotiates it as a
            // server; 1.2 is its only version here.
            TlsVersion::Tls13 => native_tls::Protocol::Tlsv12,
        }));
        let a = builder.build().map_err(|e| err(profile, e))?;
        return Ok(Acceptor::Native(Arc::new(
            tokio_native_tls::TlsAcceptor::from(a),
        )));
    }
    let config = rustls_config(profile, certs, key, &profile.versions, alpn(listener))?;
    Ok(Acceptor::Rustls(tokio_rustls::TlsAcceptor::from(Arc::new(
        config,
    ))))
}

/// The rustls configuration of a profile for the given versions and ALPN protocols.
fn rustls_config(
    profile: &TlsProfile,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    versions: &[TlsVersion],
    alpn: Vec<Vec<u8>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let provider = Arc::new(provider(profile));
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err(profile, e))?;
    let builder = match profile.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        mode => {
            let mut roots = rustls::RootCertStore::empty();
            for path in &profile.certificate_authorities {
                for ca in load_certs(profile, path)? {
                    roots.add(ca).map_err(|e| err(profile, e))?;
                }
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| err(profile, e))?)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| err(profile, e))?;
    config.alpn_protocols = alpn;
    Ok(config)
}

/// The QUIC server configuration of a listener: TLS 1.3 only, ALPN `h3`, the same certificate,
/// key and client verification as the TCP side, and no 0-RTT (a replayed POST would duplicate
/// events).
pub fn quic_config(
    listener: &Listener,
    profile: &TlsProfile,
) -> Result<quinn::ServerConfig, TlsError> {
    let certs = load_certs(profile, &profile.certificate)?;
    let key = load_key(profile)?;
    let mut config = rustls_config(
        profile,
        certs,
        key,
        &[TlsVersion::Tls13],
        vec![b"h3".to_vec()],
    )?;
    config.max_early_data_size = 0;
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(config).map_err(|e| err(profile, e))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let limits = &listener.limits;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(limits.quic_max_streams))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(16))
        .stream_receive_window(quinn::VarInt::from_u32(limits.quic_stream_receive_window))
        .receive_window(quinn::VarInt::from_u32(limits.quic_receive_window))
        .max_idle_timeout(quinn::IdleTimeout::try_from(limits.idle_timeout).ok());
    server.transport_config(Arc::new(transport));
    Ok(server)
}

/// ALPN protocols a listener offers over TCP+TLS, preferred first.
pub fn alpn(listener: &Listener) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if listener.speaks(Protocol::Http2) {
        out.push(b"h2".to_vec());
    }
    if listener.speaks(Protocol::Http1) {
        out.push(b"http/1.1".to_vec());
    }
    out
}

fn pem_encode(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

/// The identity facts of a verified client certificate: its subject as written in the
/// certificate (`CN=agent-1.agents.local,O=Example`: attributes in certificate order, joined
/// by `,`) and its DNS names.
pub fn peer_certificate(der: &CertificateDer<'_>) -> Option<PeerCertificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let mut parts = Vec::new();
    for rdn in cert.subject().iter() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let key = x509_parser::objects::oid2abbrev(
                    a.attr_type(),
                    x509_parser::objects::oid_registry(),
                )
                .map(str::to_string)
                .unwrap_or_else(|_| a.attr_type().to_id_string());
                format!("{key}={}", a.as_str().unwrap_or_default())
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    let mut dns_sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                dns_sans.push((*d).to_string());
            }
        }
    }
    Some(PeerCertificate {
        subject: parts.join(","),
        dns_sans,
    })
}
