//! The router: one service from request to response, shared by every protocol.
//!
//! It reads the current runtime once per request, applies CORS on RUM routes, asks `access`
//! for the decision, and dispatches to the route's handler. Whatever goes wrong becomes a
//! response through [`super::respond`]; nothing else writes a status line.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::HeaderValue;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, BodyStream};
use serde_json::json;

use super::respond::{self, Body};
use super::{Runtime, Shared};
use crate::access::identity::{PeerCertificate, verify_api_key};
use crate::access::{self, AccessRequest, Outcome};
use crate::intake::body::{self, TransportError};
use crate::intake::{self, BatchGate, OpenGate, StreamContext};
use crate::model::{self, RequestMeta};
use crate::policy::ast::RouteName;
use crate::policy::compiled::{IdentityKind, Listener};
use crate::policy::types::Glob;

/// The protocol a request arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 over TLS.
    H2,
    /// HTTP/2 over plaintext (prior knowledge).
    H2c,
    /// HTTP/3.
    H3,
}

impl Protocol {
    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Http1 => "http/1.1",
            Protocol::H2 => "h2",
            Protocol::H2c => "h2c",
            Protocol::H3 => "h3",
        }
    }
}

/// What the connection tells the router.
#[derive(Debug)]
pub struct ConnInfo {
    /// The listener.
    pub listener: Arc<Listener>,
    /// Socket peer.
    pub peer: SocketAddr,
    /// Verified client certificate.
    pub cert: Option<PeerCertificate>,
    /// Protocol.
    pub protocol: Protocol,
    /// `Alt-Svc` advertising HTTP/3 on this listener (TCP connections only).
    pub alt_svc: Option<HeaderValue>,
    /// Requests in flight on this connection (the idle timeout counts only while it is 0).
    pub active: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a request in flight on its connection until dropped.
struct ActiveRequest<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> ActiveRequest<'a> {
    fn new(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A hyper service for one connection.
pub fn service(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future: Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(&shared, &conn, req).await) }
    })
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn route_label(route: Option<RouteName>) -> &'static str {
    match route {
        Some(RouteName::Root) => "root",
        Some(RouteName::Intake) => "intake",
        Some(RouteName::RumIntake) => "rum_intake",
        Some(RouteName::Config) => "config",
        Some(RouteName::RumConfig) => "rum_config",
        Some(RouteName::Metrics) => "metrics",
        None => "unknown",
    }
}

/// Handles one request. Generic over the body so every protocol shares it. A panic while
/// handling becomes a 500 here, the one place internal failures turn into responses.
pub async fn handle<B>(shared: &Shared, conn: &ConnInfo, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    use futures_util::FutureExt;
    let json = respond::wants_json(req.headers());
    match std::panic::AssertUnwindSafe(serve(shared, conn, req))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(listener = %conn.listener.name, "request handler panicked; answered 500");
            respond::error(500, "internal server error", json)
        }
    }
}

