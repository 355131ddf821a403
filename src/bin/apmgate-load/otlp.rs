//! OTLP agents: the request an OpenTelemetry SDK sends for a trace of `events` spans (a server
//! span and its client spans, with the attributes an instrumented web service sets, under an
//! SDK's resource), framed for OTLP/HTTP (protobuf) or OTLP/gRPC, so that `agents --otlp`
//! measures the OTLP intake with payloads like the APM agents' ones (same number of events a
//! request, similar content).

use std::io::Write as _;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message as _;

/// How an OTLP agent exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// OTLP/HTTP: `POST /v1/traces`, `application/x-protobuf`.
    Http,
    /// OTLP/gRPC: `TraceService/Export` (HTTP/2 only).
    Grpc,
}

impl Mode {
    /// The path an export goes to.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Mode::Http => "/v1/traces",
            Mode::Grpc => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        }
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(s: &str) -> Value {
    Value::StringValue(s.into())
}

/// A trace of `events` spans: one server span (`GET /orders/{id}`) and `events - 1` database
/// and HTTP client spans under it.
pub(crate) fn traces_request(events: usize) -> ExportTraceServiceRequest {
    let trace_id: Vec<u8> = (1..=16).collect();
    let span_id = |i: usize| -> Vec<u8> { (0..8).map(|b| (i * 8 + b + 1) as u8).collect() };
    let start = 1_700_000_000_000_000_000u64;
    let mut spans = vec![Span {
        trace_id: trace_id.clone(),
        span_id: span_id(0),
        name: "GET /orders/{id}".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 25_000_000,
        attributes: vec![
            kv("http.request.method", text("GET")),
            kv(
                "url.full",
                text("http://shop.local:8080/orders/42?expand=items"),
            ),
            kv("url.path", text("/orders/42")),
            kv("http.route", text("/orders/{id}")),
            kv("http.response.status_code", Value::IntValue(200)),
            kv("network.protocol.version", text("1.1")),
            kv("server.address", text("shop.local")),
            kv("server.port", Value::IntValue(8080)),
            kv("client.address", text("10.1.2.3")),
            kv(
                "user_agent.original",
                text("Mozilla/5.0 (X11; Linux x86_64)"),
            ),
        ],
        status: Some(Status {
            code: 1,
            ..Default::default()
        }),
        ..Default::default()
    }];
    for i in 1..events {
        let start = start + i as u64 * 2_000_000;
        let attributes = if i % 2 == 1 {
            vec![
                kv("db.system", text("postgresql")),
                kv("db.name", text("orders")),
                kv(
                    "db.statement",
                    text("SELECT id, customer_id, total FROM orders WHERE id = $1"),
                ),
                kv("server.address", text("db.local")),
                kv("server.port", Value::IntValue(5432)),
            ]
        } else {
            vec![
                kv("http.request.method", text("POST")),
                kv("url.full", text("http://payments.local/charges")),
                kv("http.response.status_code", Value::IntValue(201)),
                kv("server.address", text("payments.local")),
                kv("server.port", Value::IntValue(80)),
            ]
        };
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: span_id(i),
            parent_span_id: span_id(0),
            name: if i % 2 == 1 {
                "SELECT orders".into()
            } else {
                "POST".into()
            },
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_500_000,
            attributes,
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", text("checkout")),
                    kv("service.version", text("1.4.2")),
                    kv("deployment.environment", text("production")),
                    kv("telemetry.sdk.name", text("opentelemetry")),
                    kv("telemetry.sdk.language", text("python")),
                    kv("telemetry.sdk.version", text("1.39.1")),
                    kv("host.name", text("web-1")),
                    kv("process.pid", Value::IntValue(4242)),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry.instrumentation.flask".into(),
                    version: "0.60b1".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes)?;
    e.finish()
}

/// One export request, ready to send.
pub(crate) struct Export {
    /// The body (compressed, framed for gRPC).
    pub body: Bytes,
    /// The headers that say how it is encoded.
    pub headers: Vec<(String, String)>,
    /// The protobuf message's size.
    pub size: u64,
}

/// The export of a trace of `events` spans.
pub(crate) fn export(mode: Mode, events: usize, compress: bool) -> std::io::Result<Export> {
    let message = traces_request(events).encode_to_vec();
    let size = message.len() as u64;
    let payload = if compress { gzip(&message)? } else { message };
    let mut headers = Vec::new();
    let body = match mode {
        Mode::Http => {
            headers.push(("content-type".into(), "application/x-protobuf".into()));
            if compress {
                headers.push(("content-encoding".into(), "gzip".into()));
            }
            payload
        }
        Mode::Grpc => {
            headers.push(("content-type".into(), "application/grpc".into()));
            headers.push(("te".into(), "trailers".into()));
            if compress {
                headers.push(("grpc-encoding".into(), "gzip".into()));
            }
            // gRPC's length-prefixed message: the compressed flag, the length, the message.
            let mut framed = Vec::with_capacity(payload.len() + 5);
            framed.push(u8::from(compress));
            framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            framed.extend_from_slice(&payload);
            framed
        }
    };
    Ok(Export {
        body: Bytes::from(body),
        headers,
        size,
    })
}
