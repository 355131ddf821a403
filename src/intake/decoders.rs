//! The bound on intake requests decoded at once (APM Server's `max_concurrent_decoders`).
//!
//! A request waits for a slot before its body is read, within its `read_timeout`. What the
//! requests holding slots keep in memory is bounded by the intake's memory budget
//! ([`super::memory`]).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// APM Server's automatic size: 128 decoders per GiB of memory, times 0.8.
const PER_GIB: f64 = 128.0 * 0.8;
/// APM Server's cap on the automatic size.
const AUTO_MAX: usize = 2048;

/// Slots for requests being decoded, shared by every listener.
#[derive(Debug, Clone)]
pub struct DecoderLimit {
    slots: Arc<Semaphore>,
    size: usize,
}

impl DecoderLimit {
    /// A limit of `size` concurrent decoders (at least 1).
    pub fn new(size: usize) -> Self {
        let size = size.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// APM Server's automatic size for a memory limit in bytes.
    pub fn auto_size(memory_bytes: u64) -> usize {
        let gib = memory_bytes as f64 / f64::from(1u32 << 30);
        ((gib * PER_GIB) as usize).clamp(1, AUTO_MAX)
    }

    /// The number of slots.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Slots in use now.
    pub fn in_use(&self) -> usize {
        self.size - self.slots.available_permits()
    }

    /// Waits for a slot; the slot is freed when the permit is dropped.
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquiring cannot fail.
        match self.slots.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the decoder semaphore is never closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn the_automatic_size_follows_apm_server() {
        // 1 GiB: 102 decoders; 4 GiB: 409; 24 GiB and more: the 2048 cap.
        assert_eq!(DecoderLimit::auto_size(1 << 30), 102);
        assert_eq!(DecoderLimit::auto_size(4 << 30), 409);
        assert_eq!(DecoderLimit::auto_size(24 << 30), 2048);
        assert_eq!(DecoderLimit::auto_size(0), 1);
    }

    #[tokio::test]
    async fn a_slot_is_held_until_its_permit_is_dropped() {
        let limit = DecoderLimit::new(1);
        let first = limit.acquire().await;
        assert_eq!(limit.in_use(), 1);
        assert!(limit.acquire().now_or_never().is_none(), "no second slot");
        drop(first);
        let _second = limit.acquire().now_or_never().expect("the slot came back");
        assert_eq!(limit.in_use(), 1);
    }
}
