//! The Elasticsearch client: one HTTP client towards the output's cluster, shared by every
//! step that talks to Elasticsearch (the bulk indexer of `output`, the API key verifier of
//! `access`, and data read from Elasticsearch).
//!
//! It knows hosts, path prefix, credentials, client TLS, host selection and backoff; it knows
//! nothing of documents, bulk semantics or access decisions. Credentials never appear in an
//! error or a log line.

pub mod tls;
pub mod transport;

use std::time::Duration;

use rand::Rng as _;

/// Exponential backoff with jitter: `init × 2^(attempt-1)`, capped at `max`, then a random
/// point in its upper half (so retries of many requests spread out).
pub fn backoff(init: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let base = init.saturating_mul(1u32 << exp).min(max);
    let half = base / 2;
    let jitter = rand::thread_rng().gen_range(0..=half.as_micros().min(u64::MAX as u128) as u64);
    half + Duration::from_micros(jitter)
}
