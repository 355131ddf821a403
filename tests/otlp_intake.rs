//! OTLP/HTTP over real sockets (HTTP/1.1, h2 over TLS, h2c and HTTP/3): APM Server's
//! TestOTLPGRPCTraces, TestOTLPGRPCLogs and TestOTLPGRPCMetrics_counter requests POSTed to
//! `/v1/traces`, `/v1/logs` and `/v1/metrics` as protobuf and as (gzipped) JSON land as its
//! approvals say (es-compare on the output file), answered with OTLP's Export responses; and
//! the refusals, each in OTLP's form (a `google.rpc.Status` in the request's content type) with
//! its status: 401 without a token, 403 without `event:write`, 400 for a message that does not
//! decode or a body past `max_body_size`, 415 for another content type, 503 with
//! `Retry-After` when the output is full.

mod support;

use std::io::Write;
use std::sync::Arc;

use apmgate::output::{Output, OutputDocument, PublishError, PublishFuture};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use support::otlp::{logs_request, metrics_request, traces_request};
use support::{Gateway, Proto, STANDARD_LISTENERS};

/// `google.rpc.Status` as the gateway writes it.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    Protobuf,
    /// JSON, gzipped.
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The body and headers of a message in an encoding.
fn encoded<T: Message + serde::Serialize>(
    message: &T,
    encoding: Encoding,
) -> (Vec<u8>, Vec<(&'static str, &'static str)>) {
    match encoding {
        Encoding::Protobuf => (
            message.encode_to_vec(),
            vec![("content-type", encoding.content_type())],
        ),
        Encoding::Json => (
            gzip(&serde_json::to_vec(message).unwrap()),
            vec![
                ("content-type", encoding.content_type()),
                ("content-encoding", "gzip"),
            ],
        ),
    }
}

async fn post<'a>(
    gw: &Gateway,
    to: impl Into<support::Target<'a>>,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> support::Response {
    let to = to.into();
    let what = format!("{:?} on {}", to.proto, to.listener);
    support::request(gw, to, http::Method::POST, path, headers, Some(body), None)
        .await
        .unwrap_or_else(|e| panic!("{what} {path}: {e}"))
}

/// A response body decoded as `T` from the encoding its content type says.
fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    resp: &support::Response,
    encoding: Encoding,
) -> T {
    assert_eq!(
        resp.header("content-type"),
        Some(encoding.content_type()),
        "answered in the request's content type"
    );
    match encoding {
        Encoding::Protobuf => T::decode(resp.body.as_slice()).unwrap(),
        Encoding::Json => serde_json::from_slice(&resp.body).unwrap(),
    }
}

#[tokio::test]
async fn approvals_through_otlp_http_over_every_protocol_and_encoding() {
    for proto in Proto::EVERY {
        for encoding in [Encoding::Protobuf, Encoding::Json] {
            let what = format!("{proto:?} {encoding:?}");
            let gw = Gateway::start(STANDARD_LISTENERS).await;
            let (body, headers) = encoded(&traces_request(), encoding);
            let resp = post(&gw, proto, "/v1/traces", body, &headers).await;
            assert_eq!(resp.status, 200, "{what}: {:?}", resp.body);
            assert_eq!(resp.version, proto.version());
            let answer: ExportTraceServiceResponse = decode(&resp, encoding);
            assert_eq!(answer.partial_success, None, "{what}");

            let (body, headers) = encoded(&logs_request(), encoding);
            let resp = post(&gw, proto, "/v1/logs", body, &headers).await;
            assert_eq!(resp.status, 200, "{what}");
            let answer: ExportLogsServiceResponse = decode(&resp, encoding);
            assert_eq!(answer.partial_success, None, "{what}");

            let (body, headers) = encoded(&metrics_request(), encoding);
            let resp = post(&gw, proto, "/v1/metrics", body, &headers).await;
            assert_eq!(resp.status, 200, "{what}");
            let answer: ExportMetricsServiceResponse = decode(&resp, encoding);
            assert_eq!(answer.partial_success, None, "{what}");

            let dir = gw.stop().await;
            let captured = dir.path().join("data/apmgate-events.ndjson");
            support::otlp::assert_approvals_in_one_output(&what, &captured);
        }
    }
}

