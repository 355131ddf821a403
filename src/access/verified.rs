//! The runtime's decision: [`super::decide`] with every credential actually verified.
//!
//! `decide` is synchronous and does no expensive work, so `explain` and `apmgate test` share it.
//! The gateway asks here instead: a declared API key's secret is hashed first, on the bounded
//! [`Argon2Pool`] (its result, success or failure, cached on a hash of the whole credential),
//! then `decide` runs on the cached answer; a key the policy does not declare goes to
//! Elasticsearch for a second pass with the identity it vouches for. The router calls this
//! once and reads one outcome.

use std::sync::Arc;

use crate::policy::Policy;
use crate::policy::compiled::{IdentityKind, RouteName};
use crate::telemetry::{Counter, Metrics};

use super::argon2_pool::Argon2Pool;
use super::cache::VerificationCache;
use super::elasticsearch::{EsKeyVerifier, Verdict};
use super::identity::{self, AuthError, Credential, Identity};
use super::refusal::Refusal;
use super::{AccessRequest, Decision, Outcome, decide, route_for_path};

/// What the runtime verifies credentials with.
pub struct Verifiers<'a> {
    /// Results of declared API key verifications, both ways.
    pub key_cache: &'a VerificationCache<bool>,
    /// The threads that hash.
    pub argon2: &'a Argon2Pool,
    /// Elasticsearch, for API keys the policy does not declare.
    pub elasticsearch: Option<&'a EsKeyVerifier>,
    /// Where hashes are counted.
    pub metrics: &'a Metrics,
}

/// The cache key of a declared key's verification: the hash and the secret together, so a
/// changed hash (a new policy) never reuses an old answer.
fn cache_key(hash: &str, key: &str) -> [u8; 32] {
    VerificationCache::<bool>::key(&format!("{hash}\u{0}{key}"))
}

/// Decides a request as the gateway does, verifying its credential first.
pub async fn decide_verified(
    policy: &Policy,
    request: &AccessRequest<'_>,
    verifiers: &Verifiers<'_>,
) -> Decision {
    let served = route_for_path(request.path).filter(|r| request.listener.serves(*r));
    let credential = identity::parse_authorization(request.header("authorization"));
    if let (Some(_), Ok(Credential::ApiKey { id, key, .. })) = (served, &credential) {
        if let Some(declared) = policy.auth.api_keys.iter().find(|k| &k.id == id) {
            let slot = cache_key(&declared.hash, key);
            if identity::is_live(declared) && verifiers.key_cache.get(&slot).is_none() {
                // Busy: nothing is cached, and `decide` below refuses with `VerificationBusy`.
                let verdict = verifiers
                    .argon2
                    .verify(Arc::from(declared.hash.as_str()), key)
                    .await;
                let result = match verdict {
                    Ok(true) => "valid",
                    Ok(false) => "invalid",
                    Err(_) => "busy",
                };
                verifiers
                    .metrics
                    .add(Counter::ApiKeyHashesTotal, &[("result", result)], 1);
                if let Ok(valid) = verdict {
                    verifiers.key_cache.put(slot, valid);
                }
            }
        }
    }
    let cached = |hash: &str, key: &str| verifiers.key_cache.get(&cache_key(hash, key));
    let decision = decide(policy, request, None, &cached);
    let Outcome::NeedsElasticsearch { id } = &decision.outcome else {
        return decision;
    };
    // An API key for Elasticsearch to verify: decide again with the identity it vouches for.
    let verdict = match (verifiers.elasticsearch, &credential) {
        (Some(es), Ok(Credential::ApiKey { encoded, .. })) => es.verify(encoded).await.ok(),
        _ => None,
    };
    match verdict {
        Some(Verdict::Valid(privileges)) => {
            let vouched = Identity {
                kind: IdentityKind::ElasticsearchApiKey,
                name: Some(id.clone()),
                roles: Vec::new().into(),
                privileges,
            };
            decide(policy, request, Some(vouched), &cached)
        }
        // `GET /` never refuses for want of credentials (as `decide`).
        Some(Verdict::Invalid) if decision.route == Some(RouteName::Root) => {
            let nobody = Identity {
                kind: IdentityKind::Anonymous,
                name: None,
                roles: Vec::new().into(),
                privileges: Default::default(),
            };
            decide(policy, request, Some(nobody), &cached)
        }
        Some(Verdict::Invalid) => Decision {
            outcome: Outcome::Deny(Refusal::Unauthenticated(AuthError::Invalid)),
            ..decision
        },
        // Elasticsearch cannot answer (or there is no Elasticsearch output).
        None => Decision {
            outcome: Outcome::Deny(Refusal::ElasticsearchUnavailable),
            ..decision
        },
    }
}
