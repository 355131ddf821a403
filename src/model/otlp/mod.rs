//! OpenTelemetry (OTLP) input: export requests of traces, metrics and logs turned into the
//! documents APM Server 9.5 writes for them, as its `apm-data/input/otlp` translates them.
//!
//! This module is the resource mapping (service, agent from `telemetry.sdk.*`, host,
//! container, Kubernetes, cloud, process, device, and every other attribute as a global label)
//! and what the three signals share; `traces`, `metrics` and `logs` map one signal each. Span attributes
//! go through the same translation as Elastic agents' bridged OTel spans (`super::otel`).
//!
//! Input is the decoded request message (the `opentelemetry-proto` types), so the OTLP/HTTP
//! route and a gRPC service call the same functions; [`decode`] reads a message from
//! protobuf or OTLP/JSON bytes. Like the rest of `model`, it knows nothing of HTTP or gRPC: what
//! it needs of the request arrives as a [`RequestMeta`].

mod logs;
mod metrics;
mod traces;

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::aggregate::{self, Observation};
use super::event::*;
use super::otel::{Attr, label_key, set_attribute_label, truncate};
use super::{Document, ModelConfig, ModelError, RequestMeta, nanos_since_epoch, non_empty};

pub use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

pub use self::logs::logs;
pub use self::metrics::metrics;
pub use self::traces::traces;

/// The three OTLP signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `/v1/traces`, `TraceService/Export`.
    Traces,
    /// `/v1/metrics`, `MetricsService/Export`.
    Metrics,
    /// `/v1/logs`, `LogsService/Export`.
    Logs,
}

/// How an export request's bytes are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Protocol buffers (`application/x-protobuf`, gRPC).
    Protobuf,
    /// OTLP/JSON (`application/json`).
    Json,
}

/// A decoded export request of any signal.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Traces.
    Traces(ExportTraceServiceRequest),
    /// Metrics.
    Metrics(ExportMetricsServiceRequest),
    /// Logs.
    Logs(ExportLogsServiceRequest),
}

/// Reads an export request of `signal` from `bytes`. The error says why the message could not
/// be read (the caller answers 400 / InvalidArgument with it).
pub fn decode(signal: Signal, encoding: Encoding, bytes: &[u8]) -> Result<Request, ModelError> {
    fn read<T: prost::Message + Default + serde::de::DeserializeOwned>(
        encoding: Encoding,
        bytes: &[u8],
    ) -> Result<T, ModelError> {
        match encoding {
            Encoding::Protobuf => {
                T::decode(bytes).map_err(|e| ModelError::new(format!("unmarshal protobuf: {e}")))
            }
            Encoding::Json => serde_json::from_slice(bytes)
                .map_err(|e| ModelError::new(format!("unmarshal JSON: {e}"))),
        }
    }
    Ok(match signal {
        Signal::Traces => Request::Traces(read(encoding, bytes)?),
        Signal::Metrics => Request::Metrics(read(encoding, bytes)?),
        Signal::Logs => Request::Logs(read(encoding, bytes)?),
    })
}

/// Maps a decoded export request (see [`traces`], [`metrics`], [`logs`]).
pub fn map(request: &Request, meta: &RequestMeta<'_>, config: &ModelConfig) -> Export {
    match request {
        Request::Traces(r) => traces(r, meta, config),
        Request::Metrics(r) => metrics(r, meta, config),
        Request::Logs(r) => logs(r, meta, config),
    }
}

/// What one export request produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Export {
    /// The documents to index.
    pub documents: Vec<Document>,
    /// The APM events accepted (what the rate limit counts).
    pub events: usize,
    /// What the events add to aggregated metrics (with [`ModelConfig::aggregate`]).
    pub observations: Vec<Observation>,
    /// Spans, data points or log records not taken (OTLP's partial success).
    pub rejected: u64,
    /// Why they were not taken (empty when none was rejected).
    pub error_message: String,
}

