//! OTLP/gRPC over real sockets with a real gRPC client (tonic's, over h2c and over TLS with
//! ALPN h2, on the listeners that serve the APM intake): APM Server's TestOTLPGRPCTraces,
//! TestOTLPGRPCLogs and TestOTLPGRPCMetrics_counter calls land as its approvals say (es-compare),
//! with and without gzip; the refusals come back with their gRPC status codes (wrong token
//! UNAUTHENTICATED, missing privilege PERMISSION_DENIED, a message that does not decode
//! INVALID_ARGUMENT, a message inflating past `max_body_size` RESOURCE_EXHAUSTED, rate limit and
//! full buffer RESOURCE_EXHAUSTED with `RetryInfo`, a stopping gateway UNAVAILABLE); partial
//! success; a call that never ends cut off at the read timeout (DEADLINE_EXCEEDED);
//! TestOTLPRateLimit, TestOTLPAnonymous, TestOTLPClientIP and
//! TestOTLPGRPCLogsClientIP; API keys and client certificates as identities of gRPC callers.

mod support;

use std::sync::Arc;

use apmgate::output::PublishError;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use support::otlp::{kv, logs_request, metrics_request, string, traces_request};
use support::{Gateway, STANDARD_LISTENERS};
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_types::StatusExt;

/// How a test reaches the gateway.
#[derive(Clone, Copy, Debug)]
enum Transport {
    /// h2c (prior knowledge) on the plain listener.
    H2c,
    /// HTTP/2 over TLS (ALPN h2) on the TLS listener.
    H2Tls,
}

const TRANSPORTS: [Transport; 2] = [Transport::H2c, Transport::H2Tls];

async fn channel(gw: &Gateway, transport: Transport) -> Channel {
    match transport {
        Transport::H2c => Channel::from_shared(format!("http://{}", gw.addr("plain")))
            .unwrap()
            .connect()
            .await
            .unwrap(),
        Transport::H2Tls => tls_channel(gw, "tls", None).await,
    }
}

