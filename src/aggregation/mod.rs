//! Aggregation: APM Server's aggregated metrics (its `apm-aggregation` library), the step
//! between the intake and the output that Kibana's APM app depends on.
//!
//! Every accepted event is observed (`model::aggregate` says what it contributes); the
//! [`Aggregator`] keeps, for each interval (1m, 10m and 60m by default), a [`window::Window`]
//! of groups for the current stretch of processing time, bounded by the policy's limits. When
//! a window closes its groups become documents (`model::aggregate` writes them) and go to the
//! output like any others; at shutdown every partial window is written before the output
//! drains, so nothing aggregated is lost at a clean stop. The aggregator lives beside the
//! policy, not in it: a reload changes the limits and intervals of the windows opened after it
//! and keeps what was aggregated.

pub mod distinct;
pub mod hdr;
pub mod window;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, watch};

use crate::model::aggregate::{
    MetricContext, OVERFLOW_BUCKET, Observation, ServiceTransactionKey, SpanKey, TransactionKey,
};
use crate::model::{Document, ModelConfig};
use crate::output::{Output, OutputDocument, PublishError};
use crate::policy::compiled::AggregationSettings;
use crate::telemetry::{Counter, Metrics};
use window::{Overflow, Overflowed, Window};

/// The group limits of one window, from the policy or sized from memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Services per window.
    pub max_services: usize,
    /// Transaction groups per window.
    pub max_transaction_groups: usize,
    /// Transaction groups per service.
    pub max_transaction_groups_per_service: usize,
    /// Service transaction groups per window.
    pub max_service_transaction_groups: usize,
    /// Service transaction groups per service.
    pub max_service_transaction_groups_per_service: usize,
    /// Service destination groups per window.
    pub max_span_groups: usize,
    /// Service destination groups per service.
    pub max_span_groups_per_service: usize,
}

/// APM Server counts at most this much memory when it sizes its limits.
const MAX_COUNTED_GIB: f64 = 64.0;

impl Limits {
    /// The limits of `settings`, those it leaves unset sized from `memory` bytes as APM Server
    /// sizes them (per GiB: 1,000 services, 5,000 transaction groups, 1,000 service transaction
    /// groups, 5,000 service destination groups plus 5,000), a tenth of each per service.
    pub fn new(settings: &AggregationSettings, memory: u64) -> Self {
        let gib = (memory as f64 / f64::from(1u32 << 30)).min(MAX_COUNTED_GIB);
        let scaled = |set: Option<u32>, per_gib: f64, constant: f64| -> usize {
            set.map_or_else(|| (gib * per_gib + constant) as usize, |n| n as usize)
                .max(1)
        };
        let per_service = |n: usize| (n / 10).max(1);
        let max_services = scaled(settings.max_services, 1000.0, 0.0);
        let tx = scaled(settings.max_transaction_groups, 5000.0, 0.0);
        let stx = scaled(settings.max_service_transaction_groups, 1000.0, 0.0);
        let spans = scaled(settings.max_service_destination_groups, 5000.0, 5000.0);
        Self {
            max_services,
            max_transaction_groups: tx,
            max_transaction_groups_per_service: per_service(tx),
            max_service_transaction_groups: stx,
            max_service_transaction_groups_per_service: per_service(stx),
            max_span_groups: spans,
            max_span_groups_per_service: per_service(spans),
        }
    }
}

/// `metricset.interval` as APM Server writes it: whole minutes (`1m`, `60m`), else seconds.
pub fn interval_name(interval: Duration) -> String {
    let secs = interval.as_secs_f64();
    if secs >= 60.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{secs:.0}s")
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Nanoseconds since the epoch.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, nanos)
}

/// The aggregation state of a running gateway.
pub struct Aggregator {
    windows: Mutex<Vec<Window>>,
    memory: u64,
    metrics: Arc<Metrics>,
    opened: Notify,
}

/// Aggregated documents are handed to the output this many at a time.
const PUBLISH_CHUNK: usize = 100;
/// How long a chunk the output refused waits before it is offered again.
const PUBLISH_RETRY: Duration = Duration::from_millis(500);
/// How often a chunk is offered at shutdown before it is given up (and logged).
const SHUTDOWN_ATTEMPTS: u32 = 10;

