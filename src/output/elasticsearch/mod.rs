//! The Elasticsearch output: a bulk indexer that sends what intake accepted the way APM Server
//! does, and never loses a document silently.
//!
//! Data path: `publish` puts a batch into the [`Buffer`] (bounded in bytes; waits
//! `queue_timeout` for room, then refuses, which intake answers with 503). One batcher task
//! takes documents from the buffer into a pending bulk request and sends it when it reaches
//! `flush_bytes` (uncompressed) or `flush_interval` after its first document, with at most
//! `max_requests` requests in flight. A document leaves the buffer's accounting only when
//! Elasticsearch confirmed it or it failed for good and was recorded (metrics, rate-limited
//! log, dead-letter file): memory for documents never exceeds `buffer_bytes`.
//!
//! Retries: a request that cannot connect is retried without limit (nothing was sent; the
//! buffer fills and intake pushes back), with the host skipped for a backoff period; a request
//! that may have been sent (connection lost, no answer) or was answered 429/502/503/504 is
//! retried up to `max_retries` times, then its documents fail. Items answered 429 are re-queued
//! individually up to `max_retries` times; other item failures are final. Backoff is
//! exponential from `backoff_init` to `backoff_max` with jitter. Duplicates are possible only
//! where Elasticsearch may have acted on a request it did not confirm: a retry after a lost
//! connection or a missing answer, and after a 502/504 from a proxy (documents carry no `_id`).
//!
//! Startup: `GET /` until Elasticsearch answers (with `X-Elastic-Product: Elasticsearch`);
//! until then nothing is sent and [`EsOutput::ready`] is false (`publish_ready` of the
//! gateway's `GET /`).
//!
//! Shutdown (`close`): refuse new batches, send everything pending now, wait for the answers
//! within the drain timeout; what is still not indexed then is written to the dead-letter file
//! with reason `shutdown` (or counted and returned when there is none).

pub mod bulk;
pub mod failures;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http::header::{HeaderName, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::buffer::{Buffer, BufferStats, Entry, MemoryBuffer, Ticket};
use super::{Output, OutputDocument, PublishFuture};
use crate::elasticsearch::backoff;
use crate::elasticsearch::transport::{Credentials, SendError, Transport, TransportError};
use crate::policy::compiled::EsOutputSettings;
use crate::telemetry::{Counter, Gauge, Metrics};
use bulk::ItemOutcome;
use failures::{FailReason, Failures};

/// Bodies up to this size are compressed on the calling task.
const INLINE_COMPRESSION_BYTES: u64 = 64 * 1024;

/// After the drain timeout, how long documents still held may take to be dead-lettered.
const DEAD_LETTER_GRACE: Duration = Duration::from_secs(10);

/// A document on its way, with the 429 retries it has had.
struct Item {
    entry: Entry,
    attempts: u32,
}

struct Gauges {
    buffer_bytes: Arc<AtomicI64>,
    buffer_docs: Arc<AtomicI64>,
    in_flight: Arc<AtomicI64>,
    ready: Arc<AtomicI64>,
}

struct Inner {
    /// The settings of the moment (a reload replaces them, see [`EsOutput::apply`]).
    settings: std::sync::RwLock<Arc<EsOutputSettings>>,
    transport: Arc<Transport>,
    buffer: Arc<dyn Buffer>,
    metrics: Arc<Metrics>,
    failures: Failures,
    permits: Arc<Semaphore>,
    retry_tx: mpsc::UnboundedSender<Vec<Item>>,
    /// Hard stop: the drain timeout passed; everything still held is dead-lettered.
    cancel: CancellationToken,
    gauges: Gauges,
    /// Documents that failed at shutdown and could not be dead-lettered.
    lost: AtomicU64,
}

/// A reload of the Elasticsearch output, built and not yet in use.
pub struct PreparedEsOutput {
    transport: crate::elasticsearch::transport::PreparedTransport,
    settings: Arc<EsOutputSettings>,
    at_next_start: Vec<&'static str>,
}

/// The Elasticsearch output.
pub struct EsOutput {
    inner: Arc<Inner>,
    /// Graceful stop: send what is pending now.
    closing: CancellationToken,
    batcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    ready: watch::Receiver<bool>,
    drain_timeout: Duration,
}

impl EsOutput {
    /// Starts the output with an in-memory buffer of `buffer_bytes`. `drain_timeout` bounds
    /// `close`. Must be called within a Tokio runtime.
    pub fn start(
        settings: &EsOutputSettings,
        metrics: Arc<Metrics>,
        drain_timeout: Duration,
    ) -> Result<Self, TransportError> {
        let buffer = Arc::new(MemoryBuffer::new(settings.buffer_bytes));
        Self::start_with_buffer(settings, buffer, metrics, drain_timeout)
    }

