//! Aggregated metrics, the model's half: what an event contributes to APM Server's four metric
//! sets (its groups and measures, an [`Observation`]), and the documents APM Server writes for a
//! group once it is aggregated (`transaction`, `service_transaction`, `service_summary` and
//! `service_destination`, in `metrics-apm.<set>.<interval>-<namespace>`).
//!
//! The keys follow apm-aggregation's converter: a service is its name, environment, language,
//! agent and global labels (labels from metadata, not the event's own) at an interval's start;
//! a transaction group adds the host, container, Kubernetes pod, cloud, FaaS, transaction name,
//! type, result, outcome and whether it is a trace root. Keeping the groups, their limits and
//! time is `aggregation`'s business; this module knows neither.

use std::borrow::Cow;

use super::event::*;
use super::{Document, ModelConfig, encode};

/// A global label's value (numbers kept as their bits so that keys can be hashed).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GlobalLabel {
    /// One string.
    Str(String),
    /// Several strings.
    Strs(Vec<String>),
    /// One number.
    Num(u64),
    /// Several numbers.
    Nums(Vec<u64>),
}

/// What identifies a service in aggregated metrics (apm-aggregation's `ServiceAggregationKey`
/// without its timestamp, which depends on the interval).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// `service.name`.
    pub name: String,
    /// `service.environment`.
    pub environment: String,
    /// `service.language.name`.
    pub language_name: String,
    /// `agent.name`.
    pub agent_name: String,
    /// Labels from metadata, sorted by key.
    pub global_labels: Vec<(String, GlobalLabel)>,
}

/// What identifies a transaction group within a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each field is the document field of the same name
pub struct TransactionKey {
    pub trace_root: bool,
    pub container_id: String,
    pub kubernetes_pod_name: String,
    pub service_version: String,
    pub service_node_name: String,
    pub service_runtime_name: String,
    pub service_runtime_version: String,
    pub service_language_version: String,
    pub host_hostname: String,
    pub host_name: String,
    pub host_os_platform: String,
    pub event_outcome: String,
    pub transaction_name: String,
    pub transaction_type: String,
    pub transaction_result: String,
    pub faas_coldstart: Option<bool>,
    pub faas_id: String,
    pub faas_name: String,
    pub faas_version: String,
    pub faas_trigger_type: String,
    pub cloud_provider: String,
    pub cloud_region: String,
    pub cloud_availability_zone: String,
    pub cloud_service_name: String,
    pub cloud_account_id: String,
    pub cloud_account_name: String,
    pub cloud_machine_type: String,
    pub cloud_project_id: String,
    pub cloud_project_name: String,
}

/// The string fields of a [`TransactionKey`], in the order they are packed.
const KEY_FIELDS: usize = 27;
const OUTCOME_FIELD: usize = 10;
const TYPE_FIELD: usize = 12;

impl TransactionKey {
    fn fields(&self) -> [&str; KEY_FIELDS] {
        [
            &self.container_id,
            &self.kubernetes_pod_name,
            &self.service_version,
            &self.service_node_name,
            &self.service_runtime_name,
            &self.service_runtime_version,
            &self.service_language_version,
            &self.host_hostname,
            &self.host_name,
            &self.host_os_platform,
            &self.event_outcome,
            &self.transaction_name,
            &self.transaction_type,
            &self.transaction_result,
            &self.faas_id,
            &self.faas_name,
            &self.faas_version,
            &self.faas_trigger_type,
            &self.cloud_provider,
            &self.cloud_region,
            &self.cloud_availability_zone,
            &self.cloud_service_name,
            &self.cloud_account_id,
            &self.cloud_account_name,
            &self.cloud_machine_type,
            &self.cloud_project_id,
            &self.cloud_project_name,
        ]
    }

    /// The key of the overflow bucket (`transaction.name: _other`).
    pub fn overflow() -> Self {
        Self {
            transaction_name: OVERFLOW_BUCKET.into(),
            ..Default::default()
        }
    }
}

