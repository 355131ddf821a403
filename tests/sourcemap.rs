//! RUM source mapping through a running gateway with the Elasticsearch output towards the
//! stand-in, which holds the source maps as Kibana stores them in `.apm-source-map`: APM
//! Server's two approvals (an error and a span mapped with `bundle.js.map`) compared field by
//! field with `es-compare`, and what goes wrong (no map, a malformed map, one over the size
//! limit, Elasticsearch unreachable) written as `sourcemap.error` while the request is still
//! accepted; many requests for one bundle fetch it once, and a changed map is picked up when
//! the cached one expires.

mod support;

use std::path::Path;
use std::time::Duration;

use es_standin::EsStandin;
use serde_json::Value;
use support::{FIXTURES, Gateway, assert_es_compare, fixture};

const WAIT: Duration = Duration::from_secs(30);
const BUNDLE: &str = "sourcemap/bundle.js.map";

fn policy(es: &EsStandin, source_mapping: &str) -> String {
    format!(
        r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1"]

[rum]
enabled = true
allow_origins = ["*"]

[rum.source_mapping]
{source_mapping}

[output.elasticsearch]
hosts = ["{}"]
flush_interval = "20ms"
backoff_init = "10ms"
backoff_max = "100ms"
dead_letter_path = "dead.ndjson"
"#,
        es.url()
    )
}

async fn send_rum(gw: &Gateway, body: Vec<u8>) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(gw.url("plain", false, "/intake/v2/rum/events"))
        .header("Content-Type", "application/x-ndjson")
        .header("User-Agent", "Go-http-client/1.1")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(status, 202, "{}", resp.text().await.unwrap_or_default());
}

/// The stand-in's documents of `index_prefix` as a `_bulk` body, for es-compare.
fn capture(es: &EsStandin, dir: &Path, index_prefix: &str) -> std::path::PathBuf {
    let mut out = String::new();
    for (index, doc) in es.docs() {
        if index.starts_with(index_prefix) {
            out.push_str(&serde_json::json!({"create": {"_index": index}}).to_string());
            out.push('\n');
            out.push_str(&doc.to_string());
            out.push('\n');
        }
    }
    let path = dir.join("captured.ndjson");
    std::fs::write(&path, out).unwrap();
    path
}

fn docs_of(es: &EsStandin, prefix: &str) -> Vec<Value> {
    es.docs()
        .into_iter()
        .filter(|(i, _)| i.starts_with(prefix))
        .map(|(_, d)| d)
        .collect()
}

/// An error whose exception has two frames in the bundle, for `service` `version`: mapped,
/// the inner one takes the name the map gives the outer one's position (`exports`).
fn rum_error(id: &str, service: &str, version: &str, abs_path: &str) -> Vec<u8> {
    format!(
        r#"{{"metadata":{{"service":{{"name":"{service}","version":"{version}","agent":{{"name":"rum-js","version":"5.16.0"}}}}}}}}
{{"error":{{"id":"{id}","exception":{{"message":"boom","type":"Error","stacktrace":[{{"abs_path":"{abs_path}","filename":"bundle.js","function":"a","lineno":1,"colno":7}},{{"abs_path":"{abs_path}","filename":"bundle.js","function":"b","lineno":1,"colno":67}}]}}}}}}
"#
    )
    .into_bytes()
}

fn error_doc(es: &EsStandin, id: &str) -> Option<Value> {
    docs_of(es, "logs-apm.error")
        .into_iter()
        .find(|d| d["error"]["id"] == id)
}

async fn wait_error(es: &EsStandin, id: &str) -> Value {
    es.wait_docs(WAIT, |docs| {
        docs.iter().any(|(_, d)| d["error"]["id"] == id)
    })
    .await;
    error_doc(es, id).unwrap()
}

fn exception_frames(doc: &Value) -> &Vec<Value> {
    doc["error"]["exception"][0]["stacktrace"]
        .as_array()
        .expect("an exception stack trace")
}

