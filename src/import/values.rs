//! Reading APM Server's values (scalars, lists, headers, secrets, durations, sizes) and the
//! helpers the mapping shares: each problem becomes a diagnostic at the value's place.

use std::ops::Range;

use crate::policy::diagnostics::{Code, Diagnostic, closest};

use super::convert::{format_duration, interpolate, parse_duration, parse_size};
use super::draft::{EnvVar, toml_str};
use super::map::{Leaf, Mapper, flatten};
use super::settings::{KNOWN, SECRETS};
use super::yaml::{Kind, Node};

impl Mapper {
    pub(super) fn report(
        &mut self,
        code: Code,
        message: String,
        span: Range<usize>,
        label: &str,
        help: &str,
    ) {
        let mut d = Diagnostic::new(code, message, span, label);
        if !help.is_empty() {
            d = d.with_help(help.to_string());
        }
        self.diagnostics.push(d);
    }

    pub(super) fn not_carried(&mut self, leaf: &Leaf, why: &str) {
        self.report(
            Code::ImportNotCarried,
            format!("`{}` is not carried over", leaf.path),
            leaf.key.clone(),
            "no equivalent in apmgate",
            why,
        );
    }

    pub(super) fn differs(&mut self, leaf: &Leaf, message: String, help: &str) {
        self.report(
            Code::ImportMeaningDiffers,
            message,
            leaf.key.clone(),
            "carried with a difference",
            help,
        );
    }

    pub(super) fn wrong_type(&mut self, leaf: &Leaf, expected: &str) {
        let secret = SECRETS.iter().any(|(p, _)| *p == leaf.path);
        let found = match &leaf.value.kind {
            Kind::Scalar { text, .. } if !secret && !leaf.value.is_null() && text.len() <= 40 => {
                format!("`{text}`")
            }
            _ => leaf.value.describe().to_string(),
        };
        self.report(
            Code::ImportWrongType,
            format!("`{}` must be {expected}, found {found}", leaf.path),
            leaf.value.span.clone(),
            &format!("expected {expected}"),
            "APM Server refuses to start with this value; the setting is left out of the policy",
        );
    }

    /// A scalar's text, `${VAR:default}` references replaced by their defaults (a reference
    /// without one cannot be carried: the policy reads no environment there).
    pub(super) fn text_of(&mut self, leaf: &Leaf, node: &Node) -> Option<String> {
        let Kind::Scalar { text, .. } = &node.kind else {
            self.wrong_type(leaf, "a single value");
            return None;
        };
        let i = interpolate(text);
        if i.references.is_empty() {
            return Some(text.clone());
        }
        let names: Vec<String> = i
            .references
            .iter()
            .map(|r| format!("${{{}}}", r.name))
            .collect();
        match i.with_defaults {
            Some(value) => {
                self.report(
                    Code::ImportEnvDefault,
                    format!(
                        "`{}` reads {} from the environment; the policy holds its default",
                        leaf.path,
                        names.join(", ")
                    ),
                    node.span.clone(),
                    "the default is written into the policy",
                    "apmgate reads environment variables only in secrets (`env:NAME`): edit the policy if the variable is set where APM Server runs",
                );
                Some(value)
            }
            None => {
                self.report(
                    Code::ImportNotCarried,
                    format!(
                        "`{}` reads {} from the environment, without a default",
                        leaf.path,
                        names.join(", ")
                    ),
                    node.span.clone(),
                    "the policy cannot read this value from the environment",
                    "apmgate reads environment variables only in secrets (`env:NAME`): write the value into the policy",
                );
                None
            }
        }
    }

    pub(super) fn string(&mut self, leaf: &Leaf) -> Option<String> {
        if leaf.value.is_null() {
            return None;
        }
        let value = leaf.value.clone();
        self.text_of(leaf, &value)
    }