/// A transaction group's key packed into one allocation (a flags byte, then each field as a
/// 4-byte length and its bytes): what an observation carries and a window stores, a few dozen
/// bytes a group instead of 27 strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PackedTransactionKey(Box<[u8]>);

impl PackedTransactionKey {
    /// Packs a key.
    pub fn new(key: &TransactionKey) -> Self {
        Self::from_fields(key.trace_root, key.faas_coldstart, &key.fields())
    }

    fn from_fields(root: bool, coldstart: Option<bool>, fields: &[&str; KEY_FIELDS]) -> Self {
        let len = 1 + fields.iter().map(|f| 4 + f.len()).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        let coldstart = match coldstart {
            None => 0,
            Some(false) => 2,
            Some(true) => 4,
        };
        out.push(u8::from(root) | coldstart);
        for f in fields {
            out.extend_from_slice(&u32::try_from(f.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(f.as_bytes());
        }
        Self(out.into_boxed_slice())
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty (never: it has its flags).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn field(&self, n: usize) -> &str {
        let mut at = 1;
        for i in 0..KEY_FIELDS {
            let len = self
                .0
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let text = self.0.get(at + 4..at + 4 + len).unwrap_or_default();
            if i == n {
                // Packed from `&str`s: always UTF-8.
                return std::str::from_utf8(text).unwrap_or_default();
            }
            at += 4 + len;
        }
        ""
    }

    /// `transaction.type`.
    pub fn transaction_type(&self) -> &str {
        self.field(TYPE_FIELD)
    }

    /// `event.outcome`.
    pub fn event_outcome(&self) -> &str {
        self.field(OUTCOME_FIELD)
    }

    /// The key again.
    pub fn unpack(&self) -> TransactionKey {
        let flags = self.0.first().copied().unwrap_or(0);
        let f = |n| self.field(n).to_owned();
        TransactionKey {
            trace_root: flags & 1 != 0,
            faas_coldstart: match flags & 6 {
                2 => Some(false),
                4 => Some(true),
                _ => None,
            },
            container_id: f(0),
            kubernetes_pod_name: f(1),
            service_version: f(2),
            service_node_name: f(3),
            service_runtime_name: f(4),
            service_runtime_version: f(5),
            service_language_version: f(6),
            host_hostname: f(7),
            host_name: f(8),
            host_os_platform: f(9),
            event_outcome: f(10),
            transaction_name: f(11),
            transaction_type: f(12),
            transaction_result: f(13),
            faas_id: f(14),
            faas_name: f(15),
            faas_version: f(16),
            faas_trigger_type: f(17),
            cloud_provider: f(18),
            cloud_region: f(19),
            cloud_availability_zone: f(20),
            cloud_service_name: f(21),
            cloud_account_id: f(22),
            cloud_account_name: f(23),
            cloud_machine_type: f(24),
            cloud_project_id: f(25),
            cloud_project_name: f(26),
        }
    }
}

/// What identifies a service transaction group within a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceTransactionKey {
    /// `transaction.type`.
    pub transaction_type: String,
}

/// What identifies a service destination group within a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpanKey {
    /// `span.name` (empty for dropped span statistics, and once a service has used half of its
    /// groups).
    pub span_name: String,
    /// `event.outcome`.
    pub outcome: String,
    /// `service.target.type`.
    pub target_type: String,
    /// `service.target.name`.
    pub target_name: String,
    /// `span.destination.service.resource`.
    pub resource: String,
}

/// The name of every overflow bucket.
pub const OVERFLOW_BUCKET: &str = "_other";

/// What one event adds to the aggregated metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    /// A transaction: its group, duration and weight, and the statistics of the spans it
    /// dropped.
    Transaction {
        /// The transaction group.
        key: PackedTransactionKey,
        /// Microseconds.
        duration_us: i64,
        /// The representative count (1 / sample rate).
        count: f64,
        /// Dropped span statistics: group, count and sum in nanoseconds, already weighted.
        dropped: Vec<(SpanKey, f64, f64)>,
    },
    /// An exit span: its destination group, weighted count and summed nanoseconds.
    Span {
        /// The destination group.
        key: SpanKey,
        /// Weighted count.
        count: f64,
        /// Weighted sum of durations, in nanoseconds.
        sum_ns: f64,
    },
    /// Any other event: it only makes its service known (`service_summary`).
    Summary,
}

