//! Outputs: where accepted documents go.
//!
//! An [`Output`] takes batches of documents. `publish` returns once the batch is *accepted*:
//! queued within the output's bounded buffer (the meaning of APM Server's 202). It waits a
//! bounded time for room and then refuses with [`PublishError::QueueFull`]; it never grows
//! without bound and never accepts what it will drop. `close` flushes everything accepted.
//! Outputs know documents and data streams, never HTTP.

pub mod buffer;
pub mod discard;
pub mod elasticsearch;
pub mod file;
pub mod spool;
pub mod switch;

use std::future::Future;
use std::pin::Pin;

/// One document with the data stream it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDocument {
    /// The data stream (`_index` of the bulk `create` action).
    pub data_stream: String,
    /// The JSON document, one line.
    pub body: Vec<u8>,
}

/// The `create` action before the quoted data stream name.
const ACTION_HEAD: &[u8] = b"{\"create\":{\"_index\":";
/// The `create` action after it, with its newline.
const ACTION_TAIL: &[u8] = b"}}\n";
/// What `_bulk` adds to a document and its data stream name: the action around the name, the
/// name's two quotes and the document's newline (26 bytes).
const BULK_FRAMING: usize = ACTION_HEAD.len() + 2 + ACTION_TAIL.len() + 1;

impl OutputDocument {
    /// Appends the `_bulk` lines of this document: the `create` action, then the document.
    pub fn write_bulk(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(ACTION_HEAD);
        // Data stream names are plain ASCII (the model sanitises them); JSON-quote anyway.
        out.extend_from_slice(
            serde_json::to_string(&self.data_stream)
                .unwrap_or_default()
                .as_bytes(),
        );
        out.extend_from_slice(ACTION_TAIL);
        out.extend_from_slice(&self.body);
        out.push(b'\n');
    }

    /// Bytes this document takes in a bulk body (data stream names need no JSON escaping: the
    /// model sanitises them).
    pub fn bulk_len(&self) -> usize {
        self.body.len() + self.data_stream.len() + BULK_FRAMING
    }
}

/// Why a batch was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// No room within the wait.
    #[error("queue is full")]
    QueueFull,
    /// The output is closing.
    #[error("server is shutting down")]
    Closed,
}

/// A boxed future, so outputs can be chosen at run time.
pub type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send + 'a>>;

/// Where documents go.
pub trait Output: Send + Sync + 'static {
    /// Accepts a batch (see the module docs for what accepted means).
    fn publish(&self, batch: Vec<OutputDocument>) -> PublishFuture<'_>;

    /// Returns once everything this output accepted so far is kept as the output promises
    /// (with a spool and `fsync = "batch"`: fsynced). Intake calls it once per request, after
    /// its last batch and before answering, so that the batches of one request share one
    /// fsync (group commit across requests too) instead of waiting for one each.
    fn settle(&self) -> PublishFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    /// Refuses new batches and flushes everything accepted; returns how many documents could
    /// not be written (0 unless the output is broken).
    fn close(&self) -> Pin<Box<dyn Future<Output = u64> + Send + '_>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_len_is_what_write_bulk_writes() {
        let doc = OutputDocument {
            data_stream: "traces-apm-default".into(),
            body: br#"{"a":1}"#.to_vec(),
        };
        let mut out = Vec::new();
        doc.write_bulk(&mut out);
        assert_eq!(doc.bulk_len(), out.len());
        assert_eq!(BULK_FRAMING, 26);
    }
}
