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
//! gives that reason, `Retry-After` on 429 and 503. [`otlp_status`] is the one mapping of
//! refusal reasons to those statuses and to gRPC codes.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use serde_json::json;

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

/// The body type of every response.
pub type Body = Full<Bytes>;

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
    let mut r = Response::new(Full::new(Bytes::new()));
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
    let mut r = Response::new(Full::new(Bytes::from(body)));
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
        Some(Failure::Unavailable) => 503,
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
        Refusal::Intake(result) => result.failure == Some(Failure::Unavailable),
        Refusal::VerificationBusy | Refusal::ConfigNotReady => true,
        _ => false,
    };
    if wait {
        h.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
    r
}

/// `Retry-After` of a 503 that passes: about one flush of the output.
pub const RETRY_AFTER_SECONDS: &str = "1";

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

/// gRPC status codes OTLP answers with.
pub mod grpc_code {
    /// `INVALID_ARGUMENT`
    pub const INVALID_ARGUMENT: i32 = 3;
    /// `NOT_FOUND`
    pub const NOT_FOUND: i32 = 5;
    /// `PERMISSION_DENIED`
    pub const PERMISSION_DENIED: i32 = 7;
    /// `RESOURCE_EXHAUSTED`
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    /// `UNIMPLEMENTED`
    pub const UNIMPLEMENTED: i32 = 12;
    /// `INTERNAL`
    pub const INTERNAL: i32 = 13;
    /// `UNAVAILABLE`
    pub const UNAVAILABLE: i32 = 14;
    /// `UNAUTHENTICATED`
    pub const UNAUTHENTICATED: i32 = 16;
}

/// A refusal as OTLP answers it: the HTTP status, the gRPC code and the message (APM
/// Server's words for the reason, or the intake's first error without the intake's stream
/// prefix, as APM Server words OTLP refusals: `unauthorized: anonymous access not permitted
/// for agent "..."`).
pub fn otlp_status(refusal: &Refusal) -> (u16, i32, String) {
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
        400 | 413 | 415 => grpc_code::INVALID_ARGUMENT,
        401 => grpc_code::UNAUTHENTICATED,
        403 => grpc_code::PERMISSION_DENIED,
        404 => grpc_code::NOT_FOUND,
        405 => grpc_code::UNIMPLEMENTED,
        429 => grpc_code::RESOURCE_EXHAUSTED,
        // A full output queue or memory budget is RESOURCE_EXHAUSTED for gRPC clients (they
        // retry it), 503 for HTTP ones; a stopping gateway is UNAVAILABLE.
        503 if matches!(refusal, Refusal::Intake(r) if r.failure == Some(Failure::Unavailable))
            && message != crate::intake::SHUTTING_DOWN =>
        {
            grpc_code::RESOURCE_EXHAUSTED
        }
        503 => grpc_code::UNAVAILABLE,
        _ => grpc_code::INTERNAL,
    };
    (status, code, message)
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
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    finish(r)
}

/// A refusal on the OTLP route: a `google.rpc.Status` body in `encoding`, `Retry-After` when
/// waiting helps (429, 503).
pub fn otlp_refusal(refusal: &Refusal, encoding: Encoding) -> Response<Body> {
    let (status, code, message) = otlp_status(refusal);
    let mut r = otlp_body(status, &RpcStatus { code, message }, encoding);
    if matches!(status, 429 | 503) {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
    r
}

/// The answer to an export: 200 with the signal's `Export*ServiceResponse`, its partial
/// success set when items were rejected.
pub fn otlp_exported(signal: Signal, exported: &Exported, encoding: Encoding) -> Response<Body> {
    use opentelemetry_proto::tonic::collector::{logs, metrics, trace};
    let rejected = exported.rejected;
    let error_message = exported.error_message.clone();
    let partial = rejected > 0 || !error_message.is_empty();
    let rejected = i64::try_from(rejected).unwrap_or(i64::MAX);
    match signal {
        Signal::Traces => otlp_body(
            200,
            &trace::v1::ExportTraceServiceResponse {
                partial_success: partial.then_some(trace::v1::ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message,
                }),
            },
            encoding,
        ),
        Signal::Metrics => otlp_body(
            200,
            &metrics::v1::ExportMetricsServiceResponse {
                partial_success: partial.then_some(metrics::v1::ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message,
                }),
            },
            encoding,
        ),
        Signal::Logs => otlp_body(
            200,
            &logs::v1::ExportLogsServiceResponse {
                partial_success: partial.then_some(logs::v1::ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message,
                }),
            },
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