async fn serve<B>(shared: &Shared, conn: &ConnInfo, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let _in_flight = shared.metrics.request();
    let _active = ActiveRequest::new(&conn.active);
    // hyper serves h2c on a plaintext connection by prior knowledge: tell it apart by version.
    let protocol = match (conn.protocol, req.version()) {
        (Protocol::Http1, http::Version::HTTP_2) => Protocol::H2c,
        (p, _) => p,
    };
    let started = std::time::Instant::now();
    let rt: Arc<Runtime> = shared.runtime.borrow().clone();
    let (parts, body) = req.into_parts();
    let route = access::route_for_path(parts.uri.path()).filter(|r| conn.listener.serves(*r));
    let mut response = dispatch(shared, &rt, conn, &parts, body, route).await;
    decorate(&rt, route, &mut response);
    if let Some(alt_svc) = &conn.alt_svc {
        response
            .headers_mut()
            .insert(http::header::ALT_SVC, alt_svc.clone());
    }
    shared.metrics.add(
        "apmgate_requests_total",
        &[
            ("listener", &conn.listener.name),
            ("route", route_label(route)),
            ("protocol", protocol.label()),
            ("status", response.status().as_str()),
        ],
        1,
    );
    // The access log: no header, query or body (they may hold credentials or personal data).
    tracing::debug!(
        listener = %conn.listener.name,
        protocol = protocol.label(),
        method = %parts.method,
        path = %parts.uri.path(),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// Headers that depend on the route: the policy's response headers on APM routes.
fn decorate(rt: &Runtime, route: Option<RouteName>, response: &mut Response<Body>) {
    match route {
        Some(RouteName::Metrics) | None => {}
        Some(r) => {
            respond::add_headers(response, &rt.policy.gateway.response_headers);
            if matches!(r, RouteName::RumIntake | RouteName::RumConfig) {
                respond::add_headers(response, &rt.policy.rum.response_headers);
            }
        }
    }
}

fn origin_allowed(origins: &[Glob], origin: &str) -> bool {
    origins.iter().any(|g| g.matches(origin))
}

async fn dispatch<B>(
    shared: &Shared,
    rt: &Runtime,
    conn: &ConnInfo,
    parts: &http::request::Parts,
    body: B,
    route: Option<RouteName>,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let policy = &rt.policy;
    let json = respond::wants_json(&parts.headers);
    let rum_route = matches!(route, Some(RouteName::RumIntake | RouteName::RumConfig));

    // CORS comes before authentication on RUM routes, as in APM Server.
    let mut cors_origin: Option<HeaderValue> = None;
    if rum_route {
        let origin = header(&parts.headers, "origin").unwrap_or("");
        let allowed = origin_allowed(&policy.rum.allow_origins, origin);
        if parts.method == Method::OPTIONS {
            return preflight(rt, allowed.then_some(origin));
        }
        if !allowed {
            shared
                .metrics
                .add("apmgate_access_denied_total", &[("reason", "cors")], 1);
            return respond::error(
                403,
                &format!("forbidden request: origin: '{origin}' is not allowed"),
                json,
            );
        }
        cors_origin = HeaderValue::try_from(origin)
            .ok()
            .filter(|_| !origin.is_empty());
    }

    let request = AccessRequest {
        listener: &conn.listener,
        method: parts.method.as_str(),
        path: parts.uri.path(),
        peer: conn.peer,
        headers: &parts.headers,
        client_cert: conn.cert.as_ref(),
    };
    let verify = |hash: &str, key: &str| cached_verify(rt, hash, key);
    let mut decision = access::decide(policy, &request, None, &verify);
    if let Outcome::NeedsElasticsearch { id } = &decision.outcome {
        // API keys verified by Elasticsearch: decide again with the identity it vouches for.
        // When it cannot answer, the outcome stays and the branch below answers 503.
        use crate::access::elasticsearch::Verdict;
        use crate::access::identity::{AuthError, Identity};
        match es_verdict(shared, parts).await {
            Some(Verdict::Valid(privileges)) => {
                let key = Identity {
                    kind: IdentityKind::ElasticsearchApiKey,
                    name: Some(id.clone()),
                    roles: Vec::new().into(),
                    privileges,
                };
                decision = access::decide(policy, &request, Some(key), &verify);
            }
            // `GET /` never refuses for want of credentials (as `access::decide`).
            Some(Verdict::Invalid) if route == Some(RouteName::Root) => {
                let nobody = Identity {
                    kind: IdentityKind::Anonymous,
                    name: None,
                    roles: Vec::new().into(),
                    privileges: Default::default(),
                };
                decision = access::decide(policy, &request, Some(nobody), &verify);
            }
            Some(Verdict::Invalid) => {
                decision.outcome = Outcome::Deny {
                    status: 401,
                    body: json!({ "error": AuthError::Invalid.to_string() }),
                    reason: access::DenyReason::Unauthenticated(AuthError::Invalid),
                };
            }
            None => {}
        }
    }
    let mut response = match decision.outcome {
        Outcome::Deny {
            status,
            body,
            reason,
        } => {
            shared.metrics.add(
                "apmgate_access_denied_total",
                &[("reason", reason.label())],
                1,
            );
            if let access::DenyReason::Rule(rule) = &reason {
                tracing::info!(listener = %conn.listener.name, client_ip = %decision.client_ip.ip, rule = %rule, path = %parts.uri.path(), "request denied by access rule");
            }
            if matches!(route, Some(RouteName::Config | RouteName::RumConfig)) {
                let mut r = respond::json(status, &body, json);
                r.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("max-age=300, must-revalidate"),
                );
                r
            } else {
                respond::json(status, &body, json)
            }
        }
        Outcome::NeedsElasticsearch { .. } => {
            // Elasticsearch could not verify the key (or there is no Elasticsearch output).
            shared.metrics.add(
                "apmgate_access_denied_total",
                &[("reason", "elasticsearch_unavailable")],
                1,
            );
            respond::error(503, "service unavailable", json)
        }
        Outcome::Allow {
            full_root_body,
            events_refused,
            ..
        } => {
            let identity = decision.identity.as_ref();
            let anonymous = identity.is_some_and(|i| i.kind == IdentityKind::Anonymous);
            // The anonymous rate limit takes one token up front.
            if anonymous && matches!(route, Some(RouteName::Intake | RouteName::RumIntake)) {
                if let Some(rl) = &rt.rate_limiter {
                    if !rl.allow(decision.client_ip.ip) {
                        shared.metrics.add(
                            "apmgate_rate_limited_total",
                            &[("stage", "request")],
                            1,
                        );
                        let mut r =
                            respond::error(429, "too many requests: rate limit exceeded", json);
                        add_cors(&mut r, cors_origin);
                        return r;
                    }
                }
            }
            match route {
                Some(RouteName::Root) => root(shared, parts, full_root_body, json),
                Some(RouteName::Intake | RouteName::RumIntake) => {
                    let gate = AnonymousGate {
                        rt,
                        ip: decision.client_ip.ip,
                    };
                    let refusing = events_refused.map(RefusingGate);
                    let gate: &dyn BatchGate = match &refusing {
                        Some(r) => r,
                        None if anonymous => &gate,
                        None => &OpenGate,
                    };
                    let meta = RequestMeta {
                        receipt_time: SystemTime::now(),
                        rum: route == Some(RouteName::RumIntake),
                        client_ip: Some(decision.client_ip.ip),
                        client_port: decision.client_ip.port,
                        nat_ip: decision.client_ip.nat,
                        user_agent: header(&parts.headers, "user-agent"),
                    };
                    let response = intake_route(
                        shared,
                        rt,
                        conn,
                        parts,
                        body,
                        meta,
                        gate,
                        json,
                        route_label(route),
                    )
                    .await;
                    if refusing.is_some() && response.status() == http::StatusCode::FORBIDDEN {
                        shared.metrics.add(
                            "apmgate_access_denied_total",
                            &[("reason", "privilege")],
                            1,
                        );
                    }
                    response
                }
                Some(RouteName::Config | RouteName::RumConfig) => {
                    let body = collect_small(body, 64 * 1024).await;
                    super::agent_config::handle(rt, parts, body.as_deref(), anonymous, json)
                }
                Some(RouteName::Metrics) => {
                    let mut r = Response::new(http_body_util::Full::new(Bytes::from(
                        shared.metrics.render(),
                    )));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    r
                }
                None => respond::error(404, "404 page not found", json),
            }
        }
    };
    add_cors(&mut response, cors_origin);
    response
}

/// The CORS headers of an allowed origin on a RUM route.
fn add_cors(response: &mut Response<Body>, origin: Option<HeaderValue>) {
    if let Some(origin) = origin {
        let h = response.headers_mut();
        h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(http::header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Etag"),
        );
    }
}

/// What Elasticsearch says of the request's API key; `None` when it cannot answer.
async fn es_verdict(
    shared: &Shared,
    parts: &http::request::Parts,
) -> Option<crate::access::elasticsearch::Verdict> {
    let verifier = shared.es_keys.as_ref()?;
    let token = header(&parts.headers, "authorization")?.strip_prefix("ApiKey ")?;
    verifier.verify(token).await.ok()
}

fn cached_verify(rt: &Runtime, hash: &str, key: &str) -> bool {
    let cache_key =
        crate::access::cache::VerificationCache::<bool>::key(&format!("{hash}\u{0}{key}"));
    if let Some(hit) = rt.key_cache.get(&cache_key) {
        return hit;
    }
    // Argon2 costs milliseconds by design: on the multi-threaded runtime, let the other tasks
    // of this worker move elsewhere while it runs.
    let ok = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| verify_api_key(hash, key))
        }
        _ => verify_api_key(hash, key),
    };
    rt.key_cache.put(cache_key, ok);
    ok
}

