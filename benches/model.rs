//! Model throughput: decode + validate + encode of intake events, per core.
//!
//! Run with `cargo bench --bench model -- --warm-up-time 2 --measurement-time 10`.
//!
//! * `model/heavy`: the 1,920 event lines of `../shared/fixtures/intake/v2/heavy.ndjson`
//!   (APM Server's own throughput payload) through `decode_event`, documents included.
//!   Criterion reports elements per second = events per second on one core.
//! * `model/agents`: the captured Python and Node agent payloads, the same way.
//!
//! * `gzip/intake_decompress_heavy`: the request body path of the intake: heavy.ndjson
//!   gzip-compressed (as agents send it), sniffed, decompressed and framed into lines by
//!   `apmgate::intake` (bytes per second of NDJSON).
//! * `gzip/bulk_level_1` and `gzip/bulk_level_5`: the Elasticsearch output's bulk body of
//!   heavy.ndjson's documents (`create` actions), gzip-compressed at the output's levels
//!   (uncompressed bytes per second).
//!
//! Metadata is decoded once per payload, outside the timed loop, as the runtime does per request.

// criterion's macros generate public functions without documentation.
#![allow(missing_docs)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use apmgate::model::{ModelConfig, RequestMeta, decode_event, decode_metadata};
use apmgate::output::OutputDocument;
use apmgate::output::elasticsearch::bulk;
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

fn gzip(c: &mut Criterion) {
    use std::io::Write as _;
    let raw = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/intake/v2/heavy.ndjson"),
    )
    .expect("heavy.ndjson");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&raw).unwrap();
    let compressed = e.finish().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("gzip");
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function("intake_decompress_heavy", |b| {
        b.iter(|| {
            rt.block_on(async {
                let body = std::io::Cursor::new(compressed.clone());
                let (reader, _) = apmgate::intake::body::decode(body, Some("gzip"))
                    .await
                    .expect("gzip");
                let mut lines =
                    apmgate::intake::lines::LineReader::new(reader, 300 * 1024, u64::MAX);
                let mut line = Vec::new();
                let mut n = 0usize;
                while lines.next(&mut line).await.expect("lines")
                    != apmgate::intake::lines::Line::Eof
                {
                    n += line.len();
                }
                black_box(n)
            })
        })
    });

    // The documents of heavy.ndjson, as the output receives them.
    let lines = load("intake/v2/heavy.ndjson");
    let meta = decode_metadata(&lines[0]).expect("metadata");
    let request = RequestMeta {
        receipt_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        rum: false,
        client_ip: None,
        client_port: None,
        nat_ip: None,
        user_agent: None,
    };
    let docs: Vec<OutputDocument> = lines[1..]
        .iter()
        .flat_map(|l| {
            decode_event(l, &meta, &request, &ModelConfig::default())
                .expect("valid event")
                .documents
        })
        .map(|d| OutputDocument {
            data_stream: d.data_stream,
            body: d.body,
        })
        .collect();
    let bulk_len: usize = docs.iter().map(OutputDocument::bulk_len).sum();
    group.throughput(Throughput::Bytes(bulk_len as u64));
    for level in [1, 5] {
        group.bench_function(format!("bulk_level_{level}"), |b| {
            b.iter(|| black_box(bulk::encode(docs.iter(), level).bytes.len()))
        });
    }
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

criterion_group!(benches, model, gzip);
criterion_main!(benches);
