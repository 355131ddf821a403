//! The decoded APM event: what one intake event means, independent of the wire format it came
//! in (v2 or RUM v3) and of the document it becomes.
//!
//! It mirrors APM Server's `modelpb.APMEvent` where the documents need it. Strings borrow from
//! the intake line or from the request's metadata; nothing here is written to Elasticsearch
//! directly (see `encode`), and nothing here knows about HTTP.

use std::borrow::Cow;
use std::net::IpAddr;

use super::json::{Object, Value};

/// A string borrowed from the input line or the metadata, or owned when it had to be built.
pub type S<'a> = Cow<'a, str>;

/// Which kind of document an event becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// A transaction (`traces-*`).
    #[default]
    Transaction,
    /// A span (`traces-*`).
    Span,
    /// An error (`logs-apm.error-*`).
    Error,
    /// A metricset (`metrics-*`).
    Metric,
    /// An application log (`logs-apm.app.*`).
    Log,
}

/// A string label: one value or several (from OTel array attributes). `global` marks labels
/// that came from metadata.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelValue<'a> {
    /// One value.
    One(S<'a>),
    /// Several values.
    Many(Vec<S<'a>>),
}

/// A numeric label: one value or several.
#[derive(Clone, Debug, PartialEq)]
pub enum NumValue {
    /// One value.
    One(f64),
    /// Several values.
    Many(Vec<f64>),
}

/// Labels in insertion order; setting an existing key replaces its value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labels<'a> {
    /// String labels (booleans are stored as "true"/"false").
    pub strings: Vec<(S<'a>, LabelValue<'a>)>,
    /// Numeric labels.
    pub numbers: Vec<(S<'a>, NumValue)>,
}

impl<'a> Labels<'a> {
    /// Sets a string label.
    pub fn set_str(&mut self, k: S<'a>, v: LabelValue<'a>) {
        match self.strings.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => self.strings.push((k, v)),
        }
    }
    /// Sets a numeric label.
    pub fn set_num(&mut self, k: S<'a>, v: NumValue) {
        match self.numbers.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => self.numbers.push((k, v)),
        }
    }
}

/// `agent.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Agent<'a> {
    pub name: S<'a>,
    pub version: S<'a>,
    pub ephemeral_id: S<'a>,
    pub activation_method: S<'a>,
}

/// A name/version pair (`service.framework`, `service.language`, `service.runtime`).
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct NameVersion<'a> {
    pub name: S<'a>,
    pub version: S<'a>,
}

/// `service.origin.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct ServiceOrigin<'a> {
    pub id: S<'a>,
    pub name: S<'a>,
    pub version: S<'a>,
}

/// `service.target.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct ServiceTarget<'a> {
    pub r#type: S<'a>,
    pub name: S<'a>,
}

/// `service.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Service<'a> {
    pub name: S<'a>,
    pub version: S<'a>,
    pub environment: S<'a>,
    pub node_name: S<'a>,
    pub framework: Option<NameVersion<'a>>,
    pub language: Option<NameVersion<'a>>,
    pub runtime: Option<NameVersion<'a>>,
    pub origin: Option<ServiceOrigin<'a>>,
    pub target: Option<ServiceTarget<'a>>,
}

/// `host.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Host<'a> {
    pub architecture: S<'a>,
    pub hostname: S<'a>,
    pub name: S<'a>,
    pub id: S<'a>,
    pub ip: Vec<IpAddr>,
    pub os_platform: S<'a>,
    /// `host.type` (OTLP resources).
    pub r#type: S<'a>,
    /// `host.os.full`, `name`, `version` and `type` (OTLP resources).
    pub os_full: S<'a>,
    pub os_name: S<'a>,
    pub os_version: S<'a>,
    pub os_type: S<'a>,
}

/// `process.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Process<'a> {
    pub pid: u32,
    pub ppid: u32,
    pub title: S<'a>,
    pub argv: Vec<S<'a>>,
    pub thread_name: S<'a>,
    /// `process.command_line` and `process.executable` (OTLP resources).
    pub command_line: S<'a>,
    pub executable: S<'a>,
}

/// `container.*` besides `container.id` (OTLP resources).
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Container<'a> {
    pub name: S<'a>,
    pub runtime: S<'a>,
    pub image_name: S<'a>,
    pub image_tag: S<'a>,
}

/// `kubernetes.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Kubernetes<'a> {
    pub namespace: S<'a>,
    pub node_name: S<'a>,
    pub pod_name: S<'a>,
    pub pod_uid: S<'a>,
}

/// `cloud.origin.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct CloudOrigin<'a> {
    pub account_id: S<'a>,
    pub provider: S<'a>,
    pub region: S<'a>,
    pub service_name: S<'a>,
}

