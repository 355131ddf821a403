//! One aggregation window: the groups of one interval for one stretch of processing time, with
//! APM Server's limits and overflow buckets.
//!
//! The rules are apm-aggregation's: a service is created while there are fewer than
//! `max_services`, else everything it brings goes to the `_other` service's overflow buckets; a
//! group is created while both its service's share (a tenth of the limit) and the interval's
//! limit have room, else it goes to its service's `_other` bucket; a service destination group
//! loses its span name once its service has used half of its share. Overflow buckets count how
//! many distinct groups they absorbed. Memory is bounded by the limits: a window never holds more
//! than `max_services` services and the limits' number of groups, plus one overflow bucket of
//! each kind per service.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use xxhash_rust::xxh64::Xxh64;

use super::Limits;
use super::distinct::Distinct;
use super::hdr::Histogram;
use crate::model::aggregate::{Measure, Observation, PackedTransactionKey, ServiceKey, SpanKey};

/// A service transaction group's measures.
#[derive(Clone, Debug, Default)]
pub struct ServiceTransactionMetrics {
    /// Durations.
    pub histogram: Histogram,
    /// Weighted count of successful transactions.
    pub success: f64,
    /// Weighted count of failed transactions.
    pub failure: f64,
}

impl ServiceTransactionMetrics {
    fn add(&mut self, duration_us: i64, count: f64, outcome: &str) {
        self.histogram.record(duration_us, count);
        match outcome {
            "success" => self.success += count,
            "failure" => self.failure += count,
            _ => {}
        }
    }

    fn merge(&mut self, other: &ServiceTransactionMetrics) {
        self.histogram.merge(&other.histogram);
        self.success += other.success;
        self.failure += other.failure;
    }
}

/// A service destination group's measures: weighted count and summed nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SpanMetrics {
    /// Weighted count.
    pub count: f64,
    /// Weighted sum of durations in nanoseconds.
    pub sum_ns: f64,
}

/// What did not fit, for one service or for the `_other` service.
#[derive(Clone, Debug, Default)]
pub struct Overflow {
    /// Transactions of groups that did not fit.
    pub transaction: Histogram,
    /// Distinct transaction groups among them.
    pub transaction_groups: Distinct,
    /// Service transactions that did not fit.
    pub service_transaction: ServiceTransactionMetrics,
    /// Distinct service transaction groups among them.
    pub service_transaction_groups: Distinct,
    /// Spans of destination groups that did not fit.
    pub span: SpanMetrics,
    /// Distinct service destination groups among them.
    pub span_groups: Distinct,
}

/// The groups of one service.
#[derive(Clone, Debug, Default)]
pub struct ServiceMetrics {
    /// Transaction groups.
    pub transactions: HashMap<PackedTransactionKey, Histogram>,
    /// Service transaction groups.
    /// Service transaction groups, by transaction type.
    pub service_transactions: HashMap<String, ServiceTransactionMetrics>,
    /// Service destination groups.
    pub spans: HashMap<SpanKey, SpanMetrics>,
    /// What did not fit the limits.
    pub overflow: Overflow,
}

/// Events that went to an overflow bucket in one window, by metric set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overflowed {
    /// `service_summary` (services beyond `max_services`).
    pub services: u64,
    /// `transaction`.
    pub transactions: u64,
    /// `service_transaction`.
    pub service_transactions: u64,
    /// `service_destination`.
    pub spans: u64,
}

/// One interval's groups for one stretch of processing time.
#[derive(Debug)]
pub struct Window {
    /// The interval, in nanoseconds.
    pub interval: i64,
    /// Processing time at which the window opened (a multiple of the interval), nanoseconds.
    pub start: i64,
    /// The services, by the start of the interval their events' `@timestamp` falls in.
    pub services: HashMap<i64, HashMap<ServiceKey, ServiceMetrics>>,
    service_count: usize,
    /// What services beyond `max_services` brought.
    pub other_services: Overflow,
    /// Distinct services beyond `max_services`.
    pub other_service_count: Distinct,
    transaction_groups: usize,
    service_transaction_groups: usize,
    span_groups: usize,
    /// Events sent to overflow buckets so far.
    pub overflowed: Overflowed,
}

