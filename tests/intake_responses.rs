//! APM Server's intake response approvals (`../shared/fixtures/responses`), replayed over real
//! sockets with HTTP/1.1, HTTP/2 over TLS (ALPN), h2c and HTTP/3: status, headers that matter,
//! `accepted`, documents and messages.

mod support;

use std::io::Write;
use std::sync::Arc;

use apmgate::output::PublishError;
use serde_json::{Value, json};
use support::{Gateway, Proto, STANDARD_LISTENERS, client, fixture};

/// The protocols of `STANDARD_LISTENERS` on the `tls` listener, and those on `plain`.
const TLS_PROTOCOLS: &str = "protocols = [\"http1\", \"http2\", \"http3\"]\n";
const PLAIN_PROTOCOLS: &str = "protocols = [\"http1\", \"h2c\"]\n";

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
    method: http::Method,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
}

fn cases() -> Vec<Case> {
    let errors = fixture("intake/v2/errors.ndjson");
    let post = http::Method::POST;
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
            method: http::Method::GET,
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

async fn send(gw: &Gateway, proto: Proto, path: &str, case: &Case) -> support::Response {
    let mut headers = vec![("Accept", "application/json")];
    headers.extend_from_slice(&case.headers);
    let body = (!case.body.is_empty()).then(|| case.body.clone());
    support::request(gw, proto, case.method.clone(), path, &headers, body, None)
        .await
        .unwrap_or_else(|e| panic!("{} over {proto:?}: {e}", case.name))
}

#[tokio::test]
async fn intake_approvals_over_every_protocol() {
    let gw = Gateway::start(STANDARD_LISTENERS).await;
    for proto in Proto::EVERY {
        for case in cases() {
            let resp = send(&gw, proto, "/intake/v2/events?verbose", &case).await;
            let what = format!("{} over {proto:?}", case.name);
            assert_eq!(resp.version, proto.version(), "{what}");
            assert_eq!(resp.status, case.status, "{what}");
            assert_eq!(
                resp.header("x-content-type-options"),
                Some("nosniff"),
                "{what}"
            );
            assert_eq!(
                resp.header("content-type"),
                Some("application/json"),
                "{what}"
            );
            if case.status >= 400 && proto == Proto::H1 {
                // HTTP/2 and HTTP/3 have no Connection header; the stream is simply ended (see
                // runtime_access.rs, `response_framing_over`).
                assert_eq!(resp.header("connection"), Some("close"), "{what}");
            }
            assert_matches(&what, &resp.json(), &approved(case.name));
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn too_large_event_is_cut_at_max_event_size() {
    let limits = "limits = { max_event_size = 10 }\n";
    let policy = STANDARD_LISTENERS
        .replace(PLAIN_PROTOCOLS, &format!("{PLAIN_PROTOCOLS}{limits}"))
        .replace(TLS_PROTOCOLS, &format!("{TLS_PROTOCOLS}{limits}"));
    assert_eq!(policy.matches(limits).count(), 2, "{policy}");
    let gw = Gateway::start(&policy).await;
    for proto in Proto::EVERY {
        let case = Case {
            name: "TooLarge",
            method: http::Method::POST,
            headers: vec![],
            body: fixture("intake/v2/errors.ndjson"),
            status: 400,
        };
        let resp = send(&gw, proto, "/intake/v2/events?verbose", &case).await;
        assert_eq!(resp.status, 400, "{proto:?}");
        assert_matches(
            &format!("TooLarge over {proto:?}"),
            &resp.json(),
            &approved("TooLarge"),
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn output_refusals_are_503_with_apm_server_messages() {
    for (err, name) in [
        (PublishError::QueueFull, "FullQueueLegacy"),
        (PublishError::QueueFull, "FullQueue"),
        (PublishError::Closed, "Closing"),
    ] {
        let gw =
            Gateway::start_with(STANDARD_LISTENERS, Some(Arc::new(support::Refusing(err)))).await;
        for proto in Proto::EVERY {
            let case = Case {
                name,
                method: http::Method::POST,
                headers: vec![],
                body: fixture("intake/v2/errors.ndjson"),
                status: 503,
            };
            let resp = send(&gw, proto, "/intake/v2/events", &case).await;
            assert_eq!(resp.status, 503, "{name} over {proto:?}");
            assert_matches(
                &format!("{name} over {proto:?}"),
                &resp.json(),
                &approved(name),
            );
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
    let want = |path: &str| {
        serde_json::from_slice::<Value>(&fixture(&format!(
            "responses/integration/{path}.approved.json"
        )))
        .unwrap()
    };
    for proto in Proto::EVERY {
        let send = |method: http::Method,
                    path: &'static str,
                    headers: &'static [(&'static str, &'static str)]| {
            let gw = &gw;
            async move {
                support::request(gw, proto, method, path, headers, None, None)
                    .await
                    .unwrap_or_else(|e| panic!("{proto:?} {path}: {e}"))
            }
        };
        // Unauthorized: no Authorization, no body, no verbose. APM Server's test sends no
        // Accept; reqwest always sends one, so ask for neither JSON nor `*/*`: text/plain.
        let resp = send(
            http::Method::POST,
            "/intake/v2/events",
            &[("Accept", "text/plain")],
        )
        .await;
        assert_eq!(resp.status, 401, "{proto:?}");
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{proto:?}"
        );
        assert_eq!(
            resp.json(),
            want("backend/TestIntakeBackendHandler_AuthorizationMiddleware/Unauthorized"),
            "{proto:?}"
        );
        // Authorized GET: authentication passes, then the method check fails.
        let resp = send(
            http::Method::GET,
            "/intake/v2/events",
            &[("Authorization", "Bearer 1234")],
        )
        .await;
        assert_eq!(resp.status, 400, "{proto:?}");
        assert_eq!(
            resp.json(),
            want("backend/TestIntakeBackendHandler_AuthorizationMiddleware/Authorized"),
            "{proto:?}"
        );
        // RUM disabled.
        let resp = send(
            http::Method::POST,
            "/intake/v2/rum/events",
            &[("Authorization", "Bearer 1234")],
        )
        .await;
        assert_eq!(resp.status, 403, "{proto:?}");
        assert_eq!(
            resp.json(),
            want("rum/TestRUMHandler_KillSwitchMiddleware/OffRum"),
            "{proto:?}"
        );
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
