//! Entries read from `.apm-agent-configuration`, as APM Server's Elasticsearch fetcher reads
//! them: every `cache_expiration`, a scrolled search of the whole index (100 entries a page,
//! the scroll kept for the cache's lifetime, then cleared), each read within 5 seconds, through
//! the Elasticsearch output's connection and credentials.
//!
//! Until a read succeeds the cache is cold and agents are answered 503 (403 when Elasticsearch
//! refused the output's credentials), as APM Server answers. Once warm, a failed read keeps the
//! last good entries: Elasticsearch slow or down does not change what agents get. Each change
//! between failing and succeeding is logged once; every read is counted.
//!
//! Unlike APM Server, a read refused with 401 or 403 does not stop the reads for good: they go
//! on at each expiry, so that granting the missing privilege in Elasticsearch is enough. A
//! missing index (Kibana has not stored any entry yet) is an empty cache, not a failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value;
use tokio::sync::watch;

use crate::elasticsearch::transport::Transport;
use crate::policy::compiled::AgentConfigEntry;
use crate::telemetry::{Counter, Gauge, Metrics};

/// The index Kibana's APM app keeps central configuration in.
pub const INDEX: &str = ".apm-agent-configuration";
/// Entries per page of the scrolled search (APM Server's `searchSize`).
const PAGE_SIZE: usize = 100;
/// A whole read, all pages included, must end within this (APM Server's `refreshCacheTimeout`).
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many pages are read (a million entries): a scroll that never ends is a fault.
const MAX_PAGES: usize = 10_000;

/// What the cache can answer with.
#[derive(Debug, Clone)]
pub enum Cached {
    /// The entries of the last successful read.
    Ready(Arc<Vec<AgentConfigEntry>>),
    /// No read has succeeded yet.
    NotReady,
    /// No read has succeeded yet, and Elasticsearch refused the output's credentials (401 or
    /// 403): the configuration cannot be read with them.
    Unauthorized,
}

/// Why a read failed. Never carries a credential.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// Elasticsearch refused the credentials (401) or their privileges (403).
    #[error("Elasticsearch refused to read {INDEX} with the output's credentials (status {0})")]
    Unauthorized(u16),
    /// Any other failure: no answer, an error status, an unreadable answer, too slow.
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Default)]
struct State {
    entries: Option<Arc<Vec<AgentConfigEntry>>>,
    unauthorized: bool,
    /// Whether the last read failed (logged once per change).
    failing: bool,
}

/// The cache of `.apm-agent-configuration`.
pub struct EsAgentConfig {
    state: RwLock<State>,
    metrics: Arc<Metrics>,
    entries_gauge: Arc<AtomicI64>,
}

impl EsAgentConfig {
    /// A cold cache.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let entries_gauge = metrics.gauge(Gauge::AgentConfigEntries);
        entries_gauge.store(-1, Ordering::Relaxed);
        Self {
            state: RwLock::new(State::default()),
            metrics,
            entries_gauge,
        }
    }

    /// What agents are answered from now.
    pub fn cached(&self) -> Cached {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        match (&state.entries, state.unauthorized) {
            (Some(entries), _) => Cached::Ready(entries.clone()),
            (None, true) => Cached::Unauthorized,
            (None, false) => Cached::NotReady,
        }
    }

    /// Reads the index once and, if that succeeds, replaces the cache; returns the number of
    /// entries read.
    pub async fn refresh(
        &self,
        transport: &Transport,
        expiration: Duration,
    ) -> Result<usize, ReadError> {
        let read = tokio::time::timeout(READ_TIMEOUT, read_all(transport, expiration))
            .await
            .unwrap_or_else(|_| {
                Err(ReadError::Failed(format!(
                    "reading {INDEX} took longer than {}s",
                    READ_TIMEOUT.as_secs()
                )))
            });
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match read {
            Ok(entries) => {
                let n = entries.len();
                self.metrics.add(
                    Counter::AgentConfigRefreshesTotal,
                    &[("result", "success")],
                    1,
                );
                self.entries_gauge
                    .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
                if state.failing || state.entries.is_none() {
                    tracing::info!(entries = n, "central agent configuration read from {INDEX}");
                }
                state.entries = Some(Arc::new(entries));
                state.unauthorized = false;
                state.failing = false;
                Ok(n)
            }
            Err(e) => {
                let result = match e {
                    ReadError::Unauthorized(_) => "unauthorized",
                    ReadError::Failed(_) => "failure",
                };
                self.metrics
                    .add(Counter::AgentConfigRefreshesTotal, &[("result", result)], 1);
                if !state.failing {
                    match &state.entries {
                        Some(entries) => tracing::warn!(
                            error = %e,
                            entries = entries.len(),
                            "cannot read central agent configuration; serving the last entries read until a read succeeds"
                        ),
                        None => tracing::error!(
                            error = %e,
                            "cannot read central agent configuration; agents are answered 503 until a read succeeds"
                        ),
                    }
                }
                state.failing = true;
                state.unauthorized = matches!(e, ReadError::Unauthorized(_));
                Err(e)
            }
        }
    }

    /// Reads the index at start and then every `cache_expiration` of the policy in force
    /// (`expiration` gives it; `None` when the policy no longer reads from Elasticsearch),
    /// and again at once after each reload, until `stop` turns true.
    pub async fn run<T: Send + Sync>(
        self: Arc<Self>,
        transport: Arc<Transport>,
        mut policy: watch::Receiver<T>,
        expiration: impl Fn(&T) -> Option<Duration> + Send,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            if *stop.borrow() {
                return;
            }
            let current = expiration(&policy.borrow_and_update());
            let wait = match current {
                Some(e) => {
                    // Failures are logged and counted by `refresh`.
                    let _ = self.refresh(&transport, e).await;
                    e
                }
                // Not reading: wait for a reload that asks for it.
                None => Duration::from_secs(24 * 3600),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = policy.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    }
}