fn hash_of(seed: u64, v: &impl Hash) -> u64 {
    let mut h = Xxh64::new(seed);
    v.hash(&mut h);
    h.finish()
}

impl Window {
    /// An empty window.
    pub fn new(interval: i64, start: i64) -> Self {
        Self {
            interval,
            start,
            services: HashMap::new(),
            service_count: 0,
            other_services: Overflow::default(),
            other_service_count: Distinct::default(),
            transaction_groups: 0,
            service_transaction_groups: 0,
            span_groups: 0,
            overflowed: Overflowed::default(),
        }
    }

    /// Groups held, over all services.
    pub fn groups(&self) -> usize {
        self.service_count
            + self.transaction_groups
            + self.service_transaction_groups
            + self.span_groups
    }

    /// Adds one observation.
    pub fn record(&mut self, obs: &Observation, limits: &Limits) {
        let ts = obs.timestamp.div_euclid(self.interval) * self.interval;
        let service_hash = hash_of(0, &(ts, &obs.service));
        let services = self.services.entry(ts).or_default();
        if !services.contains_key(&obs.service) {
            if self.service_count >= limits.max_services {
                self.other_service_count.insert(service_hash);
                self.overflowed.services += 1;
                let other = &mut self.other_services;
                overflow_measure(other, &obs.measure, service_hash, &mut self.overflowed);
                return;
            }
            self.service_count += 1;
            services.insert(obs.service.clone(), ServiceMetrics::default());
        }
        let Some(service) = services.get_mut(&obs.service) else {
            return;
        };
        let mut budget = Budget {
            limits,
            transaction_groups: &mut self.transaction_groups,
            service_transaction_groups: &mut self.service_transaction_groups,
            span_groups: &mut self.span_groups,
            overflowed: &mut self.overflowed,
        };
        budget.record(service, &obs.measure, service_hash);
    }
}

/// The interval-wide group counts a service's groups are checked against.
struct Budget<'a> {
    limits: &'a Limits,
    transaction_groups: &'a mut usize,
    service_transaction_groups: &'a mut usize,
    span_groups: &'a mut usize,
    overflowed: &'a mut Overflowed,
}

