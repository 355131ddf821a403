//! `.apm-agent-configuration` as Kibana's APM app keeps it, read the way APM Server reads it:
//! a scrolled search (`POST /.apm-agent-configuration/_search?scroll=..&size=..`), its next
//! pages (`POST /_search/scroll?scroll=..&scroll_id=..`, or the id in a JSON body) and the
//! scroll cleared (`DELETE /_search/scroll/<id>`). Until entries are set the index does not
//! exist (404 `index_not_found_exception`, as Elasticsearch answers).

use std::collections::HashMap;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::{Value, json};

use super::{EsStandin, State, es_error, respond};

/// The index.
pub const INDEX: &str = ".apm-agent-configuration";

/// The index's documents and the scrolls open on it.
#[derive(Debug, Default)]
pub(crate) struct AgentConfigIndex {
    /// `_source` of each entry; `None`: no index.
    entries: Option<Vec<Value>>,
    /// Scroll id → the entries still to give.
    scrolls: HashMap<String, Vec<Value>>,
    next_scroll: u64,
    /// Searches and scroll pages answered with these statuses first.
    pub(crate) statuses: std::collections::VecDeque<u16>,
}

impl EsStandin {
    /// Sets the entries of `.apm-agent-configuration` (their `_source`, as Kibana writes them),
    /// creating the index.
    pub fn set_agent_configs(&self, entries: Vec<Value>) {
        self.state.lock().agent_config.entries = Some(entries);
    }

    /// Answers the next searches of the index (first pages and scroll pages alike) with these
    /// statuses instead of entries.
    pub fn fail_agent_config_searches(&self, statuses: &[u16]) {
        self.state
            .lock()
            .agent_config
            .statuses
            .extend(statuses.iter().copied());
    }

    /// Scrolls opened and not cleared.
    pub fn open_scrolls(&self) -> usize {
        self.state.lock().agent_config.scrolls.len()
    }

    /// Requests that searched the index or read one of its scroll pages.
    pub fn agent_config_searches(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && (r.path.ends_with("/_search") || r.path.ends_with("/_search/scroll"))
            })
            .count()
    }
}

fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
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
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn page(state: &State, scroll_id: String, size: usize) -> Response<Full<Bytes>> {
    let mut i = state.lock();
    let index = &mut i.agent_config;
    let rest = index.scrolls.entry(scroll_id.clone()).or_default();
    let take = rest.len().min(size);
    let hits: Vec<Value> = rest
        .drain(..take)
        .map(|source| json!({"_index": INDEX, "_id": source["etag"], "_score": 1.0, "_source": source}))
        .collect();
    respond(
        200,
        json!({
            "_scroll_id": scroll_id,
            "took": 1,
            "timed_out": false,
            "hits": {"total": {"value": hits.len(), "relation": "eq"}, "hits": hits},
        }),
    )
}

fn failed(state: &State) -> Option<Response<Full<Bytes>>> {
    let status = state.lock().agent_config.statuses.pop_front()?;
    let kind = match status {
        401 => "security_exception",
        403 => "security_exception",
        429 => "es_rejected_execution_exception",
        _ => "search_phase_execution_exception",
    };
    Some(respond(
        status,
        es_error(status, kind, "injected by the stand-in"),
    ))
}

/// `POST /.apm-agent-configuration/_search`.
pub(crate) fn search(state: &State, query: &str) -> Response<Full<Bytes>> {
    if let Some(r) = failed(state) {
        return r;
    }
    let size = param(query, "size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let scroll_id = {
        let mut i = state.lock();
        let index = &mut i.agent_config;
        let Some(entries) = index.entries.clone() else {
            return respond(
                404,
                es_error(
                    404,
                    "index_not_found_exception",
                    &format!("no such index [{INDEX}]"),
                ),
            );
        };
        if param(query, "scroll").is_none() {
            let hits: Vec<Value> = entries
                .into_iter()
                .take(size)
                .map(|s| json!({"_source": s}))
                .collect();
            return respond(200, json!({"hits": {"hits": hits}}));
        }
        index.next_scroll += 1;
        // Like Elasticsearch's: base64 with characters that must be encoded in a query.
        let id = format!(
            "FGluY2x1ZGVfY29udGV4dF91dWlk+{}/scroll==",
            index.next_scroll
        );
        index.scrolls.insert(id.clone(), entries);
        id
    };
    page(state, scroll_id, size)
}

/// `POST /_search/scroll`.
pub(crate) fn scroll(state: &State, query: &str, body: &[u8]) -> Response<Full<Bytes>> {
    if let Some(r) = failed(state) {
        return r;
    }
    let id = param(query, "scroll_id").map(percent_decode).or_else(|| {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["scroll_id"].as_str().map(str::to_owned))
    });
    let Some(id) = id.filter(|id| state.lock().agent_config.scrolls.contains_key(id)) else {
        return respond(
            404,
            es_error(
                404,
                "search_context_missing_exception",
                "No search context found",
            ),
        );
    };
    page(state, id, 100)
}

/// `DELETE /_search/scroll/<id>`.
pub(crate) fn clear(state: &State, id: &str) -> Response<Full<Bytes>> {
    let id = percent_decode(id);
    let freed = state.lock().agent_config.scrolls.remove(&id).is_some();
    respond(
        if freed { 200 } else { 404 },
        json!({"succeeded": freed, "num_freed": usize::from(freed)}),
    )
}
