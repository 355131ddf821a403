//! The OTLP mapping against APM Server's approvals, model only: the requests of its system
//! tests (TestOTLPGRPCTraces, TestOTLPGRPCLogs, TestOTLPGRPCMetrics_counter; built in
//! `support::otlp` from `../shared/fixtures/otlp/README.md`) are mapped, written as the `_bulk`
//! body the Elasticsearch output sends, and compared with `../shared/tools/es-compare`.
//! tests/otlp_intake.rs sends the same requests through the gateway.

mod support;

use std::io::Write;
use std::time::SystemTime;

use apmgate::model::otlp::{self, Encoding, Request, Signal};
use apmgate::model::{ModelConfig, RequestMeta};
use prost::Message;
use support::assert_es_compare;
use support::otlp::{APPROVALS, logs_request, metrics_request, traces_request};

fn meta() -> RequestMeta<'static> {
    RequestMeta {
        receipt_time: SystemTime::now(),
        rum: false,
        client_ip: Some("127.0.0.1".parse().unwrap()),
        client_port: None,
        nat_ip: None,
        user_agent: Some("OTel-OTLP-Exporter-Go/1.38.0"),
    }
}

fn requests() -> [Request; 3] {
    [
        Request::Traces(traces_request()),
        Request::Logs(logs_request()),
        Request::Metrics(metrics_request()),
    ]
}

fn bulk(export: &otlp::Export) -> Vec<u8> {
    let mut out = Vec::new();
    for d in &export.documents {
        writeln!(out, "{{\"create\":{{\"_index\":\"{}\"}}}}", d.data_stream).unwrap();
        out.extend_from_slice(&d.body);
        out.push(b'\n');
    }
    out
}

#[test]
fn otlp_requests_map_to_the_documents_apm_server_writes() {
    let dir = tempfile::tempdir().unwrap();
    let config = ModelConfig::default();
    for (request, (name, approval, args)) in requests().iter().zip(APPROVALS) {
        let export = otlp::map(request, &meta(), &config);
        assert_eq!(export.rejected, 0, "{name}");
        let path = dir.path().join(format!("{name}.ndjson"));
        std::fs::write(&path, bulk(&export)).unwrap();
        assert_es_compare(name, &path, approval, args);
    }
}

#[test]
fn protobuf_and_json_decode_to_the_same_request() {
    let traces = traces_request();
    let protobuf = traces.encode_to_vec();
    let json = serde_json::to_vec(&traces).unwrap();
    let from_protobuf = otlp::decode(Signal::Traces, Encoding::Protobuf, &protobuf).unwrap();
    let from_json = otlp::decode(Signal::Traces, Encoding::Json, &json).unwrap();
    assert_eq!(from_protobuf, Request::Traces(traces.clone()));
    assert_eq!(from_json, Request::Traces(traces));
    // OTLP/JSON: ids in hex, 64-bit integers as strings or numbers.
    let text = String::from_utf8(json).unwrap();
    assert!(
        text.contains("\"traceId\":\"d2acbef8b37655e48548fd9d61ad6114\""),
        "{text}"
    );
}

#[test]
fn undecodable_messages_are_errors() {
    for encoding in [Encoding::Protobuf, Encoding::Json] {
        let err = otlp::decode(Signal::Logs, encoding, b"\xff\xff not a message").unwrap_err();
        assert!(err.message.starts_with("unmarshal"), "{}", err.message);
    }
}

#[test]
fn unsupported_data_points_are_rejected_and_counted() {
    let request = support::otlp::metrics_request_with_exponential_points(2);
    let export = otlp::metrics(&request, &meta(), &ModelConfig::default());
    assert_eq!(export.rejected, 2);
    assert_eq!(export.error_message, "unsupported data points");
    assert_eq!(export.documents.len(), 1);
}

/// The documents of an export as JSON, with their data streams.
fn documents(export: &otlp::Export) -> Vec<(String, serde_json::Value)> {
    export
        .documents
        .iter()
        .map(|d| {
            (
                d.data_stream.clone(),
                serde_json::from_slice(&d.body).unwrap(),
            )
        })
        .collect()
}

