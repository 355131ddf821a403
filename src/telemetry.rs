//! Metrics (Prometheus text format) and logs (`tracing`, human or ECS JSON).
//!
//! Metrics are counters and gauges with small, fixed label sets; nothing here ever records a
//! secret, a header value or a document.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The counters, so that a misspelt name cannot compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `apmgate_requests_total`
    RequestsTotal,
    /// `apmgate_events_accepted_total`
    EventsAcceptedTotal,
    /// `apmgate_events_rejected_total`
    EventsRejectedTotal,
    /// `apmgate_access_denied_total`
    AccessDeniedTotal,
    /// `apmgate_rate_limited_total`
    RateLimitedTotal,
    /// `apmgate_bytes_received_total`
    BytesReceivedTotal,
    /// `apmgate_connections_total`
    ConnectionsTotal,
    /// `apmgate_output_documents_indexed_total`
    OutputDocumentsIndexedTotal,
    /// `apmgate_output_documents_failed_total`
    OutputDocumentsFailedTotal,
    /// `apmgate_output_documents_retried_total`
    OutputDocumentsRetriedTotal,
    /// `apmgate_output_documents_dead_lettered_total`
    OutputDocumentsDeadLetteredTotal,
    /// `apmgate_output_bulk_requests_total`
    OutputBulkRequestsTotal,
    /// `apmgate_api_key_verifications_total`
    ApiKeyVerificationsTotal,
    /// `apmgate_api_key_hashes_total`
    ApiKeyHashesTotal,
    /// `apmgate_aggregation_documents_total`
    AggregationDocumentsTotal,
    /// `apmgate_aggregation_overflow_total`
    AggregationOverflowTotal,
    /// `apmgate_agent_config_refreshes_total`
    AgentConfigRefreshesTotal,
    /// `apmgate_agent_config_requests_total`
    AgentConfigRequestsTotal,
    /// `apmgate_spool_replayed_records_total`
    SpoolReplayedTotal,
    /// `apmgate_spool_corrupt_records_total`
    SpoolCorruptTotal,
    /// `apmgate_spool_write_failures_total`
    SpoolWriteFailuresTotal,
    /// `apmgate_spool_fsyncs_total`
    SpoolFsyncsTotal,
    /// `apmgate_reloads_total`
    ReloadsTotal,
    /// `apmgate_source_map_fetches_total`
    SourceMapFetchesTotal,
}

impl Counter {
    /// Every counter, in the order they are rendered.
    pub const ALL: [Counter; 24] = [
        Counter::RequestsTotal,
        Counter::EventsAcceptedTotal,
        Counter::EventsRejectedTotal,
        Counter::AccessDeniedTotal,
        Counter::RateLimitedTotal,
        Counter::BytesReceivedTotal,
        Counter::ConnectionsTotal,
        Counter::OutputDocumentsIndexedTotal,
        Counter::OutputDocumentsFailedTotal,
        Counter::OutputDocumentsRetriedTotal,
        Counter::OutputDocumentsDeadLetteredTotal,
        Counter::OutputBulkRequestsTotal,
        Counter::ApiKeyVerificationsTotal,
        Counter::ApiKeyHashesTotal,
        Counter::AggregationDocumentsTotal,
        Counter::AggregationOverflowTotal,
        Counter::AgentConfigRefreshesTotal,
        Counter::AgentConfigRequestsTotal,
        Counter::SpoolReplayedTotal,
        Counter::SpoolCorruptTotal,
        Counter::SpoolWriteFailuresTotal,
        Counter::SpoolFsyncsTotal,
        Counter::ReloadsTotal,
        Counter::SourceMapFetchesTotal,
    ];

