//! Intake: an APM event stream (NDJSON, maybe compressed) turned into accepted batches.
//!
//! The body is read as a stream, never buffered whole; what a request holds (its line, the
//! metadata, the batch waiting to be published) is reserved from the intake's memory budget
//! before it is taken (`memory`), so the intake's memory has one bound. Framing follows APM Server: the first line is
//! metadata, later lines are events identified by their first key, a line longer than
//! `max_event_size` is reported with its first `max_event_size` bytes and skipped while the
//! stream goes on, at most 5 errors are reported, and the status is the highest one recorded.
//! Unlike APM Server, the decompressed body is capped (`max_body_size`) against gzip bombs.
//! Intake knows nothing of HTTP: the server hands it a body reader and a content encoding.

pub mod body;
pub mod decoders;
pub mod lines;
pub mod memory;
pub mod otlp;

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use tokio::io::AsyncBufRead;

use crate::aggregation::Aggregator;
use crate::model::aggregate::Observation;
use crate::model::sourcemap::{BundleKey, Resolutions};
use crate::model::{self, Decoded, Document, Metadata, ModelConfig, ModelError, RequestMeta};
use crate::output::{Output, OutputDocument, PublishError};
use crate::policy::compiled::AggregationSettings;

use body::BodyError;
use lines::{Line, LineReader};
use memory::{DOCUMENT_OVERHEAD, IntakeMemory};

/// Lines decoded before a batch is checked and published (APM Server's `batchSize`).
pub const BATCH_SIZE: usize = 10;
/// Errors reported in a response (APM Server's `errorsSpace`).
pub const MAX_REPORTED_ERRORS: usize = 5;

/// Checks made on each batch before it is published (per-batch permissions, anonymous access
/// rules and rate limits). Implemented by `access::gate`.
pub trait BatchGate: Send + Sync {
    /// Whether the caller may send this document; `Err` holds APM Server's reason, e.g.
    /// `anonymous access not permitted for agent "x"`.
    fn authorize(&self, document: &Document) -> Result<(), String>;

    /// Waits for `events` tokens of the caller's rate limit; false when they cannot be had in
    /// time.
    fn acquire(&self, events: usize) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
}

/// The source maps of RUM stack frames, fetched before a line's events are written.
/// Implemented by `crate::sourcemap`; never fails a request (problems come back as
/// `sourcemap.error` resolutions).
pub trait SourceMapper: Send + Sync {
    /// How long the maps of one batch may take (APM Server's per-batch `timeout`).
    fn timeout(&self) -> std::time::Duration;

    /// The source map of each bundle, or why there is none by `deadline`.
    fn resolve(
        &self,
        bundles: Vec<BundleKey>,
        deadline: tokio::time::Instant,
    ) -> Pin<Box<dyn Future<Output = Resolutions> + Send + '_>>;
}

/// A gate that lets everything through (authenticated callers).
pub struct OpenGate;

impl BatchGate for OpenGate {
    fn authorize(&self, _: &Document) -> Result<(), String> {
        Ok(())
    }
    fn acquire(&self, _: usize) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(std::future::ready(true))
    }
}

/// One reported error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntakeError {
    /// Message, as APM Server words it.
    pub message: String,
    /// The offending line, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

/// Why an event or the stream failed. Ordered by precedence: the worst one recorded is the
/// stream's (`server::respond` says which status each is, as APM Server answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// A line that does not decode or validate, is too large, or a body that does not
    /// decompress.
    Invalid,
    /// An anonymous caller not allowed for an agent or service, or a caller without
    /// `event:write`.
    NotPermitted,
    /// The anonymous rate limit.
    RateLimited,
    /// The output's queue is full, or the memory budget is spent: worth retrying soon.
    Unavailable,
    /// The output no longer takes events: the gateway is stopping (APM Server answers it as
    /// it answers a full queue, 503; gRPC clients get UNAVAILABLE rather than
    /// RESOURCE_EXHAUSTED).
    ShuttingDown,
}

