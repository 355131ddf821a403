//! APM Server's intake response approvals (`../shared/fixtures/responses`), replayed over real
//! sockets with HTTP/1.1, HTTP/2 over TLS (ALPN) and h2c: status, headers that matter,
//! `accepted`, documents and messages.

mod support;

use std::io::Write;
use std::sync::Arc;

use apmgate::output::{Output, OutputDocument, PublishError, PublishFuture};
use serde_json::{Value, json};
use support::{Gateway, Proto, STANDARD_LISTENERS, client, fixture};

fn approved(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("responses/{name}.approved.json"))).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

struct Case {
    name: &'static str,
    method: reqwest::Method,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
}

fn cases() -> Vec<Case> {
    let errors = fixture("intake/v2/errors.ndjson");
    let post = reqwest::Method::POST;
    vec![
        Case {
            name: "Success",
            method: post.clone(),
            headers: vec![],
            body: errors.clone(),
            status: 202,
        },
        Case {
            name: "EmptyBody",
            method: post.clone(),
            headers: vec![("Content-Type", "application/x-ndjson")],
            body: vec![],
            status: 202,
        },
        Case {
            name: "Method",
            method: reqwest::Method::GET,
            headers: vec![],
            body: vec![],
            status: 400,
        },
        Case {
            name: "ContentType",
            method: post.clone(),
            headers: vec![("Content-Type", "application/json")],
            body: vec![],
            status: 400,
        },
        Case {
            name: "CompressedBodyReaderGzipValid",
            method: post.clone(),
            headers: vec![("Content-Encoding", "gzip")],
            body: gzip(&errors),
            status: 202,
        },
        Case {
            name: "CompressedBodyReaderGzipInvalid",
            method: post.clone(),
            headers: vec![("Content-Encoding", "gzip")],
            body: errors.clone(),
            status: 400,
        },
        Case {
            name: "CompressedBodyReaderDeflateValid",
            method: post.clone(),
            headers: vec![("Content-Encoding", "deflate")],
            body: zlib(&errors),
            status: 202,
        },
        Case {
            name: "CompressedBodyReaderDeflateInvalid",
            method: post.clone(),
            headers: vec![("Content-Encoding", "deflate")],
            body: errors.clone(),
            status: 400,
        },
        Case {
            name: "InvalidEvent",
            method: post.clone(),
            headers: vec![],
            body: fixture("intake/v2/invalid-event.ndjson"),
            status: 400,
        },
        Case {
            name: "InvalidJSONEvent",
            method: post.clone(),
            headers: vec![],
            body: fixture("intake/v2/invalid-json-event.ndjson"),
            status: 400,
        },
        Case {
            name: "InvalidJSONMetadata",
            method: post.clone(),
            headers: vec![],
            body: fixture("intake/v2/invalid-json-metadata.ndjson"),
            status: 400,
        },
        Case {
            name: "InvalidMetadata",
            method: post.clone(),
            headers: vec![],
            body: fixture("intake/v2/invalid-metadata.ndjson"),
            status: 400,
        },
        Case {
            name: "InvalidMetadata2",
            method: post.clone(),
            headers: vec![],
            body: fixture("intake/v2/invalid-metadata-2.ndjson"),
            status: 400,
        },
        Case {
            name: "UnrecognizedEvent",
            method: post.clone(),
            headers: vec![],
            body: fixture("intake/v2/invalid-event-type.ndjson"),
            status: 400,
        },
    ]
}

/// Compares a response body with an approval: `accepted`, each error's `document` exactly, and
/// each `message` exactly, except a JSON decoder's own wording after `decode error: `.
fn assert_matches(name: &str, got: &Value, want: &Value) {
    assert_eq!(
        got["accepted"], want["accepted"],
        "{name}: accepted in {got}"
    );
    let (g, w) = (got["errors"].as_array(), want["errors"].as_array());
    assert_eq!(g.map(Vec::len), w.map(Vec::len), "{name}: errors in {got}");
    for (g, w) in g.into_iter().flatten().zip(w.into_iter().flatten()) {
        assert_eq!(g["document"], w["document"], "{name}: document");
        let (gm, wm) = (
            g["message"].as_str().unwrap(),
            w["message"].as_str().unwrap(),
        );
        match wm.strip_prefix("decode error: ") {
            Some(_) => assert!(
                gm.starts_with("decode error: "),
                "{name}: {gm:?} should start like {wm:?}"
            ),
            None => assert_eq!(gm, wm, "{name}: message"),
        }
    }
}

