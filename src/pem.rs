//! PEM files the policy names: certificate chains and private keys (PKCS#8, PKCS#1, SEC1, and
//! encrypted PKCS#8 with its passphrase). Shared by the listeners' TLS and the Elasticsearch
//! output's client TLS, so both read keys the same way. Errors name the file, never a secret.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::policy::types::Secret;

/// A PEM file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PemError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

fn error(path: &Path, reason: impl std::fmt::Display) -> PemError {
    PemError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|e| error(path, format!("cannot read: {e}")))
}

/// Every certificate of a PEM file, in file order.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = read(path)?;
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(path, e))
}

/// The private key of a PEM file, decrypted with `passphrase` when it is encrypted PKCS#8.
pub fn read_private_key(
    path: &Path,
    passphrase: Option<&Secret>,
) -> Result<PrivateKeyDer<'static>, PemError> {
    let pem = read(path)?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains("ENCRYPTED PRIVATE KEY") {
        let pass = passphrase
            .ok_or_else(|| error(path, "the key is encrypted and no passphrase was resolved"))?;
        let (_, doc) = pkcs8::Document::from_pem(&text).map_err(|e| error(path, e))?;
        let info =
            pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| error(path, e))?;
        let plain = info
            .decrypt(pass.expose())
            .map_err(|_| error(path, "the key cannot be decrypted with its passphrase"))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| error(path, e))
}
