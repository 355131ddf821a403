//! The Elasticsearch output against the in-process stand-in: what it sends, and for every
//! fault the stand-in injects, that each accepted document is indexed exactly once or recorded
//! as failed with its reason (dead-letter file), that memory stays within the buffer's bound,
//! and that shutdown drains.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apmgate::output::elasticsearch::EsOutput;
use apmgate::output::{Output, OutputDocument, PublishError};
use apmgate::policy::compiled::{EsOutputSettings, OutputSettings};
use apmgate::policy::{CompileOptions, compile_file};
use apmgate::telemetry::Metrics;
use es_standin::{EsStandin, StandinOptions, StandinTls};
use serde_json::Value;

/// Generous upper bound for conditions that normally hold within milliseconds.
const WAIT: Duration = Duration::from_secs(30);

struct Setup {
    dir: tempfile::TempDir,
    settings: EsOutputSettings,
}

impl Setup {
    fn dead_letters(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("dead.ndjson")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a dead-letter line is JSON"))
            .collect()
    }
}

/// Compiles a policy whose output is `[output.elasticsearch]` with fast test timings and
/// `extra` keys, towards `hosts`.
fn setup(hosts: &[String], extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    apmgate::devcerts::write(
        &dir.path().join("certs"),
        &apmgate::devcerts::Validity::default(),
    )
    .unwrap();
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let mut keys: HashMap<&str, &str> = [
        ("flush_interval", "\"20ms\""),
        ("backoff_init", "\"10ms\""),
        ("backoff_max", "\"100ms\""),
        ("dead_letter_path", "\"dead.ndjson\""),
        ("timeout", "\"2s\""),
    ]
    .into_iter()
    .collect();
    let mut tables = String::new();
    let mut extra_lines = String::new();
    let mut in_table = false;
    for line in extra.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('[') {
            in_table = true;
        }
        if in_table {
            tables.push_str(line);
            tables.push('\n');
        } else if let Some((k, _)) = line.split_once('=') {
            keys.remove(k.trim());
            extra_lines.push_str(line);
            extra_lines.push('\n');
        }
    }
    let mut defaults: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    defaults.push_str(&extra_lines);
    let policy = format!(
        "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\n\n[output.elasticsearch]\nhosts = [{}]\n{defaults}\n{tables}",
        hosts.join(", ")
    );
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, &policy).unwrap();
    std::fs::write(dir.path().join("apikey.txt"), "key-id:key-secret\n").unwrap();
    let c = compile_file(&path, CompileOptions::default()).unwrap();
    let errors: Vec<_> = c
        .diagnostics
        .iter()
        .filter(|d| d.severity == apmgate::policy::Severity::Error)
        .collect();
    assert!(
        errors.is_empty(),
        "test policy is invalid: {errors:#?}\n{policy}"
    );
    let OutputSettings::Elasticsearch(es) = c.policy.unwrap().output else {
        panic!("not an Elasticsearch output")
    };
    Setup { dir, settings: *es }
}

fn start(s: &Setup, drain: Duration) -> (Arc<EsOutput>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let out = EsOutput::start(&s.settings, metrics.clone(), drain).unwrap();
    (Arc::new(out), metrics)
}

/// A document with a unique id: `{"transaction":{"id":"tx-N"},"n":N}`.
fn doc(n: usize) -> OutputDocument {
    OutputDocument {
        data_stream: "traces-apm-default".into(),
        body: format!(
            r#"{{"transaction":{{"id":"tx-{n}"}},"n":{n},"pad":"{}"}}"#,
            "x".repeat(200)
        )
        .into_bytes(),
    }
}

fn id_of(doc: &Value) -> String {
    doc["transaction"]["id"].as_str().unwrap_or("").to_string()
}

