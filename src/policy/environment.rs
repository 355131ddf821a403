//! The environment step: what the policy refers to outside itself.
//!
//! Environment variables and secret files exist; certificates, keys and CAs parse; a key
//! matches its certificate; certificates are not expired (error) nor expiring within 30 days
//! (warning); encrypted keys decrypt with their passphrase. Resolved secrets are put into the
//! policy's slots. Skipped by `validate --no-environment`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::compile::{Facts, FileUse, MIN_SECRET_TOKEN_LEN, SecretUse, short_token_diagnostic};
use super::compiled::{EsCredentials, OutputSettings, Policy, SecretSlot};
use super::diagnostics::{Code, Diagnostic};
use super::types::{Secret, SecretError, SecretRef};

/// Warn when a certificate expires within this long.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

pub(crate) fn check(facts: &Facts, policy: &mut Policy) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut resolved: HashMap<SecretRef, Secret> = HashMap::new();
    for (r, span, usage) in &facts.secrets {
        match r.resolve() {
            Ok(secret) => {
                if *usage == SecretUse::SecretToken && !matches!(r, SecretRef::Inline(_)) {
                    let len = secret.expose().chars().count();
                    if len < MIN_SECRET_TOKEN_LEN {
                        diags.push(short_token_diagnostic(span.clone(), len));
                    }
                }
                resolved.insert(r.clone(), secret);
            }
            Err(SecretError::EnvMissing(name)) => diags.push(
                Diagnostic::new(Code::EnvVarMissing, format!("environment variable `{name}` is not set"), span.clone(), "not set")
                    .with_help(format!("set `{name}` where apmgate runs, or skip environment checks with `--no-environment`")),
            ),
            Err(SecretError::File { path, reason }) => diags.push(
                Diagnostic::new(Code::FileUnreadable, format!("cannot read `{path}`: {reason}"), span.clone(), "unreadable")
                    .with_help("relative paths are resolved from the policy file's directory"),
            ),
        }
    }
    fill(policy, &resolved);
    for (path, span, usage) in &facts.files {
        match usage {
            FileUse::SpoolDirectory => {
                if let Err(why) = writable_directory(path) {
                    diags.push(
                        Diagnostic::new(
                            Code::SpoolUnwritable,
                            format!("the spool directory `{}` cannot be written: {why}", path.display()),
                            span.clone(),
                            "not writable",
                        )
                        .with_help("create the directory and give the user apmgate runs as write access to it; relative paths are resolved from the policy file's directory"),
                    );
                }
            }
            FileUse::Authorities => {
                if let Some(pem) = read(path, span, &mut diags) {
                    match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
                        Ok(certs) if !certs.is_empty() => {
                            for cert in &certs {
                                check_validity(cert, path, span, &mut diags);
                            }
                        }
                        Ok(_) => diags.push(no_pem(path, span, "CERTIFICATE")),
                        Err(e) => diags.push(bad_cert(path, span, &pem_error(&e))),
                    }
                }
            }
            FileUse::CertificateWithKey {
                key,
                key_span,
                passphrase,
            } => {
                let cert_pem = read(path, span, &mut diags);
                let key_pem = read(key, key_span, &mut diags);
                let leaf = cert_pem.and_then(|pem| {
                    match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
                        Ok(certs) if !certs.is_empty() => {
                            check_validity(&certs[0], path, span, &mut diags);
                            Some(certs[0].clone())
                        }
                        Ok(_) => {
                            diags.push(no_pem(path, span, "CERTIFICATE"));
                            None
                        }
                        Err(e) => {
                            diags.push(bad_cert(path, span, &e.to_string()));
                            None
                        }
                    }
                });
                let passphrase = passphrase.as_ref().map(|(r, s)| (resolved.get(r), s));
                let key_der =
                    key_pem.and_then(|pem| load_key(key, &pem, key_span, passphrase, &mut diags));
                if let (Some(leaf), Some(key_der)) = (leaf, key_der) {
                    check_key_matches(
                        &leaf.into_owned(),
                        &key_der,
                        key,
                        path,
                        span,
                        key_span,
                        &mut diags,
                    );
                }
            }
        }
    }
    diags
}

