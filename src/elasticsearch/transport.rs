//! HTTP to Elasticsearch: a pooled HTTP/1.1 client (rustls or native-tls), the hosts in
//! round-robin with a failed host skipped for a backoff period, the path prefix, credentials
//! and the headers every request carries.
//!
//! Credentials are `HeaderValue`s marked sensitive and never formatted into an error or a log
//! line; errors name the host and what went wrong, nothing else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::backoff;
use super::tls::{ClientTlsError, native_connector, rustls_config};
use crate::policy::compiled::{EsCredentials, EsOutputSettings, TlsBackend};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("apmgate/", env!("CARGO_PKG_VERSION"));

/// Largest response body read (bulk responses of large requests without `filter_path`).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// How long an answer may take once a request is sent. Elasticsearch answers a bulk request
/// within seconds unless it is in trouble; APM Server has no such limit, the OpenTelemetry
/// Collector's exporter uses 90 s.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(90);

enum HttpClient {
    Rustls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
    Native(Client<hyper_tls::HttpsConnector<HttpConnector>, Full<Bytes>>),
}

struct Host {
    /// `scheme://host:port` followed by the path prefix.
    base: String,
    /// `scheme://host:port`, for logs.
    name: String,
    /// Skipped until then, after failures.
    dead_until: Mutex<Option<(Instant, u32)>>,
}

/// Why a request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// No connection could be made: the request never left.
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// Host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The connection failed after the request may have been sent, or no answer came in time:
    /// Elasticsearch may have acted on it.
    #[error("no answer from {host}: {reason}")]
    Sent {
        /// Host.
        host: String,
        /// Why.
        reason: String,
    },
}

/// An answer.
#[derive(Debug)]
pub struct EsResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (decompressed: requests do not ask for compression).
    pub body: Bytes,
    /// Which host answered (for logs).
    pub host: String,
}

/// Errors building the transport.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// TLS.
    #[error(transparent)]
    Tls(#[from] ClientTlsError),
    /// A header or credential cannot be sent.
    #[error("Elasticsearch output: {0}")]
    Invalid(String),
}

/// The transport: one connection pool to the output's hosts at a time, which a reload replaces
/// (requests already sent finish on the pool they started on).
pub struct Transport {
    current: RwLock<Arc<Connection>>,
    credentials: Credentials,
    max_idle_per_host: usize,
}

impl Transport {
    /// Builds the client for the output's settings.
    pub fn new(
        settings: &EsOutputSettings,
        credentials: Credentials,
        max_idle_per_host: usize,
    ) -> Result<Self, TransportError> {
        Ok(Self {
            current: RwLock::new(Arc::new(Connection::new(
                settings,
                credentials,
                max_idle_per_host,
            )?)),
            credentials,
            max_idle_per_host,
        })
    }

    fn current(&self) -> Arc<Connection> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Builds what [`Transport::replace`] puts in use, without changing anything.
    pub fn prepare(
        &self,
        settings: &EsOutputSettings,
    ) -> Result<PreparedTransport, TransportError> {
        Connection::new(settings, self.credentials, self.max_idle_per_host)
            .map(|c| PreparedTransport(Arc::new(c)))
    }

    /// Sends the requests that start from now on to the prepared hosts, with its credentials,
    /// TLS and headers.
    pub fn replace(&self, next: PreparedTransport) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next.0;
    }

    /// How many hosts there are.
    pub fn host_count(&self) -> usize {
        self.current().hosts.len()
    }

    /// Sends one request to the next host. `path` starts with `/` and may carry a query; the
    /// path prefix is added. `authorization` replaces the transport's own credentials.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        extra: &[(HeaderName, HeaderValue)],
        authorization: Option<&HeaderValue>,
    ) -> Result<EsResponse, SendError> {
        // The pool of the moment: a reload replaces it for the requests that start later.
        let conn = self.current();
        let i = conn.pick();
        let Some(host) = conn.hosts.get(i) else {
            return Err(SendError::Connect {
                host: "(none)".into(),
                reason: "no Elasticsearch host is configured".into(),
            });
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", host.base))
            .body(Full::new(body))
            .map_err(|e| SendError::Connect {
                host: host.name.clone(),
                reason: format!("invalid request: {e}"),
            })?;
        let h = req.headers_mut();
        for (k, v) in &conn.headers {
            h.append(k.clone(), v.clone());
        }
        if let Some(auth) = authorization.or(conn.authorization.as_ref()) {
            h.insert(http::header::AUTHORIZATION, auth.clone());
        }
        for (k, v) in extra {
            h.insert(k.clone(), v.clone());
        }
        let call = async {
            let response = match &conn.client {
                HttpClient::Rustls(c) => c.request(req).await,
                HttpClient::Native(c) => c.request(req).await,
            };
            let response = response.map_err(|e| {
                let reason = error_chain(&e);
                if e.is_connect() {
                    SendError::Connect {
                        host: host.name.clone(),
                        reason,
                    }
                } else {
                    SendError::Sent {
                        host: host.name.clone(),
                        reason,
                    }
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| SendError::Sent {
                    host: host.name.clone(),
                    reason: format!("reading the answer: {e}"),
                })?
                .to_bytes();
            Ok(EsResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
                host: host.name.clone(),
            })
        };
        let result = match tokio::time::timeout(RESPONSE_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Sent {
                host: host.name.clone(),
                reason: format!("no answer within {}s", RESPONSE_TIMEOUT.as_secs()),
            }),
        };
        match &result {
            Ok(r) if matches!(r.status, 502..=504) => conn.failed(i),
            Ok(_) => conn.succeeded(i),
            Err(_) => conn.failed(i),
        }
        result
    }
}

