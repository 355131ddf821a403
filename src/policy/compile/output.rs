//! Compiles `[output.*]`: the file, discard and Elasticsearch outputs, with the client TLS
//! towards Elasticsearch.

use std::time::Duration;

use super::context::zero_value;
use super::{Compiler, DEFAULT_FILE_OUTPUT, FileUse, SecretUse};
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic};
use crate::policy::spanned::Sp;

impl Compiler<'_> {
    pub(super) fn output(&mut self, o: &ast::Output) -> OutputSettings {
        if let (Some(_), Some(es)) = (&o.file, &o.elasticsearch) {
            self.report(
                Code::MultipleOutputs,
                "both a file and an Elasticsearch output are declared",
                es.hosts.span.clone(),
                "second output",
                "declare one output: `[output.elasticsearch]` or `[output.file]`",
            );
        }
        if let Some(discard) = &o.discard {
            if o.file.is_some() || o.elasticsearch.is_some() {
                self.report(
                    Code::MultipleOutputs,
                    "the discard output is declared beside another output",
                    discard.span.clone(),
                    "second output",
                    "declare one output: `[output.discard]` drops every event",
                );
            }
        }
        if let Some(es) = &o.elasticsearch {
            return OutputSettings::Elasticsearch(Box::new(self.es_output(es)));
        }
        if o.discard.is_some() {
            return OutputSettings::Discard;
        }
        let f = o.file.as_ref();
        let path = f
            .and_then(|f| f.path.as_ref())
            .map_or_else(|| self.path(DEFAULT_FILE_OUTPUT), |p| self.path(p));
        let rotate_bytes = self.positive_size(&f.and_then(|f| f.rotate_bytes.clone()), 100 << 20);
        let keep_files = f.and_then(|f| f.keep_files.as_ref()).map_or(5, |k| k.value);
        OutputSettings::File(FileOutputSettings {
            path,
            rotate_bytes,
            keep_files,
        })
    }

    pub(super) fn es_output(&mut self, es: &ast::EsOutput) -> EsOutputSettings {
        if es.hosts.is_empty() {
            self.report(
                Code::EmptyList,
                "`hosts` is empty",
                es.hosts.span.clone(),
                "no Elasticsearch host",
                "list at least one host, e.g. `hosts = [\"https://localhost:9200\"]`",
            );
        }
        let mut hosts = Vec::new();
        for h in es.hosts.iter() {
            let authority = h
                .split_once("://")
                .map_or(h.as_str(), |(_, r)| r)
                .split('/')
                .next()
                .unwrap_or("");
            if authority.contains('@') {
                // Never echo the value: it holds a password.
                self.facts.redactions.push(self.text(h).span(0..h.len()));
                self.report(Code::InvalidUrl, "an Elasticsearch host URL carries credentials", h.span.clone(), "credentials in the URL (hidden)", "write the host alone and authenticate with `api_key = \"env:NAME\"` or `username` and `password = \"env:NAME\"`");
                continue;
            }
            match normalize_host(h) {
                Ok(u) => hosts.push(u),
                Err(msg) => self.report(
                    Code::InvalidUrl,
                    format!("invalid Elasticsearch host `{}`: {msg}", h.value),
                    h.span.clone(),
                    msg,
                    "write `https://host:9200` or `host:9200` (http, port 9200 by default)",
                ),
            }
        }
        let credentials = match (&es.api_key, &es.username, &es.password) {
            (Some(k), Some(u), _) => {
                self.push(
                    Diagnostic::new(
                        Code::ConflictingCredentials,
                        "both `api_key` and `username` are set",
                        u.span.clone(),
                        "second credential",
                    )
                    .with_label(k.span.clone(), "API key set here")
                    .with_help("authenticate with an API key or with a user, not both"),
                );
                EsCredentials::None
            }
            (Some(k), None, _) => self
                .secret(k, "Elasticsearch API key", SecretUse::Other)
                .map_or(EsCredentials::None, EsCredentials::ApiKey),
            (None, Some(u), Some(p)) => {
                match self.secret(p, "Elasticsearch password", SecretUse::Other) {
                    Some(password) => EsCredentials::Basic {
                        username: u.value.clone(),
                        password,
                    },
                    None => EsCredentials::None,
                }
            }
            (None, Some(u), None) => {
                self.report(
                    Code::MissingKey,
                    "`username` is set without `password`",
                    u.span.clone(),
                    "needs a password",
                    "add `password = \"env:ES_PASSWORD\"`",
                );
                EsCredentials::None
            }
            (None, None, Some(p)) => {
                self.report(
                    Code::MissingKey,
                    "`password` is set without `username`",
                    p.span.clone(),
                    "needs a user",
                    "add `username = \"...\"`",
                );
                EsCredentials::None
            }
            (None, None, None) => EsCredentials::None,
        };
        let compression_level = match &es.compression_level {
            Some(l) if l.value > 9 => {
                self.push(Diagnostic::new(
                    Code::ValueOutOfRange,
                    "`compression_level` must be 0-9",
                    l.span.clone(),
                    "0 (off) to 9 (best)",
                ));
                5
            }
            Some(l) => l.value as u32,
            None => 5,
        };
        let at_least_one = |c: &mut Self, v: &Option<Sp<u64>>, name: &str, default: u64| match v {
            Some(n) if n.value == 0 => {
                c.push(zero_value(
                    format!("`{name}` must be at least 1"),
                    n.span.clone(),
                ));
                default
            }
            Some(n) => n.value,
            None => default,
        };
        let max_requests = at_least_one(self, &es.max_requests, "max_requests", 10);
        let path = match &es.path {
            Some(p) if !p.is_empty() => format!("/{}", p.trim_matches('/')),
            _ => String::new(),
        };
        let tls = self.client_tls(es.tls.as_ref());
        let backoff_init = self.positive_duration(&es.backoff_init, Duration::from_secs(1));
        let backoff_max = self.positive_duration(&es.backoff_max, Duration::from_secs(60));
        if backoff_max < backoff_init {
            if let Some(m) = &es.backoff_max {
                self.push(Diagnostic::new(
                    Code::ValueOutOfRange,
                    "`backoff_max` is shorter than `backoff_init`",
                    m.span.clone(),
                    "shorter than the first backoff",
                ));
            }
        }
        let flush_bytes = self.positive_size(&es.flush_bytes, 1 << 20);
        let buffer_bytes = self.positive_size(&es.buffer_bytes, 64 << 20);
        if buffer_bytes < flush_bytes {
            if let Some(b) = &es.buffer_bytes {
                self.report(Code::ValueOutOfRange, "`buffer_bytes` is smaller than `flush_bytes`", b.span.clone(), "smaller than one bulk request", "the buffer must hold at least one bulk request; make it several times `flush_bytes`");
            }
        }
        EsOutputSettings {
            hosts,
            path,
            credentials,
            headers: self.headers(&es.headers),
            compression_level,
            flush_bytes,
            flush_interval: self.positive_duration(&es.flush_interval, Duration::from_secs(1)),
            max_requests,
            max_retries: es.max_retries.as_ref().map_or(3, |r| r.value),
            backoff_init,
            backoff_max,
            timeout: self.positive_duration(&es.timeout, Duration::from_secs(5)),
            buffer_bytes,
            queue_timeout: self.duration(&es.queue_timeout, Duration::from_secs(1)),
            dead_letter_path: es.dead_letter_path.as_ref().map(|p| self.path(p)),
            tls,
        }
    }

    pub(super) fn client_tls(&mut self, t: Option<&ast::ClientTls>) -> ClientTlsSettings {
        let default = ast::ClientTls::default();
        let t = t.unwrap_or(&default);
        let fingerprint = t.ca_trusted_fingerprint.as_ref().and_then(|f| {
            let hex: String = f.chars().filter(|c| *c != ':').collect();
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect();
            match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                Some(b) => Some(b),
                None => {
                    self.report(
                        Code::ValueOutOfRange,
                        "`ca_trusted_fingerprint` is not a SHA-256 fingerprint",
                        f.span.clone(),
                        "expected 64 hex digits",
                        "get it with `openssl x509 -in ca.crt -noout -fingerprint -sha256`",
                    );
                    None
                }
            }
        });
        let versions = self.tls_versions(&t.supported_protocols);
        let certificate = t.certificate.as_ref().map(|c| self.path(c));
        let key = t.key.as_ref().map(|k| self.path(k));
        let key_passphrase = t
            .key_passphrase
            .as_ref()
            .and_then(|s| self.secret(s, "key passphrase", SecretUse::Other));
        match (&t.certificate, &t.key) {
            (Some(c), Some(k)) => self.facts.files.push((
                self.path(c),
                c.span.clone(),
                FileUse::CertificateWithKey {
                    key: self.path(k),
                    key_span: k.span.clone(),
                    passphrase: key_passphrase
                        .as_ref()
                        .zip(t.key_passphrase.as_ref())
                        .map(|(s, sp)| (s.source.clone(), sp.span.clone())),
                },
            )),
            (Some(c), None) => self.push(Diagnostic::new(
                Code::MissingKey,
                "`certificate` is set without `key`",
                c.span.clone(),
                "needs its key",
            )),
            (None, Some(k)) => self.push(Diagnostic::new(
                Code::MissingKey,
                "`key` is set without `certificate`",
                k.span.clone(),
                "needs its certificate",
            )),
            (None, None) => {}
        }
        let cas = self.certificate_authorities(&t.certificate_authorities);
        ClientTlsSettings {
            verification_mode: t
                .verification_mode
                .as_ref()
                .map_or(VerificationMode::Full, |v| v.value),
            certificate_authorities: cas,
            ca_trusted_fingerprint: fingerprint,
            certificate,
            key,
            key_passphrase,
            versions,
            backend: t.backend.as_ref().map_or(TlsBackend::Rustls, |b| b.value),
        }
    }
}

pub(super) fn normalize_host(h: &str) -> Result<String, &'static str> {
    let (scheme, rest) = match h.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("http", h),
    };
    if scheme != "http" && scheme != "https" {
        return Err("the scheme must be http or https");
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err("no host");
    }
    if rest.len() > authority.len() && !rest[authority.len()..].trim_matches('/').is_empty() {
        return Err("put a path prefix in `path`, not in the host");
    }
    let has_port = if authority.starts_with('[') {
        authority.contains("]:")
    } else {
        authority.contains(':')
    };
    if has_port {
        let port = authority.rsplit(':').next().unwrap_or("");
        if port.parse::<u16>().is_err() {
            return Err("invalid port");
        }
    }
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:9200")
    };
    Ok(format!("{scheme}://{authority}"))
}
