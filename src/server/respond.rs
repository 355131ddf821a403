//! Responses, built in one place, the way APM Server writes them.
//!
//! Every response carries `X-Content-Type-Options: nosniff`. JSON bodies are pretty-printed
//! (2-space indent) as `application/json` when the request's `Accept` contains `*/*` or
//! `application/json`, and written compact as `text/plain; charset=utf-8` otherwise. Failures
//! (status >= 400) carry `Connection: close` so the connection is not reused.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::intake::{IntakeError, IntakeResult};

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

/// `{"error": message}`.
pub fn error(status: u16, message: &str, json_accepted: bool) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": message }),
        json_accepted,
    )
}

#[derive(Serialize)]
struct IntakeBody<'a> {
    accepted: usize,
    #[serde(skip_serializing_if = "<[IntakeError]>::is_empty")]
    errors: &'a [IntakeError],
}

/// The intake answer: 202 without a body unless `verbose`; failures always with the result.
pub fn intake(result: &IntakeResult, verbose: bool, json_accepted: bool) -> Response<Body> {
    let status = result.status();
    if status == 202 && !verbose {
        return empty(202);
    }
    let mut r = json(
        status,
        &IntakeBody {
            accepted: result.accepted,
            errors: &result.errors,
        },
        json_accepted,
    );
    // 503 here means the output's queue is full or the server is closing: both pass. (APM
    // Server sends no Retry-After; clients that honour it back off instead of hammering.)
    if status == 503 {
        r.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    r
}

/// `Retry-After` of an intake 503: about one flush of the output.
pub const RETRY_AFTER_SECONDS: &str = "1";

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
