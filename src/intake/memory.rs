//! The intake's memory budget: one bound on the bytes held by every request being decoded,
//! whatever their number and shape.
//!
//! The decoder slots (`max_concurrent_decoders`) bound how many requests decode at once, but a
//! request's own memory grows with what it is sent: its current line (up to `max_event_size`),
//! the batch of up to 10 encoded documents waiting to be published, and its decompressor.
//! Stalled in the middle of large lines, 2,048 decoders could hold gigabytes. Here each decoding
//! request reserves bytes from one shared budget *before* it takes them: its decompressor when
//! the request starts, each growth of its line buffer, and each event's document before the
//! event is encoded (estimated as its line plus the metadata plus [`DOCUMENT_OVERHEAD`], then
//! corrected to the real size). A request that cannot reserve is refused with 503 and
//! `Retry-After` (what it had published before stays accepted), and its bytes return to the
//! budget when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// What a compressed request's decompressor holds: the 32 KiB window, zlib's state and the 8 KiB
/// read buffer in front of it, rounded up.
pub const DECOMPRESSOR_BYTES: usize = 48 * 1024;

/// What an encoded document may add to its event's line and the stream's metadata (field names
/// APM Server adds, `@timestamp`, `event.ingested` and the like), for the reservation made
/// before the event is encoded.
pub const DOCUMENT_OVERHEAD: usize = 2 * 1024;

/// The automatic budget is this fraction of the memory limit...
const AUTO_FRACTION: u64 = 8;
/// ...but at least this...
const AUTO_MIN: u64 = 32 << 20;
/// ...and at most this.
const AUTO_MAX: u64 = 1 << 30;

/// The budget shared by every listener: bytes reserved now and the bound.
#[derive(Debug, Clone)]
pub struct IntakeMemory {
    used: Arc<AtomicI64>,
    capacity: Arc<AtomicI64>,
}

impl IntakeMemory {
    /// A budget of `capacity` bytes counted in `used`, the bound kept in `capacity_cell`
    /// (gauge cells, so that the metrics show them without a copy).
    pub fn new(capacity: u64, used: Arc<AtomicI64>, capacity_cell: Arc<AtomicI64>) -> Self {
        let budget = Self {
            used,
            capacity: capacity_cell,
        };
        budget.set_capacity(capacity);
        budget
    }

    /// A budget that never refuses (benchmarks and fuzzing).
    pub fn unbounded() -> Self {
        Self::new(u64::MAX, Arc::default(), Arc::default())
    }

    /// Changes the bound (a reload): reservations from now on are checked against it; what
    /// is held above a lowered bound is given back as requests end.
    pub fn set_capacity(&self, capacity: u64) {
        self.capacity.store(
            i64::try_from(capacity).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The default for a memory limit in bytes: an eighth of it, between 32 MiB and 1 GiB.
    pub fn auto_size(memory_bytes: u64) -> u64 {
        (memory_bytes / AUTO_FRACTION).clamp(AUTO_MIN, AUTO_MAX)
    }

    /// The bound in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed).unsigned_abs()
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed).unsigned_abs()
    }

    /// A reservation of `bytes`, or `None` when the budget cannot hold them.
    pub fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let mut r = Reservation {
            budget: self.clone(),
            held: 0,
        };
        r.resize(bytes).then_some(r)
    }

    fn take(&self, bytes: i64) -> bool {
        let capacity = self.capacity.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.checked_add(bytes)?;
                (after <= capacity).then_some(after)
            })
            .is_ok()
    }

    fn give(&self, bytes: i64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes one request holds of the budget; returned when it is dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: IntakeMemory,
    held: i64,
}

impl Reservation {
    /// Holds `bytes` in all: grows the reservation (false, and unchanged, when the budget
    /// cannot hold the growth) or shrinks it (always possible).
    pub fn resize(&mut self, bytes: usize) -> bool {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let delta = bytes - self.held;
        if delta > 0 && !self.budget.take(delta) {
            return false;
        }
        if delta < 0 {
            self.budget.give(-delta);
        }
        self.held = bytes;
        true
    }

    /// Holds `bytes` in all even beyond the budget: for memory already taken (a document larger
    /// than its estimate), so that the count stays true.
    pub fn force(&mut self, bytes: usize) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let delta = bytes - self.held;
        self.budget.used.fetch_add(delta, Ordering::AcqRel);
        self.held = bytes;
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.held.unsigned_abs() as usize
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_bound_and_return_their_bytes() {
        let budget = IntakeMemory::new(100, Arc::default(), Arc::default());
        let mut a = budget.reserve(60).expect("60 of 100");
        assert!(budget.reserve(41).is_none(), "60 + 41 > 100");
        let b = budget.reserve(40).expect("60 + 40");
        assert_eq!(budget.used(), 100);
        assert!(!a.resize(61), "no room to grow");
        assert_eq!(
            a.held(),
            60,
            "a refused growth leaves the reservation as it was"
        );
        assert!(a.resize(10), "shrinking always works");
        assert_eq!(budget.used(), 50);
        drop(b);
        drop(a);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_forced_reservation_is_counted_and_returned() {
        let budget = IntakeMemory::new(10, Arc::default(), Arc::default());
        let mut a = budget.reserve(5).unwrap();
        a.force(30);
        assert_eq!(budget.used(), 30);
        assert!(budget.reserve(1).is_none());
        drop(a);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_automatic_size_is_an_eighth_of_memory_within_bounds() {
        assert_eq!(IntakeMemory::auto_size(1 << 30), 128 << 20);
        assert_eq!(IntakeMemory::auto_size(64 << 20), 32 << 20);
        assert_eq!(IntakeMemory::auto_size(64 << 30), 1 << 30);
    }
}