impl Aggregator {
    /// An aggregator whose unset limits are sized from `memory` bytes.
    pub fn new(memory: u64, metrics: Arc<Metrics>) -> Self {
        Self {
            windows: Mutex::new(Vec::new()),
            memory,
            metrics,
            opened: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Window>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The limits `settings` give on this machine.
    pub fn limits(&self, settings: &AggregationSettings) -> Limits {
        Limits::new(settings, self.memory)
    }

    /// Adds accepted events, now.
    pub fn record(&self, observations: &[Observation], settings: &AggregationSettings) {
        self.record_at(now_nanos(), observations, settings);
    }

    /// Adds accepted events at processing time `now` (nanoseconds since the epoch).
    pub fn record_at(
        &self,
        now: i64,
        observations: &[Observation],
        settings: &AggregationSettings,
    ) {
        if observations.is_empty() || !settings.enabled {
            return;
        }
        let limits = self.limits(settings);
        let mut opened = false;
        let mut overflowed = Overflowed::default();
        {
            let mut windows = self.lock();
            for &interval in &settings.intervals {
                let interval = nanos(interval).max(1);
                let start = now.div_euclid(interval) * interval;
                let i = match windows
                    .iter()
                    .position(|w| w.interval == interval && w.start == start)
                {
                    Some(i) => i,
                    None => {
                        windows.push(Window::new(interval, start));
                        opened = true;
                        windows.len() - 1
                    }
                };
                let w = &mut windows[i];
                let before = w.overflowed;
                for obs in observations {
                    w.record(obs, &limits);
                }
                let after = w.overflowed;
                overflowed.services += after.services - before.services;
                overflowed.transactions += after.transactions - before.transactions;
                overflowed.service_transactions +=
                    after.service_transactions - before.service_transactions;
                overflowed.spans += after.spans - before.spans;
            }
        }
        for (set, n) in [
            ("service_summary", overflowed.services),
            ("transaction", overflowed.transactions),
            ("service_transaction", overflowed.service_transactions),
            ("service_destination", overflowed.spans),
        ] {
            if n > 0 {
                self.metrics
                    .add(Counter::AggregationOverflowTotal, &[("metricset", set)], n);
            }
        }
        if opened {
            self.opened.notify_one();
        }
    }

    /// Groups held over all open windows.
    pub fn groups(&self) -> usize {
        self.lock().iter().map(Window::groups).sum()
    }

    /// When the first open window closes, nanoseconds since the epoch.
    pub fn next_close(&self) -> Option<i64> {
        self.lock()
            .iter()
            .map(|w| w.start.saturating_add(w.interval))
            .min()
    }

    /// The documents of every window closed at `now` (of every window with `all`), which are
    /// forgotten.
    pub fn harvest(
        &self,
        now: i64,
        all: bool,
        config: &ModelConfig,
        observer_hostname: &str,
    ) -> Vec<Document> {
        let closed: Vec<Window> = {
            let mut windows = self.lock();
            let (closed, open) = std::mem::take(&mut *windows)
                .into_iter()
                .partition(|w| all || w.start.saturating_add(w.interval) <= now);
            *windows = open;
            closed
        };
        let mut docs = Vec::new();
        for w in closed {
            let interval = interval_name(Duration::from_nanos(w.interval as u64));
            let before = docs.len();
            window_documents(&w, &interval, config, observer_hostname, &mut docs);
            self.count_documents(&docs[before..], &interval);
        }
        docs
    }

    fn count_documents(&self, docs: &[Document], interval: &str) {
        for set in [
            "transaction",
            "service_transaction",
            "service_summary",
            "service_destination",
        ] {
            let prefix = format!("metrics-apm.{set}.");
            let n = docs
                .iter()
                .filter(|d| d.data_stream.starts_with(&prefix))
                .count() as u64;
            if n > 0 {
                self.metrics.add(
                    Counter::AggregationDocumentsTotal,
                    &[("metricset", set), ("interval", interval)],
                    n,
                );
            }
        }
    }

    /// Writes each window's documents when it closes until `stop` turns true, then every
    /// partial window; returns once they are all handed to `output`. `config` gives the
    /// namespace and observer of the policy in force.
    pub async fn run(
        self: Arc<Self>,
        output: Arc<dyn Output>,
        config: impl Fn() -> ModelConfig + Send,
        observer_hostname: &str,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            if *stop.borrow() {
                break;
            }
            let now = now_nanos();
            let wait = self
                .next_close()
                .map_or(Duration::from_secs(3600), |close| {
                    Duration::from_nanos(close.saturating_sub(now).max(0) as u64)
                });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.opened.notified() => continue,
                _ = stop.changed() => break,
            }
            let docs = self.harvest(now_nanos(), false, &config(), observer_hostname);
            self.publish(&output, docs, &stop).await;
        }
        let docs = self.harvest(now_nanos(), true, &config(), observer_hostname);
        if !docs.is_empty() {
            tracing::info!(
                documents = docs.len(),
                "writing the aggregated metrics of the partial intervals"
            );
        }
        self.publish(&output, docs, &stop).await;
    }

