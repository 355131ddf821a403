//! The list of uploaded source maps, read as APM Server's metadata fetcher reads it: a scrolled
//! search of `.apm-source-map` for `service.*`, `file.path` and `content_sha256`, at start and
//! then at every refresh. A map whose hash changed, or that is gone, leaves the body cache.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::Method;
use serde::Deserialize;

use super::fetch::path_escape;
use super::{INDEX, Inner, Metadata, lock, status_text};
use crate::model::sourcemap::{BundleKey, GoUrl};

/// APM Server's scroll keep-alive (one minute, in milliseconds).
const SCROLL: &str = "60000ms";

#[derive(Deserialize, Default)]
struct Service {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize, Default)]
struct File {
    #[serde(default)]
    path: String,
}

#[derive(Deserialize, Default)]
struct Source {
    #[serde(default)]
    service: Service,
    #[serde(default)]
    file: File,
    #[serde(default)]
    content_sha256: String,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(rename = "_source", default)]
    source: Source,
}

#[derive(Deserialize, Default)]
struct Hits {
    #[serde(default)]
    hits: Vec<Hit>,
}

#[derive(Deserialize)]
struct SearchResponse {
    #[serde(rename = "_scroll_id", default)]
    scroll_id: String,
    #[serde(default)]
    hits: Hits,
}

/// Reads the list now and then every refresh interval, for as long as the store lives.
pub(super) async fn keep_fresh(store: Weak<Inner>) {
    let mut failing = false;
    let mut first = true;
    loop {
        let Some(inner) = store.upgrade() else { return };
        let refresh = inner.settings.metadata_refresh();
        match sync(&inner).await {
            Ok(n) => {
                if failing {
                    tracing::info!(source_maps = n, "source map list read again");
                }
                failing = false;
            }
            Err(e) => {
                let mut m = inner.metadata.write().unwrap_or_else(|e| e.into_inner());
                if first {
                    m.init_error = Some(format!("failed to populate sourcemap metadata: {e}"));
                }
                drop(m);
                if !failing {
                    tracing::warn!(error = %e, "cannot read the list of source maps from Elasticsearch");
                }
                failing = true;
            }
        }
        if first {
            inner.ready.send_replace(true);
            first = false;
        }
        drop(inner);
        tokio::time::sleep(refresh).await;
    }
}

/// One answer of the search or the scroll, its hits added to `found`.
fn read_page(
    r: &crate::elasticsearch::transport::EsResponse,
    found: &mut HashMap<BundleKey, String>,
) -> Result<SearchResponse, String> {
    if r.status >= 300 {
        if matches!(r.status, 401 | 403 | 404) {
            return Err(format!(
                "fetcher unavailable: {}: {}",
                status_text(r.status),
                String::from_utf8_lossy(&r.body)
            ));
        }
        return Err(format!(
            "ES returned unknown status code: {}",
            status_text(r.status)
        ));
    }
    let page: SearchResponse =
        serde_json::from_slice(&r.body).map_err(|e| format!("failed to parse response: {e}"))?;
    for h in &page.hits.hits {
        found.insert(
            BundleKey {
                service_name: h.source.service.name.clone(),
                service_version: h.source.service.version.clone(),
                path: h.source.file.path.clone(),
            },
            h.source.content_sha256.clone(),
        );
    }
    Ok(page)
}

/// Reads the whole list and makes it the one in force; how many maps it holds.
async fn sync(inner: &Arc<Inner>) -> Result<usize, String> {
    let mut found = HashMap::new();
    let search = format!(
        "/{INDEX}/_search?_source=service.%2A%2Cfile.path%2Ccontent_sha256&scroll={SCROLL}&track_total_hits=true"
    );
    let r = inner
        .transport
        .send(Method::POST, &search, Bytes::new(), &[], None)
        .await
        .map_err(|e| format!("failed to run initial search query: fetcher unavailable: {e}"))?;
    let page = read_page(&r, &mut found)?;
    let mut scroll_id = page.scroll_id;
    if !scroll_id.is_empty() {
        loop {
            let path = format!(
                "/_search/scroll?scroll={SCROLL}&scroll_id={}",
                path_escape(&scroll_id)
            );
            let page = match inner
                .transport
                .send(Method::POST, &path, Bytes::new(), &[], None)
                .await
            {
                Ok(r) => read_page(&r, &mut found),
                Err(e) => Err(format!("failed to run scroll search query: {e}")),
            };
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    clear_scroll(inner, &scroll_id).await;
                    return Err(format!("failed scroll search: {e}"));
                }
            };
            if !page.scroll_id.is_empty() {
                scroll_id = page.scroll_id;
            }
            if page.hits.hits.is_empty() {
                break;
            }
        }
    }
    let n = found.len();
    // In force before the scroll is cleared (APM Server clears first): whoever sees the clear
    // sees the new list.
    update(inner, found);
    if !scroll_id.is_empty() {
        clear_scroll(inner, &scroll_id).await;
    }
    Ok(n)
}

