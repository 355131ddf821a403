//! Agents: each one keeps one connection (HTTP/1.1, HTTP/2 or HTTP/3, plaintext or TLS) and
//! POSTs the payload over it again and again, reconnecting when the server closes it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How an agent talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    /// HTTP/1.1 over plaintext TCP.
    H1,
    /// HTTP/2 over plaintext TCP, by prior knowledge.
    H2c,
    /// HTTP/1.1 over TLS.
    H1s,
    /// HTTP/2 over TLS (ALPN `h2`).
    H2,
    /// HTTP/3 over QUIC (TLS 1.3, ALPN `h3`).
    H3,
}

impl Protocol {
    /// Whether the protocol runs over TLS.
    pub(crate) fn tls(self) -> bool {
        matches!(self, Protocol::H1s | Protocol::H2 | Protocol::H3)
    }

    /// The ALPN protocol offered.
    fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Protocol::H1s => vec![b"http/1.1".to_vec()],
            Protocol::H2 => vec![b"h2".to_vec()],
            Protocol::H3 => vec![b"h3".to_vec()],
            Protocol::H1 | Protocol::H2c => Vec::new(),
        }
    }
}

/// Where the agents send, and how.
pub(crate) struct Target {
    /// The server's socket address.
    pub addr: SocketAddr,
    /// `host:port` of the URL (the TLS server name is the host).
    pub authority: String,
    /// Path and query.
    pub path: String,
    /// Protocol.
    pub protocol: Protocol,
    /// TLS client configuration (trusting `--ca`) for the TLS protocols.
    pub tls: Option<rustls::ClientConfig>,
    /// Headers of every request.
    pub headers: Vec<(String, String)>,
}

impl Target {
    fn server_name(&self) -> String {
        let host = match self.authority.rsplit_once(':') {
            Some((h, _)) => h,
            None => &self.authority,
        };
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, BoxError> {
        let mut config = self
            .tls
            .clone()
            .ok_or("a TLS protocol needs --ca (the CA that signed the server's certificate)")?;
        config.alpn_protocols = self.protocol.alpn();
        Ok(Arc::new(config))
    }

    fn request(&self, body: &Bytes) -> http::Request<Full<Bytes>> {
        let uri = match self.protocol {
            // HTTP/1.1 sends the origin form and a Host header.
            Protocol::H1 | Protocol::H1s => self.path.clone(),
            Protocol::H2c => format!("http://{}{}", self.authority, self.path),
            Protocol::H2 | Protocol::H3 => format!("https://{}{}", self.authority, self.path),
        };
        let mut req = http::Request::post(uri);
        if matches!(self.protocol, Protocol::H1 | Protocol::H1s) {
            req = req.header("host", &self.authority);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.body(Full::new(body.clone()))
            .expect("headers were checked when the target was built")
    }
}

/// One connection of one agent.
enum Connection {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    H3 {
        send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
        driver: tokio::task::JoinHandle<()>,
        endpoint: quinn::Endpoint,
    },
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Connection::H3 {
            driver, endpoint, ..
        } = self
        {
            driver.abort();
            endpoint.close(0u32.into(), b"done");
        }
    }
}

async fn connect(target: &Target) -> Result<Connection, BoxError> {
    if target.protocol == Protocol::H3 {
        let quic =
            quinn::crypto::rustls::QuicClientConfig::try_from((*target.tls_config()?).clone())?;
        let bind: SocketAddr = if target.addr.is_ipv6() {
            "[::1]:0".parse()?
        } else {
            "127.0.0.1:0".parse()?
        };
        let mut endpoint = quinn::Endpoint::client(bind)?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let conn = endpoint
            .connect(target.addr, &target.server_name())?
            .await?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
        let driver = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        return Ok(Connection::H3 {
            send,
            driver,
            endpoint,
        });
    }
    let tcp = tokio::net::TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    if target.protocol.tls() {
        let connector = tokio_rustls::TlsConnector::from(target.tls_config()?);
        let name = rustls_pki_types::ServerName::try_from(target.server_name())?;
        let tls = connector.connect(name, tcp).await?;
        handshake(target.protocol, TokioIo::new(tls)).await
    } else {
        handshake(target.protocol, TokioIo::new(tcp)).await
    }
}

async fn handshake<I>(protocol: Protocol, io: I) -> Result<Connection, BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if matches!(protocol, Protocol::H1 | Protocol::H1s) {
        let (send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        Ok(Connection::H1(send))
    } else {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        Ok(Connection::H2(send))
    }
}

impl Connection {
    fn is_closed(&self) -> bool {
        match self {
            Connection::H1(s) => s.is_closed(),
            Connection::H2(s) => s.is_closed(),
            Connection::H3 { driver, .. } => driver.is_finished(),
        }
    }

