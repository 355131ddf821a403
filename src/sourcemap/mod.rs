//! The source map store: the source maps Kibana uploads to Elasticsearch (index
//! `.apm-source-map`), read through the Elasticsearch output's connection (its hosts,
//! credentials and TLS) for RUM stack frames, as APM Server 9.5 reads them.
//!
//! - The list of uploaded maps (service name, version, bundle path, content hash) is read at
//!   start and again every `cache_expiration` (at most every 30 s, APM Server's interval), with
//!   a scrolled search (`metadata`). A bundle path that is a URL is also found by its path alone
//!   (APM Server's aliases), and a frame's URL by its path, then without query and fragment.
//! - A map is fetched by its id only when the list has it (`fetch`), decompressed up to
//!   `max_sourcemap_size`, parsed (`parse`) and kept in a cache bounded by count and bytes, for
//!   `cache_expiration`. A map whose hash changed or that left the index is dropped from the
//!   cache at the next read of the list (APM Server's invalidation). A malformed or too large
//!   map is remembered as absent, as APM Server remembers it.
//! - One fetch per map is in flight whatever the number of requests that need it; it runs on
//!   its own, so a request that stops waiting (its `timeout`) does not cancel it.
//! - Nothing here fails a request: every problem becomes the `sourcemap.error` of the frames, in
//!   APM Server's words.
//!
//! It knows Elasticsearch and the model's source map types; it never sees HTTP requests of
//! agents, and never logs credentials (the transport keeps them out of its errors).

mod fetch;
mod metadata;
pub mod parse;

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::watch;

use crate::elasticsearch::transport::Transport;
use crate::intake::SourceMapper;
use crate::model::sourcemap::{BundleKey, GoUrl, OriginalPosition, Resolution, Resolutions};
use crate::policy::compiled::SourceMappingSettings;
use crate::telemetry::{Counter, Metrics};

pub use parse::ParsedMap;

/// The index Kibana stores source maps in.
pub const INDEX: &str = ".apm-source-map";

/// Why a source map could not be had. The text is what APM Server writes in `sourcemap.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The map does not parse (remembered as absent).
    #[error("sourcemap malformed: {0}")]
    Malformed(String),
    /// The map is larger than `max_sourcemap_size` decompressed (remembered as absent).
    #[error("sourcemap size exceeds limit : {0}")]
    TooLarge(String),
    /// Elasticsearch could not be reached or answered otherwise than expected.
    #[error("{0}")]
    Unavailable(String),
}

/// What a fetch yields: the map, or `None` when Elasticsearch has no content for it.
type Fetched = Result<Option<Arc<ParsedMap>>, FetchError>;

/// A fetch in flight, shared by every request that needs the map.
type Flight = Shared<BoxFuture<'static, Fetched>>;

/// The list of uploaded maps, and whether it could be read.
#[derive(Default)]
struct Metadata {
    /// Maps by their key, with their content hash.
    set: HashMap<BundleKey, String>,
    /// Other keys a map is found by (the path of a URL bundle path, the URL without query and
    /// fragment).
    alias: HashMap<BundleKey, BundleKey>,
    /// Why the first read failed, until a read succeeds.
    init_error: Option<String>,
}

struct Cached {
    map: Option<Arc<ParsedMap>>,
    bytes: u64,
    until: Instant,
}

/// Fetched maps (and remembered absences), least recently used first out.
struct BodyCache {
    entries: lru::LruCache<BundleKey, Cached>,
    bytes: u64,
    max_bytes: u64,
    ttl: Duration,
}

impl BodyCache {
    fn get(&mut self, key: &BundleKey) -> Option<Option<Arc<ParsedMap>>> {
        let expired = self
            .entries
            .peek(key)
            .is_some_and(|c| c.until <= Instant::now());
        if expired {
            self.remove(key);
            return None;
        }
        self.entries.get(key).map(|c| c.map.clone())
    }

    fn put(&mut self, key: BundleKey, map: Option<Arc<ParsedMap>>, bytes: u64) {
        self.remove(&key);
        if bytes > self.max_bytes {
            // Used for the requests that waited for it; too large to keep.
            return;
        }
        while self.bytes + bytes > self.max_bytes {
            match self.entries.pop_lru() {
                Some((_, c)) => self.bytes -= c.bytes,
                None => break,
            }
        }
        let until = Instant::now() + self.ttl;
        if let Some((_, old)) = self.entries.push(key, Cached { map, bytes, until }) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
    }

    fn remove(&mut self, key: &BundleKey) {
        if let Some(c) = self.entries.pop(key) {
            self.bytes -= c.bytes;
        }
    }
}

struct Inner {
    /// The store's own allocation, for the tasks it starts (which end when it is dropped).
    me: Weak<Inner>,
    transport: Arc<Transport>,
    settings: SourceMappingSettings,
    metadata: RwLock<Metadata>,
    /// True once the list was read (or failed to be read) for the first time.
    ready: watch::Sender<bool>,
    cache: Mutex<BodyCache>,
    flights: Mutex<HashMap<BundleKey, Flight>>,
    metrics: Arc<Metrics>,
}

