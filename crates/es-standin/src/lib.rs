//! An Elasticsearch stand-in that speaks the real protocol on 127.0.0.1 (port 0):
//! `GET /` (with `X-Elastic-Product: Elasticsearch`), `POST|PUT /_bulk` (gzip or plain; checks
//! `require_data_stream=true`, the `create` action lines and the data stream names; answers
//! per-item statuses in Elasticsearch's shape, with `filter_path` applied or not),
//! `/_security/user/_has_privileges`, `.apm-agent-configuration` read by a scrolled search, and
//! the `.apm-source-map` index Kibana writes source maps to (`sourcemap.rs`).
//! It records every request and every indexed document, and injects faults on command:
//! per-item status mixes, whole-request statuses, latency, dropped connections (before or after
//! indexing), and being down (listener closed) for a while.
//!
//! Shared by apmgate's tests (a dev-dependency of `tests/support`) and `apmgate-load
//! es-standin` (load runs, counting instead of recording). Only for loopback: it trusts every
//! caller, unwraps on setup errors and keeps what it records in memory.
#![forbid(unsafe_code)]

mod agent_config;
mod security;
mod sourcemap;
pub use sourcemap::kibana_content;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    /// The body as sent (maybe gzip).
    pub raw_body: Bytes,
    /// The body decompressed.
    pub body: Vec<u8>,
}

/// Faults to inject. Queues are consumed front first; empty queues mean "behave".
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Status of each next bulk item (201 = created).
    pub item_statuses: VecDeque<u16>,
    /// Status of each next whole bulk request (answered without indexing anything).
    pub request_statuses: VecDeque<u16>,
    /// Delay before answering any request.
    pub latency: Duration,
    /// Next bulk requests whose connection is dropped before anything is indexed.
    pub drop_before_index: usize,
    /// Next bulk requests whose documents are indexed, then the connection dropped.
    pub drop_after_index: usize,
    /// Next `GET /` answered 503.
    pub root_failures: usize,
    /// `_has_privileges` answers 503.
    pub privileges_unavailable: bool,
    /// Ignore `filter_path` (answer the full shape).
    pub ignore_filter_path: bool,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    docs: Vec<(String, Value)>,
    faults: Faults,
    /// `ApiKey` token → privileges granted on application `apm`, resource `-`.
    keys: HashMap<String, Vec<String>>,
    /// When set, bulk and `GET /` need exactly this `Authorization`.
    expect_authorization: Option<String>,
    seq: u64,
    dropped: u64,
    /// Bulk requests being handled now, and the most ever at once.
    bulk_now: usize,
    bulk_max: usize,
    /// With `count_only`: bulk requests and documents indexed.
    bulk_requests: u64,
    indexed: u64,
    /// `.apm-agent-configuration`.
    agent_config: agent_config::AgentConfigIndex,
    /// Users, and API keys made through the security API.
    security: security::Security,
    /// `.apm-source-map` (sourcemap.rs).
    source_maps: sourcemap::Index,
}

