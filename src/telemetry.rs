//! Metrics (Prometheus text format) and logs (`tracing`, human or ECS JSON).
//!
//! Metrics are counters and gauges with small, fixed label sets; nothing here ever records a
//! secret, a header value or a document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Counter names and their help text.
const COUNTERS: [(&str, &str); 7] = [
    (
        "apmgate_requests_total",
        "Requests answered, by listener, route, protocol and status.",
    ),
    (
        "apmgate_events_accepted_total",
        "Events accepted into the output, by route.",
    ),
    (
        "apmgate_events_rejected_total",
        "Events rejected, by reason.",
    ),
    (
        "apmgate_access_denied_total",
        "Requests refused by access control, by reason.",
    ),
    (
        "apmgate_rate_limited_total",
        "Requests or batches refused by the anonymous rate limit.",
    ),
    (
        "apmgate_bytes_received_total",
        "Decompressed intake bytes read, by route.",
    ),
    (
        "apmgate_connections_total",
        "Connections accepted, by listener and transport.",
    ),
];

/// A counter: its name and label pairs.
type CounterKey = (&'static str, Vec<(&'static str, String)>);

/// The gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<CounterKey, u64>>,
    in_flight: AtomicI64,
    connections: AtomicI64,
}

impl Metrics {
    /// Adds to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        if n == 0 {
            return;
        }
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
        );
        if let Ok(mut c) = self.counters.lock() {
            *c.entry(key).or_default() += n;
        }
    }

    /// A counter's value (for tests and `explain`).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let key = (
            name,
            labels
                .iter()
                .map(|(k, v)| (*k, (*v).to_string()))
                .collect::<Vec<_>>(),
        );
        self.counters
            .lock()
            .ok()
            .and_then(|c| c.get(&key).copied())
            .unwrap_or(0)
    }

    /// Tracks a request in flight until the guard drops.
    pub fn request(&self) -> Gauge<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Gauge(&self.in_flight)
    }

    /// Tracks an open connection until the guard drops.
    pub fn connection(&self) -> Gauge<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        Gauge(&self.connections)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for (name, help) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((n, labels), value) in counters.iter().filter(|((n, _), _)| *n == name) {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}=\"{}\"",
                            v.replace('\\', "\\\\")
                                .replace('"', "\\\"")
                                .replace('\n', "\\n")
                        )
                    })
                    .collect();
                let _ = writeln!(out, "{n}{{{}}} {value}", labels.join(","));
            }
        }
        let _ = writeln!(
            out,
            "# HELP apmgate_requests_in_flight Requests being handled.\n# TYPE apmgate_requests_in_flight gauge\napmgate_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP apmgate_connections_open Open connections.\n# TYPE apmgate_connections_open gauge\napmgate_connections_open {}",
            self.connections.load(Ordering::Relaxed)
        );
        out
    }
}

/// Decrements its gauge when dropped.
pub struct Gauge<'a>(&'a AtomicI64);

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// ECS JSON, one object per line.
    Json,
}

/// Installs the global subscriber (`RUST_LOG` filters; default `info`).
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let result = match format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .event_format(ecs::EcsFormat)
            .try_init(),
    };
    // A subscriber already installed (tests) is fine.
    let _ = result;
}

mod ecs {
    //! ECS JSON log lines: `@timestamp`, `log.level`, `log.logger`, `message`, `ecs.version`,
    //! and the event's fields.
    use std::fmt;

    use serde_json::{Map, Value};
    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    pub struct EcsFormat;

    struct Fields(Map<String, Value>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.insert(
                field.name().to_string(),
                Value::String(format!("{value:?}")),
            );
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0
                .insert(field.name().to_string(), Value::String(value.to_string()));
        }
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.0.insert(field.name().to_string(), Value::from(value));
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0.insert(field.name().to_string(), Value::from(value));
        }
        fn record_bool(&mut self, field: &Field, value: bool) {
            self.0.insert(field.name().to_string(), Value::from(value));
        }
    }

    impl<S, N> FormatEvent<S, N> for EcsFormat
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            _: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let mut fields = Fields(Map::new());
            event.record(&mut fields);
            let message = fields
                .0
                .remove("message")
                .unwrap_or(Value::String(String::new()));
            let mut doc = Map::new();
            doc.insert(
                "@timestamp".into(),
                Value::String(crate::telemetry::now_rfc3339()),
            );
            doc.insert(
                "log.level".into(),
                Value::String(event.metadata().level().as_str().to_ascii_lowercase()),
            );
            doc.insert(
                "log.logger".into(),
                Value::String(event.metadata().target().to_string()),
            );
            doc.insert("message".into(), message);
            doc.insert("ecs.version".into(), Value::String("1.6.0".into()));
            for (k, v) in fields.0 {
                doc.insert(k, v);
            }
            writeln!(writer, "{}", Value::Object(doc))
        }
    }
}

/// Now as RFC 3339 with milliseconds (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