/// An event as the aggregator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The event's `@timestamp`, nanoseconds since the epoch.
    pub timestamp: i64,
    /// Its service.
    pub service: ServiceKey,
    /// What it measures.
    pub measure: Measure,
}

impl Observation {
    /// Bytes the observation holds, for the intake's memory budget.
    pub fn held(&self) -> usize {
        let s = &self.service;
        let labels: usize = s
            .global_labels
            .iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        GlobalLabel::Str(x) => x.len(),
                        GlobalLabel::Strs(xs) => xs.iter().map(|x| x.len() + 24).sum(),
                        GlobalLabel::Num(_) => 8,
                        GlobalLabel::Nums(ns) => ns.len() * 8,
                    }
                    + 64
            })
            .sum();
        let measure = match &self.measure {
            Measure::Transaction { key, dropped, .. } => {
                key.len() + dropped.len() * (std::mem::size_of::<(SpanKey, f64, f64)>() + 64)
            }
            Measure::Span { key, .. } => {
                key.span_name.len()
                    + key.outcome.len()
                    + key.target_type.len()
                    + key.target_name.len()
                    + key.resource.len()
            }
            Measure::Summary => 0,
        };
        std::mem::size_of::<Self>()
            + s.name.len()
            + s.environment.len()
            + s.language_name.len()
            + s.agent_name.len()
            + labels
            + measure
    }
}

/// At most this many dropped span statistics count per transaction (the agent specification's
/// limit, which APM Server applies).
const MAX_DROPPED_SPAN_STATS: usize = 128;

fn own(s: &str) -> String {
    s.to_owned()
}

/// The observation of a processed event. `metadata_labels` are the labels of the request's
/// metadata: a label of the event is global when metadata set it and the event did not
/// change it.
pub fn observe(ev: &ApmEvent<'_>, metadata_labels: &Labels<'_>) -> Observation {
    let service = ServiceKey {
        name: own(&ev.service.name),
        environment: own(&ev.service.environment),
        language_name: ev
            .service
            .language
            .as_ref()
            .map(|l| own(&l.name))
            .unwrap_or_default(),
        agent_name: own(&ev.agent.name),
        global_labels: global_labels(&ev.labels, metadata_labels),
    };
    let measure = match ev.kind {
        Kind::Transaction => transaction_measure(ev),
        Kind::Span => span_measure(ev),
        _ => Measure::Summary,
    };
    Observation {
        timestamp: ev.timestamp,
        service,
        measure,
    }
}

