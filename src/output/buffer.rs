//! The buffer between intake and an output's sender, bounded in bytes.
//!
//! A [`Buffer`] is where a document lives from the moment intake is told "accepted" (202)
//! until the output is done with it: indexed, or definitively failed and recorded. Its bound
//! counts every such document, including those the sender has taken and not yet acknowledged
//! (in flight, or waiting for a retry), so the bytes of accepted documents never exceed it.
//!
//! [`MemoryBuffer`] holds documents in memory; the durable spool (`output::spool`) implements
//! the same trait: `push` returns once the batch is on disk (202 then means "on disk"), `pop`
//! reads from the log, and `ack` lets it reclaim space. Nothing outside these modules may
//! assume that documents are in memory.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::{OutputDocument, PublishError, PublishFuture};

/// A document taken from the buffer, to be acknowledged when the output is done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What acknowledges it.
    pub ticket: Ticket,
    /// The document.
    pub doc: OutputDocument,
}

/// Identifies an entry to [`Buffer::ack`]: its position and its accounted size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Position in the order of acceptance (a spool's offset).
    pub seq: u64,
    /// Bytes accounted for the entry.
    pub bytes: u64,
}

/// The buffer's own accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// The bound.
    pub capacity: u64,
    /// Bytes of accepted documents not yet taken by the sender.
    pub queued_bytes: u64,
    /// Documents not yet taken.
    pub queued_docs: u64,
    /// Bytes taken and not yet acknowledged (in flight, waiting for a retry).
    pub leased_bytes: u64,
    /// Documents taken and not yet acknowledged.
    pub leased_docs: u64,
    /// The highest `queued_bytes + leased_bytes` ever reached.
    pub high_water_bytes: u64,
    /// Whether `close` was called.
    pub closed: bool,
}

impl BufferStats {
    /// Bytes counted against the bound.
    pub fn used_bytes(&self) -> u64 {
        self.queued_bytes + self.leased_bytes
    }
}

/// A boxed future of a `pop`.
pub type PopFuture<'a> = Pin<Box<dyn Future<Output = Option<Vec<Entry>>> + Send + 'a>>;

/// Where accepted documents wait for an output's sender.
pub trait Buffer: Send + Sync + 'static {
    /// Accepts a whole batch, waiting up to `wait` for room; never part of one.
    /// [`PublishError::QueueFull`] when there is no room in time (or the batch is larger than
    /// the bound), [`PublishError::Closed`] after `close`.
    fn push(&self, batch: Vec<OutputDocument>, wait: Duration) -> PublishFuture<'_>;

    /// Takes entries in order of acceptance, up to `max_bytes` (at least one), waiting until
    /// there is one. `None` once the buffer is closed and empty. Cancel-safe: a dropped future
    /// has taken nothing.
    fn pop(&self, max_bytes: u64) -> PopFuture<'_>;

    /// Takes what is there now, up to `max_bytes` (at least one), without waiting.
    fn try_pop(&self, max_bytes: u64) -> Vec<Entry>;

    /// The output is done with these entries (indexed, or failed and recorded): their room is
    /// free again.
    fn ack(&self, tickets: &[Ticket]);

    /// Returns once everything pushed so far is as durable as the buffer promises (see
    /// [`Output::settle`](super::Output::settle)).
    fn settle(&self) -> PublishFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    /// Refuses further pushes; entries already accepted can still be taken.
    fn close(&self);

    /// The accounting.
    fn stats(&self) -> BufferStats;

    /// Waits until something changes (a push, an ack, a close): for callers that wait for a
    /// condition on [`stats`](Self::stats).
    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Whether what it holds outlives the process (a spool): then what the output could not
    /// write by shutdown stays for the next start instead of being recorded as failed.
    fn durable(&self) -> bool {
        false
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Entry>,
    next_seq: u64,
    stats: BufferStats,
}

/// The wake-ups of a buffer, the same for every kind.
#[derive(Default)]
pub(crate) struct Signals {
    /// Woken when entries arrive or the buffer closes.
    pub(crate) data: Notify,
    /// Woken when room frees up or the buffer closes.
    pub(crate) room: Notify,
    /// Woken on every change.
    pub(crate) change: Notify,
}

impl Signals {
    /// Entries left the buffer: a waiting push may find room, and the change is seen.
    pub(crate) fn released(&self) {
        self.room.notify_waiters();
        self.change.notify_waiters();
    }

    /// The buffer closed: every waiter wakes.
    pub(crate) fn closed(&self) {
        self.room.notify_waiters();
        self.data.notify_waiters();
        // A taker registered with notify_one semantics may be between checks: wake it too.
        self.data.notify_one();
        self.change.notify_waiters();
    }
}

/// A buffer in memory.
pub struct MemoryBuffer {
    state: Mutex<State>,
    signals: Signals,
}

