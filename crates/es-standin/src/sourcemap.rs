//! The stand-in's `.apm-source-map` index: source maps stored as Kibana stores them (`_id`
//! `<service.name>-<service.version>-<bundle path>`, `content` zlib-compressed and base64-encoded,
//! `content_sha256`), read as APM Server reads them: `POST /.apm-source-map/_search` with
//! `_source` filtering and `scroll`, `POST /_search/scroll`, `DELETE /_search/scroll/<id>`, and
//! `GET /.apm-source-map/_doc/<id>`. Pages hold 10 hits, Elasticsearch's default size, so a
//! reader that does not scroll misses maps.
//!
//! Fault: with [`EsStandin::source_maps_down`], every request to the index or to the scroll API
//! has its connection dropped (the cluster unreachable for source maps, while bulk goes on).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::Notify;

use super::{EsStandin, State, es_error, respond};

/// Hits per page of a search or scroll.
const PAGE: usize = 10;

/// The index and its scrolls.
#[derive(Default)]
pub(crate) struct Index {
    /// `_id` → `_source`.
    docs: BTreeMap<String, Value>,
    /// Scroll id → hits not yet returned.
    scrolls: HashMap<String, VecDeque<Value>>,
    next_scroll: u64,
    down: bool,
}

/// Whether a request is for the index, or for one of its scrolls (the scroll API is shared
/// with the other indices: a scroll is answered by the index that opened it).
pub(crate) fn handles(state: &State, path: &str, query: &str) -> bool {
    if path.starts_with("/.apm-source-map/") || path == "/.apm-source-map" {
        return true;
    }
    let id = if path == "/_search/scroll" {
        params(query).remove("scroll_id")
    } else {
        path.strip_prefix("/_search/scroll/").map(percent_decode)
    };
    id.is_some_and(|id| state.lock().source_maps.scrolls.contains_key(&id))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn params(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

/// `_source` filtering: `a`, `a.b` and `a.*` patterns.
fn filter_source(source: &Value, patterns: Option<&String>) -> Value {
    let Some(patterns) = patterns else {
        return source.clone();
    };
    let mut out = serde_json::Map::new();
    for p in patterns.split(',') {
        let (top, rest) = match p.split_once('.') {
            Some((t, r)) => (t, Some(r)),
            None => (p, None),
        };
        let Some(v) = source.get(top) else { continue };
        match rest {
            None | Some("*") => {
                out.insert(top.to_string(), v.clone());
            }
            Some(sub) => {
                if let Some(sv) = v.get(sub) {
                    out.entry(top.to_string())
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                        .expect("an object")
                        .insert(sub.to_string(), sv.clone());
                }
            }
        }
    }
    Value::Object(out)
}

fn hit(id: &str, source: Value) -> Value {
    json!({"_index": ".apm-source-map", "_id": id, "_score": 1.0, "_source": source})
}

fn page(scroll_id: Option<&str>, total: usize, hits: Vec<Value>) -> Value {
    let mut body = json!({
        "took": 1,
        "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": total, "relation": "eq"}, "max_score": 1.0, "hits": hits}
    });
    if let Some(id) = scroll_id {
        body["_scroll_id"] = json!(id);
    }
    body
}

