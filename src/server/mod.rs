//! The server: listeners (HTTP/1.1 and HTTP/2 over TCP, TLS or not) and one router.
//!
//! `Server::build(policy)` binds every listener and opens the output; `Server::run` serves
//! until the shutdown future resolves, then stops accepting, lets in-flight requests finish
//! within the listeners' shutdown timeout and flushes the output. The compiled policy and what
//! is derived from it live in a [`Runtime`] behind a `watch` channel, so a reload swaps it
//! whole; every request reads the current one once and uses it throughout.

pub mod agent_config;
pub mod error;
mod grpc;
pub mod h3;
pub mod listener;
pub mod listeners;
mod otlp;
pub mod reload;
pub mod respond;
pub mod router;
pub mod runtime;
pub mod timeout;
pub mod tls;

pub use error::ServerError;
pub use listeners::ListenerChanges;
pub use reload::{Reloaded, Reloader};
pub use runtime::{Runtime, Shared};
pub use tls::TlsError;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::watch;

use self::listeners::ListenerSet;
use crate::access::argon2_pool::Argon2Pool;
use crate::access::elasticsearch::EsKeyVerifier;
use crate::agent_config::applied::REPORT_INTERVAL;
use crate::agent_config::elasticsearch::EsAgentConfig;
use crate::aggregation::Aggregator;
use crate::elasticsearch::transport::{Credentials, Transport};
use crate::intake::decoders::DecoderLimit;
use crate::intake::memory::IntakeMemory;
use crate::output::Output;
use crate::output::discard::DiscardOutput;
use crate::output::elasticsearch::EsOutput;
use crate::output::file::FileOutput;
use crate::output::spool::Spool;
use crate::output::switch::{OutputSwitch, RunningOutput};
use crate::policy::Policy;
use crate::policy::compiled::OutputSettings;
use crate::sourcemap::SourceMapStore;
use crate::telemetry::{Gauge, Metrics};

/// The intake's bounds a policy asks for: requests decoded at once and the bytes they may
/// hold (each sized from the memory limit when the policy does not say).
fn decoder_bounds(policy: &Policy) -> (usize, u64) {
    let decoders = match policy.gateway.max_concurrent_decoders {
        Some(n) => n as usize,
        None => DecoderLimit::auto_size(memory_limit()),
    };
    let memory = policy
        .gateway
        .max_intake_memory
        .unwrap_or_else(|| IntakeMemory::auto_size(memory_limit()));
    (decoders, memory)
}

/// How long a file output waits for room before `publish` refuses.
const FILE_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);

/// The memory this process may use, in bytes: the cgroup limit (v2, then v1) when there is
/// one, else the machine's memory (as APM Server sizes its decoders).
fn memory_limit() -> u64 {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .and_then(|v| v.trim().parse::<u64>().ok());
    let total = read("/proc/meminfo").and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    match (cgroup, total) {
        (Some(c), Some(t)) => c.min(t),
        (Some(m), None) | (None, Some(m)) => m,
        // Unknown: APM Server assumes 1 GiB.
        (None, None) => 1 << 30,
    }
}

/// A bound, not yet serving, gateway.
pub struct Server {
    shared: Arc<Shared>,
    /// The output, which reloads change.
    output: Arc<OutputSwitch>,
    /// The spool opened at start.
    spool: Option<crate::policy::compiled::SpoolSettings>,
    runtime_tx: watch::Sender<Arc<Runtime>>,
    listeners: Vec<listener::BoundListener>,
    /// What stops each of `listeners`.
    stops: Vec<watch::Receiver<bool>>,
    /// The running listeners, which reloads change.
    set: Arc<ListenerSet>,
    /// Listeners bound by reloads, to serve.
    spawned: tokio::sync::mpsc::UnboundedReceiver<listeners::Spawn>,
}

