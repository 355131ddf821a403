//! The discard output: accepts every batch and drops it (as libbeat's `output.discard`).
//!
//! For measuring the intake alone, and for dry runs of a policy against real agents. It counts
//! what it dropped, so a run can still be accounted for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Output, OutputDocument, PublishError, PublishFuture};

/// Drops every document it is given.
#[derive(Debug, Default)]
pub struct DiscardOutput {
    documents: AtomicU64,
    closed: AtomicBool,
}

impl DiscardOutput {
    /// A new discard output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Documents dropped so far.
    pub fn documents(&self) -> u64 {
        self.documents.load(Ordering::Relaxed)
    }
}

impl Output for DiscardOutput {
    fn publish(&self, batch: Vec<OutputDocument>) -> PublishFuture<'_> {
        let result = if self.closed.load(Ordering::Acquire) {
            Err(PublishError::Closed)
        } else {
            self.documents
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }

    fn close(&self) -> std::pin::Pin<Box<dyn Future<Output = u64> + Send + '_>> {
        self.closed.store(true, Ordering::Release);
        Box::pin(std::future::ready(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_what_it_drops_and_refuses_after_close() {
        let out = DiscardOutput::new();
        let doc = OutputDocument {
            data_stream: "traces-apm-default".into(),
            body: b"{}".to_vec(),
        };
        out.publish(vec![doc.clone(), doc.clone()]).await.unwrap();
        assert_eq!(out.documents(), 2);
        assert_eq!(out.close().await, 0);
        assert_eq!(out.publish(vec![doc]).await, Err(PublishError::Closed));
        assert_eq!(out.documents(), 2);
    }
}
