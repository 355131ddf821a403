//! Semantic compilation: from the policy as written ([`super::ast`]) to the typed [`Policy`].
//!
//! Every check runs and every finding is collected; nothing stops early. Names are resolved
//! (with `did you mean` help), strings are parsed by the grammar at their exact spans, and the
//! result holds no string that still needs parsing.
//!
//! One file per section of the policy: `gateway` (`[gateway]`, `[rum]`), `roles` (roles and
//! allowlists), `tls` (server TLS profiles), `listeners` (listeners and their limits),
//! `auth`, `access` (rules, with the `shadow` index behind W101), `output`,
//! `agent_config`, `sourcemap` (`[rum.source_mapping]`) and `policy_tests` (`[[test]]`);
//! `context` holds the helpers they share.
//! This module holds the compiler's state and the order in which sections are compiled. Nothing
//! here touches the disk or the environment.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::PathBuf;

use super::ast;
use super::compiled::*;
use super::diagnostics::{Code, Diagnostic};
use super::types::{PrivilegeSet, SecretRef};

mod access;
mod agent_config;
mod aggregation;
mod auth;
mod context;
mod gateway;
mod listeners;
mod output;
mod policy_tests;
mod roles;
mod shadow;
mod sourcemap;
mod spool;
mod tls;

pub use agent_config::etag_of;
pub(crate) use context::short_token_diagnostic;
pub use tls::{CIPHER_SUITES, CURVES};

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
    /// The spool's directory: must exist and be writable, or be creatable.
    SpoolDirectory,
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
    pub(crate) fn new(src: &'a str, base_dir: PathBuf) -> Self {
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

    pub(crate) fn compile(&mut self, file: &ast::PolicyFile) -> Policy {
        let roles = self.roles(&file.roles);
        let allowlists = self.allowlists(&file.allowlists);
        let tls = self.tls_profiles(&file.tls);
        let gateway = self.gateway(&file.gateway);
        let listeners = self.listeners(&file.listeners, &tls);
        let mut rum = self.rum(&file.rum);
        let output = self.output(&file.output);
        rum.source_mapping = self.source_mapping(&file.rum.source_mapping, rum.enabled, &output);
        let aggregation = self.aggregation(&file.aggregation);
        let spool = file.spool.as_ref().and_then(|s| self.spool(s, &output));
        let auth = self.auth(&file.auth, &roles, &output, rum.enabled, &listeners);
        let access = self.access(&file.access, &allowlists, &listeners, &roles);
        let agent_configs = self.agent_configs(&file.agent_configs);
        let agent_config_source = self.agent_config_source(&file.agent_config_source, &output);
        let tests = self.tests(&file.tests, &listeners, &auth, &access);

        for (name, span) in &roles.spans {
            if !self.used_roles.contains(*name) {
                self.report(
                    Code::UnusedRole,
                    format!("role `{name}` is never used"),
                    span.clone(),
                    "defined here",
                    "grant it to an identity, include it in another role, test it in a rule, or \
                     remove it",
                );
            }
        }
        for name in file.allowlists.keys() {
            if !self.used_allowlists.contains(name.as_str()) {
                self.report(
                    Code::UnusedAllowlist,
                    format!("allowlist `{}` is never used", name.value),
                    name.span.clone(),
                    "defined here",
                    format!("use it in a rule (`source in {}`) or remove it", name.value),
                );
            }
        }
        for name in file.tls.keys() {
            if !self.used_tls.contains(name.as_str()) {
                self.report(
                    Code::UnusedTlsProfile,
                    format!("TLS profile `{}` is never used", name.value),
                    name.span.clone(),
                    "defined here",
                    format!(
                        "name it in a listener (`tls = \"{}\"`) or remove it",
                        name.value
                    ),
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
            agent_config_source,
            output,
            aggregation,
            spool,
            tests,
        }
    }
}
