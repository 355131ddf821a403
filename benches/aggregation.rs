//! The cost of aggregation per event (issue 13).
//!
//! Run with `cargo bench --bench aggregation -- --warm-up-time 2 --measurement-time 10`.
//!
//! * `aggregation/decode_off` and `aggregation/decode_on`: the captured Python and Node agent
//!   payloads through `decode_event`, without and with the observation aggregation needs (what
//!   the intake pays per event for it, beside the documents).
//! * `aggregation/record`: those observations added to an aggregator with APM Server's three
//!   intervals, in batches of 10 as the intake adds them (elements per second = events per
//!   second; the time per element is the cost of one aggregated event).
//! * `aggregation/harvest`: a window of 1,000 transaction groups turned into documents.

// criterion's macros generate public functions without documentation.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use apmgate::aggregation::Aggregator;
use apmgate::model::aggregate::{
    Measure, Observation, PackedTransactionKey, ServiceKey, TransactionKey,
};
use apmgate::model::{ModelConfig, RequestMeta, decode_event, decode_metadata};
use apmgate::policy::compiled::{AGGREGATION_INTERVALS, AggregationSettings};
use apmgate::telemetry::Metrics;
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};

const PAYLOADS: [&str; 2] = ["agents/python-agent.ndjson", "agents/node-agent.ndjson"];

fn load(rel: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn settings() -> AggregationSettings {
    AggregationSettings {
        enabled: true,
        intervals: AGGREGATION_INTERVALS.to_vec(),
        max_services: None,
        max_transaction_groups: None,
        max_service_transaction_groups: None,
        max_service_destination_groups: None,
    }
}

fn aggregation(c: &mut Criterion) {
    let request = RequestMeta {
        receipt_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        rum: false,
        client_ip: Some("10.0.0.1".parse().unwrap()),
        client_port: None,
        nat_ip: None,
        user_agent: None,
    };
    let inputs: Vec<_> = PAYLOADS
        .iter()
        .map(|p| {
            let lines = load(p);
            let meta = decode_metadata(&lines[0]).expect("metadata");
            (meta, lines[1..].to_vec())
        })
        .collect();
    let events: usize = inputs.iter().map(|(_, l)| l.len()).sum();
    let mut group = c.benchmark_group("aggregation");
    group.throughput(Throughput::Elements(events as u64));
    for (name, aggregate) in [("decode_off", false), ("decode_on", true)] {
        let cfg = ModelConfig {
            aggregate,
            ..ModelConfig::default()
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                for (meta, lines) in &inputs {
                    for line in lines {
                        let d = decode_event(black_box(line), meta, &request, &cfg)
                            .expect("valid event");
                        n += d.documents.len() + d.observations.len();
                    }
                }
                black_box(n)
            })
        });
    }
    let cfg = ModelConfig {
        aggregate: true,
        ..ModelConfig::default()
    };
    let observations: Vec<Observation> = inputs
        .iter()
        .flat_map(|(meta, lines)| {
            lines.iter().flat_map(|line| {
                decode_event(line, meta, &request, &cfg)
                    .expect("valid event")
                    .observations
            })
        })
        .collect();
    group.throughput(Throughput::Elements(observations.len() as u64));
    let aggregator = Aggregator::new(1 << 30, Arc::new(Metrics::default()));
    let s = settings();
    group.bench_function("record", |b| {
        b.iter(|| {
            for chunk in observations.chunks(10) {
                aggregator.record_at(1_700_000_000_000_000_000, black_box(chunk), &s);
            }
        })
    });
    let window: Vec<Observation> = (0..1000)
        .map(|i| Observation {
            timestamp: 1_700_000_000_000_000_000,
            service: ServiceKey {
                name: format!("svc{}", i % 10),
                agent_name: "go".into(),
                ..Default::default()
            },
            measure: Measure::Transaction {
                key: PackedTransactionKey::new(&TransactionKey {
                    transaction_name: format!("GET /{i}"),
                    transaction_type: "request".into(),
                    event_outcome: "success".into(),
                    ..Default::default()
                }),
                duration_us: 1000 + i,
                count: 1.0,
                dropped: Vec::new(),
            },
        })
        .collect();
    group.throughput(Throughput::Elements(1000));
    let one = AggregationSettings {
        intervals: vec![Duration::from_secs(60)],
        ..settings()
    };
    let model = ModelConfig::default();
    group.bench_function("harvest", |b| {
        b.iter(|| {
            let a = Aggregator::new(1 << 30, Arc::new(Metrics::default()));
            a.record_at(0, &window, &one);
            black_box(a.harvest(i64::MAX, true, &model, "bench").len())
        })
    });
    group.finish();
}

criterion_group!(benches, aggregation);
criterion_main!(benches);