/// Answers a request for the index or the scroll API.
pub(crate) async fn handle(
    state: &State,
    method: &str,
    path: &str,
    query: &str,
    kill: &Notify,
) -> Response<Full<Bytes>> {
    if state.lock().source_maps.down {
        kill.notify_one();
        std::future::pending::<()>().await;
    }
    let params = params(query);
    let mut i = state.lock();
    let index = &mut i.source_maps;
    match (method, path) {
        ("GET" | "POST", "/.apm-source-map/_search") => {
            let mut hits: VecDeque<Value> = index
                .docs
                .iter()
                .map(|(id, s)| hit(id, filter_source(s, params.get("_source"))))
                .collect();
            let total = hits.len();
            let first: Vec<Value> = hits.drain(..hits.len().min(PAGE)).collect();
            let scroll_id = params.contains_key("scroll").then(|| {
                index.next_scroll += 1;
                let id = format!("c2Nyb2xs{}==", index.next_scroll);
                index.scrolls.insert(id.clone(), hits);
                id
            });
            respond(200, page(scroll_id.as_deref(), total, first))
        }
        ("GET" | "POST", "/_search/scroll") => {
            let Some(id) = params.get("scroll_id") else {
                return respond(
                    400,
                    es_error(
                        400,
                        "action_request_validation_exception",
                        "scrollId is missing",
                    ),
                );
            };
            match index.scrolls.get_mut(id) {
                Some(rest) => {
                    let next: Vec<Value> = rest.drain(..rest.len().min(PAGE)).collect();
                    respond(200, page(Some(id), next.len(), next))
                }
                None => respond(
                    404,
                    es_error(
                        404,
                        "search_phase_execution_exception",
                        "No search context found",
                    ),
                ),
            }
        }
        ("DELETE", p) if p.starts_with("/_search/scroll/") => {
            let id = percent_decode(&p["/_search/scroll/".len()..]);
            let freed = index.scrolls.remove(&id).is_some();
            respond(
                if freed { 200 } else { 404 },
                json!({"succeeded": freed, "num_freed": u8::from(freed)}),
            )
        }
        ("GET", p) if p.starts_with("/.apm-source-map/_doc/") => {
            let id = percent_decode(&p["/.apm-source-map/_doc/".len()..]);
            match index.docs.get(&id) {
                Some(source) => respond(
                    200,
                    json!({"_index": ".apm-source-map", "_id": id, "_version": 1, "_seq_no": 0,
                           "_primary_term": 1, "found": true, "_source": source}),
                ),
                None => respond(
                    404,
                    json!({"_index": ".apm-source-map", "_id": id, "found": false}),
                ),
            }
        }
        _ => respond(404, es_error(404, "not_found", "no handler")),
    }
}

/// Kibana's `content`: zlib, then base64.
pub fn kibana_content(map: &[u8]) -> String {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(map).expect("in memory");
    base64::engine::general_purpose::STANDARD.encode(z.finish().expect("in memory"))
}

impl EsStandin {
    /// Stores a source map as Kibana does, for `service_name`, `service_version` and
    /// `bundle_path`; a map stored again under the same key replaces it (new hash).
    pub fn put_source_map(
        &self,
        service_name: &str,
        service_version: &str,
        bundle_path: &str,
        map: &[u8],
    ) {
        let hash = hex(&sha2::Sha256::digest(map));
        self.put_source_map_content(
            service_name,
            service_version,
            bundle_path,
            &kibana_content(map),
            &hash,
        );
    }

    /// Stores a source map document whose `content` is given as is (to store what Kibana
    /// would not).
    pub fn put_source_map_content(
        &self,
        service_name: &str,
        service_version: &str,
        bundle_path: &str,
        content: &str,
        content_sha256: &str,
    ) {
        let id = format!("{service_name}-{service_version}-{bundle_path}");
        let source = json!({
            "service": {"name": service_name, "version": service_version},
            "file": {"path": bundle_path},
            "content": content,
            "content_sha256": content_sha256,
            "fleet_id": null,
            "created": "2026-12-01T00:00:00.000Z"
        });
        self.state.lock().source_maps.docs.insert(id, source);
    }

    /// Deletes a source map.
    pub fn delete_source_map(&self, service_name: &str, service_version: &str, bundle_path: &str) {
        let id = format!("{service_name}-{service_version}-{bundle_path}");
        self.state.lock().source_maps.docs.remove(&id);
    }

    /// Drops the connection of every source map request while `down` (bulk goes on).
    pub fn source_maps_down(&self, down: bool) {
        self.state.lock().source_maps.down = down;
    }

    /// Source map documents fetched (`GET /.apm-source-map/_doc/...`).
    pub fn source_map_fetches(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/.apm-source-map/_doc/"))
            .count()
    }

    /// Searches of the source map index (reads of the list of maps).
    pub fn source_map_searches(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.ends_with("/.apm-source-map/_search"))
            .count()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