#[tokio::test]
async fn apm_servers_error_approval_matches_with_the_map_in_elasticsearch() {
    let es = EsStandin::start().await;
    es.put_source_map(
        "apm-agent-js",
        "1.0.1",
        "/test/e2e/general-usecase/bundle.js.map",
        &fixture(BUNDLE),
    );
    let gw = Gateway::start(&policy(&es, "")).await;
    send_rum(&gw, fixture("intake/v2/errors_rum.ndjson")).await;
    es.wait_docs(WAIT, |d| {
        d.iter().any(|(i, _)| i.starts_with("logs-apm.error"))
    })
    .await;
    let doc = docs_of(&es, "logs-apm.error").remove(0);
    // The frames themselves (not indexed, so not in the approval): mapped from their bundle,
    // originals kept, function names moved one frame out as APM Server does.
    let frames = exception_frames(&doc);
    assert_eq!(frames.len(), 5);
    for f in frames {
        assert_eq!(f["sourcemap"]["updated"], true, "{f}");
        assert_eq!(
            f["abs_path"],
            "http://localhost:8000/test/e2e/general-usecase/bundle.js.map"
        );
        assert_eq!(f["original"]["lineno"], 1);
        assert!(f["original"]["abs_path"].is_string());
        assert!(
            f["filename"].as_str().unwrap().starts_with("webpack:///"),
            "{f}"
        );
    }
    assert_eq!(frames[4]["function"], "<anonymous>");
    assert_eq!(frames[0]["original"]["function"], "<anonymous>");
    assert_eq!(frames[1]["original"]["colno"], 181);
    assert_eq!(
        frames[0]["original"]["abs_path"],
        "http://localhost:8000/test/../test/e2e/general-usecase/bundle.js.map"
    );
    let captured = capture(&es, gw.dir.path(), "logs-apm.error");
    assert_es_compare(
        "TestRUMErrorSourcemapping-relative_bundle_filepath",
        &captured,
        "sourcemap/TestRUMErrorSourcemapping-relative_bundle_filepath.approved.json",
        &["--index", "logs-apm.error-*"],
    );
    assert!(Path::new(FIXTURES).join(BUNDLE).exists());
}

#[tokio::test]
async fn apm_servers_span_approval_matches_with_the_map_under_another_host() {
    let es = EsStandin::start().await;
    es.put_source_map(
        "apm-agent-js",
        "1.0.0",
        "http://localhost:8000/test/e2e/general-usecase/bundle.js.map",
        &fixture(BUNDLE),
    );
    let gw = Gateway::start(&policy(&es, "")).await;
    send_rum(&gw, fixture("intake/v2/transactions_spans_rum_2.ndjson")).await;
    es.wait_docs(WAIT, |d| {
        d.iter()
            .any(|(i, d)| i.starts_with("traces-apm.rum") && d["span"]["stacktrace"].is_array())
    })
    .await;
    let span = docs_of(&es, "traces-apm.rum")
        .into_iter()
        .find(|d| d["span"]["stacktrace"].is_array())
        .unwrap();
    // Frames from subdomain1 and subdomain2 find the map by their URL's path (an alias).
    let frames = span["span"]["stacktrace"].as_array().unwrap();
    assert_eq!(frames.len(), 2);
    for f in frames {
        assert_eq!(f["sourcemap"]["updated"], true, "{f}");
        assert_eq!(
            f["filename"],
            "webpack:///webpack/bootstrap 6002740481c9666b0d38"
        );
    }
    assert_eq!(frames[1]["function"], "<anonymous>");
    let captured = capture(&es, gw.dir.path(), "traces-apm");
    assert_es_compare(
        "TestRUMSpanSourcemapping-minimal_config",
        &captured,
        "sourcemap/TestRUMSpanSourcemapping-minimal_config.approved.json",
        &["--index", "traces-apm*", "--term", "processor.event=span"],
    );
}

#[tokio::test]
async fn a_missing_map_is_a_sourcemap_error_and_the_request_is_accepted() {
    let es = EsStandin::start().await;
    let gw = Gateway::start(&policy(&es, "")).await;
    send_rum(&gw, rum_error("e1", "shop", "2.0.0", "http://h/app.js")).await;
    let doc = wait_error(&es, "e1").await;
    for f in exception_frames(&doc) {
        assert_eq!(
            f["sourcemap"]["error"],
            "unable to find sourcemap.url for service.name=shop service.version=2.0.0 bundle.path=http://h/app.js"
        );
        assert!(f["sourcemap"].get("updated").is_none());
        assert!(f.get("original").is_none(), "{f}");
    }
    // Unmapped: no culprit from the frames, no function names moved.
    assert!(doc["error"].get("culprit").is_none());
    assert_eq!(exception_frames(&doc)[0]["function"], "a");
    assert_eq!(exception_frames(&doc)[1]["function"], "b");
    assert_eq!(
        es.source_map_fetches(),
        0,
        "only maps the list has are fetched"
    );
}

