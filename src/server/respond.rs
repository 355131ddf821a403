//! Responses, built in one place, the way APM Server writes them.
//!
//! [`refusal`] is the one function that turns a reason to refuse ([`Refusal`], chosen by
//! access, the handlers and the intake) into a status, APM Server's body and the headers that
//! go with it; [`refusal_answer`] is its status and body alone, what `explain` and
//! `apmgate test` show. Every response carries `X-Content-Type-Options: nosniff`. JSON bodies
//! are pretty-printed (2-space indent) as `application/json` when the request's `Accept`
//! contains `*/*` or `application/json`, and written compact as `text/plain; charset=utf-8`
//! otherwise. Failures (status >= 400) carry `Connection: close` so the connection is not
//! reused.
//!
//! OTLP/HTTP is answered in OTLP's own form, in the request's content type (protobuf or
//! JSON): [`otlp_exported`] the `Export*ServiceResponse` of an export (with its partial
//! success), [`otlp_refusal`] a refusal as a `google.rpc.Status` with the status code OTLP/HTTP
//! gives that reason, `Retry-After` on 429 and 503. OTLP/gRPC gets the same reasons as gRPC
//! statuses ([`grpc_status`], [`grpc_refusal`]), with `RetryInfo` where waiting helps.
//! [`otlp_status`] is the one mapping of refusal reasons to those statuses and to gRPC codes.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{Either, Full};
use serde::Serialize;
use serde_json::json;

use opentelemetry_proto::tonic::collector::logs::v1 as logs;
use opentelemetry_proto::tonic::collector::metrics::v1 as metrics;
use opentelemetry_proto::tonic::collector::trace::v1 as trace;
use tonic::Code;

use crate::access::Refusal;
use crate::intake::otlp::Exported;
use crate::intake::{Failure, IntakeError, IntakeResult};
use crate::model::otlp::{Encoding, Signal};
use crate::policy::compiled::RouteName;

/// APM Server's answer when Elasticsearch refuses to let it read central configuration (it
/// names APM Server's settings; agents and operators search for this text).
const CONFIG_SOURCE_UNAUTHORIZED: &str = "Your Elasticsearch configuration does not support agent config queries. Check your configurations at `output.elasticsearch` or `apm-server.agent.config.elasticsearch`.";

/// APM Server's message when RUM is disabled.
pub const RUM_DISABLED: &str = "forbidden request: RUM endpoint is disabled. Configure the `apm-server.rum` section in apm-server.yml to enable ingestion of RUM events. If you are not using the RUM agent, you can safely ignore this error.";

/// `Cache-Control` of every refusal on the configuration routes (APM Server's).
pub const CONFIG_ERROR_CACHE_CONTROL: &str = "max-age=300, must-revalidate";

/// The body type of every response: whole bytes, or the body of a gRPC answer (its message
/// and the `grpc-status` trailers).
pub type Body = Either<Full<Bytes>, tonic::body::Body>;

/// A body of whole bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// Whether the client asked for JSON.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("*/*") || v.contains("application/json"))
}

/// An empty response.
pub fn empty(status: u16) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    finish(r)
}

/// A JSON value, encoded per `Accept`.
pub fn json<T: Serialize>(status: u16, value: &T, json_accepted: bool) -> Response<Body> {
    let (body, content_type) = if json_accepted {
        let mut buf = Vec::with_capacity(128);
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"  ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        let _ = value.serialize(&mut ser);
        buf.push(b'\n');
        (buf, "application/json")
    } else {
        let mut buf = serde_json::to_vec(value).unwrap_or_default();
        buf.push(b'\n');
        (buf, "text/plain; charset=utf-8")
    };
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    finish(r)
}

#[derive(Serialize)]
struct IntakeBody<'a> {
    accepted: usize,
    #[serde(skip_serializing_if = "<[IntakeError]>::is_empty")]
    errors: &'a [IntakeError],
}