/// `cloud.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Cloud<'a> {
    pub account_id: S<'a>,
    pub account_name: S<'a>,
    pub availability_zone: S<'a>,
    pub instance_id: S<'a>,
    pub instance_name: S<'a>,
    pub machine_type: S<'a>,
    pub project_id: S<'a>,
    pub project_name: S<'a>,
    pub provider: S<'a>,
    pub region: S<'a>,
    pub service_name: S<'a>,
    pub origin: Option<CloudOrigin<'a>>,
}

/// `user.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct User<'a> {
    pub domain: S<'a>,
    pub id: S<'a>,
    pub email: S<'a>,
    pub name: S<'a>,
}

/// `network.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Network<'a> {
    pub connection_type: S<'a>,
    pub connection_subtype: S<'a>,
    pub carrier_name: S<'a>,
    pub carrier_mcc: S<'a>,
    pub carrier_mnc: S<'a>,
    pub carrier_icc: S<'a>,
}

/// `faas.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Faas<'a> {
    pub id: S<'a>,
    pub coldstart: Option<bool>,
    pub execution: S<'a>,
    pub trigger_type: S<'a>,
    pub trigger_request_id: S<'a>,
    pub name: S<'a>,
    pub version: S<'a>,
}

/// One stack frame.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Frame<'a> {
    pub abs_path: S<'a>,
    pub filename: S<'a>,
    pub classname: S<'a>,
    pub function: S<'a>,
    pub module: S<'a>,
    pub context_line: S<'a>,
    pub lineno: Option<u32>,
    pub colno: Option<u32>,
    pub pre_context: Vec<S<'a>>,
    pub post_context: Vec<S<'a>>,
    pub vars: Option<Object>,
    pub library_frame: bool,
    pub exclude_from_grouping: bool,
    /// What APM Server's RUM processors recorded on the frame (`original.*`, `sourcemap.*`);
    /// `None` until one of them ran. (The name predates source mapping: the decoders set it.)
    pub original_library_frame: Option<Box<FrameRum<'a>>>,
}

/// What the RUM processors recorded on a stack frame: the values source mapping replaced, the
/// agent's `library_frame` once the library pattern ran, and the outcome of source mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameRum<'a> {
    /// `original.library_frame`: the agent's value, kept when the library pattern ran.
    pub library_frame: bool,
    /// `original.abs_path` (written with `sourcemap.updated`).
    pub abs_path: S<'a>,
    /// `original.filename`.
    pub filename: S<'a>,
    /// `original.classname`.
    pub classname: S<'a>,
    /// `original.function`.
    pub function: S<'a>,
    /// `original.lineno`.
    pub lineno: Option<u32>,
    /// `original.colno`.
    pub colno: Option<u32>,
    /// `sourcemap.updated`: the frame was mapped to its original source.
    pub sourcemap_updated: bool,
    /// `sourcemap.error`: why no source map could be had.
    pub sourcemap_error: String,
}

/// An exception and its causes.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Exception<'a> {
    pub message: S<'a>,
    pub module: S<'a>,
    pub code: S<'a>,
    pub r#type: S<'a>,
    pub handled: Option<bool>,
    pub attributes: Option<Object>,
    pub stacktrace: Vec<Frame<'a>>,
    pub cause: Vec<Exception<'a>>,
    /// A stack trace was given though no frame was read from it (an OTLP exception whose
    /// trace is kept as `error.stack_trace` text): APM Server's grouping key then hashes the
    /// (absent) frames instead of the messages.
    pub unparsed_stacktrace: bool,
}

/// `error.log.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct ErrorLog<'a> {
    pub message: S<'a>,
    pub param_message: S<'a>,
    pub logger_name: S<'a>,
    pub level: S<'a>,
    pub stacktrace: Vec<Frame<'a>>,
}

/// `error.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Error<'a> {
    pub id: S<'a>,
    pub culprit: S<'a>,
    pub grouping_key: String,
    pub message: S<'a>,
    pub r#type: S<'a>,
    pub stack_trace: S<'a>,
    pub custom: Option<Object>,
    pub exception: Option<Exception<'a>>,
    pub log: Option<ErrorLog<'a>>,
}

/// `span.message.*` / `transaction.message.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Message<'a> {
    pub queue_name: S<'a>,
    pub routing_key: S<'a>,
    pub body: S<'a>,
    pub headers: Headers<'a>,
    pub age_ms: Option<u64>,
}

/// HTTP headers: canonical key and values.
pub type Headers<'a> = Vec<(S<'a>, Vec<S<'a>>)>;

