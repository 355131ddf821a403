//! Model throughput: decode + validate + encode of intake events, per core.
//!
//! Run with `cargo bench --bench model -- --warm-up-time 2 --measurement-time 10`.
//!
//! * `model/heavy`: the 1,920 event lines of `../shared/fixtures/intake/v2/heavy.ndjson`
//!   (APM Server's own throughput payload) through `decode_event`, documents included.
//!   Criterion reports elements per second = events per second on one core.
//! * `model/agents`: the captured Python and Node agent payloads, the same way.
//!
//! Metadata is decoded once per payload, outside the timed loop, as the runtime does per request.

use std::path::Path;
use std::time::{Duration, SystemTime};

use apmgate::model::{ModelConfig, RequestMeta, decode_event, decode_metadata};
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};

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

fn bench_payload(c: &mut Criterion, name: &str, payloads: &[&str]) {
    let cfg = ModelConfig::default();
    let request = RequestMeta {
        receipt_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        rum: false,
        client_ip: Some("10.0.0.1".parse().unwrap()),
        client_port: None,
        nat_ip: None,
        user_agent: None,
    };
    let inputs: Vec<_> = payloads
        .iter()
        .map(|p| {
            let lines = load(p);
            let meta = decode_metadata(&lines[0]).expect("metadata");
            (meta, lines[1..].to_vec())
        })
        .collect();
    let events: usize = inputs.iter().map(|(_, l)| l.len()).sum();
    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut docs = 0;
            for (meta, lines) in &inputs {
                for line in lines {
                    let d =
                        decode_event(black_box(line), meta, &request, &cfg).expect("valid event");
                    docs += d.documents.len();
                }
            }
            black_box(docs)
        })
    });
    group.finish();
}

fn model(c: &mut Criterion) {
    bench_payload(c, "heavy", &["intake/v2/heavy.ndjson"]);
    bench_payload(
        c,
        "agents",
        &[
            "agents/python-agent.ndjson",
            "agents/node-agent.ndjson",
            "agents/python-agent-metrics.ndjson",
        ],
    );
}

criterion_group!(benches, model);
criterion_main!(benches);
