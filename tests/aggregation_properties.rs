//! Issue 13, properties of aggregation: for random streams of transactions and spans, whatever
//! the limits, the counts and sums over all groups of an interval (overflow buckets included)
//! equal what was sent, weighted by the representative count; no window holds more groups than
//! its limits; every service is either written or counted in the `_other` service.

use std::sync::Arc;
use std::time::Duration;

use apmgate::aggregation::Aggregator;
use apmgate::model::ModelConfig;
use apmgate::model::aggregate::{
    Measure, Observation, PackedTransactionKey, ServiceKey, SpanKey, TransactionKey,
};
use apmgate::policy::compiled::AggregationSettings;
use apmgate::telemetry::Metrics;
use proptest::prelude::*;
use serde_json::Value;

/// One generated event: service, transaction name, outcome, sample rate, duration, and whether
/// it is a span (with a destination) instead of a transaction.
#[derive(Debug, Clone)]
struct Event {
    service: u8,
    name: u8,
    failed: bool,
    weight: u8,
    duration_us: u32,
    span: bool,
}

fn event() -> impl Strategy<Value = Event> {
    (
        0u8..12,
        0u8..40,
        any::<bool>(),
        prop_oneof![Just(1u8), Just(2), Just(4), Just(10)],
        1u32..5_000_000,
        any::<bool>(),
    )
        .prop_map(|(service, name, failed, weight, duration_us, span)| Event {
            service,
            name,
            failed,
            weight,
            duration_us,
            span,
        })
}

fn observation(e: &Event) -> Observation {
    let outcome = if e.failed { "failure" } else { "success" };
    let measure = if e.span {
        Measure::Span {
            key: SpanKey {
                span_name: format!("SELECT {}", e.name),
                outcome: outcome.into(),
                target_type: "db".into(),
                target_name: format!("db{}", e.name % 7),
                resource: format!("db{}", e.name % 7),
            },
            count: f64::from(e.weight),
            sum_ns: f64::from(e.duration_us) * 1000.0 * f64::from(e.weight),
        }
    } else {
        Measure::Transaction {
            key: PackedTransactionKey::new(&TransactionKey {
                transaction_name: format!("GET /{}", e.name),
                transaction_type: format!("type{}", e.name % 3),
                event_outcome: outcome.into(),
                trace_root: true,
                ..Default::default()
            }),
            duration_us: i64::from(e.duration_us),
            count: f64::from(e.weight),
            dropped: Vec::new(),
        }
    };
    Observation {
        timestamp: 1_700_000_000_000_000_000,
        service: ServiceKey {
            name: format!("svc{}", e.service),
            agent_name: "go".into(),
            ..Default::default()
        },
        measure,
    }
}

fn settings(services: u32, groups: u32) -> AggregationSettings {
    AggregationSettings {
        enabled: true,
        intervals: vec![Duration::from_secs(60)],
        max_services: Some(services),
        max_transaction_groups: Some(groups),
        max_service_transaction_groups: Some(groups),
        max_service_destination_groups: Some(groups),
    }
}

fn docs_of(set: &str, docs: &[(String, Value)]) -> Vec<Value> {
    let prefix = format!("metrics-apm.{set}.1m-");
    docs.iter()
        .filter(|(s, _)| s.starts_with(&prefix))
        .map(|(_, d)| d.clone())
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("an integer: {v}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn counts_and_sums_are_kept_whatever_the_limits(
        events in proptest::collection::vec(event(), 1..300),
        services in 1u32..8,
        groups in 1u32..60,
    ) {
        let aggregator = Aggregator::new(1 << 30, Arc::new(Metrics::default()));
        let settings = settings(services, groups);
        let observations: Vec<Observation> = events.iter().map(observation).collect();
        // In batches, as the intake records them.
        for chunk in observations.chunks(10) {
            aggregator.record_at(1_700_000_000_000_000_000, chunk, &settings);
        }
        let limits = aggregator.limits(&settings);
        let held = aggregator.groups();
        prop_assert!(
            held <= limits.max_services + limits.max_transaction_groups
                + limits.max_service_transaction_groups + limits.max_span_groups,
            "{held} groups held beyond {limits:?}"
        );
        let docs: Vec<(String, Value)> = aggregator
            .harvest(i64::MAX, false, &ModelConfig::default(), "test")
            .into_iter()
            .map(|d| (d.data_stream, serde_json::from_slice(&d.body).unwrap()))
            .collect();
        prop_assert_eq!(aggregator.groups(), 0, "a harvested window is forgotten");

        let tx_weight: u64 = events.iter().filter(|e| !e.span).map(|e| u64::from(e.weight)).sum();
        let tx_success: u64 = events.iter().filter(|e| !e.span && !e.failed).map(|e| u64::from(e.weight)).sum();
        let span_weight: u64 = events.iter().filter(|e| e.span).map(|e| u64::from(e.weight)).sum();
        let span_us: u64 = events.iter().filter(|e| e.span).map(|e| u64::from(e.duration_us) * u64::from(e.weight)).sum();

        let tx = docs_of("transaction", &docs);
        let counted: u64 = tx.iter().map(|d| u(&d["_doc_count"])).sum();
        prop_assert_eq!(counted, tx_weight);
        // (The `_other` transaction group has no outcome, as in APM Server: success counts are
        // kept by the service transaction metrics.)
        for d in &tx {
            let counts: u64 = d["transaction"]["duration.histogram"]["counts"]
                .as_array().unwrap().iter().map(u).sum();
            prop_assert_eq!(counts, u(&d["_doc_count"]));
        }

        let stx = docs_of("service_transaction", &docs);
        let counted: u64 = stx.iter().map(|d| u(&d["_doc_count"])).sum();
        prop_assert_eq!(counted, tx_weight);
        let success: f64 = stx.iter().filter_map(|d| d["event"]["success_count"]["sum"].as_f64()).sum();
        prop_assert_eq!(success as u64, tx_success);

        let dest = docs_of("service_destination", &docs);
        let rt = |d: &Value, f: &str| u(&d["span"]["destination"]["service"]["response_time"][f]);
        prop_assert_eq!(dest.iter().map(|d| rt(d, "count")).sum::<u64>(), span_weight);
        prop_assert_eq!(dest.iter().map(|d| rt(d, "sum.us")).sum::<u64>(), span_us);

        // Services: each is written, or counted by the `_other` service.
        let summaries = docs_of("service_summary", &docs);
        let written = summaries.iter().filter(|d| d["service"]["name"] != "_other").count();
        prop_assert!(written <= limits.max_services);
        let other: u64 = summaries
            .iter()
            .filter(|d| d["service"]["name"] == "_other")
            .map(|d| d["metricset"]["samples"][0]["value"].as_f64().unwrap() as u64)
            .sum();
        let mut distinct: Vec<u8> = events.iter().map(|e| e.service).collect();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(written as u64 + other, distinct.len() as u64);
    }
}