#[tokio::test]
async fn a_malformed_map_is_a_sourcemap_error_then_remembered_as_absent() {
    let es = EsStandin::start().await;
    es.put_source_map(
        "shop",
        "2.0.0",
        "http://h/app.js",
        b"{\"version\": 3, \"mappings\": 7}",
    );
    let gw = Gateway::start(&policy(&es, "")).await;
    send_rum(&gw, rum_error("m1", "shop", "2.0.0", "http://h/app.js")).await;
    let doc = wait_error(&es, "m1").await;
    let e = exception_frames(&doc)[0]["sourcemap"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(e.starts_with("sourcemap malformed: "), "{e}");
    send_rum(&gw, rum_error("m2", "shop", "2.0.0", "http://h/app.js")).await;
    let doc = wait_error(&es, "m2").await;
    assert_eq!(
        exception_frames(&doc)[0]["sourcemap"]["error"],
        "unable to find sourcemap for service.name=shop service.version=2.0.0 bundle.path=http://h/app.js"
    );
    assert_eq!(es.source_map_fetches(), 1);
    let fetches = |result| {
        gw.shared
            .metrics
            .get("apmgate_source_map_fetches_total", &[("result", result)])
    };
    assert_eq!((fetches("malformed"), fetches("found")), (1, 0));
}

#[tokio::test]
async fn a_map_over_the_size_limit_is_not_used() {
    let es = EsStandin::start().await;
    es.put_source_map("shop", "2.0.0", "/app.js", &fixture(BUNDLE));
    let gw = Gateway::start(&policy(&es, "max_sourcemap_size = \"1KiB\"")).await;
    send_rum(&gw, rum_error("big", "shop", "2.0.0", "/app.js")).await;
    let doc = wait_error(&es, "big").await;
    assert_eq!(
        exception_frames(&doc)[0]["sourcemap"]["error"],
        "sourcemap size exceeds limit : decompressed source map exceeds limit of 1024 bytes for sourcemap with name (shop), version (2.0.0), path (/app.js)"
    );
}

#[tokio::test]
async fn elasticsearch_unreachable_is_a_sourcemap_error_until_it_comes_back() {
    let es = EsStandin::start().await;
    es.put_source_map("shop", "2.0.0", "/app.js", &fixture(BUNDLE));
    es.source_maps_down(true);
    let gw = Gateway::start(&policy(&es, "cache_expiration = \"1s\"")).await;
    send_rum(&gw, rum_error("down", "shop", "2.0.0", "/app.js")).await;
    let doc = wait_error(&es, "down").await;
    let e = exception_frames(&doc)[0]["sourcemap"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with(
            "failed to populate sourcemap metadata: failed to run initial search query: fetcher unavailable: "
        ),
        "{e}"
    );
    assert!(!e.contains("Authorization"), "{e}");
    // Back: the list is read again (the scroll is cleared once it is in force), and frames map.
    let clears = |es: &EsStandin| {
        es.requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.path.starts_with("/_search/scroll/"))
            .count()
    };
    es.source_maps_down(false);
    let before = clears(&es);
    es.wait_requests(WAIT, |r| {
        r.iter()
            .filter(|r| r.method == "DELETE" && r.path.starts_with("/_search/scroll/"))
            .count()
            > before
    })
    .await;
    send_rum(&gw, rum_error("up", "shop", "2.0.0", "/app.js")).await;
    let doc = wait_error(&es, "up").await;
    assert_eq!(exception_frames(&doc)[0]["sourcemap"]["updated"], true);
}

