//! Issue 19: which documents carry `span.id`, and what an explicit `timestamp: 0` gives, as
//! APM Server 9.5 writes them (apm-data's v2 and RUM v3 decoders and `modeljson`), through the
//! real intake path: payloads POSTed to a running gateway, documents from its file output.
//!
//! - `span.id`: a v2 transaction (backend or RUM v2, one decoder) carries `span.id` equal to
//!   its id, a v2 error or log with a `transaction_id` carries it equal to that id; RUM v3
//!   transactions and errors carry none, RUM v3 spans their own id. A RUM v3 error gets
//!   `transaction.id` only with its `x` object.
//! - timestamps: an explicit `0` is the epoch, not "unset": `@timestamp` is the epoch, a span's
//!   `start` is not applied (it is only used without a timestamp), and `timestamp.us` is left
//!   out (it is written only for a non-zero time of a transaction, span or error, a v2 log
//!   with `error.*` fields counting as an error; never for metricsets and logs).
//! - `event.duration` is left out when 0.

mod support;

use serde_json::Value;
use support::{Gateway, output_documents};

const POLICY: &str = "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\n\
                      [rum]\nenabled = true\nallow_origins = [\"*\"]\n";

const V2_META: &str =
    r#"{"metadata":{"service":{"name":"svc","agent":{"name":"go","version":"2.0.0"}}}}"#;
const RUM_META: &str =
    r#"{"metadata":{"service":{"name":"web","agent":{"name":"rum-js","version":"5.0.0"}}}}"#;
const V3_META: &str = r#"{"m":{"se":{"n":"web","a":{"n":"rum-js","ve":"5.0.0"}}}}"#;
const EPOCH: &str = "1970-01-01T00:00:00.000Z";

async fn post(gw: &Gateway, route: &str, lines: &[&str]) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(gw.url("plain", false, &format!("{route}?verbose=true")))
        .header("Content-Type", "application/x-ndjson")
        .body(lines.join("\n") + "\n")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 202, "{route}: {body}");
}

/// Runs one gateway over `requests` (route, lines) and returns every document written, each
/// with its data stream as a `_stream` field.
async fn documents(requests: &[(&str, Vec<&str>)]) -> Vec<Value> {
    let gw = Gateway::start(POLICY).await;
    for (route, lines) in requests {
        post(&gw, route, lines).await;
    }
    let dir = gw.stop().await;
    output_documents(dir.path())
        .into_iter()
        .map(|(stream, mut d)| {
            d["_stream"] = Value::String(stream);
            d
        })
        .collect()
}

/// The one document whose `field` (a dotted path) equals `value`.
fn find<'a>(docs: &'a [Value], field: &str, value: &str) -> &'a Value {
    find_in(docs, "", field, value)
}

/// The one document of a data stream starting with `stream` whose `field` equals `value`.
fn find_in<'a>(docs: &'a [Value], stream: &str, field: &str, value: &str) -> &'a Value {
    let hits: Vec<&Value> = docs
        .iter()
        .filter(|d| d["_stream"].as_str().is_some_and(|s| s.starts_with(stream)))
        .filter(|d| get(d, field).and_then(Value::as_str) == Some(value))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "one document with {field} = {value}: {docs:#?}"
    );
    hits[0]
}

fn get<'a>(d: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(d, |v, k| v.get(k))
}

fn span_id(d: &Value) -> Option<&str> {
    get(d, "span.id").and_then(Value::as_str)
}

fn ts_us(d: &Value) -> Option<i64> {
    get(d, "timestamp.us").and_then(Value::as_i64)
}

