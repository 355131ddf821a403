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
use super::runtime::{Runtime, Shared};
use crate::access::gate::{self, Gate};
use crate::access::identity::PeerCertificate;
use crate::access::{self, AccessRequest, Outcome, Refusal};
use crate::intake;
use crate::intake::body::{self, TransportError};
use crate::intake::memory::DECOMPRESSOR_BYTES;
use crate::model::otlp::Encoding;
use crate::model::{self, RequestMeta};
use crate::policy::compiled::{IdentityKind, Listener, RouteName};
use crate::policy::types::Glob;
use crate::telemetry::Counter;

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

fn route_label(route: Option<RouteName>) -> &'static str {
    match route {
        Some(RouteName::Root) => "root",
        Some(RouteName::Intake) => "intake",
        Some(RouteName::RumIntake) => "rum_intake",
        Some(RouteName::Config) => "config",
        Some(RouteName::RumConfig) => "rum_config",
        Some(RouteName::Metrics) => "metrics",
        Some(RouteName::Otlp) => "otlp",
        None => "unknown",
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
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
            respond::refusal(&Refusal::Internal, None, json)
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
        Counter::RequestsTotal,
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

/// What CORS says of a request on a RUM route (it comes before authentication, as in APM
/// Server).
enum Cors {
    /// Not a RUM route.
    None,
    /// A preflight: answered at once, with the origin when it is allowed.
    Preflight(Option<String>),
    /// An allowed origin, echoed on the answer.
    Allowed(Option<HeaderValue>),
    /// An origin the policy does not allow.
    Refused(String),
}

fn cors(rt: &Runtime, route: Option<RouteName>, parts: &http::request::Parts) -> Cors {
    if !matches!(route, Some(RouteName::RumIntake | RouteName::RumConfig)) {
        return Cors::None;
    }
    let origin = header(&parts.headers, "origin").unwrap_or("");
    let allowed = origin_allowed(&rt.policy.rum.allow_origins, origin);
    if parts.method == Method::OPTIONS {
        return Cors::Preflight(allowed.then(|| origin.to_string()));
    }
    if !allowed {
        return Cors::Refused(origin.to_string());
    }
    Cors::Allowed(
        HeaderValue::try_from(origin)
            .ok()
            .filter(|_| !origin.is_empty()),
    )
}

/// Route -> decide -> handler; a refusal from any of them is rendered by `respond`.
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
    let json = respond::wants_json(&parts.headers);
    let cors_origin = match cors(rt, route, parts) {
        Cors::Preflight(origin) => return preflight(rt, origin.as_deref()),
        Cors::Refused(origin) => {
            let refusal = Refusal::OriginNotAllowed { origin };
            count_refusal(shared, &refusal);
            return respond::refusal(&refusal, route, json);
        }
        Cors::Allowed(origin) => origin,
        Cors::None => None,
    };
    // The whole request, its body included, must arrive within the read timeout, on every
    // route (the intake measures its own stream against the same bound).
    let answer = tokio::time::timeout(
        conn.listener.limits.read_timeout,
        decide_and_handle(shared, rt, conn, parts, body, route, json),
    )
    .await
    .unwrap_or(Err(Refusal::Timeout));
    let mut response = match answer {
        Ok(response) => response,
        Err(refusal) => {
            count_refusal(shared, &refusal);
            match route {
                // OTLP clients read OTLP's answers: gRPC statuses, or in the content type
                // they sent.
                Some(RouteName::Otlp) if super::grpc::is_grpc(parts) => {
                    respond::grpc_refusal(&refusal)
                }
                Some(RouteName::Otlp) => respond::otlp_refusal(
                    &refusal,
                    super::otlp::encoding(&parts.headers).unwrap_or(Encoding::Protobuf),
                ),
                _ => respond::refusal(&refusal, route, json),
            }
        }
    };
    respond::add_cors(&mut response, cors_origin);
    response
}

