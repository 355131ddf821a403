//! HTTP/3: the same intake approvals as over HTTP/1.1 and HTTP/2, on the same router; the TCP
//! side of the listener advertises HTTP/3 with `Alt-Svc`.

mod support;

use serde_json::Value;
use support::{Gateway, fixture, h3_request};

/// One listener speaking all three protocols on one port.
fn h3_listener() -> String {
    support::tls_listener("all", r#"["http1", "http2", "http3"]"#, "")
}

/// A case: approval name, method, headers, body, status.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
);

fn approved(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("responses/{name}.approved.json"))).unwrap()
}

#[tokio::test]
async fn intake_approvals_over_http3() {
    let gw = Gateway::start(&h3_listener()).await;
    let errors = fixture("intake/v2/errors.ndjson");
    let cases: Vec<Case> = vec![
        ("Success", "POST", vec![], errors.clone(), 202),
        (
            "EmptyBody",
            "POST",
            vec![("content-type", "application/x-ndjson")],
            vec![],
            202,
        ),
        ("Method", "GET", vec![], vec![], 400),
        (
            "ContentType",
            "POST",
            vec![("content-type", "application/json")],
            vec![],
            400,
        ),
        (
            "CompressedBodyReaderGzipInvalid",
            "POST",
            vec![("content-encoding", "gzip")],
            errors.clone(),
            400,
        ),
        (
            "InvalidJSONEvent",
            "POST",
            vec![],
            fixture("intake/v2/invalid-json-event.ndjson"),
            400,
        ),
        (
            "InvalidMetadata2",
            "POST",
            vec![],
            fixture("intake/v2/invalid-metadata-2.ndjson"),
            400,
        ),
        (
            "UnrecognizedEvent",
            "POST",
            vec![],
            fixture("intake/v2/invalid-event-type.ndjson"),
            400,
        ),
    ];
    for (name, method, mut headers, body, status) in cases {
        headers.push(("accept", "application/json"));
        let resp = h3_request(
            &gw,
            "all",
            method,
            "/intake/v2/events?verbose",
            &headers,
            body,
            false,
        )
        .await;
        assert_eq!(resp.status, status, "{name}");
        assert_eq!(resp.headers["x-content-type-options"], "nosniff", "{name}");
        let got: Value = serde_json::from_slice(&resp.body).unwrap();
        let want = approved(name);
        assert_eq!(got["accepted"], want["accepted"], "{name}: {got}");
        assert_eq!(got["errors"], want["errors"], "{name}");
    }
    let metrics = gw.shared.metrics.render();
    assert!(
        metrics.contains("protocol=\"h3\""),
        "requests are counted by protocol:\n{metrics}"
    );
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    assert_eq!(
        docs.len(),
        6,
        "Success: five errors; InvalidJSONEvent: the span after the bad line"
    );
}

#[tokio::test]
async fn tcp_responses_advertise_http3() {
    let gw = Gateway::start(&h3_listener()).await;
    let port = gw.addr("all").port();
    let http = support::client(&gw, support::Proto::H2Tls);
    let resp = http.get(gw.url("all", true, "/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["alt-svc"],
        format!("h3=\":{port}\"; ma=86400").as_str()
    );
    // And the advertised endpoint answers.
    let resp = h3_request(&gw, "all", "GET", "/", &[], vec![], false).await;
    assert_eq!(resp.status, 200);
    assert!(
        !resp.headers.contains_key("alt-svc"),
        "HTTP/3 responses need no Alt-Svc"
    );
    gw.stop().await;
}

/// POSTs a fixture with aioquic's HTTP/3 client (`tests/clients/h3_post.py`): the status and
/// the body as JSON.
async fn aioquic_post(gw: &Gateway, body_file: &str, headers: &[&str]) -> (String, Value) {
    let addr = gw.addr("all");
    let out = tokio::process::Command::new("python3")
        .arg("tests/clients/h3_post.py")
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg("/intake/v2/events?verbose")
        .arg(body_file)
        .arg(gw.path("certs/ca.crt"))
        .args(headers)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("aioquic finishes")
        .expect("python3 with aioquic (installed by .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.splitn(2, '\n');
    let status = lines.next().unwrap_or_default().to_string();
    let body = serde_json::from_str(lines.next().unwrap_or("").trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (status, body)
}

#[tokio::test]
async fn aioquic_posts_ndjson_and_gets_202() {
    let gw = Gateway::start(&h3_listener()).await;
    let (status, body) = aioquic_post(
        &gw,
        "../shared/fixtures/intake/v2/errors.ndjson",
        &[
            "content-type=application/x-ndjson",
            "accept=application/json",
        ],
    )
    .await;
    assert_eq!(status, "202", "{body}");
    assert_eq!(body, serde_json::json!({"accepted": 5}));
    gw.stop().await;
}

#[tokio::test]
async fn aioquic_reads_a_refusal() {
    let gw = Gateway::start(&h3_listener()).await;
    let (status, body) = aioquic_post(
        &gw,
        "../shared/fixtures/intake/v2/invalid-event-type.ndjson",
        &[
            "content-type=application/x-ndjson",
            "accept=application/json",
        ],
    )
    .await;
    assert_eq!(status, "400", "{body}");
    let want: Value =
        serde_json::from_slice(&fixture("responses/UnrecognizedEvent.approved.json")).unwrap();
    assert_eq!(body["accepted"], want["accepted"], "{body}");
    assert_eq!(body["errors"], want["errors"], "{body}");
    gw.stop().await;
}
