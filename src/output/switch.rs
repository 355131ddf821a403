//! The output a running gateway publishes to, and what a reload does to it.
//!
//! - Elasticsearch to Elasticsearch: the running output takes the new settings in place (see
//!   [`EsOutput::apply`]): its hosts, credentials, TLS and headers for requests sent from then
//!   on, its flush, retry and backoff settings, its dead-letter file. What it holds (buffer or
//!   spool) is kept and sent to the new hosts, so nothing accepted is lost or sent twice by the
//!   reload. The buffer's size and `max_requests` apply at the next start.
//! - A file output that keeps its path takes the new rotation settings; one whose path changed,
//!   and a change between the file and discard outputs, is replaced: batches published from
//!   then on go to the new output, and the old one writes what it had accepted and closes.
//! - Between the Elasticsearch output and another: at the next start (the data read from the
//!   cluster, API key verification and `publish_ready` are built around the output a gateway
//!   starts with).
//!
//! All or nothing with the rest of the reload: [`OutputSwitch::prepare`] builds what the new
//! settings need (a client, a file) without changing anything.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::discard::DiscardOutput;
use super::elasticsearch::{EsOutput, PreparedEsOutput};
use super::file::FileOutput;
use super::{Output, OutputDocument, PublishFuture};
use crate::policy::compiled::{FileOutputSettings, OutputSettings};

/// Which output is running, with what a reload needs of it.
#[derive(Clone)]
pub enum RunningOutput {
    /// The file output, with the settings it was opened with.
    File(Arc<FileOutput>, FileOutputSettings),
    /// The discard output.
    Discard(Arc<DiscardOutput>),
    /// The Elasticsearch output.
    Elasticsearch(Arc<EsOutput>),
    /// An output given by the program embedding the gateway (tests): reloads leave it.
    Given(Arc<dyn Output>),
}

impl RunningOutput {
    fn output(&self) -> Arc<dyn Output> {
        match self {
            RunningOutput::File(o, _) => o.clone(),
            RunningOutput::Discard(o) => o.clone(),
            RunningOutput::Elasticsearch(o) => o.clone(),
            RunningOutput::Given(o) => o.clone(),
        }
    }
}

/// What a reload will do to the output, built and not yet applied.
pub enum OutputPlan {
    /// Nothing changes.
    Keep,
    /// The Elasticsearch output takes new settings.
    Reconfigure(Arc<EsOutput>, PreparedEsOutput),
    /// The file output takes new rotation settings.
    Rotation(Arc<FileOutput>, FileOutputSettings),
    /// Another output takes over.
    Replace(RunningOutput),
    /// The change applies at the next start.
    AtNextStart,
}

/// What a reload did to the output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputChanges {
    /// The running output took new settings.
    pub reconfigured: bool,
    /// Another output took over (the old one writes what it holds and closes).
    pub replaced: bool,
    /// Settings whose change applies at the next start.
    pub at_next_start: Vec<&'static str>,
}

/// The output a running gateway publishes to.
pub struct OutputSwitch {
    current: RwLock<RunningOutput>,
    /// Outputs replaced by reloads, closing; `close` waits for them.
    retired: Mutex<Vec<tokio::task::JoinHandle<u64>>>,
    queue_timeout: Duration,
}

impl OutputSwitch {
    /// Publishes to `output`; `queue_timeout` is what a file output opened by a reload waits
    /// for room.
    pub fn new(output: RunningOutput, queue_timeout: Duration) -> Self {
        Self {
            current: RwLock::new(output),
            retired: Mutex::new(Vec::new()),
            queue_timeout,
        }
    }

    fn running(&self) -> RunningOutput {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The output batches go to now (an `Arc` clone under the read lock: no settings are
    /// copied on the publishing path).
    fn output(&self) -> Arc<dyn Output> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .output()
    }

    /// Builds what `next` needs, changing nothing; an output that cannot be built refuses the
    /// reload.
    pub async fn prepare(&self, next: &OutputSettings) -> Result<OutputPlan, String> {
        Ok(match (self.running(), next) {
            (RunningOutput::Given(_), _) => OutputPlan::Keep,
            (RunningOutput::Elasticsearch(es), OutputSettings::Elasticsearch(settings)) => {
                let prepared = es.prepare(settings).map_err(|e| e.to_string())?;
                OutputPlan::Reconfigure(es, prepared)
            }
            (RunningOutput::Elasticsearch(_), _) | (_, OutputSettings::Elasticsearch(_)) => {
                OutputPlan::AtNextStart
            }
            (RunningOutput::File(_, current), OutputSettings::File(f)) if current == *f => {
                OutputPlan::Keep
            }
            (RunningOutput::File(out, current), OutputSettings::File(f))
                if current.path == f.path =>
            {
                OutputPlan::Rotation(out, f.clone())
            }
            (_, OutputSettings::File(f)) => {
                let out = FileOutput::open(f, self.queue_timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                OutputPlan::Replace(RunningOutput::File(Arc::new(out), f.clone()))
            }
            (RunningOutput::Discard(_), OutputSettings::Discard) => OutputPlan::Keep,
            (_, OutputSettings::Discard) => {
                OutputPlan::Replace(RunningOutput::Discard(Arc::new(DiscardOutput::new())))
            }
        })
    }

    /// Applies a prepared plan.
    pub async fn apply(&self, plan: OutputPlan) -> OutputChanges {
        let mut changes = OutputChanges::default();
        match plan {
            OutputPlan::Keep => {}
            OutputPlan::Reconfigure(es, prepared) => {
                changes.at_next_start = es.apply(prepared).await;
                changes.reconfigured = true;
            }
            OutputPlan::Rotation(file, settings) => {
                file.set_rotation(&settings).await;
                if let RunningOutput::File(_, s) =
                    &mut *self.current.write().unwrap_or_else(|e| e.into_inner())
                {
                    *s = settings;
                }
                changes.reconfigured = true;
            }
            OutputPlan::Replace(next) => {
                let old = std::mem::replace(
                    &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
                    next,
                )
                .output();
                // Batches published from now on go to the new output; the old one writes what
                // it accepted before and closes.
                let closing = tokio::spawn(async move {
                    let lost = old.close().await;
                    if lost > 0 {
                        tracing::error!(
                            documents = lost,
                            "documents could not be written by the output a reload replaced"
                        );
                    }
                    lost
                });
                self.retired
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(closing);
                changes.replaced = true;
            }
            OutputPlan::AtNextStart => changes.at_next_start.push("output"),
        }
        changes
    }

    /// Opens the output's files again (the file output's file, the dead-letter file) after log
    /// rotation moved them.
    pub async fn reopen_files(&self) {
        match self.running() {
            RunningOutput::File(f, _) => f.reopen().await,
            RunningOutput::Elasticsearch(es) => es.reopen_dead_letter().await,
            RunningOutput::Discard(_) | RunningOutput::Given(_) => {}
        }
    }
}

impl Output for OutputSwitch {
    fn publish(&self, batch: Vec<OutputDocument>) -> PublishFuture<'_> {
        let output = self.output();
        Box::pin(async move { output.publish(batch).await })
    }

    fn settle(&self) -> PublishFuture<'_> {
        let output = self.output();
        Box::pin(async move { output.settle().await })
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = u64> + Send + '_>> {
        Box::pin(async move {
            let mut lost = self.output().close().await;
            let retired =
                std::mem::take(&mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()));
            for closing in retired {
                lost += closing.await.unwrap_or(0);
            }
            lost
        })
    }
}