    /// The Prometheus name.
    pub fn name(self) -> &'static str {
        match self {
            Counter::RequestsTotal => "apmgate_requests_total",
            Counter::EventsAcceptedTotal => "apmgate_events_accepted_total",
            Counter::EventsRejectedTotal => "apmgate_events_rejected_total",
            Counter::AccessDeniedTotal => "apmgate_access_denied_total",
            Counter::RateLimitedTotal => "apmgate_rate_limited_total",
            Counter::BytesReceivedTotal => "apmgate_bytes_received_total",
            Counter::ConnectionsTotal => "apmgate_connections_total",
            Counter::OutputDocumentsIndexedTotal => "apmgate_output_documents_indexed_total",
            Counter::OutputDocumentsFailedTotal => "apmgate_output_documents_failed_total",
            Counter::OutputDocumentsRetriedTotal => "apmgate_output_documents_retried_total",
            Counter::OutputDocumentsDeadLetteredTotal => {
                "apmgate_output_documents_dead_lettered_total"
            }
            Counter::OutputBulkRequestsTotal => "apmgate_output_bulk_requests_total",
            Counter::ApiKeyVerificationsTotal => "apmgate_api_key_verifications_total",
            Counter::ApiKeyHashesTotal => "apmgate_api_key_hashes_total",
            Counter::AggregationDocumentsTotal => "apmgate_aggregation_documents_total",
            Counter::AggregationOverflowTotal => "apmgate_aggregation_overflow_total",
            Counter::AgentConfigRefreshesTotal => "apmgate_agent_config_refreshes_total",
            Counter::AgentConfigRequestsTotal => "apmgate_agent_config_requests_total",
            Counter::SpoolReplayedTotal => "apmgate_spool_replayed_records_total",
            Counter::SpoolCorruptTotal => "apmgate_spool_corrupt_records_total",
            Counter::SpoolWriteFailuresTotal => "apmgate_spool_write_failures_total",
            Counter::SpoolFsyncsTotal => "apmgate_spool_fsyncs_total",
            Counter::ReloadsTotal => "apmgate_reloads_total",
            Counter::SourceMapFetchesTotal => "apmgate_source_map_fetches_total",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Counter::RequestsTotal => "Requests answered, by listener, route, protocol and status.",
            Counter::EventsAcceptedTotal => "Events accepted into the output, by route.",
            Counter::EventsRejectedTotal => "Events rejected, by reason.",
            Counter::AccessDeniedTotal => "Requests refused by access control, by reason.",
            Counter::RateLimitedTotal => "Requests or batches refused by the anonymous rate limit.",
            Counter::BytesReceivedTotal => "Decompressed intake bytes read, by route.",
            Counter::ConnectionsTotal => "Connections accepted, by listener and transport.",
            Counter::OutputDocumentsIndexedTotal => {
                "Documents Elasticsearch confirmed (created), by whether they went to a failure store."
            }
            Counter::OutputDocumentsFailedTotal => {
                "Documents that will not be indexed, by reason (Elasticsearch's error.type, or why the output gave up)."
            }
            Counter::OutputDocumentsRetriedTotal => "Documents sent again, by reason.",
            Counter::OutputDocumentsDeadLetteredTotal => {
                "Failed documents written to the dead-letter file."
            }
            Counter::OutputBulkRequestsTotal => {
                "Bulk requests answered, by HTTP status (or network_error)."
            }
            Counter::ApiKeyVerificationsTotal => {
                "API keys verified by Elasticsearch, by result (valid, invalid, unavailable, cached)."
            }
            Counter::ApiKeyHashesTotal => {
                "Declared API keys checked against their Argon2 hash, by result (valid, invalid, or busy: refused at once because every verifier was taken)."
            }
            Counter::AggregationDocumentsTotal => {
                "Aggregated metric documents handed to the output, by metric set and interval."
            }
            Counter::AggregationOverflowTotal => {
                "Events whose group did not fit the aggregation limits and went to an `_other` bucket, by metric set."
            }
            Counter::AgentConfigRefreshesTotal => {
                "Reads of `.apm-agent-configuration`, by result (success, failure, unauthorized)."
            }
            Counter::AgentConfigRequestsTotal => {
                "Central configuration requests, by where the answer came from (policy, elasticsearch, none, not_ready, unauthorized)."
            }
            Counter::SpoolReplayedTotal => {
                "Documents found in the spool at start and sent again (not acknowledged before the last stop)."
            }
            Counter::SpoolCorruptTotal => {
                "Torn or corrupt spool records found at start (each ends what is read of its file)."
            }
            Counter::SpoolWriteFailuresTotal => {
                "Batches the spool could not write (full disk, I/O error), answered 503."
            }
            Counter::SpoolFsyncsTotal => {
                "fsyncs of the spool (each covers every batch written before it)."
            }
            Counter::ReloadsTotal => {
                "Policy reloads, by result (applied; refused: the new policy, or a listener's TLS, could not be loaded)."
            }
            Counter::SourceMapFetchesTotal => {
                "Source maps read from Elasticsearch, by result (found, missing, malformed, too_large, unavailable)."
            }
        }
    }
}