struct State {
    inner: Mutex<Inner>,
    changed: Notify,
    prefix: String,
    count_only: bool,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// TLS for the stand-in: certificate chain and key (PEM files).
pub struct StandinTls {
    pub chain: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Options.
#[derive(Default)]
pub struct StandinOptions {
    /// Serve under this path prefix (e.g. `/es`).
    pub prefix: String,
    pub tls: Option<StandinTls>,
    /// Address to listen on (default `127.0.0.1:0`).
    pub bind: Option<SocketAddr>,
    /// Count bulk requests and documents instead of recording them (for load runs, where
    /// recording would grow without bound). Documents are still parsed and checked.
    pub count_only: bool,
}

/// A running stand-in.
pub struct EsStandin {
    pub addr: SocketAddr,
    state: Arc<State>,
    /// Bumped to close the listener and every connection.
    generation: watch::Sender<u64>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl EsStandin {
    pub async fn start() -> Self {
        Self::start_with(StandinOptions::default()).await
    }

    pub async fn start_with(options: StandinOptions) -> Self {
        let tls = options.tls.map(|t| {
            use rustls_pki_types::pem::PemObject;
            let chain = rustls_pki_types::CertificateDer::pem_file_iter(&t.chain)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&t.key).unwrap();
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let bind = options
            .bind
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            prefix: options.prefix,
            count_only: options.count_only,
        });
        let (generation, _) = watch::channel(0);
        let s = Self {
            addr,
            state,
            generation,
            tls,
        };
        s.serve(listener);
        s
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let mut gen_rx = self.generation.subscribe();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let my_gen = *gen_rx.borrow_and_update();
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                    _ = gen_rx.changed() => return,
                };
                let state = state.clone();
                let mut conn_gen = gen_rx.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let kill = Arc::new(Notify::new());
                    let k = kill.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        let kill = k.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req, &kill).await) }
                    });
                    let serve = async {
                        match tls {
                            Some(acceptor) => {
                                let Ok(s) = acceptor.accept(stream).await else {
                                    return;
                                };
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(s), svc)
                                    .await;
                            }
                            None => {
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            }
                        }
                    };
                    // Dropping the connection future closes the socket without an answer.
                    tokio::select! {
                        _ = serve => {}
                        _ = kill.notified() => {}
                        _ = async { while *conn_gen.borrow_and_update() == my_gen { if conn_gen.changed().await.is_err() { break } } } => {}
                    }
                });
            }
        });
    }

    /// `http://127.0.0.1:port` (or `https://localhost:port` with TLS).
    pub fn url(&self) -> String {
        if self.tls.is_some() {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Changes the faults.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.state.lock().faults);
    }

    /// Requires this `Authorization` on bulk and `GET /`.
    pub fn expect_authorization(&self, value: &str) {
        self.state.lock().expect_authorization = Some(value.to_string());
    }

    /// Registers an API key (`id`, `key`) with privileges on application `apm`; returns the
    /// token an agent sends (`base64(id:key)`).
    pub fn add_api_key(&self, id: &str, key: &str, privileges: &[&str]) -> String {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"));
        self.state.lock().keys.insert(
            token.clone(),
            privileges.iter().map(|p| p.to_string()).collect(),
        );
        token
    }

    /// Every indexed document: (data stream, document).
    /// Bulk requests received and documents indexed (recorded or counted).
    pub fn counts(&self) -> (u64, u64) {
        let i = self.state.lock();
        let bulk = i.bulk_requests
            + i.requests
                .iter()
                .filter(|r| r.path.ends_with("/_bulk"))
                .count() as u64;
        (bulk, i.indexed + i.docs.len() as u64)
    }

    pub fn docs(&self) -> Vec<(String, Value)> {
        self.state.lock().docs.clone()
    }

    /// The most bulk requests ever handled at once.
    pub fn max_concurrent_bulk(&self) -> usize {
        self.state.lock().bulk_max
    }

    /// Every request received.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().requests.clone()
    }

    /// The bulk requests received.
    pub fn bulk_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/_bulk"))
            .collect()
    }

    /// Waits until `cond` holds over the indexed documents, or panics after `timeout`.
    pub async fn wait_docs(&self, timeout: Duration, cond: impl Fn(&[(String, Value)]) -> bool) {
        self.wait(timeout, |i| cond(&i.docs)).await
    }

    /// Waits until `cond` holds over the requests received, or panics after `timeout`.
    pub async fn wait_requests(&self, timeout: Duration, cond: impl Fn(&[Recorded]) -> bool) {
        self.wait(timeout, |i| cond(&i.requests)).await
    }

    async fn wait(&self, timeout: Duration, cond: impl Fn(&Inner) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.state.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if cond(&self.state.lock()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let i = self.state.lock();
                panic!(
                    "stand-in: condition not reached within {timeout:?} ({} requests, {} documents)",
                    i.requests.len(),
                    i.docs.len()
                );
            }
        }
    }

    /// Waits until `cond` holds over the number of documents indexed by all of `hosts`
    /// together (a client spreading its bulk requests over several hosts), or panics after
    /// `timeout`. Woken by each host as it indexes, like `wait_docs`.
    pub async fn wait_docs_across(
        hosts: &[&EsStandin],
        timeout: Duration,
        cond: impl Fn(usize) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let total = || {
            hosts
                .iter()
                .map(|h| h.state.lock().docs.len())
                .sum::<usize>()
        };
        loop {
            let mut changed: Vec<_> = hosts
                .iter()
                .map(|h| Box::pin(h.state.changed.notified()))
                .collect();
            for c in &mut changed {
                c.as_mut().enable();
            }
            if cond(total()) {
                return;
            }
            let any = std::future::poll_fn(|cx| {
                if changed.iter_mut().any(|c| c.as_mut().poll(cx).is_ready()) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            });
            if tokio::time::timeout_at(deadline, any).await.is_err() {
                panic!(
                    "stand-ins: condition not reached within {timeout:?} ({} documents on {} hosts)",
                    total(),
                    hosts.len()
                );
            }
        }
    }

    /// Closes the listener and every connection (connections are then refused), and listens
    /// again on the same port after `d`.
    pub async fn down_for(&self, d: Duration) {
        self.generation.send_modify(|g| *g += 1);
        let addr = self.addr;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        tokio::time::sleep(d).await;
        socket.bind(addr).unwrap();
        let listener = socket.listen(128).unwrap();
        self.serve(listener);
    }

    /// Stops listening for good.
    pub fn stop(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

fn respond(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("x-elastic-product", "Elasticsearch".parse().unwrap());
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn es_error(status: u16, error_type: &str, reason: &str) -> Value {
    json!({
        "error": {
            "root_cause": [{"type": error_type, "reason": reason}],
            "type": error_type,
            "reason": reason,
        },
        "status": status,
    })
}

fn item_error_type(status: u16) -> &'static str {
    match status {
        400 => "document_parsing_exception",
        404 => "index_not_found_exception",
        429 => "es_rejected_execution_exception",
        500 => "illegal_state_exception",
        503 => "unavailable_shards_exception",
        _ => "exception",
    }
}

fn is_data_stream(name: &str) -> bool {
    let parts: Vec<&str> = name.splitn(2, '-').collect();
    parts.len() == 2
        && matches!(parts[0], "traces" | "logs" | "metrics")
        && parts[1].rsplit_once('-').is_some_and(|(ds, ns)| {
            !ds.is_empty() && !ns.is_empty() && name.chars().all(|c| !c.is_ascii_uppercase())
        })
}

async fn handle(
    state: &State,
    req: Request<hyper::body::Incoming>,
    kill: &Notify,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let raw_body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let gzip = parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let body = if gzip {
        let mut out = Vec::new();
        if flate2::read::MultiGzDecoder::new(&raw_body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return bad_request("parse_exception", "invalid gzip body");
        }
        out
    } else {
        raw_body.to_vec()
    };
    let full_path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: full_path.clone(),
        query: query.clone(),
        headers: parts.headers.clone(),
        raw_body,
        body: body.clone(),
    };
    let is_bulk = full_path.ends_with("/_bulk");
    let (latency, expect_auth) = {
        let mut i = state.lock();
        if is_bulk && state.count_only {
            i.bulk_requests += 1;
        } else {
            i.requests.push(recorded);
        }
        if is_bulk {
            i.bulk_now += 1;
            i.bulk_max = i.bulk_max.max(i.bulk_now);
        }
        (i.faults.latency, i.expect_authorization.clone())
    };
    // Counts down when the request ends, answered or dropped.
    struct Leave<'a>(&'a State, bool);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            if self.1 {
                self.0.lock().bulk_now -= 1;
            }
        }
    }
    let _leave = Leave(state, is_bulk);
    state.changed.notify_waiters();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some(path) = full_path.strip_prefix(state.prefix.as_str()) else {
        return respond(404, es_error(404, "not_found", "no such path"));
    };
    let path = if path.is_empty() { "/" } else { path };
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let unauthenticated = || {
        respond(
            401,
            es_error(
                401,
                "security_exception",
                "missing authentication credentials",
            ),
        )
    };
    let response = match (parts.method.as_str(), path) {
        ("GET" | "HEAD", "/") => {
            if expect_auth.is_some() && auth != expect_auth {
                unauthenticated()
            } else {
                let fail = {
                    let mut i = state.lock();
                    let f = i.faults.root_failures > 0;
                    if f {
                        i.faults.root_failures -= 1;
                    }
                    f
                };
                if fail {
                    respond(
                        503,
                        es_error(503, "master_not_discovered_exception", "not ready"),
                    )
                } else {
                    respond(
                        200,
                        json!({
                            "name": "standin-0",
                            "cluster_name": "apmgate-standin",
                            "cluster_uuid": "c2FtcGxlLWNsdXN0ZXI",
                            "version": {"number": "8.15.0", "build_flavor": "default"},
                            "tagline": "You Know, for Search"
                        }),
                    )
                }
            }
        }
        ("GET" | "POST", "/_security/user/_has_privileges") => {
            security::user_privileges(state, auth.as_deref(), &body)
                .unwrap_or_else(|| has_privileges(state, auth, &body))
        }
        ("POST" | "PUT", "/_security/api_key") => security::create(state, auth.as_deref(), &body),
        ("GET", "/_security/api_key") => security::get(state, auth.as_deref(), &query),
        ("DELETE", "/_security/api_key") => security::invalidate(state, auth.as_deref(), &body),
        (_, _) if expect_auth.is_some() && auth != expect_auth && path.contains("_search") => {
            unauthenticated()
        }
        // Before the agent configuration's scroll routes: scrolls of the source map index
        // are answered by it.
        (m, p) if sourcemap::handles(state, p, &query) => {
            sourcemap::handle(state, m, p, &query, kill).await
        }
        ("POST" | "GET", p) if p == format!("/{}/_search", agent_config::INDEX) => {
            agent_config::search(state, &query)
        }
        ("POST" | "GET", "/_search/scroll") => agent_config::scroll(state, &query, &body),
        ("DELETE", p) if p.starts_with("/_search/scroll/") => {
            agent_config::clear(state, &p["/_search/scroll/".len()..])
        }
        ("POST" | "PUT", "/_bulk") => {
            if expect_auth.is_some() && auth != expect_auth {
                unauthenticated()
            } else {
                bulk(state, &query, &body, kill).await
            }
        }
        _ => respond(404, es_error(404, "not_found", "no handler")),
    };
    state.changed.notify_waiters();
    response
}