async fn decide_and_handle<B>(
    shared: &Shared,
    rt: &Runtime,
    conn: &ConnInfo,
    parts: &http::request::Parts,
    body: B,
    route: Option<RouteName>,
    json: bool,
) -> Result<Response<Body>, Refusal>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let policy = &rt.policy;
    let request = AccessRequest {
        listener: &conn.listener,
        method: parts.method.as_str(),
        path: parts.uri.path(),
        peer: conn.peer,
        headers: &parts.headers,
        client_cert: conn.cert.as_ref(),
    };
    let verifiers = access::Verifiers {
        key_cache: &rt.key_cache,
        argon2: &shared.argon2,
        elasticsearch: shared.es_keys.as_deref(),
        metrics: &shared.metrics,
    };
    let decision = access::decide_verified(policy, &request, &verifiers).await;
    let (full_root_body, events_refused) = match decision.outcome {
        Outcome::Allow {
            full_root_body,
            events_refused,
        } => (full_root_body, events_refused),
        Outcome::Deny(refusal) => {
            if let Refusal::DeniedByRule(Some(rule)) = &refusal {
                tracing::info!(listener = %conn.listener.name, client_ip = %decision.client_ip.ip, rule = %rule, path = %parts.uri.path(), "request denied by access rule");
            }
            return Err(refusal);
        }
        Outcome::NeedsElasticsearch { .. } => return Err(Refusal::ElasticsearchUnavailable),
    };
    let anonymous = decision
        .identity
        .as_ref()
        .is_some_and(|i| i.kind == IdentityKind::Anonymous);
    match route {
        Some(RouteName::Root) => Ok(root(shared, parts, full_root_body, json)),
        Some(r @ (RouteName::Intake | RouteName::RumIntake | RouteName::Otlp)) => {
            // The anonymous rate limit takes one token up front.
            let limiter = rt.rate_limiter.as_deref().filter(|_| anonymous);
            if limiter.is_some_and(|rl| !rl.allow(decision.client_ip.ip)) {
                return Err(Refusal::RateLimited);
            }
            let gate = gate::gate_for(
                events_refused,
                policy.auth.anonymous.as_ref().filter(|_| anonymous),
                limiter,
                decision.client_ip.ip,
            );
            let meta = RequestMeta {
                receipt_time: SystemTime::now(),
                rum: r == RouteName::RumIntake,
                client_ip: Some(decision.client_ip.ip),
                client_port: decision.client_ip.port,
                nat_ip: decision.client_ip.nat,
                user_agent: header(&parts.headers, "user-agent"),
            };
            if r == RouteName::Otlp {
                let limits = &conn.listener.limits;
                if super::grpc::is_grpc(parts) {
                    return super::grpc::handle(shared, rt, limits, parts, body, meta, &gate).await;
                }
                return super::otlp::handle(shared, rt, limits, parts, body, meta, &gate).await;
            }
            intake_route(
                shared,
                rt,
                conn,
                parts,
                body,
                meta,
                &gate,
                json,
                route_label(route),
            )
            .await
        }
        Some(RouteName::Config | RouteName::RumConfig) => {
            let body = collect_small(body, MAX_CONFIG_BODY).await;
            super::agent_config::handle(rt, shared, parts, body.as_deref(), anonymous, json)
        }
        Some(RouteName::Metrics) => {
            let mut r = Response::new(respond::full(shared.metrics.render()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(r)
        }
        None => Err(Refusal::NotFound),
    }
}

/// The largest configuration request body read (a JSON object naming a service).
const MAX_CONFIG_BODY: usize = 64 * 1024;

/// Counts a refusal under its reason.
fn count_refusal(shared: &Shared, refusal: &Refusal) {
    match refusal {
        Refusal::RateLimited => {
            shared
                .metrics
                .add(Counter::RateLimitedTotal, &[("stage", "request")], 1)
        }
        // What the intake refused is counted by the intake route; timeouts and bugs are not
        // access decisions.
        Refusal::Intake(_) | Refusal::Timeout | Refusal::Internal => {}
        _ => shared.metrics.add(
            Counter::AccessDeniedTotal,
            &[("reason", refusal.label())],
            1,
        ),
    }
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
        *r.body_mut() = respond::full(Bytes::new());
    }
    r
}

#[allow(clippy::too_many_arguments)]
async fn intake_route<B>(
    shared: &Shared,
    rt: &Runtime,
    conn: &ConnInfo,
    parts: &http::request::Parts,
    body: B,
    meta: RequestMeta<'_>,
    gate: &Gate<'_>,
    json: bool,
    route: &'static str,
) -> Result<Response<Body>, Refusal>
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
            return Err(Refusal::Intake(intake::IntakeResult::refused(format!(
                "invalid content type: '{ct}'"
            ))));
        }
    }
    let limits = &conn.listener.limits;
    let stream = BodyStream::new(body)
        .try_filter_map(|frame| std::future::ready(Ok(frame.into_data().ok())))
        .map_err(|e| std::io::Error::other(TransportError(e.to_string())));
    let reader = tokio_util::io::StreamReader::new(stream);
    // Waiting for a decoder slot counts against the read timeout, as in APM Server (the
    // router bounds the whole request by it).
    let _decoder = shared.decoders.acquire().await;
    // A decompressor is reserved before the body's first bytes say whether one is needed.
    let Some(mut decompressor) = shared.intake_memory.reserve(DECOMPRESSOR_BYTES) else {
        return Err(Refusal::Intake(intake::IntakeResult::unavailable(
            body::MEMORY_BUDGET_SPENT,
        )));
    };
    let result = match body::decode(reader, header(&parts.headers, "content-encoding")).await {
        Ok((decoded, encoding)) => {
            if encoding == body::Encoding::Identity {
                decompressor.resize(0);
            }
            let ctx = shared.stream_context(rt, limits, meta, gate, true);
            intake::process_stream(decoded, &ctx).await
        }
        Err(e) => intake::IntakeResult::refused(e.message()),
    };
    drop(decompressor);
    let labels = [("route", route)];
    let metrics = &shared.metrics;
    metrics.add(
        Counter::EventsAcceptedTotal,
        &labels,
        result.accepted as u64,
    );
    metrics.add(
        Counter::EventsRejectedTotal,
        &[("reason", "invalid")],
        result.invalid as u64,
    );
    metrics.add(
        Counter::EventsRejectedTotal,
        &[("reason", "too_large")],
        result.too_large as u64,
    );
    metrics.add(Counter::BytesReceivedTotal, &labels, result.bytes);
    match result.failure {
        None => return Ok(respond::accepted(&result, verbose, json)),
        Some(intake::Failure::RateLimited) => {
            metrics.add(Counter::RateLimitedTotal, &[("stage", "batch")], 1)
        }
        Some(intake::Failure::NotPermitted) if gate.refuses_all() => {
            metrics.add(Counter::AccessDeniedTotal, &[("reason", "privilege")], 1)
        }
        Some(_) => {}
    }
    Err(Refusal::Intake(result))
}

async fn collect_small<B>(body: B, limit: usize) -> Option<Vec<u8>>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limited = http_body_util::Limited::new(body, limit);
    limited.collect().await.ok().map(|c| c.to_bytes().to_vec())
}
