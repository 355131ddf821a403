//! The durable spool: a write-ahead log that is the output's [`Buffer`].
//!
//! With `[spool]`, a batch is answered 202 only once its documents are in the log: written and,
//! with `fsync = "batch"`, fsynced (group commit: every batch written while an fsync runs
//! shares the next one). The output reads documents back from the log in order and
//! acknowledges them once indexed or dead-lettered; acknowledged log files are deleted whole.
//! After a crash the gateway replays every record at or after the acknowledgement watermark.
//!
//! On disk, in the spool's directory:
//! - `segment-<first sequence number, 20 digits>.log`: records, each `length (u32 LE) |
//!   CRC-32 of the payload (u32 LE) | payload`, the payload being `sequence number (u64 LE) |
//!   written at, ms since the epoch (u64 LE) | data stream length (u16 LE) | data stream |
//!   document`.
//! - `acknowledged`: the watermark (every record below it is done with) and its CRC-32,
//!   rewritten when it moves.
//!
//! A torn or corrupt record (a crash in the middle of a write, a damaged disk) ends what is
//! read of its file: it is counted and logged, the file is cut there when it is the last one
//! (so that appends continue cleanly), and everything before it is replayed; it never stops
//! the gateway from starting.
//!
//! Duplicates: documents carry no `_id`, and the watermark only covers an unbroken run of
//! acknowledged records. After a crash, the documents replayed that Elasticsearch had already
//! indexed are at most those in flight at the crash (the bulk requests sent and not yet
//! answered) plus those acknowledged out of order above the watermark (answered before an
//! earlier request that was still being retried).