async fn clear_scroll(inner: &Inner, scroll_id: &str) {
    let path = format!("/_search/scroll/{}", path_escape(scroll_id));
    match inner
        .transport
        .send(Method::DELETE, &path, Bytes::new(), &[], None)
        .await
    {
        Ok(r) if r.status > 299 => {
            tracing::warn!(status = r.status, "clearing a source map scroll failed")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "clearing a source map scroll failed"),
    }
}

/// The other keys a bundle path is found by (APM Server's `getAliases`): a URL's path, and a
/// URL without its query and fragment.
fn aliases(id: &BundleKey) -> Vec<BundleKey> {
    let Some(mut url) = GoUrl::parse(&id.path) else {
        return Vec::new();
    };
    let path_only = url.unescaped_path();
    if url.to_string() == path_only {
        return Vec::new();
    }
    url.query = None;
    url.fragment = None;
    let with = |path: String| BundleKey {
        service_name: id.service_name.clone(),
        service_version: id.service_version.clone(),
        path,
    };
    let stripped = url.to_string();
    if stripped == id.path {
        vec![with(path_only)]
    } else {
        vec![with(stripped), with(path_only)]
    }
}

/// Makes `found` the list in force; maps whose hash changed or that are gone leave the cache.
fn update(inner: &Inner, found: HashMap<BundleKey, String>) {
    let invalid = {
        let mut m = inner.metadata.write().unwrap_or_else(|e| e.into_inner());
        replace_list(&mut m, found)
    };
    if !invalid.is_empty() {
        let mut cache = lock(&inner.cache);
        for id in &invalid {
            tracing::debug!(bundle.path = %id.path, "source map changed or removed: dropped from the cache");
            cache.remove(id);
        }
    }
}

/// APM Server's metadata update: `found` replaces the list; what changed hash or is gone is
/// returned, to leave the cache.
fn replace_list(m: &mut Metadata, mut found: HashMap<BundleKey, String>) -> Vec<BundleKey> {
    let mut invalid = Vec::new();
    let known: Vec<(BundleKey, String)> =
        m.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (id, hash) in known {
        match found.get(&id) {
            Some(new) if *new == hash => {
                found.remove(&id);
            }
            Some(_) => invalid.push(id),
            None => {
                m.set.remove(&id);
                for a in aliases(&id) {
                    m.alias.remove(&a);
                }
                invalid.push(id);
            }
        }
    }
    for (id, hash) in found {
        for a in aliases(&id) {
            m.alias.insert(a, id.clone());
        }
        m.set.insert(id, hash);
    }
    m.init_error = None;
    invalid
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

    #[test]
    fn a_changed_or_removed_map_is_invalidated_and_its_aliases_follow() {
        let mut m = Metadata::default();
        let url = key("http://h/b.js.map");
        let found = |list: &[(&BundleKey, &str)]| {
            list.iter()
                .map(|(k, h)| ((*k).clone(), h.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert!(replace_list(&mut m, found(&[(&url, "a"), (&key("/x.map"), "b")])).is_empty());
        assert_eq!(m.alias.get(&key("/b.js.map")), Some(&url));
        let mut invalid = replace_list(&mut m, found(&[(&url, "changed")]));
        invalid.sort();
        assert_eq!(invalid, vec![key("/x.map"), url.clone()]);
        assert_eq!(m.set.get(&url).map(String::as_str), Some("changed"));
        assert_eq!(replace_list(&mut m, HashMap::new()), vec![url]);
        assert!(m.alias.is_empty() && m.set.is_empty());
    }

    #[test]
    fn aliases_are_apm_servers() {
        assert!(aliases(&key("/test/bundle.js.map")).is_empty());
        assert_eq!(
            aliases(&key("http://localhost:8000/test/bundle.js.map")),
            vec![key("/test/bundle.js.map")]
        );
        assert_eq!(
            aliases(&key("http://h/b.js.map?v=2#x")),
            vec![key("http://h/b.js.map"), key("/b.js.map")]
        );
    }
}
