//! APM events: intake lines decoded into the Elasticsearch documents APM Server writes.
//!
//! INTERIM: this is the minimal model the runtime was built against (documents carry the
//! merged metadata, `@timestamp`, client IP and user agent). The full decoder, validation and
//! encoder of issue #5 replaces this file; the contract (names and shapes) stays.
//! The model knows nothing of HTTP.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// The APM Server version whose behaviour apmgate reproduces.
pub const APM_SERVER_VERSION: &str = "9.5.2";

/// What the intake path knows of the request.
#[derive(Debug, Clone)]
pub struct RequestMeta<'a> {
    /// When the request arrived.
    pub receipt_time: SystemTime,
    /// Arrived on a RUM route.
    pub rum: bool,
    /// Client address.
    pub client_ip: Option<IpAddr>,
    /// Client port.
    pub client_port: Option<u16>,
    /// The socket peer when a trusted proxy header gave `client_ip`.
    pub nat_ip: Option<IpAddr>,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
}

/// Model settings from the compiled policy.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Data stream namespace.
    pub namespace: String,
    /// Default `service.environment`.
    pub default_service_environment: Option<String>,
    /// Record client IP and user agent.
    pub capture_personal_data: bool,
    /// RUM library frame pattern.
    pub library_pattern: Option<regex::Regex>,
    /// RUM exclude-from-grouping pattern.
    pub exclude_from_grouping: Option<regex::Regex>,
    /// `observer.version`.
    pub observer_version: &'static str,
}

/// A problem with one line, worded as APM Server words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError {
    /// The message.
    pub message: String,
}

impl ModelError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Decoded metadata.
#[derive(Debug, Clone)]
pub struct Metadata {
    fields: Map<String, Value>,
}

/// A document for the output.
#[derive(Debug, Clone)]
pub struct Document {
    /// Data stream.
    pub data_stream: String,
    /// JSON body.
    pub body: Vec<u8>,
    /// `agent.name`.
    pub agent_name: Option<String>,
    /// `service.name`.
    pub service_name: Option<String>,
}

/// The documents of one line.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    /// Documents.
    pub documents: Vec<Document>,
    /// Events accepted.
    pub accepted: usize,
}

/// The first quoted key of a line (single or double quotes), as APM Server identifies objects.
pub fn first_key(line: &[u8]) -> Option<&str> {
    let start = line.iter().position(|b| *b == b'"' || *b == b'\'')?;
    let quote = line[start];
    let rest = &line[start + 1..];
    let end = rest.iter().position(|b| *b == quote)?;
    std::str::from_utf8(&rest[..end]).ok()
}

fn parse(line: &[u8]) -> Result<Map<String, Value>, ModelError> {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ModelError::new(
            "decode error: data read error: not an object",
        )),
        Err(e) => Err(ModelError::new(format!(
            "decode error: data read error: {e}"
        ))),
    }
}

/// Decodes a metadata line (`metadata` or `m`).
pub fn decode_metadata(line: &[u8]) -> Result<Metadata, ModelError> {
    match first_key(line) {
        Some("metadata" | "m") => {}
        _ => return Err(ModelError::new("\"metadata\" or \"m\" required")),
    }
    let mut root = parse(line)?;
    let body = root.remove("metadata").or_else(|| root.remove("m"));
    match body {
        Some(Value::Object(m)) if m.get("service").is_some_and(Value::is_object) => {
            Ok(Metadata { fields: m })
        }
        _ => Err(ModelError::new("validation error: 'metadata' required")),
    }
}

fn data_stream(kind: &str, service: Option<&str>, rum: bool, namespace: &str) -> String {
    let svc = service.unwrap_or("unknown").to_lowercase().replace(
        [
            '\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':', '-',
        ],
        "_",
    );
    match kind {
        "transaction" | "span" if rum => format!("traces-apm.rum-{namespace}"),
        "transaction" | "span" => format!("traces-apm-{namespace}"),
        "error" => format!("logs-apm.error-{namespace}"),
        "log" => format!("logs-apm.app.{svc}-{namespace}"),
        _ => format!("metrics-apm.app.{svc}-{namespace}"),
    }
}

/// Decodes one event line into documents.
pub fn decode_event(
    line: &[u8],
    metadata: &Metadata,
    request: &RequestMeta<'_>,
    config: &ModelConfig,
) -> Result<Decoded, ModelError> {
    let kind = match first_key(line) {
        Some(k @ ("transaction" | "span" | "error" | "metricset" | "log")) => k.to_string(),
        Some("x") => "transaction".to_string(),
        Some("y") => "span".to_string(),
        Some("e") => "error".to_string(),
        Some("me") => "metricset".to_string(),
        Some(other) => {
            return Err(ModelError::new(format!(
                "did not recognize object type: \"{other}\""
            )));
        }
        None => return Err(ModelError::new("decode error: data read error: no object")),
    };
    let mut root = parse(line)?;
    let Some(Value::Object(event)) = root.remove(first_key(line).unwrap_or_default()) else {
        return Err(ModelError::new(format!(
            "validation error: '{kind}' required"
        )));
    };
    let mut doc = metadata.fields.clone();
    let ts_field = event.get("timestamp").cloned();
    doc.insert(kind.clone(), Value::Object(event));
    if let Some(ts) = ts_field {
        doc.insert("timestamp".into(), ts);
    }
    let micros = request
        .receipt_time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let ts = doc
        .get("timestamp")
        .and_then(Value::as_i64)
        .unwrap_or(micros);
    doc.insert("@timestamp".into(), json!(format_millis(ts / 1000)));
    doc.insert("timestamp".into(), json!({ "us": ts }));
    let service = metadata
        .fields
        .get("service")
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let agent = metadata
        .fields
        .get("service")
        .and_then(|s| s.get("agent"))
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let (Some(env), Some(Value::Object(svc))) =
        (&config.default_service_environment, doc.get_mut("service"))
    {
        svc.entry("environment").or_insert_with(|| json!(env));
    }
    if config.capture_personal_data {
        if let Some(ip) = request.client_ip {
            if request.rum {
                doc.insert("client".into(), json!({ "ip": ip.to_string() }));
                if let Some(ua) = request.user_agent {
                    doc.insert("user_agent".into(), json!({ "original": ua }));
                }
            } else {
                doc.insert("host".into(), json!({ "ip": [ip.to_string()] }));
            }
        }
    }
    let ds = data_stream(&kind, service.as_deref(), request.rum, &config.namespace);
    let mut parts = ds.splitn(3, '-');
    let (t, dataset, ns) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    doc.insert(
        "data_stream".into(),
        json!({ "type": t, "dataset": dataset, "namespace": ns }),
    );
    doc.insert(
        "observer".into(),
        json!({ "type": "apm-server", "version": config.observer_version }),
    );
    let body =
        serde_json::to_vec(&Value::Object(doc)).map_err(|e| ModelError::new(e.to_string()))?;
    Ok(Decoded {
        documents: vec![Document {
            data_stream: ds,
            body,
            agent_name: agent,
            service_name: service,
        }],
        accepted: 1,
    })
}

fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