/// Whether files can be created in `dir`, or `dir` created (the gateway creates it at start).
/// Creates nothing that stays.
pub fn writable_directory(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err("it is not a directory".into());
        }
        let probe = dir.join(format!(".apmgate-probe-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&probe);
        return Ok(());
    }
    let parent = dir
        .ancestors()
        .skip(1)
        .find(|a| a.exists())
        .ok_or_else(|| "no parent directory exists".to_string())?;
    if !parent.is_dir() {
        return Err(format!("`{}` is not a directory", parent.display()));
    }
    let probe = parent.join(format!(".apmgate-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        format!(
            "it does not exist and `{}` cannot be written: {e}",
            parent.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn fill(policy: &mut Policy, resolved: &HashMap<SecretRef, Secret>) {
    let set = |slot: &mut SecretSlot| {
        if slot.value.is_none() {
            slot.value = resolved.get(&slot.source).cloned();
        }
    };
    for t in &mut policy.auth.secret_tokens {
        set(&mut t.secret);
    }
    for l in &mut policy.listeners {
        if let Some(tls) = &l.tls {
            if tls
                .key_passphrase
                .as_ref()
                .is_some_and(|p| p.value.is_none())
            {
                let mut profile = (**tls).clone();
                if let Some(p) = profile.key_passphrase.as_mut() {
                    set(p);
                }
                std::sync::Arc::make_mut(l).tls = Some(std::sync::Arc::new(profile));
            }
        }
    }
    if let OutputSettings::Elasticsearch(es) = &mut policy.output {
        match &mut es.credentials {
            EsCredentials::ApiKey(s) => set(s),
            EsCredentials::Basic { password, .. } => set(password),
            EsCredentials::None => {}
        }
        if let Some(p) = es.tls.key_passphrase.as_mut() {
            set(p);
        }
    }
}

fn read(path: &Path, span: &Range<usize>, diags: &mut Vec<Diagnostic>) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) => {
            diags.push(
                Diagnostic::new(
                    Code::FileUnreadable,
                    format!("cannot read `{}`: {e}", path.display()),
                    span.clone(),
                    "unreadable",
                )
                .with_help("relative paths are resolved from the policy file's directory"),
            );
            None
        }
    }
}

fn no_pem(path: &Path, span: &Range<usize>, label: &str) -> Diagnostic {
    Diagnostic::new(
        Code::CertificateInvalid,
        format!("`{}` holds no PEM `{label}` block", path.display()),
        span.clone(),
        "no certificate",
    )
    .with_help("certificates are PEM files with `-----BEGIN CERTIFICATE-----` blocks")
}

fn bad_cert(path: &Path, span: &Range<usize>, why: &str) -> Diagnostic {
    Diagnostic::new(
        Code::CertificateInvalid,
        format!("`{}` cannot be parsed: {why}", path.display()),
        span.clone(),
        "not a certificate",
    )
    .with_help("certificates are PEM files with `-----BEGIN CERTIFICATE-----` blocks; check the file is complete")
}

/// A PEM reading error in words (the library's own are terse or print bytes).
fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => {
            "a PEM block has no END line (is the file truncated?)".to_string()
        }
        pem::Error::IllegalSectionStart { .. } => {
            "a PEM block has a malformed BEGIN line".to_string()
        }
        pem::Error::Base64Decode(_) => "a PEM block holds invalid base64".to_string(),
        pem::Error::NoItemsFound => "no PEM block found".to_string(),
        other => other.to_string(),
    }
}

fn check_validity(
    cert: &CertificateDer<'_>,
    path: &Path,
    span: &Range<usize>,
    diags: &mut Vec<Diagnostic>,
) {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        diags.push(
            Diagnostic::new(
                Code::CertificateInvalid,
                format!("a certificate in `{}` is not valid X.509", path.display()),
                span.clone(),
                "not X.509",
            )
            .with_help("the PEM block decodes, but its content is not a certificate; regenerate or re-export it"),
        );
        return;
    };
    let subject = parsed.subject().to_string();
    let not_after = parsed.validity().not_after.timestamp();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if not_after < now {
        diags.push(
            Diagnostic::new(
                Code::CertificateExpired,
                format!(
                    "certificate `{subject}` expired on {}",
                    parsed.validity().not_after
                ),
                span.clone(),
                "expired",
            )
            .with_help("renew the certificate"),
        );
    } else if not_after - now < EXPIRY_WARNING.as_secs() as i64 {
        diags.push(
            Diagnostic::new(
                Code::CertificateExpiring,
                format!(
                    "certificate `{subject}` expires on {}",
                    parsed.validity().not_after
                ),
                span.clone(),
                "expires soon",
            )
            .with_help("renew the certificate before it expires"),
        );
    }
}

