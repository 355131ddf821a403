//! One listener: accepts connections, runs TLS and serves HTTP/1.1 or HTTP/2 on each.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};

use super::error::ServerError;
use super::router::{ConnInfo, Protocol};
use super::runtime::Shared;
use super::tls::{self, Acceptor};
use crate::policy::compiled::{self, Listener};
use crate::policy::types::Bind;
use crate::telemetry::Counter;

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A bound listener.
pub struct BoundListener {
    /// The configuration it was bound with (name, address, TLS and HTTP/3 on or off).
    listener: Arc<Listener>,
    /// The configuration new connections are served with, which a reload replaces.
    current: Arc<RwLock<Arc<Listener>>>,
    socket: Option<Socket>,
    acceptor: Option<Arc<RwLock<Acceptor>>>,
    quic: Option<quinn::Endpoint>,
}

/// What a reload replaces in a running listener: its TLS, whole (certificate rotation: new
/// handshakes use the new certificate, key and CAs), and the configuration new connections
/// are served with (routes, protocols, limits). Connections already open keep theirs.
#[derive(Clone)]
pub struct ListenerSlot {
    name: String,
    current: Arc<RwLock<Arc<Listener>>>,
    acceptor: Option<Arc<RwLock<Acceptor>>>,
    quic: Option<quinn::Endpoint>,
}

/// TLS built for a reload, not yet in use.
pub struct PreparedTls {
    acceptor: Option<Acceptor>,
    quic: Option<quinn::ServerConfig>,
}

impl ListenerSlot {
    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration new connections are served with.
    pub fn current(&self) -> Arc<Listener> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Serves new connections with `next`.
    pub fn set_current(&self, next: Arc<Listener>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// Builds the TLS of `next` (the reloaded policy's listener of the same name), reading its
    /// files again; `Ok(None)` when the listener has no TLS to replace.
    pub fn prepare(&self, next: &Listener) -> Result<Option<PreparedTls>, tls::TlsError> {
        let Some(profile) = &next.tls else {
            return Ok(None);
        };
        let acceptor = match &self.acceptor {
            Some(_) => Some(tls::acceptor(next, profile)?),
            None => None,
        };
        let quic = match (&self.quic, next.speaks(compiled::Protocol::Http3)) {
            (Some(_), true) => Some(tls::quic_config(next, profile)?),
            _ => None,
        };
        Ok(Some(PreparedTls { acceptor, quic }))
    }

    /// Puts prepared TLS in use for the handshakes that start from now on.
    pub fn install(&self, prepared: PreparedTls) {
        if let (Some(slot), Some(a)) = (&self.acceptor, prepared.acceptor) {
            *slot.write().unwrap_or_else(|e| e.into_inner()) = a;
        }
        if let (Some(ep), Some(config)) = (&self.quic, prepared.quic) {
            ep.set_server_config(Some(config));
        }
    }
}

/// The accept queue's length: the system's `somaxconn`, as Go's listeners (and so APM Server)
/// use, so that a burst of agents connecting at once is queued rather than dropped and retried
/// seconds later. (tokio's `TcpListener::bind` uses 1024.)
fn accept_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(4096)
        .clamp(128, 65_535)
}

/// A TCP listener on `addr` with `SO_REUSEADDR` (as tokio's `bind`) and the system's backlog.
fn tcp_listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(accept_backlog())
}

fn bind_err(l: &Listener, source: std::io::Error) -> ServerError {
    ServerError::Bind {
        listener: l.name.clone(),
        addr: l.bind.to_string(),
        source,
    }
}

