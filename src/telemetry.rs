//! Metrics (Prometheus text format) and logs (`tracing`, human or ECS JSON).
//!
//! Metrics are counters and gauges with small, fixed label sets; nothing here ever records a
//! secret, a header value or a document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Counter names and their help text.
const COUNTERS: [(&str, &str); 14] = [
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
    (
        "apmgate_output_documents_indexed_total",
        "Documents Elasticsearch confirmed (created), by whether they went to a failure store.",
    ),
    (
        "apmgate_output_documents_failed_total",
        "Documents that will not be indexed, by reason (Elasticsearch's error.type, or why the output gave up).",
    ),
    (
        "apmgate_output_documents_retried_total",
        "Documents sent again, by reason.",
    ),
    (
        "apmgate_output_documents_dead_lettered_total",
        "Failed documents written to the dead-letter file.",
    ),
    (
        "apmgate_output_bulk_requests_total",
        "Bulk requests answered, by HTTP status (or network_error).",
    ),
    (
        "apmgate_api_key_verifications_total",
        "API keys verified by Elasticsearch, by result (valid, invalid, unavailable, cached).",
    ),
    (
        "apmgate_api_key_hashes_total",
        "Declared API keys checked against their Argon2 hash, by result (valid, invalid, or busy: refused at once because every verifier was taken).",
    ),
];

/// Gauges the output publishes, with their help text.
const GAUGES: [(&str, &str); 5] = [
    (
        "apmgate_output_buffer_bytes",
        "Bytes of accepted documents the output holds (queued, in flight or waiting for a retry).",
    ),
    (
        "apmgate_output_buffer_capacity_bytes",
        "The output buffer's bound in bytes.",
    ),
    (
        "apmgate_output_requests_in_flight",
        "Bulk requests in flight.",
    ),
    (
        "apmgate_output_publish_ready",
        "1 once the output's startup check passed.",
    ),
    (
        "apmgate_output_buffer_documents",
        "Accepted documents the output holds.",
    ),
];

/// Histograms, with their help text.
const HISTOGRAMS: [(&str, &str); 1] = [(
    "apmgate_output_flush_duration_seconds",
    "Time from sending a bulk request to its answer, in seconds.",
)];

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A histogram's buckets (cumulative at render time), sum and count.
#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The series of one counter: label pairs and value. A counter has few label sets, so a
/// request finds its series by a scan, with no allocation once the series exists.
type Series = Vec<(Vec<(&'static str, String)>, u64)>;

fn same_labels(have: &[(&'static str, String)], want: &[(&'static str, &str)]) -> bool {
    have.len() == want.len()
        && have
            .iter()
            .zip(want)
            .all(|((k, v), (wk, wv))| k == wk && v == wv)
}

/// The gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<&'static str, Series>>,
    in_flight: AtomicI64,
    connections: AtomicI64,
    gauges: Mutex<BTreeMap<&'static str, Arc<AtomicI64>>>,
    histograms: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Metrics {
    /// Adds to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        if n == 0 {
            return;
        }
        if let Ok(mut c) = self.counters.lock() {
            let series = c.entry(name).or_default();
            match series.iter_mut().find(|(l, _)| same_labels(l, labels)) {
                Some((_, value)) => *value += n,
                None => series.push((
                    labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
                    n,
                )),
            }
        }
    }

    /// A counter's value (for tests and `explain`).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        self.counters
            .lock()
            .ok()
            .and_then(|c| {
                c.get(name)?
                    .iter()
                    .find(|(l, _)| same_labels(l, labels))
                    .map(|(_, v)| *v)
            })
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

    /// A gauge's cell, created at 0 on first use; whoever holds it sets it without a lock.
    pub fn gauge(&self, name: &'static str) -> Arc<AtomicI64> {
        match self.gauges.lock() {
            Ok(mut g) => g.entry(name).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// A gauge's value (for tests).
    pub fn gauge_value(&self, name: &'static str) -> i64 {
        self.gauges
            .lock()
            .ok()
            .and_then(|g| g.get(name).map(|v| v.load(Ordering::Relaxed)))
            .unwrap_or(0)
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &'static str, seconds: f64) {
        if let Ok(mut h) = self.histograms.lock() {
            let h = h.entry(name).or_default();
            if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
                h.buckets[i] += 1;
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// How many observations a histogram has (for tests).
    pub fn observations(&self, name: &'static str) -> u64 {
        self.histograms
            .lock()
            .ok()
            .and_then(|h| h.get(name).map(|h| h.count))
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for (name, help) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let mut series = counters.get(name).cloned().unwrap_or_default();
            series.sort();
            for (labels, value) in series {
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
                let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
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
        let gauges = self.gauges.lock().map(|g| g.clone()).unwrap_or_default();
        for (name, help) in GAUGES {
            if let Some(v) = gauges.get(name) {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                    v.load(Ordering::Relaxed)
                );
            }
        }
        let histograms = self
            .histograms
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default();
        for (name, help) in HISTOGRAMS {
            let Some(h) = histograms.get(name) else {
                continue;
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
                h.count, h.sum, h.count
            );
        }
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