fn global_labels(labels: &Labels<'_>, metadata: &Labels<'_>) -> Vec<(String, GlobalLabel)> {
    let mut out = Vec::new();
    for (k, v) in &labels.strings {
        if metadata.strings.iter().any(|(mk, mv)| mk == k && mv == v) {
            let value = match v {
                LabelValue::One(s) => GlobalLabel::Str(own(s)),
                LabelValue::Many(vs) => GlobalLabel::Strs(vs.iter().map(|s| own(s)).collect()),
            };
            out.push((own(k), value));
        }
    }
    for (k, v) in &labels.numbers {
        if metadata.numbers.iter().any(|(mk, mv)| mk == k && mv == v) {
            let value = match v {
                NumValue::One(f) => GlobalLabel::Num(f.to_bits()),
                NumValue::Many(fs) => GlobalLabel::Nums(fs.iter().map(|f| f.to_bits()).collect()),
            };
            out.push((own(k), value));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn transaction_measure<'a>(ev: &'a ApmEvent<'_>) -> Measure {
    let Some(t) = &ev.transaction else {
        return Measure::Summary;
    };
    let count = t.representative_count;
    if count <= 0.0 {
        return Measure::Summary;
    }
    let host = ev.host.as_ref();
    let cloud = ev.cloud.as_ref();
    let faas = ev.faas.as_ref();
    let runtime = ev.service.runtime.as_ref();
    let text = |s: Option<&'a S<'_>>| -> &'a str { s.map_or("", |s| s.as_ref()) };
    let key = PackedTransactionKey::from_fields(
        ev.parent_id.is_empty(),
        faas.and_then(|f| f.coldstart),
        &[
            &ev.container_id,
            text(ev.kubernetes.as_ref().map(|k| &k.pod_name)),
            &ev.service.version,
            &ev.service.node_name,
            text(runtime.map(|r| &r.name)),
            text(runtime.map(|r| &r.version)),
            text(ev.service.language.as_ref().map(|l| &l.version)),
            text(host.map(|h| &h.hostname)),
            text(host.map(|h| &h.name)),
            text(host.map(|h| &h.os_platform)),
            text(ev.event.as_ref().map(|e| &e.outcome)),
            &t.name,
            &t.r#type,
            &t.result,
            text(faas.map(|f| &f.id)),
            text(faas.map(|f| &f.name)),
            text(faas.map(|f| &f.version)),
            text(faas.map(|f| &f.trigger_type)),
            text(cloud.map(|c| &c.provider)),
            text(cloud.map(|c| &c.region)),
            text(cloud.map(|c| &c.availability_zone)),
            text(cloud.map(|c| &c.service_name)),
            text(cloud.map(|c| &c.account_id)),
            text(cloud.map(|c| &c.account_name)),
            text(cloud.map(|c| &c.machine_type)),
            text(cloud.map(|c| &c.project_id)),
            text(cloud.map(|c| &c.project_name)),
        ],
    );
    let duration_ns = ev.event.as_ref().map_or(0, |e| e.duration);
    let dropped = t
        .dropped_spans_stats
        .iter()
        .take(MAX_DROPPED_SPAN_STATS)
        .map(|d| {
            (
                SpanKey {
                    span_name: String::new(),
                    outcome: own(&d.outcome),
                    target_type: own(&d.service_target_type),
                    target_name: own(&d.service_target_name),
                    resource: own(&d.destination_service_resource),
                },
                d.count as f64 * count,
                d.sum_us as f64 * 1000.0 * count,
            )
        })
        .collect();
    Measure::Transaction {
        key,
        duration_us: i64::try_from(duration_ns / 1000).unwrap_or(i64::MAX),
        count,
        dropped,
    }
}

fn span_measure(ev: &ApmEvent<'_>) -> Measure {
    let Some(sp) = &ev.span else {
        return Measure::Summary;
    };
    let target = ev.service.target.as_ref();
    let resource = sp
        .destination_service
        .as_ref()
        .map(|d| own(&d.resource))
        .unwrap_or_default();
    let count = sp.representative_count;
    if count <= 0.0 || (target.is_none() && resource.is_empty()) {
        return Measure::Summary;
    }
    let (n, duration_ns) = match &sp.composite {
        Some(c) => (f64::from(c.count), c.sum_ms * 1_000_000.0),
        None => (1.0, ev.event.as_ref().map_or(0, |e| e.duration) as f64),
    };
    Measure::Span {
        key: SpanKey {
            span_name: own(&sp.name),
            outcome: ev
                .event
                .as_ref()
                .map(|e| own(&e.outcome))
                .unwrap_or_default(),
            target_type: target.map(|t| own(&t.r#type)).unwrap_or_default(),
            target_name: target.map(|t| own(&t.name)).unwrap_or_default(),
            resource,
        },
        count: n * count,
        sum_ns: duration_ns.trunc() * count,
    }
}

/// What every aggregated document shares: its service, interval and where it goes.
pub struct MetricContext<'a> {
    /// The service the document is for; `None` for the overflow service (`_other`).
    pub service: Option<&'a ServiceKey>,
    /// `@timestamp`, nanoseconds since the epoch.
    pub timestamp: i64,
    /// `metricset.interval`, e.g. `1m`.
    pub interval: &'a str,
    /// Whether the document carries the service's global labels (overflow documents do not).
    pub with_labels: bool,
    /// Namespace and observer.
    pub config: &'a ModelConfig,
    /// `observer.hostname`.
    pub observer_hostname: &'a str,
}

/// A histogram as written: total count, counts and values (µs).
pub type Buckets = (u64, Vec<u64>, Vec<f64>);

impl MetricContext<'_> {
    fn base(&self, name: &'static str, doc_count: u64) -> ApmEvent<'_> {
        let mut ev = ApmEvent {
            kind: Kind::Metric,
            timestamp: self.timestamp,
            ..Default::default()
        };
        match self.service {
            Some(s) => {
                ev.service.name = Cow::Borrowed(&s.name);
                ev.service.environment = Cow::Borrowed(&s.environment);
                if !s.language_name.is_empty() {
                    ev.service.language = Some(NameVersion {
                        name: Cow::Borrowed(&s.language_name),
                        version: Cow::Borrowed(""),
                    });
                }
                ev.agent.name = Cow::Borrowed(&s.agent_name);
                if self.with_labels {
                    for (k, v) in &s.global_labels {
                        match v {
                            GlobalLabel::Str(x) => ev
                                .labels
                                .set_str(Cow::Borrowed(k), LabelValue::One(Cow::Borrowed(x))),
                            GlobalLabel::Strs(xs) => ev.labels.set_str(
                                Cow::Borrowed(k),
                                LabelValue::Many(xs.iter().map(|x| Cow::Borrowed(&**x)).collect()),
                            ),
                            GlobalLabel::Num(b) => ev
                                .labels
                                .set_num(Cow::Borrowed(k), NumValue::One(f64::from_bits(*b))),
                            GlobalLabel::Nums(bs) => ev.labels.set_num(
                                Cow::Borrowed(k),
                                NumValue::Many(bs.iter().map(|b| f64::from_bits(*b)).collect()),
                            ),
                        }
                    }
                }
            }
            None => ev.service.name = Cow::Borrowed(OVERFLOW_BUCKET),
        }
        ev.metricset = Some(Metricset {
            name,
            interval: Cow::Borrowed(self.interval),
            doc_count,
            ..Default::default()
        });
        ev.observer_hostname = Cow::Borrowed(self.observer_hostname);
        ev.observer_version = self.config.observer_version;
        ev.data_stream = DataStream {
            r#type: "metrics",
            dataset: format!("apm.{name}.{}", self.interval).into(),
            namespace: self.config.namespace.clone(),
        };
        ev
    }

    fn document(&self, ev: &ApmEvent<'_>) -> Document {
        let mut body = Vec::with_capacity(512);
        encode::encode(ev, &mut body);
        let ds = &ev.data_stream;
        Document {
            data_stream: format!("{}-{}-{}", ds.r#type, ds.dataset, ds.namespace),
            body,
            agent_name: None,
            service_name: None,
        }
    }

    /// A `transaction` metric document; `overflow` is the number of groups that did not fit
    /// (the `_other` bucket's `transaction.aggregation.overflow_count`).
    pub fn transaction(
        &self,
        key: &TransactionKey,
        h: &Buckets,
        overflow: Option<u64>,
    ) -> Document {
        let (total, counts, values) = h;
        let mut ev = self.base("transaction", *total);
        let sum: f64 = values.iter().zip(counts).map(|(v, c)| v * *c as f64).sum();
        let e = ev.event_mut();
        e.outcome = Cow::Borrowed(&key.event_outcome);
        e.success_count = match key.event_outcome.as_str() {
            "success" if *total > 0 => Some((*total, *total as f64)),
            "failure" if *total > 0 => Some((*total, 0.0)),
            _ => None,
        };
        ev.transaction = Some(Transaction {
            name: Cow::Borrowed(&key.transaction_name),
            r#type: Cow::Borrowed(&key.transaction_type),
            result: Cow::Borrowed(&key.transaction_result),
            root: key.trace_root,
            duration_histogram: Some((values.clone(), counts.clone())),
            duration_summary: (*total > 0).then_some((*total, sum)),
            ..Default::default()
        });
        ev.container_id = Cow::Borrowed(&key.container_id);
        if !key.kubernetes_pod_name.is_empty() {
            ev.kubernetes = Some(Kubernetes {
                pod_name: Cow::Borrowed(&key.kubernetes_pod_name),
                ..Default::default()
            });
        }
        ev.service.version = Cow::Borrowed(&key.service_version);
        ev.service.node_name = Cow::Borrowed(&key.service_node_name);
        if !key.service_runtime_name.is_empty() || !key.service_runtime_version.is_empty() {
            ev.service.runtime = Some(NameVersion {
                name: Cow::Borrowed(&key.service_runtime_name),
                version: Cow::Borrowed(&key.service_runtime_version),
            });
        }
        if !key.service_language_version.is_empty() {
            ev.service
                .language
                .get_or_insert_with(Default::default)
                .version = Cow::Borrowed(&key.service_language_version);
        }
        if !key.host_hostname.is_empty()
            || !key.host_name.is_empty()
            || !key.host_os_platform.is_empty()
        {
            ev.host = Some(Host {
                hostname: Cow::Borrowed(&key.host_hostname),
                name: Cow::Borrowed(&key.host_name),
                os_platform: Cow::Borrowed(&key.host_os_platform),
                ..Default::default()
            });
        }
        if key.faas_coldstart.is_some()
            || !key.faas_id.is_empty()
            || !key.faas_name.is_empty()
            || !key.faas_version.is_empty()
            || !key.faas_trigger_type.is_empty()
        {
            ev.faas = Some(Faas {
                coldstart: key.faas_coldstart,
                id: Cow::Borrowed(&key.faas_id),
                name: Cow::Borrowed(&key.faas_name),
                version: Cow::Borrowed(&key.faas_version),
                trigger_type: Cow::Borrowed(&key.faas_trigger_type),
                ..Default::default()
            });
        }
        let cloud = Cloud {
            provider: Cow::Borrowed(&key.cloud_provider),
            region: Cow::Borrowed(&key.cloud_region),
            availability_zone: Cow::Borrowed(&key.cloud_availability_zone),
            service_name: Cow::Borrowed(&key.cloud_service_name),
            account_id: Cow::Borrowed(&key.cloud_account_id),
            account_name: Cow::Borrowed(&key.cloud_account_name),
            machine_type: Cow::Borrowed(&key.cloud_machine_type),
            project_id: Cow::Borrowed(&key.cloud_project_id),
            project_name: Cow::Borrowed(&key.cloud_project_name),
            ..Default::default()
        };
        if [
            &cloud.provider,
            &cloud.region,
            &cloud.availability_zone,
            &cloud.service_name,
            &cloud.account_id,
            &cloud.account_name,
            &cloud.machine_type,
            &cloud.project_id,
            &cloud.project_name,
        ]
        .iter()
        .any(|s| !s.is_empty())
        {
            ev.cloud = Some(cloud);
        }
        if let Some(n) = overflow {
            overflow_sample(&mut ev, "transaction.aggregation.overflow_count", n);
        }
        self.document(&ev)
    }

    /// A `service_transaction` metric document (`success` and `failure` are weighted counts).
    pub fn service_transaction(
        &self,
        key: &ServiceTransactionKey,
        h: &Buckets,
        success: f64,
        failure: f64,
        overflow: Option<u64>,
    ) -> Document {
        let (total, counts, values) = h;
        let mut ev = self.base("service_transaction", *total);
        let sum: f64 = values.iter().zip(counts).map(|(v, c)| v * *c as f64).sum();
        let count = (success + failure).round() as u64;
        ev.event_mut().success_count = (count > 0).then_some((count, success.round()));
        ev.transaction = Some(Transaction {
            r#type: Cow::Borrowed(&key.transaction_type),
            duration_histogram: Some((values.clone(), counts.clone())),
            duration_summary: (*total > 0).then_some((*total, sum)),
            ..Default::default()
        });
        if let Some(n) = overflow {
            overflow_sample(&mut ev, "service_transaction.aggregation.overflow_count", n);
        }
        self.document(&ev)
    }

    /// A `service_destination` metric document; the overflow bucket's `_doc_count` is its
    /// overflow count, as APM Server writes it.
    pub fn service_destination(
        &self,
        key: &SpanKey,
        count: f64,
        sum_ns: f64,
        overflow: Option<u64>,
    ) -> Document {
        let count = count.round() as u64;
        let mut ev = self.base("service_destination", overflow.unwrap_or(count));
        if !key.target_type.is_empty() || !key.target_name.is_empty() {
            ev.service.target = Some(ServiceTarget {
                r#type: Cow::Borrowed(&key.target_type),
                name: Cow::Borrowed(&key.target_name),
            });
        }
        ev.span = Some(Span {
            name: Cow::Borrowed(&key.span_name),
            destination_service: Some(DestinationService {
                resource: Cow::Borrowed(&key.resource),
                response_time: Some((count, sum_ns.round() as u64 / 1000)),
                ..Default::default()
            }),
            ..Default::default()
        });
        if !key.outcome.is_empty() {
            ev.event_mut().outcome = Cow::Borrowed(&key.outcome);
        }
        if let Some(n) = overflow {
            overflow_sample(&mut ev, "service_destination.aggregation.overflow_count", n);
        }
        self.document(&ev)
    }

    /// A `service_summary` metric document; `overflow` for the `_other` service.
    pub fn service_summary(&self, overflow: Option<u64>) -> Document {
        let mut ev = self.base("service_summary", 0);
        if let Some(n) = overflow {
            overflow_sample(&mut ev, "service_summary.aggregation.overflow_count", n);
        }
        self.document(&ev)
    }
}

fn overflow_sample(ev: &mut ApmEvent<'_>, name: &'static str, n: u64) {
    if let Some(m) = &mut ev.metricset {
        m.samples.push(Sample {
            name: Cow::Borrowed(name),
            value: n as f64,
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_key_unpacks_to_itself() {
        let mut key = TransactionKey {
            trace_root: true,
            faas_coldstart: Some(false),
            transaction_name: "GET /orders/{id}".into(),
            transaction_type: "request".into(),
            event_outcome: "success".into(),
            cloud_project_name: "ünïcode".into(),
            ..Default::default()
        };
        let packed = PackedTransactionKey::new(&key);
        assert_eq!(packed.unpack(), key);
        assert_eq!(packed.transaction_type(), "request");
        assert_eq!(packed.event_outcome(), "success");
        key.faas_coldstart = None;
        key.trace_root = false;
        assert_ne!(PackedTransactionKey::new(&key), packed);
        assert_eq!(PackedTransactionKey::new(&key).unpack(), key);
        key.faas_coldstart = Some(true);
        assert_eq!(PackedTransactionKey::new(&key).unpack(), key);
    }
}