#[tokio::test]
async fn many_requests_for_one_bundle_fetch_it_once() {
    let es = EsStandin::start().await;
    es.put_source_map("shop", "2.0.0", "/app.js", &fixture(BUNDLE));
    // Every answer takes a while, so the requests wait for the map together.
    es.faults(|f| f.latency = Duration::from_millis(300));
    let gw = Gateway::start(&policy(&es, "")).await;
    let sends = (0..40).map(|n| {
        let gw = &gw;
        async move { send_rum(gw, rum_error(&format!("c{n}"), "shop", "2.0.0", "/app.js")).await }
    });
    futures_util::future::join_all(sends).await;
    es.wait_docs(WAIT, |d| {
        d.iter()
            .filter(|(i, _)| i.starts_with("logs-apm.error"))
            .count()
            == 40
    })
    .await;
    for d in docs_of(&es, "logs-apm.error") {
        assert_eq!(exception_frames(&d)[0]["sourcemap"]["updated"], true, "{d}");
    }
    assert_eq!(es.source_map_fetches(), 1);
}

#[tokio::test]
async fn a_changed_map_is_used_once_the_cached_one_expires() {
    let es = EsStandin::start().await;
    es.put_source_map("shop", "2.0.0", "/app.js", &fixture(BUNDLE));
    let gw = Gateway::start(&policy(&es, "cache_expiration = \"1s\"")).await;
    send_rum(&gw, rum_error("v1", "shop", "2.0.0", "/app.js")).await;
    let doc = wait_error(&es, "v1").await;
    assert_eq!(exception_frames(&doc)[0]["function"], "exports");
    // Same hash, other content: the list does not change, only expiry brings it in.
    let renamed = String::from_utf8(fixture(BUNDLE))
        .unwrap()
        .replace("\"exports\"", "\"renamed\"");
    let hash_of_old = {
        use sha2::Digest as _;
        sha2::Sha256::digest(fixture(BUNDLE))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    es.put_source_map_content(
        "shop",
        "2.0.0",
        "/app.js",
        &es_standin::kibana_content(renamed.as_bytes()),
        &hash_of_old,
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let id = format!("v2-{n}");
        send_rum(&gw, rum_error(&id, "shop", "2.0.0", "/app.js")).await;
        let doc = wait_error(&es, &id).await;
        if exception_frames(&doc)[0]["function"] == "renamed" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the changed map was never used"
        );
    }
    // Fetched again only once the cached map expired: no request came between the first
    // fetch and the change, so the second fetch is the one that brought the change.
    assert_eq!(es.source_map_fetches(), 2);
}

#[tokio::test]
async fn a_slow_cluster_costs_a_batch_no_more_than_the_timeout() {
    let es = EsStandin::start().await;
    es.put_source_map("shop", "2.0.0", "/app.js", &fixture(BUNDLE));
    es.faults(|f| f.latency = Duration::from_secs(3));
    let gw = Gateway::start(&policy(&es, "timeout = \"300ms\"")).await;
    // One batch of ten errors: the timeout is the batch's, as in APM Server, not each line's.
    let mut body = rum_error("slow-0", "shop", "2.0.0", "/app.js");
    for n in 1..10 {
        let one = rum_error(&format!("slow-{n}"), "shop", "2.0.0", "/app.js");
        let event = one.split(|b| *b == b'\n').nth(1).unwrap().to_vec();
        body.extend_from_slice(&event);
        body.push(b'\n');
    }
    let started = std::time::Instant::now();
    send_rum(&gw, body).await;
    // Answered well before ten timeouts, and before the cluster could answer anything.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for n in 0..10 {
        let doc = wait_error(&es, &format!("slow-{n}")).await;
        assert_eq!(
            exception_frames(&doc)[0]["sourcemap"]["error"],
            "error waiting for metadata fetcher to be ready: context deadline exceeded"
        );
    }
}

#[tokio::test]
async fn a_reload_turns_source_mapping_off_and_on() {
    let es = EsStandin::start().await;
    es.put_source_map("shop", "2.0.0", "/app.js", &fixture(BUNDLE));
    let mut gw = Gateway::start(&policy(&es, "")).await;
    gw.reload(&policy(&es, "enabled = false")).await;
    send_rum(&gw, rum_error("off", "shop", "2.0.0", "/app.js")).await;
    let doc = wait_error(&es, "off").await;
    let f = &exception_frames(&doc)[0];
    assert!(
        f.get("sourcemap").is_none() && f.get("original").is_none(),
        "{f}"
    );
    gw.reload(&policy(&es, "")).await;
    send_rum(&gw, rum_error("on", "shop", "2.0.0", "/app.js")).await;
    let doc = wait_error(&es, "on").await;
    assert_eq!(exception_frames(&doc)[0]["sourcemap"]["updated"], true);
}