impl Server {
    /// Binds every listener of the policy and opens its output.
    pub async fn build(policy: Policy) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::default());
        let mut ready = None;
        let mut client = None;
        let output = match &policy.output {
            OutputSettings::File(f) => RunningOutput::File(
                Arc::new(
                    FileOutput::open(f, FILE_QUEUE_TIMEOUT)
                        .await
                        .map_err(|e| ServerError::Output(e.to_string()))?,
                ),
                f.clone(),
            ),
            OutputSettings::Discard => RunningOutput::Discard(Arc::new(DiscardOutput::new())),
            OutputSettings::Elasticsearch(es) => {
                // The output drains within the longest shutdown timeout of the listeners,
                // after they have drained (APM Server gives both the same timeout).
                let drain = policy
                    .listeners
                    .iter()
                    .map(|l| l.limits.shutdown_timeout)
                    .max()
                    .unwrap_or(Duration::from_secs(30));
                let out = match &policy.spool {
                    None => EsOutput::start(es, metrics.clone(), drain),
                    Some(spool) => {
                        let spool = Arc::new(
                            Spool::open(spool, metrics.clone())
                                .map_err(|e| ServerError::Output(e.to_string()))?,
                        );
                        tokio::spawn(spool.clone().sync_periodically());
                        EsOutput::start_with_buffer(es, spool, metrics.clone(), drain)
                    }
                }
                .map_err(|e| ServerError::Output(e.to_string()))?;
                ready = Some(out.ready());
                client = Some(out.transport());
                RunningOutput::Elasticsearch(Arc::new(out))
            }
        };
        Self::assemble(policy, output, metrics, ready, client).await
    }

    /// Binds every listener of the policy, sending documents to `output` (for embedding the
    /// gateway, and for tests that need an output to misbehave).
    pub async fn build_with_output(
        policy: Policy,
        output: Arc<dyn Output>,
    ) -> Result<Self, ServerError> {
        Self::assemble(
            policy,
            RunningOutput::Given(output),
            Arc::new(Metrics::default()),
            None,
            None,
        )
        .await
    }

    /// Binds the listeners around an output; `ready` (when the output has a startup check)
    /// drives `publish_ready`; `client` is the Elasticsearch output's client (one is made from
    /// the policy's output settings when the output given is not the Elasticsearch output).
    async fn assemble(
        policy: Policy,
        output: RunningOutput,
        metrics: Arc<Metrics>,
        ready: Option<watch::Receiver<bool>>,
        client: Option<Arc<Transport>>,
    ) -> Result<Self, ServerError> {
        let client = match (client, &policy.output) {
            (Some(c), _) => Some(c),
            (None, OutputSettings::Elasticsearch(es)) => Some(Arc::new(
                Transport::new(es, Credentials::Own, 4)
                    .map_err(|e| ServerError::Output(e.to_string()))?,
            )),
            (None, _) => None,
        };
        let es_keys = match (&policy.auth.elasticsearch_api_keys, &policy.output) {
            (Some(keys), OutputSettings::Elasticsearch(es)) => Some(Arc::new(
                EsKeyVerifier::new(es, keys, metrics.clone())
                    .map_err(|e| ServerError::Output(e.to_string()))?,
            )),
            _ => None,
        };
        // Read through the output's own client (its hosts, credentials, TLS and host backoff).
        let source_maps = match (&policy.rum.source_mapping, &client) {
            (Some(settings), Some(client)) => Some(Arc::new(SourceMapStore::start(
                client.clone(),
                settings,
                metrics.clone(),
            ))),
            _ => None,
        };
        let (decoder_slots, memory) = decoder_bounds(&policy);
        let decoders = DecoderLimit::new(decoder_slots);
        let intake_memory = IntakeMemory::new(
            memory,
            metrics.gauge(Gauge::IntakeMemoryBytes),
            metrics.gauge(Gauge::IntakeMemoryCapacityBytes),
        );
        tracing::info!(
            max_concurrent_decoders = decoders.size(),
            max_intake_memory = intake_memory.capacity(),
            "intake requests decoded at once, and the bytes they may hold"
        );
        let runtime = Arc::new(Runtime::new(policy));
        let (runtime_tx, runtime_rx) = watch::channel(runtime.clone());
        let output = Arc::new(OutputSwitch::new(output, FILE_QUEUE_TIMEOUT));
        let shared = Arc::new(Shared {
            runtime: runtime_rx,
            output: output.clone(),
            metrics: metrics.clone(),
            publish_ready: AtomicBool::new(ready.is_none()),
            es_keys,
            argon2: Argon2Pool::start().map_err(|e| {
                ServerError::Output(format!("cannot start the API key verifiers: {e}"))
            })?,
            decoders,
            intake_memory,
            aggregator: Arc::new(Aggregator::new(memory_limit(), metrics.clone())),
            source_maps,
            es_agent_config: client
                .as_ref()
                .map(|_| Arc::new(EsAgentConfig::new(metrics.clone()))),
            elasticsearch: client,
            applied_configs: Arc::default(),
        });
        if let Some(mut ready) = ready {
            let shared = shared.clone();
            tokio::spawn(async move {
                if ready.wait_for(|r| *r).await.is_ok() {
                    shared
                        .publish_ready
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        let mut listeners = Vec::new();
        for l in &runtime.policy.listeners {
            listeners.push(listener::BoundListener::bind(l.clone()).await?);
        }
        let (set, stops, spawned) = ListenerSet::new(&listeners);
        Ok(Self {
            spool: runtime.policy.spool.clone(),
            shared,
            output,
            runtime_tx,
            listeners,
            stops,
            set: Arc::new(set),
            spawned,
        })
    }

    /// The addresses the listeners are bound to, by name (port 0 in a policy binds any port).
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().map(|a| (l.name().to_string(), a)))
            .collect()
    }

    /// Shared state (metrics, for tests and the CLI).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Applies a new policy: requests that start from now on read it, listeners are added,
    /// moved and removed, and every listener's certificate is read again (see
    /// [`listeners`]).
    pub async fn reload(&self, policy: Policy) -> Result<Reloaded, ServerError> {
        self.reloader().reload(policy).await
    }

    /// A handle that can apply policies while the server runs.
    pub fn reloader(&self) -> Reloader {
        Reloader::new(
            self.runtime_tx.clone(),
            self.set.clone(),
            self.output.clone(),
            self.shared.clone(),
            self.spool.clone(),
        )
    }

    /// Serves until `shutdown` resolves, then drains connections and flushes the output.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for (l, stop) in self.listeners.into_iter().zip(self.stops) {
            tasks.spawn(l.serve(self.shared.clone(), stop));
        }
        let mut spawned = self.spawned;
        // The aggregator writes each interval when it closes, and the partial ones once the
        // listeners have drained (so that it holds every accepted event), before the output
        // drains.
        let (aggregation_stop_tx, aggregation_stop) = watch::channel(false);
        let applied_stop = aggregation_stop.clone();
        let aggregation = {
            let aggregator = self.shared.aggregator.clone();
            let output = self.shared.output.clone();
            let runtime = self.shared.runtime.clone();
            tokio::spawn(async move {
                aggregator
                    .run(
                        output,
                        move || runtime.borrow().model.clone(),
                        crate::model::observer_hostname(),
                        aggregation_stop,
                    )
                    .await
            })
        };
        // Central configuration from Elasticsearch is read while the policy asks for it.
        if let (Some(cache), Some(client)) = (
            self.shared.es_agent_config.clone(),
            self.shared.elasticsearch.clone(),
        ) {
            tokio::spawn(cache.run(
                client,
                self.shared.runtime.clone(),
                |rt| {
                    rt.policy
                        .agent_config_source
                        .as_ref()
                        .map(|s| s.cache_expiration)
                },
                stop_rx.clone(),
            ));
        }
        // Applied configurations are reported every 30 s, and once more after the listeners
        // drained.
        let applied = {
            let applied = self.shared.applied_configs.clone();
            let output = self.shared.output.clone();
            let runtime = self.shared.runtime.clone();
            let stop = applied_stop;
            tokio::spawn(async move {
                applied
                    .run(
                        output,
                        move || runtime.borrow().model.clone(),
                        crate::model::observer_hostname(),
                        REPORT_INTERVAL,
                        stop,
                    )
                    .await
            })
        };
        // Serve, adding the listeners reloads bind, until the shutdown.
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some((l, stop)) = spawned.recv() => {
                    tasks.spawn(l.serve(self.shared.clone(), stop));
                }
                // Listeners a reload stopped end when they have drained.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tracing::info!("shutting down: no new connections; draining in-flight requests");
        let _ = stop_tx.send(true);
        self.set.stop_all();
        spawned.close();
        while tasks.join_next().await.is_some() {}
        let _ = aggregation_stop_tx.send(true);
        if let Err(e) = aggregation.await {
            tracing::error!(error = %e, "the aggregator stopped abnormally");
        }
        if let Err(e) = applied.await {
            tracing::error!(error = %e, "the report of applied configurations stopped abnormally");
        }
        let lost = self.shared.output.close().await;
        if lost > 0 {
            tracing::error!(
                documents = lost,
                "documents could not be written by the output"
            );
        }
        tracing::info!("stopped");
        // Keep the sender alive until here so requests never see a closed channel.
        drop(self.runtime_tx);
        Ok(())
    }
}