async fn send(gw: &Gateway, proto: Proto, path: &str, case: &Case) -> reqwest::Response {
    let http = client(gw, proto);
    let mut req = http
        .request(
            case.method.clone(),
            gw.url(proto.listener(), proto.tls(), path),
        )
        .header("Accept", "application/json");
    for (k, v) in &case.headers {
        req = req.header(*k, *v);
    }
    if !case.body.is_empty() {
        req = req.body(case.body.clone());
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn intake_approvals_over_every_protocol() {
    let gw = Gateway::start(STANDARD_LISTENERS).await;
    for proto in Proto::ALL {
        for case in cases() {
            let resp = send(&gw, proto, "/intake/v2/events?verbose", &case).await;
            let what = format!("{} over {proto:?}", case.name);
            assert_eq!(resp.version(), proto.version(), "{what}");
            assert_eq!(resp.status().as_u16(), case.status, "{what}");
            assert_eq!(
                resp.headers()["x-content-type-options"],
                "nosniff",
                "{what}"
            );
            assert_eq!(resp.headers()["content-type"], "application/json", "{what}");
            if case.status >= 400 && proto == Proto::H1 {
                // HTTP/2 has no Connection header; the stream is simply ended.
                assert_eq!(resp.headers()["connection"], "close", "{what}");
            }
            let body: Value = resp.json().await.unwrap();
            assert_matches(&what, &body, &approved(case.name));
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn too_large_event_is_cut_at_max_event_size() {
    let policy = STANDARD_LISTENERS.replace(
        "protocols = [\"http1\", \"h2c\"]\n",
        "protocols = [\"http1\", \"h2c\"]\nlimits = { max_event_size = 10 }\n",
    );
    let gw = Gateway::start(&policy).await;
    for proto in [Proto::H1, Proto::H2c] {
        let case = Case {
            name: "TooLarge",
            method: reqwest::Method::POST,
            headers: vec![],
            body: fixture("intake/v2/errors.ndjson"),
            status: 400,
        };
        let resp = send(&gw, proto, "/intake/v2/events?verbose", &case).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_matches("TooLarge", &body, &approved("TooLarge"));
    }
    gw.stop().await;
}

/// An output that refuses every batch.
struct Refusing(PublishError);

impl Output for Refusing {
    fn publish(&self, _: Vec<OutputDocument>) -> PublishFuture<'_> {
        let e = self.0.clone();
        Box::pin(async move { Err(e) })
    }
    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + '_>> {
        Box::pin(async { 0 })
    }
}

#[tokio::test]
async fn output_refusals_are_503_with_apm_server_messages() {
    for (err, name) in [
        (PublishError::QueueFull, "FullQueueLegacy"),
        (PublishError::QueueFull, "FullQueue"),
        (PublishError::Closed, "Closing"),
    ] {
        let gw = Gateway::start_with(STANDARD_LISTENERS, Some(Arc::new(Refusing(err)))).await;
        for proto in Proto::ALL {
            let case = Case {
                name,
                method: reqwest::Method::POST,
                headers: vec![],
                body: fixture("intake/v2/errors.ndjson"),
                status: 503,
            };
            let resp = send(&gw, proto, "/intake/v2/events", &case).await;
            assert_eq!(resp.status(), 503, "{name} over {proto:?}");
            let body: Value = resp.json().await.unwrap();
            assert_matches(name, &body, &approved(name));
        }
        gw.stop().await;
    }
}

#[tokio::test]
async fn authorization_approvals_and_the_rum_switch() {
    // APM Server's test configures the secret token "1234" (inline here: a test policy).
    let gw = Gateway::start(&format!(
        "{STANDARD_LISTENERS}\n[auth.secret_token.t]\nsecret = \"1234\"\n"
    ))
    .await;
    for proto in Proto::ALL {
        let http = client(&gw, proto);
        // Unauthorized: no Authorization, no body, no verbose. APM Server's test sends no
        // Accept; reqwest always sends one, so ask for neither JSON nor `*/*`: text/plain.
        let resp = http
            .post(gw.url(proto.listener(), proto.tls(), "/intake/v2/events"))
            .header("Accept", "text/plain")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        let want = fixture(
            "responses/integration/backend/TestIntakeBackendHandler_AuthorizationMiddleware/Unauthorized.approved.json",
        );
        assert_eq!(body, serde_json::from_slice::<Value>(&want).unwrap());
        // Authorized GET: authentication passes, then the method check fails.
        let resp = http
            .get(gw.url(proto.listener(), proto.tls(), "/intake/v2/events"))
            .header("Authorization", "Bearer 1234")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        let want = fixture(
            "responses/integration/backend/TestIntakeBackendHandler_AuthorizationMiddleware/Authorized.approved.json",
        );
        assert_eq!(body, serde_json::from_slice::<Value>(&want).unwrap());
        // RUM disabled.
        let resp = http
            .post(gw.url(proto.listener(), proto.tls(), "/intake/v2/rum/events"))
            .header("Authorization", "Bearer 1234")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        let want = fixture(
            "responses/integration/rum/TestRUMHandler_KillSwitchMiddleware/OffRum.approved.json",
        );
        assert_eq!(body, serde_json::from_slice::<Value>(&want).unwrap());
    }
    gw.stop().await;
}

#[tokio::test]
async fn accepted_events_land_in_the_file_output_as_bulk_ndjson() {
    let gw = Gateway::start(STANDARD_LISTENERS).await;
    let http = client(&gw, Proto::H2Tls);
    let resp = http
        .post(gw.url("tls", true, "/intake/v2/events"))
        .header("X-Forwarded-For", "203.0.113.9")
        .header("User-Agent", "apm-agent-test/1.0")
        .body(fixture("intake/v2/events.ndjson"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert!(
        resp.bytes().await.unwrap().is_empty(),
        "202 without verbose has no body"
    );
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    assert_eq!(docs.len(), 4, "error, span, transaction, metricset");
    let streams: Vec<&str> = docs.iter().map(|(i, _)| i.as_str()).collect();
    assert!(
        streams.contains(&"traces-apm-default") && streams.contains(&"logs-apm.error-default"),
        "{streams:?}"
    );
    for (_, doc) in &docs {
        assert!(doc["@timestamp"].is_string(), "{doc}");
        assert_eq!(doc["observer"]["type"], "apm-server");
        // No trusted proxies: the forwarded header is not believed.
        assert_eq!(doc["host"]["ip"], json!(["127.0.0.1"]), "{doc}");
    }
}
