//! The real Elastic APM agents for Python (`elastic-apm`) and Node (`elastic-apm-node`),
//! configured only with the server URL and a secret token, send a transaction, a span, an
//! error and metrics through the gateway; the file output must hold them. So does the
//! OpenTelemetry Python SDK over OTLP/HTTP. `.ci/run` installs them (pip, and npm into
//! tests/agents/node).

mod support;

use std::process::Stdio;

use support::Gateway;

const TOKEN: &str = "agents-test-token-0123456789abcdef0123";

fn policy() -> String {
    format!(
        r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"

[auth.secret_token.agents]
secret = "{TOKEN}"

# Aggregated metrics, as by default.
[aggregation]
"#
    )
}

async fn run_agent(program: &str, args: &[&str], url: &str) {
    let out = tokio::process::Command::new(program)
        .args(args)
        .env("APM_SERVER_URL", url)
        .env("APM_SECRET_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("the agent finishes within a minute")
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (install the agents as .ci/run does): {e}")
        });
    assert!(
        out.status.success(),
        "{program} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_holds_every_kind(docs: &[(String, serde_json::Value)], service: &str) {
    let mine: Vec<&(String, serde_json::Value)> = docs
        .iter()
        .filter(|(_, d)| d["service"]["name"] == service)
        .collect();
    let has =
        |pred: &dyn Fn(&str, &serde_json::Value) -> bool| mine.iter().any(|(i, d)| pred(i, d));
    assert!(
        has(&|i, d| i.starts_with("traces-apm")
            && d.get("transaction").is_some()
            && d.get("span").is_none_or(|s| s.get("type").is_none())),
        "{service}: no transaction in {mine:#?}"
    );
    assert!(
        has(&|i, d| i.starts_with("traces-apm") && d["span"]["type"] == "db"),
        "{service}: no span"
    );
    assert!(
        has(&|i, _| i.starts_with("logs-apm.error")),
        "{service}: no error"
    );
    assert!(
        has(&|i, d| i.starts_with("metrics-apm") && d["metricset"].get("interval").is_none()),
        "{service}: no metricset"
    );
    // Issue 13: the agent's transactions are aggregated into transaction metrics, at each
    // interval, counting every transaction once.
    let transactions = mine
        .iter()
        .filter(|(i, d)| {
            i.starts_with("traces-apm")
                && d["transaction"].get("type").is_some()
                && d.get("span").is_none_or(|s| s.get("type").is_none())
        })
        .count() as u64;
    for interval in ["1m", "10m", "60m"] {
        let prefix = format!("metrics-apm.transaction.{interval}-");
        let counted: u64 = mine
            .iter()
            .filter(|(i, _)| i.starts_with(&prefix))
            .map(|(_, d)| d["_doc_count"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(
            counted, transactions,
            "{service}: {interval} transaction metrics count {counted} of {transactions} transactions"
        );
        assert!(
            has(
                &|i, d| i.starts_with(&format!("metrics-apm.service_summary.{interval}-"))
                    && d["metricset"]["name"] == "service_summary"
            ),
            "{service}: no {interval} service summary"
        );
    }
    for (_, d) in &mine {
        assert_eq!(d["service"]["environment"], "test");
        assert!(d["@timestamp"].is_string());
    }
}

#[tokio::test]
async fn python_agent_sends_through_the_gateway() {
    let gw = Gateway::start(&policy()).await;
    run_agent(
        "python3",
        &["tests/agents/python_agent.py"],
        &gw.url("plain", false, ""),
    )
    .await;
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    assert_holds_every_kind(&docs, "py-agent-test");
}

#[tokio::test]
async fn node_agent_sends_through_the_gateway() {
    let gw = Gateway::start(&policy()).await;
    run_agent(
        "node",
        &["tests/agents/node/node_agent.js"],
        &gw.url("plain", false, ""),
    )
    .await;
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    assert_holds_every_kind(&docs, "node-agent-test");
}

/// Issue 14: the real OpenTelemetry Python SDK, configured only with the endpoint and an
/// `authorization` header, exports a trace (server span, database client span, recorded
/// exception), a counter and a log record over OTLP/HTTP with protobuf: all five kinds land.
#[tokio::test]
async fn opentelemetry_python_sdk_exports_over_otlp_http() {
    opentelemetry_python_sdk_exports("http/protobuf").await;
}

/// The same over OTLP/gRPC (h2c, on the same listener and port).
#[tokio::test]
async fn opentelemetry_python_sdk_exports_over_otlp_grpc() {
    opentelemetry_python_sdk_exports("grpc").await;
}

async fn opentelemetry_python_sdk_exports(protocol: &str) {
    let gw = Gateway::start(&policy()).await;
    let service = "otel-python-test";
    let out = tokio::process::Command::new("python3")
        .arg("tests/agents/otel_python.py")
        .env("OTLP_PROTOCOL", protocol)
        .env("OTLP_ENDPOINT", gw.url("plain", false, ""))
        .env("OTLP_AUTHORIZATION", format!("Bearer {TOKEN}"))
        .env("SERVICE_NAME", service)
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("the SDK finishes within a minute")
        .expect("python3 with opentelemetry-sdk and its exporters (installed by .ci/run)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    let mine: Vec<&(String, serde_json::Value)> = docs
        .iter()
        .filter(|(_, d)| d["service"]["name"] == service)
        .collect();
    let find = |what: &str, pred: &dyn Fn(&str, &serde_json::Value) -> bool| {
        mine.iter()
            .find(|(i, d)| pred(i, d))
            .unwrap_or_else(|| panic!("no {what} in {mine:#?}"))
    };
    let (_, tx) = find("transaction", &|i, d| {
        i.starts_with("traces-apm") && d["transaction"]["name"] == "GET /orders"
    });
    assert_eq!(tx["agent"]["name"], "opentelemetry/python");
    let (_, span) = find("database span", &|i, d| {
        i.starts_with("traces-apm") && d["span"]["name"] == "SELECT orders"
    });
    assert_eq!(span["span"]["type"], "db");
    assert_eq!(span["span"]["subtype"], "postgresql");
    let (_, error) = find("error", &|i, _| i.starts_with("logs-apm.error"));
    assert_eq!(error["error"]["exception"][0]["type"], "ValueError");
    assert_eq!(error["error"]["exception"][0]["message"], "no such order");
    let (_, metric) = find("counter", &|i, _| i.starts_with("metrics-apm.app"));
    let samples = metric["metricset"]["samples"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .any(|s| s["name"] == "orders" && s["type"] == "counter" && s["value"] == 1),
        "{samples:?}"
    );
    let (_, log) = find("log record", &|i, _| i.starts_with("logs-apm.app"));
    assert_eq!(log["message"], "order listed");
}