impl Budget<'_> {
    fn record(&mut self, service: &mut ServiceMetrics, measure: &Measure, service_hash: u64) {
        match measure {
            Measure::Summary => {}
            Measure::Transaction {
                key,
                duration_us,
                count,
                dropped,
            } => {
                let l = self.limits;
                let k: &PackedTransactionKey = key;
                if let Some(h) = service.transactions.get_mut(k) {
                    h.record(*duration_us, *count);
                } else if service.transactions.len() < l.max_transaction_groups_per_service
                    && *self.transaction_groups < l.max_transaction_groups
                {
                    *self.transaction_groups += 1;
                    let mut h = Histogram::default();
                    h.record(*duration_us, *count);
                    service.transactions.insert(k.clone(), h);
                } else {
                    self.overflowed.transactions += 1;
                    service
                        .overflow
                        .add_transaction(k, *duration_us, *count, service_hash);
                }
                let stk = k.transaction_type();
                let outcome = k.event_outcome();
                if let Some(m) = service.service_transactions.get_mut(stk) {
                    m.add(*duration_us, *count, outcome);
                } else if service.service_transactions.len()
                    < l.max_service_transaction_groups_per_service
                    && *self.service_transaction_groups < l.max_service_transaction_groups
                {
                    *self.service_transaction_groups += 1;
                    let mut m = ServiceTransactionMetrics::default();
                    m.add(*duration_us, *count, outcome);
                    service.service_transactions.insert(stk.to_owned(), m);
                } else {
                    self.overflowed.service_transactions += 1;
                    service
                        .overflow
                        .add_service_transaction(k, *duration_us, *count, service_hash);
                }
                for (key, count, sum_ns) in dropped {
                    self.span(service, key, *count, *sum_ns, service_hash);
                }
            }
            Measure::Span { key, count, sum_ns } => {
                self.span(service, key, *count, *sum_ns, service_hash)
            }
        }
    }

    fn span(
        &mut self,
        service: &mut ServiceMetrics,
        key: &SpanKey,
        count: f64,
        sum_ns: f64,
        service_hash: u64,
    ) {
        let l = self.limits;
        let add = |m: &mut SpanMetrics| {
            m.count += count;
            m.sum_ns += sum_ns;
        };
        if let Some(m) = service.spans.get_mut(key) {
            add(m);
            return;
        }
        // High-cardinality span names: past half of the service's share, groups are made
        // without the span name.
        let nameless;
        let mut key = key;
        if service.spans.len() >= l.max_span_groups_per_service / 2 && !key.span_name.is_empty() {
            nameless = SpanKey {
                span_name: String::new(),
                ..key.clone()
            };
            key = &nameless;
            if let Some(m) = service.spans.get_mut(key) {
                add(m);
                return;
            }
        }
        if service.spans.len() < l.max_span_groups_per_service
            && *self.span_groups < l.max_span_groups
        {
            *self.span_groups += 1;
            let mut m = SpanMetrics::default();
            add(&mut m);
            service.spans.insert(key.clone(), m);
        } else {
            self.overflowed.spans += 1;
            service.overflow.add_span(key, count, sum_ns, service_hash);
        }
    }
}

/// What a service beyond `max_services` brings goes to the `_other` service's buckets.
fn overflow_measure(
    other: &mut Overflow,
    measure: &Measure,
    service_hash: u64,
    overflowed: &mut Overflowed,
) {
    match measure {
        Measure::Summary => {}
        Measure::Transaction {
            key,
            duration_us,
            count,
            dropped,
        } => {
            overflowed.transactions += 1;
            other.add_transaction(key, *duration_us, *count, service_hash);
            other.add_service_transaction(key, *duration_us, *count, service_hash);
            for (key, count, sum_ns) in dropped {
                overflowed.spans += 1;
                other.add_span(key, *count, *sum_ns, service_hash);
            }
        }
        Measure::Span { key, count, sum_ns } => {
            overflowed.spans += 1;
            other.add_span(key, *count, *sum_ns, service_hash);
        }
    }
}

impl Overflow {
    fn add_transaction(
        &mut self,
        key: &PackedTransactionKey,
        duration_us: i64,
        count: f64,
        service_hash: u64,
    ) {
        self.transaction.record(duration_us, count);
        self.transaction_groups.insert(hash_of(service_hash, key));
    }

    fn add_service_transaction(
        &mut self,
        key: &PackedTransactionKey,
        duration_us: i64,
        count: f64,
        service_hash: u64,
    ) {
        self.service_transaction
            .add(duration_us, count, key.event_outcome());
        self.service_transaction_groups
            .insert(hash_of(service_hash, &key.transaction_type()));
    }

    fn add_span(&mut self, key: &SpanKey, count: f64, sum_ns: f64, service_hash: u64) {
        self.span.count += count;
        self.span.sum_ns += sum_ns;
        self.span_groups.insert(hash_of(service_hash, key));
    }

    /// Merges another overflow (used by tests summing everything a window holds).
    pub fn merge(&mut self, other: &Overflow) {
        self.transaction.merge(&other.transaction);
        self.transaction_groups.merge(&other.transaction_groups);
        self.service_transaction.merge(&other.service_transaction);
        self.service_transaction_groups
            .merge(&other.service_transaction_groups);
        self.span.count += other.span.count;
        self.span.sum_ns += other.span.sum_ns;
        self.span_groups.merge(&other.span_groups);
    }
}
