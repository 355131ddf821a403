//! Semantic compilation: from the policy as written ([`super::ast`]) to the typed [`Policy`].
//!
//! Every check runs and every finding is collected; nothing stops early. Names are resolved
//! (with `did you mean` help), strings are parsed by the grammar at their exact spans, and the
//! result holds no string that still needs parsing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ast::{self, SizeValue};
use super::compiled::*;
use super::diagnostics::{Code, Diagnostic, closest, did_you_mean};
use super::expr::{Condition, Expr, Field, Test};
use super::grammar::{self, RawCondition, RawExpr, RawOp, ValueError, ValueText};
use super::spanned::Sp;
use super::types::{AddressRange, Glob, IpSet, Privilege, PrivilegeSet, SecretRef};

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

/// Default file output path.
pub const DEFAULT_FILE_OUTPUT: &str = "data/apmgate-events.ndjson";

/// The smallest `max_header_size` that can be enforced (hyper's smallest HTTP/1.1 buffer).
pub const MIN_HEADER_SIZE: u64 = 8 * 1024;

/// Secret tokens shorter than this are warned about.
pub const MIN_SECRET_TOKEN_LEN: usize = 32;

/// Things the compiler learnt that the environment step needs.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Secret references with their spans, for the environment step.
    pub secrets: Vec<(SecretRef, Range<usize>, SecretUse)>,
    /// File paths with their spans and what they should hold.
    pub files: Vec<(PathBuf, Range<usize>, FileUse)>,
    /// Spans of inline secrets, masked in rendered reports.
    pub redactions: Vec<Range<usize>>,
}

/// What a secret is for (checks differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretUse {
    SecretToken,
    Other,
}

/// What a file should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileUse {
    /// A server or client certificate chain with its key and passphrase.
    CertificateWithKey {
        key: PathBuf,
        key_span: Range<usize>,
        passphrase: Option<(SecretRef, Range<usize>)>,
    },
    /// CA certificates.
    Authorities,
}

pub(crate) struct Compiler<'a> {
    src: &'a str,
    base_dir: PathBuf,
    pub diags: Vec<Diagnostic>,
    pub facts: Facts,
    used_roles: BTreeSet<String>,
    used_allowlists: BTreeSet<String>,
    used_tls: BTreeSet<String>,
    bind_spans: HashMap<String, Range<usize>>,
    /// The structural check pruned entries: findings that only say "missing" are left out,
    /// since the entry may be there, just malformed.
    pub pruned: bool,
}

struct RoleTable<'a> {
    spans: BTreeMap<&'a str, Range<usize>>,
    resolved: BTreeMap<String, PrivilegeSet>,
}