/// Publishes `count` documents numbered from `from`, in batches of 10 (intake's batch size).
async fn publish(out: &EsOutput, from: usize, count: usize) {
    let ids: Vec<usize> = (from..from + count).collect();
    for chunk in ids.chunks(10) {
        out.publish(chunk.iter().map(|n| doc(*n)).collect())
            .await
            .expect("accepted");
    }
}

/// Every accepted document was indexed exactly once or dead-lettered exactly once, never both.
/// `may_duplicate`: documents of requests Elasticsearch may have acted on without confirming
/// can be indexed twice (documented), but none may be missing.
fn assert_accounted(es: &EsStandin, s: &Setup, ids: std::ops::Range<usize>, may_duplicate: bool) {
    let mut indexed: HashMap<String, usize> = HashMap::new();
    for (index, d) in es.docs() {
        assert_eq!(index, "traces-apm-default");
        *indexed.entry(id_of(&d)).or_default() += 1;
    }
    let mut dead: HashMap<String, usize> = HashMap::new();
    for l in s.dead_letters() {
        assert!(
            l["error"]["type"].as_str().is_some_and(|t| !t.is_empty()),
            "reason recorded: {l}"
        );
        *dead.entry(id_of(&l["document"])).or_default() += 1;
    }
    for n in ids.clone() {
        let id = format!("tx-{n}");
        let i = indexed.get(&id).copied().unwrap_or(0);
        let d = dead.get(&id).copied().unwrap_or(0);
        if may_duplicate {
            assert!(i + d >= 1, "{id} lost (indexed {i}, dead-lettered {d})");
            assert!(d == 0 || i == 0, "{id} both indexed and dead-lettered");
        } else {
            assert_eq!(
                (i + d, i.min(d)),
                (1, 0),
                "{id}: indexed {i}, dead-lettered {d}"
            );
        }
    }
    assert_eq!(
        indexed.len() + dead.len(),
        ids.len(),
        "nothing but the accepted documents"
    );
}

#[tokio::test]
async fn sends_bulk_requests_as_apm_server_does() {
    let es = EsStandin::start_with(StandinOptions {
        prefix: "/es".into(),
        ..Default::default()
    })
    .await;
    let api_key = "key-id:key-secret";
    let s = setup(
        &[es.url()],
        r#"
        path = "/es/"
        api_key = "file:apikey.txt"
        flush_bytes = "4KiB"
        buffer_bytes = "1MiB"
        compression_level = 6
        headers = { "X-Team" = "observability" }
        "#,
    );
    use base64::Engine as _;
    es.expect_authorization(&format!(
        "ApiKey {}",
        base64::engine::general_purpose::STANDARD.encode(api_key)
    ));
    let (out, metrics) = start(&s, WAIT);
    publish(&out, 0, 100).await;
    es.wait_docs(WAIT, |d| d.len() == 100).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..100, false);

    let bulks = es.bulk_requests();
    assert!(
        bulks.len() >= 5,
        "flushed at flush_bytes: {} requests",
        bulks.len()
    );
    let mut events = 0;
    for r in &bulks {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/es/_bulk");
        assert_eq!(
            r.query,
            "require_data_stream=true&filter_path=items.*._index,items.*.status,items.*.failure_store,items.*.error.type,items.*.error.reason"
        );
        let h = |n: &str| r.headers.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(h("content-encoding").as_deref(), Some("gzip"));
        assert_eq!(h("content-type").as_deref(), Some("application/json"));
        assert_eq!(h("x-team").as_deref(), Some("observability"));
        assert!(h("user-agent").unwrap().starts_with("apmgate/"));
        assert_eq!(
            h("x-elastic-uncompressed-request-length").unwrap(),
            r.body.len().to_string()
        );
        let count: usize = h("x-elastic-event-count").unwrap().parse().unwrap();
        assert_eq!(
            count * 2,
            r.body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
        );
        events += count;
        // At most one document beyond flush_bytes.
        assert!(r.body.len() < 4096 + 400, "{} bytes", r.body.len());
        assert!(r.raw_body.len() < r.body.len(), "compressed");
        for (i, line) in String::from_utf8_lossy(&r.body).lines().enumerate() {
            if i % 2 == 0 {
                assert_eq!(line, r#"{"create":{"_index":"traces-apm-default"}}"#);
            }
        }
    }
    assert_eq!(events, 100);
    let root = &es.requests()[0];
    assert_eq!(
        (root.method.as_str(), root.path.as_str()),
        ("GET", "/es/"),
        "startup check first"
    );
    assert_eq!(
        metrics.get(
            "apmgate_output_documents_indexed_total",
            &[("failure_store", "false")]
        ),
        100
    );
    assert_eq!(
        metrics.get("apmgate_output_bulk_requests_total", &[("status", "200")]),
        bulks.len() as u64
    );
    assert_eq!(
        metrics.observations("apmgate_output_flush_duration_seconds"),
        bulks.len() as u64
    );
    assert_eq!(metrics.gauge_value("apmgate_output_buffer_bytes"), 0);
    assert_eq!(metrics.gauge_value("apmgate_output_publish_ready"), 1);
    let text = metrics.render();
    assert!(
        text.contains("apmgate_output_buffer_capacity_bytes 1048576"),
        "{text}"
    );
    assert!(
        text.contains("apmgate_output_flush_duration_seconds_count"),
        "{text}"
    );
    assert!(!text.contains("key-secret"));
}

