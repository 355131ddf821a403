//! HTTP/3: a QUIC endpoint (quinn, h3) serving the same router as HTTP/1.1 and HTTP/2.
//!
//! The endpoint shares the listener's TLS profile (TLS 1.3, ALPN `h3`, 0-RTT off so a replayed
//! POST cannot duplicate events) and limits. Request bodies are read only as the intake pulls
//! them, so QUIC flow control slows a sender when the output is slow. The client IP is the QUIC
//! peer address, read per request so connection migration is followed. On shutdown the
//! endpoint sends GOAWAY, lets in-flight streams finish within the shutdown timeout, then
//! closes with H3_NO_ERROR.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::Request;
use http_body::Frame;
use tokio::sync::{Semaphore, watch};

use super::router::{ConnInfo, Protocol};
use super::runtime::Shared;
use crate::policy::compiled::Listener;
use crate::telemetry::Counter;

/// H3_NO_ERROR: the application error code of a clean close.
const H3_NO_ERROR: u32 = 0x100;

/// A request body read from an HTTP/3 stream.
pub struct H3Body {
    stream: h3::server::RequestStream<h3_quinn::RecvStream, Bytes>,
    done: bool,
}

/// An HTTP/3 body read error.
#[derive(Debug, thiserror::Error)]
#[error("HTTP/3 stream error: {0}")]
pub struct H3BodyError(String);

impl http_body::Body for H3Body {
    type Data = Bytes;
    type Error = H3BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H3BodyError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.stream.poll_recv_data(cx) {
            Poll::Ready(Ok(Some(mut buf))) => {
                let bytes = buf.copy_to_bytes(buf.remaining());
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Ok(None)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                self.done = true;
                Poll::Ready(Some(Err(H3BodyError(e.to_string()))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Serves HTTP/3 on `endpoint` until `stop` turns true, each new connection with the
/// listener's configuration of the moment (`current`, which a reload replaces).
pub async fn serve(
    endpoint: quinn::Endpoint,
    current: Arc<RwLock<Arc<Listener>>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let read_current = || current.read().unwrap_or_else(|e| e.into_inner()).clone();
    let listener = read_current();
    let limits = listener.limits.clone();
    let permits = limits
        .max_connections
        .map(|m| Arc::new(Semaphore::new(usize::try_from(m).unwrap_or(usize::MAX))));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tracing::info!(listener = %listener.name, address = ?endpoint.local_addr().ok(), "listening for HTTP/3");
    loop {
        let incoming = tokio::select! {
            // Closed connections are reaped as they end (see the request loop below).
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            i = endpoint.accept() => i,
            _ = stop.changed() => break,
        };
        let Some(incoming) = incoming else { break };
        let permit = match &permits {
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    // Over the connection limit: refuse at the QUIC level.
                    incoming.refuse();
                    continue;
                }
            },
            None => None,
        };
        let listener = read_current();
        let shared = shared.clone();
        let drain = drain_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let _open = shared.metrics.connection();
            let handshake = tokio::time::timeout(listener.limits.tls_handshake_timeout, incoming);
            let conn = match handshake.await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::debug!(listener = %listener.name, error = %e, "QUIC handshake failed");
                    return;
                }
                Err(_) => return,
            };
            shared.metrics.add(
                Counter::ConnectionsTotal,
                &[("listener", &listener.name), ("transport", "quic")],
                1,
            );
            serve_connection(conn, listener, shared.clone(), drain).await;
        });
    }
    // GOAWAY to every connection, then wait for in-flight streams within the timeout.
    let _ = drain_tx.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(read_current().limits.shutdown_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(listener = %listener.name, "HTTP/3 shutdown timeout reached with streams in flight");
    }
    endpoint.close(quinn::VarInt::from_u32(H3_NO_ERROR), b"shutdown");
    endpoint.wait_idle().await;
}

async fn serve_connection(
    conn: quinn::Connection,
    listener: Arc<Listener>,
    shared: Arc<Shared>,
    mut drain: watch::Receiver<bool>,
) {
    let cert = conn
        .peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|certs| certs.first().and_then(super::tls::peer_certificate));
    let quic = conn.clone();
    let mut h3 = match h3::server::builder()
        .max_field_section_size(listener.limits.max_header_size)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(listener = %listener.name, error = %e, "HTTP/3 connection setup failed");
            return;
        }
    };
    let mut requests = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            // Finished requests are reaped as they end: a JoinSet keeps every finished task
            // until it is joined, which on a long-lived connection grew without bound.
            Some(_) = requests.join_next(), if !requests.is_empty() => continue,
            r = h3.accept() => r,
            _ = drain.changed() => {
                let _ = h3.shutdown(0).await;
                break;
            }
        };
        match next {
            Ok(Some(resolver)) => {
                let listener = listener.clone();
                let shared = shared.clone();
                let cert = cert.clone();
                // The peer address is read per request: QUIC connections may migrate.
                let peer: SocketAddr = quic.remote_address();
                requests.spawn(async move {
                    let Ok((req, stream)) = resolver.resolve_request().await else {
                        return;
                    };
                    let (mut send, recv) = stream.split();
                    let (parts, ()) = req.into_parts();
                    let body = H3Body {
                        stream: recv,
                        done: false,
                    };
                    let conn = ConnInfo {
                        listener,
                        peer,
                        cert,
                        protocol: Protocol::H3,
                        alt_svc: None,
                        active: Default::default(),
                    };
                    let response =
                        super::router::handle(&shared, &conn, Request::from_parts(parts, body))
                            .await;
                    let (mut parts, body) = response.into_parts();
                    // Connection-specific fields make an HTTP/3 message malformed (RFC 9114
                    // section 4.2); hyper drops them for HTTP/2, h3 does not.
                    for name in [
                        "connection",
                        "keep-alive",
                        "proxy-connection",
                        "transfer-encoding",
                        "upgrade",
                    ] {
                        parts.headers.remove(name);
                    }
                    let bytes = http_body_util::BodyExt::collect(body)
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    if send
                        .send_response(http::Response::from_parts(parts, ()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if !bytes.is_empty() && send.send_data(bytes).await.is_err() {
                        return;
                    }
                    let _ = send.finish().await;
                });
            }
            Ok(None) => break,
            Err(e) => {
                if !e.is_h3_no_error() {
                    tracing::debug!(listener = %listener.name, error = %e, "HTTP/3 connection ended");
                }
                break;
            }
        }
    }
    while requests.join_next().await.is_some() {}
}