fn has_privileges(state: &State, auth: Option<String>, body: &[u8]) -> Response<Full<Bytes>> {
    let token = auth.as_deref().and_then(|a| a.strip_prefix("ApiKey "));
    // Keys made through the security API first (they take the lock themselves).
    let made = token.and_then(|t| security::key_privileges(state, t));
    let i = state.lock();
    if i.faults.privileges_unavailable {
        return respond(503, es_error(503, "cluster_block_exception", "unavailable"));
    }
    let granted = match made {
        Some(live) => live,
        None => token.and_then(|t| i.keys.get(t)).cloned(),
    };
    let Some(granted) = granted else {
        return respond(
            401,
            es_error(
                401,
                "security_exception",
                "unable to authenticate with provided credentials",
            ),
        );
    };
    let req: Value = serde_json::from_slice(body).unwrap_or_default();
    let mut answer = serde_json::Map::new();
    let mut all = true;
    for app in req["application"].as_array().into_iter().flatten() {
        for p in app["privileges"].as_array().into_iter().flatten() {
            let p = p.as_str().unwrap_or("");
            let has = granted.iter().any(|g| g == p);
            all &= has;
            answer.insert(p.to_string(), Value::Bool(has));
        }
    }
    respond(
        200,
        json!({
            "username": "api-key-owner",
            "has_all_requested": all,
            "cluster": {},
            "index": {},
            "application": {"apm": {"-": answer}}
        }),
    )
}