#[tokio::test]
async fn item_failures_are_retried_or_dead_lettered_with_their_reason() {
    let es = EsStandin::start().await;
    // 429s are retried until they pass; 400 and 500 are final.
    es.faults(|f| {
        f.item_statuses = [201, 429, 400, 500, 429, 201, 429, 429]
            .into_iter()
            .cycle()
            .take(40)
            .collect();
        f.ignore_filter_path = true;
    });
    let s = setup(&[es.url()], "flush_bytes = \"8KiB\"\nmax_retries = 5");
    let (out, metrics) = start(&s, WAIT);
    publish(&out, 0, 60).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..60, false);
    let dead = s.dead_letters();
    let by_type = |t: &str| dead.iter().filter(|l| l["error"]["type"] == t).count();
    assert_eq!(by_type("document_parsing_exception"), 5);
    assert_eq!(by_type("illegal_state_exception"), 5);
    assert_eq!(dead.len(), 10);
    for l in &dead {
        assert_eq!(l["data_stream"], "traces-apm-default");
        assert!(l["status"] == 400 || l["status"] == 500);
        assert!(l["error"]["reason"].as_str().unwrap().contains("injected"));
    }
    assert_eq!(
        metrics.get(
            "apmgate_output_documents_failed_total",
            &[("reason", "document_parsing_exception")]
        ),
        5
    );
    assert!(
        metrics.get(
            "apmgate_output_documents_retried_total",
            &[("reason", "too_many_requests")]
        ) >= 20
    );
    assert_eq!(
        metrics.get("apmgate_output_documents_dead_lettered_total", &[]),
        10
    );
}

#[tokio::test]
async fn items_rejected_beyond_max_retries_are_dead_lettered() {
    let es = EsStandin::start().await;
    es.faults(|f| f.item_statuses = std::iter::repeat_n(429, 3 * 4).collect());
    let s = setup(&[es.url()], "max_retries = 3");
    let (out, _) = start(&s, WAIT);
    publish(&out, 0, 3).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..3, false);
    let dead = s.dead_letters();
    assert_eq!(dead.len(), 3);
    for l in dead {
        assert_eq!(l["status"], 429);
        assert_eq!(l["error"]["type"], "es_rejected_execution_exception");
        assert_eq!(l["attempts"], 4, "the first try and max_retries retries");
    }
}