fn load_key(
    path: &Path,
    pem: &[u8],
    span: &Range<usize>,
    passphrase: Option<(Option<&Secret>, &Range<usize>)>,
    diags: &mut Vec<Diagnostic>,
) -> Option<PrivateKeyDer<'static>> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some((secret, pass_span)) = passphrase else {
            diags.push(
                Diagnostic::new(
                    Code::KeyPassphrase,
                    format!(
                        "`{}` is encrypted but no passphrase is given",
                        path.display()
                    ),
                    span.clone(),
                    "encrypted key",
                )
                .with_help("add `key_passphrase = \"env:NAME\"` to the profile"),
            );
            return None;
        };
        // Unresolved passphrase: already reported by the secret check.
        let secret = secret?;
        let malformed = |diags: &mut Vec<Diagnostic>| {
            diags.push(
                Diagnostic::new(
                    Code::KeyInvalid,
                    format!("`{}` holds a malformed encrypted key", path.display()),
                    span.clone(),
                    "bad key",
                )
                .with_help("re-export it: `openssl pkcs8 -topk8 -v2 aes-256-cbc -in plain.key -out encrypted.key`"),
            );
        };
        let Ok((_, document)) = pkcs8::Document::from_pem(&text) else {
            malformed(diags);
            return None;
        };
        let doc = match pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes()) {
            Ok(info) => info.decrypt(secret.expose()),
            Err(_) => {
                malformed(diags);
                return None;
            }
        };
        return match doc {
            Ok(doc) => Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                doc.as_bytes().to_vec(),
            ))),
            Err(_) => {
                diags.push(
                    Diagnostic::new(
                        Code::KeyPassphrase,
                        format!(
                            "`{}` cannot be decrypted with the passphrase given",
                            path.display()
                        ),
                        pass_span.clone(),
                        "wrong passphrase?",
                    )
                    .with_help(
                        "check the passphrase; the key must be PKCS#8 (`openssl pkcs8 -topk8`)",
                    ),
                );
                None
            }
        };
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        diags.push(
            Diagnostic::new(Code::KeyPassphrase, format!("`{}` uses legacy OpenSSL encryption", path.display()), span.clone(), "legacy encrypted key")
                .with_help("convert it to encrypted PKCS#8: `openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key`"),
        );
        return None;
    }
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(k) => Some(k),
        Err(e) => {
            let why = match e {
                pem::Error::NoItemsFound => "no PEM private key block".to_string(),
                other => pem_error(&other),
            };
            diags.push(
                Diagnostic::new(Code::KeyInvalid, format!("`{}` holds no usable private key: {why}", path.display()), span.clone(), "not a key")
                    .with_help("keys are PEM files: PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1 (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`)"),
            );
            None
        }
    }
}

fn check_key_matches(
    leaf: &CertificateDer<'static>,
    key: &PrivateKeyDer<'static>,
    key_path: &Path,
    cert_path: &Path,
    cert_span: &Range<usize>,
    key_span: &Range<usize>,
    diags: &mut Vec<Diagnostic>,
) {
    // The provider the listeners use decides what a usable key is, for every encoding.
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = match provider.key_provider.load_private_key(key.clone_key()) {
        Ok(k) => k,
        Err(e) => {
            diags.push(
                Diagnostic::new(Code::KeyInvalid, format!("`{}` holds no usable private key: {e}", key_path.display()), key_span.clone(), "not a usable key")
                    .with_help("supported keys: ECDSA P-256/P-384, Ed25519 and RSA, in PKCS#8, PKCS#1 or SEC1 PEM"),
            );
            return;
        }
    };
    let certified = rustls::sign::CertifiedKey::new(vec![leaf.clone()], signing_key);
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        diags.push(
            Diagnostic::new(
                Code::KeyMismatch,
                format!(
                    "the key does not belong to the certificate `{}`",
                    cert_path.display()
                ),
                key_span.clone(),
                "another key",
            )
            .with_label(cert_span.clone(), "certificate")
            .with_help("point `key` at the private key the certificate was issued for"),
        );
    }
}