/// `span.db.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Db<'a> {
    pub instance: S<'a>,
    pub link: S<'a>,
    pub statement: S<'a>,
    pub r#type: S<'a>,
    pub user_name: S<'a>,
    pub rows_affected: Option<u32>,
}

/// `span.destination.service.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct DestinationService<'a> {
    pub name: S<'a>,
    pub resource: S<'a>,
    pub r#type: S<'a>,
    /// Aggregated metrics only: `response_time.count` and `response_time.sum.us`.
    pub response_time: Option<(u64, u64)>,
}

/// `span.composite.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Composite {
    pub count: u32,
    /// Milliseconds, as sent.
    pub sum_ms: f64,
    pub strategy: &'static str,
}

/// A span link.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Link<'a> {
    pub span_id: S<'a>,
    pub trace_id: S<'a>,
}

/// `span.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Span<'a> {
    pub id: S<'a>,
    pub name: S<'a>,
    pub r#type: S<'a>,
    pub subtype: S<'a>,
    pub action: S<'a>,
    pub kind: S<'a>,
    pub representative_count: f64,
    pub sync: Option<bool>,
    pub db: Option<Db<'a>>,
    pub message: Option<Message<'a>>,
    pub destination_service: Option<DestinationService<'a>>,
    pub composite: Option<Composite>,
    pub stacktrace: Vec<Frame<'a>>,
    pub links: Vec<Link<'a>>,
    /// Breakdown metrics: count and sum in nanoseconds.
    pub self_time: Option<(u64, u64)>,
}

/// `transaction.span_count.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct SpanCount {
    pub started: Option<u32>,
    pub dropped: Option<u32>,
}

/// `transaction.experience.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct UserExperience {
    pub cls: f64,
    pub fid: f64,
    pub tbt: f64,
    /// count, sum, max
    pub longtask: Option<(u64, f64, f64)>,
}

/// `transaction.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Transaction<'a> {
    pub id: S<'a>,
    pub name: S<'a>,
    pub r#type: S<'a>,
    pub result: S<'a>,
    pub sampled: bool,
    pub representative_count: f64,
    pub span_count: Option<SpanCount>,
    pub marks: Vec<(S<'a>, Vec<(S<'a>, f64)>)>,
    pub custom: Option<Object>,
    pub message: Option<Message<'a>>,
    pub user_experience: Option<UserExperience>,
    pub profiler_stack_trace_ids: Vec<S<'a>>,
    /// What the agent counted of the spans it dropped (aggregated into service destination
    /// metrics; not written to the transaction's document).
    pub dropped_spans_stats: Vec<DroppedSpanStats<'a>>,
    /// Aggregated metrics only: whether the groups' transactions are trace roots.
    pub root: bool,
    /// Aggregated metrics only: `duration.histogram` (values in µs, counts).
    pub duration_histogram: Option<(Vec<f64>, Vec<u64>)>,
    /// Aggregated metrics only: `duration.summary` (value count, sum in µs).
    pub duration_summary: Option<(u64, f64)>,
}

/// One entry of a transaction's `dropped_spans_stats`: spans the agent did not send, per
/// destination and outcome.
#[derive(Clone, Debug, Default)]
pub struct DroppedSpanStats<'a> {
    /// `span.destination.service.resource` of the dropped spans.
    pub destination_service_resource: S<'a>,
    /// `service.target.type` of the dropped spans.
    pub service_target_type: S<'a>,
    /// `service.target.name` of the dropped spans.
    pub service_target_name: S<'a>,
    /// Their outcome.
    pub outcome: S<'a>,
    /// How many were dropped.
    pub count: u64,
    /// Their summed duration in microseconds.
    pub sum_us: u64,
}

/// One metricset sample.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Sample<'a> {
    pub name: S<'a>,
    pub r#type: &'static str,
    pub unit: S<'a>,
    pub value: f64,
    pub histogram: Option<(Vec<f64>, Vec<u64>)>,
    /// A summary's value count and sum (`type` "summary").
    pub summary: Option<(u64, f64)>,
}

/// `metricset.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Metricset<'a> {
    pub name: &'static str,
    /// Aggregated metrics only: `1m`, `10m`, `60m`.
    pub interval: S<'a>,
    pub samples: Vec<Sample<'a>>,
    /// Aggregated metrics only: the events the document stands for (`_doc_count`).
    pub doc_count: u64,
}

/// `event.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct EventField<'a> {
    /// Nanoseconds.
    pub duration: u64,
    pub outcome: S<'a>,
    pub kind: S<'a>,
    pub dataset: S<'a>,
    /// `event.severity` (OTLP log records' severity number).
    pub severity: u64,
    /// `event.category`, `event.action` and `event.type` (OTLP mobile events and errors).
    pub category: S<'a>,
    pub action: S<'a>,
    pub r#type: S<'a>,
    /// Aggregated metrics only: `success_count` (value count, sum).
    pub success_count: Option<(u64, f64)>,
}