#[tokio::test]
async fn whole_request_429_and_503_are_retried() {
    let es = EsStandin::start().await;
    es.faults(|f| f.request_statuses = [429, 503, 429, 502].into_iter().collect());
    let s = setup(&[es.url()], "max_retries = 5");
    let (out, metrics) = start(&s, WAIT);
    publish(&out, 0, 30).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..30, false);
    assert!(s.dead_letters().is_empty());
    assert_eq!(
        metrics.get("apmgate_output_bulk_requests_total", &[("status", "429")]),
        2
    );
    assert_eq!(
        metrics.get("apmgate_output_bulk_requests_total", &[("status", "503")]),
        1
    );
}

#[tokio::test]
async fn whole_request_500_is_not_retried_and_is_dead_lettered() {
    let es = EsStandin::start().await;
    es.faults(|f| f.request_statuses = [500].into_iter().collect());
    let s = setup(&[es.url()], "flush_interval = \"5s\"");
    let (out, _) = start(&s, WAIT);
    publish(&out, 0, 10).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..10, false);
    let dead = s.dead_letters();
    assert_eq!(dead.len(), 10);
    assert_eq!(dead[0]["status"], 500);
    assert_eq!(dead[0]["error"]["type"], "exception");
}

#[tokio::test]
async fn latency_keeps_at_most_max_requests_in_flight() {
    let es = EsStandin::start().await;
    es.faults(|f| f.latency = Duration::from_millis(200));
    let s = setup(&[es.url()], "max_requests = 2\nflush_bytes = \"2KiB\"");
    let (out, metrics) = start(&s, WAIT);
    publish(&out, 0, 60).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..60, false);
    assert_eq!(es.max_concurrent_bulk(), 2);
    assert_eq!(metrics.gauge_value("apmgate_output_requests_in_flight"), 0);
}

#[tokio::test]
async fn dropped_connections_before_indexing_are_retried_without_duplicates() {
    let es = EsStandin::start().await;
    es.faults(|f| f.drop_before_index = 2);
    let s = setup(&[es.url()], "max_retries = 3");
    let (out, metrics) = start(&s, WAIT);
    publish(&out, 0, 20).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..20, false);
    assert!(
        metrics.get(
            "apmgate_output_documents_retried_total",
            &[("reason", "network_error")]
        ) >= 2
    );
}

/// A connection lost after Elasticsearch indexed the request: the output cannot know, retries,
/// and the documents of that request are indexed twice. This is the documented duplicate case
/// (APM Server and the OpenTelemetry Collector behave the same; documents carry no `_id`).
#[tokio::test]
async fn dropped_connections_after_indexing_may_duplicate_but_never_lose() {
    let es = EsStandin::start().await;
    es.faults(|f| f.drop_after_index = 1);
    let s = setup(&[es.url()], "flush_interval = \"5s\"");
    let (out, _) = start(&s, WAIT);
    publish(&out, 0, 10).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..10, true);
    assert_eq!(es.docs().len(), 20, "the one request was indexed twice");
}

#[tokio::test]
async fn elasticsearch_down_for_a_while_loses_nothing() {
    let es = EsStandin::start().await;
    let s = setup(&[es.url()], "max_retries = 1");
    let (out, _) = start(&s, WAIT);
    publish(&out, 0, 20).await;
    es.wait_docs(WAIT, |d| d.len() == 20).await;
    let down = es.down_for(Duration::from_secs(2));
    let more = async {
        // Accepted while Elasticsearch is down: held, not failed.
        publish(&out, 20, 30).await;
    };
    tokio::join!(down, more);
    es.wait_docs(WAIT, |d| d.len() == 50).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..50, false);
    assert!(s.dead_letters().is_empty());
}

