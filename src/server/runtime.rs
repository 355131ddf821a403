//! What requests read: the [`Runtime`] derived from the policy in force (swapped whole on
//! reload, behind a `watch` channel) and the [`Shared`] state fixed at start.
//!
//! A reload builds the next runtime from the previous one ([`Runtime::next`]): protection state
//! whose settings did not change (the anonymous rate-limit buckets, the API key verification
//! cache) carries over, so a SIGHUP neither refills a drained address's bucket nor makes every
//! key pay for its hash again.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::watch;

use crate::access::argon2_pool::Argon2Pool;
use crate::access::cache::VerificationCache;
use crate::access::elasticsearch::EsKeyVerifier;
use crate::access::gate::Gate;
use crate::access::ratelimit::RateLimiter;
use crate::agent_config::applied::AppliedConfigs;
use crate::agent_config::elasticsearch::EsAgentConfig;
use crate::aggregation::Aggregator;
use crate::elasticsearch::transport::Transport;
use crate::intake::decoders::DecoderLimit;
use crate::intake::memory::IntakeMemory;
use crate::intake::{SourceMapper, StreamContext};
use crate::model::{APM_SERVER_VERSION, ModelConfig, RequestMeta};
use crate::output::Output;
use crate::policy::Policy;
use crate::policy::compiled::{KEY_CACHE_SIZE, KEY_CACHE_TTL, Limits};
use crate::sourcemap::SourceMapStore;
use crate::telemetry::Metrics;

/// Capacity and lifetime of the declared-key verification cache when the policy has no
/// `[auth.elasticsearch_api_keys]` to say otherwise.
const DEFAULT_KEY_CACHE: (u64, Duration) = (KEY_CACHE_SIZE, KEY_CACHE_TTL);

/// Everything derived from one compiled policy. Immutable; replaced whole on reload.
pub struct Runtime {
    /// The policy.
    pub policy: Arc<Policy>,
    /// Model settings.
    pub model: ModelConfig,
    /// Anonymous rate limiter.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// API key verifications (keyed on a hash of the whole credential).
    pub key_cache: Arc<VerificationCache<bool>>,
}

impl Runtime {
    /// Derives the runtime state of a policy.
    pub fn new(policy: Policy) -> Self {
        Self::derive(policy, None)
    }

    /// Derives the runtime state of a reloaded policy, keeping the rate-limit buckets and the
    /// verification cache of `previous` where their settings are unchanged.
    pub fn next(previous: &Runtime, policy: Policy) -> Self {
        Self::derive(policy, Some(previous))
    }

    fn derive(policy: Policy, previous: Option<&Runtime>) -> Self {
        let model = ModelConfig {
            namespace: policy.gateway.namespace.clone(),
            default_service_environment: policy.gateway.default_service_environment.clone(),
            capture_personal_data: policy.gateway.capture_personal_data,
            library_pattern: Some(policy.rum.library_pattern.clone()),
            exclude_from_grouping: Some(policy.rum.exclude_from_grouping.clone()),
            observer_version: APM_SERVER_VERSION,
            aggregate: policy.aggregation.enabled,
            source_mapping: policy.rum.source_mapping.is_some(),
        };
        let rate_limiter = policy.auth.anonymous.as_ref().map(|a| {
            previous
                .and_then(|p| p.rate_limiter.as_ref())
                .filter(|rl| rl.settings() == (a.event_limit, a.ip_limit))
                .cloned()
                .unwrap_or_else(|| Arc::new(RateLimiter::new(a.event_limit, a.ip_limit)))
        });
        let (size, ttl) = policy
            .auth
            .elasticsearch_api_keys
            .as_ref()
            .map_or(DEFAULT_KEY_CACHE, |e| (e.cache_size, e.cache_ttl));
        // Entries are keyed on the key's hash and secret together: a key whose hash changed, or
        // that left the policy, can never be answered from an old entry.
        let key_cache = previous
            .map(|p| &p.key_cache)
            .filter(|c| c.settings() == (size, ttl))
            .cloned()
            .unwrap_or_else(|| Arc::new(VerificationCache::new(size, ttl)));
        Self {
            policy: Arc::new(policy),
            model,
            rate_limiter,
            key_cache,
        }
    }
}

/// State shared by every listener and request, fixed at start.
pub struct Shared {
    /// The current runtime.
    pub runtime: watch::Receiver<Arc<Runtime>>,
    /// The output.
    pub output: Arc<dyn Output>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Whether the output is ready to publish (`publish_ready` of `GET /`).
    pub publish_ready: AtomicBool,
    /// API keys verified by Elasticsearch (`[auth.elasticsearch_api_keys]` with
    /// `[output.elasticsearch]`).
    pub es_keys: Option<Arc<EsKeyVerifier>>,
    /// The threads that verify declared API keys.
    pub argon2: Argon2Pool,
    /// Intake requests decoded at once (`max_concurrent_decoders`, fixed at start).
    pub decoders: DecoderLimit,
    /// The intake's memory budget (`max_intake_memory`, fixed at start).
    pub intake_memory: IntakeMemory,
    /// Aggregated metrics (kept across reloads).
    pub aggregator: Arc<Aggregator>,
    /// The client of the Elasticsearch output, for data read from the cluster (`None` with
    /// another output).
    pub elasticsearch: Option<Arc<Transport>>,
    /// Central configuration read from Elasticsearch (created with an Elasticsearch output,
    /// read while the policy asks for it).
    pub es_agent_config: Option<Arc<EsAgentConfig>>,
    /// Configurations agents applied, reported as the `agent_config` metric set.
    pub applied_configs: Arc<AppliedConfigs>,
    /// RUM source maps read from Elasticsearch (`[rum.source_mapping]` of the policy the
    /// server started with; a reload can turn mapping off and on, not move the store).
    pub source_maps: Option<Arc<SourceMapStore>>,
}

impl Shared {
    /// What an intake stream (APM events or an OTLP export) runs with: the listener's limits,
    /// the request, the runtime's model settings, the caller's gate, the output, the memory
    /// budget, the aggregator, and the source maps when `source_mapping` and the runtime asks.
    pub(super) fn stream_context<'a>(
        &'a self,
        rt: &'a Runtime,
        limits: &Limits,
        request: RequestMeta<'a>,
        gate: &'a Gate<'_>,
        source_mapping: bool,
    ) -> StreamContext<'a> {
        StreamContext {
            max_event_size: usize::try_from(limits.max_event_size).unwrap_or(usize::MAX),
            max_body_size: limits.max_body_size,
            request,
            model: &rt.model,
            gate: gate.as_batch_gate(),
            output: self.output.as_ref(),
            memory: &self.intake_memory,
            aggregation: Some((&self.aggregator, &rt.policy.aggregation)),
            source_maps: self
                .source_maps
                .as_deref()
                .filter(|_| source_mapping && rt.model.source_mapping)
                .map(|s| s as &dyn SourceMapper),
        }
    }
}