/// HTTP/2 over TLS to `listener`, trusting the development CA, presenting `identity` if given.
async fn tls_channel(gw: &Gateway, listener: &str, identity: Option<support::Identity>) -> Channel {
    let ca = Certificate::from_pem(std::fs::read(gw.path("certs/ca.crt")).unwrap());
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(ca)
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(id.cert, id.key));
    }
    Channel::from_shared(format!("https://127.0.0.1:{}", gw.addr(listener).port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A call's message with metadata (`authorization`, forwarding headers).
fn call<T>(message: T, metadata: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (k, v) in metadata {
        request.metadata_mut().insert(*k, v.parse().unwrap());
    }
    request
}

fn traces_client(channel: Channel, gzip: bool) -> TraceServiceClient<Channel> {
    let client = TraceServiceClient::new(channel);
    if gzip {
        client
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip)
    } else {
        client
    }
}

async fn export_traces(
    channel: &Channel,
    request: ExportTraceServiceRequest,
    metadata: &[(&'static str, &str)],
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    traces_client(channel.clone(), false)
        .export(call(request, metadata))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn approvals_through_otlp_grpc_over_h2c_and_tls_with_and_without_gzip() {
    for (transport, gzip) in [
        (Transport::H2c, false),
        (Transport::H2c, true),
        (Transport::H2Tls, true),
    ] {
        let what = format!("{transport:?}, gzip {gzip}");
        let gw = Gateway::start(STANDARD_LISTENERS).await;
        let ch = channel(&gw, transport).await;
        let answer = traces_client(ch.clone(), gzip)
            .export(traces_request())
            .await
            .unwrap_or_else(|s| panic!("{what}: {s:?}"));
        assert_eq!(answer.get_ref().partial_success, None, "{what}");

        let mut logs = LogsServiceClient::new(ch.clone());
        let mut metrics = MetricsServiceClient::new(ch.clone());
        if gzip {
            logs = logs.send_compressed(CompressionEncoding::Gzip);
            metrics = metrics.send_compressed(CompressionEncoding::Gzip);
        }
        let answer = logs.export(logs_request()).await.unwrap().into_inner();
        assert_eq!(answer.partial_success, None, "{what}");
        let answer = metrics
            .export(metrics_request())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.partial_success, None, "{what}");

        let dir = gw.stop().await;
        let captured = dir.path().join("data/apmgate-events.ndjson");
        support::otlp::assert_approvals_in_one_output(&what, &captured);
    }
}

#[tokio::test]
async fn unsupported_data_points_are_a_partial_success_over_grpc() {
    let gw = Gateway::start(STANDARD_LISTENERS).await;
    let request = support::otlp::metrics_request_with_exponential_points(3);
    let ch = channel(&gw, Transport::H2c).await;
    let answer = MetricsServiceClient::new(ch)
        .export(request)
        .await
        .unwrap()
        .into_inner();
    let partial = answer.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_data_points, 3);
    assert_eq!(partial.error_message, "unsupported data points");
    let dir = gw.stop().await;
    let docs = support::output_documents(dir.path());
    assert_eq!(docs.len(), 1, "the counter landed: {docs:?}");
}

/// A message that is not an `ExportTraceServiceRequest`: its field 1 (resource spans) holds
/// bytes that do not decode.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(bytes = "vec", tag = "1")]
    resource_spans: Vec<u8>,
}

/// Calls the traces service with a message of another type, through tonic's generic client.
async fn export_garbage(channel: &Channel, metadata: &[(&'static str, &str)]) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Garbage, ExportTraceServiceResponse>::default();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let message = Garbage {
        resource_spans: vec![0xff, 0xff, 0xff],
    };
    grpc.unary(call(message, metadata), path, codec)
        .await
        .expect_err("a message that does not decode is refused")
}

#[tokio::test]
async fn refusals_over_grpc_carry_their_status_codes() {
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
    for transport in TRANSPORTS {
        let what = format!("{transport:?}");
        let ch = channel(&gw, transport).await;

        let status = export_traces(&ch, traces_request(), &[]).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        assert!(status.message().contains("Authorization"), "{status:?}");

        let status = export_traces(&ch, traces_request(), &[("authorization", "Bearer nope")])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: wrong token");
        assert_eq!(status.message(), "authentication failed");
        assert!(!format!("{status:?}").contains("nope"), "no secret echoed");

        let status = export_traces(
            &ch,
            traces_request(),
            &[("authorization", "Bearer r-token")],
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{what}");
        assert_eq!(
            status.message(),
            "unauthorized: secret token not permitted action \"event:write\""
        );

        let writer = [("authorization", "Bearer w-token")];
        let invalid = || {
            gw.shared
                .metrics
                .get("apmgate_events_rejected_total", &[("reason", "invalid")])
        };
        let before = invalid();
        let status = export_garbage(&ch, &writer).await;
        assert_eq!(invalid(), before + 1, "counted as OTLP/HTTP counts it");
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().starts_with("unmarshal protobuf"),
            "{status:?}"
        );

        // A gzip bomb: a log body of 1 MiB of zeros, about 1 KiB on the wire, inflating past
        // the 64 KiB max_body_size: cut off while inflating, never held whole.
        let mut bomb = logs_request();
        bomb.resource_logs[0].scope_logs[0].log_records[0].body =
            Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(string(&"0".repeat(1 << 20))),
            });
        let status = LogsServiceClient::new(ch.clone())
            .send_compressed(CompressionEncoding::Gzip)
            .export(call(bomb.clone(), &writer))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{what}: {status:?}");
        assert!(status.message().contains("size limit"), "{status:?}");
        // The same message uncompressed is past the limit before it is read.
        let status = LogsServiceClient::new(ch.clone())
            .export(call(bomb, &writer))
            .await
            .unwrap_err();
        assert_ne!(status.code(), Code::Ok, "{what}");
        assert!(status.message().contains("too large"), "{status:?}");

        let answer = export_traces(&ch, traces_request(), &writer).await;
        assert!(answer.is_ok(), "{what}: the writer's token: {answer:?}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_full_output_is_resource_exhausted_with_retry_info_and_a_stopping_one_unavailable() {
    let gw = Gateway::start_with(
        STANDARD_LISTENERS,
        Some(Arc::new(support::Refusing(PublishError::QueueFull))),
    )
    .await;
    for transport in TRANSPORTS {
        let ch = channel(&gw, transport).await;
        let status = LogsServiceClient::new(ch)
            .export(logs_request())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{transport:?}");
        assert_eq!(status.message(), "queue is full");
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(std::time::Duration::from_secs(1)));
    }
    gw.stop().await;

    let gw = Gateway::start_with(
        STANDARD_LISTENERS,
        Some(Arc::new(support::Refusing(PublishError::Closed))),
    )
    .await;
    let ch = channel(&gw, Transport::H2c).await;
    let status = LogsServiceClient::new(ch)
        .export(logs_request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "server is shutting down");
    gw.stop().await;
}

/// Traces from a resource with these attributes (TestOTLPClientIP, TestOTLPAnonymous).
fn traces_from(attributes: &[(&str, &str)]) -> ExportTraceServiceRequest {
    let mut request = traces_request();
    let resource = request.resource_spans[0].resource.as_mut().unwrap();
    resource.attributes = attributes.iter().map(|(k, v)| kv(k, string(v))).collect();
    request
}

const IOS: [(&str, &str); 2] = [
    ("telemetry.sdk.name", "iOS"),
    ("telemetry.sdk.language", "swift"),
];

#[tokio::test]
async fn the_rate_limit_is_resource_exhausted_as_in_test_otlp_rate_limit() {
    // TestOTLPRateLimit: event_limit 10 (a burst of 30), ip_limit 2; each call takes one token
    // up front and one per event, so 15 concurrent calls from each of two addresses pass, and
    // twice as many again from three addresses do not all pass.
    let policy = format!(
        "[gateway]\ntrusted_proxies = [\"127.0.0.1\"]\n{STANDARD_LISTENERS}\n\
         [auth.secret_token.t]\nsecret = \"abc123\"\n\
         [auth.anonymous]\nallow_agent = [\"iOS/swift\"]\n\
         [auth.anonymous.rate_limit]\nevent_limit = 10\nip_limit = 2\n"
    );
    let gw = Gateway::start(&policy).await;
    let ch = channel(&gw, Transport::H2c).await;
    let request = || {
        let mut attributes = vec![("service.name", "service2")];
        attributes.extend(IOS);
        // One span: one event per call.
        let mut r = traces_from(&attributes);
        r.resource_spans[0].scope_spans[0].spans[0].events.clear();
        r
    };
    let send = |ip: &'static str| {
        let ch = ch.clone();
        let r = request();
        async move { export_traces(&ch, r, &[("x-real-ip", ip)]).await }
    };
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..15 {
        calls.spawn(send("10.11.12.13"));
        calls.spawn(send("10.11.12.14"));
    }
    while let Some(r) = calls.join_next().await {
        let r = r.unwrap();
        assert!(r.is_ok(), "within the burst: {r:?}");
    }
    for _ in 0..30 {
        calls.spawn(send("10.11.12.13"));
        calls.spawn(send("10.11.12.14"));
        calls.spawn(send("11.11.12.15"));
    }
    let mut limited = 0;
    while let Some(r) = calls.join_next().await {
        if let Err(status) = r.unwrap() {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            assert_eq!(status.message(), "rate limit exceeded");
            assert!(status.get_details_retry_info().is_some(), "RetryInfo");
            limited += 1;
        }
    }
    assert!(limited > 0, "the rate limit took effect");
    gw.stop().await;
}