#[tokio::test]
async fn the_buffer_bounds_memory_and_refuses_when_full() {
    let es = EsStandin::start().await;
    // Not ready: nothing leaves the buffer.
    es.faults(|f| f.root_failures = usize::MAX);
    let s = setup(
        &[es.url()],
        "buffer_bytes = \"16KiB\"\nflush_bytes = \"4KiB\"\nqueue_timeout = \"100ms\"",
    );
    let (out, _) = start(&s, WAIT);
    assert!(!*out.ready().borrow());
    let mut accepted = 0;
    let refused = loop {
        match out
            .publish((accepted..accepted + 10).map(doc).collect())
            .await
        {
            Ok(()) => accepted += 10,
            Err(e) => break e,
        }
        assert!(accepted < 10_000, "the buffer never fills");
    };
    assert_eq!(refused, PublishError::QueueFull);
    let stats = out.buffer_stats();
    assert_eq!(stats.capacity, 16 * 1024);
    assert!(stats.high_water_bytes <= stats.capacity, "{stats:?}");
    assert!(stats.used_bytes() + 10 * doc(0).bulk_len() as u64 > stats.capacity);
    assert!(
        es.bulk_requests().is_empty(),
        "nothing sent before the startup check passed"
    );
    // Elasticsearch comes up: everything accepted is indexed, and room frees up.
    es.faults(|f| f.root_failures = 0);
    es.wait_docs(WAIT, |d| d.len() == accepted).await;
    publish(&out, accepted, 10).await;
    assert_eq!(out.close().await, 0);
    assert_accounted(&es, &s, 0..accepted + 10, false);
    assert!(out.buffer_stats().high_water_bytes <= 16 * 1024);
}

#[tokio::test]
async fn shutdown_flushes_everything_accepted() {
    let es = EsStandin::start().await;
    let s = setup(
        &[es.url()],
        "flush_interval = \"1m\"\nflush_bytes = \"1MiB\"",
    );
    let (out, _) = start(&s, WAIT);
    es.wait_requests(WAIT, |r| !r.is_empty()).await;
    publish(&out, 0, 25).await;
    assert!(es.bulk_requests().is_empty(), "waiting for flush_interval");
    // On the output's clock, held by the test: closing must not wait for the interval (1m).
    let clock = support::HeldClock::hold();
    let started = tokio::time::Instant::now();
    let (unsent, _) = clock.run(WAIT, "close flushes", out.close()).await;
    assert_eq!(unsent, 0);
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(clock);
    assert_accounted(&es, &s, 0..25, false);
    assert!(s.dead_letters().is_empty());
    assert_eq!(
        out.publish(vec![doc(99)]).await,
        Err(PublishError::Closed),
        "closed"
    );
}