/// The answer to an intake stream the intake accepted whole: 202 without a body unless
/// `verbose`. (A stream with failures is a [`Refusal::Intake`].)
pub fn accepted(result: &IntakeResult, verbose: bool, json_accepted: bool) -> Response<Body> {
    if !verbose {
        return empty(202);
    }
    json(
        202,
        &IntakeBody {
            accepted: result.accepted,
            errors: &result.errors,
        },
        json_accepted,
    )
}

/// The status of an allowed request that its handler answers without trouble.
pub fn allowed_status(route: Option<RouteName>) -> u16 {
    match route {
        Some(RouteName::Intake | RouteName::RumIntake) => 202,
        _ => 200,
    }
}

/// The status of an intake failure (the worst one of the stream).
fn intake_status(failure: Option<Failure>) -> u16 {
    match failure {
        None => 202,
        Some(Failure::Invalid) => 400,
        Some(Failure::NotPermitted) => 403,
        Some(Failure::RateLimited) => 429,
        Some(Failure::Unavailable | Failure::ShuttingDown) => 503,
    }
}

/// The status and APM Server's body of a refusal.
pub fn refusal_answer(refusal: &Refusal) -> (u16, serde_json::Value) {
    let error = |message: &str| json!({ "error": message });
    match refusal {
        Refusal::NotFound => (404, error("404 page not found")),
        Refusal::MethodNotAllowed {
            route,
            method,
            anonymous,
        } => match route {
            RouteName::Root => (
                405,
                error(
                    "method not supported: this is the server information endpoint; did you mean to send data to another endpoint instead?",
                ),
            ),
            RouteName::Intake | RouteName::RumIntake => (
                400,
                json!({"accepted": 0, "errors": [{"message": "only POST requests are supported"}]}),
            ),
            // APM Server names the method to authenticated callers only.
            RouteName::Config | RouteName::RumConfig if *anonymous => {
                (405, error("method not supported"))
            }
            RouteName::Config | RouteName::RumConfig => {
                (405, error(&format!("method not supported: {method}")))
            }
            RouteName::Metrics | RouteName::Otlp => (405, error("method not supported")),
        },
        Refusal::Unauthenticated(e) => (401, error(&e.to_string())),
        Refusal::DeniedByRule(_) => (403, error("forbidden request: access denied by policy")),
        Refusal::MissingPrivilege(missing) => {
            (403, error(&format!("unauthorized: {}", missing.reason())))
        }
        Refusal::RumDisabled => (403, error(RUM_DISABLED)),
        Refusal::OriginNotAllowed { origin } => (
            403,
            error(&format!(
                "forbidden request: origin: '{origin}' is not allowed"
            )),
        ),
        Refusal::RateLimited => (429, error("too many requests: rate limit exceeded")),
        Refusal::ElasticsearchUnavailable | Refusal::VerificationBusy => {
            (503, error("service unavailable"))
        }
        Refusal::Timeout => (503, error("request timed out")),
        Refusal::UnsupportedContentType { content_type } => (
            415,
            error(&format!("unsupported content type: '{content_type}'")),
        ),
        Refusal::Intake(result) => {
            let body = serde_json::to_value(IntakeBody {
                accepted: result.accepted,
                errors: &result.errors,
            })
            .unwrap_or_default();
            (intake_status(result.failure), body)
        }
        Refusal::ConfigQueryMissingService { anonymous: true } => (400, error("invalid query")),
        Refusal::ConfigQueryMissingService { anonymous: false } => {
            (400, error("service.name is required"))
        }
        Refusal::ConfigServiceNotAllowed { service } => (
            403,
            error(&format!(
                "unauthorized: anonymous access not permitted for service \"{service}\""
            )),
        ),
        Refusal::ConfigNotReady => (
            503,
            error("Agent configuration infrastructure is not ready. Please retry later."),
        ),
        Refusal::ConfigSourceUnauthorized => (403, error(CONFIG_SOURCE_UNAUTHORIZED)),
        Refusal::Internal => (500, error("internal server error")),
    }
}

