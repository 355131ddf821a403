//! The bound on intake requests decoded at once (APM Server's `max_concurrent_decoders`).
//!
//! A request waits for a slot before its body is read, within its `read_timeout`. What the
//! requests holding slots keep in memory is bounded by the intake's memory budget
//! ([`super::memory`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// APM Server's automatic size: 128 decoders per GiB of memory, times 0.8.
const PER_GIB: f64 = 128.0 * 0.8;
/// APM Server's cap on the automatic size.
const AUTO_MAX: usize = 2048;

/// Slots for requests being decoded, shared by every listener.
#[derive(Debug, Clone)]
pub struct DecoderLimit {
    slots: Arc<Semaphore>,
    size: Arc<AtomicUsize>,
}

impl DecoderLimit {
    /// A limit of `size` concurrent decoders (at least 1).
    pub fn new(size: usize) -> Self {
        let size = size.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(size)),
            size: Arc::new(AtomicUsize::new(size)),
        }
    }

    /// Changes the number of slots (a reload). More slots are free at once; fewer are taken
    /// out as requests holding them end (requests being decoded are never cut short).
    pub fn resize(&self, size: usize) {
        let size = size.clamp(1, Semaphore::MAX_PERMITS);
        let old = self.size.swap(size, Ordering::AcqRel);
        if size > old {
            self.slots.add_permits(size - old);
        } else if size < old {
            let excess = old - size;
            let now = self.slots.forget_permits(excess);
            if now < excess {
                // The rest as slots come back (the semaphore is fair: these are taken before
                // requests that wait after them).
                let rest = u32::try_from(excess - now).unwrap_or(u32::MAX);
                let slots = self.slots.clone();
                tokio::spawn(async move {
                    if let Ok(p) = slots.acquire_many_owned(rest).await {
                        p.forget();
                    }
                });
            }
        }
    }

    /// APM Server's automatic size for a memory limit in bytes.
    pub fn auto_size(memory_bytes: u64) -> usize {
        let gib = memory_bytes as f64 / f64::from(1u32 << 30);
        ((gib * PER_GIB) as usize).clamp(1, AUTO_MAX)
    }

    /// The number of slots.
    pub fn size(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }

    /// Slots in use now.
    pub fn in_use(&self) -> usize {
        self.size().saturating_sub(self.slots.available_permits())
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

    #[tokio::test]
    async fn a_resize_adds_slots_at_once_and_takes_them_out_as_requests_end() {
        let limit = DecoderLimit::new(2);
        let a = limit.acquire().await;
        let b = limit.acquire().await;
        assert!(limit.acquire().now_or_never().is_none());

        limit.resize(3);
        let c = limit
            .acquire()
            .now_or_never()
            .expect("a third slot at once");
        assert_eq!(limit.in_use(), 3);

        // Down to 1 while 3 are held: nobody is cut short; the two extra slots leave as
        // their holders end, and a waiting request gets a slot only when one is left.
        limit.resize(1);
        assert_eq!(limit.size(), 1);
        let mut waiting = Box::pin(limit.acquire());
        drop(a);
        drop(b);
        tokio::task::yield_now().await;
        assert!(
            (&mut waiting).now_or_never().is_none(),
            "the two slots freed were taken out"
        );
        drop(c);
        let d = waiting.await;
        assert!(limit.acquire().now_or_never().is_none(), "one slot in all");
        drop(d);
        limit.resize(2);
        let _e = limit.acquire().now_or_never().expect("first of two");
        let _f = limit.acquire().now_or_never().expect("second of two");
    }
}