#[tokio::test]
async fn shutdown_with_elasticsearch_down_dead_letters_the_rest() {
    let es = EsStandin::start().await;
    let s = setup(&[es.url()], "");
    let (out, _) = start(&s, Duration::from_millis(500));
    tokio::time::timeout(WAIT, out.ready().wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();
    es.stop();
    publish(&out, 0, 15).await;
    assert_eq!(
        out.close().await,
        0,
        "nothing lost: written to the dead-letter file"
    );
    assert_accounted(&es, &s, 0..15, false);
    let dead = s.dead_letters();
    assert_eq!(dead.len(), 15);
    assert!(dead.iter().all(|l| l["error"]["type"] == "shutdown"));
}

#[tokio::test]
async fn shutdown_without_dead_letter_file_reports_the_count() {
    let es = EsStandin::start().await;
    es.faults(|f| f.root_failures = usize::MAX);
    let mut s = setup(&[es.url()], "");
    s.settings.dead_letter_path = None;
    let (out, metrics) = start(&s, Duration::from_millis(300));
    publish(&out, 0, 12).await;
    assert_eq!(out.close().await, 12);
    assert_eq!(
        metrics.get(
            "apmgate_output_documents_failed_total",
            &[("reason", "shutdown")]
        ),
        12
    );
}

#[tokio::test]
async fn filtered_and_full_answers_both_work() {
    for ignore in [false, true] {
        let es = EsStandin::start().await;
        es.faults(|f| {
            f.ignore_filter_path = ignore;
            f.item_statuses = [201, 400].into_iter().collect();
        });
        let s = setup(&[es.url()], "");
        let (out, _) = start(&s, WAIT);
        publish(&out, 0, 10).await;
        assert_eq!(out.close().await, 0);
        assert_accounted(&es, &s, 0..10, false);
        assert_eq!(s.dead_letters().len(), 1);
    }
}

#[tokio::test]
async fn hosts_are_used_round_robin_and_a_dead_host_is_skipped() {
    let a = EsStandin::start().await;
    let b = EsStandin::start().await;
    let s = setup(
        &[a.url(), b.url()],
        "flush_bytes = \"1KiB\"\nmax_retries = 1",
    );
    let (out, _) = start(&s, WAIT);
    publish(&out, 0, 40).await;
    EsStandin::wait_docs_across(&[&a, &b], WAIT, |n| n >= 40).await;
    assert!(!a.bulk_requests().is_empty() && !b.bulk_requests().is_empty());
    b.stop();
    publish(&out, 40, 40).await;
    EsStandin::wait_docs_across(&[&a, &b], WAIT, |n| n >= 80).await;
    assert_eq!(out.close().await, 0);
    let mut ids: Vec<String> = a
        .docs()
        .iter()
        .chain(b.docs().iter())
        .map(|(_, d)| id_of(d))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 80, "each once");
    assert!(s.dead_letters().is_empty());
}

async fn tls_case(es: &EsStandin, tls: &str) {
    let s = setup(&[es.url()], tls);
    let (out, _) = start(&s, WAIT);
    publish(&out, 0, 5).await;
    es.wait_docs(WAIT, |d| d.len() == 5).await;
    assert_eq!(out.close().await, 0);
}