    /// Starts the output over a buffer of the caller's choosing.
    pub fn start_with_buffer(
        settings: &EsOutputSettings,
        buffer: Arc<dyn Buffer>,
        metrics: Arc<Metrics>,
        drain_timeout: Duration,
    ) -> Result<Self, TransportError> {
        let max_requests = usize::try_from(settings.max_requests)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        let transport = Arc::new(Transport::new(settings, Credentials::Own, max_requests)?);
        let (retry_tx, retry_rx) = mpsc::unbounded_channel();
        let gauges = Gauges {
            buffer_bytes: metrics.gauge(Gauge::BufferBytes),
            buffer_docs: metrics.gauge(Gauge::BufferDocuments),
            in_flight: metrics.gauge(Gauge::RequestsInFlight),
            ready: metrics.gauge(Gauge::PublishReady),
        };
        metrics
            .gauge(Gauge::BufferCapacityBytes)
            .store(buffer.stats().capacity as i64, Ordering::Relaxed);
        let inner = Arc::new(Inner {
            failures: Failures::new(metrics.clone(), settings.dead_letter_path.clone()),
            settings: std::sync::RwLock::new(Arc::new(settings.clone())),
            transport,
            buffer,
            metrics,
            permits: Arc::new(Semaphore::new(max_requests)),
            retry_tx,
            cancel: CancellationToken::new(),
            gauges,
            lost: AtomicU64::new(0),
        });
        let (ready_tx, ready) = watch::channel(false);
        let closing = CancellationToken::new();
        tokio::spawn(check_cluster(inner.clone(), ready_tx));
        let batcher = tokio::spawn(run_batcher(
            inner.clone(),
            retry_rx,
            closing.clone(),
            ready.clone(),
        ));
        Ok(Self {
            inner,
            closing,
            batcher: Mutex::new(Some(batcher)),
            ready,
            drain_timeout,
        })
    }

    /// The output's client (its hosts, credentials and TLS), for reading data from the same
    /// cluster.
    pub fn transport(&self) -> Arc<Transport> {
        self.inner.transport.clone()
    }

    /// Builds what a reload to `next` puts in use (its hosts, credentials, TLS and headers),
    /// without changing anything; says which of `next`'s changes apply only at the next start
    /// (the buffer's size and the number of requests in flight).
    pub fn prepare(&self, next: &EsOutputSettings) -> Result<PreparedEsOutput, TransportError> {
        let current = self.inner.settings();
        let mut at_next_start = Vec::new();
        if current.buffer_bytes != next.buffer_bytes {
            at_next_start.push("buffer");
        }
        if current.max_requests != next.max_requests {
            at_next_start.push("max_requests");
        }
        Ok(PreparedEsOutput {
            transport: self.inner.transport.prepare(next)?,
            settings: Arc::new(next.clone()),
            at_next_start,
        })
    }

    /// Puts a prepared reload in use: requests sent from now on go to its hosts with its
    /// credentials, bulk requests are cut and retried by its settings, and failed documents
    /// go to its dead-letter file (opened again, so that a rotated file is followed). What the
    /// output holds is kept and sent there.
    pub async fn apply(&self, next: PreparedEsOutput) -> Vec<&'static str> {
        self.inner.transport.replace(next.transport);
        self.inner
            .failures
            .reopen(next.settings.dead_letter_path.clone())
            .await;
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner()) = next.settings;
        next.at_next_start
    }

    /// Opens the dead-letter file again (after it was moved by log rotation).
    pub async fn reopen_dead_letter(&self) {
        let path = self.inner.settings().dead_letter_path.clone();
        self.inner.failures.reopen(path).await;
    }

    /// Becomes true once Elasticsearch answered the startup check.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    /// The buffer's accounting.
    pub fn buffer_stats(&self) -> BufferStats {
        self.inner.buffer.stats()
    }
}