fn preflight(rt: &Runtime, origin: Option<&str>) -> Response<Body> {
    let mut r = respond::empty(200);
    let h = r.headers_mut();
    if let Some(origin) = origin.and_then(|o| HeaderValue::try_from(o).ok()) {
        h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    h.insert(
        http::header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("3600"),
    );
    h.insert(http::header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        http::header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    let mut allow: Vec<&str> = rt
        .policy
        .rum
        .allow_headers
        .iter()
        .map(String::as_str)
        .collect();
    allow.extend(["Content-Type", "Content-Encoding", "Accept"]);
    if let Ok(v) = HeaderValue::try_from(allow.join(", ")) {
        h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    h.insert(
        http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Etag"),
    );
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn root(shared: &Shared, parts: &http::request::Parts, full: bool, json: bool) -> Response<Body> {
    if !full {
        return respond::empty(200);
    }
    let body = json!({
        "build_date": env!("APMGATE_BUILD_DATE"),
        "build_sha": env!("APMGATE_BUILD_SHA"),
        "publish_ready": shared.publish_ready.load(Ordering::Relaxed),
        "version": model::APM_SERVER_VERSION,
        "apmgate": { "name": "apmgate", "version": env!("CARGO_PKG_VERSION") },
    });
    let mut r = respond::json(200, &body, json);
    if parts.method == Method::HEAD {
        *r.body_mut() = http_body_util::Full::new(Bytes::new());
    }
    r
}

/// A caller without `event:write`: every batch is refused, as APM Server authorizes per batch.
struct RefusingGate(access::BatchRefusal);

impl BatchGate for RefusingGate {
    fn authorize(&self, _: &model::Document) -> Result<(), String> {
        Err(self.0.reason())
    }

    fn acquire(
        &self,
        _: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(std::future::ready(true))
    }
}

/// Anonymous callers: allow_agent / allow_service per event, and the per-IP rate limit.
struct AnonymousGate<'a> {
    rt: &'a Runtime,
    ip: std::net::IpAddr,
}

impl BatchGate for AnonymousGate<'_> {
    fn authorize(&self, document: &model::Document) -> Result<(), String> {
        let Some(anon) = &self.rt.policy.auth.anonymous else {
            return Ok(());
        };
        let agent = document.agent_name.as_deref().unwrap_or("");
        if !anon.allow_agent.is_empty() && !anon.allow_agent.iter().any(|a| a == agent) {
            return Err(format!(
                "anonymous access not permitted for agent \"{agent}\""
            ));
        }
        let service = document.service_name.as_deref().unwrap_or("");
        if !anon.allow_service.is_empty() && !anon.allow_service.iter().any(|s| s == service) {
            return Err(format!(
                "anonymous access not permitted for service \"{service}\""
            ));
        }
        Ok(())
    }

    fn acquire(
        &self,
        events: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            match &self.rt.rate_limiter {
                Some(rl) => rl.acquire(self.ip, events).await,
                None => true,
            }
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn intake_route<B>(
    shared: &Shared,
    rt: &Runtime,
    conn: &ConnInfo,
    parts: &http::request::Parts,
    body: B,
    meta: RequestMeta<'_>,
    gate: &dyn BatchGate,
    json: bool,
    route: &'static str,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let verbose = parts.uri.query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.split('=').next() == Some("verbose"))
    });
    if let Some(ct) = header(&parts.headers, "content-type") {
        if !ct.contains("application/x-ndjson") {
            let result = intake::IntakeResult {
                errors: vec![intake::IntakeError {
                    message: format!("invalid content type: '{ct}'"),
                    document: None,
                }],
                failure: Some(intake::Failure::BadRequest),
                ..Default::default()
            };
            return respond::intake(&result, verbose, json);
        }
    }
    let limits = &conn.listener.limits;
    let stream = BodyStream::new(body)
        .try_filter_map(|frame| std::future::ready(Ok(frame.into_data().ok())))
        .map_err(|e| std::io::Error::other(TransportError(e.to_string())));
    let reader = tokio_util::io::StreamReader::new(stream);
    let work = async {
        // Waiting for a decoder slot counts against the read timeout, as in APM Server.
        let _decoder = shared.decoders.acquire().await;
        let (decoded, _) =
            match body::decode(reader, header(&parts.headers, "content-encoding")).await {
                Ok(d) => d,
                Err(e) => {
                    return intake::IntakeResult {
                        errors: vec![intake::IntakeError {
                            message: e.message(),
                            document: None,
                        }],
                        failure: Some(intake::Failure::BadRequest),
                        ..Default::default()
                    };
                }
            };
        let ctx = StreamContext {
            max_event_size: usize::try_from(limits.max_event_size).unwrap_or(usize::MAX),
            max_body_size: limits.max_body_size,
            request: meta,
            model: &rt.model,
            gate,
            output: shared.output.as_ref(),
        };
        intake::process_stream(decoded, &ctx).await
    };
    let result = match tokio::time::timeout(limits.read_timeout, work).await {
        Ok(r) => r,
        Err(_) => return respond::error(503, "request timed out", json),
    };
    let labels = [("route", route)];
    shared.metrics.add(
        "apmgate_events_accepted_total",
        &labels,
        result.accepted as u64,
    );
    shared.metrics.add(
        "apmgate_events_rejected_total",
        &[("reason", "invalid")],
        result.invalid as u64,
    );
    shared.metrics.add(
        "apmgate_events_rejected_total",
        &[("reason", "too_large")],
        result.too_large as u64,
    );
    shared
        .metrics
        .add("apmgate_bytes_received_total", &labels, result.bytes);
    if result.failure == Some(intake::Failure::TooManyRequests) {
        shared
            .metrics
            .add("apmgate_rate_limited_total", &[("stage", "batch")], 1);
    }
    respond::intake(&result, verbose, json)
}

async fn collect_small<B>(body: B, limit: usize) -> Option<Vec<u8>>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limited = http_body_util::Limited::new(body, limit);
    limited.collect().await.ok().map(|c| c.to_bytes().to_vec())
}