/// Reads every entry with a scrolled search, then clears the scroll.
async fn read_all(
    transport: &Transport,
    expiration: Duration,
) -> Result<Vec<AgentConfigEntry>, ReadError> {
    let keep = format!("{}ms", expiration.as_millis().max(1));
    let first = format!("/{INDEX}/_search?scroll={keep}&size={PAGE_SIZE}");
    let Some(mut page) = post(transport, &first).await? else {
        // Kibana creates the index with the first entry.
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    let mut scroll_id = String::new();
    for _ in 0..MAX_PAGES {
        if let Some(id) = page["_scroll_id"].as_str() {
            scroll_id = id.to_owned();
        }
        let hits = page["hits"]["hits"].as_array().map_or(&[][..], |h| &h[..]);
        if hits.is_empty() {
            clear_scroll(transport, &scroll_id).await;
            return Ok(entries);
        }
        entries.extend(hits.iter().map(|h| entry(&h["_source"])));
        if scroll_id.is_empty() {
            return Err(ReadError::Failed(format!(
                "the search of {INDEX} answered without a scroll id"
            )));
        }
        let next = format!(
            "/_search/scroll?scroll={keep}&scroll_id={}",
            percent_encode(&scroll_id)
        );
        page = match post(transport, &next).await {
            Ok(Some(p)) => p,
            Ok(None) => Value::Null,
            Err(e) => {
                clear_scroll(transport, &scroll_id).await;
                return Err(e);
            }
        };
    }
    clear_scroll(transport, &scroll_id).await;
    Err(ReadError::Failed(format!(
        "{INDEX} did not end after {MAX_PAGES} pages"
    )))
}

/// Sends a search; `None` when the index does not exist.
async fn post(transport: &Transport, path: &str) -> Result<Option<Value>, ReadError> {
    let r = transport
        .send(Method::POST, path, Bytes::new(), &[], None)
        .await
        .map_err(|e| ReadError::Failed(e.to_string()))?;
    match r.status {
        200..=299 => serde_json::from_slice(&r.body)
            .map(Some)
            .map_err(|e| ReadError::Failed(format!("unreadable answer from {}: {e}", r.host))),
        401 | 403 => Err(ReadError::Unauthorized(r.status)),
        404 if error_type(&r.body).as_deref() == Some(INDEX_MISSING_EXCEPTION) => Ok(None),
        status => Err(ReadError::Failed(format!(
            "{} answered the search of {INDEX} with status {status}{}",
            r.host,
            error_type(&r.body)
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        ))),
    }
}

/// Elasticsearch's error type for a missing index.
const INDEX_MISSING_EXCEPTION: &str = "index_not_found_exception";

fn error_type(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["error"]["type"].as_str().map(str::to_owned)
}

async fn clear_scroll(transport: &Transport, scroll_id: &str) {
    if scroll_id.is_empty() {
        return;
    }
    let path = format!("/_search/scroll/{}", percent_encode(scroll_id));
    match transport
        .send(Method::DELETE, &path, Bytes::new(), &[], None)
        .await
    {
        Ok(r) if r.status >= 300 => {
            tracing::debug!(status = r.status, "clearing the scroll of {INDEX} failed");
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "clearing the scroll of {INDEX} failed"),
    }
}

/// One entry of the index as Kibana writes it (`service.name`, `service.environment`,
/// `agent_name`, `etag`, `settings`); settings become strings, as APM Server makes them.
fn entry(source: &Value) -> AgentConfigEntry {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let non_empty = |v: &Value| Some(text(v)).filter(|s| !s.is_empty());
    let settings: BTreeMap<String, String> = source["settings"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default();
    AgentConfigEntry {
        service: text(&source["service"]["name"]),
        environment: non_empty(&source["service"]["environment"]),
        agent_name: non_empty(&source["agent_name"]),
        settings,
        etag: text(&source["etag"]),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_as_kibana_writes_them() {
        let e = entry(&serde_json::json!({
            "service": {"name": "opbeans", "environment": ""},
            "agent_name": "python",
            "etag": "abc",
            "settings": {"transaction_sample_rate": "0.5", "recording": true, "n": 3},
            "applied_by_agent": false,
            "@timestamp": 1
        }));
        assert_eq!(e.service, "opbeans");
        assert_eq!(e.environment, None);
        assert_eq!(e.agent_name.as_deref(), Some("python"));
        assert_eq!(e.etag, "abc");
        assert_eq!(e.settings["transaction_sample_rate"], "0.5");
        assert_eq!(e.settings["recording"], "true");
        assert_eq!(e.settings["n"], "3");
        let all = entry(&serde_json::json!({"service": {}, "etag": "x", "settings": {}}));
        assert_eq!((all.service.as_str(), all.environment), ("", None));
    }

    #[test]
    fn scroll_ids_are_encoded() {
        assert_eq!(percent_encode("DnF1+ZX/J5=="), "DnF1%2BZX%2FJ5%3D%3D");
    }
}