/// The source map store of a running gateway.
pub struct SourceMapStore {
    inner: Arc<Inner>,
}

impl SourceMapStore {
    /// A store reading from the output's cluster; the list of uploaded maps is read at once and
    /// then kept fresh in the background for as long as the store lives.
    pub fn start(
        transport: Arc<Transport>,
        settings: &SourceMappingSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let entries =
            NonZeroUsize::new(settings.cache_entries as usize).unwrap_or(NonZeroUsize::MIN);
        let inner = Arc::new_cyclic(|me| Inner {
            me: me.clone(),
            transport,
            settings: settings.clone(),
            metadata: RwLock::new(Metadata::default()),
            ready: watch::Sender::new(false),
            cache: Mutex::new(BodyCache {
                entries: lru::LruCache::new(entries),
                bytes: 0,
                max_bytes: settings.cache_size,
                ttl: settings.cache_expiration,
            }),
            flights: Mutex::new(HashMap::new()),
            metrics,
        });
        tokio::spawn(metadata::keep_fresh(Arc::downgrade(&inner)));
        tracing::info!(
            index = INDEX,
            cache_expiration = ?settings.cache_expiration,
            max_sourcemap_size = settings.max_sourcemap_size,
            "RUM stack frames are source mapped with the maps stored in Elasticsearch"
        );
        Self { inner }
    }

    /// Resolves the source maps of `bundles` by `deadline`.
    pub async fn resolve_all(
        &self,
        bundles: Vec<BundleKey>,
        deadline: tokio::time::Instant,
    ) -> Resolutions {
        let inner = &self.inner;
        let resolved = futures_util::future::join_all(
            bundles
                .iter()
                .map(|b| inner.resolve(&b.service_name, &b.service_version, &b.path, deadline)),
        )
        .await;
        bundles.into_iter().zip(resolved).collect()
    }

    /// Whether the list of uploaded maps has been read once (for tests and readiness).
    pub fn ready(&self) -> bool {
        *self.inner.ready.borrow()
    }
}

impl SourceMapper for SourceMapStore {
    fn timeout(&self) -> Duration {
        self.inner.settings.timeout
    }

    fn resolve(
        &self,
        bundles: Vec<BundleKey>,
        deadline: tokio::time::Instant,
    ) -> Pin<Box<dyn Future<Output = Resolutions> + Send + '_>> {
        Box::pin(self.resolve_all(bundles, deadline))
    }
}

