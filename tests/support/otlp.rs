//! The OTLP requests of APM Server's system tests (`../shared/fixtures/otlp/README.md`), built
//! as the Go SDK sends them: its default resource (`service.name`
//! `unknown_service:systemtest.test` and `telemetry.sdk.*` of the Go SDK, attributes sorted by
//! key as its attribute sets are) merged with the test's attributes.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event, span::SpanKind,
};

/// The Go SDK's version the requests claim (the approvals do not compare it).
const GO_SDK_VERSION: &str = "1.38.0";

pub(crate) fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(crate) fn string(s: &str) -> Value {
    Value::StringValue(s.into())
}

fn array(values: Vec<Value>) -> Value {
    Value::ArrayValue(ArrayValue {
        values: values
            .into_iter()
            .map(|v| AnyValue { value: Some(v) })
            .collect(),
    })
}

/// `resource.Default()` of the Go SDK.
fn go_default_resource() -> Vec<KeyValue> {
    vec![
        kv("service.name", string("unknown_service:systemtest.test")),
        kv("telemetry.sdk.language", string("go")),
        kv("telemetry.sdk.name", string("opentelemetry")),
        kv("telemetry.sdk.version", string(GO_SDK_VERSION)),
    ]
}

fn scope(name: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.into(),
        ..Default::default()
    })
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// TestOTLPGRPCTraces: one span with an event and a recorded error.
// The float literal is the Go test's, digits beyond f64's precision included.
#[allow(clippy::excessive_precision)]
pub(crate) fn traces_request() -> ExportTraceServiceRequest {
    let mut attributes = vec![
        kv(
            "resource_attribute_array",
            array(vec![string("a"), string("b")]),
        ),
        kv("resource_attribute_bool", Value::BoolValue(true)),
        kv(
            "resource_attribute_bool_array",
            array(vec![Value::BoolValue(true), Value::BoolValue(false)]),
        ),
        kv("resource_attribute_float", Value::DoubleValue(123456.789)),
        kv(
            "resource_attribute_float_array",
            array(vec![
                Value::DoubleValue(123456.789),
                Value::DoubleValue(987654321.123456789),
            ]),
        ),
        kv("resource_attribute_int", Value::IntValue(123456)),
    ];
    attributes.extend(go_default_resource());
    let start: u64 = 123_000_000_456;
    let end = start + 365 * 24 * 3600 * 1_000_000_000;
    let span = Span {
        trace_id: hex("d2acbef8b37655e48548fd9d61ad6114"),
        span_id: hex("b3ee9be3b687a611"),
        name: "operation_name".into(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: vec![kv(
            "span_attribute_array",
            array(vec![string("a"), string("b"), string("c")]),
        )],
        events: vec![
            Event {
                time_unix_nano: start + 1_000_000,
                name: "a_span_event".into(),
                ..Default::default()
            },
            Event {
                time_unix_nano: start + 2_000_000,
                name: "exception".into(),
                attributes: vec![
                    kv(
                        "exception.stacktrace",
                        string("not an actual real stack trace"),
                    ),
                    kv("exception.type", string("*errors.errorString")),
                    kv("exception.message", string("kablamo")),
                ],
                ..Default::default()
            },
        ],
        status: Some(Status::default()),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: scope("systemtest"),
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// TestOTLPGRPCMetrics_counter: a float64 counter `counter` added 1, collected now.
pub(crate) fn metrics_request() -> ExportMetricsServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: go_default_resource(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: scope("test-meter"),
                metrics: vec![Metric {
                    name: "counter".into(),
                    data: Some(Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            start_time_unix_nano: now - 1_000_000_000,
                            time_unix_nano: now,
                            value: Some(number_data_point::Value::AsDouble(1.0)),
                            ..Default::default()
                        }],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// TestOTLPGRPCLogs: `newLogs("a log message")`.
pub(crate) fn logs_request() -> ExportLogsServiceRequest {
    let mut trace_id = vec![0u8; 16];
    trace_id[0] = 1;
    let mut span_id = vec![0u8; 8];
    span_id[0] = 2;
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("telemetry.sdk.language", string("go"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_000_000_000,
                    severity_number: 9,
                    severity_text: "Info".into(),
                    body: Some(AnyValue {
                        value: Some(string("a log message")),
                    }),
                    attributes: vec![
                        kv("key", string("value")),
                        kv("numeric_key", Value::DoubleValue(1234.0)),
                    ],
                    trace_id,
                    span_id,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// TestOTLPGRPCMetrics_counter's request with a second metric, an exponential histogram of
/// `points` data points: a kind APM Server does not take (a partial success).
pub(crate) fn metrics_request_with_exponential_points(
    points: usize,
) -> ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint,
    };
    let mut request = metrics_request();
    let metrics = &mut request.resource_metrics[0].scope_metrics[0].metrics;
    let mut exponential = metrics[0].clone();
    exponential.name = "latency".into();
    exponential.data = Some(Data::ExponentialHistogram(ExponentialHistogram {
        data_points: vec![ExponentialHistogramDataPoint::default(); points],
        aggregation_temporality: 2,
    }));
    metrics.push(exponential);
    request
}

/// The es-compare selections of the three approvals (as the system tests query).
pub(crate) const APPROVALS: [(&str, &str, &[&str]); 3] = [
    (
        "TestOTLPGRPCTraces",
        "otlp/TestOTLPGRPCTraces.approved.json",
        &["--index", "traces-apm*,logs-apm*", "--dynamic", "error.id"],
    ),
    (
        "TestOTLPGRPCLogs",
        "otlp/TestOTLPGRPCLogs.approved.json",
        &["--index", "logs-apm*"],
    ),
    (
        "TestOTLPGRPCMetrics_counter",
        "otlp/TestOTLPGRPCMetrics_counter.approved.json",
        &["--index", "metrics-apm.app.*"],
    ),
];

/// Compares one output holding what the three system tests sent (to three servers in APM
/// Server's runs) with their approvals: the traces and logs tests' selections keep their own
/// service's documents.
pub(crate) fn assert_approvals_in_one_output(what: &str, captured: &std::path::Path) {
    for (name, approval, args) in APPROVALS {
        let mut args = args.to_vec();
        match name {
            "TestOTLPGRPCTraces" => {
                args.extend(["--term", "service.name=unknown_service_systemtest_test"])
            }
            "TestOTLPGRPCLogs" => args.extend(["--term", "service.name=unknown"]),
            _ => {}
        }
        super::assert_es_compare(&format!("{name} ({what})"), captured, approval, &args);
    }
}
