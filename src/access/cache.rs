//! A cache of credential verifications.
//!
//! Verifying an API key's Argon2 hash costs milliseconds by design, so results (successes and
//! failures) are cached for a TTL in a bounded LRU. The key is a SHA-256 of the whole
//! credential, never the key id alone: APM Server keys its cache on the id, so within its TTL a
//! wrong secret with a known id passes. The credential itself is never stored.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;
use sha2::{Digest, Sha256};

/// Cached verification results.
pub struct VerificationCache<T: Clone> {
    capacity: u64,
    ttl: Duration,
    entries: Mutex<LruCache<[u8; 32], (T, Instant)>>,
}

impl<T: Clone> VerificationCache<T> {
    /// A cache of `capacity` entries, each trusted for `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let cap = NonZeroUsize::new(usize::try_from(capacity).unwrap_or(usize::MAX).max(1))
            .unwrap_or(NonZeroUsize::MIN);
        Self {
            capacity,
            ttl,
            entries: Mutex::new(LruCache::new(cap)),
        }
    }

    /// The settings it was made with: `(capacity, ttl)`.
    pub fn settings(&self) -> (u64, Duration) {
        (self.capacity, self.ttl)
    }

    /// The cache key of a credential.
    pub fn key(credential: &str) -> [u8; 32] {
        Sha256::digest(credential.as_bytes()).into()
    }

    /// A live cached result.
    pub fn get(&self, key: &[u8; 32]) -> Option<T> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((value, at)) if at.elapsed() < self.ttl => Some(value.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Stores a result; the least recently used entry makes room.
    pub fn put(&self, key: [u8; 32], value: T) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.put(key, (value, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_on_the_whole_credential_and_bounded() {
        let c = VerificationCache::new(2, Duration::from_secs(60));
        c.put(VerificationCache::<bool>::key("id:right"), true);
        assert_eq!(
            c.get(&VerificationCache::<bool>::key("id:right")),
            Some(true)
        );
        assert_eq!(c.get(&VerificationCache::<bool>::key("id:wrong")), None);
        c.put(VerificationCache::<bool>::key("a"), false);
        c.put(VerificationCache::<bool>::key("b"), false);
        assert_eq!(
            c.get(&VerificationCache::<bool>::key("id:right")),
            None,
            "evicted"
        );
        let expired = VerificationCache::new(2, Duration::ZERO);
        expired.put(VerificationCache::<bool>::key("x"), true);
        assert_eq!(expired.get(&VerificationCache::<bool>::key("x")), None);
    }
}