/// Go's `URL.JoinPath()` of a URL's path: cleaned, kept relative when it was (without leading
/// `..`), and ending in `/` when it did.
fn join_path(path: &str) -> String {
    let (relative, first) = match path.strip_prefix('/') {
        Some(_) => (false, path.to_string()),
        None => (true, format!("/{path}")),
    };
    let cleaned = crate::model::sourcemap::clean_path(&first);
    let mut out = if relative {
        cleaned[1..].to_string()
    } else {
        cleaned
    };
    if first.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// `404 Not Found`, as Go's `Response.Status` reads.
fn status_text(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{status} {reason}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn count(&self, result: &str) {
        self.metrics
            .add(Counter::SourceMapFetchesTotal, &[("result", result)], 1);
    }

    /// The key the list knows `key` by, directly or through an alias.
    fn known(&self, key: &BundleKey) -> Option<BundleKey> {
        let m = self.metadata.read().unwrap_or_else(|e| e.into_inner());
        if m.set.contains_key(key) {
            return Some(key.clone());
        }
        m.alias.get(key).cloned()
    }

    /// APM Server's `SourcemapFetcher.Fetch`: the list must have been read; the bundle is
    /// looked up as it is, then by its URL's path, then without query and fragment.
    fn resolve<'s>(
        &'s self,
        name: &'s str,
        version: &'s str,
        path: &'s str,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'s, Resolution> {
        async move {
            let mut ready = self.ready.subscribe();
            if !*ready.borrow_and_update() {
                let wait = ready.wait_for(|r| *r);
                if tokio::time::timeout_at(deadline, wait).await.is_err() {
                    return Err(
                        "error waiting for metadata fetcher to be ready: context deadline exceeded"
                            .to_string(),
                    );
                }
            }
            if let Some(e) = self
                .metadata
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .init_error
                .clone()
            {
                return Err(e);
            }
            let key = |p: &str| BundleKey {
                service_name: name.to_string(),
                service_version: version.to_string(),
                path: p.to_string(),
            };
            if let Some(id) = self.known(&key(path)) {
                return self.fetch(id, deadline).await;
            }
            if let Some(mut url) = GoUrl::parse(path) {
                let url_path = url.unescaped_path();
                if url_path != path {
                    if let Some(id) = self.known(&key(&url_path)) {
                        return self.fetch(id, deadline).await;
                    }
                }
                url.query = None;
                url.fragment = None;
                if url.opaque.is_none() {
                    url.path = join_path(&url.path);
                }
                let clean = url.to_string();
                if clean != path {
                    tracing::debug!(from = path, to = %clean, "source map bundle path cleaned");
                    return self.resolve(name, version, &clean, deadline).await;
                }
            }
            Err(format!(
                "unable to find sourcemap.url for service.name={name} service.version={version} bundle.path={path}"
            ))
        }
        .boxed()
    }

    /// A map the list has: from the cache, or fetched once however many wait for it.
    async fn fetch(&self, id: BundleKey, deadline: tokio::time::Instant) -> Resolution {
        let flight = {
            let mut flights = lock(&self.flights);
            if let Some(cached) = lock(&self.cache).get(&id) {
                return found(cached, &id);
            }
            flights
                .entry(id.clone())
                .or_insert_with(|| self.start_fetch(id.clone()))
                .clone()
        };
        match tokio::time::timeout_at(deadline, flight).await {
            Ok(Ok(map)) => found(map, &id),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(
                "failed to reach elasticsearch: fetcher unavailable: context deadline exceeded "
                    .to_string(),
            ),
        }
    }

    /// Starts fetching `id` on its own task; it caches what it got, then leaves the flights.
    fn start_fetch(&self, id: BundleKey) -> Flight {
        let me = self.me.clone();
        let task = tokio::spawn(async move {
            let Some(inner) = me.upgrade() else {
                return Err(FetchError::Unavailable("source map store stopped".into()));
            };
            let result = fetch::fetch(&inner, &id).await;
            let (label, keep) = match &result {
                Ok(Some((_, bytes))) => ("found", Some(*bytes)),
                Ok(None) => ("missing", Some(0)),
                Err(FetchError::Malformed(_)) => ("malformed", Some(0)),
                Err(FetchError::TooLarge(_)) => ("too_large", Some(0)),
                Err(FetchError::Unavailable(_)) => ("unavailable", None),
            };
            inner.count(label);
            let map = match &result {
                Ok(Some((m, _))) => Some(m.clone()),
                _ => None,
            };
            if let Some(bytes) = keep {
                if map.is_none() {
                    if let Err(e) = &result {
                        tracing::warn!(
                            service.name = %id.service_name,
                            service.version = %id.service_version,
                            bundle.path = %id.path,
                            error = %e,
                            "source map remembered as absent"
                        );
                    }
                }
                lock(&inner.cache).put(id.clone(), map.clone(), bytes);
            }
            lock(&inner.flights).remove(&id);
            result.map(|r| r.map(|(m, _)| m))
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(FetchError::Unavailable(format!(
                    "source map fetch failed: {e}"
                )))
            })
        }
        .boxed()
        .shared()
    }
}

/// A cached or fetched map, or APM Server's error for a map remembered as absent.
fn found(map: Option<Arc<ParsedMap>>, id: &BundleKey) -> Resolution {
    match map {
        Some(m) => Ok(m as Arc<dyn OriginalPosition>),
        None => Err(format!(
            "unable to find sourcemap for service.name={} service.version={} bundle.path={}",
            id.service_name, id.service_version, id.path
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> BundleKey {
        BundleKey {
            service_name: "s".into(),
            service_version: "1".into(),
            path: path.into(),
        }
    }

    fn cache(entries: usize, max_bytes: u64, ttl: Duration) -> BodyCache {
        BodyCache {
            entries: lru::LruCache::new(NonZeroUsize::new(entries).unwrap()),
            bytes: 0,
            max_bytes,
            ttl,
        }
    }

    #[test]
    fn the_cache_is_bounded_by_entries_and_bytes() {
        let mut c = cache(2, 100, Duration::from_secs(60));
        c.put(key("a"), None, 40);
        c.put(key("b"), None, 40);
        c.put(key("c"), None, 10);
        assert!(
            c.get(&key("a")).is_none(),
            "beyond 2 entries, the oldest goes"
        );
        assert_eq!(c.bytes, 50);
        c.put(key("d"), None, 90);
        assert!(
            c.get(&key("b")).is_none(),
            "beyond 100 bytes, the least recently used go"
        );
        assert!(c.get(&key("c")).is_some());
        assert_eq!(c.bytes, 100);
        c.put(key("e"), None, 101);
        assert!(
            c.get(&key("e")).is_none(),
            "a map larger than the cache is not kept"
        );
        assert!(c.get(&key("d")).is_some());
        c.remove(&key("d"));
        c.remove(&key("c"));
        assert_eq!((c.bytes, c.entries.len()), (0, 0));
    }

    #[test]
    fn paths_are_joined_as_go_joins_them() {
        for (input, want) in [
            ("", "/"),
            ("/a/./b/", "/a/b/"),
            ("a/../../b", "b"),
            ("/x/y.js.map", "/x/y.js.map"),
        ] {
            assert_eq!(join_path(input), want, "{input}");
        }
    }

    #[test]
    fn cached_entries_expire() {
        let mut c = cache(2, 100, Duration::ZERO);
        c.put(key("a"), None, 1);
        assert!(c.get(&key("a")).is_none());
        assert_eq!(c.bytes, 0);
    }
}