impl Inner {
    fn settings(&self) -> Arc<EsOutputSettings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update_gauges(&self) {
        let s = self.buffer.stats();
        self.gauges
            .buffer_bytes
            .store(s.used_bytes() as i64, Ordering::Relaxed);
        self.gauges
            .buffer_docs
            .store((s.queued_docs + s.leased_docs) as i64, Ordering::Relaxed);
    }

    fn ack(&self, tickets: &[Ticket]) {
        self.buffer.ack(tickets);
        self.update_gauges();
    }

    /// Records documents that failed for good, then releases them.
    async fn fail(&self, items: Vec<Item>, why: &FailReason) {
        if items.is_empty() {
            return;
        }
        let written = self
            .failures
            .record(items.iter().map(|i| (&i.entry.doc, i.attempts + 1)), why)
            .await;
        if why.error_type == "shutdown" {
            self.lost
                .fetch_add(items.len() as u64 - written, Ordering::Relaxed);
        }
        let tickets: Vec<Ticket> = items.iter().map(|i| i.entry.ticket).collect();
        self.ack(&tickets);
    }

    async fn fail_shutdown(&self, items: Vec<Item>) {
        if self.buffer.durable() {
            // Left unacknowledged: the spool holds them for the next start.
            if !items.is_empty() {
                tracing::info!(
                    documents = items.len(),
                    "not indexed by shutdown: they stay in the spool and are sent at the next start"
                );
            }
            return;
        }
        let why = FailReason {
            status: 0,
            error_type: "shutdown".into(),
            reason: "not indexed within the shutdown timeout".into(),
        };
        self.fail(items, &why).await;
    }
}

impl Output for EsOutput {
    fn publish(&self, batch: Vec<OutputDocument>) -> PublishFuture<'_> {
        Box::pin(async move {
            let r = self
                .inner
                .buffer
                .push(batch, self.inner.settings().queue_timeout)
                .await;
            self.inner.update_gauges();
            r
        })
    }

    fn settle(&self) -> PublishFuture<'_> {
        self.inner.buffer.settle()
    }

    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + '_>> {
        Box::pin(async move {
            let batcher = self.batcher.lock().ok().and_then(|mut b| b.take());
            let Some(mut batcher) = batcher else { return 0 };
            let inner = &self.inner;
            inner.buffer.close();
            self.closing.cancel();
            let start = Instant::now();
            let drained = tokio::time::timeout(self.drain_timeout, &mut batcher).await;
            if drained.is_err() {
                let s = inner.buffer.stats();
                tracing::warn!(
                    documents = s.queued_docs + s.leased_docs,
                    timeout_s = self.drain_timeout.as_secs_f64(),
                    dead_letter = inner.failures.has_file(),
                    "Elasticsearch did not take every document within the shutdown timeout; recording the rest as failed"
                );
                inner.cancel.cancel();
                let _ = tokio::time::timeout(DEAD_LETTER_GRACE, &mut batcher).await;
                // Request tasks and delayed retries dead-letter their documents on cancel
                // (with a spool they leave them there instead: nothing to wait for).
                let _ = tokio::time::timeout(DEAD_LETTER_GRACE, async {
                    if inner.buffer.durable() {
                        return;
                    }
                    loop {
                        let changed = inner.buffer.changed();
                        if inner.buffer.stats().used_bytes() == 0 {
                            return;
                        }
                        changed.await;
                    }
                })
                .await;
            }
            inner.cancel.cancel();
            let s = inner.buffer.stats();
            // What a spool still holds is not lost: it is sent at the next start.
            let unrecorded = if inner.buffer.durable() {
                0
            } else {
                s.queued_docs + s.leased_docs
            };
            let lost = inner.lost.load(Ordering::Relaxed) + unrecorded;
            tracing::info!(
                seconds = start.elapsed().as_secs_f64(),
                lost,
                "Elasticsearch output closed"
            );
            lost
        })
    }
}