    /// Sends one request and reads the whole answer; returns its status.
    async fn exchange(&mut self, target: &Target, body: &Bytes) -> Result<u16, BoxError> {
        let req = target.request(body);
        match self {
            Connection::H1(send) => {
                send.ready().await?;
                let resp = send.send_request(req).await?;
                let status = resp.status().as_u16();
                resp.into_body().collect().await?;
                Ok(status)
            }
            Connection::H2(send) => {
                send.ready().await?;
                let resp = send.send_request(req).await?;
                let status = resp.status().as_u16();
                let grpc = resp.headers().get("grpc-status").cloned();
                let body = resp.into_body().collect().await?;
                // A gRPC call's outcome is its `grpc-status` (in the trailers, or in the
                // headers of a trailers-only answer): 1000 + the code when it failed.
                let grpc = grpc.or_else(|| body.trailers()?.get("grpc-status").cloned());
                match grpc.and_then(|v| v.to_str().ok()?.parse::<u16>().ok()) {
                    Some(code) if code != 0 => Ok(1000 + code),
                    _ => Ok(status),
                }
            }
            Connection::H3 { send, .. } => {
                let (parts, _) = req.into_parts();
                let mut stream = send
                    .send_request(http::Request::from_parts(parts, ()))
                    .await?;
                stream.send_data(body.clone()).await?;
                stream.finish().await?;
                let resp = stream.recv_response().await?;
                while let Some(mut chunk) = stream.recv_data().await? {
                    chunk.advance(chunk.remaining());
                }
                Ok(resp.status().as_u16())
            }
        }
    }
}

/// What one agent saw.
#[derive(Default)]
pub(crate) struct AgentReport {
    /// Latency of each answered request.
    pub latencies: Vec<Duration>,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, reset, protocol error).
    pub transport_errors: u64,
    /// The first transport error, for the report.
    pub first_error: Option<String>,
}

/// Plays one agent until the deadline, or until the shared event budget is spent.
pub(crate) async fn play(
    target: Arc<Target>,
    body: Bytes,
    events_per_request: u64,
    budget: Arc<AtomicU64>,
    limit: u64,
    deadline: Instant,
) -> AgentReport {
    let mut report = AgentReport::default();
    let mut conn: Option<Connection> = None;
    loop {
        if Instant::now() >= deadline
            || (limit > 0 && budget.fetch_add(events_per_request, Ordering::Relaxed) >= limit)
        {
            break;
        }
        if conn.as_ref().is_none_or(Connection::is_closed) {
            conn = match connect(&target).await {
                Ok(c) => Some(c),
                Err(e) => {
                    report.transport_errors += 1;
                    report.first_error.get_or_insert_with(|| e.to_string());
                    // Do not spin on a server that is down.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
        }
        let Some(c) = conn.as_mut() else { continue };
        let started = Instant::now();
        match c.exchange(&target, &body).await {
            Ok(status) => {
                report.latencies.push(started.elapsed());
                *report.statuses.entry(status).or_default() += 1;
            }
            Err(e) => {
                report.transport_errors += 1;
                report.first_error.get_or_insert_with(|| e.to_string());
                conn = None;
            }
        }
    }
    report
}
