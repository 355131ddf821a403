//! Per-IP token buckets for anonymous callers, as APM Server keeps them.
//!
//! `ip_limit` buckets live in an LRU; an evicted bucket is reused, state and all, for the new
//! address, so spraying addresses cannot mint fresh full buckets. Each bucket refills at
//! `event_limit` tokens a second up to a burst of three times that. A request takes one token
//! up front; each batch then reserves one token per event and may wait up to a second for them.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// How long a batch may wait for its tokens (APM Server's batch timeout).
pub const BATCH_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The per-IP limiter.
pub struct RateLimiter {
    event_limit: u64,
    ip_limit: u64,
    rate: f64,
    burst: f64,
    buckets: Mutex<LruCache<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `event_limit` events a second per IP, `ip_limit` IPs tracked.
    pub fn new(event_limit: u64, ip_limit: u64) -> Self {
        let cap = NonZeroUsize::new(usize::try_from(ip_limit).unwrap_or(usize::MAX).max(1))
            .unwrap_or(NonZeroUsize::MIN);
        Self {
            event_limit,
            ip_limit,
            rate: event_limit as f64,
            burst: 3.0 * event_limit as f64,
            buckets: Mutex::new(LruCache::new(cap)),
        }
    }

    /// The settings it was made with: `(event_limit, ip_limit)`.
    pub fn settings(&self) -> (u64, u64) {
        (self.event_limit, self.ip_limit)
    }

    /// Reserves `n` tokens for `ip` and returns how long to wait before using them, or `None`
    /// (nothing reserved) when that wait would exceed `max_wait`.
    pub fn reserve(
        &self,
        ip: IpAddr,
        n: f64,
        max_wait: Duration,
        now: Instant,
    ) -> Option<Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return None;
        };
        let fresh = Bucket {
            tokens: self.burst,
            updated: now,
        };
        let bucket = match buckets.get_mut(&ip) {
            Some(b) => b,
            None => {
                // Reuse the least recently used bucket when full: its state carries over.
                let reused = if buckets.len() == buckets.cap().get() {
                    buckets.pop_lru().map(|(_, b)| b)
                } else {
                    None
                };
                buckets.put(ip, reused.unwrap_or(fresh));
                buckets.get_mut(&ip)?
            }
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if n > self.burst {
            return None;
        }
        let missing = n - bucket.tokens;
        let wait = if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.rate.max(f64::MIN_POSITIVE))
        };
        if wait > max_wait {
            return None;
        }
        bucket.tokens -= n;
        Some(wait)
    }

    /// Takes one token now, without waiting (the up-front check).
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.reserve(ip, 1.0, Duration::ZERO, Instant::now())
            .is_some()
    }

    /// Waits for `n` tokens, at most [`BATCH_WAIT`].
    pub async fn acquire(&self, ip: IpAddr, n: usize) -> bool {
        match self.reserve(ip, n as f64, BATCH_WAIT, Instant::now()) {
            Some(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let rl = RateLimiter::new(10, 100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(
            rl.reserve(ip, 30.0, Duration::ZERO, t0),
            Some(Duration::ZERO)
        );
        assert_eq!(
            rl.reserve(ip, 1.0, Duration::ZERO, t0),
            None,
            "burst used up"
        );
        // Five tokens arrive in half a second; ten need a second of waiting.
        assert_eq!(
            rl.reserve(ip, 5.0, Duration::ZERO, t0 + Duration::from_millis(500)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            rl.reserve(
                ip,
                10.0,
                Duration::from_secs(1),
                t0 + Duration::from_millis(500)
            ),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            rl.reserve(ip, 31.0, Duration::from_secs(10), t0),
            None,
            "more than the burst never fits"
        );
    }

    #[test]
    fn evicted_buckets_are_reused_not_refilled() {
        let rl = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(rl.reserve(a, 3.0, Duration::ZERO, t0).is_some());
        // b takes over a's empty bucket.
        assert!(rl.reserve(b, 1.0, Duration::ZERO, t0).is_none());
    }
}