impl BoundListener {
    /// Binds the listener's address and loads its TLS profile.
    pub async fn bind(listener: Arc<Listener>) -> Result<Self, ServerError> {
        // With port 0 the system picks the TCP port, and HTTP/3 then needs the same UDP port,
        // which another socket may hold: pick again a few times before giving up.
        let any_port = matches!(&listener.bind, Bind::Ip(a) if a.port() == 0);
        let mut attempts = if any_port && listener.speaks(compiled::Protocol::Http3) {
            8
        } else {
            1
        };
        loop {
            attempts -= 1;
            match Self::bind_once(listener.clone()).await {
                Err(ServerError::Bind { source, .. })
                    if attempts > 0 && source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    async fn bind_once(listener: Arc<Listener>) -> Result<Self, ServerError> {
        let acceptor = match &listener.tls {
            Some(profile) => Some(Arc::new(RwLock::new(tls::acceptor(&listener, profile)?))),
            None => None,
        };
        let tcp = listener
            .protocols
            .iter()
            .any(|p| *p != compiled::Protocol::Http3);
        let socket = if !tcp {
            None
        } else {
            Some(match &listener.bind {
                Bind::Ip(addr) => {
                    Socket::Tcp(tcp_listen(*addr).map_err(|e| bind_err(&listener, e))?)
                }
                Bind::Host(host, port) => {
                    let mut last = std::io::Error::other("the host name resolves to no address");
                    let mut bound = None;
                    for addr in tokio::net::lookup_host((host.as_str(), *port))
                        .await
                        .map_err(|e| bind_err(&listener, e))?
                    {
                        match tcp_listen(addr) {
                            Ok(l) => {
                                bound = Some(l);
                                break;
                            }
                            Err(e) => last = e,
                        }
                    }
                    Socket::Tcp(bound.ok_or_else(|| bind_err(&listener, last))?)
                }
                Bind::Unix(path) => {
                    clear_stale_socket(path).map_err(|e| bind_err(&listener, e))?;
                    Socket::Unix(UnixListener::bind(path).map_err(|e| bind_err(&listener, e))?)
                }
            })
        };
        let quic = match (&listener.tls, listener.speaks(compiled::Protocol::Http3)) {
            (Some(profile), true) => {
                // Same address and port as the TCP side (the port the system chose, for port 0).
                let addr = match (&socket, &listener.bind) {
                    (Some(Socket::Tcp(t)), _) => {
                        t.local_addr().map_err(|e| bind_err(&listener, e))?
                    }
                    (_, Bind::Ip(a)) => *a,
                    (_, Bind::Host(h, p)) => tokio::net::lookup_host((h.as_str(), *p))
                        .await
                        .map_err(|e| bind_err(&listener, e))?
                        .next()
                        .ok_or_else(|| bind_err(&listener, std::io::Error::other("no address")))?,
                    (_, Bind::Unix(_)) => {
                        return Err(bind_err(
                            &listener,
                            std::io::Error::other("HTTP/3 needs an IP address"),
                        ));
                    }
                };
                let config = tls::quic_config(&listener, profile)?;
                Some(quinn::Endpoint::server(config, addr).map_err(|e| bind_err(&listener, e))?)
            }
            _ => None,
        };
        Ok(Self {
            current: Arc::new(RwLock::new(listener.clone())),
            listener,
            socket,
            acceptor,
            quic,
        })
    }

    /// Listener name.
    pub fn name(&self) -> &str {
        &self.listener.name
    }

    /// The handle a reload replaces the listener's TLS and configuration through.
    pub fn slot(&self) -> ListenerSlot {
        ListenerSlot {
            name: self.listener.name.clone(),
            current: self.current.clone(),
            acceptor: self.acceptor.clone(),
            quic: self.quic.clone(),
        }
    }

    /// Bound address (TCP, else QUIC).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Some(Socket::Tcp(t)) => t.local_addr().ok(),
            Some(Socket::Unix(_)) => None,
            None => self.quic.as_ref().and_then(|q| q.local_addr().ok()),
        }
    }

    /// Accepts and serves until `stop` turns true, then drains within the shutdown timeout.
    pub async fn serve(self, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
        let limits = self.listener.limits.clone();
        let alt_svc = self
            .quic
            .as_ref()
            .and_then(|q| q.local_addr().ok())
            .and_then(|a| {
                http::HeaderValue::try_from(format!("h3=\":{}\"; ma=86400", a.port())).ok()
            });
        let quic_task = self.quic.clone().map(|ep| {
            tokio::spawn(super::h3::serve(
                ep,
                self.current.clone(),
                shared.clone(),
                stop.clone(),
            ))
        });
        let Some(socket) = self.socket else {
            if let Some(t) = quic_task {
                let _ = t.await;
            }
            return;
        };
        let permits = limits
            .max_connections
            .map(|m| Arc::new(Semaphore::new(usize::try_from(m).unwrap_or(usize::MAX))));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tracing::info!(listener = %self.listener.name, bind = %self.listener.bind, tls = self.acceptor.is_some(), "listening");
        loop {
            let permit = match &permits {
                Some(sem) => tokio::select! {
                    p = sem.clone().acquire_owned() => p.ok(),
                    _ = stop.changed() => break,
                },
                None => None,
            };
            let accepted = tokio::select! {
                a = accept(&socket) => a,
                _ = stop.changed() => break,
            };
            let (io, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(listener = %self.listener.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let transport = if self.acceptor.is_some() {
                "tls"
            } else {
                "tcp"
            };
            shared.metrics.add(
                Counter::ConnectionsTotal,
                &[("listener", &self.listener.name), ("transport", transport)],
                1,
            );
            // Served with the configuration of the moment (a reload may have replaced it).
            let listener = self
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let limits = listener.limits.clone();
            let acceptor = self
                .acceptor
                .as_ref()
                .map(|a| a.read().unwrap_or_else(|e| e.into_inner()).clone());
            let shared = shared.clone();
            let builder = connection_builder(&limits);
            let watcher = graceful.watcher();
            let alt_svc = alt_svc.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _open = shared.metrics.connection();
                let handshake = tokio::time::timeout(
                    limits.tls_handshake_timeout,
                    establish(io, acceptor.as_ref()),
                );
                let (stream, cert, h2) = match handshake.await {
                    Ok(Ok(x)) => x,
                    Ok(Err(e)) => {
                        tracing::debug!(listener = %listener.name, peer = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(listener = %listener.name, peer = %peer, "TLS handshake timed out");
                        return;
                    }
                };
                let protocol = match (acceptor.is_some(), h2) {
                    (true, true) => Protocol::H2,
                    (true, false) => Protocol::Http1,
                    (false, _) => Protocol::Http1,
                };
                let conn = Arc::new(ConnInfo {
                    listener: listener.clone(),
                    peer,
                    cert,
                    protocol,
                    alt_svc,
                    active: Default::default(),
                });
                let active = conn.active.clone();
                let service = super::router::service(shared.clone(), conn);
                let mut builder = builder;
                let http1 = listener.speaks(compiled::Protocol::Http1);
                if acceptor.is_some() {
                    builder = match (h2, http1) {
                        (true, _) => builder.http2_only(),
                        (false, true) => builder.http1_only(),
                        (false, false) => {
                            // No ALPN (or not h2) on a listener that serves HTTP/2 only.
                            tracing::debug!(listener = %listener.name, peer = %peer, "TLS client did not negotiate h2; closing");
                            return;
                        }
                    };
                } else {
                    builder = match (listener.speaks(compiled::Protocol::H2c), http1) {
                        (true, true) => builder,
                        (true, false) => builder.http2_only(),
                        (false, _) => builder.http1_only(),
                    };
                }
                let stream = super::timeout::ConnectionTimeouts::new(
                    stream,
                    limits.write_timeout,
                    limits.idle_timeout,
                    active,
                );
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(connection.into_owned()).await {
                    tracing::debug!(listener = %listener.name, peer = %peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(permits);
        // Stop listening before draining, so new connections are refused rather than queued.
        drop(socket);
        if let Bind::Unix(path) = &self.listener.bind {
            let _ = std::fs::remove_file(path);
        }
        let timeout = limits.shutdown_timeout;
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(timeout) => {
                tracing::warn!(listener = %self.listener.name, "shutdown timeout reached with requests still in flight");
            }
        }
        if let Some(t) = quic_task {
            let _ = t.await;
        }
    }
}

/// The HTTP/1.1 and HTTP/2 settings a connection is served with (public for the fuzz
/// harness, which serves connections as a listener does).
pub fn connection_builder(limits: &compiled::Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // A client that sends its request and shuts down its side still gets its answer
        // (as from APM Server); the read and idle timeouts still bound the connection.
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout.min(limits.read_timeout))
        .max_buf_size(
            usize::try_from(limits.max_header_size)
                .unwrap_or(usize::MAX)
                .max(8192),
        );
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX));
    builder
}

/// Removes a socket file left by a previous run. A path that is not a socket, or a socket
/// another process still listens on, is never removed: binding then fails with a clear error.
fn clear_stale_socket(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another process is listening on this socket",
        ));
    }
    std::fs::remove_file(path)
}