#[tokio::test]
async fn anonymous_otlp_over_grpc_as_in_test_otlp_anonymous() {
    let policy = format!(
        "{STANDARD_LISTENERS}\n[auth.secret_token.t]\nsecret = \"abc123\"\n\
         [auth.anonymous]\nallow_agent = [\"iOS/swift\"]\nallow_service = [\"allowed_service\"]\n"
    );
    let gw = Gateway::start(&policy).await;
    let ch = channel(&gw, Transport::H2Tls).await;
    let mut allowed = vec![("service.name", "allowed_service")];
    allowed.extend(IOS);
    assert!(export_traces(&ch, traces_from(&allowed), &[]).await.is_ok());
    for (attributes, message) in [
        (
            vec![
                ("service.name", "allowed_service"),
                ("telemetry.sdk.name", "open-telemetry"),
                ("telemetry.sdk.language", "go"),
            ],
            "unauthorized: anonymous access not permitted for agent \"open-telemetry/go\"",
        ),
        (
            vec![("service.name", "unallowed_service"), IOS[0], IOS[1]],
            "unauthorized: anonymous access not permitted for service \"unallowed_service\"",
        ),
        (
            vec![("service.name", "allowed_service")],
            "unauthorized: anonymous access not permitted for agent \"otlp\"",
        ),
        (
            IOS.to_vec(),
            "unauthorized: anonymous access not permitted for service \"unknown\"",
        ),
    ] {
        let status = export_traces(&ch, traces_from(&attributes), &[])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{message}");
        assert_eq!(status.message(), message);
    }
    let status = export_traces(
        &ch,
        traces_from(&allowed),
        &[("authorization", "Bearer abc123")],
    )
    .await;
    assert!(status.is_ok(), "the secret token: {status:?}");
    gw.stop().await;
}

