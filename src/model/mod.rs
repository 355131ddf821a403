//! The APM event model: intake v2 and RUM v3 lines decoded and validated exactly as APM Server
//! does, turned into the Elasticsearch documents APM Server writes, each with its data stream.
//!
//! The runtime frames the request body into lines (and enforces `max_event_size`, batches and
//! the error cap); this module handles one line at a time: [`decode_metadata`] for the first,
//! [`decode_event`] for each following one. Documents carry `observer.type: "apm-server"` and
//! `observer.version` = [`APM_SERVER_VERSION`], the APM Server release whose behaviour apmgate
//! reproduces, because Kibana and Elastic's tooling key on them.
//!
//! This module knows nothing of HTTP, sockets or Elasticsearch connections: the request
//! context it needs arrives as a [`RequestMeta`], and it never performs I/O except reading the
//! machine's hostname once for `observer.hostname`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::SystemTime;

use serde::Deserialize;

pub mod agent_config;
pub mod aggregate;
pub mod encode;
pub mod event;
pub mod json;
pub mod map;
pub mod otel;
pub mod otlp;
pub mod process;
pub mod rumv3;
pub mod schema;
pub mod sourcemap;
pub mod v2;

use event::{ApmEvent, S};
use json::rules::VResult;

/// The APM Server version whose behaviour is reproduced (written as `observer.version`).
pub const APM_SERVER_VERSION: &str = "9.5.2";

/// What the runtime knows about the request an event line arrived in.
#[derive(Clone, Debug)]
pub struct RequestMeta<'a> {
    /// When the request was received: the default event time.
    pub receipt_time: SystemTime,
    /// Arrived on `/intake/v2/rum/events` or `/intake/v3/rum/events`.
    pub rum: bool,
    /// The client address (from a trusted forwarding header, else the socket peer).
    pub client_ip: Option<IpAddr>,
    /// The client port, when known.
    pub client_port: Option<u16>,
    /// The socket peer, when a trusted proxy header gave `client_ip`.
    pub nat_ip: Option<IpAddr>,
    /// The request's `User-Agent`.
    pub user_agent: Option<&'a str>,
}

/// Model settings from the compiled policy, built once per policy.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Data stream namespace (`default`).
    pub namespace: String,
    /// `service.environment` for events without one.
    pub default_service_environment: Option<String>,
    /// Whether client IP and user agent are written.
    pub capture_personal_data: bool,
    /// RUM: frames whose file name or path match are library frames.
    pub library_pattern: Option<regex::Regex>,
    /// RUM: frames whose file name matches are excluded from error grouping.
    pub exclude_from_grouping: Option<regex::Regex>,
    /// The APM Server version whose behaviour is reproduced ([`APM_SERVER_VERSION`]).
    pub observer_version: &'static str,
    /// Whether events are observed for aggregated metrics ([`Decoded::observations`]).
    pub aggregate: bool,
    /// RUM: stack frames are source mapped ([`Pending::apply_source_maps`]) and the culprit of
    /// errors is taken from the mapped frames, as APM Server does with a source map fetcher.
    pub source_mapping: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            namespace: "default".into(),
            default_service_environment: None,
            capture_personal_data: true,
            library_pattern: None,
            exclude_from_grouping: None,
            observer_version: APM_SERVER_VERSION,
            aggregate: false,
            source_mapping: false,
        }
    }
}

/// A per-line error, worded exactly as APM Server puts it in the intake response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelError {
    /// The message (`validation error: ...`, `decode error: ...`, ...).
    pub message: String,
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ModelError {}

impl ModelError {
    fn new(message: impl Into<String>) -> Self {
        ModelError {
            message: message.into(),
        }
    }
    fn decode(e: serde_json::Error) -> Self {
        let msg = e.to_string();
        ModelError::new(format!(
            "decode error: data read error: {}",
            json::strip_position(&msg)
        ))
    }
    fn validation(msg: String) -> Self {
        ModelError::new(format!("validation error: {msg}"))
    }
}

/// One document to index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The data stream, e.g. `traces-apm-default` (the `_index` of the bulk `create` action).
    pub data_stream: String,
    /// The JSON document, one line, no trailing newline.
    pub body: Vec<u8>,
    /// `agent.name`, for anonymous `allow_agent` checks.
    pub agent_name: Option<String>,
    /// `service.name`, for anonymous `allow_service` checks.
    pub service_name: Option<String>,
}