#[tokio::test]
async fn unsupported_data_points_are_a_partial_success() {
    let gw = Gateway::start(STANDARD_LISTENERS).await;
    let request = support::otlp::metrics_request_with_exponential_points(3);
    for encoding in [Encoding::Protobuf, Encoding::Json] {
        let (body, headers) = encoded(&request, encoding);
        let resp = post(&gw, Proto::H1, "/v1/metrics", body, &headers).await;
        assert_eq!(resp.status, 200);
        let answer: ExportMetricsServiceResponse = decode(&resp, encoding);
        let partial = answer.partial_success.expect("a partial success");
        assert_eq!(partial.rejected_data_points, 3);
        assert_eq!(partial.error_message, "unsupported data points");
    }
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    assert_eq!(docs.len(), 2, "the counter of each request is written");
}

/// A refusal's `google.rpc.Status`, in the request's encoding.
fn refused(resp: &support::Response, encoding: Encoding) -> RpcStatus {
    assert_eq!(resp.header("content-type"), Some(encoding.content_type()));
    match encoding {
        Encoding::Protobuf => RpcStatus::decode(resp.body.as_slice()).unwrap(),
        Encoding::Json => {
            let v = resp.json();
            RpcStatus {
                code: v["code"].as_i64().unwrap() as i32,
                message: v["message"].as_str().unwrap().to_owned(),
            }
        }
    }
}