/// A transport built for a reload, not yet in use.
pub struct PreparedTransport(Arc<Connection>);

/// A connection pool to a set of hosts, with their credentials, TLS and headers.
struct Connection {
    client: HttpClient,
    hosts: Vec<Host>,
    next: AtomicUsize,
    authorization: Option<HeaderValue>,
    headers: HeaderMap,
    backoff_init: Duration,
    backoff_max: Duration,
}

/// Whether the transport sends the output's own credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// The output's `api_key` or `username`/`password`.
    Own,
    /// None: each request brings its own (API key verification, as APM Server blanks its
    /// credentials for that client).
    PerRequest,
}

impl Connection {
    fn new(
        settings: &EsOutputSettings,
        credentials: Credentials,
        max_idle_per_host: usize,
    ) -> Result<Self, TransportError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.timeout));
        http.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_max_idle_per_host(max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60));
        let client = match settings.tls.backend {
            TlsBackend::Rustls => {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(rustls_config(&settings.tls)?)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                HttpClient::Rustls(builder.build(connector))
            }
            TlsBackend::NativeTls => {
                let tls = tokio_native_tls::TlsConnector::from(native_connector(&settings.tls)?);
                let mut connector = hyper_tls::HttpsConnector::from((http, tls));
                connector.https_only(false);
                HttpClient::Native(builder.build(connector))
            }
        };
        let authorization = match (credentials, &settings.credentials) {
            (Credentials::PerRequest, _) | (_, EsCredentials::None) => None,
            (Credentials::Own, EsCredentials::ApiKey(slot)) => {
                let key = slot.value.as_ref().ok_or_else(|| {
                    TransportError::Invalid("the API key was not resolved".into())
                })?;
                Some(sensitive(&format!(
                    "ApiKey {}",
                    base64::engine::general_purpose::STANDARD.encode(key.expose())
                ))?)
            }
            (Credentials::Own, EsCredentials::Basic { username, password }) => {
                let password = password.value.as_ref().ok_or_else(|| {
                    TransportError::Invalid("the password was not resolved".into())
                })?;
                Some(sensitive(&format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{}", password.expose()))
                ))?)
            }
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &settings.headers {
            let name = HeaderName::try_from(k.as_str())
                .map_err(|_| TransportError::Invalid(format!("invalid header name `{k}`")))?;
            if credentials == Credentials::PerRequest && name == http::header::AUTHORIZATION {
                continue;
            }
            let value = HeaderValue::try_from(v.as_str())
                .map_err(|_| TransportError::Invalid(format!("invalid value of header `{k}`")))?;
            headers.append(name, value);
        }
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        if settings
            .hosts
            .iter()
            .any(|h| h.split("://").nth(1).is_some_and(|a| a.contains('@')))
        {
            // Never echo the host: it would carry the credential into the error.
            return Err(TransportError::Invalid(
                "a host URL carries credentials; put them in `api_key` or `username`/`password`"
                    .into(),
            ));
        }
        let hosts = settings
            .hosts
            .iter()
            .map(|h| Host {
                base: format!("{h}{}", settings.path),
                name: h.clone(),
                dead_until: Mutex::new(None),
            })
            .collect();
        Ok(Self {
            client,
            hosts,
            next: AtomicUsize::new(0),
            authorization,
            headers,
            backoff_init: settings.backoff_init,
            backoff_max: settings.backoff_max,
        })
    }

    /// The next host in round-robin order that is not being skipped; when every host is, the
    /// one that comes back first.
    fn pick(&self) -> usize {
        let n = self.hosts.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let mut soonest: Option<(Instant, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let Some(host) = self.hosts.get(i) else {
                continue;
            };
            match *host.dead_until.lock().unwrap_or_else(|e| e.into_inner()) {
                Some((until, _)) if until > now => {
                    if soonest.is_none_or(|(s, _)| until < s) {
                        soonest = Some((until, i));
                    }
                }
                _ => return i,
            }
        }
        soonest.map_or(start, |(_, i)| i)
    }

    fn failed(&self, i: usize) {
        if let Some(host) = self.hosts.get(i) {
            let mut d = host.dead_until.lock().unwrap_or_else(|e| e.into_inner());
            let failures = d.map_or(0, |(_, f)| f) + 1;
            let wait = backoff(self.backoff_init, self.backoff_max, failures);
            *d = Some((Instant::now() + wait, failures));
        }
    }

    fn succeeded(&self, i: usize) {
        if let Some(host) = self.hosts.get(i) {
            *host.dead_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, TransportError> {
    let mut v = HeaderValue::try_from(value).map_err(|_| {
        TransportError::Invalid("the credentials cannot be sent in a header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// An error and its sources, joined: hyper's top-level messages alone say little.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
