//! A real gateway on loopback with the Elasticsearch output towards the stand-in: events
//! answered 202 are indexed exactly once, `publish_ready` follows the cluster check, a full
//! buffer answers 503 with `Retry-After`, shutdown drains, API keys are verified by
//! Elasticsearch as APM Server does, and what is sent reads back through `es-compare`.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use es_standin::EsStandin;
use serde_json::Value;
use support::{Gateway, events};

const WAIT: Duration = Duration::from_secs(30);

fn policy(es: &EsStandin, output_extra: &str, rest: &str) -> String {
    let defaults: String = [
        ("flush_interval", "\"20ms\""),
        ("backoff_init", "\"10ms\""),
        ("backoff_max", "\"100ms\""),
        ("dead_letter_path", "\"dead.ndjson\""),
    ]
    .iter()
    .filter(|(k, _)| !output_extra.contains(&format!("{k} =")))
    .map(|(k, v)| format!("{k} = {v}\n"))
    .collect();
    format!(
        r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1"]

{rest}

[output.elasticsearch]
hosts = ["{}"]
{defaults}{output_extra}
"#,
        es.url()
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn send(gw: &Gateway, body: String, auth: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(gw.url("plain", false, "/intake/v2/events"))
        .header("Content-Type", "application/x-ndjson")
        .header("Accept", "application/json")
        .body(body);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().await.unwrap()
}

async fn root(gw: &Gateway) -> Value {
    client()
        .get(gw.url("plain", false, "/"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Transaction ids indexed, with how often.
fn indexed(es: &EsStandin) -> HashMap<String, usize> {
    support::transaction_ids(&es.docs())
}

fn assert_exactly_once(es: &EsStandin, ids: impl Iterator<Item = usize>) {
    let got = indexed(es);
    let mut n = 0;
    for id in ids {
        assert_eq!(
            got.get(&format!("{id:016x}")),
            Some(&1),
            "transaction {id:016x}"
        );
        n += 1;
    }
    assert_eq!(got.len(), n, "only what was answered 202");
}

#[tokio::test]
async fn accepted_events_are_indexed_once_and_publish_ready_follows_the_cluster() {
    let es = EsStandin::start().await;
    es.faults(|f| f.root_failures = usize::MAX);
    let gw = Gateway::start(&policy(&es, "", "")).await;
    assert_eq!(root(&gw).await["publish_ready"], false);
    // Accepted into the buffer while the cluster is not ready.
    let r = send(&gw, events(0..25), None).await;
    assert_eq!(r.status(), 202);
    es.wait_requests(WAIT, |r| r.iter().any(|r| r.path == "/"))
        .await;
    assert!(es.bulk_requests().is_empty());
    es.faults(|f| f.root_failures = 0);
    es.wait_docs(WAIT, |d| d.len() == 25).await;
    support::wait_until(WAIT, "publish_ready becomes true", || {
        gw.shared
            .publish_ready
            .load(std::sync::atomic::Ordering::Relaxed)
    })
    .await;
    assert_eq!(root(&gw).await["publish_ready"], true);
    assert_eq!(send(&gw, events(25..40), None).await.status(), 202);
    es.wait_docs(WAIT, |d| d.len() == 40).await;
    gw.stop().await;
    assert_exactly_once(&es, 0..40);
    for (index, _) in es.docs() {
        assert_eq!(index, "traces-apm-default");
    }
}

#[tokio::test]
async fn a_full_buffer_answers_503_with_retry_after_and_loses_nothing() {
    let es = EsStandin::start().await;
    es.faults(|f| f.root_failures = usize::MAX);
    let gw = Gateway::start(&policy(
        &es,
        "buffer_bytes = \"8KiB\"\nflush_bytes = \"2KiB\"\nqueue_timeout = \"50ms\"",
        "",
    ))
    .await;
    let metrics = gw.shared.metrics.clone();
    let mut accepted = Vec::new();
    let mut next = 0;
    let full = loop {
        // One batch (10 events) per request: all or nothing.
        let r = send(&gw, events(next..next + 10), None).await;
        if r.status() == 202 {
            accepted.extend(next..next + 10);
            next += 10;
            assert!(next < 10_000, "the buffer never fills");
            assert!(
                metrics.gauge_value("apmgate_output_buffer_bytes")
                    <= metrics.gauge_value("apmgate_output_buffer_capacity_bytes")
            );
            continue;
        }
        break r;
    };
    assert_eq!(full.status(), 503);
    assert_eq!(
        full.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body: Value = full.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"accepted": 0, "errors": [{"message": "cannot handle stream: cannot process batch: queue is full"}]})
    );
    assert_eq!(
        metrics.gauge_value("apmgate_output_buffer_capacity_bytes"),
        8192
    );
    assert!(metrics.gauge_value("apmgate_output_buffer_bytes") <= 8192);
    // The cluster comes up: everything answered 202 is indexed, once.
    es.faults(|f| f.root_failures = 0);
    let n = accepted.len();
    es.wait_docs(WAIT, |d| d.len() == n).await;
    gw.stop().await;
    assert_exactly_once(&es, accepted.into_iter());
}

#[tokio::test]
async fn shutdown_drains_what_was_accepted() {
    let es = EsStandin::start().await;
    let gw = Gateway::start(&policy(&es, "flush_interval = \"10m\"", "")).await;
    for i in 0..5 {
        assert_eq!(
            send(&gw, events(i * 10..i * 10 + 10), None).await.status(),
            202
        );
    }
    assert!(es.bulk_requests().is_empty(), "held for flush_interval");
    gw.stop().await;
    assert_exactly_once(&es, 0..50);
}

#[tokio::test]
async fn api_keys_are_verified_by_elasticsearch() {
    let es = EsStandin::start().await;
    let writer = es.add_api_key("w1", "secret-w", &["event:write", "config_agent:read"]);
    let reader = es.add_api_key("r1", "secret-r", &["config_agent:read"]);
    let gw = Gateway::start(&policy(
        &es,
        "",
        "[auth.elasticsearch_api_keys]\ncache_ttl = \"1m\"\ncache_size = 2",
    ))
    .await;
    let writer_auth = format!("ApiKey {writer}");
    // Concurrent requests with one uncached key ask Elasticsearch once.
    let (a, b, c) = tokio::join!(
        send(&gw, events(0..10), Some(&writer_auth)),
        send(&gw, events(10..20), Some(&writer_auth)),
        send(&gw, events(20..30), Some(&writer_auth)),
    );
    assert_eq!(
        (
            a.status().as_u16(),
            b.status().as_u16(),
            c.status().as_u16()
        ),
        (202, 202, 202)
    );
    let asks = |es: &EsStandin| {
        es.requests()
            .into_iter()
            .filter(|r| r.path == "/_security/user/_has_privileges")
            .collect::<Vec<_>>()
    };
    let first = asks(&es);
    assert_eq!(first.len(), 1, "one question for one credential");
    let q = &first[0];
    assert_eq!(q.method, "POST", "a body goes with POST (issue 12)");
    assert_eq!(
        String::from_utf8_lossy(&q.body),
        r#"{"application":[{"application":"apm","privileges":["config_agent:read","event:write","sourcemap:write"],"resources":["-"]}]}"#
    );
    assert_eq!(
        q.headers.get("authorization").unwrap().to_str().unwrap(),
        writer_auth,
        "the caller's own credential, not the output's"
    );
    // Cached.
    assert_eq!(
        send(&gw, events(30..40), Some(&writer_auth)).await.status(),
        202
    );
    assert_eq!(asks(&es).len(), 1);

    // Missing privilege: 403 with APM Server's message, checked per batch as APM Server does.
    let r = send(&gw, events(90..91), Some(&format!("ApiKey {reader}"))).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["message"],
        "cannot handle stream: cannot process batch: unauthorized: API Key not permitted action \"event:write\""
    );
    // Unknown key, and a known id with the wrong secret (the cache is keyed on the whole
    // credential): 401.
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for bad in [b64("nobody:nothing"), b64("w1:wrong")] {
        let r = send(&gw, events(91..92), Some(&format!("ApiKey {bad}"))).await;
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"],
            "authentication failed"
        );
    }
    // GET / with a refused key answers without its body, as APM Server.
    let r = client()
        .get(gw.url("plain", false, "/"))
        .header("Authorization", format!("ApiKey {}", b64("nobody:nothing")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());

    // Elasticsearch cannot answer: 503 for keys it has not vouched for yet.
    es.faults(|f| f.privileges_unavailable = true);
    let fresh = es.add_api_key("w2", "secret-w2", &["event:write"]);
    let r = send(&gw, events(92..93), Some(&format!("ApiKey {fresh}"))).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "service unavailable"
    );
    es.faults(|f| f.privileges_unavailable = false);
    assert_eq!(
        send(&gw, events(40..50), Some(&format!("ApiKey {fresh}")))
            .await
            .status(),
        202
    );

    es.wait_docs(WAIT, |d| d.len() == 50).await;
    gw.stop().await;
    assert_exactly_once(&es, 0..50);
    assert!(
        bulk_authorizations(&es).is_empty(),
        "callers' keys never reach bulk requests"
    );
}

/// The `Authorization` headers of the bulk requests.
fn bulk_authorizations(es: &EsStandin) -> Vec<String> {
    es.bulk_requests()
        .iter()
        .filter_map(|r| r.headers.get("authorization"))
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn what_is_sent_reads_back_through_es_compare() {
    let es = EsStandin::start().await;
    let gw = Gateway::start(&policy(&es, "compression_level = 1", "")).await;
    let input = support::fixture("es-docs-v8.6/inputs/intake-v2/errors.ndjson");
    let r = client()
        .post(gw.url("plain", false, "/intake/v2/events"))
        .header("Content-Type", "application/x-ndjson")
        .header("X-Forwarded-For", "192.0.0.1")
        .body(input)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    es.wait_docs(WAIT, |d| d.len() == 5).await;
    gw.stop().await;
    // The bodies exactly as the indexer sent them (gzip), one file each.
    let dir = tempfile::tempdir().unwrap();
    for (i, b) in es.bulk_requests().iter().enumerate() {
        assert_eq!(b.headers.get("content-encoding").unwrap(), "gzip");
        std::fs::write(dir.path().join(format!("bulk-{i}.ndjson.gz")), &b.raw_body).unwrap();
    }
    let out = std::process::Command::new("python3")
        .arg("../shared/tools/es-compare")
        .arg(dir.path())
        .arg("../shared/fixtures/es-docs-v8.6/testIntakeIntegrationErrors.approved.json")
        .args([
            "--ignore-v86-drift",
            "--receipt-time",
            "2018-08-01T10:00:00Z",
            // No trusted proxy here, so the socket address (127.0.0.1) is the client's.
            "--dynamic",
            "host.ip",
            "--json",
        ])
        .output()
        .expect("python3 runs es-compare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(
        out.status.code(),
        Some(2),
        "es-compare could not read the bulk bodies: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("es-compare --json output");
    // Every bulk item read, each paired with its expected document, nothing rejected or left
    // over, and every document equal to APM Server's.
    assert_eq!(report["ok"], true, "{stdout}");
    assert_eq!(report["bulk_items"], 5, "{stdout}");
    assert_eq!(report["actual_documents"], 5);
    assert_eq!(report["expected_documents"], 5);
    for k in ["rejected_actual", "unexpected_actual", "unmatched_expected"] {
        assert_eq!(report[k], serde_json::json!([]), "{k}");
    }
    for d in report["documents"].as_array().unwrap() {
        assert_eq!(d["actual_index"], "logs-apm.error-default");
    }
}