/// The outcome of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeResult {
    /// Events accepted (handed to the output).
    pub accepted: usize,
    /// Up to 5 errors.
    pub errors: Vec<IntakeError>,
    /// The worst failure, if any.
    pub failure: Option<Failure>,
    /// Events rejected as invalid (all of them, beyond the 5 reported).
    pub invalid: usize,
    /// Lines rejected as too large.
    pub too_large: usize,
    /// Decompressed bytes read.
    pub bytes: u64,
}

impl IntakeResult {
    /// What a stream with events gets when the gate refuses every batch for `reason` (what
    /// `explain` shows for a caller without `event:write`).
    pub fn not_permitted(reason: &str) -> Self {
        Self {
            errors: vec![IntakeError {
                message: not_permitted_message(reason),
                document: None,
            }],
            failure: Some(Failure::NotPermitted),
            ..Default::default()
        }
    }

    /// A stream refused whole before any event, for `message`.
    pub fn refused(message: String) -> Self {
        Self::whole(Failure::Invalid, message)
    }

    /// A stream refused whole before any event because the gateway cannot take it now (503
    /// with `Retry-After`).
    pub fn unavailable(message: &str) -> Self {
        Self::whole(Failure::Unavailable, message.to_string())
    }

    /// A stream that failed whole, before any event, for `message`.
    fn whole(failure: Failure, message: String) -> Self {
        let mut result = Self::default();
        result.record(failure, message, None);
        result
    }

    fn record(&mut self, failure: Failure, message: String, document: Option<String>) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(IntakeError { message, document });
        }
        self.failure = self.failure.max(Some(failure));
    }
}

/// What the stream needs from the request and the policy.
pub struct StreamContext<'a> {
    /// Per-line limit.
    pub max_event_size: usize,
    /// Limit on the decompressed stream.
    pub max_body_size: u64,
    /// Request facts for the model.
    pub request: RequestMeta<'a>,
    /// Model settings.
    pub model: &'a ModelConfig,
    /// Per-batch checks.
    pub gate: &'a dyn BatchGate,
    /// Where batches go.
    pub output: &'a dyn Output,
    /// The budget the stream's line, metadata and batch are reserved from.
    pub memory: &'a IntakeMemory,
    /// Where accepted events are aggregated into metrics, and the settings in force.
    pub aggregation: Option<(&'a Aggregator, &'a AggregationSettings)>,
    /// Source maps for the stack frames of RUM events (RUM routes with source mapping on).
    pub source_maps: Option<&'a dyn SourceMapper>,
}

/// APM Server's answer when the output no longer takes events (the gateway is stopping).
pub const SHUTTING_DOWN: &str = "server is shutting down";

/// What APM Server's intake puts before the reason a batch was refused.
pub const BATCH_PREFIX: &str = "cannot handle stream: cannot process batch: ";

