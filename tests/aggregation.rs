//! Issue 13: aggregated metrics as APM Server writes them. Each case posts what APM Server's
//! system test sent to a running gateway (file output), stops it (the same shutdown path as
//! SIGTERM, which writes every partial interval), and compares what it wrote with APM Server's
//! approval through `../shared/tools/es-compare`: every document equal.
//!
//! Inputs: `../shared/fixtures/aggregation/inputs/` for three tests; for
//! TestTransactionAggregation, `tests/aggregation/` holds what its Go test sent, rebuilt from
//! `systemtest/aggregation_test.go` (5 `abc` and 10 `def` transactions of the Go agent, and
//! the FaaS payload the test posts as NDJSON, twice, as the approval counts it).

mod support;

use std::sync::Arc;

use apmgate::output::{Output, OutputDocument, PublishError, PublishFuture};
use serde_json::Value;
use support::{Gateway, assert_es_compare, output_documents};

/// Aggregation on, as by default (test gateways otherwise run without it).
const POLICY: &str = "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\n[aggregation]\n";

async fn post(gw: &Gateway, body: Vec<u8>) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(gw.url("plain", false, "/intake/v2/events"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 202, "{body}");
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Posts `inputs` (one request each), stops the gateway and compares the documents of the
/// data streams `index` with the approval `name`.
async fn compare(name: &str, inputs: &[Vec<u8>], index: &str, extra: &[&str]) {
    let gw = Gateway::start(POLICY).await;
    for body in inputs {
        post(&gw, body.clone()).await;
    }
    let dir = gw.stop().await;
    let captured = dir.path().join("data/apmgate-events.ndjson");
    let approval = format!("aggregation/{name}.approved.json");
    let args: Vec<&str> = ["--index", index].iter().chain(extra).copied().collect();
    assert_es_compare(name, &captured, &approval, &args);
}

#[tokio::test]
async fn transaction_metrics_match_apm_server() {
    compare(
        "TestTransactionAggregation",
        &[
            read("tests/aggregation/transaction-aggregation.ndjson"),
            read("tests/aggregation/faas.ndjson"),
        ],
        "metrics-apm.transaction*",
        &["--exists", "transaction.duration.histogram"],
    )
    .await;
}

#[tokio::test]
async fn service_destination_metrics_match_apm_server() {
    compare(
        "TestServiceDestinationAggregation",
        &[support::fixture(
            "aggregation/inputs/service-destination.ndjson",
        )],
        "metrics-apm.service_destination*",
        &[],
    )
    .await;
}

#[tokio::test]
async fn service_transaction_metrics_match_apm_server() {
    compare(
        "TestServiceTransactionMetricsAggregation",
        &[support::fixture(
            "aggregation/inputs/service-transaction.ndjson",
        )],
        "metrics-apm.service_transaction*",
        &[],
    )
    .await;
}

#[tokio::test]
async fn service_summary_metrics_match_apm_server() {
    compare(
        "TestServiceSummaryMetricsAggregation",
        &[support::fixture(
            "aggregation/inputs/service-summary.ndjson",
        )],
        "metrics-apm.service_summary*",
        &[],
    )
    .await;
}

/// The documents of the gateway's output in data streams starting with `prefix`.
fn streams(docs: &[(String, Value)], prefix: &str) -> Vec<Value> {
    docs.iter()
        .filter(|(s, _)| s.starts_with(prefix))
        .map(|(_, d)| d.clone())
        .collect()
}

/// Unsampled transactions are aggregated and then not indexed; sampled ones both; the
/// representative count (1 / sample rate) weighs what they count.
#[tokio::test]
async fn unsampled_transactions_are_counted_but_not_indexed() {
    let meta =
        r#"{"metadata":{"service":{"name":"svc","agent":{"name":"python","version":"6.0"}}}}"#;
    let tx = |id: &str, sampled: bool, rate: f64| {
        format!(
            r#"{{"transaction":{{"id":"{id}","trace_id":"0123456789abcdef0123456789abcdef","name":"GET /","type":"request","duration":10,"outcome":"success","sampled":{sampled},"sample_rate":{rate},"span_count":{{"started":0}}}}}}"#
        )
    };
    let body = [
        meta.to_string(),
        tx("a000000000000001", true, 0.5),
        tx("a000000000000002", false, 0.5),
        tx("a000000000000003", false, 0.5),
    ]
    .join("\n")
        + "\n";
    let gw = Gateway::start(POLICY).await;
    post(&gw, body.into_bytes()).await;
    let dir = gw.stop().await;
    let docs = output_documents(dir.path());
    assert_eq!(
        streams(&docs, "traces-apm").len(),
        1,
        "only the sampled transaction is indexed"
    );
    let metrics = streams(&docs, "metrics-apm.transaction.1m-");
    assert_eq!(metrics.len(), 1, "{metrics:#?}");
    // Three transactions, each standing for two.
    assert_eq!(metrics[0]["_doc_count"], 6, "{}", metrics[0]);
    assert_eq!(
        metrics[0]["transaction"]["duration.histogram"]["counts"],
        serde_json::json!([6])
    );
    assert_eq!(
        metrics[0]["event"]["success_count"],
        serde_json::json!({"value_count": 6, "sum": 6})
    );
}

/// Past `max_transaction_groups`, groups go to the service's `_other` bucket with the number of
/// groups it absorbed; past `max_services`, services go to the `_other` service.
#[tokio::test]
async fn groups_beyond_the_limits_overflow_into_other_buckets() {
    let policy =
        format!("{POLICY}intervals = [\"1m\"]\nmax_services = 1\nmax_transaction_groups = 20\n");
    let tx = |name: &str| {
        format!(
            r#"{{"transaction":{{"id":"b000000000000001","trace_id":"0123456789abcdef0123456789abcdef","name":"{name}","type":"request","duration":1,"outcome":"failure","span_count":{{"started":0}}}}}}"#
        )
    };
    let meta = |svc: &str| {
        format!(
            r#"{{"metadata":{{"service":{{"name":"{svc}","agent":{{"name":"go","version":"2"}}}}}}}}"#
        )
    };
    // Service `a`: 5 names (2 fit its share, a tenth of 20); service `b`: beyond max_services.
    let mut a = vec![meta("a")];
    for i in 0..5 {
        a.push(tx(&format!("t{i}")));
    }
    let b = [meta("b"), tx("x"), tx("y")];
    let gw = Gateway::start(&policy).await;
    post(&gw, (a.join("\n") + "\n").into_bytes()).await;
    post(&gw, (b.join("\n") + "\n").into_bytes()).await;
    let dir = gw.stop().await;
    let docs = output_documents(dir.path());
    let tx_docs = streams(&docs, "metrics-apm.transaction.1m-");
    let named = |svc: &str, name: &str| {
        tx_docs
            .iter()
            .find(|d| d["service"]["name"] == svc && d["transaction"]["name"] == name)
            .unwrap_or_else(|| panic!("{svc}/{name} in {tx_docs:#?}"))
            .clone()
    };
    let other = named("a", "_other");
    assert_eq!(other["_doc_count"], 3, "{other}");
    assert_eq!(
        other["transaction"]["aggregation"]["overflow_count"].as_f64(),
        None,
        "the overflow count is a metricset sample"
    );
    assert_eq!(
        other["metricset"]["samples"],
        serde_json::json!([{"name": "transaction.aggregation.overflow_count", "value": 3}])
    );
    let other_service = named("_other", "_other");
    assert_eq!(other_service["_doc_count"], 2, "{other_service}");
    let summary = streams(&docs, "metrics-apm.service_summary.1m-");
    let other_summary = summary
        .iter()
        .find(|d| d["service"]["name"] == "_other")
        .expect("the _other service's summary");
    assert_eq!(
        other_summary["metricset"]["samples"],
        serde_json::json!([{"name": "service_summary.aggregation.overflow_count", "value": 1}])
    );
    // Every transaction is counted once in the transaction metrics, fitted or not.
    let total: u64 = tx_docs
        .iter()
        .map(|d| d["_doc_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 7);
}

/// `[aggregation] enabled = false` writes no aggregated metrics.
#[tokio::test]
async fn disabled_aggregation_writes_no_metrics() {
    let gw = Gateway::start(&format!("{POLICY}enabled = false\n")).await;
    post(
        &gw,
        support::fixture("aggregation/inputs/service-summary.ndjson"),
    )
    .await;
    let dir = gw.stop().await;
    let docs = output_documents(dir.path());
    assert_eq!(streams(&docs, "traces-apm").len(), 2);
    assert!(streams(&docs, "metrics-apm.").is_empty(), "{docs:#?}");
}

/// Waits (at most 30 s) until the gateway's output file holds a document of a data stream
/// starting with `prefix`; returns the documents then.
async fn wait_for_stream(gw: &Gateway, prefix: &str) -> Vec<(String, Value)> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let docs = output_documents(gw.dir.path());
        if docs.iter().any(|(s, _)| s.starts_with(prefix)) {
            return docs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {prefix} document within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An interval's metrics are written when it closes, while the gateway runs; a reload keeps
/// what the open intervals aggregated.
#[tokio::test]
async fn intervals_are_written_when_they_close_and_reloads_keep_them() {
    let meta = r#"{"metadata":{"service":{"name":"svc","agent":{"name":"go","version":"2"}}}}"#;
    let tx = r#"{"transaction":{"id":"c000000000000001","trace_id":"0123456789abcdef0123456789abcdef","name":"GET /","type":"request","duration":3,"span_count":{"started":0}}}"#;
    let body = format!("{meta}\n{tx}\n{tx}\n").into_bytes();
    // A one-second interval (written when it closes) beside an hour (written at shutdown).
    let policy = format!("{POLICY}intervals = [\"1s\", \"1h\"]\n");
    let mut gw = Gateway::start(&policy).await;
    post(&gw, body.clone()).await;
    let docs = wait_for_stream(&gw, "metrics-apm.transaction.1s-").await;
    let second: u64 = streams(&docs, "metrics-apm.transaction.1s-")
        .iter()
        .map(|d| d["_doc_count"].as_u64().unwrap())
        .sum();
    assert_eq!(second, 2);
    assert!(
        streams(&docs, "metrics-apm.transaction.60m-").is_empty(),
        "the hour is still open"
    );
    // A reload (new limits) keeps the open hour.
    gw.reload(&format!("{policy}max_services = 50\n")).await;
    post(&gw, body).await;
    let dir = gw.stop().await;
    let docs = output_documents(dir.path());
    let hour = streams(&docs, "metrics-apm.transaction.60m-");
    assert_eq!(hour.len(), 1, "{hour:#?}");
    assert_eq!(hour[0]["_doc_count"], 4, "both requests, across the reload");
    assert_eq!(hour[0]["metricset"]["interval"], "60m");
}

/// Service destination metrics come from exit spans and from the statistics of the spans a
/// transaction dropped (without a span name), weighted by the transaction's representative count.
#[tokio::test]
async fn dropped_span_statistics_become_service_destination_metrics() {
    let meta = r#"{"metadata":{"service":{"name":"svc","agent":{"name":"java","version":"1.0"}}}}"#;
    let tx = r#"{"transaction":{"id":"d000000000000001","trace_id":"0123456789abcdef0123456789abcdef","name":"GET /","type":"request","duration":30,"sample_rate":0.5,"span_count":{"started":1,"dropped":7},"dropped_spans_stats":[{"destination_service_resource":"mysql","service_target_type":"mysql","service_target_name":"orders","outcome":"success","duration":{"count":7,"sum":{"us":700}}}]}}"#;
    let span = r#"{"span":{"id":"d000000000000002","transaction_id":"d000000000000001","parent_id":"d000000000000001","trace_id":"0123456789abcdef0123456789abcdef","name":"SELECT FROM orders","type":"db","subtype":"mysql","start":1,"duration":2,"outcome":"success","sample_rate":0.5,"context":{"service":{"target":{"type":"mysql","name":"orders"}},"destination":{"service":{"resource":"mysql"}}}}}"#;
    let gw = Gateway::start(&format!("{POLICY}intervals = [\"1m\"]\n")).await;
    post(&gw, format!("{meta}\n{tx}\n{span}\n").into_bytes()).await;
    let dir = gw.stop().await;
    let docs = streams(
        &output_documents(dir.path()),
        "metrics-apm.service_destination.1m-",
    );
    assert_eq!(docs.len(), 2, "{docs:#?}");
    let rt = |d: &Value| d["span"]["destination"]["service"]["response_time"].clone();
    let dropped = docs
        .iter()
        .find(|d| d["span"].get("name").is_none())
        .expect("the dropped spans' group has no span name");
    assert_eq!(
        rt(dropped),
        serde_json::json!({"count": 14, "sum.us": 1400})
    );
    assert_eq!(dropped["service"]["target"]["name"], "orders");
    assert_eq!(dropped["_doc_count"], 14);
    let sent = docs
        .iter()
        .find(|d| d["span"]["name"] == "SELECT FROM orders")
        .expect("the exit span's group");
    assert_eq!(rt(sent), serde_json::json!({"count": 2, "sum.us": 4000}));
    assert_eq!(sent["event"]["outcome"], "success");
}

/// An output that takes events but never has room for aggregated metrics.
struct FullForMetrics;

impl Output for FullForMetrics {
    fn publish(&self, batch: Vec<OutputDocument>) -> PublishFuture<'_> {
        let metrics = batch
            .iter()
            .any(|d| d.data_stream.starts_with("metrics-apm.service_summary"));
        Box::pin(async move {
            if metrics {
                Err(PublishError::QueueFull)
            } else {
                Ok(())
            }
        })
    }
    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + '_>> {
        Box::pin(async { 0 })
    }
}

/// A stop does not hang on an output that stays full: the partial intervals are offered a
/// bounded number of times (about five seconds), then given up and logged.
#[tokio::test]
async fn a_stop_does_not_wait_forever_for_a_full_output() {
    let gw = Gateway::start_with(POLICY, Some(Arc::new(FullForMetrics))).await;
    post(
        &gw,
        support::fixture("aggregation/inputs/service-summary.ndjson"),
    )
    .await;
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(60), gw.stop()).await;
    assert!(stopped.is_ok(), "the gateway did not stop");
}
