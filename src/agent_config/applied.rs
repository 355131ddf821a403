//! Applied configurations: the entity tags agents presented back, written as APM Server
//! writes them (one `agent_config` document per tag and reporting period, every 30 seconds)
//! so that Kibana's APM app shows the configuration as applied.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::model::{self, ModelConfig};
use crate::output::{Output, OutputDocument};

/// APM Server's reporting period.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(30);

/// The tags applied since the last report.
#[derive(Debug, Default)]
pub struct AppliedConfigs {
    etags: Mutex<BTreeSet<String>>,
}

impl AppliedConfigs {
    /// Notes that an agent holds the configuration tagged `etag` (the tag of "no entry",
    /// `-`, is never reported).
    pub fn record(&self, etag: &str) {
        if etag == crate::agent_config::NO_ENTRY_ETAG {
            return;
        }
        let mut etags = self.etags.lock().unwrap_or_else(|e| e.into_inner());
        if !etags.contains(etag) {
            etags.insert(etag.to_owned());
        }
        drop(etags);
    }

    /// The tags noted since the last call.
    fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.etags.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes the tags noted every `interval` until `stop` turns true, then once more.
    pub async fn run(
        self: Arc<Self>,
        output: Arc<dyn Output>,
        config: impl Fn() -> ModelConfig + Send,
        observer_hostname: &str,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            let stopping = tokio::select! {
                _ = ticks.tick() => false,
                _ = stop.changed() => true,
            };
            self.report(&output, &config(), observer_hostname).await;
            if stopping || *stop.borrow() {
                return;
            }
        }
    }

    async fn report(&self, output: &Arc<dyn Output>, config: &ModelConfig, host: &str) {
        let etags = self.take();
        if etags.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let docs: Vec<OutputDocument> = etags
            .iter()
            .map(|etag| {
                let d = model::agent_config::applied(etag, now, config, host);
                OutputDocument {
                    data_stream: d.data_stream,
                    body: d.body,
                }
            })
            .collect();
        if let Err(e) = output.publish(docs).await {
            tracing::error!(
                documents = etags.len(),
                error = %e,
                "applied agent configurations could not be handed to the output"
            );
        }
    }
}