/// APM Server's error for a batch the caller may not send (`reason` from the gate).
fn not_permitted_message(reason: &str) -> String {
    format!("{BATCH_PREFIX}unauthorized: {reason}")
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first line's capacity (most events fit).
const LINE_CAPACITY: usize = 4096;

/// Reads a whole (decompressed) event stream and publishes its batches.
pub async fn process_stream<R: AsyncBufRead + Unpin>(
    reader: R,
    ctx: &StreamContext<'_>,
) -> IntakeResult {
    let mut result = decode_stream(reader, ctx).await;
    // What was accepted is kept as the output promises before the answer says so: one wait
    // for the whole request (its batches share one fsync with a spool), not one per batch.
    if result.accepted > 0 {
        if let Err(e) = ctx.output.settle().await {
            let (failure, message) = publish_failure(e);
            result.record(failure, message, None);
        }
    }
    result
}

/// Reads, decodes and publishes the stream (see [`process_stream`]).
async fn decode_stream<R: AsyncBufRead + Unpin>(
    reader: R,
    ctx: &StreamContext<'_>,
) -> IntakeResult {
    let Some(mut held) = ctx.memory.reserve(LINE_CAPACITY) else {
        return IntakeResult::unavailable(body::MEMORY_BUDGET_SPENT);
    };
    let mut result = IntakeResult::default();
    let mut lines = LineReader::new(reader, ctx.max_event_size, ctx.max_body_size);
    let mut line = Vec::with_capacity(LINE_CAPACITY);
    held.force(line.capacity());

    // Metadata first.
    let metadata: Metadata = loop {
        let read = lines
            .next_within(&mut line, |capacity| held.resize(capacity))
            .await;
        held.force(line.capacity());
        match read {
            Ok(Line::Eof) => {
                result.bytes = lines.bytes_read();
                return result;
            }
            Ok(Line::Empty) => continue,
            Ok(Line::TooLarge) => {
                result.too_large += 1;
                result.record(
                    Failure::Invalid,
                    "event exceeded the permitted size".into(),
                    Some(lossy(&line)),
                );
                result.bytes = lines.bytes_read();
                return result;
            }
            Ok(Line::Complete) => match model::decode_metadata(&line) {
                Ok(m) => break m,
                Err(e) => {
                    result.invalid += 1;
                    result.record(Failure::Invalid, e.message, Some(lossy(&line)));
                    result.bytes = lines.bytes_read();
                    return result;
                }
            },
            Err(e) => {
                result.record(read_failure(&e), e.message(), None);
                result.bytes = lines.bytes_read();
                return result;
            }
        }
    };
    // The decoded metadata holds about as much as its line did, for the whole stream.
    let metadata_bytes = line.len();

    let mut batch: Vec<Document> = Vec::new();
    let mut observations: Vec<Observation> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut batch_accepted = 0usize;
    let mut batch_lines = 0usize;
    // When the source maps of this batch's RUM frames must be in (set by the first line that
    // needs one).
    let mut maps_deadline: Option<tokio::time::Instant> = None;
    loop {
        let besides_line = metadata_bytes + batch_bytes;
        let read = lines
            .next_within(&mut line, |capacity| held.resize(besides_line + capacity))
            .await;
        held.force(besides_line + line.capacity());
        let eof = matches!(read, Ok(Line::Eof) | Err(_));
        match read {
            Ok(Line::Complete) => {
                batch_lines += 1;
                // The document is reserved before it is made: its line, the metadata merged
                // into it, and what encoding adds.
                let estimate = line.len() + metadata_bytes + DOCUMENT_OVERHEAD;
                if !held.resize(besides_line + line.capacity() + estimate) {
                    result.record(Failure::Unavailable, body::MEMORY_BUDGET_SPENT.into(), None);
                    result.bytes = lines.bytes_read();
                    return result;
                }
                match decode_line(&line, &metadata, ctx, &mut maps_deadline).await {
                    Ok(decoded) => {
                        batch_accepted += decoded.accepted;
                        batch_bytes += decoded.documents.iter().map(held_by).sum::<usize>();
                        batch_bytes += decoded
                            .observations
                            .iter()
                            .map(Observation::held)
                            .sum::<usize>();
                        batch.extend(decoded.documents);
                        observations.extend(decoded.observations);
                    }
                    Err(e) => {
                        result.invalid += 1;
                        result.record(Failure::Invalid, e.message, Some(lossy(&line)));
                    }
                }
                held.force(metadata_bytes + batch_bytes + line.capacity());
            }
            Ok(Line::TooLarge) => {
                batch_lines += 1;
                result.too_large += 1;
                result.record(
                    Failure::Invalid,
                    "event exceeded the permitted size".into(),
                    Some(lossy(&line)),
                );
            }
            Ok(Line::Empty) | Ok(Line::Eof) => {}
            Err(e) => result.record(read_failure(&e), e.message(), None),
        }
        if batch_lines >= BATCH_SIZE || (eof && batch_lines > 0) {
            batch_lines = 0;
            maps_deadline = None;
            let published = flush(
                std::mem::take(&mut batch),
                std::mem::take(&mut observations),
                batch_accepted,
                ctx,
            )
            .await;
            // Published documents are the output's to hold (its own bound).
            batch_bytes = 0;
            held.force(metadata_bytes + line.capacity());
            if let Err((failure, message)) = published {
                result.record(failure, message, None);
                result.bytes = lines.bytes_read();
                return result;
            }
            result.accepted += batch_accepted;
            batch_accepted = 0;
        }
        if eof {
            result.bytes = lines.bytes_read();
            return result;
        }
    }
}

/// Decodes one event line; with source maps, the maps its RUM frames need are fetched (each
/// once) before its documents are written, all the lines of a batch within one timeout from
/// the first that needed a map (`deadline`), as APM Server times out a batch.
async fn decode_line(
    line: &[u8],
    metadata: &Metadata,
    ctx: &StreamContext<'_>,
    deadline: &mut Option<tokio::time::Instant>,
) -> Result<Decoded, ModelError> {
    let mut pending = model::decode_events(line, metadata, &ctx.request, ctx.model)?;
    if let Some(maps) = ctx.source_maps.filter(|_| ctx.request.rum) {
        let bundles = pending.source_map_bundles();
        if !bundles.is_empty() {
            let deadline =
                *deadline.get_or_insert_with(|| tokio::time::Instant::now() + maps.timeout());
            let resolved = maps.resolve(bundles, deadline).await;
            pending.apply_source_maps(&resolved);
        }
    }
    Ok(pending.finish(metadata, &ctx.request, ctx.model))
}

/// What a body that could not be read fails the stream with.
fn read_failure(e: &BodyError) -> Failure {
    match e {
        BodyError::MemoryBudget => Failure::Unavailable,
        BodyError::Decode(_) | BodyError::TooLarge(_) | BodyError::Read(_) => Failure::Invalid,
    }
}

/// Bytes a document holds.
fn held_by(d: &Document) -> usize {
    d.body.capacity() + d.data_stream.capacity()
}

/// Checks and publishes one batch; its events are aggregated once the output took it.
async fn flush(
    batch: Vec<Document>,
    observations: Vec<Observation>,
    accepted: usize,
    ctx: &StreamContext<'_>,
) -> Result<(), (Failure, String)> {
    publish(batch, accepted, ctx).await?;
    if let Some((aggregator, settings)) = ctx.aggregation {
        aggregator.record(&observations, settings);
    }
    Ok(())
}

async fn publish(
    batch: Vec<Document>,
    accepted: usize,
    ctx: &StreamContext<'_>,
) -> Result<(), (Failure, String)> {
    for doc in &batch {
        if let Err(reason) = ctx.gate.authorize(doc) {
            return Err((Failure::NotPermitted, not_permitted_message(&reason)));
        }
    }
    if accepted > 0 && !ctx.gate.acquire(accepted).await {
        return Err((
            Failure::RateLimited,
            format!("{BATCH_PREFIX}rate limit exceeded"),
        ));
    }
    if batch.is_empty() {
        return Ok(());
    }
    let docs = batch
        .into_iter()
        .map(|d| OutputDocument {
            data_stream: d.data_stream,
            body: d.body,
        })
        .collect();
    ctx.output.publish(docs).await.map_err(publish_failure)
}

/// What the intake answers when the output does not take a batch (APM Server's words).
fn publish_failure(e: PublishError) -> (Failure, String) {
    match e {
        PublishError::QueueFull => (Failure::Unavailable, format!("{BATCH_PREFIX}queue is full")),
        PublishError::Closed => (Failure::ShuttingDown, SHUTTING_DOWN.into()),
    }
}