#[test]
fn server_and_client_spans_take_the_translation_elastic_agents_bridge_shares() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::{Span, Status, span::SpanKind, status::StatusCode};
    use support::otlp::{kv, string};
    let mut request = traces_request();
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    let root = &mut spans[0];
    root.events.clear();
    root.kind = SpanKind::Server as i32;
    root.attributes = vec![
        kv("http.request.method", string("GET")),
        kv("url.full", string("https://shop.example/cart?x=1")),
        kv("http.response.status_code", Value::IntValue(503)),
    ];
    let db = Span {
        trace_id: root.trace_id.clone(),
        span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
        parent_span_id: root.span_id.clone(),
        name: "SELECT carts".into(),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: root.start_time_unix_nano + 1_000,
        end_time_unix_nano: root.start_time_unix_nano + 5_000,
        attributes: vec![
            kv("db.system", string("postgresql")),
            kv("db.name", string("shop")),
            kv("db.statement", string("SELECT * FROM carts")),
            kv("server.address", string("db.internal")),
            kv("server.port", Value::IntValue(5432)),
        ],
        status: Some(Status {
            code: StatusCode::Error as i32,
            ..Default::default()
        }),
        links: vec![opentelemetry_proto::tonic::trace::v1::span::Link {
            trace_id: vec![9; 16],
            span_id: vec![8; 8],
            ..Default::default()
        }],
        ..Default::default()
    };
    spans.push(db);
    let docs = documents(&otlp::traces(&request, &meta(), &ModelConfig::default()));
    assert_eq!(docs.len(), 2);
    let (ds, tx) = &docs[0];
    assert_eq!(ds, "traces-apm-default");
    assert_eq!(tx["transaction"]["type"], "request");
    assert_eq!(tx["transaction"]["result"], "HTTP 5xx");
    assert_eq!(tx["event"]["outcome"], "failure", "a server's 5xx fails");
    assert_eq!(tx["http"]["request"]["method"], "GET");
    assert_eq!(tx["url"]["domain"], "shop.example");
    assert_eq!(tx["url"]["path"], "/cart");
    let (_, span) = &docs[1];
    assert_eq!(span["span"]["name"], "SELECT carts");
    assert_eq!(span["span"]["type"], "db");
    assert_eq!(span["span"]["subtype"], "postgresql");
    assert_eq!(span["span"]["db"]["statement"], "SELECT * FROM carts");
    assert_eq!(span["span"]["db"]["instance"], "shop");
    assert_eq!(
        span["span"]["destination"]["service"]["resource"],
        "postgresql"
    );
    assert_eq!(span["service"]["target"]["type"], "postgresql");
    assert_eq!(span["service"]["target"]["name"], "shop");
    assert_eq!(span["destination"]["address"], "db.internal");
    assert_eq!(span["destination"]["port"], 5432);
    assert_eq!(
        span["event"]["outcome"], "failure",
        "from the span's status"
    );
    assert_eq!(span["event"]["duration"], 4_000);
    assert_eq!(span["parent"]["id"], "b3ee9be3b687a611");
    assert_eq!(span["span"]["links"][0]["trace"]["id"], "09".repeat(16));
    assert!(span.get("transaction").is_none(), "{span}");
}

#[test]
fn resources_fill_host_container_kubernetes_cloud_process_and_device() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use support::otlp::{kv, string};
    let mut request = logs_request();
    let resource = request.resource_logs[0].resource.as_mut().unwrap();
    resource.attributes.extend([
        kv("service.name", string("checkout")),
        kv("service.version", string("1.2.3")),
        kv("deployment.environment", string("production")),
        kv("host.name", string("node-7")),
        kv("os.type", string("Linux")),
        kv("container.id", string("c0ffee")),
        kv("container.image.name", string("shop/checkout")),
        kv("k8s.pod.name", string("checkout-1")),
        kv("k8s.namespace.name", string("shop")),
        kv("cloud.provider", string("gcp")),
        kv("cloud.region", string("europe-west1")),
        kv("process.pid", Value::IntValue(42)),
        kv("process.runtime.name", string("go")),
        kv("device.id", string("2ab2916d-a51f-4ac8-80ee-45ac31a28092")),
        kv("device.model.identifier", string("SM-G920F")),
        kv("device.model.name", string("Samsung Galaxy S6")),
        kv("device.manufacturer", string("Samsung")),
    ]);
    let export = otlp::logs(&request, &meta(), &ModelConfig::default());
    let docs = documents(&export);
    let (ds, log) = &docs[0];
    assert_eq!(ds, "logs-apm.app.checkout-default");
    assert_eq!(log["service"]["version"], "1.2.3");
    assert_eq!(log["service"]["environment"], "production");
    assert_eq!(log["service"]["runtime"]["name"], "go");
    assert_eq!(log["agent"]["name"], "otlp/go");
    assert_eq!(log["host"]["os"]["platform"], "linux");
    assert_eq!(log["host"]["os"]["type"], "linux");
    assert_eq!(log["container"]["id"], "c0ffee");
    assert_eq!(log["container"]["image"]["name"], "shop/checkout");
    assert_eq!(log["kubernetes"]["pod"]["name"], "checkout-1");
    assert_eq!(log["kubernetes"]["namespace"], "shop");
    assert_eq!(log["cloud"]["provider"], "gcp");
    assert_eq!(log["cloud"]["region"], "europe-west1");
    assert_eq!(log["process"]["pid"], 42);
    assert_eq!(
        log["device"],
        serde_json::json!({
            "id": "2ab2916d-a51f-4ac8-80ee-45ac31a28092",
            "manufacturer": "Samsung",
            "model": { "identifier": "SM-G920F", "name": "Samsung Galaxy S6" }
        }),
        "device.* as apm-data maps it, not labels"
    );
    assert!(
        log.get("labels")
            .is_none_or(|l| l.get("device_id").is_none())
    );
    assert_eq!(log["event"]["severity"], 9);
    assert_eq!(log["log"]["level"], "Info");
    assert_eq!(log["message"], "a log message");
}
