//! OTLP/gRPC: the unary calls `opentelemetry.proto.collector.{trace,metrics,logs}.v1.
//! {Trace,Metrics,Logs}Service/Export`, on the listeners' own HTTP/2 connections (TLS with
//! ALPN `h2`, and h2c), on the `otlp` route: one port for the APM intake, OTLP/HTTP and
//! OTLP/gRPC, as APM Server serves them.
//!
//! The router has decided (identity from the `authorization` metadata, client certificate,
//! allowlists, rules, `event:write`, the anonymous rate limit) and built the gate, as for
//! every route. Here tonic's unary server path reads the call: gRPC framing, `grpc-encoding:
//! gzip`, at most the listener's `max_body_size` per message, compressed or not (a larger one,
//! or one that inflates past it, is refused by tonic before it is held whole). The decoded
//! message goes through `otlp::export`, the path OTLP/HTTP shares, and the answer is the
//! service's `Export*ServiceResponse` (partial success included) or the gRPC status `respond`
//! gives the refusal. The whole call is bounded by the listener's read timeout (an endless
//! stream is cut off there, as every request is).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::Either;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::oneshot;
use tonic::codec::{BufferSettings, Codec, CompressionEncoding, DecodeBuf, Decoder};

use super::respond::{self, Body, ExportAnswer};
use super::runtime::{Runtime, Shared};
use crate::access::Refusal;
use crate::access::gate::Gate;
use crate::intake::otlp::Exported;
use crate::intake::{IntakeResult, StreamContext};
use crate::model::RequestMeta;
use crate::model::otlp::{self, Signal};
use crate::policy::compiled::Limits;
use crate::telemetry::Counter;

/// Whether a request is a gRPC call: HTTP/2 with a `application/grpc` content type (`+proto`
/// and the like included).
pub(super) fn is_grpc(parts: &http::request::Parts) -> bool {
    parts.version == http::Version::HTTP_2
        && parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The signal an OTLP/gRPC method exports.
fn signal(path: &str) -> Option<Signal> {
    match path {
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => Some(Signal::Traces),
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" => Some(Signal::Metrics),
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export" => Some(Signal::Logs),
        _ => None,
    }
}

/// Serves one OTLP/gRPC call. What goes wrong once the call is read is answered as a gRPC
/// status inside the response; what comes before (no such method) goes back to the router.
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
    let mut call = http::Request::new(body);
    *call.method_mut() = parts.method.clone();
    *call.uri_mut() = parts.uri.clone();
    *call.version_mut() = parts.version;
    *call.headers_mut() = parts.headers.clone();
    // Decoder slots bound how many messages are read at once (each up to `max_body_size`),
    // as they bound the APM intake and OTLP/HTTP.
    let _decoder = shared.decoders.acquire().await;
    let ctx = shared.stream_context(rt, limits, meta, gate, false);
    let max = usize::try_from(limits.max_body_size).unwrap_or(usize::MAX);
    let export = |request, size| export(shared, &ctx, gate, request, size);
    let unary = match signal {
        Signal::Traces => {
            unary::<ExportTraceServiceRequest, _, _>(call, max, |m, size| {
                export(otlp::Request::Traces(m), size)
            })
            .await
        }
        Signal::Metrics => {
            unary::<ExportMetricsServiceRequest, _, _>(call, max, |m, size| {
                export(otlp::Request::Metrics(m), size)
            })
            .await
        }
        Signal::Logs => {
            unary::<ExportLogsServiceRequest, _, _>(call, max, |m, size| {
                export(otlp::Request::Logs(m), size)
            })
            .await
        }
    };
    if !unary.decoded {
        // A message that did not decode, or was larger than allowed: counted as OTLP/HTTP
        // counts it (tonic answered the call).
        shared
            .metrics
            .add(Counter::EventsRejectedTotal, &[("reason", "invalid")], 1);
    }
    Ok(unary.response.map(Either::Right))
}