fn sha256_hex_of_pem_cert(path: &std::path::Path) -> String {
    use rustls_pki_types::pem::PemObject;
    use sha2::Digest;
    let der = rustls_pki_types::CertificateDer::from_pem_file(path).unwrap();
    sha2::Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn tls_verification_modes_and_ca_fingerprint() {
    let certs = tempfile::tempdir().unwrap();
    let dev =
        apmgate::devcerts::write(certs.path(), &apmgate::devcerts::Validity::default()).unwrap();
    // The server sends its chain with the CA, as Elasticsearch's generated certificates do.
    let chain = certs.path().join("chain.pem");
    let mut pem = std::fs::read(&dev.server_cert).unwrap();
    pem.extend(std::fs::read(&dev.ca_cert).unwrap());
    std::fs::write(&chain, pem).unwrap();
    let ca = dev.ca_cert.display().to_string();
    let fingerprint = sha256_hex_of_pem_cert(&dev.ca_cert);
    for tls in [
        format!("[output.elasticsearch.tls]\ncertificate_authorities = [\"{ca}\"]"),
        format!(
            "[output.elasticsearch.tls]\nverification_mode = \"strict\"\ncertificate_authorities = [\"{ca}\"]"
        ),
        format!(
            "[output.elasticsearch.tls]\nverification_mode = \"certificate\"\ncertificate_authorities = [\"{ca}\"]"
        ),
        "[output.elasticsearch.tls]\nverification_mode = \"none\"".to_string(),
        format!("[output.elasticsearch.tls]\nca_trusted_fingerprint = \"{fingerprint}\""),
        format!(
            "[output.elasticsearch.tls]\nbackend = \"native-tls\"\ncertificate_authorities = [\"{ca}\"]"
        ),
    ] {
        let es = EsStandin::start_with(StandinOptions {
            tls: Some(StandinTls {
                chain: chain.clone(),
                key: dev.server_key.clone(),
            }),
            ..Default::default()
        })
        .await;
        tls_case(&es, &tls).await;
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let dev =
        apmgate::devcerts::write(certs.path(), &apmgate::devcerts::Validity::default()).unwrap();
    let es = EsStandin::start_with(StandinOptions {
        tls: Some(StandinTls {
            chain: dev.server_cert.clone(),
            key: dev.server_key.clone(),
        }),
        ..Default::default()
    })
    .await;
    // Only the system roots: the development CA is not among them.
    let s = setup(&[es.url()], "");
    let (out, _) = start(&s, Duration::from_millis(300));
    publish(&out, 0, 5).await;
    // The startup check fails its handshakes until the drain timeout ends the wait.
    assert_eq!(out.close().await, 0);
    assert!(!*out.ready().borrow());
    assert!(es.requests().is_empty(), "no request got through");
    assert_eq!(s.dead_letters().len(), 5);
}

/// A certificate for another name, signed by the development CA: `full` refuses it,
/// `certificate` (chain only) accepts it.
#[tokio::test]
async fn certificate_mode_ignores_the_name_full_mode_does_not() {
    let certs = tempfile::tempdir().unwrap();
    let dev =
        apmgate::devcerts::write(certs.path(), &apmgate::devcerts::Validity::default()).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&dev.ca_key).unwrap()).unwrap();
    let ca_params =
        rcgen::CertificateParams::from_ca_cert_pem(&std::fs::read_to_string(&dev.ca_cert).unwrap())
            .unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["elasticsearch.invalid".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (chain, key_path) = (
        certs.path().join("other.crt"),
        certs.path().join("other.key"),
    );
    std::fs::write(&chain, other.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let ca_path = dev.ca_cert.display().to_string();
    for (mode, accepted) in [("full", false), ("certificate", true)] {
        let es = EsStandin::start_with(StandinOptions {
            tls: Some(StandinTls {
                chain: chain.clone(),
                key: key_path.clone(),
            }),
            ..Default::default()
        })
        .await;
        let s = setup(
            &[es.url()],
            &format!(
                "[output.elasticsearch.tls]\nverification_mode = \"{mode}\"\ncertificate_authorities = [\"{ca_path}\"]"
            ),
        );
        let (out, _) = start(&s, Duration::from_millis(300));
        publish(&out, 0, 3).await;
        if accepted {
            es.wait_docs(WAIT, |d| d.len() == 3).await;
        }
        assert_eq!(out.close().await, 0);
        assert_eq!(es.docs().len(), if accepted { 3 } else { 0 }, "{mode}");
        assert_eq!(
            s.dead_letters().len(),
            if accepted { 0 } else { 3 },
            "{mode}"
        );
    }
}

/// Throughput to the stand-in (which decompresses and parses every document, so it bounds the
/// figure): `cargo test --release --test output_elasticsearch throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    for level in [1, 5] {
        let es = EsStandin::start().await;
        let s = setup(
            &[es.url()],
            &format!(
                "compression_level = {level}\nflush_interval = \"1s\"\nbuffer_bytes = \"64MiB\""
            ),
        );
        let (out, _) = start(&s, WAIT);
        tokio::time::timeout(WAIT, out.ready().wait_for(|r| *r))
            .await
            .unwrap()
            .unwrap();
        let n = 200_000;
        let started = std::time::Instant::now();
        publish(&out, 0, n).await;
        assert_eq!(out.close().await, 0);
        let secs = started.elapsed().as_secs_f64();
        let bytes: usize = es.bulk_requests().iter().map(|r| r.body.len()).sum();
        let wire: usize = es.bulk_requests().iter().map(|r| r.raw_body.len()).sum();
        println!(
            "compression_level {level}: {n} documents ({:.1} MiB, {:.1} MiB on the wire, {} requests) in {secs:.2} s: {:.0} documents/s",
            bytes as f64 / 1048576.0,
            wire as f64 / 1048576.0,
            es.bulk_requests().len(),
            n as f64 / secs
        );
        assert_eq!(es.docs().len(), n);
    }
}