#[tokio::test]
async fn span_ids_follow_each_protocol() {
    let docs = documents(&[
        (
            "/intake/v2/events",
            vec![
                V2_META,
                r#"{"transaction":{"id":"tx-backend","trace_id":"t1","type":"request","duration":1,"span_count":{"started":0}}}"#,
                r#"{"error":{"id":"err-backend","trace_id":"t1","parent_id":"tx-backend","transaction_id":"tx-backend","exception":{"message":"boom"}}}"#,
                r#"{"error":{"id":"err-alone","exception":{"message":"boom"}}}"#,
                r#"{"log":{"message":"hello","transaction.id":"tx-backend","trace.id":"t1"}}"#,
            ],
        ),
        (
            "/intake/v2/rum/events",
            vec![
                RUM_META,
                r#"{"transaction":{"id":"tx-rum2","trace_id":"t2","type":"page-load","duration":1,"span_count":{"started":0}}}"#,
                r#"{"error":{"id":"err-rum2","trace_id":"t2","parent_id":"tx-rum2","transaction_id":"tx-rum2","exception":{"message":"boom"}}}"#,
            ],
        ),
        (
            "/intake/v3/rum/events",
            vec![
                V3_META,
                r#"{"x":{"id":"tx-rum3","tid":"t3","t":"page-load","d":5,"yc":{"sd":0},"y":[{"id":"sp-rum3","n":"GET /","t":"resource","s":1,"d":1}]}}"#,
                r#"{"e":{"id":"err-rum3-x","tid":"t3","pid":"tx-rum3","xid":"tx-rum3","x":{"t":"page-load","sm":true},"ex":{"mg":"boom"}}}"#,
                r#"{"e":{"id":"err-rum3-xid-only","tid":"t3","pid":"tx-rum3","xid":"tx-rum3","ex":{"mg":"boom"}}}"#,
            ],
        ),
    ])
    .await;

    let tx = find_in(&docs, "traces-", "transaction.id", "tx-backend");
    assert_eq!(span_id(tx), Some("tx-backend"), "v2 transaction: {tx}");
    let err = find(&docs, "error.id", "err-backend");
    assert_eq!(
        span_id(err),
        Some("tx-backend"),
        "v2 error with transaction_id: {err}"
    );
    let alone = find(&docs, "error.id", "err-alone");
    assert_eq!(
        span_id(alone),
        None,
        "v2 error without transaction: {alone}"
    );
    assert!(get(alone, "transaction").is_none(), "{alone}");
    let log = find_in(&docs, "logs-apm.app", "message", "hello");
    assert_eq!(
        span_id(log),
        Some("tx-backend"),
        "v2 log with transaction.id: {log}"
    );

    let tx = find_in(&docs, "traces-", "transaction.id", "tx-rum2");
    assert_eq!(span_id(tx), Some("tx-rum2"), "RUM v2 transaction: {tx}");
    let err = find(&docs, "error.id", "err-rum2");
    assert_eq!(span_id(err), Some("tx-rum2"), "RUM v2 error: {err}");

    let tx3 = docs
        .iter()
        .find(|d| {
            d["_stream"]
                .as_str()
                .is_some_and(|s| s.starts_with("traces-"))
                && get(d, "transaction.id").and_then(Value::as_str) == Some("tx-rum3")
                && get(d, "span.name").is_none()
        })
        .unwrap_or_else(|| panic!("the RUM v3 transaction: {docs:#?}"));
    assert_eq!(span_id(tx3), None, "RUM v3 transaction: {tx3}");
    let sp = find(&docs, "span.id", "sp-rum3");
    assert_eq!(get(sp, "span.name").and_then(Value::as_str), Some("GET /"));
    let err = find(&docs, "error.id", "err-rum3-x");
    assert_eq!(span_id(err), None, "RUM v3 error: {err}");
    assert_eq!(
        get(err, "transaction.id").and_then(Value::as_str),
        Some("tx-rum3"),
        "RUM v3 error with x: {err}"
    );
    let err = find(&docs, "error.id", "err-rum3-xid-only");
    assert_eq!(span_id(err), None, "{err}");
    assert!(
        get(err, "transaction").is_none(),
        "RUM v3 error without x has no transaction: {err}"
    );
}

