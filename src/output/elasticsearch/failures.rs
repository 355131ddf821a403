//! Documents that will not be indexed: counted by reason, logged at a limited rate (never
//! with the document), and written with their reason to the dead-letter file when the policy
//! names one.
//!
//! A dead-letter line is one JSON object:
//! `{"@timestamp":…,"data_stream":…,"status":…,"error":{"type":…,"reason":…},"attempts":…,"document":{…}}`;
//! `jq -c '{create:{_index:.data_stream}}, .document'` turns a file back into a `_bulk` body.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::output::OutputDocument;
use crate::telemetry::{Counter, Metrics};

/// One log line per reason at most this often; the lines in between are counted.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a document failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailReason {
    /// Item or request status (0 when there was no answer).
    pub status: u16,
    /// Elasticsearch's `error.type`, or the gateway's own label (`network_error`,
    /// `shutdown`, …): the metric label.
    pub error_type: String,
    /// The human reason.
    pub reason: String,
}

/// Where failures go.
pub struct Failures {
    metrics: Arc<Metrics>,
    path: Mutex<Option<PathBuf>>,
    file: tokio::sync::Mutex<Option<tokio::fs::File>>,
    logged: Mutex<HashMap<String, (Option<Instant>, u64)>>,
}

impl Failures {
    /// Records to `path` when there is one.
    pub fn new(metrics: Arc<Metrics>, path: Option<PathBuf>) -> Self {
        Self {
            metrics,
            path: Mutex::new(path),
            file: tokio::sync::Mutex::new(None),
            logged: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self) -> Option<PathBuf> {
        self.path.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether failed documents are written somewhere.
    pub fn has_file(&self) -> bool {
        self.path().is_some()
    }

    /// Writes the next failures to `path`, opening it again (a file moved away by log
    /// rotation is let go; the next failure creates a new one).
    pub async fn reopen(&self, path: Option<PathBuf>) {
        let mut file = self.file.lock().await;
        *file = None;
        *self.path.lock().unwrap_or_else(|e| e.into_inner()) = path;
    }

    /// Records documents that failed for one reason. Returns how many were written to the
    /// dead-letter file.
    pub async fn record<'a>(
        &self,
        docs: impl IntoIterator<Item = (&'a OutputDocument, u32)>,
        why: &FailReason,
    ) -> u64 {
        let docs: Vec<(&OutputDocument, u32)> = docs.into_iter().collect();
        if docs.is_empty() {
            return 0;
        }
        let n = docs.len() as u64;
        self.metrics.add(
            Counter::OutputDocumentsFailedTotal,
            &[("reason", &why.error_type)],
            n,
        );
        self.log(why, n);
        let mut file = self.file.lock().await;
        let Some(path) = self.path() else { return 0 };
        let mut buf = Vec::new();
        let at = crate::telemetry::now_rfc3339();
        for (doc, attempts) in &docs {
            let head = serde_json::json!({
                "@timestamp": at,
                "data_stream": doc.data_stream,
                "status": why.status,
                "error": {"type": why.error_type, "reason": why.reason},
                "attempts": attempts,
            });
            let mut line = serde_json::to_vec(&head).unwrap_or_default();
            // The document is already one line of JSON: splice it in as it is.
            if line.last() == Some(&b'}') {
                line.pop();
                line.extend_from_slice(b",\"document\":");
                line.extend_from_slice(&doc.body);
                line.extend_from_slice(b"}\n");
                buf.extend_from_slice(&line);
            }
        }
        if file.is_none() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = tokio::fs::create_dir_all(dir).await;
            }
            match tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await
            {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, documents = n, "cannot open the dead-letter file; failed documents are lost");
                    return 0;
                }
            }
        }
        let Some(f) = file.as_mut() else { return 0 };
        let written = async {
            f.write_all(&buf).await?;
            f.flush().await
        }
        .await;
        match written {
            Ok(()) => {
                self.metrics
                    .add(Counter::OutputDocumentsDeadLetteredTotal, &[], n);
                n
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, documents = n, "cannot write the dead-letter file; failed documents are lost");
                *file = None;
                0
            }
        }
    }

    fn log(&self, why: &FailReason, n: u64) {
        let now = Instant::now();
        let suppressed = {
            let Ok(mut logged) = self.logged.lock() else {
                return;
            };
            let entry = logged.entry(why.error_type.clone()).or_insert((None, 0));
            if entry.0.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
                entry.1 += n;
                return;
            }
            let s = entry.1;
            *entry = (Some(now), 0);
            s
        };
        let dead_letter = self
            .path()
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.display().to_string());
        tracing::error!(
            status = why.status,
            error.type = %why.error_type,
            error.reason = %why.reason,
            documents = n,
            suppressed_since_last = suppressed,
            dead_letter = %dead_letter,
            "documents not indexed"
        );
    }
}