    pub(super) fn boolean(&mut self, leaf: &Leaf) -> Option<bool> {
        let text = self.string(leaf)?;
        match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => {
                self.wrong_type(leaf, "true or false");
                None
            }
        }
    }

    pub(super) fn integer(&mut self, leaf: &Leaf) -> Option<u64> {
        let text = self.string(leaf)?;
        match text.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.wrong_type(leaf, "a whole number");
                None
            }
        }
    }

    pub(super) fn duration(&mut self, leaf: &Leaf) -> Option<String> {
        let text = self.string(leaf)?;
        match parse_duration(&text) {
            Some(micros) => Some(format_duration(micros)),
            None => {
                self.wrong_type(leaf, "a duration (`30s`, `1h30m`) or a number of seconds");
                None
            }
        }
    }

    pub(super) fn size(&mut self, leaf: &Leaf) -> Option<u64> {
        let text = self.string(leaf)?;
        match parse_size(&text) {
            Some(bytes) => Some(bytes),
            None => {
                self.wrong_type(leaf, "a size in bytes (`307200`, `1mib`)");
                None
            }
        }
    }

    /// A list of strings; a single value is a list of one, as APM Server reads it.
    pub(super) fn list(&mut self, leaf: &Leaf) -> Option<Vec<String>> {
        match &leaf.value.kind {
            Kind::Seq(items) => {
                let mut out = Vec::new();
                for item in items.clone() {
                    if !matches!(item.kind, Kind::Scalar { .. }) {
                        self.wrong_type(leaf, "a list of values");
                        return None;
                    }
                    out.push(self.text_of(leaf, &item)?);
                }
                Some(out)
            }
            Kind::Scalar { .. } if leaf.value.is_null() => None,
            Kind::Scalar { .. } => self.string(leaf).map(|s| vec![s]),
            Kind::Map(_) => {
                self.wrong_type(leaf, "a list of values");
                None
            }
        }
    }

    /// Header name to value (a list of values is joined with `, `).
    pub(super) fn headers(&mut self, leaf: &Leaf) -> Option<Vec<(String, String)>> {
        let Kind::Map(entries) = &leaf.value.kind else {
            if !leaf.value.is_null() {
                self.wrong_type(leaf, "a mapping of header names to values");
            }
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in entries.clone() {
            let name = self.text_of(leaf, &k)?;
            let lower = name.to_ascii_lowercase();
            if lower == "authorization"
                || lower.contains("api-key")
                || lower.contains("apikey")
                || lower.contains("token")
                || lower == "cookie"
            {
                self.masks.push(v.span.clone());
                self.report(
                    Code::ImportNotCarried,
                    format!("`{}` sends a credential in the `{name}` header", leaf.path),
                    k.span.clone(),
                    "not copied",
                    "headers are written in the policy as they are: give the credential as a secret instead (`api_key`, or `username` and `password`)",
                );
                continue;
            }
            let value = match &v.kind {
                Kind::Seq(items) => {
                    let mut values = Vec::new();
                    for item in items {
                        values.push(self.text_of(leaf, item)?);
                    }
                    values.join(", ")
                }
                Kind::Scalar { .. } => self.text_of(leaf, &v)?,
                Kind::Map(_) => {
                    self.wrong_type(leaf, "a mapping of header names to values");
                    return None;
                }
            };
            out.push((name, value));
        }
        Some(out)
    }

    /// A secret: `${VAR}` becomes `env:VAR`; a literal one moves to a generated variable (never
    /// printed); empty means unset.
    pub(super) fn secret(&mut self, leaf: &Leaf, generated: &str) -> Option<String> {
        if leaf.value.is_null() {
            return None;
        }
        let Kind::Scalar { text, .. } = &leaf.value.kind else {
            self.wrong_type(leaf, "a single value");
            return None;
        };
        if text.is_empty() {
            return None;
        }
        let i = interpolate(text);
        if i.whole {
            let r = &i.references[0];
            let var = r.name.clone();
            let valid = var
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.report(
                    Code::ImportSecretToEnv,
                    format!(
                        "`{}` reads the keystore key `{var}`, which cannot name an environment variable; the policy reads it from {generated}",
                        leaf.path
                    ),
                    leaf.value.span.clone(),
                    "moved to another name",
                    &format!("set {generated} to the keystore's `{var}` where apmgate runs"),
                );
                self.add_env(
                    generated,
                    format!("the value of the keystore key `{var}` (`{}`)", leaf.path),
                );
                return Some(format!("env:{generated}"));
            }
            if r.default.as_deref().is_some_and(|d| !d.is_empty()) {
                self.masks.push(leaf.value.span.clone());
                self.report(
                    Code::ImportEnvDefault,
                    format!(
                        "`{}` has a default for ${{{var}}}; the policy reads `env:{var}` without one",
                        leaf.path
                    ),
                    leaf.value.span.clone(),
                    "the default (a secret) is not copied",
                    &format!("set {var} where apmgate runs: the gateway refuses to start without it"),
                );
            }
            self.add_env(
                &var,
                format!(
                    "`{}`, as APM Server read it (environment or keystore)",
                    leaf.path
                ),
            );
            return Some(format!("env:{var}"));
        }
        if !i.references.is_empty() {
            self.masks.push(leaf.value.span.clone());
            self.report(
                Code::ImportNotCarried,
                format!("`{}` mixes text and environment references", leaf.path),
                leaf.value.span.clone(),
                "a secret must be one reference",
                &format!("put the whole secret in one variable and write `${{{generated}}}`"),
            );
            return None;
        }
        self.masks.push(leaf.value.span.clone());
        self.report(
            Code::ImportSecretToEnv,
            format!("`{}` is written inline; the policy reads it from {generated}", leaf.path),
            leaf.value.span.clone(),
            "not copied",
            &format!(
                "set {generated} to this value where apmgate runs (and keep it out of files under version control)"
            ),
        );
        self.add_env(
            generated,
            format!("the value written inline as `{}` in the YAML", leaf.path),
        );
        Some(format!("env:{generated}"))
    }

    pub(super) fn add_env(&mut self, name: &str, what: String) {
        if !self.env.iter().any(|e| e.name == name) {
            self.env.push(EnvVar {
                name: name.to_string(),
                what,
            });
        }
    }

    pub(super) fn unknown(&mut self, leaf: &Leaf) {
        let help = closest(&leaf.path, KNOWN.iter().copied())
            .map(|c| format!("did you mean `{c}`? APM Server ignored this key silently"))
            .unwrap_or_else(|| {
                "APM Server ignored this key silently; it has no effect".to_string()
            });
        self.report(
            Code::ImportUnknownSetting,
            format!("`{}` is not an APM Server setting", leaf.path),
            leaf.key.clone(),
            "unknown",
            &help,
        );
    }

    pub(super) fn relative_path(&mut self, leaf: &Leaf, path: &str) {
        if !path.starts_with('/') && !path.starts_with('$') {
            self.differs(
                leaf,
                format!("`{}` is a relative path", leaf.path),
                "APM Server resolved it from its working directory (path.config); apmgate resolves it from the policy's directory",
            );
        }
    }

    /// `apm-server.host` to a bind address: port 8200 when none is given; `:8200` is every
    /// IPv4 address.
    pub(super) fn bind(&mut self, leaf: &Leaf, host: &str) -> String {
        if host.starts_with("unix:") {
            return host.to_string();
        }
        let host = host
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let has_port = if let Some(rest) = host.strip_prefix('[') {
            rest.contains("]:")
        } else {
            host.matches(':').count() == 1
        };
        let host = if has_port {
            host.to_string()
        } else if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:8200")
        } else {
            format!("{host}:8200")
        };
        if let Some(port) = host.strip_prefix(':') {
            self.differs(
                leaf,
                format!("`{}` listens on every address", leaf.path),
                "carried as 0.0.0.0 (every IPv4 address); write `[::]` in the policy for IPv6 too",
            );
            return format!("0.0.0.0:{port}");
        }
        host
    }

    /// `apm-server.agent_config`: central configuration written in the file.
    pub(super) fn agent_configs(&mut self, leaf: &Leaf) {
        let Kind::Seq(items) = &leaf.value.kind else {
            if !leaf.value.is_null() {
                self.wrong_type(leaf, "a list of agent configurations");
            }
            return;
        };
        for item in items.clone() {
            let mut fields = Vec::new();
            let mut ignore = Vec::new();
            flatten(&item, "", &mut fields, &mut ignore);
            let mut service = None;
            let mut environment = None;
            let mut agent = None;
            let mut settings = Vec::new();
            for f in &fields {
                let sub = Leaf {
                    path: format!("{}[].{}", leaf.path, f.path),
                    key: f.key.clone(),
                    value: f.value.clone(),
                };
                match f.path.as_str() {
                    "service.name" => service = self.string(&sub),
                    "service.environment" => environment = self.string(&sub),
                    "agent.name" => agent = self.string(&sub),
                    "etag" => {}
                    p if p.starts_with("config.") => {
                        if let Kind::Scalar { text, quoted } = &f.value.kind {
                            let name = p.trim_start_matches("config.").to_string();
                            let value = if !quoted
                                && (text.parse::<f64>().is_ok()
                                    || text == "true"
                                    || text == "false")
                            {
                                text.clone()
                            } else {
                                toml_str(text)
                            };
                            settings.push((name, value));
                        } else {
                            self.wrong_type(&sub, "a single value");
                        }
                    }
                    _ => self.unknown(&sub),
                }
            }
            match service {
                Some(service) => {
                    self.draft
                        .agent_configs
                        .push((service, environment, agent, settings))
                }
                None => self.report(
                    Code::ImportNotCarried,
                    "an agent configuration without `service.name`".to_string(),
                    item.span.clone(),
                    "not carried",
                    "apmgate's [[agent_config]] entries name their service",
                ),
            }
        }
    }
}