/// A 400 in Elasticsearch's shape.
fn bad_request(error_type: &str, reason: &str) -> Response<Full<Bytes>> {
    respond(400, es_error(400, error_type, reason))
}

async fn bulk(state: &State, query: &str, body: &[u8], kill: &Notify) -> Response<Full<Bytes>> {
    let params: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    if params.get("require_data_stream") != Some(&"true") {
        return bad_request(
            "illegal_argument_exception",
            "stand-in: require_data_stream=true is required",
        );
    }
    let (whole, drop_before, drop_after, ignore_filter) = {
        let mut i = state.lock();
        let whole = i.faults.request_statuses.pop_front();
        let before = whole.is_none() && i.faults.drop_before_index > 0;
        if before {
            i.faults.drop_before_index -= 1;
            i.dropped += 1;
        }
        let after = whole.is_none() && !before && i.faults.drop_after_index > 0;
        if after {
            i.faults.drop_after_index -= 1;
            i.dropped += 1;
        }
        (whole, before, after, i.faults.ignore_filter_path)
    };
    if let Some(status) = whole {
        let t = match status {
            429 => "es_rejected_execution_exception",
            503 => "cluster_block_exception",
            _ => "exception",
        };
        return respond(
            status,
            es_error(status, t, "stand-in: injected request failure"),
        );
    }
    if drop_before {
        kill.notify_one();
        std::future::pending::<()>().await;
    }
    let text = String::from_utf8_lossy(body);
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
    if lines.len() % 2 != 0 {
        return bad_request(
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        );
    }
    let mut items = Vec::new();
    let mut errors = false;
    for (n, pair) in lines.chunks(2).enumerate() {
        let action: Value = match serde_json::from_str(pair[0]) {
            Ok(v) => v,
            Err(_) => {
                return bad_request(
                    "x_content_parse_exception",
                    &format!("malformed action/metadata line [{}]", n * 2 + 1),
                );
            }
        };
        let obj = action.as_object();
        let create = obj
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get("create"))
            .and_then(Value::as_object);
        let Some(create) = create else {
            return bad_request(
                "illegal_argument_exception",
                &format!(
                    "stand-in: action line [{}] is not a create action",
                    n * 2 + 1
                ),
            );
        };
        if create.keys().any(|k| k != "_index") {
            return bad_request(
                "illegal_argument_exception",
                &format!(
                    "Action/metadata line [{}] contains an unknown parameter",
                    n * 2 + 1
                ),
            );
        }
        let index = create
            .get("_index")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // Counting, the document is checked (a JSON object) without building its tree.
        let (doc, is_object) = if state.count_only {
            let ok = pair[1].trim_start().starts_with('{')
                && serde_json::from_str::<serde::de::IgnoredAny>(pair[1]).is_ok();
            (None, ok)
        } else {
            let doc: Option<Value> = serde_json::from_str(pair[1]).ok();
            let ok = doc.as_ref().is_some_and(Value::is_object);
            (doc, ok)
        };
        let injected = state.lock().faults.item_statuses.pop_front();
        let status = if !is_data_stream(&index) {
            404
        } else if !is_object {
            400
        } else {
            injected.unwrap_or(201)
        };
        let mut item = serde_json::Map::new();
        let seq = {
            let mut i = state.lock();
            i.seq += 1;
            i.seq
        };
        item.insert(
            "_index".into(),
            json!(format!(".ds-{index}-2026.11.23-000001")),
        );
        item.insert("_id".into(), json!(format!("doc-{seq}")));
        if (200..300).contains(&status) {
            let mut i = state.lock();
            if state.count_only {
                i.indexed += 1;
            } else {
                i.docs.push((index.clone(), doc.unwrap_or_default()));
            }
            drop(i);
            item.insert("_version".into(), json!(1));
            item.insert("result".into(), json!("created"));
            item.insert(
                "_shards".into(),
                json!({"total": 1, "successful": 1, "failed": 0}),
            );
            item.insert("_seq_no".into(), json!(seq));
            item.insert("_primary_term".into(), json!(1));
        } else {
            errors = true;
            let reason = if status == 404 {
                format!(
                    "no such index [{index}] and [require_data_stream] request flag is [true] and [{index}] is not a data stream"
                )
            } else {
                format!("stand-in: injected item failure {status}")
            };
            item.insert(
                "error".into(),
                json!({"type": item_error_type(status), "reason": reason, "index": index}),
            );
        }
        item.insert("status".into(), json!(status));
        items.push(json!({ "create": item }));
    }
    if drop_after {
        kill.notify_one();
        std::future::pending::<()>().await;
    }
    let filter = params.get("filter_path").filter(|_| !ignore_filter);
    let body = match filter {
        None => json!({"took": 1, "errors": errors, "items": items}),
        Some(f) => {
            let keep: Vec<&str> = f
                .split(',')
                .filter_map(|p| p.strip_prefix("items.*."))
                .collect();
            let items: Vec<Value> = items
                .iter()
                .map(|it| {
                    let (action, fields) = it.as_object().unwrap().iter().next().unwrap();
                    let mut out = serde_json::Map::new();
                    for k in &keep {
                        let mut path = k.split('.');
                        let first = path.next().unwrap();
                        let Some(v) = fields.get(first) else { continue };
                        match path.next() {
                            None => {
                                out.insert(first.into(), v.clone());
                            }
                            Some(sub) => {
                                if let Some(sv) = v.get(sub) {
                                    out.entry(first.to_string())
                                        .or_insert_with(|| json!({}))
                                        .as_object_mut()
                                        .unwrap()
                                        .insert(sub.into(), sv.clone());
                                }
                            }
                        }
                    }
                    let mut wrapped = serde_json::Map::new();
                    wrapped.insert(action.clone(), Value::Object(out));
                    Value::Object(wrapped)
                })
                .collect();
            json!({ "items": items })
        }
    };
    respond(200, body)
}