/// The events of one resource: processed as APM Server processes every event, then written.
/// The resource's labels are the global ones (metadata labels, for aggregation).
fn finish<'a>(
    events: Vec<ApmEvent<'a>>,
    resource_labels: &Labels<'_>,
    meta: &RequestMeta<'_>,
    config: &ModelConfig,
    out: &mut Export,
) {
    let hostname = super::observer_hostname();
    for mut ev in events {
        set_client_ip(&mut ev, meta, config);
        let indexed = super::process::process(&mut ev, false, config, hostname);
        if config.aggregate {
            out.observations
                .push(aggregate::observe(&ev, resource_labels));
        }
        out.events += 1;
        if !indexed {
            continue;
        }
        let mut body = Vec::with_capacity(512);
        super::encode::encode(&ev, &mut body);
        let ds = &ev.data_stream;
        out.documents.push(Document {
            data_stream: format!("{}-{}-{}", ds.r#type, ds.dataset, ds.namespace),
            body,
            agent_name: non_empty(&ev.agent.name),
            service_name: non_empty(&ev.service.name),
        });
    }
}

/// Mobile agents' events carry the client's address (APM Server's `SetClientMetadata` for
/// OTLP: iOS and Android only, when personal data may be captured).
fn set_client_ip(ev: &mut ApmEvent<'_>, meta: &RequestMeta<'_>, config: &ModelConfig) {
    if !config.capture_personal_data
        || !matches!(ev.agent.name.as_ref(), "iOS/swift" | "android/java")
    {
        return;
    }
    if let Some(ip) = meta.client_ip {
        let client = ev.client.get_or_insert_with(Default::default);
        if client.ip.is_none() {
            client.ip = Some(ip);
        }
    }
}

/// An attribute's value as pdata sees it; maps and bytes have no label form and are skipped.
fn attr(v: Option<&AnyValue>) -> Option<Attr<'_>> {
    match v?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(Attr::Str(s)),
        any_value::Value::BoolValue(b) => Some(Attr::Bool(*b)),
        any_value::Value::IntValue(i) => Some(Attr::Int(*i)),
        any_value::Value::DoubleValue(d) => Some(Attr::Double(*d)),
        any_value::Value::ArrayValue(a) => Some(Attr::Slice(
            a.values.iter().filter_map(|v| attr(Some(v))).collect(),
        )),
        _ => None,
    }
}

/// A request's attributes as (key, value) pairs.
fn attributes(kvs: &[KeyValue]) -> impl Iterator<Item = (&str, Attr<'_>)> {
    kvs.iter()
        .filter_map(|kv| attr(kv.value.as_ref()).map(|a| (kv.key.as_str(), a)))
}

/// `v.Str()`: the string of a string value, else "".
fn str_value(v: Option<&AnyValue>) -> &str {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s,
        _ => "",
    }
}