#[tokio::test]
async fn an_explicit_zero_timestamp_is_the_epoch_without_timestamp_us() {
    let docs = documents(&[
        (
            "/intake/v2/events",
            vec![
                V2_META,
                r#"{"transaction":{"id":"tx0","trace_id":"t1","type":"request","duration":0,"timestamp":0,"span_count":{"started":0}}}"#,
                r#"{"span":{"id":"sp0","trace_id":"t1","parent_id":"tx0","name":"s","type":"db","timestamp":0,"start":5000,"duration":1}}"#,
                r#"{"span":{"id":"sp-start","trace_id":"t1","parent_id":"tx0","name":"s","type":"db","start":5000,"duration":1}}"#,
                r#"{"error":{"id":"err0","timestamp":0,"exception":{"message":"boom"}}}"#,
                r#"{"error":{"id":"err1","timestamp":1496170422281000,"exception":{"message":"boom"}}}"#,
                r#"{"metricset":{"timestamp":0,"samples":{"m0":{"value":1}}}}"#,
                r#"{"metricset":{"timestamp":1496170422281000,"samples":{"m1":{"value":1}}}}"#,
                r#"{"log":{"@timestamp":0,"message":"log0"}}"#,
                r#"{"log":{"@timestamp":1496170422281000,"message":"log1"}}"#,
                r#"{"log":{"@timestamp":0,"message":"elog0","error.type":"E","error.message":"bad"}}"#,
                r#"{"log":{"@timestamp":1496170422281000,"message":"elog1","error.type":"E","error.message":"bad"}}"#,
            ],
        ),
        (
            "/intake/v2/rum/events",
            vec![
                RUM_META,
                r#"{"transaction":{"id":"tx-rum2-0","trace_id":"t2","type":"page-load","duration":1,"timestamp":0,"span_count":{"started":0}}}"#,
            ],
        ),
        (
            "/intake/v3/rum/events",
            vec![
                V3_META,
                r#"{"e":{"id":"err-rum3-0","timestamp":0,"ex":{"mg":"boom"}}}"#,
                r#"{"e":{"id":"err-rum3-1","timestamp":1496170422281000,"ex":{"mg":"boom"}}}"#,
            ],
        ),
    ])
    .await;

    let at_epoch_without_us = |d: &Value, what: &str| {
        assert_eq!(d["@timestamp"], EPOCH, "{what}: {d}");
        assert_eq!(ts_us(d), None, "{what}: no timestamp.us: {d}");
    };
    let tx = find_in(&docs, "traces-", "transaction.id", "tx0");
    at_epoch_without_us(tx, "v2 transaction");
    assert!(
        get(tx, "event.duration").is_none(),
        "duration 0 is left out: {tx}"
    );
    at_epoch_without_us(find(&docs, "span.id", "sp0"), "v2 span (start ignored)");
    at_epoch_without_us(find(&docs, "error.id", "err0"), "v2 error");
    at_epoch_without_us(
        find_in(&docs, "traces-", "transaction.id", "tx-rum2-0"),
        "RUM v2 transaction",
    );
    at_epoch_without_us(find(&docs, "error.id", "err-rum3-0"), "RUM v3 error");
    let metric0 = docs
        .iter()
        .find(|d| d["metricset"]["samples"][0]["name"] == "m0")
        .unwrap_or_else(|| panic!("metricset m0: {docs:#?}"));
    at_epoch_without_us(metric0, "metricset");
    at_epoch_without_us(find(&docs, "message", "log0"), "log");
    at_epoch_without_us(find(&docs, "message", "elog0"), "log with error fields");

    // Non-zero times: timestamp.us for errors (and logs with error fields), not for metricsets
    // and plain logs.
    let t = 1_496_170_422_281_000;
    assert_eq!(ts_us(find(&docs, "error.id", "err1")), Some(t));
    assert_eq!(ts_us(find(&docs, "error.id", "err-rum3-1")), Some(t));
    assert_eq!(ts_us(find(&docs, "message", "elog1")), Some(t));
    assert_eq!(ts_us(find(&docs, "message", "log1")), None);
    let metric1 = docs
        .iter()
        .find(|d| d["metricset"]["samples"][0]["name"] == "m1")
        .expect("metricset m1");
    assert_eq!(ts_us(metric1), None, "{metric1}");
    assert_eq!(metric1["@timestamp"], "2017-05-30T18:53:42.281Z");

    // Without a timestamp, `start` offsets the request time.
    let sp = find(&docs, "span.id", "sp-start");
    assert!(
        ts_us(sp).is_some_and(|us| us > 1_700_000_000_000_000),
        "receipt time + 5 s: {sp}"
    );
}