/// A connection's byte stream, whatever the transport.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

async fn accept(socket: &Socket) -> std::io::Result<(Box<dyn Stream>, SocketAddr)> {
    match socket {
        Socket::Tcp(t) => {
            let (s, peer) = t.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Box::new(s), peer))
        }
        Socket::Unix(u) => {
            let (s, _) = u.accept().await?;
            // A Unix socket peer is local.
            Ok((Box::new(s), SocketAddr::from(([127, 0, 0, 1], 0))))
        }
    }
}

type Established = (
    Box<dyn Stream>,
    Option<crate::access::identity::PeerCertificate>,
    bool,
);

async fn establish(
    io: Box<dyn Stream>,
    acceptor: Option<&Acceptor>,
) -> std::io::Result<Established> {
    match acceptor {
        None => Ok((io, None, false)),
        Some(Acceptor::Rustls(a)) => {
            let tls = a.accept(io).await?;
            let (_, session) = tls.get_ref();
            let h2 = session.alpn_protocol() == Some(b"h2");
            let cert = session
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(tls::peer_certificate);
            Ok((Box::new(tls), cert, h2))
        }
        Some(Acceptor::Native(a)) => {
            let tls = a.accept(io).await.map_err(std::io::Error::other)?;
            Ok((Box::new(tls), None, false))
        }
    }
}