#[tokio::test]
async fn client_ip_as_in_test_otlp_client_ip_and_logs_client_ip() {
    let policy = format!("[gateway]\ntrusted_proxies = [\"127.0.0.1\"]\n{STANDARD_LISTENERS}");
    let gw = Gateway::start(&policy).await;
    let ch = channel(&gw, Transport::H2c).await;
    export_traces(&ch, traces_from(&[("service.name", "service1")]), &[])
        .await
        .unwrap();
    let mut ios = vec![("service.name", "service2")];
    ios.extend(IOS);
    export_traces(&ch, traces_from(&ios), &[]).await.unwrap();
    // TestOTLPGRPCLogsClientIP: an Android log, the address forwarded by a (trusted) proxy.
    let mut logs: ExportLogsServiceRequest = logs_request();
    logs.resource_logs[0].resource.as_mut().unwrap().attributes = vec![
        kv("telemetry.sdk.language", string("java")),
        kv("telemetry.sdk.name", string("android")),
    ];
    LogsServiceClient::new(ch.clone())
        .send_compressed(CompressionEncoding::Gzip)
        .export(call(logs, &[("x-forwarded-for", "178.162.206.244")]))
        .await
        .unwrap();
    let dir = gw.stop().await;
    let docs = support::output_documents(dir.path());
    let transaction = |service: &str| {
        docs.iter()
            .map(|(_, d)| d)
            .find(|d| d["service"]["name"] == service && d["transaction"]["name"].is_string())
            .unwrap_or_else(|| panic!("a transaction of {service}: {docs:?}"))
    };
    assert!(
        transaction("service1").get("client").is_none(),
        "no client.ip for a non-mobile agent"
    );
    assert_eq!(transaction("service2")["client"]["ip"], "127.0.0.1");
    let log = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["agent"]["name"] == "android/java")
        .expect("the Android log");
    assert_eq!(log["client"]["ip"], "178.162.206.244");
}

#[tokio::test]
async fn an_endless_call_is_cut_off_at_the_read_timeout() {
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use prost::Message;
    let listeners = STANDARD_LISTENERS.replace(
        "protocols = [",
        "limits = { read_timeout = \"1s\" }\nprotocols = [",
    );
    let gw = Gateway::start(&listeners).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr("plain"))
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    // A valid message, then the same again and again: a unary call that never ends.
    let message = logs_request().encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let framed = bytes::Bytes::from(framed);
    // An upload that never ends, at a steady pace (a flood would also trip HTTP/2's limits on
    // frames for a stream the server has reset, closing the connection before the answer).
    let frames = Box::pin(futures_util::stream::unfold(framed, |framed| async move {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let frame = Frame::data(framed.clone());
        Some((Ok::<_, std::convert::Infallible>(frame), framed))
    }));
    let request = http::Request::post(format!(
        "http://{}/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        gw.addr("plain")
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(StreamBody::new(frames))
    .unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let status = response.headers().get("grpc-status").cloned();
    let trailers = response
        .into_body()
        .collect()
        .await
        .ok()
        .and_then(|b| b.trailers().cloned());
    let status = status.or_else(|| trailers.and_then(|t| t.get("grpc-status").cloned()));
    assert_eq!(
        status.as_ref().and_then(|v| v.to_str().ok()),
        Some("4"),
        "DEADLINE_EXCEEDED: the call did not end within read_timeout"
    );
    gw.stop().await;
}

#[tokio::test]
async fn api_keys_and_client_certificates_are_identities_over_grpc() {
    let key = support::ApiKey::new("otel-collector");
    let policy = format!(
        r#"
[[listener]]
name = "mtls"
bind = "127.0.0.1:0"
protocols = ["http2"]
tls = "mutual"

[tls.mutual]
certificate = "certs/server.crt"
key = "certs/server.key"
certificate_authorities = ["certs/ca.crt"]
client_auth = "optional"

[role.writer]
privileges = ["event:write"]

[auth.api_key.collector]
id = "{}"
hash = "{}"
roles = ["writer"]

[auth.client_cert.agents]
subject = "CN=*.agents.local,*"
roles = ["writer"]
"#,
        key.id, key.hash
    );
    let gw = Gateway::start(&policy).await;
    let anonymous = tls_channel(&gw, "mtls", None).await;
    let status = export_traces(&anonymous, traces_request(), &[])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let wrong = key.header_with_secret("not-the-secret");
    let status = export_traces(&anonymous, traces_request(), &[("authorization", &wrong)])
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "a wrong API key secret"
    );
    assert!(!status.message().contains("not-the-secret"));
    let answer = export_traces(
        &anonymous,
        traces_request(),
        &[("authorization", &key.header)],
    )
    .await;
    assert!(answer.is_ok(), "the API key: {answer:?}");

    let with_cert = tls_channel(&gw, "mtls", Some(support::Identity::dev(&gw))).await;
    let answer = export_traces(&with_cert, traces_request(), &[]).await;
    assert!(answer.is_ok(), "the client certificate: {answer:?}");
    gw.stop().await;
}
