//! Compiles server TLS profiles, `[tls.NAME]`: versions, cipher suites, curves, client
//! authentication and what each backend can do.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Compiler, FileUse, SecretUse};
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic, did_you_mean};
use crate::policy::spanned::Sp;

/// TLS 1.2 cipher suites the rustls backend offers, by IANA name, with Beats' names as aliases.
pub const CIPHER_SUITES: [(&str, &str); 6] = [
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES-128-GCM-SHA256",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES-256-GCM-SHA384",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES-128-GCM-SHA256",
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES-256-GCM-SHA384",
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ),
];

/// Key exchange groups the rustls backend offers.
pub const CURVES: [&str; 3] = ["X25519", "P-256", "P-384"];

/// Other names of curves (OpenSSL's and Go's), with the name apmgate uses.
const CURVE_ALIASES: [(&str, &str); 6] = [
    ("x25519", "X25519"),
    ("prime256v1", "P-256"),
    ("secp256r1", "P-256"),
    ("CurveP256", "P-256"),
    ("secp384r1", "P-384"),
    ("CurveP384", "P-384"),
];

impl Compiler<'_> {
    /// The paths of the CA files a TLS profile or the Elasticsearch output names, each recorded
    /// for the environment step to read.
    pub(super) fn certificate_authorities(&mut self, files: &[Sp<String>]) -> Vec<PathBuf> {
        let cas: Vec<PathBuf> = files.iter().map(|c| self.path(c)).collect();
        for (path, c) in cas.iter().zip(files) {
            self.facts
                .files
                .push((path.clone(), c.span.clone(), FileUse::Authorities));
        }
        cas
    }

    pub(super) fn tls_versions(&mut self, v: &Option<Sp<Vec<Sp<String>>>>) -> Vec<TlsVersion> {
        let Some(list) = v else {
            return vec![TlsVersion::Tls12, TlsVersion::Tls13];
        };
        if list.is_empty() {
            self.report(
                Code::EmptyList,
                "`supported_protocols` is empty",
                list.span.clone(),
                "empty",
                "list `TLSv1.2`, `TLSv1.3` or both, or remove the key for both",
            );
        }
        let mut out = Vec::new();
        for item in list.iter() {
            match item.as_str() {
                "TLSv1.2" => out.push(TlsVersion::Tls12),
                "TLSv1.3" => out.push(TlsVersion::Tls13),
                "TLSv1.0" | "TLSv1.1" | "SSLv3" | "TLSv1" => self.report(
                    Code::TlsVersion,
                    format!("{} is not supported", item.value),
                    item.span.clone(),
                    "below TLS 1.2",
                    "apmgate speaks TLS 1.2 and TLS 1.3 only; older versions are broken",
                ),
                other => {
                    let help = did_you_mean(other, ["TLSv1.2", "TLSv1.3"])
                        .unwrap_or_else(|| "write `TLSv1.2` or `TLSv1.3`".into());
                    self.report(
                        Code::TlsVersion,
                        format!("unknown TLS version `{other}`"),
                        item.span.clone(),
                        "not a TLS version",
                        help,
                    );
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub(super) fn tls_profiles(
        &mut self,
        profiles: &ast::Named<ast::TlsProfile>,
    ) -> BTreeMap<String, Arc<TlsProfile>> {
        let mut out = BTreeMap::new();
        for (name, p) in profiles {
            let native = p
                .backend
                .as_ref()
                .is_some_and(|b| b.value == TlsBackend::NativeTls);
            let mut versions = self.tls_versions(&p.supported_protocols);
            // native-tls never negotiates TLS 1.3 as a server, so its default range ends at
            // TLS 1.2: a profile must not claim a version its connections never get.
            if native && p.supported_protocols.is_none() {
                versions = vec![TlsVersion::Tls12];
            }
            let mut suites = Vec::new();
            for s in &p.cipher_suites {
                match CIPHER_SUITES
                    .iter()
                    .find(|(iana, beats)| *iana == s.as_str() || *beats == s.as_str())
                {
                    Some((iana, _)) => suites.push(iana.to_string()),
                    None => {
                        let names = CIPHER_SUITES.iter().flat_map(|(a, b)| [*a, *b]);
                        let help = did_you_mean(s, names).unwrap_or_else(|| {
                            format!(
                                "supported TLS 1.2 suites: {}; TLS 1.3 suites are not configurable",
                                CIPHER_SUITES
                                    .iter()
                                    .map(|(a, _)| *a)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        });
                        self.report(
                            Code::UnknownCipherSuite,
                            format!("unknown or unsupported cipher suite `{}`", s.value),
                            s.span.clone(),
                            "not supported",
                            help,
                        );
                    }
                }
            }
            let mut curves = Vec::new();
            for c in &p.curve_types {
                if CURVES.contains(&c.as_str()) {
                    curves.push(c.value.clone());
                } else {
                    let help = match CURVE_ALIASES
                        .iter()
                        .find(|(alias, _)| alias.eq_ignore_ascii_case(c))
                    {
                        Some((_, name)) => format!("apmgate calls this curve `{name}`"),
                        None => did_you_mean(c, CURVES)
                            .unwrap_or_else(|| format!("supported curves: {}", CURVES.join(", "))),
                    };
                    self.report(
                        Code::UnknownCurve,
                        format!("unknown or unsupported curve `{}`", c.value),
                        c.span.clone(),
                        "not supported",
                        help,
                    );
                }
            }
            let client_auth = match &p.client_auth {
                Some(c) => c.value,
                None if !p.certificate_authorities.is_empty() => ClientAuth::Required,
                None => ClientAuth::None,
            };
            if let Some(backend) = p
                .backend
                .as_ref()
                .filter(|b| b.value == TlsBackend::NativeTls)
            {
                // native-tls exposes a certificate, a key and a minimum version; nothing else.
                let mut unsupported: Vec<(&str, Range<usize>)> = Vec::new();
                if client_auth != ClientAuth::None {
                    let span = p
                        .client_auth
                        .as_ref()
                        .map(|c| c.span.clone())
                        .or_else(|| p.certificate_authorities.first().map(|c| c.span.clone()));
                    unsupported.push((
                        "client certificate authentication",
                        span.unwrap_or(backend.span.clone()),
                    ));
                }
                if let Some(c) = p.cipher_suites.first() {
                    unsupported.push(("`cipher_suites`", c.span.clone()));
                }
                if let Some(c) = p.curve_types.first() {
                    unsupported.push(("`curve_types`", c.span.clone()));
                }
                for (what, span) in unsupported {
                    self.push(
                        Diagnostic::new(
                            Code::NativeTlsUnsupported,
                            format!("{what} is not supported by the native-tls backend"),
                            span,
                            "needs rustls",
                        )
                        .with_label(backend.span.clone(), "native-tls chosen here")
                        .with_help("use `backend = \"rustls\"` (the default), or drop the option"),
                    );
                }
                let tls13 = p
                    .supported_protocols
                    .iter()
                    .flat_map(|list| list.iter())
                    .find(|v| v.as_str() == "TLSv1.3");
                if let Some(v) = tls13 {
                    let (message, help) = if versions == [TlsVersion::Tls13] {
                        (
                            "the native-tls backend cannot serve TLS 1.3, the only version allowed here",
                            "use `backend = \"rustls\"` (the default) for TLS 1.3, or allow `TLSv1.2`",
                        )
                    } else {
                        (
                            "the native-tls backend never negotiates TLS 1.3",
                            "remove `TLSv1.3` (native-tls serves TLS 1.2), or use `backend = \"rustls\"` (the default) for TLS 1.3",
                        )
                    };
                    self.push(
                        Diagnostic::new(
                            Code::NativeTlsVersion,
                            message,
                            v.span.clone(),
                            "not negotiated by native-tls",
                        )
                        .with_label(backend.span.clone(), "native-tls chosen here")
                        .with_help(help),
                    );
                }
            }
            if let Some(c) = &p.client_auth {
                if c.value != ClientAuth::None && p.certificate_authorities.is_empty() {
                    self.report(
                        Code::ClientAuthWithoutCa,
                        format!(
                            "client_auth `{}` needs certificate authorities",
                            if c.value == ClientAuth::Required {
                                "required"
                            } else {
                                "optional"
                            }
                        ),
                        c.span.clone(),
                        "no CA to verify client certificates against",
                        "add `certificate_authorities = [\"ca.pem\"]` to this profile",
                    );
                }
            }
            let certificate = self.path(&p.certificate);
            let key = self.path(&p.key);
            let key_passphrase = p
                .key_passphrase
                .as_ref()
                .and_then(|s| self.secret(s, "key passphrase", SecretUse::Other));
            self.facts.files.push((
                certificate.clone(),
                p.certificate.span.clone(),
                FileUse::CertificateWithKey {
                    key: key.clone(),
                    key_span: p.key.span.clone(),
                    passphrase: key_passphrase
                        .as_ref()
                        .zip(p.key_passphrase.as_ref())
                        .map(|(s, sp)| (s.source.clone(), sp.span.clone())),
                },
            ));
            let cas = self.certificate_authorities(&p.certificate_authorities);
            out.insert(
                name.value.clone(),
                Arc::new(TlsProfile {
                    name: name.value.clone(),
                    certificate,
                    key,
                    key_passphrase,
                    certificate_authorities: cas,
                    client_auth,
                    versions,
                    cipher_suites: suites,
                    curves,
                    backend: p.backend.as_ref().map_or(TlsBackend::Rustls, |b| b.value),
                }),
            );
        }
        out
    }
}
