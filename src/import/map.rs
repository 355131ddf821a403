//! APM Server's settings, one by one, to the policy's sections: what carries over, what carries
//! with another meaning, and what cannot (each a coded diagnostic at its place in the YAML).

use std::ops::Range;

use crate::policy::diagnostics::{Code, Diagnostic};

use super::convert::{es_url, format_size, interpolate};
use super::draft::{Draft, EnvVar, inline_table, toml_list, toml_str};
use super::settings::{KNOWN, LEGACY, MAP_VALUES, NO_EQUIVALENT, SECRETS};
use super::yaml::{Kind, Node};

/// A setting as written: its dotted path (nested and dotted forms give the same path), the key
/// and the value.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) path: String,
    pub(crate) key: Range<usize>,
    pub(crate) value: Node,
}

/// Reads settings and fills the draft policy.
#[derive(Default)]
pub(crate) struct Mapper {
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Spans of literal secrets, masked in reports.
    pub(crate) masks: Vec<Range<usize>>,
    pub(crate) env: Vec<EnvVar>,
    pub(crate) draft: Draft,
}

/// Splits a tree into settings.
pub(crate) fn flatten(node: &Node, prefix: &str, out: &mut Vec<Leaf>, diags: &mut Vec<Diagnostic>) {
    let Kind::Map(entries) = &node.kind else {
        return;
    };
    for (k, v) in entries {
        let Kind::Scalar { text, .. } = &k.kind else {
            diags.push(Diagnostic::new(
                Code::ImportWrongType,
                "a key that is not a name",
                k.span.clone(),
                "APM Server's keys are names",
            ));
            continue;
        };
        let path = if prefix.is_empty() {
            text.clone()
        } else {
            format!("{prefix}.{text}")
        };
        if matches!(v.kind, Kind::Map(_))
            && !MAP_VALUES.contains(&path.as_str())
            && !KNOWN.contains(&path.as_str())
        {
            flatten(v, &path, out, diags);
        } else {
            out.push(Leaf {
                path,
                key: k.span.clone(),
                value: v.clone(),
            });
        }
    }
}

fn under(path: &str, root: &str) -> bool {
    path == root
        || (path.len() > root.len()
            && path.starts_with(root)
            && path.as_bytes()[root.len()] == b'.')
}

/// What the whole file says, gathered before the sections are written.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub(crate) secret_token: bool,
    pub(crate) es_api_keys: bool,
    pub(crate) anonymous: Option<bool>,
    pub(crate) anonymous_written: bool,
    pub(crate) rum: bool,
    pub(crate) origins: Option<Vec<String>>,
    pub(crate) tls: bool,
    pub(crate) es_output: bool,
}

