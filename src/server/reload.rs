//! Reload: a new policy applied to a running server, all or nothing. What new requests read
//! (the [`Runtime`]), the listeners ([`super::listeners`]), the output
//! ([`crate::output::switch`]) and the intake's bounds follow the policy; a policy whose
//! listeners cannot bind or whose certificates or output cannot be built changes nothing.

use std::sync::Arc;

use tokio::sync::watch;

use super::error::ServerError;
use super::listeners::{ListenerChanges, ListenerSet};
use super::runtime::{Runtime, Shared};
use crate::output::switch::{OutputChanges, OutputSwitch};
use crate::policy::Policy;
use crate::policy::compiled::{OutputSettings, SpoolSettings};
use crate::telemetry::Counter;

/// Applies policies to a running server.
#[derive(Clone)]
pub struct Reloader {
    runtime: watch::Sender<Arc<Runtime>>,
    listeners: Arc<ListenerSet>,
    output: Arc<OutputSwitch>,
    shared: Arc<Shared>,
    /// The spool the server started with (a spool is opened once).
    spool: Option<SpoolSettings>,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Among the listeners.
    pub listeners: ListenerChanges,
    /// In the output.
    pub output: OutputChanges,
}

impl Reloader {
    pub(super) fn new(
        runtime: watch::Sender<Arc<Runtime>>,
        listeners: Arc<ListenerSet>,
        output: Arc<OutputSwitch>,
        shared: Arc<Shared>,
        spool: Option<SpoolSettings>,
    ) -> Self {
        Self {
            runtime,
            listeners,
            output,
            shared,
            spool,
        }
    }

    /// Makes `policy` the one new requests read, carrying over what [`Runtime::next`] keeps,
    /// and applies its listeners (added, moved and removed ones, every listener's certificate
    /// read again) and its output (see [`crate::output::switch`]). All or nothing: when an
    /// address cannot be bound, a certificate loaded or the output built, nothing changes and
    /// the reason is returned.
    pub async fn reload(&self, policy: Policy) -> Result<Reloaded, ServerError> {
        let result = self.apply(policy).await;
        let label = if result.is_ok() { "applied" } else { "refused" };
        self.shared
            .metrics
            .add(Counter::ReloadsTotal, &[("result", label)], 1);
        result
    }

    async fn apply(&self, policy: Policy) -> Result<Reloaded, ServerError> {
        let listeners = self.listeners.prepare(&policy).await?;
        let output = self
            .output
            .prepare(&policy.output)
            .await
            .map_err(ServerError::Output)?;
        // API keys are verified by the output's cluster: they follow it.
        let key_transport = match (&self.shared.es_keys, &policy.output) {
            (Some(keys), OutputSettings::Elasticsearch(es)) => Some(
                keys.transport()
                    .prepare(es)
                    .map_err(|e| ServerError::Output(e.to_string()))?,
            ),
            _ => None,
        };
        let (decoders, memory) = super::decoder_bounds(&policy);
        let spool_changed = policy.spool != self.spool;
        // New requests read the new policy from the moment its listeners serve.
        self.runtime
            .send_modify(|current| *current = Arc::new(Runtime::next(current, policy)));
        if decoders != self.shared.decoders.size() || memory != self.shared.intake_memory.capacity()
        {
            self.shared.decoders.resize(decoders);
            self.shared.intake_memory.set_capacity(memory);
            tracing::info!(
                max_concurrent_decoders = decoders,
                max_intake_memory = memory,
                "intake requests decoded at once, and the bytes they may hold"
            );
        }
        let listeners = self.listeners.commit(listeners);
        let mut output = self.output.apply(output).await;
        if spool_changed {
            output.at_next_start.push("spool");
        }
        if let (Some(keys), Some(t)) = (&self.shared.es_keys, key_transport) {
            keys.transport().replace(t);
        }
        Ok(Reloaded { listeners, output })
    }

    /// Opens the output's files again after log rotation moved them (SIGUSR1).
    pub async fn reopen_files(&self) {
        self.output.reopen_files().await;
    }
}
