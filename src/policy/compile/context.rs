//! Shared helpers of the compiler: reporting diagnostics, reading durations, sizes, paths,
//! secret references, addresses, globs, regular expressions and headers at their spans, and the
//! `undefined`/duplicate-name findings every section uses.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Compiler, MIN_SECRET_TOKEN_LEN, SecretUse};
use crate::policy::ast::{self, SizeValue};
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic, closest, did_you_mean};
use crate::policy::grammar::{self, ValueError, ValueText};
use crate::policy::spanned::Sp;
use crate::policy::types::{AddressRange, Glob, SecretRef};

/// A value that must be positive and is zero: `message` at `span`, labelled so.
pub(super) fn zero_value(message: impl Into<String>, span: Range<usize>) -> Diagnostic {
    Diagnostic::new(Code::ValueOutOfRange, message, span, "zero")
}

impl Compiler<'_> {
    pub(super) fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Reports what most findings are: `message`, at `span` labelled `label`, with `help` on how
    /// to fix it.
    pub(super) fn report(
        &mut self,
        code: Code,
        message: impl Into<String>,
        span: Range<usize>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(Diagnostic::new(code, message, span, label).with_help(help));
    }

    pub(super) fn text(&self, v: &Sp<String>) -> ValueText {
        ValueText::new(self.src, v)
    }

    pub(super) fn value_error(&mut self, v: &Sp<String>, code: Code, e: ValueError) {
        let d = self.text(v).diagnostic(code, e);
        self.push(d);
    }

    pub(super) fn duration(&mut self, v: &Option<Sp<String>>, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match grammar::parse_duration(v) {
            Ok(d) => d,
            Err(e) => {
                self.value_error(v, Code::InvalidDuration, e);
                default
            }
        }
    }

    pub(super) fn positive_duration(
        &mut self,
        v: &Option<Sp<String>>,
        default: Duration,
    ) -> Duration {
        let d = self.duration(v, default);
        if let (Some(v), true) = (v, d.is_zero()) {
            if grammar::parse_duration(v).is_ok() {
                self.push(zero_value(
                    "duration must be longer than zero",
                    v.span.clone(),
                ));
            }
            return default;
        }
        d
    }

    pub(super) fn size(&mut self, v: &Option<Sp<SizeValue>>, default: u64) -> u64 {
        let Some(v) = v else { return default };
        match &v.value {
            SizeValue::Bytes(n) => *n,
            SizeValue::Text(t) => {
                let sp = Sp::new(t.clone(), v.span.clone());
                match grammar::parse_size(t) {
                    Ok(n) => n,
                    Err(e) => {
                        self.value_error(&sp, Code::InvalidSize, e);
                        default
                    }
                }
            }
        }
    }

    pub(super) fn positive_size(&mut self, v: &Option<Sp<SizeValue>>, default: u64) -> u64 {
        let n = self.size(v, default);
        if n == 0 {
            if let Some(v) = v {
                self.push(zero_value("size must be larger than zero", v.span.clone()));
            }
            return default;
        }
        n
    }

    pub(super) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub(super) fn secret(
        &mut self,
        v: &Sp<String>,
        what: &str,
        usage: SecretUse,
    ) -> Option<SecretSlot> {
        match grammar::parse_secret(v) {
            Ok(r) => {
                if let SecretRef::Inline(s) = &r {
                    self.facts.redactions.push(self.text(v).span(0..v.len()));
                    self.report(
                        Code::InlineSecret,
                        format!("{what} is written in the policy"),
                        v.span.clone(),
                        "inline secret (hidden)",
                        "keep secrets out of git: write `env:NAME` or `file:/path` instead",
                    );
                    if usage == SecretUse::SecretToken && s.chars().count() < MIN_SECRET_TOKEN_LEN {
                        self.push(short_token(v.span.clone(), s.chars().count()));
                    }
                }
                let r = match r {
                    SecretRef::File(p) => SecretRef::File(self.path(&p.to_string_lossy())),
                    other => other,
                };
                let value = match &r {
                    SecretRef::Inline(s) => Some(crate::policy::types::Secret::new(s.clone())),
                    _ => None,
                };
                self.facts.secrets.push((r.clone(), v.span.clone(), usage));
                Some(SecretSlot { source: r, value })
            }
            Err(e) => {
                self.value_error(v, Code::InvalidSecretRef, e);
                None
            }
        }
    }

    pub(super) fn address_ranges(&mut self, items: &[Sp<String>]) -> Vec<AddressRange> {
        items
            .iter()
            .filter_map(|v| match grammar::parse_address_range(v) {
                Ok(r) => Some(r),
                Err(e) => {
                    let code = if e.message.contains("host bits") {
                        Code::CidrHostBits
                    } else {
                        Code::InvalidAddress
                    };
                    self.value_error(v, code, e);
                    None
                }
            })
            .collect()
    }

    pub(super) fn glob(&mut self, v: &Sp<String>) -> Option<Glob> {
        match grammar::parse_glob(v) {
            Ok(g) => Some(g),
            Err(e) => {
                self.value_error(v, Code::InvalidGlob, e);
                None
            }
        }
    }

    pub(super) fn regex(&mut self, v: &Option<Sp<String>>, default: &str) -> regex::Regex {
        let fallback = || {
            regex::Regex::new(default).unwrap_or_else(|_| regex::Regex::new("$^").expect("valid"))
        };
        let Some(v) = v else { return fallback() };
        match regex::Regex::new(v) {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                let detail = msg
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .trim()
                    .trim_start_matches("error: ")
                    .to_string();
                self.report(
                    Code::InvalidRegex,
                    format!("invalid regular expression: {detail}"),
                    v.span.clone(),
                    detail,
                    "this is a regular expression (RE2 syntax), as in APM Server",
                );
                fallback()
            }
        }
    }

    pub(super) fn header(
        &mut self,
        name: &Sp<String>,
        value: &Sp<String>,
    ) -> Option<(String, String)> {
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        let value_ok = value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        if !name_ok {
            self.push(Diagnostic::new(
                Code::InvalidHeader,
                format!("invalid header name `{}`", name.value),
                name.span.clone(),
                "not an HTTP header name",
            ));
        }
        if !value_ok {
            self.push(Diagnostic::new(
                Code::InvalidHeader,
                "invalid header value",
                value.span.clone(),
                "control characters are not allowed",
            ));
        }
        (name_ok && value_ok).then(|| (name.value.clone(), value.value.clone()))
    }

    pub(super) fn headers(&mut self, map: &ast::Named<Sp<String>>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in map {
            if let Some(h) = self.header(k, v) {
                out.push(h);
            }
        }
        out
    }

    pub(super) fn check_duplicates<'n>(
        &mut self,
        what: &str,
        names: impl IntoIterator<Item = &'n Sp<String>>,
    ) {
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        for n in names {
            if let Some(first) = seen.get(n.as_str()) {
                self.push(
                    Diagnostic::new(
                        Code::DuplicateName,
                        format!("duplicate {what} name `{}`", n.value),
                        n.span.clone(),
                        "defined again here",
                    )
                    .with_label(first.clone(), "first defined here")
                    .with_help(format!("{what} names must be unique; rename one of them")),
                );
            } else {
                seen.insert(n.as_str(), n.span.clone());
            }
        }
    }

    pub(super) fn undefined(
        &mut self,
        what: &str,
        name: &Sp<String>,
        span: Range<usize>,
        known: Vec<&str>,
    ) {
        // The entry the name was probably meant for is not "unused": one finding is enough.
        if let Some(meant) = closest(name, known.iter().copied()) {
            let meant = meant.to_string();
            match what {
                "role" => self.used_roles.insert(meant),
                "TLS profile" => self.used_tls.insert(meant),
                "allowlist" => self.used_allowlists.insert(meant),
                _ => false,
            };
        }
        let help = did_you_mean(name, known.iter().copied()).unwrap_or_else(|| {
            if known.is_empty() {
                format!("no {what} is defined")
            } else {
                format!("defined {what}s: {}", known.join(", "))
            }
        });
        self.report(
            Code::UndefinedReference,
            format!("undefined {what} `{}`", name.value),
            span,
            format!("no such {what}"),
            help,
        );
    }
}

pub(super) fn short_token(span: Range<usize>, len: usize) -> Diagnostic {
    Diagnostic::new(
        Code::ShortSecretToken,
        format!("secret token has {len} characters; at least {MIN_SECRET_TOKEN_LEN} are advised"),
        span,
        "short token",
    )
    .with_help("generate one with `openssl rand -base64 32`")
}

pub(crate) fn short_token_diagnostic(span: Range<usize>, len: usize) -> Diagnostic {
    short_token(span, len)
}