/// The response to a refusal on `route`: its status and body, `Cache-Control` on the
/// configuration routes, `Retry-After` where waiting helps (a full output queue, busy
/// verifiers), and `Connection: close` (every failure).
pub fn refusal(refusal: &Refusal, route: Option<RouteName>, json_accepted: bool) -> Response<Body> {
    let (status, body) = refusal_answer(refusal);
    let mut r = json(status, &body, json_accepted);
    let h = r.headers_mut();
    if matches!(route, Some(RouteName::Config | RouteName::RumConfig)) {
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static(CONFIG_ERROR_CACHE_CONTROL),
        );
    }
    // APM Server sends no Retry-After; clients that honour it back off instead of hammering.
    let wait = match refusal {
        Refusal::Intake(result) => matches!(
            result.failure,
            Some(Failure::Unavailable | Failure::ShuttingDown)
        ),
        Refusal::VerificationBusy | Refusal::ConfigNotReady => true,
        _ => false,
    };
    if wait {
        h.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    r
}

/// `Retry-After` of a 503 that passes: about one flush of the output.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The CORS headers of an allowed origin on a RUM route.
pub fn add_cors(response: &mut Response<Body>, origin: Option<HeaderValue>) {
    if let Some(origin) = origin {
        let h = response.headers_mut();
        h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(http::header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Etag"),
        );
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP's failures (no details).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
struct RpcStatus {
    /// The gRPC code.
    #[prost(int32, tag = "1")]
    code: i32,
    /// What went wrong.
    #[prost(string, tag = "2")]
    message: String,
}

/// A refusal as OTLP answers it: the HTTP status, the gRPC code and the message (APM
/// Server's words for the reason, or the intake's first error without the intake's stream
/// prefix, as APM Server words OTLP refusals: `unauthorized: anonymous access not permitted
/// for agent "..."`).
pub fn otlp_status(refusal: &Refusal) -> (u16, Code, String) {
    let (status, body) = refusal_answer(refusal);
    let message = body["error"]
        .as_str()
        .or_else(|| body["errors"][0]["message"].as_str())
        .unwrap_or("request refused");
    let message = message
        .strip_prefix(crate::intake::BATCH_PREFIX)
        .unwrap_or(message)
        .to_owned();
    // Statuses OTLP/HTTP does not use become its nearest: a refused method stays 405.
    let code = match status {
        400 | 413 | 415 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        405 => Code::Unimplemented,
        429 => Code::ResourceExhausted,
        // A full output queue or memory budget is RESOURCE_EXHAUSTED for gRPC clients (they
        // retry it), 503 for HTTP ones; a stopping gateway is UNAVAILABLE, a request that did
        // not arrive in time DEADLINE_EXCEEDED (as APM Server's interceptors answer).
        503 if matches!(refusal, Refusal::Intake(r) if r.failure == Some(Failure::Unavailable)) => {
            Code::ResourceExhausted
        }
        503 if matches!(refusal, Refusal::Timeout) => Code::DeadlineExceeded,
        503 => Code::Unavailable,
        _ => Code::Internal,
    };
    (status, code, message)
}

/// How long a refused client should wait before it retries, for the codes where waiting
/// helps (the `Retry-After` of HTTP, gRPC's `RetryInfo`).
fn retry_delay(code: Code) -> Option<std::time::Duration> {
    matches!(code, Code::ResourceExhausted | Code::Unavailable)
        .then_some(std::time::Duration::from_secs(RETRY_AFTER_SECONDS))
}

fn otlp_body<T: prost::Message + Serialize>(
    status: u16,
    value: &T,
    encoding: Encoding,
) -> Response<Body> {
    let (bytes, content_type) = match encoding {
        Encoding::Protobuf => (value.encode_to_vec(), "application/x-protobuf"),
        Encoding::Json => (
            serde_json::to_vec(value).unwrap_or_default(),
            "application/json",
        ),
    };
    let mut r = Response::new(full(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    finish(r)
}

/// A refusal on the OTLP route: a `google.rpc.Status` body in `encoding`, `Retry-After` when
/// waiting helps (429, 503).
pub fn otlp_refusal(refusal: &Refusal, encoding: Encoding) -> Response<Body> {
    let (status, code, message) = otlp_status(refusal);
    let mut r = otlp_body(
        status,
        &RpcStatus {
            code: code as i32,
            message,
        },
        encoding,
    );
    if matches!(status, 429 | 503) {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    r
}

/// A refusal as an OTLP/gRPC status: the code of [`otlp_status`], its message, and
/// `google.rpc.RetryInfo` in the details when retrying later helps (OTLP/gRPC's throttling).
pub fn grpc_status(refusal: &Refusal) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let (_, code, mut message) = otlp_status(refusal);
    // APM Server's gRPC interceptor words the anonymous rate limit without the HTTP prefix.
    if matches!(refusal, Refusal::RateLimited) {
        message = "rate limit exceeded".into();
    }
    match retry_delay(code) {
        Some(delay) => tonic::Status::with_error_details(
            code,
            message,
            ErrorDetails::with_retry_info(Some(delay)),
        ),
        None => tonic::Status::new(code, message),
    }
}

/// A refusal of an OTLP/gRPC call: a trailers-only gRPC answer (HTTP 200, `grpc-status` and
/// `grpc-message` in the headers).
pub fn grpc_refusal(refusal: &Refusal) -> Response<Body> {
    finish(
        grpc_status(refusal)
            .into_http::<Full<Bytes>>()
            .map(Either::Left),
    )
}

/// The `Export*ServiceResponse` of each OTLP export request: what an export came to, partial
/// success set when items were rejected.
pub trait ExportAnswer {
    /// The service's response message.
    type Answer: prost::Message + Serialize + Default + Send + 'static;
    /// The answer to an export that came to `exported`.
    fn answer(exported: &Exported) -> Self::Answer;
}

/// The partial success of an export, if any: rejected items and why.
fn partial(exported: &Exported) -> Option<(i64, String)> {
    (exported.rejected > 0 || !exported.error_message.is_empty()).then(|| {
        (
            i64::try_from(exported.rejected).unwrap_or(i64::MAX),
            exported.error_message.clone(),
        )
    })
}

impl ExportAnswer for trace::ExportTraceServiceRequest {
    type Answer = trace::ExportTraceServiceResponse;
    fn answer(exported: &Exported) -> Self::Answer {
        trace::ExportTraceServiceResponse {
            partial_success: partial(exported).map(|(rejected_spans, error_message)| {
                trace::ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                }
            }),
        }
    }
}

impl ExportAnswer for metrics::ExportMetricsServiceRequest {
    type Answer = metrics::ExportMetricsServiceResponse;
    fn answer(exported: &Exported) -> Self::Answer {
        metrics::ExportMetricsServiceResponse {
            partial_success: partial(exported).map(|(rejected_data_points, error_message)| {
                metrics::ExportMetricsPartialSuccess {
                    rejected_data_points,
                    error_message,
                }
            }),
        }
    }
}

impl ExportAnswer for logs::ExportLogsServiceRequest {
    type Answer = logs::ExportLogsServiceResponse;
    fn answer(exported: &Exported) -> Self::Answer {
        logs::ExportLogsServiceResponse {
            partial_success: partial(exported).map(|(rejected_log_records, error_message)| {
                logs::ExportLogsPartialSuccess {
                    rejected_log_records,
                    error_message,
                }
            }),
        }
    }
}

/// The answer to an OTLP/HTTP export: 200 with the signal's `Export*ServiceResponse`.
pub fn otlp_exported(signal: Signal, exported: &Exported, encoding: Encoding) -> Response<Body> {
    match signal {
        Signal::Traces => otlp_body(
            200,
            &trace::ExportTraceServiceRequest::answer(exported),
            encoding,
        ),
        Signal::Metrics => otlp_body(
            200,
            &metrics::ExportMetricsServiceRequest::answer(exported),
            encoding,
        ),
        Signal::Logs => otlp_body(
            200,
            &logs::ExportLogsServiceRequest::answer(exported),
            encoding,
        ),
    }
}

/// Adds the headers every response gets.
fn finish(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut().insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    if r.status().as_u16() >= 400 {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// Appends configured headers (values add to what is there, as APM Server does).
pub fn add_headers(r: &mut Response<Body>, headers: &[(String, String)]) {
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            r.headers_mut().append(k, v);
        }
    }
}