impl Mapper {
    /// Maps every setting; returns what the whole file says.
    pub(crate) fn map(&mut self, leaves: &[Leaf]) -> Facts {
        let mut facts = Facts::default();
        let disabled = |root: &str| {
            leaves.iter().any(|l| {
                l.path == format!("{root}.enabled")
                    && matches!(&l.value.kind, Kind::Scalar { text, .. } if text == "false")
            })
        };
        let ssl_off = disabled("apm-server.ssl");
        let es_off = disabled("output.elasticsearch");
        let file_off = disabled("output.file");
        let es_present = leaves
            .iter()
            .any(|l| under(&l.path, "output.elasticsearch"));
        let file_present = leaves.iter().any(|l| under(&l.path, "output.file"));
        facts.es_output = es_present && !es_off;
        let file_output = file_present && !file_off;

        // Groups without an equivalent: one report per group, at its first key.
        let mut reported_groups: Vec<String> = Vec::new();
        let mut tls_cert = false;
        let mut ssl_on: Option<Leaf> = None;
        let mut tls_key = false;
        let mut api_key_leaf: Option<Leaf> = None;
        let mut limit_leaf: Option<Leaf> = None;
        let mut es_hosts: Option<(Leaf, Vec<String>)> = None;
        let mut agent_config_expiration: Option<(String, String)> = None;
        let mut protocol: Option<String> = None;
        let mut file_path: (Option<String>, Option<String>) = (None, None);

        let renamed: Vec<Leaf> = leaves
            .iter()
            .map(
                |leaf| match LEGACY.iter().find(|(old, _)| *old == leaf.path) {
                    Some((old, new)) => {
                        self.differs(
                            leaf,
                            format!("`{old}` is APM Server 7's name"),
                            &format!("carried as `{new}`"),
                        );
                        Leaf {
                            path: new.to_string(),
                            ..leaf.clone()
                        }
                    }
                    None => leaf.clone(),
                },
            )
            .collect();
        let leaves = &renamed[..];
        let mut seen: Vec<&str> = Vec::new();
        for leaf in leaves {
            if seen.contains(&leaf.path.as_str()) {
                self.differs(
                    leaf,
                    format!("`{}` is written twice", leaf.path),
                    "the policy carries this later value; remove the other from apm-server.yml",
                );
            } else {
                seen.push(&leaf.path);
            }
        }
        for leaf in leaves {
            let path = leaf.path.as_str();
            if let Some((root, why)) = NO_EQUIVALENT.iter().find(|(root, _)| under(path, root)) {
                if path == format!("{root}.enabled")
                    && matches!(&leaf.value.kind, Kind::Scalar { text, .. } if text == "false")
                {
                    continue; // off in both
                }
                if !reported_groups.iter().any(|g| g == root) {
                    reported_groups.push(root.to_string());
                    self.not_carried(leaf, why);
                }
                continue;
            }
            if under(path, "apm-server.aggregation") {
                self.aggregation(leaf, path);
                continue;
            }
            if under(path, "output")
                && !under(path, "output.elasticsearch")
                && !under(path, "output.file")
            {
                let name = path.split('.').nth(1).unwrap_or("").to_string();
                let root = format!("output.{name}");
                if disabled(&root) {
                    continue;
                }
                if !reported_groups.contains(&root) {
                    reported_groups.push(root.clone());
                    self.report(
                        Code::ImportOutputUnsupported,
                        format!("`{root}` is not an output apmgate has"),
                        leaf.key.clone(),
                        "not carried",
                        "apmgate writes to Elasticsearch, to a file of `_bulk` NDJSON, or discards: events no longer reach this output (without another output section, the policy writes to the file output)",
                    );
                }
                continue;
            }
            if (under(path, "apm-server.ssl") && ssl_off)
                || (under(path, "output.elasticsearch") && es_off)
                || (under(path, "output.file") && file_off)
            {
                continue;
            }
            if let Some((_, var)) = SECRETS.iter().find(|(p, _)| *p == path) {
                let Some(secret) = self.secret(leaf, var) else {
                    continue;
                };
                match path {
                    "apm-server.auth.secret_token" => {
                        facts.secret_token = true;
                        self.draft.set(
                            "auth.secret_token.apm-server",
                            "secret",
                            toml_str(&secret),
                            path,
                        );
                    }
                    "apm-server.ssl.key_passphrase" => {
                        self.draft
                            .set("tls.apm-server", "key_passphrase", toml_str(&secret), path)
                    }
                    "output.elasticsearch.password" => {
                        self.draft
                            .set("output.elasticsearch", "password", toml_str(&secret), path)
                    }
                    "output.elasticsearch.api_key" => {
                        self.draft
                            .set("output.elasticsearch", "api_key", toml_str(&secret), path)
                    }
                    _ => self.draft.set(
                        "output.elasticsearch.tls",
                        "key_passphrase",
                        toml_str(&secret),
                        path,
                    ),
                }
                continue;
            }
            match path {
                "apm-server.host" => {
                    if let Some(host) = self.string(leaf) {
                        let bind = self.bind(leaf, &host);
                        self.draft.set("listener", "bind", toml_str(&bind), path);
                    }
                }
                "apm-server.max_header_size" => {
                    if let Some(mut bytes) = self.size(leaf) {
                        if bytes < 8 * 1024 {
                            self.differs(
                                leaf,
                                format!("`{path}` is below apmgate's smallest header limit"),
                                "raised to 8KiB, the smallest header block apmgate accepts",
                            );
                            bytes = 8 * 1024;
                        }
                        self.draft.set(
                            "listener.limits",
                            "max_header_size",
                            toml_str(&format_size(bytes)),
                            path,
                        );
                    }
                }
                "apm-server.max_event_size" => {
                    if let Some(bytes) = self.size(leaf) {
                        self.draft.set(
                            "listener.limits",
                            "max_event_size",
                            toml_str(&format_size(bytes)),
                            path,
                        );
                    }
                }
                "apm-server.read_timeout"
                | "apm-server.write_timeout"
                | "apm-server.idle_timeout"
                | "apm-server.shutdown_timeout" => {
                    if let Some(d) = self.duration(leaf) {
                        let key = path.trim_start_matches("apm-server.");
                        if d == "0s" {
                            self.not_carried(
                                leaf,
                                "0 means no limit in APM Server; apmgate always bounds it, and the policy keeps apmgate's default (30s, idle 45s): write a long duration instead",
                            );
                            continue;
                        }
                        self.draft.set("listener.limits", key, toml_str(&d), path);
                    }
                }
                "apm-server.max_connections" => {
                    if let Some(n) = self.integer(leaf) {
                        self.draft
                            .set("listener.limits", "max_connections", n.to_string(), path);
                    }
                }
                "apm-server.max_concurrent_decoders" => {
                    if let Some(n) = self.integer(leaf) {
                        if n > 0 {
                            self.draft.set(
                                "gateway",
                                "max_concurrent_decoders",
                                n.to_string(),
                                path,
                            );
                        }
                    }
                }
                "apm-server.capture_personal_data" => {
                    if let Some(b) = self.boolean(leaf) {
                        self.draft
                            .set("gateway", "capture_personal_data", b.to_string(), path);
                    }
                }
                "apm-server.default_service_environment" => {
                    if let Some(s) = self.string(leaf) {
                        self.draft.set(
                            "gateway",
                            "default_service_environment",
                            toml_str(&s),
                            path,
                        );
                    }
                }
                "apm-server.data_streams.namespace" => {
                    if let Some(s) = self.string(leaf) {
                        self.draft.set("gateway", "namespace", toml_str(&s), path);
                    }
                }
                "apm-server.data_streams.enabled" => {
                    if self.boolean(leaf) == Some(false) {
                        self.not_carried(
                            leaf,
                            "apmgate always writes APM's data streams (traces-apm-<namespace>, ...), as APM Server 8 does",
                        );
                    }
                }
                "apm-server.data_streams.wait_for_integration" => {
                    if self.boolean(leaf) == Some(true) {
                        self.differs(
                            leaf,
                            "apmgate does not wait for Elasticsearch's APM integration".to_string(),
                            "install the APM integration before sending events: without its templates, data streams are created with dynamic mappings",
                        );
                    }
                }
                "apm-server.response_headers" => {
                    if let Some(h) = self.headers(leaf) {
                        self.draft
                            .set("gateway", "response_headers", inline_table(&h), path);
                    }
                }
                "apm-server.ssl.enabled" => {
                    if self.boolean(leaf) == Some(true) {
                        ssl_on = Some(leaf.clone());
                    }
                }
                "apm-server.ssl.certificate" | "apm-server.ssl.key" => {
                    if let Some(s) = self.string(leaf) {
                        if s.contains("-----BEGIN") {
                            self.masks.push(leaf.value.span.clone());
                            self.report(
                                Code::ImportNotCarried,
                                format!("`{path}` holds PEM inline"),
                                leaf.value.span.clone(),
                                "not copied",
                                "write the PEM into a file and name its path in the policy's [tls.apm-server]",
                            );
                            continue;
                        }
                        let key = path.trim_start_matches("apm-server.ssl.");
                        self.relative_path(leaf, &s);
                        if key == "certificate" {
                            tls_cert = true;
                        } else {
                            tls_key = true;
                        }
                        self.draft.set("tls.apm-server", key, toml_str(&s), path);
                    }
                }
                "apm-server.ssl.certificate_authorities" => {
                    if let Some(cas) = self.list(leaf) {
                        for ca in &cas {
                            self.relative_path(leaf, ca);
                        }
                        self.draft.set(
                            "tls.apm-server",
                            "certificate_authorities",
                            toml_list(&cas),
                            path,
                        );
                    }
                }
                "apm-server.ssl.client_authentication" => {
                    if let Some(s) = self.string(leaf) {
                        match s.as_str() {
                            "none" | "optional" | "required" => {
                                self.draft
                                    .set("tls.apm-server", "client_auth", toml_str(&s), path)
                            }
                            _ => self.wrong_type(leaf, "`none`, `optional` or `required`"),
                        }
                    }
                }
                "apm-server.ssl.supported_protocols"
                | "output.elasticsearch.ssl.supported_protocols" => {
                    if let Some(list) = self.list(leaf) {
                        let (kept, dropped): (Vec<String>, Vec<String>) = list
                            .into_iter()
                            .partition(|p| p == "TLSv1.2" || p == "TLSv1.3");
                        if !dropped.is_empty() {
                            self.differs(
                                leaf,
                                format!("`{path}` lists {}, which apmgate refuses", dropped.join(", ")),
                                "apmgate speaks TLS 1.2 and 1.3 only; the older versions are left out",
                            );
                        }
                        if !kept.is_empty() {
                            let section = if path.starts_with("output") {
                                "output.elasticsearch.tls"
                            } else {
                                "tls.apm-server"
                            };
                            self.draft
                                .set(section, "supported_protocols", toml_list(&kept), path);
                        }
                    }
                }
                "apm-server.ssl.cipher_suites" => {
                    if let Some(list) = self.list(leaf) {
                        if !list.is_empty() {
                            self.draft.set(
                                "tls.apm-server",
                                "cipher_suites",
                                toml_list(&list),
                                path,
                            );
                        }
                    }
                }
                "apm-server.ssl.curve_types" => {
                    if let Some(list) = self.list(leaf) {
                        let (kept, dropped): (Vec<String>, Vec<String>) = list
                            .into_iter()
                            .partition(|c| matches!(c.as_str(), "X25519" | "P-256" | "P-384"));
                        if !dropped.is_empty() {
                            self.differs(
                                leaf,
                                format!(
                                    "`{path}` lists {}, which apmgate does not offer",
                                    dropped.join(", ")
                                ),
                                "apmgate offers X25519, P-256 and P-384; the others are left out",
                            );
                        }
                        if !kept.is_empty() {
                            self.draft
                                .set("tls.apm-server", "curve_types", toml_list(&kept), path);
                        }
                    }
                }
                "apm-server.auth.api_key.enabled" => {
                    if self.boolean(leaf) == Some(true) {
                        api_key_leaf = Some(leaf.clone());
                    }
                }
                "apm-server.auth.api_key.limit" => {
                    if self.integer(leaf).is_some() {
                        limit_leaf = Some(leaf.clone());
                    }
                }
                "apm-server.auth.anonymous.enabled" => {
                    if let Some(b) = self.boolean(leaf) {
                        facts.anonymous = Some(b);
                        facts.anonymous_written = true;
                    }
                }
                "apm-server.auth.anonymous.allow_agent"
                | "apm-server.auth.anonymous.allow_service" => {
                    if let Some(list) = self.list(leaf) {
                        let key = path.trim_start_matches("apm-server.auth.anonymous.");
                        facts.anonymous_written = true;
                        self.draft
                            .set("auth.anonymous", key, toml_list(&list), path);
                    }
                }
                "apm-server.auth.anonymous.rate_limit.event_limit"
                | "apm-server.auth.anonymous.rate_limit.ip_limit" => {
                    if let Some(n) = self.integer(leaf) {
                        let key = path.trim_start_matches("apm-server.auth.anonymous.rate_limit.");
                        facts.anonymous_written = true;
                        self.draft
                            .set("auth.anonymous.rate_limit", key, n.to_string(), path);
                    }
                }
                "apm-server.rum.enabled" => {
                    if let Some(b) = self.boolean(leaf) {
                        facts.rum = b;
                        self.draft.set("rum", "enabled", b.to_string(), path);
                    }
                }
                "apm-server.rum.source_mapping.enabled" => {
                    if let Some(b) = self.boolean(leaf) {
                        if b && !facts.es_output {
                            // APM Server: "Unable to determine sourcemap storage, sourcemaps
                            // will not be applied"; the policy would refuse it (E611).
                            self.not_carried(
                                leaf,
                                "without the Elasticsearch output there is nowhere to read source maps from; APM Server applied none either",
                            );
                        } else {
                            self.draft
                                .set("rum.source_mapping", "enabled", b.to_string(), path);
                        }
                    }
                }
                "apm-server.rum.source_mapping.timeout"
                | "apm-server.rum.source_mapping.cache.expiration" => {
                    if let Some(d) = self.duration(leaf) {
                        let key = if path.ends_with("timeout") {
                            "timeout"
                        } else {
                            "cache_expiration"
                        };
                        self.draft
                            .set("rum.source_mapping", key, toml_str(&d), path);
                    }
                }
                "apm-server.rum.source_mapping.max_sourcemap_size" => {
                    if let Some(bytes) = self.size(leaf) {
                        self.draft.set(
                            "rum.source_mapping",
                            "max_sourcemap_size",
                            toml_str(&format_size(bytes)),
                            path,
                        );
                    }
                }
                "apm-server.rum.allow_origins" => {
                    if let Some(list) = self.list(leaf) {
                        facts.origins = Some(list.clone());
                        self.draft
                            .set("rum", "allow_origins", toml_list(&list), path);
                    }
                }
                "apm-server.rum.allow_headers" => {
                    if let Some(list) = self.list(leaf) {
                        self.draft
                            .set("rum", "allow_headers", toml_list(&list), path);
                    }
                }
                "apm-server.rum.response_headers" => {
                    if let Some(h) = self.headers(leaf) {
                        self.draft
                            .set("rum", "response_headers", inline_table(&h), path);
                    }
                }
                "apm-server.rum.library_pattern" | "apm-server.rum.exclude_from_grouping" => {
                    if let Some(s) = self.string(leaf) {
                        let key = path.trim_start_matches("apm-server.rum.");
                        self.draft.set("rum", key, toml_str(&s), path);
                    }
                }
                "apm-server.agent.config.cache.expiration" => {
                    // APM Server uses it for both: how long agents cache, and how often the
                    // entries are read from Elasticsearch.
                    if let Some(d) = self.duration(leaf) {
                        self.draft
                            .set("gateway", "agent_config_max_age", toml_str(&d), path);
                        agent_config_expiration = Some((d, path.to_string()));
                    }
                }
                "apm-server.agent_config" => self.agent_configs(leaf),
                "output.elasticsearch.enabled" | "output.file.enabled" => {
                    let _ = self.boolean(leaf);
                }
                "output.elasticsearch.hosts" => {
                    if let Some(hosts) = self.list(leaf) {
                        es_hosts = Some((leaf.clone(), hosts));
                    }
                }
                "output.elasticsearch.protocol" => {
                    if let Some(p) = self.string(leaf) {
                        if p == "http" || p == "https" {
                            self.draft.note_from("output.elasticsearch", path);
                            protocol = Some(p);
                        } else {
                            self.wrong_type(leaf, "`http` or `https`");
                        }
                    }
                }
                "output.elasticsearch.path" | "output.elasticsearch.username" => {
                    if let Some(s) = self.string(leaf) {
                        let key = path.trim_start_matches("output.elasticsearch.");
                        self.draft
                            .set("output.elasticsearch", key, toml_str(&s), path);
                    }
                }
                "output.elasticsearch.headers" => {
                    if let Some(h) = self.headers(leaf) {
                        self.draft
                            .set("output.elasticsearch", "headers", inline_table(&h), path);
                    }
                }
                "output.elasticsearch.compression_level"
                | "output.elasticsearch.max_requests"
                | "output.elasticsearch.max_retries" => {
                    if let Some(n) = self.integer(leaf) {
                        let key = path.trim_start_matches("output.elasticsearch.");
                        self.draft
                            .set("output.elasticsearch", key, n.to_string(), path);
                    }
                }
                "output.elasticsearch.flush_bytes" => {
                    if let Some(b) = self.size(leaf) {
                        self.draft.set(
                            "output.elasticsearch",
                            "flush_bytes",
                            toml_str(&format_size(b)),
                            path,
                        );
                    }
                }
                "output.elasticsearch.flush_interval"
                | "output.elasticsearch.timeout"
                | "output.elasticsearch.backoff.init"
                | "output.elasticsearch.backoff.max" => {
                    if let Some(d) = self.duration(leaf) {
                        let key = path
                            .trim_start_matches("output.elasticsearch.")
                            .replace('.', "_");
                        self.draft
                            .set("output.elasticsearch", &key, toml_str(&d), path);
                    }
                }
                "output.elasticsearch.ssl.enabled" => {
                    let _ = self.boolean(leaf);
                }
                "output.elasticsearch.ssl.verification_mode" => {
                    if let Some(s) = self.string(leaf) {
                        match s.as_str() {
                            "full" | "strict" | "certificate" | "none" => self.draft.set(
                                "output.elasticsearch.tls",
                                "verification_mode",
                                toml_str(&s),
                                path,
                            ),
                            _ => self.wrong_type(leaf, "`full`, `strict`, `certificate` or `none`"),
                        }
                    }
                }
                "output.elasticsearch.ssl.certificate_authorities" => {
                    if let Some(cas) = self.list(leaf) {
                        for ca in &cas {
                            self.relative_path(leaf, ca);
                        }
                        self.draft.set(
                            "output.elasticsearch.tls",
                            "certificate_authorities",
                            toml_list(&cas),
                            path,
                        );
                    }
                }
                "output.elasticsearch.ssl.ca_trusted_fingerprint"
                | "output.elasticsearch.ssl.certificate"
                | "output.elasticsearch.ssl.key" => {
                    if let Some(s) = self.string(leaf) {
                        let key = path.trim_start_matches("output.elasticsearch.ssl.");
                        if key != "ca_trusted_fingerprint" {
                            self.relative_path(leaf, &s);
                        }
                        self.draft
                            .set("output.elasticsearch.tls", key, toml_str(&s), path);
                    }
                }
                "output.file.path" => file_path.0 = self.string(leaf),
                "output.file.filename" => file_path.1 = self.string(leaf),
                "output.file.rotate_every_kb" => {
                    if let Some(kb) = self.integer(leaf) {
                        self.draft.set(
                            "output.file",
                            "rotate_bytes",
                            toml_str(&format_size(kb * 1024)),
                            path,
                        );
                    }
                }
                "output.file.number_of_files" => {
                    if let Some(n) = self.integer(leaf) {
                        self.draft
                            .set("output.file", "keep_files", n.to_string(), path);
                    }
                }
                _ => self.unknown(leaf),
            }
        }

        // TLS needs both halves, as APM Server.
        if let (Some(leaf), false, false) = (&ssl_on, tls_cert, tls_key) {
            let leaf = leaf.clone();
            self.report(
                Code::ImportNotCarried,
                "TLS is enabled without a certificate and a key".to_string(),
                leaf.key.clone(),
                "nothing to serve",
                "APM Server refuses to start so; the listener is left in plaintext until `apm-server.ssl.certificate` and `apm-server.ssl.key` are given",
            );
        }
        // TLS needs both halves, as APM Server.
        facts.tls = !ssl_off && (tls_cert || tls_key);
        if facts.tls && !(tls_cert && tls_key) {
            let at = leaves
                .iter()
                .find(|l| under(&l.path, "apm-server.ssl"))
                .map(|l| l.key.clone())
                .unwrap_or(0..0);
            self.report(
                Code::ImportNotCarried,
                "TLS needs both `apm-server.ssl.certificate` and `apm-server.ssl.key`".to_string(),
                at,
                "one of the two is missing",
                "APM Server refuses to start so; the listener is left in plaintext until both are given",
            );
            facts.tls = false;
        }
        if facts.tls {
            self.draft
                .set("listener", "tls", toml_str("apm-server"), "apm-server.ssl");
        } else {
            self.draft.remove("tls.apm-server");
        }

        // APM Server 8 reads central agent configuration (made in Kibana) from Elasticsearch
        // when the file declares none, through the output's connection; so does the policy.
        if facts.es_output && self.draft.agent_configs.is_empty() {
            let from = "output.elasticsearch";
            self.draft
                .set("agent_config_source", "elasticsearch", "true".into(), from);
            if let Some((d, path)) = &agent_config_expiration {
                self.draft
                    .set("agent_config_source", "cache_expiration", toml_str(d), path);
            }
        }

        // Elasticsearch hosts: scheme and port as APM Server completes them.
        if facts.es_output {
            let (leaf_path, hosts) = match es_hosts {
                Some((leaf, hosts)) => (leaf.path, hosts),
                None => (
                    "output.elasticsearch".to_string(),
                    vec!["localhost:9200".to_string()],
                ),
            };
            let scheme = protocol.unwrap_or_else(|| "http".to_string());
            let urls: Vec<String> = hosts.iter().map(|h| es_url(h, &scheme)).collect();
            self.draft.set(
                "output.elasticsearch",
                "hosts",
                toml_list(&urls),
                &leaf_path,
            );
            self.draft.front("output.elasticsearch", "hosts");
        } else {
            self.draft.remove("output.elasticsearch");
            self.draft.remove("output.elasticsearch.tls");
        }

        if file_output {
            if facts.es_output {
                let at = leaves
                    .iter()
                    .find(|l| under(&l.path, "output.file"))
                    .map(|l| l.key.clone())
                    .unwrap_or(0..0);
                self.report(
                    Code::ImportNotCarried,
                    "`output.file` beside `output.elasticsearch`: one output only".to_string(),
                    at,
                    "left out",
                    "APM Server refuses to start with two outputs; the policy keeps the Elasticsearch output",
                );
                self.draft.remove("output.file");
            } else {
                let dir = file_path.0.unwrap_or_else(|| "data".to_string());
                let name = file_path.1.unwrap_or_else(|| "apm-server".to_string());
                let path = format!("{}/{name}", dir.trim_end_matches('/'));
                self.draft
                    .set("output.file", "path", toml_str(&path), "output.file.path");
                self.draft.front("output.file", "path");
                if let Some(leaf) = leaves.iter().find(|l| under(&l.path, "output.file")) {
                    let leaf = leaf.clone();
                    self.differs(
                        &leaf,
                        "apmgate's file output writes Elasticsearch `_bulk` NDJSON".to_string(),
                        "libbeat's file output wrote one JSON event per line; readers of the file must expect action and document lines",
                    );
                }
            }
        } else {
            self.draft.remove("output.file");
        }

        // An API key and a user together: libbeat refuses them; the policy keeps the key.
        if facts.es_output
            && self.draft.has("output.elasticsearch", "api_key")
            && (self.draft.has("output.elasticsearch", "username")
                || self.draft.has("output.elasticsearch", "password"))
        {
            self.draft.remove_key("output.elasticsearch", "username");
            if self.draft.remove_key("output.elasticsearch", "password") {
                let var = SECRETS
                    .iter()
                    .find(|(p, _)| *p == "output.elasticsearch.password")
                    .map(|(_, v)| *v);
                if let Some(leaf) = leaves
                    .iter()
                    .find(|l| l.path == "output.elasticsearch.password")
                {
                    let referenced = match &leaf.value.kind {
                        Kind::Scalar { text, .. } => {
                            interpolate(text).references.first().map(|r| r.name.clone())
                        }
                        _ => None,
                    };
                    let name = referenced.or(var.map(str::to_string));
                    self.env.retain(|e| Some(&e.name) != name.as_ref());
                }
            }
            if let Some(leaf) = leaves.iter().find(|l| {
                l.path == "output.elasticsearch.username"
                    || l.path == "output.elasticsearch.password"
            }) {
                let leaf = leaf.clone();
                self.report(
                    Code::ImportNotCarried,
                    "`output.elasticsearch` sets both an API key and a username/password".to_string(),
                    leaf.key.clone(),
                    "the user is left out",
                    "APM Server refuses to start with both; the policy authenticates with the API key",
                );
            }
        }

        // API keys verified by Elasticsearch.
        if let Some(leaf) = api_key_leaf {
            if facts.es_output {
                facts.es_api_keys = true;
                self.draft.set(
                    "auth.elasticsearch_api_keys",
                    "enabled",
                    "true".to_string(),
                    &leaf.path,
                );
                if let Some(limit) = limit_leaf {
                    let n = self.integer(&limit).unwrap_or(100);
                    self.draft.set(
                        "auth.elasticsearch_api_keys",
                        "cache_size",
                        n.to_string(),
                        &limit.path,
                    );
                    self.differs(
                        &limit,
                        "`apm-server.auth.api_key.limit` bounds a cache that evicts in apmgate".to_string(),
                        "APM Server refuses new keys (503) once `limit` keys were seen within a minute; apmgate's cache_size evicts the oldest verification instead",
                    );
                }
                self.draft.set(
                    "auth.elasticsearch_api_keys",
                    "cache_ttl",
                    toml_str("1m"),
                    &leaf.path,
                );
            } else {
                self.report(
                    Code::ImportNotCarried,
                    "API keys are verified by Elasticsearch, and there is no Elasticsearch output".to_string(),
                    leaf.key.clone(),
                    "not carried",
                    "apmgate verifies API keys with the cluster of [output.elasticsearch]; declare keys in the policy with `apmgate keys new` instead",
                );
            }
        }

        // Anonymous access: APM Server switches it on when RUM is on with authentication and
        // `enabled` is not written. The policy says so explicitly.
        let auth = facts.secret_token || facts.es_api_keys;
        let anonymous = facts.anonymous.unwrap_or(facts.rum && auth);
        facts.anonymous = Some(anonymous);
        if facts.anonymous_written && !auth {
            // Without authentication everyone may send, in APM Server as in apmgate: anonymous
            // settings have no effect there, and in the policy they would restrict everyone.
            self.draft.remove("auth.anonymous");
            self.draft.remove("auth.anonymous.rate_limit");
            if let Some(leaf) = leaves
                .iter()
                .find(|l| under(&l.path, "apm-server.auth.anonymous"))
            {
                let leaf = leaf.clone();
                self.differs(
                    &leaf,
                    "anonymous access is configured, but no authentication".to_string(),
                    "without a secret token or API keys everyone may send, in APM Server as in apmgate; the anonymous settings are left out, since in the policy they would restrict every caller",
                );
            }
            facts.anonymous = Some(false);
            facts.anonymous_written = false;
        } else if facts.anonymous_written || (facts.rum && auth) {
            let from = if facts.anonymous_written {
                "apm-server.auth.anonymous.enabled"
            } else {
                "apm-server.rum.enabled"
            };
            self.draft
                .set("auth.anonymous", "enabled", anonymous.to_string(), from);
            self.draft.front("auth.anonymous", "enabled");
        }
        facts
    }
}
