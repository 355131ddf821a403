//! The OTLP/HTTP route: `POST /v1/traces`, `/v1/metrics` and `/v1/logs` with
//! `application/x-protobuf` or `application/json`, gzip or zlib per `Content-Encoding` (or
//! sniffed, as the APM intake does), over every protocol the router serves.
//!
//! The router has decided (the `otlp` route needs `event:write`) and built the gate; this reads
//! the message within the listener's `max_body_size` and the intake's memory budget, and hands
//! it to [`export`], the path OTLP/gRPC (`server::grpc`, which the router hands the gRPC
//! calls of this route) shares. Refusals go back to the router, which has `respond` render
//! them in OTLP's form.

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, Response};
use http_body_util::BodyStream;

use super::respond::{self, Body};
use super::runtime::{Runtime, Shared};
use crate::access::Refusal;
use crate::access::gate::Gate;
use crate::intake::body::{self, TransportError};
use crate::intake::memory::DECOMPRESSOR_BYTES;
use crate::intake::otlp::Exported;
use crate::intake::{self, IntakeResult, StreamContext};
use crate::model::RequestMeta;
use crate::model::otlp::{self, Encoding, Signal};
use crate::policy::compiled::Limits;
use crate::telemetry::Counter;

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The encoding a request's `Content-Type` names, if OTLP/HTTP defines it.
pub(super) fn encoding(headers: &HeaderMap) -> Option<Encoding> {
    let media = header(headers, "content-type")?
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" => Some(Encoding::Protobuf),
        "application/json" => Some(Encoding::Json),
        _ => None,
    }
}

fn signal(path: &str) -> Option<Signal> {
    match path {
        "/v1/traces" => Some(Signal::Traces),
        "/v1/metrics" => Some(Signal::Metrics),
        "/v1/logs" => Some(Signal::Logs),
        _ => None,
    }
}

/// Serves one export request.
pub(super) async fn handle<B>(
    shared: &Shared,
    rt: &Runtime,
    limits: &Limits,
    parts: &http::request::Parts,
    body: B,
    meta: RequestMeta<'_>,
    gate: &Gate<'_>,
) -> Result<Response<Body>, Refusal>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let signal = signal(parts.uri.path()).ok_or(Refusal::NotFound)?;
    let Some(encoding) = encoding(&parts.headers) else {
        return Err(Refusal::UnsupportedContentType {
            content_type: header(&parts.headers, "content-type")
                .unwrap_or("")
                .to_owned(),
        });
    };
    let stream = BodyStream::new(body)
        .try_filter_map(|frame| std::future::ready(Ok(frame.into_data().ok())))
        .map_err(|e| std::io::Error::other(TransportError(e.to_string())));
    let reader = tokio_util::io::StreamReader::new(stream);
    // Decoder slots and the memory budget bound OTLP as they bound the APM intake.
    let _decoder = shared.decoders.acquire().await;
    let Some(mut decompressor) = shared.intake_memory.reserve(DECOMPRESSOR_BYTES) else {
        return Err(Refusal::Intake(IntakeResult::unavailable(
            body::MEMORY_BUDGET_SPENT,
        )));
    };
    let (decoded, compression) =
        match body::decode(reader, header(&parts.headers, "content-encoding")).await {
            Ok(d) => d,
            Err(e) => return Err(Refusal::Intake(IntakeResult::refused(e.message()))),
        };
    if compression == body::Encoding::Identity {
        decompressor.resize(0);
    }
    let read =
        intake::otlp::read_message(decoded, limits.max_body_size, &shared.intake_memory).await;
    drop(decompressor);
    let (message, _held) = read.map_err(Refusal::Intake)?;
    let request = match intake::otlp::decode(signal, encoding, &message) {
        Ok(r) => r,
        Err(result) => {
            shared
                .metrics
                .add(Counter::EventsRejectedTotal, &[("reason", "invalid")], 1);
            return Err(Refusal::Intake(result));
        }
    };
    let size = message.len();
    drop(message);
    let ctx = shared.stream_context(rt, limits, meta, gate, false);
    let exported = export(shared, &ctx, gate, &request, size)
        .await
        .map_err(Refusal::Intake)?;
    Ok(respond::otlp_exported(signal, &exported, encoding))
}

/// Exports a decoded request of `size` bytes through the intake and counts what came of it:
/// the one path of OTLP/HTTP and OTLP/gRPC after decoding.
pub(super) async fn export(
    shared: &Shared,
    ctx: &StreamContext<'_>,
    gate: &Gate<'_>,
    request: &otlp::Request,
    size: usize,
) -> Result<Exported, IntakeResult> {
    let metrics = &shared.metrics;
    let labels = [("route", "otlp")];
    metrics.add(Counter::BytesReceivedTotal, &labels, size as u64);
    match intake::otlp::export(request, ctx).await {
        Ok(exported) => {
            metrics.add(
                Counter::EventsAcceptedTotal,
                &labels,
                exported.events as u64,
            );
            metrics.add(
                Counter::EventsRejectedTotal,
                &[("reason", "unsupported")],
                exported.rejected,
            );
            Ok(exported)
        }
        Err(result) => {
            metrics.add(
                Counter::EventsAcceptedTotal,
                &labels,
                result.accepted as u64,
            );
            match result.failure {
                Some(intake::Failure::RateLimited) => {
                    metrics.add(Counter::RateLimitedTotal, &[("stage", "batch")], 1)
                }
                Some(intake::Failure::NotPermitted) if gate.refuses_all() => {
                    metrics.add(Counter::AccessDeniedTotal, &[("reason", "privilege")], 1)
                }
                _ => {}
            }
            Err(result)
        }
    }
}
