//! Development certificates: a CA, a server certificate for localhost, and a client certificate,
//! written by `apmgate certs dev` and used by the tests. Never for production.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Files written by [`write`].
#[derive(Debug, Clone)]
pub struct DevCerts {
    /// CA certificate (trust this in clients).
    pub ca_cert: PathBuf,
    /// CA key.
    pub ca_key: PathBuf,
    /// Server certificate for `localhost`, `127.0.0.1` and `::1`.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate (`CN=agent-1.agents.local`).
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
}

/// Options for the certificates.
#[derive(Debug, Clone)]
pub struct Validity {
    /// Start of validity, relative to now.
    pub not_before: Duration,
    /// End of validity, relative to now.
    pub not_after: Duration,
}

impl Default for Validity {
    fn default() -> Self {
        Self {
            not_before: Duration::days(-1),
            not_after: Duration::days(365),
        }
    }
}

fn params(
    names: Vec<String>,
    cn: &str,
    validity: &Validity,
) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(names)?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "apmgate development");
    let now = OffsetDateTime::now_utc();
    p.not_before = now + validity.not_before;
    p.not_after = now + validity.not_after;
    Ok(p)
}

/// Writes a development CA, server and client certificate (PEM, PKCS#8 keys) into `dir`.
pub fn write(dir: &Path, validity: &Validity) -> Result<DevCerts, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = params(
        Vec::new(),
        "apmgate development CA",
        &Validity {
            not_after: Duration::days(3650),
            ..validity.clone()
        },
    )?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut sp = params(
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        "localhost",
        validity,
    )?;
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let server = sp.signed_by(&server_key, &ca, &ca_key)?;

    let client_key = KeyPair::generate()?;
    let mut cp = params(
        vec!["agent-1.agents.local".into()],
        "agent-1.agents.local",
        validity,
    )?;
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    cp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let client = cp.signed_by(&client_key, &ca, &ca_key)?;

    let out = DevCerts {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    };
    std::fs::write(&out.ca_cert, ca.pem())?;
    write_key(&out.ca_key, &ca_key.serialize_pem())?;
    std::fs::write(&out.server_cert, server.pem())?;
    write_key(&out.server_key, &server_key.serialize_pem())?;
    std::fs::write(&out.client_cert, client.pem())?;
    write_key(&out.client_key, &client_key.serialize_pem())?;
    Ok(out)
}

fn write_key(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(pem.as_bytes())
}