/// `GET /` until Elasticsearch answers; then the output is ready.
async fn check_cluster(inner: Arc<Inner>, ready: watch::Sender<bool>) {
    let mut attempt: u32 = 0;
    loop {
        let r = tokio::select! {
            r = inner.transport.send(Method::GET, "/", Bytes::new(), &[], None) => r,
            _ = inner.cancel.cancelled() => return,
        };
        attempt += 1;
        let noisy = attempt == 1 || attempt % 10 == 0;
        match r {
            Ok(resp) if (200..300).contains(&resp.status) => {
                let product = resp
                    .headers
                    .get("x-elastic-product")
                    .and_then(|v| v.to_str().ok());
                if product == Some("Elasticsearch") {
                    let info: serde_json::Value =
                        serde_json::from_slice(&resp.body).unwrap_or_default();
                    tracing::info!(
                        host = %resp.host,
                        cluster = %info["cluster_name"].as_str().unwrap_or(""),
                        version = %info["version"]["number"].as_str().unwrap_or(""),
                        "connected to Elasticsearch"
                    );
                    inner.gauges.ready.store(1, Ordering::Relaxed);
                    let _ = ready.send(true);
                    return;
                }
                if noisy {
                    tracing::error!(host = %resp.host, "the server is not Elasticsearch (no `X-Elastic-Product: Elasticsearch` header); not sending");
                }
            }
            Ok(resp) if matches!(resp.status, 401 | 403) => {
                if noisy {
                    tracing::error!(host = %resp.host, status = resp.status, "Elasticsearch refused the output's credentials");
                }
            }
            Ok(resp) => {
                if noisy {
                    tracing::warn!(host = %resp.host, status = resp.status, "Elasticsearch is not ready");
                }
            }
            Err(e) => {
                if noisy {
                    tracing::warn!(error = %e, attempt, "Elasticsearch is unreachable; holding documents");
                }
            }
        }
        let wait = backoff(
            inner.settings().backoff_init,
            inner.settings().backoff_max,
            attempt,
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.cancel.cancelled() => return,
        }
    }
}