/// Exports a decoded message of `size` bytes through the intake: what came of it, or the
/// gRPC status of the refusal.
async fn export(
    shared: &Shared,
    ctx: &StreamContext<'_>,
    gate: &Gate<'_>,
    request: otlp::Request,
    size: usize,
) -> Result<Exported, tonic::Status> {
    let refused = |result| respond::grpc_status(&Refusal::Intake(result));
    let _held = crate::intake::otlp::hold(ctx.memory, size).map_err(refused)?;
    super::otlp::export(shared, ctx, gate, &request, size)
        .await
        .map_err(refused)
}

/// Reads one call of a service whose request message is `M` and answers it with what
/// `export` makes of the message. tonic's unary path reads and answers the call; the message
/// is relayed out of it (its service must own what it holds), exported here, and the answer
/// relayed back.
async fn unary<M, B, F>(
    call: http::Request<B>,
    max_message_size: usize,
    export: impl FnOnce(M, usize) -> F,
) -> Unary
where
    M: ExportAnswer + prost::Message + Default + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
    F: Future<Output = Result<Exported, tonic::Status>>,
{
    let codec = OtlpCodec::<M>(tonic_prost::ProstCodec::default());
    let mut grpc = tonic::server::Grpc::new(codec)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_size);
    let (message_tx, message_rx) = oneshot::channel::<M>();
    let (answer_tx, answer_rx) = oneshot::channel();
    let relay = Relay {
        message: Some(message_tx),
        answer: Some(answer_rx),
    };
    let work = async move {
        // No message when the call did not decode: tonic has answered it.
        let Ok(message) = message_rx.await else {
            return false;
        };
        let size = message.encoded_len();
        let answer = export(message, size).await.map(|e| M::answer(&e));
        let _ = answer_tx.send(answer);
        true
    };
    let (response, decoded) = tokio::join!(grpc.unary(relay, call), work);
    Unary { response, decoded }
}

/// What [`unary`] came to: the answer, and whether the call's message was read and decoded.
struct Unary {
    response: Response<tonic::body::Body>,
    decoded: bool,
}

/// The service tonic calls with the decoded message: hands it out and waits for the answer.
struct Relay<M: ExportAnswer> {
    message: Option<oneshot::Sender<M>>,
    answer: Option<oneshot::Receiver<Result<M::Answer, tonic::Status>>>,
}

impl<M: ExportAnswer + Send + 'static> tower_service::Service<tonic::Request<M>> for Relay<M> {
    type Response = tonic::Response<M::Answer>;
    type Error = tonic::Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: tonic::Request<M>) -> Self::Future {
        let (message, answer) = (self.message.take(), self.answer.take());
        Box::pin(async move {
            let gone = || tonic::Status::internal("the export was abandoned");
            let (Some(message), Some(answer)) = (message, answer) else {
                return Err(gone());
            };
            message.send(call.into_inner()).map_err(|_| gone())?;
            let answer = answer.await.map_err(|_| gone())??;
            Ok(tonic::Response::new(answer))
        })
    }
}

/// Protobuf as tonic-prost reads and writes it, except that a message that does not decode is
/// the client's error (INVALID_ARGUMENT, with the words OTLP/HTTP uses), not INTERNAL.
struct OtlpCodec<M: ExportAnswer>(tonic_prost::ProstCodec<M::Answer, M>);

impl<M> Codec for OtlpCodec<M>
where
    M: ExportAnswer + prost::Message + Default + Send + 'static,
{
    type Encode = M::Answer;
    type Decode = M;
    type Encoder = tonic_prost::ProstEncoder<M::Answer>;
    type Decoder = OtlpDecoder<tonic_prost::ProstDecoder<M>>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder(self.0.decoder())
    }
}

/// tonic-prost's decoder, its failures answered as the client's error.
struct OtlpDecoder<D>(D);

impl<D: Decoder<Error = tonic::Status>> Decoder for OtlpDecoder<D> {
    type Item = D::Item;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D::Item>, tonic::Status> {
        self.0.decode(src).map_err(|e| {
            let message = format!("unmarshal protobuf: {}", e.message());
            respond::grpc_status(&Refusal::Intake(IntakeResult::refused(message)))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
