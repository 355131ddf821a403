//! OTLP export requests through the intake: the (decompressed) message read within the
//! listener's `max_body_size` and the intake's memory budget, then mapped (`model::otlp`) and
//! published like the APM intake's batches: the same gate (permissions, anonymous rules, rate
//! limit), the same output and the same aggregated metrics.
//!
//! [`export`] takes a decoded request message and a [`StreamContext`], so the OTLP/HTTP route
//! and an OTLP/gRPC service share it; what goes wrong is an [`IntakeResult`] failure, which
//! `server::respond` renders. Knows nothing of HTTP.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::body::{BodyError, MEMORY_BUDGET_SPENT};
use super::memory::{IntakeMemory, Reservation};
use super::{
    BATCH_SIZE, Failure, IntakeResult, StreamContext, flush, publish_failure, read_failure,
};
use crate::model::otlp::{self, Encoding, Signal};

/// How much of the budget a message holds per byte read: the bytes themselves, the decoded
/// message and the documents made from it, each about the size of the message.
const HELD_PER_BYTE: usize = 3;

/// What an export request came to: OTLP's answer (partial success when `rejected` > 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exported {
    /// APM events accepted (handed to the output).
    pub events: usize,
    /// Spans, data points or log records not taken.
    pub rejected: u64,
    /// Why they were not taken.
    pub error_message: String,
}

/// Reads a whole export message from the decompressed body: at most `max_body_size` bytes,
/// each reserved from the intake's memory budget (with what decoding and mapping it will take)
/// before it is read. The reservation is held until the request is done.
pub async fn read_message<R: AsyncRead + Unpin>(
    mut body: R,
    max_body_size: u64,
    memory: &IntakeMemory,
) -> Result<(Vec<u8>, Reservation), IntakeResult> {
    let Some(mut held) = memory.reserve(0) else {
        return Err(IntakeResult::unavailable(MEMORY_BUDGET_SPENT));
    };
    let mut message = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match body.read(&mut chunk).await {
            Ok(0) => return Ok((message, held)),
            Ok(n) => n,
            Err(e) => {
                let e = BodyError::from_io(e);
                return Err(IntakeResult::whole(read_failure(&e), e.message()));
            }
        };
        if (message.len() + n) as u64 > max_body_size {
            let e = BodyError::TooLarge(max_body_size);
            return Err(IntakeResult::whole(Failure::Invalid, e.message()));
        }
        let wanted = (message.len() + n).next_power_of_two();
        if wanted > message.capacity() {
            if !held.resize(wanted * HELD_PER_BYTE) {
                return Err(IntakeResult::unavailable(MEMORY_BUDGET_SPENT));
            }
            message.reserve_exact(wanted - message.len());
        }
        message.extend_from_slice(&chunk[..n]);
    }
}

/// Reserves from the intake's memory budget what a message of `size` bytes that arrived
/// decoded (OTLP/gRPC decodes as it reads) holds while it is mapped and published.
pub fn hold(memory: &IntakeMemory, size: usize) -> Result<Reservation, IntakeResult> {
    memory
        .reserve(size.saturating_mul(HELD_PER_BYTE))
        .ok_or_else(|| IntakeResult::unavailable(MEMORY_BUDGET_SPENT))
}

/// Reads an export request of `signal` from a whole message; a message that does not decode
/// is refused as invalid (400, InvalidArgument).
pub fn decode(
    signal: Signal,
    encoding: Encoding,
    message: &[u8],
) -> Result<otlp::Request, IntakeResult> {
    otlp::decode(signal, encoding, message).map_err(|e| IntakeResult::refused(e.message))
}

/// Maps a decoded export request and publishes its documents, in batches, as the APM intake
/// publishes its own.
pub async fn export(
    request: &otlp::Request,
    ctx: &StreamContext<'_>,
) -> Result<Exported, IntakeResult> {
    let mapped = otlp::map(request, &ctx.request, ctx.model);
    let mut exported = Exported {
        events: 0,
        rejected: mapped.rejected,
        error_message: mapped.error_message,
    };
    // The documents of one batch, and what they add to aggregated metrics (one observation
    // per event; every OTLP event is indexed).
    const DOCUMENTS_PER_BATCH: usize = BATCH_SIZE * 10;
    let mut documents = mapped.documents;
    let mut observations = mapped.observations;
    let aligned = observations.len() == documents.len();
    while !documents.is_empty() {
        let n = documents.len().min(DOCUMENTS_PER_BATCH);
        let batch: Vec<_> = documents.drain(..n).collect();
        let observed = if aligned {
            observations.drain(..n).collect()
        } else if documents.is_empty() {
            std::mem::take(&mut observations)
        } else {
            Vec::new()
        };
        if let Err((failure, message)) = flush(batch, observed, n, ctx).await {
            let mut result = IntakeResult::whole(failure, message);
            result.accepted = exported.events;
            return Err(result);
        }
        exported.events += n;
    }
    // What was accepted is kept as the output promises before the answer says so (one wait
    // for the whole request, as the APM intake settles a stream).
    if exported.events > 0 {
        if let Err(e) = ctx.output.settle().await {
            let (failure, message) = publish_failure(e);
            let mut result = IntakeResult::whole(failure, message);
            result.accepted = exported.events;
            return Err(result);
        }
    }
    Ok(exported)
}