/// The gauges: each has one cell, set by whoever owns the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gauge {
    /// `apmgate_intake_memory_bytes`
    IntakeMemoryBytes,
    /// `apmgate_intake_memory_capacity_bytes`
    IntakeMemoryCapacityBytes,
    /// `apmgate_output_buffer_bytes`
    BufferBytes,
    /// `apmgate_output_buffer_capacity_bytes`
    BufferCapacityBytes,
    /// `apmgate_output_requests_in_flight`
    RequestsInFlight,
    /// `apmgate_output_publish_ready`
    PublishReady,
    /// `apmgate_output_buffer_documents`
    BufferDocuments,
    /// `apmgate_agent_config_entries`
    AgentConfigEntries,
    /// `apmgate_spool_bytes`
    SpoolBytes,
    /// `apmgate_spool_records`
    SpoolRecords,
    /// `apmgate_spool_oldest_unacknowledged_timestamp_seconds`
    SpoolOldestUnacknowledgedTimestamp,
}

impl Gauge {
    /// Every gauge, in the order they are rendered.
    pub const ALL: [Gauge; 11] = [
        Gauge::IntakeMemoryBytes,
        Gauge::IntakeMemoryCapacityBytes,
        Gauge::BufferBytes,
        Gauge::BufferCapacityBytes,
        Gauge::RequestsInFlight,
        Gauge::PublishReady,
        Gauge::BufferDocuments,
        Gauge::AgentConfigEntries,
        Gauge::SpoolBytes,
        Gauge::SpoolRecords,
        Gauge::SpoolOldestUnacknowledgedTimestamp,
    ];

    /// The Prometheus name.
    pub fn name(self) -> &'static str {
        match self {
            Gauge::IntakeMemoryBytes => "apmgate_intake_memory_bytes",
            Gauge::IntakeMemoryCapacityBytes => "apmgate_intake_memory_capacity_bytes",
            Gauge::BufferBytes => "apmgate_output_buffer_bytes",
            Gauge::BufferCapacityBytes => "apmgate_output_buffer_capacity_bytes",
            Gauge::RequestsInFlight => "apmgate_output_requests_in_flight",
            Gauge::PublishReady => "apmgate_output_publish_ready",
            Gauge::BufferDocuments => "apmgate_output_buffer_documents",
            Gauge::AgentConfigEntries => "apmgate_agent_config_entries",
            Gauge::SpoolBytes => "apmgate_spool_bytes",
            Gauge::SpoolRecords => "apmgate_spool_records",
            Gauge::SpoolOldestUnacknowledgedTimestamp => {
                "apmgate_spool_oldest_unacknowledged_timestamp_seconds"
            }
        }
    }

    fn help(self) -> &'static str {
        match self {
            Gauge::IntakeMemoryBytes => {
                "Bytes the requests being decoded hold of the intake's memory budget."
            }
            Gauge::IntakeMemoryCapacityBytes => "The intake's memory budget (max_intake_memory).",
            Gauge::BufferBytes => {
                "Bytes of accepted documents the output holds (queued, in flight or waiting for a retry)."
            }
            Gauge::BufferCapacityBytes => "The output buffer's bound in bytes.",
            Gauge::RequestsInFlight => "Bulk requests in flight.",
            Gauge::PublishReady => "1 once the output's startup check passed.",
            Gauge::BufferDocuments => "Accepted documents the output holds.",
            Gauge::AgentConfigEntries => {
                "Central configuration entries cached from Elasticsearch (-1 while reads fail and none has succeeded yet)."
            }
            Gauge::SpoolBytes => {
                "Bytes of documents the spool holds, not yet acknowledged by the output."
            }
            Gauge::SpoolRecords => "Documents the spool holds, not yet acknowledged by the output.",
            Gauge::SpoolOldestUnacknowledgedTimestamp => {
                "When the oldest document the spool holds was written (Unix seconds; 0 when it holds none)."
            }
        }
    }
}

/// The output's flush-duration histogram.
pub const FLUSH_DURATION: &str = "apmgate_output_flush_duration_seconds";
const FLUSH_DURATION_HELP: &str = "Time from sending a bulk request to its answer, in seconds.";

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