/// What one event line produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    /// The documents to index (none for an event APM Server accepts but drops).
    pub documents: Vec<Document>,
    /// How many events APM Server counts as accepted for this line.
    pub accepted: usize,
    /// What the events add to aggregated metrics (with [`ModelConfig::aggregate`]), unsampled
    /// transactions included: they are aggregated, then not indexed.
    pub observations: Vec<aggregate::Observation>,
}

/// Metadata decoded from the first line of a request (`metadata` or `m`); every event of the
/// request starts from it.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    base: ApmEvent<'static>,
}

/// The first quoted key of a line (single or double quotes), as APM Server identifies objects:
/// no parsing, the bytes between the first quote and the next quote of the same kind.
pub fn first_key(line: &[u8]) -> Option<&str> {
    first_key_bytes(line).and_then(|k| std::str::from_utf8(k).ok())
}

fn first_key_bytes(line: &[u8]) -> Option<&[u8]> {
    let start = line.iter().position(|&b| b == b'"' || b == b'\'')?;
    let quote = line[start];
    let rest = &line[start + 1..];
    let end = rest.iter().position(|&b| b == quote)?;
    Some(&rest[..end])
}

/// Go's `%q` of a byte string: printable characters as is, `"` and `\` escaped, the rest as
/// escapes.
fn go_quote(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    out.push('"');
    let s = String::from_utf8_lossy(b);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn parse<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, ModelError> {
    // One JSON value is read; anything after it is ignored, as jsoniter's ReadVal does.
    let mut de = serde_json::Deserializer::from_slice(line);
    T::deserialize(&mut de).map_err(ModelError::decode)
}

fn check(r: VResult) -> Result<(), ModelError> {
    r.map_err(ModelError::validation)
}

/// Decodes and validates the metadata line of a request.
pub fn decode_metadata(line: &[u8]) -> Result<Metadata, ModelError> {
    let mut base = ApmEvent::default();
    match first_key_bytes(line) {
        Some(b"metadata") => {
            let root: v2::MetadataRoot<'_> = parse(line)?;
            check(root.validate())?;
            v2::map_metadata(&root.metadata, &mut base);
        }
        Some(b"m") => {
            let root: rumv3::MetadataRoot<'_> = parse(line)?;
            check(root.validate())?;
            v2::map_metadata(&root.metadata, &mut base);
        }
        _ => return Err(ModelError::new("\"metadata\" or \"m\" required")),
    }
    Ok(Metadata {
        base: rebind(&base, &|s| Cow::Owned(s.to_string())),
    })
}

/// The metadata fields of an event with their strings rebound through `f` (to own them for the
/// request, or to borrow them for one event).
fn rebind<'x, 'y>(e: &'x ApmEvent<'_>, f: &impl Fn(&'x S<'_>) -> S<'y>) -> ApmEvent<'y> {
    use event::*;
    let nv = |v: &'x Option<NameVersion<'_>>| {
        v.as_ref().map(|v| NameVersion {
            name: f(&v.name),
            version: f(&v.version),
        })
    };
    ApmEvent {
        labels: Labels {
            strings: e
                .labels
                .strings
                .iter()
                .map(|(k, v)| {
                    (
                        f(k),
                        match v {
                            LabelValue::One(s) => LabelValue::One(f(s)),
                            LabelValue::Many(m) => LabelValue::Many(m.iter().map(f).collect()),
                        },
                    )
                })
                .collect(),
            numbers: e
                .labels
                .numbers
                .iter()
                .map(|(k, v)| (f(k), v.clone()))
                .collect(),
        },
        agent: Agent {
            name: f(&e.agent.name),
            version: f(&e.agent.version),
            ephemeral_id: f(&e.agent.ephemeral_id),
            activation_method: f(&e.agent.activation_method),
        },
        service: Service {
            name: f(&e.service.name),
            version: f(&e.service.version),
            environment: f(&e.service.environment),
            node_name: f(&e.service.node_name),
            framework: nv(&e.service.framework),
            language: nv(&e.service.language),
            runtime: nv(&e.service.runtime),
            origin: None,
            target: None,
        },
        host: e.host.as_ref().map(|h| Host {
            architecture: f(&h.architecture),
            hostname: f(&h.hostname),
            name: f(&h.name),
            id: f(&h.id),
            ip: h.ip.clone(),
            os_platform: f(&h.os_platform),
            ..Default::default()
        }),
        process: e.process.as_ref().map(|p| Process {
            pid: p.pid,
            ppid: p.ppid,
            title: f(&p.title),
            argv: p.argv.iter().map(f).collect(),
            thread_name: f(&p.thread_name),
            ..Default::default()
        }),
        container_id: f(&e.container_id),
        kubernetes: e.kubernetes.as_ref().map(|k| Kubernetes {
            namespace: f(&k.namespace),
            node_name: f(&k.node_name),
            pod_name: f(&k.pod_name),
            pod_uid: f(&k.pod_uid),
        }),
        cloud: e.cloud.as_ref().map(|c| Cloud {
            account_id: f(&c.account_id),
            account_name: f(&c.account_name),
            availability_zone: f(&c.availability_zone),
            instance_id: f(&c.instance_id),
            instance_name: f(&c.instance_name),
            machine_type: f(&c.machine_type),
            project_id: f(&c.project_id),
            project_name: f(&c.project_name),
            provider: f(&c.provider),
            region: f(&c.region),
            service_name: f(&c.service_name),
            origin: None,
        }),
        user: e.user.as_ref().map(|u| User {
            domain: f(&u.domain),
            id: f(&u.id),
            email: f(&u.email),
            name: f(&u.name),
        }),
        network: e.network.as_ref().map(|n| Network {
            connection_type: f(&n.connection_type),
            connection_subtype: f(&n.connection_subtype),
            carrier_name: f(&n.carrier_name),
            carrier_mcc: f(&n.carrier_mcc),
            carrier_mnc: f(&n.carrier_mnc),
            carrier_icc: f(&n.carrier_icc),
        }),
        ..Default::default()
    }
}

/// The machine's hostname (`observer.hostname`), read once like Go's `os.Hostname`.
pub fn observer_hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| {
                std::fs::read_to_string(p)
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

fn nanos_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The event every line of the request starts from: metadata, receipt time and what the
/// request itself tells (client address and user agent, per route and `capture_personal_data`).
fn base_event<'a>(meta: &'a Metadata, req: &RequestMeta<'a>, cfg: &ModelConfig) -> ApmEvent<'a> {
    let mut ev = rebind(&meta.base, &|s| Cow::Borrowed(s.as_ref()));
    ev.timestamp = nanos_since_epoch(req.receipt_time);
    if cfg.capture_personal_data {
        if req.rum {
            if let Some(ua) = req.user_agent.filter(|u| !u.is_empty()) {
                ev.user_agent = Cow::Borrowed(ua);
            }
            if let Some(ip) = req.client_ip {
                ev.client = Some(event::Client {
                    ip: Some(ip),
                    ..Default::default()
                });
                ev.source = Some(event::Source {
                    ip: Some(ip),
                    port: u32::from(req.client_port.unwrap_or(0)),
                    nat_ip: req.nat_ip,
                    ..Default::default()
                });
            }
        } else if let Some(ip) = req.client_ip {
            ev.host.get_or_insert_with(Default::default).ip = vec![ip];
        }
    }
    ev
}

/// Decodes one event line (anything but metadata) into the documents APM Server writes.
///
/// `Ok` with no documents is an event APM Server accepts but does not index (an unsampled
/// non-RUM transaction, a breakdown metricset without known samples).
pub fn decode_event(
    line: &[u8],
    metadata: &Metadata,
    request: &RequestMeta<'_>,
    config: &ModelConfig,
) -> Result<Decoded, ModelError> {
    Ok(decode_events(line, metadata, request, config)?.finish(metadata, request, config))
}

/// The events of one line, decoded and validated but not yet processed or written: the step
/// between them is where the intake fetches the source maps RUM frames need.
pub struct Pending<'a> {
    events: Vec<ApmEvent<'a>>,
    accepted: usize,
}

impl<'a> Pending<'a> {
    /// The bundles whose source maps the events' frames need (APM Server maps the frames of
    /// spans and errors with a service name and version).
    pub fn source_map_bundles(&mut self) -> Vec<sourcemap::BundleKey> {
        let mut out: Vec<sourcemap::BundleKey> = Vec::new();
        for ev in &mut self.events {
            for k in sourcemap::bundles(ev) {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        out
    }

    /// Rewrites the events' stack frames from the source maps found for their bundles.
    pub fn apply_source_maps(&mut self, maps: &sourcemap::Resolutions) {
        for ev in &mut self.events {
            sourcemap::apply(ev, maps);
        }
    }

    /// Processes the events as APM Server does and writes their documents.
    pub fn finish(
        self,
        metadata: &Metadata,
        request: &RequestMeta<'_>,
        config: &ModelConfig,
    ) -> Decoded {
        // Each document is written into one buffer (per thread, kept between lines) that has
        // grown to the largest so far, then copied out at its size: one allocation and one copy
        // a document instead of a buffer reallocated (and copied) as it doubles.
        SCRATCH.with_borrow_mut(|scratch| self.write_documents(metadata, request, config, scratch))
    }

    fn write_documents(
        mut self,
        metadata: &Metadata,
        request: &RequestMeta<'_>,
        config: &ModelConfig,
        scratch: &mut Vec<u8>,
    ) -> Decoded {
        let hostname = observer_hostname();
        let mut documents = Vec::with_capacity(self.events.len());
        let mut observations = Vec::new();
        // In place: an event is a large struct (several KiB), not worth moving out of the list.
        for ev in self.events.iter_mut() {
            let indexed = process::process(ev, request.rum, config, hostname);
            if config.aggregate {
                observations.push(aggregate::observe(ev, &metadata.base.labels));
            }
            if !indexed {
                continue;
            }
            scratch.clear();
            encode::encode(ev, scratch);
            let body = scratch.as_slice().to_vec();
            let ds = &ev.data_stream;
            documents.push(Document {
                data_stream: format!("{}-{}-{}", ds.r#type, ds.dataset, ds.namespace),
                body,
                agent_name: non_empty(&ev.agent.name),
                service_name: non_empty(&ev.service.name),
            });
        }
        if scratch.capacity() > SCRATCH_KEPT {
            // One very large document does not keep its buffer for the thread's lifetime.
            *scratch = Vec::with_capacity(SCRATCH_KEPT);
        }
        Decoded {
            documents,
            accepted: self.accepted,
            observations,
        }
    }
}

/// The largest document buffer a thread keeps between lines.
const SCRATCH_KEPT: usize = 256 << 10;

thread_local! {
    /// The buffer documents are written into before they are copied out at their size.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(4096));
}

/// Puts `event` in `events` and returns it there, to be mapped in place: an event is a large
/// struct (several KiB), each move of it a copy.
fn in_place<'e, 'a>(
    events: &'e mut Vec<ApmEvent<'a>>,
    event: ApmEvent<'a>,
) -> &'e mut ApmEvent<'a> {
    let i = events.len();
    events.push(event);
    &mut events[i]
}

/// Decodes and validates one event line (anything but metadata) into its events, which
/// [`Pending::finish`] processes and writes.
pub fn decode_events<'a>(
    line: &'a [u8],
    metadata: &'a Metadata,
    request: &RequestMeta<'a>,
    config: &ModelConfig,
) -> Result<Pending<'a>, ModelError> {
    let key = first_key_bytes(line).unwrap_or(b"");
    let base = base_event(metadata, request, config);
    let mut events: Vec<ApmEvent<'_>> = Vec::with_capacity(1);
    let accepted;
    match key {
        b"transaction" => {
            let mut root: v2::TransactionRoot<'_> = parse(line)?;
            check(v2::validate_transaction_root(&root))?;
            v2::map_transaction(&mut root.transaction, in_place(&mut events, base));
            accepted = 1;
        }
        b"span" => {
            let mut root: v2::SpanRoot<'_> = parse(line)?;
            check(v2::validate_span_root(&root))?;
            v2::map_span(&mut root.span, in_place(&mut events, base));
            accepted = 1;
        }
        b"error" => {
            let mut root: v2::ErrorRoot<'_> = parse(line)?;
            check(root.validate())?;
            v2::map_error(&mut root.error, in_place(&mut events, base));
            accepted = 1;
        }
        b"metricset" => {
            let root: v2::MetricsetRoot<'_> = parse(line)?;
            check(v2::validate_metricset_root(&root))?;
            if v2::map_metricset(&root.metricset, in_place(&mut events, base)) {
                accepted = 1;
            } else {
                events.clear();
                accepted = 0;
            }
        }
        b"log" => {
            let mut root: v2::LogRoot<'_> = parse(line)?;
            v2::process_nested_log(&mut root.log).map_err(ModelError::new)?;
            check(v2::validate_log_root(&root))?;
            v2::map_log(&root.log, in_place(&mut events, base));
            accepted = 1;
        }
        b"x" => {
            let mut root: rumv3::TransactionRoot<'_> = parse(line)?;
            check(rumv3::validate_transaction_root(&root))?;
            events = rumv3::map_transaction(&mut root.transaction, &base);
            accepted = events.len();
        }
        b"e" => {
            let mut root: rumv3::ErrorRoot<'_> = parse(line)?;
            check(root.validate())?;
            v2::map_error(&mut root.error, in_place(&mut events, base));
            accepted = 1;
        }
        other => {
            return Err(ModelError::new(format!(
                "did not recognize object type: {}",
                go_quote(other)
            )));
        }
    }
    Ok(Pending { events, accepted })
}

fn non_empty(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.to_owned())
    }
}