use std::collections::{BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

mod log;

use self::log::{
    READ_CHUNK, RECORD_HEADER, WATERMARK_FILE, decode, encode, read_watermark, scan, segment_path,
    write_watermark,
};
use super::buffer::{Buffer, BufferStats, Entry, PopFuture, Signals, Ticket};
use super::{OutputDocument, PublishError, PublishFuture};
use crate::policy::compiled::SpoolSettings;
use crate::telemetry::{Counter, Gauge, Metrics};

/// Why the spool could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("spool `{path}`: {reason}")]
pub struct SpoolError {
    path: String,
    reason: String,
}

fn err(path: &Path, reason: impl std::fmt::Display) -> SpoolError {
    SpoolError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One log file.
struct Segment {
    first_seq: u64,
    path: PathBuf,
    file: File,
    /// Bytes of whole, valid records.
    len: u64,
}

struct State {
    segments: VecDeque<Segment>,
    next_seq: u64,
    /// Where the next record to take is: a segment's first sequence number and an offset.
    read: (u64, u64),
    /// Every record below it has been acknowledged.
    watermark: u64,
    /// Acknowledged records above the watermark.
    acked: BTreeSet<u64>,
    /// (first sequence number, written at) of each write still above the watermark, for the
    /// age of the oldest unacknowledged record.
    writes: VecDeque<(u64, u64)>,
    stats: BufferStats,
    /// Bytes written since the spool opened, and up to where they are fsynced.
    written: u64,
    /// Whether a write failed since the last success (logged once per change).
    write_failing: bool,
    /// The last documents written, in order, while they are not taken: what a reader that
    /// keeps up takes without reading the files (at most [`TAIL_BYTES`]).
    tail: VecDeque<Tail>,
    tail_bytes: u64,
    /// Files closed by rotation whose last writes the next fsync covers (rotation does not
    /// fsync under the lock: that would stall every request for as long as the disk takes).
    unsynced: Vec<std::fs::File>,
}

/// What acknowledgements leave to do on disk, done outside the lock: files below the
/// watermark to delete, and the watermark to record.
#[derive(Default)]
struct Housekeeping {
    delete: Vec<PathBuf>,
    watermark: Option<u64>,
}

/// A document written and still in memory: where its record is, and its size there.
struct Tail {
    at: (u64, u64),
    size: u64,
    entry: Entry,
}

/// Bytes of recently written documents kept in memory for the reader.
const TAIL_BYTES: u64 = 32 << 20;

struct Sync {
    synced: u64,
    running: bool,
}

struct Gauges {
    bytes: Arc<AtomicI64>,
    records: Arc<AtomicI64>,
    oldest: Arc<AtomicI64>,
}

/// The spool.
pub struct Spool {
    dir: PathBuf,
    settings: SpoolSettings,
    state: Mutex<State>,
    sync: Mutex<Sync>,
    /// The watermark last recorded on disk.
    recorded: Mutex<u64>,
    /// Woken when an fsync ends.
    synced: Notify,
    signals: Signals,
    metrics: Arc<Metrics>,
    gauges: Gauges,
    /// [`TAIL_BYTES`], smaller in tests.
    tail_limit: u64,
}

impl Spool {
    /// Opens (creating) the spool at `settings.path` and reads back what it holds: every
    /// record at or after the watermark will be taken again.
    pub fn open(settings: &SpoolSettings, metrics: Arc<Metrics>) -> Result<Self, SpoolError> {
        let dir = settings.path.clone();
        std::fs::create_dir_all(&dir).map_err(|e| err(&dir, format!("cannot create it: {e}")))?;
        crate::policy::environment::writable_directory(&dir).map_err(|e| err(&dir, e))?;
        let watermark = read_watermark(&dir).unwrap_or_else(|| {
            if dir.join(WATERMARK_FILE).exists() {
                tracing::warn!(spool = %dir.display(), "the spool's watermark is unreadable: replaying every record it holds");
            }
            0
        });
        let mut firsts: Vec<u64> = std::fs::read_dir(&dir)
            .map_err(|e| err(&dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("segment-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut segments = VecDeque::new();
        let mut stats = BufferStats {
            capacity: settings.max_bytes,
            ..BufferStats::default()
        };
        let mut writes = VecDeque::new();
        let mut next_seq = watermark;
        let mut read: Option<(u64, u64)> = None;
        let mut corrupt = 0u64;
        let count = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            let path = segment_path(&dir, first);
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(|e| err(&path, e))?;
            let scanned = scan(&file).map_err(|e| err(&path, e))?;
            if let Some(why) = scanned.corrupt {
                corrupt += 1;
                let size = file.metadata().map_or(0, |m| m.len());
                tracing::warn!(
                    spool = %path.display(),
                    offset = scanned.valid,
                    skipped_bytes = size.saturating_sub(scanned.valid),
                    reason = why,
                    "corrupt or torn spool record: the records before it are replayed, the rest of the file is skipped"
                );
                if i + 1 == count {
                    file.set_len(scanned.valid).map_err(|e| err(&path, e))?;
                }
            }
            let live: Vec<_> = scanned
                .records
                .iter()
                .filter(|(seq, ..)| *seq >= watermark)
                .collect();
            if live.is_empty() && i + 1 < count {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            for &&(seq, written_ms, offset, bytes) in &live {
                if read.is_none() {
                    read = Some((first, offset));
                }
                stats.queued_bytes += bytes;
                stats.queued_docs += 1;
                if writes.back().is_none_or(|(_, ms)| *ms != written_ms) {
                    writes.push_back((seq, written_ms));
                }
            }
            if let Some(&(seq, ..)) = scanned.records.last() {
                next_seq = next_seq.max(seq + 1);
            }
            segments.push_back(Segment {
                first_seq: first,
                path,
                file,
                len: scanned.valid,
            });
        }
        if segments.is_empty() {
            let path = segment_path(&dir, next_seq);
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&path)
                .map_err(|e| err(&path, e))?;
            segments.push_back(Segment {
                first_seq: next_seq,
                path,
                file,
                len: 0,
            });
        }
        let read = read.unwrap_or_else(|| {
            segments
                .back()
                .map_or((next_seq, 0), |s| (s.first_seq, s.len))
        });
        let replayed = stats.queued_docs;
        if replayed > 0 || corrupt > 0 {
            tracing::info!(
                spool = %dir.display(),
                documents = replayed,
                bytes = stats.queued_bytes,
                corrupt,
                "replaying the documents the spool holds"
            );
        }
        metrics.add(Counter::SpoolReplayedTotal, &[], replayed);
        metrics.add(Counter::SpoolCorruptTotal, &[], corrupt);
        let gauges = Gauges {
            bytes: metrics.gauge(Gauge::SpoolBytes),
            records: metrics.gauge(Gauge::SpoolRecords),
            oldest: metrics.gauge(Gauge::SpoolOldestUnacknowledgedTimestamp),
        };
        let spool = Self {
            dir,
            settings: settings.clone(),
            state: Mutex::new(State {
                segments,
                next_seq,
                read,
                watermark,
                acked: BTreeSet::new(),
                writes,
                stats,
                written: 0,
                write_failing: false,
                tail: VecDeque::new(),
                tail_bytes: 0,
                unsynced: Vec::new(),
            }),
            sync: Mutex::new(Sync {
                synced: 0,
                running: false,
            }),
            recorded: Mutex::new(watermark),
            synced: Notify::new(),
            signals: Signals::default(),
            metrics,
            gauges,
            tail_limit: TAIL_BYTES,
        };
        spool.update_gauges(&spool.lock());
        Ok(spool)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_gauges(&self, st: &State) {
        let s = &st.stats;
        self.gauges.bytes.store(
            i64::try_from(s.used_bytes()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        self.gauges.records.store(
            i64::try_from(s.queued_docs + s.leased_docs).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        let oldest = if s.queued_docs + s.leased_docs == 0 {
            0
        } else {
            st.writes.front().map_or(0, |(_, ms)| *ms / 1000)
        };
        self.gauges
            .oldest
            .store(i64::try_from(oldest).unwrap_or(0), Ordering::Relaxed);
    }

    /// Writes a batch now if there is room: `Ok(Some(end))` written (the byte count to fsync
    /// up to), `Ok(None)` no room yet.
    fn try_write(
        &self,
        batch: &mut Vec<OutputDocument>,
        size: u64,
    ) -> Result<Option<u64>, PublishError> {
        let mut st = self.lock();
        if st.stats.closed {
            return Err(PublishError::Closed);
        }
        if size > st.stats.capacity {
            return Err(PublishError::QueueFull);
        }
        if st.stats.used_bytes() + size > st.stats.capacity {
            return Ok(None);
        }
        let written_ms = now_ms();
        let first = st.next_seq;
        let mut buf = Vec::with_capacity(batch.iter().map(|d| d.body.len() + 64).sum());
        let n = batch.len() as u64;
        let mut ends = Vec::with_capacity(batch.len());
        for (i, doc) in batch.iter().enumerate() {
            encode(&mut buf, first + i as u64, written_ms, doc);
            ends.push(buf.len() as u64);
        }
        // A new file when this one is full (never an empty one).
        let rotate = st
            .segments
            .back()
            .is_some_and(|s| s.len > 0 && s.len + buf.len() as u64 > self.settings.segment_bytes);
        if rotate {
            if let Err(e) = self.rotate(&mut st, first) {
                return Err(self.write_failed(&mut st, &e));
            }
        }
        let Some(seg) = st.segments.back_mut() else {
            return Err(PublishError::QueueFull);
        };
        if let Err(e) = seg.file.write_all(&buf) {
            // Take back what part of it was written (a full disk), so appends stay whole.
            let _ = seg.file.set_len(seg.len);
            return Err(self.write_failed(&mut st, &e));
        }
        let (seg_first, start) = (seg.first_seq, seg.len);
        seg.len += buf.len() as u64;
        // The documents stay in memory too, so that a reader keeping up never reads them back.
        let mut offset = start;
        for ((i, doc), end) in batch.drain(..).enumerate().zip(ends) {
            let bytes = doc.bulk_len() as u64;
            let size = start + end - offset;
            st.tail_bytes += bytes;
            st.tail.push_back(Tail {
                at: (seg_first, offset),
                size,
                entry: Entry {
                    ticket: Ticket {
                        seq: first + i as u64,
                        bytes,
                    },
                    doc,
                },
            });
            offset = start + end;
        }
        while st.tail_bytes > self.tail_limit {
            let Some(dropped) = st.tail.pop_front() else {
                break;
            };
            st.tail_bytes -= dropped.entry.ticket.bytes;
        }
        st.next_seq = first + n;
        st.written += buf.len() as u64;
        st.writes.push_back((first, written_ms));
        st.stats.queued_docs += n;
        st.stats.queued_bytes += size;
        st.stats.high_water_bytes = st.stats.high_water_bytes.max(st.stats.used_bytes());
        if st.write_failing {
            st.write_failing = false;
            tracing::info!(spool = %self.dir.display(), "the spool accepts writes again");
        }
        self.update_gauges(&st);
        Ok(Some(st.written))
    }

    fn write_failed(&self, st: &mut State, e: &std::io::Error) -> PublishError {
        if !st.write_failing {
            st.write_failing = true;
            tracing::error!(spool = %self.dir.display(), error = %e, "cannot write to the spool: intake answers 503 until it can");
        }
        self.metrics.add(Counter::SpoolWriteFailuresTotal, &[], 1);
        PublishError::QueueFull
    }

    /// Starts the next file at `first`; the next fsync covers the current one's last writes.
    fn rotate(&self, st: &mut State, first: u64) -> std::io::Result<()> {
        if let Some(current) = st.segments.back() {
            st.unsynced.push(current.file.try_clone()?);
        }
        let path = segment_path(&self.dir, first);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        st.segments.push_back(Segment {
            first_seq: first,
            path,
            file,
            len: 0,
        });
        Ok(())
    }

    /// Returns once everything written up to `end` is fsynced: one fsync at a time, each
    /// covering every write made before it started.
    async fn sync_to(&self, end: u64) -> Result<(), PublishError> {
        loop {
            let done = self.synced.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            let start = {
                let mut s = self.sync.lock().unwrap_or_else(|e| e.into_inner());
                if s.synced >= end {
                    return Ok(());
                }
                if s.running {
                    false
                } else {
                    s.running = true;
                    true
                }
            };
            if !start {
                done.await;
                continue;
            }
            let (target, files) = {
                let mut st = self.lock();
                let mut files = std::mem::take(&mut st.unsynced);
                files.extend(st.segments.back().and_then(|s| s.file.try_clone().ok()));
                (st.written, files)
            };
            // Every file written since the last fsync: those closed by rotation, then the
            // current one.
            let (files, result) = tokio::task::spawn_blocking(move || {
                let r = files.iter().try_for_each(std::fs::File::sync_data);
                (files, r)
            })
            .await
            .unwrap_or_else(|e| (Vec::new(), Err(std::io::Error::other(e))));
            if result.is_err() {
                // Tried again by the next fsync.
                self.lock().unsynced.extend(files);
            }
            {
                let mut s = self.sync.lock().unwrap_or_else(|e| e.into_inner());
                s.running = false;
                if result.is_ok() {
                    s.synced = s.synced.max(target);
                }
            }
            self.synced.notify_waiters();
            self.metrics.add(Counter::SpoolFsyncsTotal, &[], 1);
            if let Err(e) = result {
                tracing::error!(spool = %self.dir.display(), error = %e, "fsync of the spool failed");
                return Err(PublishError::QueueFull);
            }
        }
    }

    /// With `fsync = "interval"`: fsyncs what was written every interval until the spool
    /// closes.
    pub async fn sync_periodically(self: Arc<Self>) {
        let Some(every) = self.settings.fsync_interval else {
            return;
        };
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let (written, closed) = {
                let st = self.lock();
                (st.written, st.stats.closed)
            };
            let _ = self.sync_to(written).await;
            if closed {
                return;
            }
        }
    }

    /// Takes records from the log, up to `max_bytes` (at least one).
    fn take(&self, st: &mut State, max_bytes: u64) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        let mut bytes = 0u64;
        while st.stats.queued_docs > out.len() as u64 {
            // What was read from the files is no longer needed in memory.
            while st.tail.front().is_some_and(|t| t.at < st.read) {
                if let Some(t) = st.tail.pop_front() {
                    st.tail_bytes -= t.entry.ticket.bytes;
                }
            }
            if st.tail.front().is_some_and(|t| t.at == st.read) {
                let b = st.tail.front().map_or(0, |t| t.entry.ticket.bytes);
                if !out.is_empty() && bytes + b > max_bytes {
                    break;
                }
                let Some(t) = st.tail.pop_front() else { break };
                st.tail_bytes -= b;
                st.read = (t.at.0, t.at.1 + t.size);
                bytes += b;
                out.push(t.entry);
                if bytes >= max_bytes {
                    break;
                }
                continue;
            }
            let (first, offset) = st.read;
            let Some(idx) = st.segments.iter().position(|s| s.first_seq == first) else {
                break;
            };
            let seg = &st.segments[idx];
            if offset >= seg.len {
                // The next file, if there is one.
                match st.segments.get(idx + 1) {
                    Some(next) => {
                        st.read = (next.first_seq, 0);
                        continue;
                    }
                    None => break,
                }
            }
            let n = (seg.len - offset).min(READ_CHUNK.max(max_bytes.min(16 << 20)));
            let mut buf = vec![0; n as usize];
            if let Err(e) = seg.file.read_exact_at(&mut buf, offset) {
                tracing::error!(spool = %seg.path.display(), error = %e, "cannot read the spool");
                break;
            }
            let mut at = 0usize;
            let mut progressed = false;
            loop {
                match decode(&buf[at..]) {
                    Ok(Some(r)) => {
                        let b = r.doc.bulk_len() as u64;
                        if !out.is_empty() && bytes + b > max_bytes {
                            break;
                        }
                        at += r.size as usize;
                        progressed = true;
                        bytes += b;
                        out.push(r.into_entry());
                        if bytes >= max_bytes {
                            break;
                        }
                    }
                    Ok(None) => {
                        if at == 0 {
                            // A record longer than the chunk: read it whole.
                            let len =
                                u64::from(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]))
                                    + RECORD_HEADER as u64;
                            let mut whole = vec![0; len as usize];
                            if seg.file.read_exact_at(&mut whole, offset).is_ok() {
                                if let Ok(Some(r)) = decode(&whole) {
                                    at = r.size as usize;
                                    progressed = true;
                                    bytes += r.doc.bulk_len() as u64;
                                    out.push(r.into_entry());
                                }
                            }
                        }
                        break;
                    }
                    Err(why) => {
                        tracing::error!(spool = %seg.path.display(), offset = offset + at as u64, reason = why, "corrupt spool record read back");
                        break;
                    }
                }
            }
            st.read = (first, offset + at as u64);
            if !progressed || bytes >= max_bytes {
                break;
            }
        }
        let n = out.len() as u64;
        let s = &mut st.stats;
        s.queued_bytes = s.queued_bytes.saturating_sub(bytes);
        s.queued_docs = s.queued_docs.saturating_sub(n);
        s.leased_bytes += bytes;
        s.leased_docs += n;
        out
    }

    /// Moves the watermark over acknowledged records; returns the files below it to delete
    /// and the watermark to record, for [`Spool::keep_house`] outside the lock.
    fn advance(&self, st: &mut State) -> Housekeeping {
        let mut work = Housekeeping::default();
        let before = st.watermark;
        while st.acked.remove(&st.watermark) {
            st.watermark += 1;
        }
        if st.watermark == before {
            return work;
        }
        while st.writes.len() > 1 && st.writes[1].0 <= st.watermark {
            st.writes.pop_front();
        }
        if st
            .writes
            .front()
            .is_some_and(|(first, _)| *first < st.watermark)
            && st.stats.queued_docs + st.stats.leased_docs == 0
        {
            st.writes.clear();
        }
        while st.segments.len() > 1 && st.segments[1].first_seq <= st.watermark {
            if let Some(done) = st.segments.pop_front() {
                work.delete.push(done.path);
            }
        }
        work.watermark = Some(st.watermark);
        work
    }

    /// Deletes acknowledged files and records the watermark, outside the lock (deleting a
    /// large file can take milliseconds: requests writing to the spool do not wait for it).
    /// Watermarks are recorded in order: an older one never replaces a newer one.
    fn keep_house(&self, work: Housekeeping) {
        for path in &work.delete {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(spool = %path.display(), error = %e, "cannot delete an acknowledged spool file");
            }
        }
        if let Some(mark) = work.watermark {
            let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
            if mark > *recorded {
                match write_watermark(&self.dir, mark) {
                    Ok(()) => *recorded = mark,
                    Err(e) => {
                        tracing::warn!(spool = %self.dir.display(), error = %e, "cannot record the spool's watermark (a restart would send more documents again)");
                    }
                }
            }
        }
    }
}

impl Buffer for Spool {
    fn push(&self, mut batch: Vec<OutputDocument>, wait: Duration) -> PublishFuture<'_> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let size: u64 = batch.iter().map(|d| d.bulk_len() as u64).sum();
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let room = self.signals.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                if self.try_write(&mut batch, size)?.is_some() {
                    break;
                }
                if tokio::time::timeout_at(deadline, room).await.is_err() {
                    return Err(PublishError::QueueFull);
                }
            }
            // Readable at once (sending before the fsync can only duplicate, never lose);
            // durable once `settle` returns (with `fsync = "batch"`).
            self.signals.data.notify_one();
            self.signals.change.notify_waiters();
            Ok(())
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
                    if st.stats.queued_docs > 0 {
                        let out = self.take(&mut st, max_bytes);
                        let more = st.stats.queued_docs > 0;
                        self.update_gauges(&st);
                        drop(st);
                        if more {
                            self.signals.data.notify_one();
                        }
                        if !out.is_empty() {
                            return Some(out);
                        }
                    } else if st.stats.closed {
                        return None;
                    }
                }
                data.await;
            }
        })
    }

    fn try_pop(&self, max_bytes: u64) -> Vec<Entry> {
        let mut st = self.lock();
        let out = self.take(&mut st, max_bytes);
        self.update_gauges(&st);
        out
    }

    fn ack(&self, tickets: &[Ticket]) {
        if tickets.is_empty() {
            return;
        }
        let work = {
            let mut st = self.lock();
            let bytes: u64 = tickets.iter().map(|t| t.bytes).sum();
            st.stats.leased_bytes = st.stats.leased_bytes.saturating_sub(bytes);
            st.stats.leased_docs = st.stats.leased_docs.saturating_sub(tickets.len() as u64);
            for t in tickets {
                if t.seq >= st.watermark {
                    st.acked.insert(t.seq);
                }
            }
            let work = self.advance(&mut st);
            self.update_gauges(&st);
            work
        };
        self.keep_house(work);
        self.signals.released();
    }

    fn settle(&self) -> PublishFuture<'_> {
        Box::pin(async move {
            if self.settings.fsync_interval.is_some() {
                return Ok(());
            }
            let written = self.lock().written;
            self.sync_to(written).await
        })
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

    fn durable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