/// `http.request.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct HttpRequest<'a> {
    pub method: S<'a>,
    pub id: S<'a>,
    pub referrer: S<'a>,
    pub headers: Headers<'a>,
    pub cookies: Option<Object>,
    pub env: Option<Object>,
    pub body: Option<Value>,
}

/// `http.response.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct HttpResponse<'a> {
    pub status_code: u32,
    pub headers: Headers<'a>,
    pub finished: Option<bool>,
    pub headers_sent: Option<bool>,
    pub transfer_size: Option<u64>,
    pub encoded_body_size: Option<u64>,
    pub decoded_body_size: Option<u64>,
}

/// `http.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Http<'a> {
    pub version: S<'a>,
    pub request: Option<HttpRequest<'a>>,
    pub response: Option<HttpResponse<'a>>,
}

/// `url.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Url<'a> {
    pub original: S<'a>,
    pub full: S<'a>,
    pub domain: S<'a>,
    pub path: S<'a>,
    pub query: S<'a>,
    pub fragment: S<'a>,
    pub scheme: S<'a>,
    pub port: u32,
}

/// `log.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Log<'a> {
    pub level: S<'a>,
    pub logger: S<'a>,
    pub origin_function: S<'a>,
    pub origin_file_name: S<'a>,
    pub origin_file_line: u32,
    pub origin_set: bool,
}

/// `source.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Source<'a> {
    pub ip: Option<IpAddr>,
    pub port: u32,
    pub domain: S<'a>,
    pub nat_ip: Option<IpAddr>,
}

/// `client.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Client<'a> {
    pub ip: Option<IpAddr>,
    pub port: u32,
    pub domain: S<'a>,
}

/// `destination.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Destination<'a> {
    pub address: S<'a>,
    pub port: u32,
}

/// `device.*` (OTLP resources of mobile SDKs).
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Device<'a> {
    pub id: S<'a>,
    pub manufacturer: S<'a>,
    pub model_identifier: S<'a>,
    pub model_name: S<'a>,
}

/// `session.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Session<'a> {
    pub id: S<'a>,
    pub sequence: u64,
}

/// `data_stream.*`
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct DataStream {
    pub r#type: &'static str,
    pub dataset: Cow<'static, str>,
    pub namespace: String,
}

/// One APM event.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct ApmEvent<'a> {
    pub kind: Kind,
    /// Nanoseconds since the epoch.
    pub timestamp: i64,
    pub labels: Labels<'a>,
    pub message: S<'a>,
    pub agent: Agent<'a>,
    pub service: Service<'a>,
    pub host: Option<Host<'a>>,
    pub process: Option<Process<'a>>,
    pub container_id: S<'a>,
    pub container: Option<Container<'a>>,
    pub kubernetes: Option<Kubernetes<'a>>,
    pub cloud: Option<Cloud<'a>>,
    pub user: Option<User<'a>>,
    pub user_agent: S<'a>,
    pub client: Option<Client<'a>>,
    pub source: Option<Source<'a>>,
    pub network: Option<Network<'a>>,
    pub faas: Option<Faas<'a>>,
    pub trace_id: S<'a>,
    pub parent_id: S<'a>,
    pub child_ids: Vec<S<'a>>,
    pub transaction: Option<Transaction<'a>>,
    pub span: Option<Span<'a>>,
    pub error: Option<Error<'a>>,
    pub metricset: Option<Metricset<'a>>,
    pub event: Option<EventField<'a>>,
    pub http: Option<Http<'a>>,
    pub url: Option<Url<'a>>,
    pub log: Option<Log<'a>>,
    pub destination: Option<Destination<'a>>,
    pub device: Option<Device<'a>>,
    pub session: Option<Session<'a>>,
    pub observer_hostname: S<'a>,
    pub observer_version: &'static str,
    pub data_stream: DataStream,
}

impl<'a> ApmEvent<'a> {
    /// `event.*`, created on first use.
    pub fn event_mut(&mut self) -> &mut EventField<'a> {
        self.event.get_or_insert_with(Default::default)
    }
    /// `http.*`, created on first use.
    pub fn http_mut(&mut self) -> &mut Http<'a> {
        self.http.get_or_insert_with(Default::default)
    }
    /// `span.*`, created on first use.
    pub fn span_mut(&mut self) -> &mut Span<'a> {
        self.span.get_or_insert_with(Default::default)
    }
    /// `transaction.*`, created on first use.
    pub fn transaction_mut(&mut self) -> &mut Transaction<'a> {
        self.transaction.get_or_insert_with(Default::default)
    }
}