/// One series of a counter: its label pairs and its value.
struct Series {
    labels: Box<[(&'static str, Box<str>)]>,
    value: AtomicU64,
}

impl Series {
    fn is(&self, want: &[(&'static str, &str)]) -> bool {
        self.labels.len() == want.len()
            && self
                .labels
                .iter()
                .zip(want)
                .all(|((k, v), (wk, wv))| k == wk && &**v == *wv)
    }
}

/// The series of one counter. A counter has few label sets: a request finds its series by a
/// scan under a read lock (shared by every request) and adds to it atomically; only a label
/// set seen for the first time takes the write lock.
#[derive(Default)]
struct CounterCell(RwLock<Vec<Series>>);

impl CounterCell {
    fn add(&self, labels: &[(&'static str, &str)], n: u64) {
        if let Ok(series) = self.0.read() {
            if let Some(s) = series.iter().find(|s| s.is(labels)) {
                s.value.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        if let Ok(mut series) = self.0.write() {
            match series.iter().find(|s| s.is(labels)) {
                Some(s) => {
                    s.value.fetch_add(n, Ordering::Relaxed);
                }
                None => series.push(Series {
                    labels: labels.iter().map(|(k, v)| (*k, Box::from(*v))).collect(),
                    value: AtomicU64::new(n),
                }),
            }
        }
    }

    fn get(&self, labels: &[(&'static str, &str)]) -> u64 {
        self.0
            .read()
            .ok()
            .and_then(|series| {
                series
                    .iter()
                    .find(|s| s.is(labels))
                    .map(|s| s.value.load(Ordering::Relaxed))
            })
            .unwrap_or(0)
    }

    /// The series, sorted by labels, as rendered.
    fn snapshot(&self) -> Vec<(Vec<(&'static str, String)>, u64)> {
        let mut out: Vec<_> = self
            .0
            .read()
            .map(|series| {
                series
                    .iter()
                    .map(|s| {
                        (
                            s.labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
                            s.value.load(Ordering::Relaxed),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

/// The gateway's metrics.
pub struct Metrics {
    counters: [CounterCell; Counter::ALL.len()],
    in_flight: AtomicI64,
    connections: AtomicI64,
    gauges: [Arc<AtomicI64>; Gauge::ALL.len()],
    /// Which output gauges were ever asked for (only those are rendered).
    gauges_used: Mutex<Vec<Gauge>>,
    flush_durations: Mutex<Option<Histogram>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            counters: std::array::from_fn(|_| CounterCell::default()),
            in_flight: AtomicI64::new(0),
            connections: AtomicI64::new(0),
            gauges: std::array::from_fn(|_| Arc::default()),
            gauges_used: Mutex::new(Vec::new()),
            flush_durations: Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Adds to a counter.
    pub fn add(&self, counter: Counter, labels: &[(&'static str, &str)], n: u64) {
        if n > 0 {
            self.counters[counter as usize].add(labels, n);
        }
    }

    /// A counter's value, by its Prometheus name (for tests and `explain`).
    pub fn get(&self, name: &str, labels: &[(&'static str, &str)]) -> u64 {
        Counter::ALL
            .iter()
            .find(|c| c.name() == name)
            .map_or(0, |c| self.counters[*c as usize].get(labels))
    }

    /// Tracks a request in flight until the guard drops.
    pub fn request(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Tracks an open connection until the guard drops.
    pub fn connection(&self) -> InFlight<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.connections)
    }

    /// A gauge's cell, at 0 until set; whoever holds it sets it without a lock.
    pub fn gauge(&self, gauge: Gauge) -> Arc<AtomicI64> {
        if let Ok(mut used) = self.gauges_used.lock() {
            if !used.contains(&gauge) {
                used.push(gauge);
                used.sort();
            }
        }
        self.gauges[gauge as usize].clone()
    }

    /// A gauge's value, by its Prometheus name (for tests).
    pub fn gauge_value(&self, name: &str) -> i64 {
        Gauge::ALL
            .iter()
            .find(|g| g.name() == name)
            .map_or(0, |g| self.gauges[*g as usize].load(Ordering::Relaxed))
    }

    /// Records one flush duration.
    pub fn observe_flush(&self, seconds: f64) {
        if let Ok(mut h) = self.flush_durations.lock() {
            let h = h.get_or_insert_with(Histogram::default);
            if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
                h.buckets[i] += 1;
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// How many observations a histogram has, by its Prometheus name (for tests).
    pub fn observations(&self, name: &str) -> u64 {
        if name != FLUSH_DURATION {
            return 0;
        }
        self.flush_durations
            .lock()
            .ok()
            .and_then(|h| h.as_ref().map(|h| h.count))
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for counter in Counter::ALL {
            let (name, help) = (counter.name(), counter.help());
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in self.counters[counter as usize].snapshot() {
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
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
                }
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
        let used = self
            .gauges_used
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default();
        for gauge in used {
            let (name, help) = (gauge.name(), gauge.help());
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                self.gauges[gauge as usize].load(Ordering::Relaxed)
            );
        }
        let flushes = self.flush_durations.lock().ok().and_then(|h| h.clone());
        if let Some(h) = flushes {
            let name = FLUSH_DURATION;
            let _ = writeln!(
                out,
                "# HELP {name} {FLUSH_DURATION_HELP}\n# TYPE {name} histogram"
            );
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
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
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

    pub(super) struct EcsFormat;

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