    /// Hands documents to the output, waiting for room as long as the gateway runs; once it
    /// stops, a chunk is offered [`SHUTDOWN_ATTEMPTS`] more times (so that a stop never hangs
    /// on an output that stays full), then given up and logged.
    async fn publish(
        &self,
        output: &Arc<dyn Output>,
        docs: Vec<Document>,
        stop: &watch::Receiver<bool>,
    ) {
        let mut docs = docs.into_iter().map(|d| OutputDocument {
            data_stream: d.data_stream,
            body: d.body,
        });
        loop {
            let chunk: Vec<OutputDocument> = docs.by_ref().take(PUBLISH_CHUNK).collect();
            if chunk.is_empty() {
                return;
            }
            let mut tries = 0u32;
            loop {
                match output.publish(chunk.clone()).await {
                    Ok(()) => break,
                    Err(PublishError::QueueFull)
                        if !*stop.borrow() || tries < SHUTDOWN_ATTEMPTS =>
                    {
                        if *stop.borrow() {
                            tries += 1;
                        }
                        tokio::time::sleep(PUBLISH_RETRY).await;
                    }
                    Err(e) => {
                        let lost = chunk.len() + docs.len();
                        tracing::error!(
                            documents = lost,
                            error = %e,
                            "aggregated metrics could not be handed to the output"
                        );
                        return;
                    }
                }
            }
        }
    }
}

/// The documents of one window: per service its groups and its summary, then its overflow
/// buckets; then the `_other` service's.
fn window_documents(
    w: &Window,
    interval: &str,
    config: &ModelConfig,
    observer_hostname: &str,
    docs: &mut Vec<Document>,
) {
    let services = w
        .services
        .iter()
        .flat_map(|(ts, services)| services.iter().map(move |(s, m)| (ts, s, m)));
    for (timestamp, service, metrics) in services {
        let ctx = MetricContext {
            service: Some(service),
            timestamp: *timestamp,
            interval,
            with_labels: true,
            config,
            observer_hostname,
        };
        for (key, h) in &metrics.transactions {
            docs.push(ctx.transaction(&key.unpack(), &h.buckets(), None));
        }
        for (transaction_type, m) in &metrics.service_transactions {
            docs.push(ctx.service_transaction(
                &ServiceTransactionKey {
                    transaction_type: transaction_type.clone(),
                },
                &m.histogram.buckets(),
                m.success,
                m.failure,
                None,
            ));
        }
        for (key, m) in &metrics.spans {
            docs.push(ctx.service_destination(key, m.count, m.sum_ns, None));
        }
        docs.push(ctx.service_summary(None));
        // Overflow buckets are dated by processing time and carry no labels.
        let ctx = MetricContext {
            timestamp: w.start,
            with_labels: false,
            ..ctx
        };
        overflow_documents(&ctx, &metrics.overflow, docs);
    }
    if !w.other_service_count.is_empty() {
        let ctx = MetricContext {
            service: None,
            timestamp: w.start,
            interval,
            with_labels: false,
            config,
            observer_hostname,
        };
        docs.push(ctx.service_summary(Some(w.other_service_count.estimate())));
        overflow_documents(&ctx, &w.other_services, docs);
    }
}

fn overflow_documents(ctx: &MetricContext<'_>, o: &Overflow, docs: &mut Vec<Document>) {
    if !o.transaction_groups.is_empty() {
        docs.push(ctx.transaction(
            &TransactionKey::overflow(),
            &o.transaction.buckets(),
            Some(o.transaction_groups.estimate()),
        ));
    }
    if !o.service_transaction_groups.is_empty() {
        let m = &o.service_transaction;
        docs.push(ctx.service_transaction(
            &ServiceTransactionKey {
                transaction_type: OVERFLOW_BUCKET.into(),
            },
            &m.histogram.buckets(),
            m.success,
            m.failure,
            Some(o.service_transaction_groups.estimate()),
        ));
    }
    if !o.span_groups.is_empty() {
        docs.push(ctx.service_destination(
            &SpanKey {
                target_name: OVERFLOW_BUCKET.into(),
                ..Default::default()
            },
            o.span.count,
            o.span.sum_ns,
            Some(o.span_groups.estimate()),
        ));
    }
}