#[tokio::test]
async fn refusals_over_every_protocol() {
    let listeners = STANDARD_LISTENERS.replace(
        "protocols = [",
        "limits = { max_body_size = \"64KiB\" }\nprotocols = [",
    );
    let policy = format!(
        "{listeners}\n\
         [role.writer]\nprivileges = [\"event:write\"]\n\
         [role.reader]\nprivileges = [\"config_agent:read\"]\n\
         [auth.secret_token.writer]\nsecret = \"w-token\"\nroles = [\"writer\"]\n\
         [auth.secret_token.reader]\nsecret = \"r-token\"\nroles = [\"reader\"]\n"
    );
    let gw = Gateway::start(&policy).await;
    let traces = traces_request();
    for proto in Proto::EVERY {
        for encoding in [Encoding::Protobuf, Encoding::Json] {
            let what = format!("{proto:?} {encoding:?}");
            let (body, mut headers) = encoded(&traces, encoding);

            let resp = post(&gw, proto, "/v1/traces", body.clone(), &headers).await;
            assert_eq!(resp.status, 401, "{what}: no token");
            let status = refused(&resp, encoding);
            assert_eq!(status.code, 16, "{what}: UNAUTHENTICATED");
            assert!(status.message.contains("Authorization"), "{status:?}");

            headers.push(("authorization", "Bearer r-token"));
            let resp = post(&gw, proto, "/v1/traces", body.clone(), &headers).await;
            assert_eq!(resp.status, 403, "{what}: no event:write");
            let status = refused(&resp, encoding);
            assert_eq!(status.code, 7, "{what}: PERMISSION_DENIED");
            assert_eq!(
                status.message,
                "unauthorized: secret token not permitted action \"event:write\""
            );

            headers.pop();
            headers.push(("authorization", "Bearer w-token"));
            let plain = [
                ("content-type", encoding.content_type()),
                ("authorization", "Bearer w-token"),
            ];
            let resp = post(&gw, proto, "/v1/traces", b"\x0a\xff\xff".to_vec(), &plain).await;
            assert_eq!(resp.status, 400, "{what}: not a message");
            let status = refused(&resp, encoding);
            assert_eq!(status.code, 3, "{what}: INVALID_ARGUMENT");
            assert!(status.message.contains("unmarshal"), "{status:?}");

            // A gzip bomb: 1 MiB of zeros in about 1 KiB, past the 64 KiB max_body_size.
            let bomb = gzip(&vec![0u8; 1 << 20]);
            let bomb_headers = [
                ("content-type", encoding.content_type()),
                ("content-encoding", "gzip"),
                ("authorization", "Bearer w-token"),
            ];
            let resp = post(&gw, proto, "/v1/logs", bomb, &bomb_headers).await;
            assert_eq!(resp.status, 400, "{what}: past max_body_size");
            assert!(
                refused(&resp, encoding).message.contains("max_body_size"),
                "{what}"
            );

            let resp = post(
                &gw,
                proto,
                "/v1/logs",
                b"{}".to_vec(),
                &[
                    ("content-type", "text/plain"),
                    ("authorization", "Bearer w-token"),
                ],
            )
            .await;
            assert_eq!(resp.status, 415, "{what}: another content type");

            let resp = post(&gw, proto, "/v1/traces", body.clone(), &headers).await;
            assert_eq!(resp.status, 200, "{what}: the writer's token");
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_full_output_is_503_with_retry_after() {
    let gw = Gateway::start_with(
        STANDARD_LISTENERS,
        Some(Arc::new(support::Refusing(PublishError::QueueFull))),
    )
    .await;
    for proto in Proto::EVERY {
        for encoding in [Encoding::Protobuf, Encoding::Json] {
            let (body, headers) = encoded(&logs_request(), encoding);
            let resp = post(&gw, proto, "/v1/logs", body, &headers).await;
            assert_eq!(resp.status, 503, "{proto:?} {encoding:?}");
            assert_eq!(resp.header("retry-after"), Some("1"));
            let status = refused(&resp, encoding);
            assert_eq!(status.code, 8, "RESOURCE_EXHAUSTED: retry later");
            assert_eq!(status.message, "queue is full");
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn otlp_transactions_feed_aggregated_metrics() {
    let gw = Gateway::start(&format!("{STANDARD_LISTENERS}\n[aggregation]\n")).await;
    let (body, headers) = encoded(&traces_request(), Encoding::Protobuf);
    let resp = post(&gw, Proto::H1, "/v1/traces", body, &headers).await;
    assert_eq!(resp.status, 200);
    // Stopping flushes the partial intervals.
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    for set in ["transaction", "service_transaction", "service_summary"] {
        let doc = docs
            .iter()
            .find(|(index, _)| index == &format!("metrics-apm.{set}.1m-default"))
            .unwrap_or_else(|| panic!("no {set} metrics in {docs:#?}"));
        assert_eq!(
            doc.1["service"]["name"], "unknown_service_systemtest_test",
            "{set}"
        );
        assert_eq!(doc.1["agent"]["name"], "opentelemetry/go", "{set}");
    }
}

#[tokio::test]
async fn rules_name_the_otlp_route_and_listeners_choose_it() {
    let policy = format!(
        "{STANDARD_LISTENERS}\n\
         [[listener]]\nname = \"apm-only\"\nbind = \"127.0.0.1:0\"\nroutes = [\"root\", \"intake\"]\n\n\
         [[access.rule]]\nname = \"no-otlp-on-tls\"\n\
         when = 'route == otlp and listener == \"tls\"'\neffect = \"deny\"\n"
    );
    let gw = Gateway::start(&policy).await;
    let (body, headers) = encoded(&logs_request(), Encoding::Protobuf);
    let resp = post(&gw, Proto::H1, "/v1/logs", body.clone(), &headers).await;
    assert_eq!(resp.status, 200, "served by default");
    let resp = post(&gw, Proto::H2Tls, "/v1/logs", body.clone(), &headers).await;
    assert_eq!(resp.status, 403, "denied by the rule");
    let status = refused(&resp, Encoding::Protobuf);
    assert_eq!(status.code, 7);
    assert_eq!(status.message, "forbidden request: access denied by policy");
    let resp = post(&gw, Proto::H1.on("apm-only"), "/v1/logs", body, &headers).await;
    assert_eq!(resp.status, 404, "a listener whose routes leave otlp out");
    gw.stop().await;
}

#[tokio::test]
async fn anonymous_otlp_follows_allow_agent_and_allow_service() {
    // TestOTLPAnonymous: the agent is `telemetry.sdk.name/telemetry.sdk.language`, "otlp"
    // without them, the service "unknown" without one; both lists are checked per event.
    let policy = format!(
        "{STANDARD_LISTENERS}\n[auth.secret_token.t]\nsecret = \"abc123\"\n\
         [auth.anonymous]\nallow_agent = [\"iOS/swift\"]\nallow_service = [\"allowed_service\"]\n"
    );
    let gw = Gateway::start(&policy).await;
    let send = |sdk: Option<(&str, &str)>, service: Option<&str>| {
        let mut request = traces_request();
        let resource = request.resource_spans[0].resource.as_mut().unwrap();
        resource.attributes = Vec::new();
        if let Some(s) = service {
            resource
                .attributes
                .push(support::otlp::kv("service.name", support::otlp::string(s)));
        }
        if let Some((name, language)) = sdk {
            resource.attributes.push(support::otlp::kv(
                "telemetry.sdk.name",
                support::otlp::string(name),
            ));
            resource.attributes.push(support::otlp::kv(
                "telemetry.sdk.language",
                support::otlp::string(language),
            ));
        }
        let gw = &gw;
        async move {
            let (body, headers) = encoded(&request, Encoding::Protobuf);
            let resp = post(gw, Proto::H1, "/v1/traces", body, &headers).await;
            let status = (resp.status != 200).then(|| refused(&resp, Encoding::Protobuf));
            (resp.status, status)
        }
    };
    let (code, _) = send(Some(("iOS", "swift")), Some("allowed_service")).await;
    assert_eq!(code, 200);
    for (sdk, service, message) in [
        (
            Some(("open-telemetry", "go")),
            Some("allowed_service"),
            "unauthorized: anonymous access not permitted for agent \"open-telemetry/go\"",
        ),
        (
            Some(("iOS", "swift")),
            Some("unallowed_service"),
            "unauthorized: anonymous access not permitted for service \"unallowed_service\"",
        ),
        (
            None,
            Some("allowed_service"),
            "unauthorized: anonymous access not permitted for agent \"otlp\"",
        ),
        (
            Some(("iOS", "swift")),
            None,
            "unauthorized: anonymous access not permitted for service \"unknown\"",
        ),
    ] {
        let (code, status) = send(sdk, service).await;
        assert_eq!(code, 403, "{message}");
        let status = status.unwrap();
        assert_eq!(status.code, 7, "PERMISSION_DENIED");
        assert_eq!(status.message, message);
    }
    gw.stop().await;
}

/// An output that takes batches but cannot keep them (settling fails as at shutdown).
struct Unsettled;

impl Output for Unsettled {
    fn publish(&self, _: Vec<OutputDocument>) -> PublishFuture<'_> {
        Box::pin(async { Ok(()) })
    }
    fn settle(&self) -> PublishFuture<'_> {
        Box::pin(async { Err(PublishError::Closed) })
    }
    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + '_>> {
        Box::pin(async { 0 })
    }
}

#[tokio::test]
async fn an_export_is_answered_once_the_output_kept_it() {
    let gw = Gateway::start_with(STANDARD_LISTENERS, Some(Arc::new(Unsettled))).await;
    let (body, headers) = encoded(&logs_request(), Encoding::Json);
    let resp = post(&gw, Proto::H1, "/v1/logs", body, &headers).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after"), Some("1"));
    let status = refused(&resp, Encoding::Json);
    assert_eq!(status.code, 14, "UNAVAILABLE");
    assert_eq!(status.message, "server is shutting down");
    gw.stop().await;
}
