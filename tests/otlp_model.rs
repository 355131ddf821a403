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
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, metric::Data,
    };
    let mut request = metrics_request();
    let metrics = &mut request.resource_metrics[0].scope_metrics[0].metrics;
    let mut exp = metrics[0].clone();
    exp.name = "exponential".into();
    exp.data = Some(Data::ExponentialHistogram(ExponentialHistogram {
        data_points: vec![ExponentialHistogramDataPoint::default(); 2],
        aggregation_temporality: 2,
    }));
    metrics.push(exp);
    let export = otlp::metrics(&request, &meta(), &ModelConfig::default());
    assert_eq!(export.rejected, 2);
    assert_eq!(export.error_message, "unsupported data points");
    assert_eq!(export.documents.len(), 1);
}
