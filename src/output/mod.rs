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

impl OutputDocument {
    /// Appends the `_bulk` lines of this document: the `create` action, then the document.
    pub fn write_bulk(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"create\":{\"_index\":");
        // Data stream names are plain ASCII (the model sanitises them); JSON-quote anyway.
        out.extend_from_slice(
            serde_json::to_string(&self.data_stream)
                .unwrap_or_default()
                .as_bytes(),
        );
        out.extend_from_slice(b"}}\n");
        out.extend_from_slice(&self.body);
        out.push(b'\n');
    }

    /// Bytes this document takes in a bulk body.
    pub fn bulk_len(&self) -> usize {
        self.body.len() + self.data_stream.len() + 28
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

    /// Refuses new batches and flushes everything accepted; returns how many documents could
    /// not be written (0 unless the output is broken).
    fn close(&self) -> Pin<Box<dyn Future<Output = u64> + Send + '_>>;
}