/// Takes documents from the buffer into bulk requests.
async fn run_batcher(
    inner: Arc<Inner>,
    mut retry_rx: mpsc::UnboundedReceiver<Vec<Item>>,
    closing: CancellationToken,
    mut ready: watch::Receiver<bool>,
) {
    // Nothing is sent before the cluster answered; documents wait in the buffer.
    tokio::select! {
        _ = ready.wait_for(|r| *r) => {}
        _ = inner.cancel.cancelled() => {}
    }
    let mut pending: Vec<Item> = Vec::new();
    let mut pending_bytes: u64 = 0;
    let mut since: Option<tokio::time::Instant> = None;
    let mut buffer_done = false;
    loop {
        // Read each turn: a reload may change the flush settings.
        let s = inner.settings();
        let flush_bytes = s.flush_bytes.max(1);
        if inner.cancel.is_cancelled() {
            let mut rest = std::mem::take(&mut pending);
            loop {
                let more = inner.buffer.try_pop(u64::MAX);
                if more.is_empty() {
                    break;
                }
                rest.extend(more.into_iter().map(|entry| Item { entry, attempts: 0 }));
            }
            while let Ok(items) = retry_rx.try_recv() {
                rest.extend(items);
            }
            inner.fail_shutdown(rest).await;
            return;
        }
        let closing_now = closing.is_cancelled();
        let due = since.is_some_and(|t| t.elapsed() >= s.flush_interval);
        if !pending.is_empty() && (pending_bytes >= flush_bytes || closing_now || due) {
            let items = std::mem::take(&mut pending);
            pending_bytes = 0;
            since = None;
            let permit = tokio::select! {
                p = inner.permits.clone().acquire_owned() => p.ok(),
                _ = inner.cancel.cancelled() => None,
            };
            match permit {
                Some(p) => {
                    tokio::spawn(send_bulk(inner.clone(), items, p));
                }
                None => inner.fail_shutdown(items).await,
            }
            continue;
        }
        let changed = inner.buffer.changed();
        if buffer_done && pending.is_empty() && inner.buffer.stats().leased_docs == 0 {
            return;
        }
        let deadline = since.map(|t| t + s.flush_interval);
        tokio::select! {
            biased;
            _ = inner.cancel.cancelled() => {}
            Some(items) = retry_rx.recv() => {
                pending_bytes += items.iter().map(|i| i.entry.ticket.bytes).sum::<u64>();
                pending.extend(items);
                since = since.or_else(|| Some(tokio::time::Instant::now()));
            }
            r = inner.buffer.pop(flush_bytes.saturating_sub(pending_bytes)), if !buffer_done => match r {
                Some(entries) => {
                    pending_bytes += entries.iter().map(|e| e.ticket.bytes).sum::<u64>();
                    pending.extend(entries.into_iter().map(|entry| Item { entry, attempts: 0 }));
                    since = since.or_else(|| Some(tokio::time::Instant::now()));
                    inner.update_gauges();
                }
                None => buffer_done = true,
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {}
            _ = closing.cancelled(), if !closing_now => {}
            _ = changed, if buffer_done => {}
        }
    }
}

/// How a bulk request ended.
enum Sent {
    Answered(Bytes),
    Failed(FailReason),
    Cancelled,
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Sends one bulk request (with its request-level retries) and settles every document in it.
async fn send_bulk(inner: Arc<Inner>, items: Vec<Item>, permit: OwnedSemaphorePermit) {
    inner.gauges.in_flight.fetch_add(1, Ordering::Relaxed);
    let s = inner.settings();
    let level = s.compression_level;
    let plain_len: u64 = items.iter().map(|i| i.entry.ticket.bytes).sum();
    let (items, body) = if level > 0 && plain_len > INLINE_COMPRESSION_BYTES {
        // Compressing a large body is CPU work: keep it off the reactor threads.
        let encoded = tokio::task::spawn_blocking(move || {
            let body = bulk::encode(items.iter().map(|i| &i.entry.doc), level);
            (items, body)
        })
        .await;
        match encoded {
            Ok(r) => r,
            Err(e) => {
                // Only a panic gets here; the documents went with the task.
                tracing::error!(error = %e, "bulk encoding failed");
                inner.gauges.in_flight.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
    } else {
        let body = bulk::encode(items.iter().map(|i| &i.entry.doc), level);
        (items, body)
    };
    let mut headers: Vec<(HeaderName, HeaderValue)> = vec![
        (
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            HeaderName::from_static("x-elastic-event-count"),
            HeaderValue::from(items.len()),
        ),
        (
            HeaderName::from_static("x-elastic-uncompressed-request-length"),
            HeaderValue::from(body.uncompressed_len),
        ),
    ];
    if body.gzip {
        headers.push((
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip"),
        ));
    }
    let path = format!("/_bulk?{}", bulk::BULK_QUERY);
    let n = items.len() as u64;
    let mut attempt: u32 = 0;
    let mut connect_failures: u32 = 0;
    let outcome = loop {
        let started = Instant::now();
        let r = tokio::select! {
            r = inner.transport.send(Method::POST, &path, body.bytes.clone(), &headers, None) => r,
            _ = inner.cancel.cancelled() => break Sent::Cancelled,
        };
        let retry_reason;
        match r {
            Ok(resp) => {
                inner.metrics.observe_flush(started.elapsed().as_secs_f64());
                let status = resp.status.to_string();
                inner
                    .metrics
                    .add(Counter::OutputBulkRequestsTotal, &[("status", &status)], 1);
                if (200..300).contains(&resp.status) {
                    break Sent::Answered(resp.body);
                }
                let (error_type, reason) = bulk::request_error(&resp.body)
                    .unwrap_or_else(|| (format!("http_{}", resp.status), String::new()));
                if !retryable_status(resp.status) || attempt >= s.max_retries as u32 {
                    break Sent::Failed(FailReason {
                        status: resp.status,
                        error_type,
                        reason,
                    });
                }
                attempt += 1;
                retry_reason = format!("http_{}", resp.status);
                tracing::warn!(host = %resp.host, status = resp.status, attempt, documents = n, "bulk request refused; retrying");
            }
            Err(e @ SendError::Connect { .. }) => {
                inner.metrics.add(
                    Counter::OutputBulkRequestsTotal,
                    &[("status", "network_error")],
                    1,
                );
                connect_failures += 1;
                if connect_failures == 1 || connect_failures % 10 == 0 {
                    tracing::warn!(error = %e, documents = n, "cannot reach Elasticsearch; holding the request");
                }
                retry_reason = String::new();
            }
            Err(e @ SendError::Sent { .. }) => {
                inner.metrics.add(
                    Counter::OutputBulkRequestsTotal,
                    &[("status", "network_error")],
                    1,
                );
                if attempt >= s.max_retries as u32 {
                    break Sent::Failed(FailReason {
                        status: 0,
                        error_type: "network_error".into(),
                        reason: e.to_string(),
                    });
                }
                attempt += 1;
                retry_reason = "network_error".into();
                tracing::warn!(error = %e, attempt, documents = n, "bulk request got no answer; retrying (documents may be duplicated)");
            }
        }
        if !retry_reason.is_empty() {
            inner.metrics.add(
                Counter::OutputDocumentsRetriedTotal,
                &[("reason", &retry_reason)],
                n,
            );
        }
        let wait = backoff(s.backoff_init, s.backoff_max, attempt.max(connect_failures));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.cancel.cancelled() => break Sent::Cancelled,
        }
    };
    drop(body);
    inner.gauges.in_flight.fetch_sub(1, Ordering::Relaxed);
    drop(permit);
    match outcome {
        Sent::Cancelled => inner.fail_shutdown(items).await,
        Sent::Failed(why) => inner.fail(items, &why).await,
        Sent::Answered(answer) => match bulk::parse_items(&answer, items.len()) {
            Ok(outcomes) => settle(&inner, items, outcomes).await,
            Err(reason) => {
                let why = FailReason {
                    status: 200,
                    error_type: "unreadable_bulk_answer".into(),
                    reason,
                };
                inner.fail(items, &why).await;
            }
        },
    }
}

/// Applies per-item outcomes: indexed documents are released, 429s re-queued (up to
/// `max_retries`), the rest recorded as failed.
async fn settle(inner: &Arc<Inner>, items: Vec<Item>, outcomes: Vec<ItemOutcome>) {
    let max_retries = inner.settings().max_retries as u32;
    let mut done: Vec<Ticket> = Vec::new();
    let mut retry: Vec<Item> = Vec::new();
    let mut failed: Vec<(FailReason, Vec<Item>)> = Vec::new();
    let (mut indexed, mut failure_store) = (0u64, 0u64);
    for (mut item, outcome) in items.into_iter().zip(outcomes) {
        match outcome {
            ItemOutcome::Indexed { failure_store: fs } => {
                if fs {
                    failure_store += 1;
                } else {
                    indexed += 1;
                }
                done.push(item.entry.ticket);
            }
            ItemOutcome::Failed { status: 429, .. } if item.attempts < max_retries => {
                item.attempts += 1;
                retry.push(item);
            }
            ItemOutcome::Failed {
                status,
                error_type,
                reason,
            } => {
                let why = FailReason {
                    status,
                    error_type,
                    reason,
                };
                match failed.iter_mut().find(|(w, _)| *w == why) {
                    Some((_, v)) => v.push(item),
                    None => failed.push((why, vec![item])),
                }
            }
        }
    }
    inner.metrics.add(
        Counter::OutputDocumentsIndexedTotal,
        &[("failure_store", "false")],
        indexed,
    );
    inner.metrics.add(
        Counter::OutputDocumentsIndexedTotal,
        &[("failure_store", "true")],
        failure_store,
    );
    inner.ack(&done);
    for (why, items) in failed {
        inner.fail(items, &why).await;
    }
    if retry.is_empty() {
        return;
    }
    inner.metrics.add(
        Counter::OutputDocumentsRetriedTotal,
        &[("reason", "too_many_requests")],
        retry.len() as u64,
    );
    let attempts = retry.iter().map(|i| i.attempts).max().unwrap_or(1);
    let wait = backoff(
        inner.settings().backoff_init,
        inner.settings().backoff_max,
        attempts,
    );
    let inner = inner.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                if let Err(mpsc::error::SendError(items)) = inner.retry_tx.send(retry) {
                    inner.fail_shutdown(items).await;
                }
            }
            _ = inner.cancel.cancelled() => inner.fail_shutdown(retry).await,
        }
    });
}
