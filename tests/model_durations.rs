//! Durations and time offsets at the edges of what numbers can hold, through the real intake
//! path (HTTP POST to a running gateway, documents from its file output).
//!
//! A duration whose nanoseconds do not fit Elasticsearch's `long` is refused with APM Server's
//! 400 validation body (APM Server answers 202 and writes a number Elasticsearch then refuses,
//! so the event is lost either way; apmgate says so to the agent). Huge span `start` offsets
//! and timestamps are accepted and never overflow (these tests run in debug builds, where an
//! overflowing `+` panics).

mod support;

use serde_json::Value;
use support::{Gateway, output_documents};

const POLICY: &str = "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\n\
                      [rum]\nenabled = true\nallow_origins = [\"*\"]\n";

const V2_META: &str =
    r#"{"metadata":{"service":{"name":"svc","agent":{"name":"go","version":"2.0.0"}}}}"#;
const V3_META: &str = r#"{"m":{"se":{"n":"svc","a":{"n":"rum-js","ve":"5.0.0"}}}}"#;

/// Posts `lines` (a metadata line first) and returns the status and the JSON body.
async fn post(gw: &Gateway, route: &str, lines: &[&str]) -> (u16, Value) {
    let body = lines.join("\n") + "\n";
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(gw.url("plain", false, &format!("{route}?verbose=true")))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn refused(body: &Value, path: &str) {
    let errors = body["errors"].as_array().expect("an errors list");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(
        errors[0]["message"],
        format!("validation error: {path}: validation rule 'max(9223372036854.775)' violated"),
        "{body}"
    );
    assert_eq!(body["accepted"], 0, "{body}");
}

#[tokio::test]
async fn a_duration_beyond_elasticsearch_long_is_refused_with_a_validation_error() {
    let gw = Gateway::start(POLICY).await;
    let huge = "1.7976931348623157e308";
    let tx = format!(
        r#"{{"transaction":{{"id":"a1","trace_id":"t1","type":"request","duration":{huge},"span_count":{{"started":0}}}}}}"#
    );
    let (status, body) = post(&gw, "/intake/v2/events", &[V2_META, &tx]).await;
    assert_eq!(status, 400, "{body}");
    refused(&body, "transaction: 'duration'");

    let span = format!(
        r#"{{"span":{{"id":"b1","trace_id":"t1","parent_id":"a1","name":"s","type":"db","timestamp":1,"duration":{huge}}}}}"#
    );
    let (status, body) = post(&gw, "/intake/v2/events", &[V2_META, &span]).await;
    assert_eq!(status, 400, "{body}");
    refused(&body, "span: 'duration'");

    // 2^63 ns exactly is out of range; one millisecond less is in.
    let edge = r#"{"transaction":{"id":"a2","trace_id":"t1","type":"request","duration":9223372036854.7759,"span_count":{"started":0}}}"#;
    let (status, body) = post(&gw, "/intake/v2/events", &[V2_META, edge]).await;
    assert_eq!(status, 400, "{body}");
    let ok = r#"{"transaction":{"id":"a3","trace_id":"t1","type":"request","duration":9223372036853.775,"span_count":{"started":0}}}"#;
    let (status, body) = post(&gw, "/intake/v2/events", &[V2_META, ok]).await;
    assert_eq!(status, 202, "{body}");

    // RUM v3: the transaction (`x.d`) and its spans (`y[].d`).
    let x =
        format!(r#"{{"x":{{"id":"c1","tid":"t2","t":"page-load","d":{huge},"yc":{{"sd":0}}}}}}"#);
    let (status, body) = post(&gw, "/intake/v3/rum/events", &[V3_META, &x]).await;
    assert_eq!(status, 400, "{body}");
    refused(&body, "x: 'd'");
    let y = format!(
        r#"{{"x":{{"id":"c2","tid":"t2","t":"page-load","d":5,"yc":{{"sd":0}},"y":[{{"id":"d1","n":"s","t":"resource","s":1,"d":{huge}}}]}}}}"#
    );
    let (status, body) = post(&gw, "/intake/v3/rum/events", &[V3_META, &y]).await;
    assert_eq!(status, 400, "{body}");
    refused(&body, "x: y: 'd'");

    let dir = gw.stop().await;
    let docs = output_documents(dir.path());
    assert_eq!(docs.len(), 1, "only the in-range transaction is written");
    let duration = &docs[0].1["event"]["duration"];
    assert!(
        duration
            .as_i64()
            .is_some_and(|d| d > 9_223_372_036_000_000_000),
        "event.duration within long: {duration}"
    );
}

#[tokio::test]
async fn huge_span_starts_and_timestamps_neither_overflow_nor_panic() {
    let gw = Gateway::start(POLICY).await;
    let big_start = r#"{"span":{"id":"b2","trace_id":"t1","parent_id":"a1","name":"s","type":"db","start":1.7976931348623157e308,"duration":1}}"#;
    let neg_start = r#"{"span":{"id":"b3","trace_id":"t1","parent_id":"a1","name":"s","type":"db","start":-1.7976931348623157e308,"duration":1}}"#;
    let max_ts = r#"{"transaction":{"id":"a4","trace_id":"t1","type":"request","duration":1,"timestamp":9223372036854775807,"span_count":{"started":0}}}"#;
    let (status, body) = post(
        &gw,
        "/intake/v2/events",
        &[V2_META, big_start, neg_start, max_ts],
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 3, "{body}");

    let y = r#"{"x":{"id":"c3","tid":"t2","t":"page-load","d":5,"yc":{"sd":0},"y":[{"id":"d2","n":"s","t":"resource","s":1.7976931348623157e308,"d":1}]}}"#;
    let (status, body) = post(&gw, "/intake/v3/rum/events", &[V3_META, y]).await;
    assert_eq!(status, 202, "{body}");

    let dir = gw.stop().await;
    let docs = output_documents(dir.path());
    assert_eq!(docs.len(), 5, "{docs:#?}");
    for (_, d) in &docs {
        assert!(d["@timestamp"].is_string(), "{d}");
        if let Some(us) = d.get("timestamp").and_then(|t| t.get("us")) {
            assert!(us.is_i64(), "timestamp.us is a long: {d}");
        }
    }
}