/// `v.AsString()`: any value as text (a log record's body).
fn value_as_string(v: &any_value::Value) -> String {
    match v {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => go_float(*d),
        _ => serde_json::to_string(&json_value(v)).unwrap_or_default(),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` as pdata prints doubles.
fn go_float(d: f64) -> String {
    if d.is_finite() && d == d.trunc() && d.abs() < 1e21 {
        format!("{d:.0}")
    } else {
        d.to_string()
    }
}

/// A value as JSON (pdata's `AsString` of maps, arrays and bytes).
fn json_value(v: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        any_value::Value::StringValue(s) => J::String(s.clone()),
        any_value::Value::BoolValue(b) => J::Bool(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => J::from(*d),
        any_value::Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map(json_value).unwrap_or(J::Null))
                .collect(),
        ),
        any_value::Value::KvlistValue(m) => J::Object(
            m.values
                .iter()
                .map(|kv| {
                    let v = kv
                        .value
                        .as_ref()
                        .and_then(|v| v.value.as_ref())
                        .map(json_value)
                        .unwrap_or(J::Null);
                    (kv.key.clone(), v)
                })
                .collect(),
        ),
        any_value::Value::BytesValue(b) => J::String(base64_std(b)),
        _ => J::Null,
    }
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Lower-case hex of an id; "" for an empty or all-zero id (pdata's `IsEmpty`).
fn hex_id(id: &[u8]) -> String {
    if id.iter().all(|&b| b == 0) {
        return String::new();
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(id.len() * 2);
    for b in id {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// OTLP's unsigned nanoseconds as the model's signed ones.
fn nanos(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn owned(s: &str) -> S<'static> {
    Cow::Owned(truncate(s).to_owned())
}

/// The event every item of a resource starts from (`translateResourceMetadata`), and the
/// time to add to the items' timestamps: the skew between the gateway's clock and the
/// exporter's, when the exporter says when it exported (`telemetry.sdk.elastic_export_timestamp`,
/// Elastic's mobile agents).
fn resource_event(resource: Option<&Resource>, meta: &RequestMeta<'_>) -> (ApmEvent<'static>, i64) {
    let mut ev = ApmEvent {
        timestamp: nanos_since_epoch(meta.receipt_time),
        ..Default::default()
    };
    let mut time_delta = 0;
    let mut exporter_version = String::new();
    let attrs: &[KeyValue] = resource.map_or(&[], |r| r.attributes.as_slice());
    for kv in attrs {
        let v = kv.value.as_ref();
        let s = || owned(str_value(v));
        match kv.key.as_str() {
            "service.name" => ev.service.name = Cow::Owned(clean_service_name(str_value(v))),
            "service.version" => ev.service.version = s(),
            "service.instance.id" => ev.service.node_name = s(),
            "deployment.environment" => ev.service.environment = s(),
            "telemetry.sdk.name" => ev.agent.name = s(),
            "telemetry.sdk.version" => ev.agent.version = s(),
            "telemetry.sdk.language" => {
                ev.service
                    .language
                    .get_or_insert_with(Default::default)
                    .name = s()
            }
            "cloud.provider" => cloud(&mut ev).provider = s(),
            "cloud.account.id" => cloud(&mut ev).account_id = s(),
            "cloud.region" => cloud(&mut ev).region = s(),
            "cloud.availability_zone" => cloud(&mut ev).availability_zone = s(),
            "cloud.platform" => cloud(&mut ev).service_name = s(),
            "container.name" => container(&mut ev).name = s(),
            "container.id" => ev.container_id = s(),
            "container.image.name" => container(&mut ev).image_name = s(),
            "container.image.tag" => container(&mut ev).image_tag = s(),
            "container.runtime" => container(&mut ev).runtime = s(),
            "k8s.namespace.name" => kubernetes(&mut ev).namespace = s(),
            "k8s.node.name" => kubernetes(&mut ev).node_name = s(),
            "k8s.pod.name" => kubernetes(&mut ev).pod_name = s(),
            "k8s.pod.uid" => kubernetes(&mut ev).pod_uid = s(),
            "host.name" => host(&mut ev).hostname = s(),
            "host.id" => host(&mut ev).id = s(),
            "host.type" => host(&mut ev).r#type = s(),
            "host.arch" => host(&mut ev).architecture = s(),
            "process.pid" => process(&mut ev).pid = int_value(v) as u32,
            "process.command_line" => process(&mut ev).command_line = s(),
            "process.executable.path" => process(&mut ev).executable = s(),
            "process.runtime.name" => {
                ev.service.runtime.get_or_insert_with(Default::default).name = s()
            }
            "process.runtime.version" => {
                ev.service
                    .runtime
                    .get_or_insert_with(Default::default)
                    .version = s()
            }
            "os.type" => {
                host(&mut ev).os_platform = Cow::Owned(truncate(str_value(v)).to_lowercase())
            }
            "os.description" => host(&mut ev).os_full = s(),
            "os.name" => host(&mut ev).os_name = s(),
            "os.version" => host(&mut ev).os_version = s(),
            "device.id" => device(&mut ev).id = s(),
            "device.model.identifier" => device(&mut ev).model_identifier = s(),
            "device.model.name" => device(&mut ev).model_name = s(),
            "device.manufacturer" => device(&mut ev).manufacturer = s(),
            "opencensus.exporterversion" => exporter_version = str_value(v).to_owned(),
            "telemetry.sdk.elastic_export_timestamp" => {
                let exported = int_value(v);
                if exported > 0 {
                    time_delta = nanos_since_epoch(meta.receipt_time) - exported;
                }
            }
            key => {
                if let Some(a) = attr(v) {
                    set_attribute_label(label_key(key), &a, &mut ev);
                }
            }
        }
    }
    if let Some(h) = &mut ev.host {
        let os_type = match h.os_platform.as_ref() {
            "windows" | "linux" => h.os_platform.to_string(),
            "darwin" => "macos".into(),
            "aix" | "hpux" | "solaris" => "unix".into(),
            _ => String::new(),
        };
        if !os_type.is_empty() {
            h.os_type = Cow::Owned(os_type);
        }
        match h.os_name.as_ref() {
            "Android" => h.os_type = Cow::Borrowed("android"),
            "iOS" => h.os_type = Cow::Borrowed("ios"),
            _ => {}
        }
    }
    jaeger(&exporter_version, &mut ev);
    if ev.service.name.is_empty() {
        ev.service.name = Cow::Borrowed("unknown");
    }
    if ev.agent.name.is_empty() {
        ev.agent.name = Cow::Borrowed("otlp");
    }
    if ev.agent.version.is_empty() {
        ev.agent.version = Cow::Borrowed("unknown");
    }
    match ev.service.language.as_ref().map(|l| l.name.to_string()) {
        Some(lang) if !lang.is_empty() => {
            ev.agent.name = Cow::Owned(format!("{}/{lang}", ev.agent.name));
        }
        _ => {
            ev.service
                .language
                .get_or_insert_with(Default::default)
                .name = Cow::Borrowed("unknown");
        }
    }
    (ev, time_delta)
}

/// OpenCensus' Jaeger exporter: `Jaeger-<language>-<version>` gives the agent and language, and
/// the `client-uuid` and `ip` labels the agent's ephemeral id and the host's address.
fn jaeger(exporter_version: &str, ev: &mut ApmEvent<'_>) {
    if !exporter_version.starts_with("Jaeger") {
        return;
    }
    let parts: Vec<&str> = exporter_version.splitn(3, '-').collect();
    let no_language = ev
        .service
        .language
        .as_ref()
        .is_none_or(|l| l.name.is_empty());
    if no_language && parts.len() == 3 {
        ev.service
            .language
            .get_or_insert_with(Default::default)
            .name = owned(parts[1]);
    }
    if let Some(v) = parts.last().filter(|v| !v.is_empty()) {
        ev.agent.version = owned(v);
    }
    ev.agent.name = Cow::Borrowed("Jaeger");
    let mut take = |key: &str| -> Option<String> {
        let i = ev.labels.strings.iter().position(|(k, _)| k == key)?;
        match ev.labels.strings.remove(i).1 {
            LabelValue::One(s) => Some(s.into_owned()),
            LabelValue::Many(_) => None,
        }
    };
    let uuid = take("client-uuid");
    let ip = take("ip");
    if let Some(uuid) = uuid {
        ev.agent.ephemeral_id = Cow::Owned(uuid);
    }
    if let Some(ip) = ip.and_then(|ip| ip.parse().ok()) {
        host(ev).ip = vec![ip];
    }
}

/// `service.name` with characters outside `[a-zA-Z0-9 _-]` replaced by `_`.
fn clean_service_name(name: &str) -> String {
    truncate(name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `v.Int()`: the integer of an int value, else 0.
fn int_value(v: Option<&AnyValue>) -> i64 {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::IntValue(i)) => *i,
        _ => 0,
    }
}

fn cloud<'x, 'a>(ev: &'x mut ApmEvent<'a>) -> &'x mut Cloud<'a> {
    ev.cloud.get_or_insert_with(Default::default)
}
fn container<'x, 'a>(ev: &'x mut ApmEvent<'a>) -> &'x mut Container<'a> {
    ev.container.get_or_insert_with(Default::default)
}
fn device<'x, 'a>(ev: &'x mut ApmEvent<'a>) -> &'x mut Device<'a> {
    ev.device.get_or_insert_with(Default::default)
}
fn kubernetes<'x, 'a>(ev: &'x mut ApmEvent<'a>) -> &'x mut Kubernetes<'a> {
    ev.kubernetes.get_or_insert_with(Default::default)
}
fn host<'x, 'a>(ev: &'x mut ApmEvent<'a>) -> &'x mut Host<'a> {
    ev.host.get_or_insert_with(Default::default)
}
fn process<'x, 'a>(ev: &'x mut ApmEvent<'a>) -> &'x mut Process<'a> {
    ev.process.get_or_insert_with(Default::default)
}

/// `service.framework.*` from the instrumentation scope, when it has a name.
fn set_framework(name: &str, version: &str, ev: &mut ApmEvent<'_>) {
    if !name.is_empty() {
        ev.service.framework = Some(NameVersion {
            name: Cow::Owned(name.to_owned()),
            version: Cow::Owned(version.to_owned()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_and_empty_when_zero() {
        assert_eq!(hex_id(&[0; 8]), "");
        assert_eq!(hex_id(&[2, 0, 0, 0, 0, 0, 0, 0xab]), "02000000000000ab");
    }

    #[test]
    fn service_names_are_cleaned() {
        assert_eq!(clean_service_name("my.service/α"), "my_service__");
    }

    #[test]
    fn doubles_print_as_go_does() {
        assert_eq!(go_float(1234.0), "1234");
        assert_eq!(go_float(1.5), "1.5");
    }
}