impl<'a> Compiler<'a> {
    pub fn new(src: &'a str, base_dir: PathBuf) -> Self {
        Self {
            src,
            base_dir,
            diags: Vec::new(),
            facts: Facts::default(),
            used_roles: BTreeSet::new(),
            used_allowlists: BTreeSet::new(),
            used_tls: BTreeSet::new(),
            bind_spans: HashMap::new(),
            pruned: false,
        }
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn text(&self, v: &Sp<String>) -> ValueText {
        ValueText::new(self.src, v)
    }

    fn value_error(&mut self, v: &Sp<String>, code: Code, e: ValueError) {
        let d = self.text(v).diagnostic(code, e);
        self.push(d);
    }

    fn duration(&mut self, v: &Option<Sp<String>>, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match grammar::parse_duration(v) {
            Ok(d) => d,
            Err(e) => {
                self.value_error(v, Code::InvalidDuration, e);
                default
            }
        }
    }

    fn positive_duration(&mut self, v: &Option<Sp<String>>, default: Duration) -> Duration {
        let d = self.duration(v, default);
        if let (Some(v), true) = (v, d.is_zero()) {
            if grammar::parse_duration(v).is_ok() {
                self.push(Diagnostic::new(
                    Code::ValueOutOfRange,
                    "duration must be longer than zero",
                    v.span.clone(),
                    "zero",
                ));
            }
            return default;
        }
        d
    }

    fn size(&mut self, v: &Option<Sp<SizeValue>>, default: u64) -> u64 {
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

    fn positive_size(&mut self, v: &Option<Sp<SizeValue>>, default: u64) -> u64 {
        let n = self.size(v, default);
        if n == 0 {
            if let Some(v) = v {
                self.push(Diagnostic::new(
                    Code::ValueOutOfRange,
                    "size must be larger than zero",
                    v.span.clone(),
                    "zero",
                ));
            }
            return default;
        }
        n
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn secret(&mut self, v: &Sp<String>, what: &str, usage: SecretUse) -> Option<SecretSlot> {
        match grammar::parse_secret(v) {
            Ok(r) => {
                if let SecretRef::Inline(s) = &r {
                    self.facts.redactions.push(self.text(v).span(0..v.len()));
                    self.push(
                        Diagnostic::new(
                            Code::InlineSecret,
                            format!("{what} is written in the policy"),
                            v.span.clone(),
                            "inline secret (hidden)",
                        )
                        .with_help(
                            "keep secrets out of git: write `env:NAME` or `file:/path` instead",
                        ),
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
                    SecretRef::Inline(s) => Some(super::types::Secret::new(s.clone())),
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

    fn address_ranges(&mut self, items: &[Sp<String>]) -> Vec<AddressRange> {
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

    fn glob(&mut self, v: &Sp<String>) -> Option<Glob> {
        match grammar::parse_glob(v) {
            Ok(g) => Some(g),
            Err(e) => {
                self.value_error(v, Code::InvalidGlob, e);
                None
            }
        }
    }

    fn regex(&mut self, v: &Option<Sp<String>>, default: &str) -> regex::Regex {
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
                self.push(
                    Diagnostic::new(
                        Code::InvalidRegex,
                        format!("invalid regular expression: {detail}"),
                        v.span.clone(),
                        detail,
                    )
                    .with_help("this is a regular expression (RE2 syntax), as in APM Server"),
                );
                fallback()
            }
        }
    }

    fn header(&mut self, name: &Sp<String>, value: &Sp<String>) -> Option<(String, String)> {
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

    fn headers(&mut self, map: &ast::Named<Sp<String>>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in map {
            if let Some(h) = self.header(k, v) {
                out.push(h);
            }
        }
        out
    }

    fn check_duplicates<'n>(
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

    fn undefined(&mut self, what: &str, name: &Sp<String>, span: Range<usize>, known: Vec<&str>) {
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
        self.push(
            Diagnostic::new(
                Code::UndefinedReference,
                format!("undefined {what} `{}`", name.value),
                span,
                format!("no such {what}"),
            )
            .with_help(help),
        );
    }

    // ---------------------------------------------------------------------------------------

    pub fn compile(&mut self, file: &ast::PolicyFile) -> Policy {
        let roles = self.roles(&file.roles);
        let allowlists = self.allowlists(&file.allowlists);
        let tls = self.tls_profiles(&file.tls);
        let gateway = self.gateway(&file.gateway);
        let listeners = self.listeners(&file.listeners, &tls);
        let rum = self.rum(&file.rum);
        let output = self.output(&file.output);
        let auth = self.auth(&file.auth, &roles, &output, rum.enabled, &listeners);
        let access = self.access(&file.access, &allowlists, &listeners, &roles);
        let agent_configs = self.agent_configs(&file.agent_configs);
        let tests = self.tests(&file.tests, &listeners, &auth, &access);

        for (name, span) in &roles.spans {
            if !self.used_roles.contains(*name) {
                self.push(
                    Diagnostic::new(Code::UnusedRole, format!("role `{name}` is never used"), span.clone(), "defined here")
                        .with_help("grant it to an identity, include it in another role, test it in a rule, or remove it"),
                );
            }
        }
        for name in file.allowlists.keys() {
            if !self.used_allowlists.contains(name.as_str()) {
                self.push(
                    Diagnostic::new(
                        Code::UnusedAllowlist,
                        format!("allowlist `{}` is never used", name.value),
                        name.span.clone(),
                        "defined here",
                    )
                    .with_help(format!(
                        "use it in a rule (`source in {}`) or remove it",
                        name.value
                    )),
                );
            }
        }
        for name in file.tls.keys() {
            if !self.used_tls.contains(name.as_str()) {
                self.push(
                    Diagnostic::new(
                        Code::UnusedTlsProfile,
                        format!("TLS profile `{}` is never used", name.value),
                        name.span.clone(),
                        "defined here",
                    )
                    .with_help(format!(
                        "name it in a listener (`tls = \"{}\"`) or remove it",
                        name.value
                    )),
                );
            }
        }

        Policy {
            gateway,
            listeners,
            auth,
            allowlists,
            roles: roles.resolved,
            access,
            rum,
            agent_configs,
            output,
            tests,
        }
    }

    fn gateway(&mut self, g: &ast::Gateway) -> GatewaySettings {
        let namespace = match &g.namespace {
            Some(ns) => {
                let ok = !ns.is_empty()
                    && ns.len() <= 100
                    && ns
                        .chars()
                        .all(|c| !c.is_ascii_uppercase() && !"\\/*?\"<>| ,#:-".contains(c));
                if !ok {
                    self.push(
                        Diagnostic::new(Code::ValueOutOfRange, format!("invalid data stream namespace `{}`", ns.value), ns.span.clone(), "not a valid namespace")
                            .with_help("a namespace is lower case, at most 100 characters, without `\\ / * ? \" < > | , # : -` or spaces"),
                    );
                }
                ns.value.clone()
            }
            None => "default".to_string(),
        };
        let trusted = self.address_ranges(&g.trusted_proxies);
        GatewaySettings {
            namespace,
            default_service_environment: g
                .default_service_environment
                .as_ref()
                .map(|e| e.value.clone()),
            capture_personal_data: g.capture_personal_data.as_ref().is_none_or(|b| b.value),
            trusted_proxies: IpSet::new(&trusted, &[]),
            response_headers: self.headers(&g.response_headers),
            agent_config_max_age: self
                .positive_duration(&g.agent_config_max_age, Duration::from_secs(30)),
            max_concurrent_decoders: match &g.max_concurrent_decoders {
                Some(n) if n.value == 0 => {
                    self.push(
                        Diagnostic::new(
                            Code::ValueOutOfRange,
                            "`max_concurrent_decoders` must be at least 1",
                            n.span.clone(),
                            "zero",
                        )
                        .with_help("leave it out to size it from memory as APM Server does"),
                    );
                    None
                }
                Some(n) => Some(n.value),
                None => None,
            },
        }
    }

    fn roles<'f>(&mut self, roles: &'f ast::Named<ast::Role>) -> RoleTable<'f> {
        let spans: BTreeMap<&str, Range<usize>> =
            roles.keys().map(|k| (k.as_str(), k.span.clone())).collect();
        let mut direct: BTreeMap<&str, PrivilegeSet> = BTreeMap::new();
        for (name, role) in roles {
            let mut set = PrivilegeSet::NONE;
            for p in &role.privileges {
                match grammar::parse_privilege(p) {
                    Ok(p) => set.insert(p),
                    Err(e) => self.value_error(p, Code::InvalidPrivilege, e),
                }
            }
            direct.insert(name.as_str(), set);
            for inc in &role.include {
                if !roles.contains_key(inc.as_str()) {
                    self.undefined(
                        "role",
                        inc,
                        inc.span.clone(),
                        spans.keys().copied().collect(),
                    );
                } else {
                    self.used_roles.insert(inc.value.clone());
                }
            }
        }
        // Resolve includes with cycle detection (depth-first, each cycle reported once).
        let mut resolved = BTreeMap::new();
        let mut reported: BTreeSet<String> = BTreeSet::new();
        let mut memo: HashMap<&str, PrivilegeSet> = HashMap::new();
        for name in roles.keys() {
            let mut stack = vec![name.as_str()];
            let set = self.resolve_role(
                name.as_str(),
                roles,
                &direct,
                &mut stack,
                &mut reported,
                &mut memo,
            );
            resolved.insert(name.value.clone(), set);
        }
        RoleTable { spans, resolved }
    }

    fn resolve_role<'f>(
        &mut self,
        name: &'f str,
        roles: &'f ast::Named<ast::Role>,
        direct: &BTreeMap<&str, PrivilegeSet>,
        stack: &mut Vec<&'f str>,
        reported: &mut BTreeSet<String>,
        memo: &mut HashMap<&'f str, PrivilegeSet>,
    ) -> PrivilegeSet {
        // Each role is resolved once: without the memo, chains of roles that include several
        // others take exponential time.
        if let Some(set) = memo.get(name) {
            return *set;
        }
        let mut set = direct.get(name).copied().unwrap_or_default();
        let Some(role) = roles.get(name) else {
            return set;
        };
        for inc in &role.include {
            if let Some(pos) = stack.iter().position(|s| *s == inc.as_str()) {
                let mut cycle: Vec<&str> = stack[pos..].to_vec();
                cycle.push(inc.as_str());
                let mut key: Vec<&str> = stack[pos..].to_vec();
                key.sort_unstable();
                if reported.insert(key.join(",")) {
                    self.push(
                        Diagnostic::new(
                            Code::RoleCycle,
                            format!("roles include each other: {}", cycle.join(" -> ")),
                            inc.span.clone(),
                            "closes the cycle",
                        )
                        .with_help(
                            "role inclusion must not loop; remove one of the `include` entries",
                        ),
                    );
                }
                continue;
            }
            if roles.contains_key(inc.as_str()) {
                stack.push(inc.as_str());
                let inner = self.resolve_role(inc.as_str(), roles, direct, stack, reported, memo);
                stack.pop();
                set.extend(inner);
            }
        }
        memo.insert(name, set);
        set
    }

    fn role_refs(
        &mut self,
        list: &[Sp<String>],
        roles: &RoleTable<'_>,
    ) -> (Vec<String>, PrivilegeSet) {
        let mut names = Vec::new();
        let mut set = PrivilegeSet::NONE;
        for r in list {
            match roles.resolved.get(r.as_str()) {
                Some(p) => {
                    set.extend(*p);
                    names.push(r.value.clone());
                    self.used_roles.insert(r.value.clone());
                }
                None => self.undefined(
                    "role",
                    r,
                    r.span.clone(),
                    roles.spans.keys().copied().collect(),
                ),
            }
        }
        (names, set)
    }

    fn allowlists(
        &mut self,
        lists: &ast::Named<ast::Allowlist>,
    ) -> BTreeMap<String, Arc<Allowlist>> {
        let mut out = BTreeMap::new();
        for (name, list) in lists {
            if list.cidrs.is_empty() {
                self.push(
                    Diagnostic::new(
                        Code::EmptyList,
                        format!("allowlist `{}` has no addresses", name.value),
                        name.span.clone(),
                        "empty",
                    )
                    .with_help("add CIDRs to `cidrs`, or remove the allowlist"),
                );
            }
            let include = self.address_ranges(&list.cidrs);
            let except = self.address_ranges(&list.except);
            out.insert(
                name.value.clone(),
                Arc::new(Allowlist {
                    name: name.value.clone(),
                    set: IpSet::new(&include, &except),
                }),
            );
        }
        out
    }

    fn tls_versions(&mut self, v: &Option<Sp<Vec<Sp<String>>>>) -> Vec<TlsVersion> {
        let Some(list) = v else {
            return vec![TlsVersion::Tls12, TlsVersion::Tls13];
        };
        if list.is_empty() {
            self.push(
                Diagnostic::new(
                    Code::EmptyList,
                    "`supported_protocols` is empty",
                    list.span.clone(),
                    "empty",
                )
                .with_help("list `TLSv1.2`, `TLSv1.3` or both, or remove the key for both"),
            );
        }
        let mut out = Vec::new();
        for item in list.iter() {
            match item.as_str() {
                "TLSv1.2" => out.push(TlsVersion::Tls12),
                "TLSv1.3" => out.push(TlsVersion::Tls13),
                "TLSv1.0" | "TLSv1.1" | "SSLv3" | "TLSv1" => self.push(
                    Diagnostic::new(
                        Code::TlsVersion,
                        format!("{} is not supported", item.value),
                        item.span.clone(),
                        "below TLS 1.2",
                    )
                    .with_help(
                        "apmgate speaks TLS 1.2 and TLS 1.3 only; older versions are broken",
                    ),
                ),
                other => {
                    let help = did_you_mean(other, ["TLSv1.2", "TLSv1.3"])
                        .unwrap_or_else(|| "write `TLSv1.2` or `TLSv1.3`".into());
                    self.push(
                        Diagnostic::new(
                            Code::TlsVersion,
                            format!("unknown TLS version `{other}`"),
                            item.span.clone(),
                            "not a TLS version",
                        )
                        .with_help(help),
                    );
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn tls_profiles(
        &mut self,
        profiles: &ast::Named<ast::TlsProfile>,
    ) -> BTreeMap<String, Arc<TlsProfile>> {
        let mut out = BTreeMap::new();
        for (name, p) in profiles {
            let versions = self.tls_versions(&p.supported_protocols);
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
                        self.push(
                            Diagnostic::new(
                                Code::UnknownCipherSuite,
                                format!("unknown or unsupported cipher suite `{}`", s.value),
                                s.span.clone(),
                                "not supported",
                            )
                            .with_help(help),
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
                    self.push(
                        Diagnostic::new(
                            Code::UnknownCurve,
                            format!("unknown or unsupported curve `{}`", c.value),
                            c.span.clone(),
                            "not supported",
                        )
                        .with_help(help),
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
                if versions == [TlsVersion::Tls13] {
                    if let Some(v) = &p.supported_protocols {
                        unsupported.push(("TLS 1.3 alone", v.span.clone()));
                    }
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
            }
            if let Some(c) = &p.client_auth {
                if c.value != ClientAuth::None && p.certificate_authorities.is_empty() {
                    self.push(
                        Diagnostic::new(
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
                        )
                        .with_help("add `certificate_authorities = [\"ca.pem\"]` to this profile"),
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
            let cas: Vec<PathBuf> = p
                .certificate_authorities
                .iter()
                .map(|c| self.path(c))
                .collect();
            for (path, c) in cas.iter().zip(&p.certificate_authorities) {
                self.facts
                    .files
                    .push((path.clone(), c.span.clone(), FileUse::Authorities));
            }
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

    fn limits(&mut self, l: &ast::Limits) -> Limits {
        let d = Limits::default();
        Limits {
            max_header_size: {
                let n = self.positive_size(&l.max_header_size, d.max_header_size);
                match &l.max_header_size {
                    Some(v) if n < MIN_HEADER_SIZE => {
                        self.push(
                            Diagnostic::new(Code::ValueOutOfRange, "`max_header_size` must be at least 8KiB", v.span.clone(), "too small")
                                .with_help("the HTTP/1.1 parser reads headers in buffers of at least 8KiB, so a smaller limit could not be enforced"),
                        );
                        d.max_header_size
                    }
                    _ => n,
                }
            },
            max_event_size: self.positive_size(&l.max_event_size, d.max_event_size),
            max_body_size: self.positive_size(&l.max_body_size, d.max_body_size),
            read_timeout: self.positive_duration(&l.read_timeout, d.read_timeout),
            write_timeout: self.positive_duration(&l.write_timeout, d.write_timeout),
            idle_timeout: self.positive_duration(&l.idle_timeout, d.idle_timeout),
            shutdown_timeout: self.duration(&l.shutdown_timeout, d.shutdown_timeout),
            tls_handshake_timeout: self
                .positive_duration(&l.tls_handshake_timeout, d.tls_handshake_timeout),
            max_connections: l
                .max_connections
                .as_ref()
                .map(|m| m.value)
                .filter(|m| *m > 0),
            quic_max_streams: match &l.quic_max_streams {
                Some(n) if n.value == 0 => {
                    self.push(Diagnostic::new(
                        Code::ValueOutOfRange,
                        "`quic_max_streams` must be at least 1",
                        n.span.clone(),
                        "zero",
                    ));
                    d.quic_max_streams
                }
                Some(n) => n.value,
                None => d.quic_max_streams,
            },
            quic_stream_receive_window: self
                .window(&l.quic_stream_receive_window, d.quic_stream_receive_window),
            quic_receive_window: self.window(&l.quic_receive_window, d.quic_receive_window),
        }
    }

    /// A QUIC flow-control window: a size from 1 KiB to 4 GiB - 1.
    fn window(&mut self, v: &Option<Sp<SizeValue>>, default: u32) -> u32 {
        let n = self.positive_size(v, u64::from(default));
        match (u32::try_from(n), v) {
            (Ok(w), _) if w >= 1024 => w,
            (_, Some(v)) => {
                self.push(Diagnostic::new(
                    Code::ValueOutOfRange,
                    "a QUIC window must be between 1KiB and 4GiB",
                    v.span.clone(),
                    "out of range",
                ));
                default
            }
            _ => default,
        }
    }

    fn listeners(
        &mut self,
        listeners: &[ast::Listener],
        tls: &BTreeMap<String, Arc<TlsProfile>>,
    ) -> Vec<Arc<Listener>> {
        self.check_duplicates("listener", listeners.iter().map(|l| &l.name));
        if listeners.is_empty() && !self.pruned {
            self.push(
                Diagnostic::new(
                    Code::NoListeners,
                    "the policy declares no listener",
                    0..0,
                    "",
                )
                .with_help("add one:\n[[listener]]\nname = \"default\"\nbind = \"127.0.0.1:8200\""),
            );
        }
        let mut out: Vec<Arc<Listener>> = Vec::new();
        let mut binds: Vec<(super::types::Bind, Range<usize>, &str, bool, bool)> = Vec::new();
        for l in listeners {
            let bind = match grammar::parse_bind(&l.bind) {
                Ok(b) => Some(b),
                Err(e) => {
                    self.value_error(&l.bind, Code::InvalidBind, e);
                    None
                }
            };
            let profile = match &l.tls {
                Some(name) => match tls.get(name.as_str()) {
                    Some(p) => {
                        self.used_tls.insert(name.value.clone());
                        Some(p.clone())
                    }
                    None => {
                        self.undefined(
                            "TLS profile",
                            name,
                            name.span.clone(),
                            tls.keys().map(String::as_str).collect(),
                        );
                        None
                    }
                },
                None => None,
            };
            let has_tls = l.tls.is_some();
            let protocols: Vec<Protocol> = match &l.protocols {
                Some(list) => {
                    if list.is_empty() {
                        self.push(
                            Diagnostic::new(
                                Code::EmptyList,
                                "`protocols` is empty",
                                list.span.clone(),
                                "empty",
                            )
                            .with_help("list at least one of `http1`, `http2`, `h2c`, `http3`"),
                        );
                    }
                    let mut ps = Vec::new();
                    for p in list.iter() {
                        match p.value {
                            Protocol::Http2 if !has_tls => self.push(
                                Diagnostic::new(Code::ProtocolTlsMismatch, "`http2` needs TLS on this listener", p.span.clone(), "HTTP/2 is negotiated by TLS ALPN")
                                    .with_help("add `tls = \"PROFILE\"` to the listener, or use `h2c` for plaintext HTTP/2 by prior knowledge"),
                            ),
                            Protocol::H2c if has_tls => self.push(
                                Diagnostic::new(Code::ProtocolTlsMismatch, "`h2c` is plaintext HTTP/2 but this listener has TLS", p.span.clone(), "plaintext only")
                                    .with_help("with TLS, HTTP/2 is `http2` (chosen by ALPN)"),
                            ),
                            Protocol::Http3 if !has_tls => self.push(
                                Diagnostic::new(Code::Http3WithoutTls, "`http3` needs TLS", p.span.clone(), "QUIC is always encrypted")
                                    .with_help("add `tls = \"PROFILE\"` to the listener (TLS 1.3, rustls backend)"),
                            ),
                            Protocol::Http2 if profile.as_ref().is_some_and(|p| p.backend == TlsBackend::NativeTls) => self.push(
                                Diagnostic::new(Code::NativeTlsUnsupported, "`http2` is not supported by the native-tls backend", p.span.clone(), "needs ALPN")
                                    .with_help("native-tls cannot negotiate ALPN on the server side: serve `http1` only, or use the rustls backend"),
                            ),
                            Protocol::Http3 => {
                                if let Some(prof) = &profile {
                                    if prof.backend == TlsBackend::NativeTls {
                                        self.push(
                                            Diagnostic::new(Code::Http3NativeTls, "`http3` cannot use the native-tls backend", p.span.clone(), "QUIC needs rustls")
                                                .with_help(format!("set `backend = \"rustls\"` in `[tls.{}]`, or serve HTTP/3 from another listener", prof.name)),
                                        );
                                    }
                                    if !prof.versions.contains(&TlsVersion::Tls13) {
                                        self.push(
                                            Diagnostic::new(Code::TlsVersion, "`http3` needs TLS 1.3", p.span.clone(), "QUIC runs on TLS 1.3")
                                                .with_help(format!("add `TLSv1.3` to `supported_protocols` of `[tls.{}]`", prof.name)),
                                        );
                                    }
                                }
                            }
                            _ => {}
                        }
                        if !ps.contains(&p.value) {
                            ps.push(p.value);
                        }
                    }
                    ps
                }
                None if profile
                    .as_ref()
                    .is_some_and(|p| p.backend == TlsBackend::NativeTls) =>
                {
                    vec![Protocol::Http1]
                }
                None if has_tls => vec![Protocol::Http1, Protocol::Http2],
                None => vec![Protocol::Http1],
            };
            let routes = match &l.routes {
                Some(rs) => {
                    if rs.is_empty() {
                        self.push(Diagnostic::new(Code::EmptyList, "`routes` is empty", rs.span.clone(), "serves nothing")
                            .with_help("list the route groups to serve, or remove the key to serve every APM route"));
                    }
                    let mut v: Vec<RouteName> = rs.iter().map(|r| r.value).collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                }
                None => DEFAULT_ROUTES.to_vec(),
            };
            let limits = self.limits(&l.limits);
            if let Some(bind) = bind {
                let tcp = protocols.iter().any(|p| *p != Protocol::Http3);
                let udp = protocols.contains(&Protocol::Http3);
                binds.push((bind.clone(), l.bind.span.clone(), l.name.as_str(), tcp, udp));
                self.bind_spans
                    .entry(l.name.value.clone())
                    .or_insert_with(|| l.bind.span.clone());
                out.push(Arc::new(Listener {
                    name: l.name.value.clone(),
                    bind,
                    protocols,
                    tls: profile,
                    routes,
                    limits,
                }));
            }
        }
        for i in 0..binds.len() {
            for j in 0..i {
                let (a, a_span, a_name, a_tcp, a_udp) = &binds[j];
                let (b, b_span, b_name, b_tcp, b_udp) = &binds[i];
                let shares_transport = (*a_tcp && *b_tcp) || (*a_udp && *b_udp);
                if shares_transport && binds_overlap(a, b) {
                    self.push(
                        Diagnostic::new(
                            Code::ListenerConflict,
                            format!("listener `{b_name}` binds `{b}`, which overlaps `{a}` of listener `{a_name}`"),
                            b_span.clone(),
                            "overlapping address",
                        )
                        .with_label(a_span.clone(), "already bound here")
                        .with_help("give each listener its own port, or merge them into one listener"),
                    );
                }
            }
        }
        out
    }

    fn rum(&mut self, r: &ast::Rum) -> RumSettings {
        let enabled = r.enabled.as_ref().is_some_and(|e| e.value);
        let allow_origins = match &r.allow_origins {
            Some(list) => list.iter().filter_map(|o| self.glob(o)).collect(),
            None => vec![grammar::parse_glob("*").expect("`*` is a valid glob")],
        };
        if enabled {
            let open: Option<Range<usize>> = match &r.allow_origins {
                None => r.enabled.as_ref().map(|e| e.span.clone()),
                Some(list) => list
                    .iter()
                    .find(|o| o.as_str() == "*")
                    .map(|o| o.span.clone()),
            };
            if let Some(span) = open {
                self.push(
                    Diagnostic::new(
                        Code::RumOpenOrigin,
                        "RUM accepts events from any origin",
                        span,
                        "any web page may send events",
                    )
                    .with_help("list your sites: `allow_origins = [\"https://*.example.com\"]`"),
                );
            }
        }
        let mut allow_headers = Vec::new();
        for h in &r.allow_headers {
            let empty = Sp::new(String::new(), h.span.clone());
            if let Some((name, _)) = self.header(h, &empty) {
                allow_headers.push(name);
            }
        }
        RumSettings {
            enabled,
            allow_origins,
            allow_headers,
            response_headers: self.headers(&r.response_headers),
            library_pattern: self.regex(&r.library_pattern, "node_modules|bower_components|~"),
            exclude_from_grouping: self.regex(&r.exclude_from_grouping, "^/webpack"),
        }
    }

    fn output(&mut self, o: &ast::Output) -> OutputSettings {
        if let (Some(_), Some(es)) = (&o.file, &o.elasticsearch) {
            self.push(
                Diagnostic::new(
                    Code::MultipleOutputs,
                    "both a file and an Elasticsearch output are declared",
                    es.hosts.span.clone(),
                    "second output",
                )
                .with_help("declare one output: `[output.elasticsearch]` or `[output.file]`"),
            );
        }
        if let Some(discard) = &o.discard {
            if o.file.is_some() || o.elasticsearch.is_some() {
                self.push(
                    Diagnostic::new(
                        Code::MultipleOutputs,
                        "the discard output is declared beside another output",
                        discard.span.clone(),
                        "second output",
                    )
                    .with_help("declare one output: `[output.discard]` drops every event"),
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

    fn es_output(&mut self, es: &ast::EsOutput) -> EsOutputSettings {
        if es.hosts.is_empty() {
            self.push(
                Diagnostic::new(
                    Code::EmptyList,
                    "`hosts` is empty",
                    es.hosts.span.clone(),
                    "no Elasticsearch host",
                )
                .with_help("list at least one host, e.g. `hosts = [\"https://localhost:9200\"]`"),
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
                self.push(
                    Diagnostic::new(
                        Code::InvalidUrl,
                        "an Elasticsearch host URL carries credentials",
                        h.span.clone(),
                        "credentials in the URL (hidden)",
                    )
                    .with_help("write the host alone and authenticate with `api_key = \"env:NAME\"` or `username` and `password = \"env:NAME\"`"),
                );
                continue;
            }
            match normalize_host(h) {
                Ok(u) => hosts.push(u),
                Err(msg) => self.push(
                    Diagnostic::new(
                        Code::InvalidUrl,
                        format!("invalid Elasticsearch host `{}`: {msg}", h.value),
                        h.span.clone(),
                        msg,
                    )
                    .with_help(
                        "write `https://host:9200` or `host:9200` (http, port 9200 by default)",
                    ),
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
                self.push(
                    Diagnostic::new(
                        Code::MissingKey,
                        "`username` is set without `password`",
                        u.span.clone(),
                        "needs a password",
                    )
                    .with_help("add `password = \"env:ES_PASSWORD\"`"),
                );
                EsCredentials::None
            }
            (None, None, Some(p)) => {
                self.push(
                    Diagnostic::new(
                        Code::MissingKey,
                        "`password` is set without `username`",
                        p.span.clone(),
                        "needs a user",
                    )
                    .with_help("add `username = \"...\"`"),
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
                c.push(Diagnostic::new(
                    Code::ValueOutOfRange,
                    format!("`{name}` must be at least 1"),
                    n.span.clone(),
                    "zero",
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
                self.push(
                    Diagnostic::new(Code::ValueOutOfRange, "`buffer_bytes` is smaller than `flush_bytes`", b.span.clone(), "smaller than one bulk request")
                        .with_help("the buffer must hold at least one bulk request; make it several times `flush_bytes`"),
                );
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

    fn client_tls(&mut self, t: Option<&ast::ClientTls>) -> ClientTlsSettings {
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
                    self.push(
                        Diagnostic::new(
                            Code::ValueOutOfRange,
                            "`ca_trusted_fingerprint` is not a SHA-256 fingerprint",
                            f.span.clone(),
                            "expected 64 hex digits",
                        )
                        .with_help(
                            "get it with `openssl x509 -in ca.crt -noout -fingerprint -sha256`",
                        ),
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
        let cas: Vec<PathBuf> = t
            .certificate_authorities
            .iter()
            .map(|c| self.path(c))
            .collect();
        for (p, c) in cas.iter().zip(&t.certificate_authorities) {
            self.facts
                .files
                .push((p.clone(), c.span.clone(), FileUse::Authorities));
        }
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

    fn auth(
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
                Ok(h) => self.push(
                    Diagnostic::new(Code::InvalidHash, format!("unsupported hash algorithm `{}`", h.algorithm), k.hash.span.clone(), "not Argon2")
                        .with_help("API key hashes are Argon2id PHC strings; `apmgate keys new` prints one"),
                ),
                Err(e) => self.push(
                    Diagnostic::new(Code::InvalidHash, format!("`hash` is not a PHC hash string: {e}"), k.hash.span.clone(), "not a hash")
                        .with_help("paste the `hash` that `apmgate keys new` printed (it starts with `$argon2id$`); never the key itself"),
                ),
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
                        self.push(
                            Diagnostic::new(
                                Code::ApiKeyExpired,
                                format!("API key `{}` has expired", name.value),
                                e.span.clone(),
                                "in the past",
                            )
                            .with_help(
                                "create a new key with `apmgate keys new`, or remove this one",
                            ),
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
                    self.push(
                        Diagnostic::new(Code::EsApiKeysWithoutOutput, "API keys verified by Elasticsearch need an Elasticsearch output", span, "no cluster to ask")
                            .with_help("add `[output.elasticsearch]`, or declare the keys in the policy with `[auth.api_key.NAME]`"),
                    );
                }
                out.elasticsearch_api_keys = Some(EsApiKeySettings {
                    cache_size: es.cache_size.as_ref().map_or(10_000, |c| c.value.max(1)),
                    cache_ttl: self.positive_duration(&es.cache_ttl, Duration::from_secs(60)),
                });
            }
        }
        for (name, c) in &a.client_cert {
            if c.subject.is_none() && c.san.is_none() {
                self.push(
                    Diagnostic::new(Code::IdentityWithoutPattern, format!("client-certificate identity `{}` matches nothing", name.value), name.span.clone(), "no `subject` or `san`")
                        .with_help("add `subject = \"CN=*.agents.example.com\"` or `san = \"*.agents.example.com\"`"),
                );
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
                self.push(
                    Diagnostic::new(Code::ClientAuthWithoutCa, "client-certificate identities are declared but no listener asks for client certificates", name.span.clone(), "never presented")
                        .with_help("set `client_auth` and `certificate_authorities` in the TLS profile of a listener"),
                );
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
                            Diagnostic::new(
                                Code::ValueOutOfRange,
                                format!("`{name}` must be at least 1"),
                                n.span.clone(),
                                "zero",
                            )
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
                self.push(
                    Diagnostic::new(
                        Code::TokenOverPlaintext,
                        format!("listener `{}` accepts credentials over plaintext on `{}`", l.name, l.bind),
                        span,
                        "no TLS",
                    )
                    .with_help("anyone on the network path can read secret tokens and API keys: add a TLS profile, or bind to loopback behind a TLS proxy"),
                );
            }
        }
        out
    }

    fn find_header(&self, header: &str) -> Range<usize> {
        self.src.find(header).map_or(0..0, |i| i..i + header.len())
    }

    fn access(
        &mut self,
        a: &ast::Access,
        allowlists: &BTreeMap<String, Arc<Allowlist>>,
        listeners: &[Arc<Listener>],
        roles: &RoleTable<'_>,
    ) -> AccessRules {
        self.check_duplicates("rule", a.rule.iter().map(|r| &r.name));
        let mut rules = Vec::new();
        let mut shadows = ShadowIndex::default();
        let mut names: Vec<(String, Range<usize>)> = Vec::new();
        for r in &a.rule {
            let raw = match grammar::parse_rule_expr(&r.when) {
                Ok(raw) => raw,
                Err(e) => {
                    self.value_error(&r.when, Code::InvalidExpression, e);
                    continue;
                }
            };
            let text = self.text(&r.when);
            let Some(expr) = self.resolve_expr(&raw, &text, allowlists, listeners, roles) else {
                continue;
            };
            if let Some(dnf) = expr.dnf(64) {
                let dnf = shadows.intern(&dnf);
                if let Some(earlier) = shadows.shadowing(&dnf) {
                    let (name, span) = &names[earlier];
                    self.push(
                        Diagnostic::new(Code::ShadowedRule, format!("rule `{}` can never match", r.name.value), r.name.span.clone(), "shadowed")
                            .with_label(span.clone(), format!("rule `{name}` matches the requests this one would"))
                            .with_help("rules are tried in order and the first match decides: move this rule above the other, or narrow the earlier one"),
                    );
                }
                shadows.add(dnf, names.len());
            }
            names.push((r.name.value.clone(), r.name.span.clone()));
            rules.push(AccessRule {
                name: r.name.value.as_str().into(),
                when: expr,
                effect: r.effect.value,
            });
        }
        AccessRules {
            default: a.default.as_ref().map_or(Effect::Allow, |d| d.value),
            rules,
        }
    }

    fn resolve_expr(
        &mut self,
        raw: &RawExpr,
        text: &ValueText,
        allowlists: &BTreeMap<String, Arc<Allowlist>>,
        listeners: &[Arc<Listener>],
        roles: &RoleTable<'_>,
    ) -> Option<Expr> {
        Some(match raw {
            RawExpr::Bool(b) => Expr::Const(*b),
            RawExpr::Not(e) => Expr::Not(Box::new(
                self.resolve_expr(e, text, allowlists, listeners, roles)?,
            )),
            RawExpr::And(es) | RawExpr::Or(es) => {
                let mut out = Vec::new();
                let mut ok = true;
                for e in es {
                    match self.resolve_expr(e, text, allowlists, listeners, roles) {
                        Some(e) => out.push(e),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                if matches!(raw, RawExpr::And(_)) {
                    Expr::And(out)
                } else {
                    Expr::Or(out)
                }
            }
            RawExpr::Condition(c) => {
                Expr::Cond(self.resolve_condition(c, text, allowlists, listeners, roles)?)
            }
        })
    }

    fn resolve_condition(
        &mut self,
        c: &RawCondition,
        text: &ValueText,
        allowlists: &BTreeMap<String, Arc<Allowlist>>,
        listeners: &[Arc<Listener>],
        roles: &RoleTable<'_>,
    ) -> Option<Condition> {
        let (fname, fspan) = &c.field;
        let Some(field) = Field::ALL.iter().find(|(n, _)| n == fname).map(|(_, f)| *f) else {
            let help =
                did_you_mean(fname, Field::ALL.iter().map(|(n, _)| *n)).unwrap_or_else(|| {
                    format!(
                        "fields: {}",
                        Field::ALL
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            self.push(
                Diagnostic::new(
                    Code::UnknownRuleField,
                    format!("unknown field `{fname}` in rule expression"),
                    text.span(fspan.clone()),
                    "unknown field",
                )
                .with_help(help),
            );
            return None;
        };
        let op_ok = match (field, c.op) {
            (_, RawOp::Eq | RawOp::Ne | RawOp::In) => true,
            (Field::Source | Field::Route | Field::Identity, RawOp::Matches) => false,
            (_, RawOp::Matches) => true,
        };
        if !op_ok || (c.op == RawOp::In && !c.list && field != Field::Source) {
            let help = match field {
                Field::Source => "test addresses with `source in ALLOWLIST`, `source in [\"10.0.0.0/8\"]` or `source == \"10.0.0.1\"`".to_string(),
                _ if c.op == RawOp::In => format!("`in` takes a list here: `{} in [a, b]`", field.name()),
                _ => format!("`{}` takes `==`, `!=` or `in [..]`", field.name()),
            };
            self.push(
                Diagnostic::new(
                    Code::OperatorMismatch,
                    format!("this operator cannot be used with `{}`", field.name()),
                    text.span(c.op_span.clone()),
                    "not valid here",
                )
                .with_help(help),
            );
            return None;
        }
        let negate = c.op == RawOp::Ne;
        let values = &c.values;
        let bad_value =
            |this: &mut Self, v: &(String, Range<usize>), what: &str, known: Vec<&str>| {
                if let (Some(meant), "role") = (closest(&v.0, known.iter().copied()), what) {
                    this.used_roles.insert(meant.to_string());
                }
                let help = did_you_mean(&v.0, known.iter().copied())
                    .unwrap_or_else(|| format!("{what}s: {}", known.join(", ")));
                this.push(
                    Diagnostic::new(
                        Code::InvalidRuleValue,
                        format!("`{}` is not {} {what}", v.0, article(what)),
                        text.span(v.1.clone()),
                        format!("not {} {what}", article(what)),
                    )
                    .with_help(help),
                );
            };
        let test = match (field, c.op) {
            (_, RawOp::Matches) => {
                let v = values.first()?;
                match grammar::parse_glob(&v.0) {
                    Ok(g) => Test::Glob(g),
                    Err(e) => {
                        let shifted = ValueError {
                            span: operand_span(v, e.span.clone()),
                            ..e
                        };
                        self.push(text.diagnostic(Code::InvalidGlob, shifted));
                        return None;
                    }
                }
            }
            (Field::Source, RawOp::In) if !c.list => {
                let v = values.first()?;
                match allowlists.get(&v.0) {
                    Some(list) => {
                        self.used_allowlists.insert(v.0.clone());
                        Test::Allowlist(list.clone())
                    }
                    None => {
                        let name = Sp::new(v.0.clone(), 0..0);
                        let known: Vec<&str> = allowlists.keys().map(String::as_str).collect();
                        self.undefined("allowlist", &name, text.span(v.1.clone()), known);
                        return None;
                    }
                }
            }
            (Field::Source, RawOp::In) => {
                let mut ranges = Vec::new();
                for v in values {
                    match grammar::parse_address_range(&v.0) {
                        Ok(r) => ranges.push(r),
                        Err(e) => {
                            let shifted = ValueError {
                                span: operand_span(v, e.span.clone()),
                                ..e.clone()
                            };
                            let code = if e.message.contains("host bits") {
                                Code::CidrHostBits
                            } else {
                                Code::InvalidAddress
                            };
                            self.push(text.diagnostic(code, shifted));
                            return None;
                        }
                    }
                }
                Test::Addresses(IpSet::new(&ranges, &[]))
            }
            (Field::Source, _) => {
                let v = values.first()?;
                if v.0.parse::<IpAddr>().is_err() {
                    self.push(
                        Diagnostic::new(
                            Code::InvalidAddress,
                            format!("`{}` is not an IP address", v.0),
                            text.span(v.1.clone()),
                            "not an address",
                        )
                        .with_help(
                            "compare `source` with one address, or use `source in ALLOWLIST`",
                        ),
                    );
                    return None;
                }
                match v.0.parse::<IpAddr>() {
                    Ok(ip) => Test::Addresses(IpSet::new(&[AddressRange::single(ip)], &[])),
                    Err(_) => return None,
                }
            }
            (Field::Route, _) => {
                let mut routes = Vec::new();
                for v in values {
                    match ROUTE_NAMES.iter().find(|(n, _)| *n == v.0) {
                        Some((_, r)) => routes.push(*r),
                        None => {
                            bad_value(
                                self,
                                v,
                                "route",
                                ROUTE_NAMES.iter().map(|(n, _)| *n).collect(),
                            );
                            return None;
                        }
                    }
                }
                Test::Routes(routes)
            }
            (Field::Identity, _) => {
                let mut kinds = Vec::new();
                for v in values {
                    match IdentityKind::ALL.iter().find(|(n, _)| *n == v.0) {
                        Some((_, k)) => kinds.push(*k),
                        None => {
                            bad_value(
                                self,
                                v,
                                "identity kind",
                                IdentityKind::ALL.iter().map(|(n, _)| *n).collect(),
                            );
                            return None;
                        }
                    }
                }
                Test::Identities(kinds)
            }
            (Field::Listener, _) => {
                for v in values {
                    if !listeners.iter().any(|l| l.name == v.0) {
                        bad_value(
                            self,
                            v,
                            "listener",
                            listeners.iter().map(|l| l.name.as_str()).collect(),
                        );
                        return None;
                    }
                }
                Test::OneOf(values.iter().map(|v| v.0.clone()).collect())
            }
            (Field::Role, _) => {
                for v in values {
                    if roles.resolved.contains_key(&v.0) {
                        self.used_roles.insert(v.0.clone());
                    } else {
                        bad_value(self, v, "role", roles.spans.keys().copied().collect());
                        return None;
                    }
                }
                Test::OneOf(values.iter().map(|v| v.0.clone()).collect())
            }
            (Field::Method, _) => {
                Test::OneOf(values.iter().map(|v| v.0.to_ascii_uppercase()).collect())
            }
            _ => Test::OneOf(values.iter().map(|v| v.0.clone()).collect()),
        };
        let mut sorted: Vec<&str> = values.iter().map(|v| v.0.as_str()).collect();
        sorted.sort_unstable();
        let canon = match c.op {
            RawOp::Eq => format!("{} == {}", field.name(), sorted.join("")),
            RawOp::Ne => format!("{} != {}", field.name(), sorted.join("")),
            RawOp::In if c.list => format!("{} in [{}]", field.name(), sorted.join(", ")),
            RawOp::In => format!("{} in {}", field.name(), sorted.join("")),
            RawOp::Matches => format!("{} matches \"{}\"", field.name(), sorted.join("")),
        };
        // `x == a` is the same test as `x in [a]`.
        let canon = match (c.op, values.len()) {
            (RawOp::In, 1) if c.list => format!("{} == {}", field.name(), sorted[0]),
            _ => canon,
        };
        Some(Condition {
            field,
            test,
            negate,
            text: canon,
        })
    }

    fn agent_configs(&mut self, entries: &[ast::AgentConfig]) -> Vec<AgentConfigEntry> {
        let mut seen: HashMap<(String, Option<String>), Range<usize>> = HashMap::new();
        let mut out = Vec::new();
        for e in entries {
            let key = (
                e.service.value.clone(),
                e.environment.as_ref().map(|v| v.value.clone()),
            );
            if let Some(first) = seen.get(&key) {
                self.push(
                    Diagnostic::new(
                        Code::DuplicateName,
                        format!(
                            "central configuration for service `{}`{} is declared twice",
                            key.0,
                            key.1
                                .as_ref()
                                .map(|e| format!(" in environment `{e}`"))
                                .unwrap_or_default()
                        ),
                        e.service.span.clone(),
                        "declared again here",
                    )
                    .with_label(first.clone(), "first declared here")
                    .with_help("merge the settings into one entry"),
                );
                continue;
            }
            seen.insert(key, e.service.span.clone());
            let settings: BTreeMap<String, String> = e
                .settings
                .iter()
                .map(|(k, v)| {
                    let s = match &v.value {
                        ast::SettingValue::Bool(b) => b.to_string(),
                        ast::SettingValue::Integer(i) => i.to_string(),
                        ast::SettingValue::Float(f) => f.to_string(),
                        ast::SettingValue::String(s) => s.clone(),
                    };
                    (k.value.clone(), s)
                })
                .collect();
            let etag = etag_of(&settings);
            out.push(AgentConfigEntry {
                service: e.service.value.clone(),
                environment: e.environment.as_ref().map(|v| v.value.clone()),
                agent_name: e.agent_name.as_ref().map(|v| v.value.clone()),
                settings,
                etag,
            });
        }
        out
    }

    fn tests(
        &mut self,
        tests: &[ast::PolicyTest],
        listeners: &[Arc<Listener>],
        auth: &AuthSettings,
        access: &AccessRules,
    ) -> Vec<PolicyTestCase> {
        self.check_duplicates("test", tests.iter().map(|t| &t.name));
        let mut out = Vec::new();
        for t in tests {
            let mut ok = true;
            if !listeners.iter().any(|l| l.name == t.listener.value) {
                self.undefined(
                    "listener",
                    &t.listener,
                    t.listener.span.clone(),
                    listeners.iter().map(|l| l.name.as_str()).collect(),
                );
                ok = false;
            }
            let from = match t.from.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.push(Diagnostic::new(
                        Code::InvalidAddress,
                        format!("`{}` is not an IP address", t.from.value),
                        t.from.span.clone(),
                        "not an address",
                    ));
                    None
                }
            };
            let identity = match &t.identity {
                None => TestIdentity::FromHeaders,
                Some(id) if id.as_str() == "anonymous" => TestIdentity::Anonymous,
                Some(id) => {
                    let parsed = id.split_once(':').and_then(|(kind, name)| {
                        let kind = match kind {
                            "secret_token" => IdentityKind::SecretToken,
                            "api_key" => IdentityKind::ApiKey,
                            "client_cert" => IdentityKind::ClientCert,
                            _ => return None,
                        };
                        let exists = match kind {
                            IdentityKind::SecretToken => {
                                auth.secret_tokens.iter().any(|s| s.name == name)
                            }
                            IdentityKind::ApiKey => auth.api_keys.iter().any(|s| s.name == name),
                            _ => auth.client_certs.iter().any(|s| s.name == name),
                        };
                        exists.then(|| TestIdentity::Named(kind, name.to_string()))
                    });
                    match parsed {
                        Some(p) => p,
                        None => {
                            self.push(
                                Diagnostic::new(Code::InvalidTestIdentity, format!("`{}` names no identity of this policy", id.value), id.span.clone(), "unknown identity")
                                    .with_help("write `anonymous`, or `secret_token:NAME`, `api_key:NAME` or `client_cert:NAME` with a NAME declared under `[auth]`"),
                            );
                            ok = false;
                            TestIdentity::Anonymous
                        }
                    }
                }
            };
            if let Some(rule) = &t.rule {
                if !access.rules.iter().any(|r| *r.name == *rule.value) {
                    self.undefined(
                        "rule",
                        rule,
                        rule.span.clone(),
                        access.rules.iter().map(|r| &*r.name).collect(),
                    );
                    ok = false;
                }
            }
            let mut headers = Vec::new();
            for (k, v) in &t.headers {
                if k.eq_ignore_ascii_case("authorization") {
                    self.facts.redactions.push(self.text(v).span(0..v.len()));
                }
                if let Some(h) = self.header(k, v) {
                    headers.push(h);
                }
            }
            if let (true, Some(from)) = (ok, from) {
                out.push(PolicyTestCase {
                    name: t.name.value.clone(),
                    span: t.name.span.clone(),
                    listener: t.listener.value.clone(),
                    method: t
                        .method
                        .as_ref()
                        .map_or_else(|| "POST".to_string(), |m| m.to_ascii_uppercase()),
                    path: t.path.value.clone(),
                    from,
                    headers,
                    identity,
                    client_cert_subject: t.client_cert_subject.as_ref().map(|s| s.value.clone()),
                    expect: match t.expect.value {
                        ast::Expect::Allow => Effect::Allow,
                        ast::Expect::Deny => Effect::Deny,
                    },
                    status: t.status.as_ref().map(|s| s.value),
                    rule: t.rule.as_ref().map(|r| r.value.clone()),
                });
            }
        }
        out
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The span (in the expression) of a range inside an operand's value. Offsets map exactly when
/// the operand is written verbatim (a bare word, or a quoted string without escapes); after an
/// escape they no longer do, and the whole operand is the honest answer.
fn operand_span(operand: &(String, Range<usize>), inner: Range<usize>) -> Range<usize> {
    let (value, span) = operand;
    if span.len() == value.len() {
        span.start + inner.start..span.start + inner.end
    } else if span.len() == value.len() + 2 {
        span.start + 1 + inner.start..span.start + 1 + inner.end
    } else {
        span.clone()
    }
}

fn short_token(span: Range<usize>, len: usize) -> Diagnostic {
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

fn default_allow_agent() -> Vec<String> {
    vec!["rum-js".to_string(), "js-base".to_string()]
}

/// Finds an earlier rule that makes a later one unreachable.
///
/// Conditions are in disjunctive normal form over interned condition texts. A later rule can
/// never match when each of its conjunctions contains every condition of some earlier
/// conjunction: whatever it would match, an earlier rule matched first. Earlier conjunctions are
/// indexed by their smallest condition, so checking a rule costs about its own size, not the
/// number of rules before it.
#[derive(Default)]
struct ShadowIndex {
    atoms: HashMap<String, u32>,
    conjunctions: Vec<(Vec<u32>, usize)>,
    by_first: HashMap<u32, Vec<usize>>,
    always: Option<usize>,
}

impl ShadowIndex {
    fn intern(&mut self, dnf: &[Vec<String>]) -> Vec<Vec<u32>> {
        dnf.iter()
            .map(|conj| {
                let mut ids: Vec<u32> = conj
                    .iter()
                    .map(|atom| {
                        let next = self.atoms.len() as u32;
                        *self.atoms.entry(atom.clone()).or_insert(next)
                    })
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            })
            .collect()
    }

    /// The earlier rule covering the first conjunction, when every conjunction is covered.
    fn shadowing(&self, later: &[Vec<u32>]) -> Option<usize> {
        // A condition with no conjunction never matches: nothing to shadow.
        let mut first = None;
        for conj in later {
            let covering = self.always.or_else(|| {
                conj.iter().find_map(|atom| {
                    self.by_first.get(atom)?.iter().find_map(|&i| {
                        let (earlier, rule) = &self.conjunctions[i];
                        earlier
                            .iter()
                            .all(|a| conj.binary_search(a).is_ok())
                            .then_some(*rule)
                    })
                })
            })?;
            first.get_or_insert(covering);
        }
        first
    }

    fn add(&mut self, dnf: Vec<Vec<u32>>, rule: usize) {
        for conj in dnf {
            match conj.first() {
                None => {
                    self.always.get_or_insert(rule);
                }
                Some(&head) => {
                    self.by_first
                        .entry(head)
                        .or_default()
                        .push(self.conjunctions.len());
                    self.conjunctions.push((conj, rule));
                }
            }
        }
    }
}

fn binds_overlap(a: &super::types::Bind, b: &super::types::Bind) -> bool {
    use super::types::Bind;
    match (a, b) {
        (Bind::Unix(x), Bind::Unix(y)) => x == y,
        (Bind::Ip(x), Bind::Ip(y)) => {
            // Port 0 asks the system for a free port: two of them never collide.
            if x.port() != y.port() || x.port() == 0 {
                return false;
            }
            let (xi, yi) = (x.ip(), y.ip());
            // `[::]` is dual-stack on Linux by default and takes the IPv4 port too.
            xi == yi
                || (xi.is_unspecified() && (xi.is_ipv6() || yi.is_ipv4()))
                || (yi.is_unspecified() && (yi.is_ipv6() || xi.is_ipv4()))
        }
        (Bind::Host(h, p), Bind::Host(g, q)) => h == g && p == q,
        (Bind::Host(_, p), Bind::Ip(x)) | (Bind::Ip(x), Bind::Host(_, p)) => {
            *p == x.port() && x.ip().is_unspecified()
        }
        _ => false,
    }
}

fn normalize_host(h: &str) -> Result<String, &'static str> {
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

/// Entity tag of a settings map: stable across runs and key order.
pub fn etag_of(settings: &BTreeMap<String, String>) -> String {
    // FNV-1a over the canonical JSON: stable, dependency-free, and only needs to change when
    // the settings do.
    let canonical = serde_json::to_string(settings).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn datetime_to_system_time(dt: &toml::value::Datetime) -> Option<SystemTime> {
    let date = dt.date?;
    let clock = dt.time.unwrap_or(toml::value::Time {
        hour: 0,
        minute: 0,
        second: None,
        nanosecond: None,
    });
    let offset_minutes: i64 = match dt.offset {
        Some(toml::value::Offset::Z) => 0,
        Some(toml::value::Offset::Custom { minutes }) => i64::from(minutes),
        None if dt.time.is_none() => 0,
        None => return None,
    };
    let month = time::Month::try_from(date.month).ok()?;
    let day = time::Date::from_calendar_date(i32::from(date.year), month, date.day).ok()?;
    let secs = day.midnight().assume_utc().unix_timestamp()
        + i64::from(clock.hour) * 3600
        + i64::from(clock.minute) * 60
        + i64::from(clock.second.unwrap_or(0))
        - offset_minutes * 60;
    let secs = u64::try_from(secs).ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(secs)
            + Duration::from_nanos(u64::from(clock.nanosecond.unwrap_or(0))),
    )
}