impl MemoryBuffer {
    /// A buffer of `capacity` bytes (as [`OutputDocument::bulk_len`] counts them).
    pub fn new(capacity: u64) -> Self {
        Self {
            state: Mutex::new(State {
                stats: BufferStats {
                    capacity,
                    ..BufferStats::default()
                },
                ..State::default()
            }),
            signals: Signals::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters (every update is a few
        // additions), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(state: &mut State, max_bytes: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(front) = state.queue.front() {
            if !out.is_empty() && bytes + front.ticket.bytes > max_bytes {
                break;
            }
            let Some(e) = state.queue.pop_front() else {
                break;
            };
            bytes += e.ticket.bytes;
            out.push(e);
        }
        let n = out.len() as u64;
        let s = &mut state.stats;
        s.queued_bytes -= bytes;
        s.queued_docs -= n;
        s.leased_bytes += bytes;
        s.leased_docs += n;
        out
    }

    /// Tries to admit a batch now: `Ok(true)` admitted, `Ok(false)` no room yet.
    fn try_admit(&self, batch: &mut Vec<OutputDocument>, size: u64) -> Result<bool, PublishError> {
        let mut st = self.lock();
        if st.stats.closed {
            return Err(PublishError::Closed);
        }
        if size > st.stats.capacity {
            return Err(PublishError::QueueFull);
        }
        if st.stats.used_bytes() + size > st.stats.capacity {
            return Ok(false);
        }
        for doc in batch.drain(..) {
            let bytes = doc.bulk_len() as u64;
            let seq = st.next_seq;
            st.next_seq += 1;
            st.queue.push_back(Entry {
                ticket: Ticket { seq, bytes },
                doc,
            });
            st.stats.queued_docs += 1;
        }
        st.stats.queued_bytes += size;
        st.stats.high_water_bytes = st.stats.high_water_bytes.max(st.stats.used_bytes());
        Ok(true)
    }
}

impl Buffer for MemoryBuffer {
    fn push(&self, mut batch: Vec<OutputDocument>, wait: Duration) -> PublishFuture<'_> {
        Box::pin(async move {
            let size: u64 = batch.iter().map(|d| d.bulk_len() as u64).sum();
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                // Register before checking, so an ack between the check and the wait wakes us.
                let room = self.signals.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                if self.try_admit(&mut batch, size)? {
                    self.signals.data.notify_one();
                    self.signals.change.notify_waiters();
                    return Ok(());
                }
                if tokio::time::timeout_at(deadline, room).await.is_err() {
                    return Err(PublishError::QueueFull);
                }
            }
        })
    }

    fn pop(&self, max_bytes: u64) -> PopFuture<'_> {
        Box::pin(async move {
            loop {
                let data = self.signals.data.notified();
                tokio::pin!(data);
                data.as_mut().enable();
                {
                    let mut st = self.lock();
                    if !st.queue.is_empty() {
                        let out = Self::take(&mut st, max_bytes);
                        let more = !st.queue.is_empty();
                        drop(st);
                        if more {
                            // Another taker may be waiting.
                            self.signals.data.notify_one();
                        }
                        return Some(out);
                    }
                    if st.stats.closed {
                        return None;
                    }
                }
                data.await;
            }
        })
    }

    fn try_pop(&self, max_bytes: u64) -> Vec<Entry> {
        Self::take(&mut self.lock(), max_bytes)
    }

    fn ack(&self, tickets: &[Ticket]) {
        if tickets.is_empty() {
            return;
        }
        {
            let mut st = self.lock();
            let bytes: u64 = tickets.iter().map(|t| t.bytes).sum();
            st.stats.leased_bytes = st.stats.leased_bytes.saturating_sub(bytes);
            st.stats.leased_docs = st.stats.leased_docs.saturating_sub(tickets.len() as u64);
        }
        self.signals.released();
    }

    fn close(&self) {
        self.lock().stats.closed = true;
        self.signals.closed();
    }

    fn stats(&self) -> BufferStats {
        self.lock().stats
    }

    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.signals.change.notified())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: usize) -> OutputDocument {
        OutputDocument {
            data_stream: "logs-apm.error-default".into(),
            body: vec![b'x'; n],
        }
    }

    #[tokio::test]
    async fn bounded_by_everything_not_yet_acknowledged() {
        let d = doc(72); // 72 + 22 + 28 = 122 bytes
        let size = d.bulk_len() as u64;
        let b = MemoryBuffer::new(size * 3);
        b.push(vec![d.clone(), d.clone()], Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            b.push(vec![d.clone(), d.clone()], Duration::from_millis(10))
                .await,
            Err(PublishError::QueueFull),
            "a batch is admitted whole or not at all"
        );
        let taken = b.pop(u64::MAX).await.unwrap();
        assert_eq!(taken.len(), 2);
        assert_eq!(b.stats().leased_bytes, 2 * size);
        // Taken but not acknowledged still counts.
        assert_eq!(
            b.push(vec![d.clone(), d.clone()], Duration::from_millis(10))
                .await,
            Err(PublishError::QueueFull)
        );
        // An ack makes room for a waiting push.
        let waiting = b.push(vec![d.clone(), d.clone()], Duration::from_secs(30));
        let tickets: Vec<Ticket> = taken.iter().map(|e| e.ticket).collect();
        let (r, _) = tokio::join!(waiting, async { b.ack(&tickets) });
        r.unwrap();
        let s = b.stats();
        assert_eq!((s.queued_docs, s.leased_docs), (2, 0));
        assert!(s.high_water_bytes <= s.capacity);
        assert_eq!(
            b.push(vec![doc(10_000)], Duration::ZERO).await,
            Err(PublishError::QueueFull),
            "larger than the whole buffer"
        );
    }

    #[tokio::test]
    async fn pop_respects_max_bytes_and_ends_after_close() {
        let b = MemoryBuffer::new(1 << 20);
        b.push((0..5).map(|_| doc(100)).collect(), Duration::ZERO)
            .await
            .unwrap();
        let one = doc(100).bulk_len() as u64;
        assert_eq!(b.pop(one * 2).await.unwrap().len(), 2);
        assert_eq!(b.pop(1).await.unwrap().len(), 1, "at least one");
        b.close();
        assert_eq!(
            b.push(vec![doc(1)], Duration::ZERO).await,
            Err(PublishError::Closed)
        );
        let rest = b.pop(u64::MAX).await.unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].ticket.seq, 3, "in order of acceptance");
        assert!(b.pop(u64::MAX).await.is_none());
    }
}
