//! The ceiling: a minimal hyper (or h3) server that reads every request body to the end,
//! discards it and answers 202, over the same protocols as the gateway (HTTP/1.1 and h2c on
//! plaintext TCP, HTTP/1.1 and HTTP/2 over rustls, HTTP/3 over quinn with the gateway's default
//! QUIC windows). Nothing is decompressed, parsed or checked: what it reaches is what the
//! transport alone allows on this machine.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Requests and body bytes the ceiling read.
#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

/// A rustls server configuration from PEM files, offering `alpn`.
pub(crate) fn server_tls(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, BoxError> {
    let chain =
        rustls_pki_types::CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

async fn discard<B>(req: http::Request<B>, counters: Arc<Counters>) -> http::Response<Empty<Bytes>>
where
    B: hyper::body::Body,
{
    let mut body = std::pin::pin!(req.into_body());
    let mut n = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            n += data.remaining() as u64;
        }
    }
    counters.requests.fetch_add(1, Ordering::Relaxed);
    counters.bytes.fetch_add(n, Ordering::Relaxed);
    http::Response::builder()
        .status(202)
        .body(Empty::new())
        .expect("a fixed response")
}

/// Serves HTTP/1.1 and HTTP/2 (h2c by prior knowledge, or both over TLS with ALPN) until the
/// task is dropped.
pub(crate) async fn serve_tcp(
    listen: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    counters: Arc<Counters>,
) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let kind = if tls.is_some() { "tls" } else { "plain" };
    eprintln!("ceiling listening on {} ({kind})", listener.local_addr()?);
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(Arc::new(t)));
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let counters = counters.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let counters = counters.clone();
                async move { Ok::<_, Infallible>(discard(req, counters).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(a) => {
                    if let Ok(tls) = a.accept(tcp).await {
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    }
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}

/// Serves HTTP/3 until the task is dropped.
pub(crate) async fn serve_h3(
    listen: SocketAddr,
    tls: rustls::ServerConfig,
    counters: Arc<Counters>,
) -> Result<(), BoxError> {
    let mut tls = tls;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    // The gateway's defaults (`quic_max_streams`, `quic_stream_receive_window`,
    // `quic_receive_window`).
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(100))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(16))
        .stream_receive_window(quinn::VarInt::from_u32(1 << 20))
        .receive_window(quinn::VarInt::from_u32(8 << 20));
    config.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::server(config, listen)?;
    eprintln!("ceiling listening on {} (quic)", endpoint.local_addr()?);
    while let Some(incoming) = endpoint.accept().await {
        let counters = counters.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            let Ok(mut h3) = h3::server::builder()
                .build::<_, Bytes>(h3_quinn::Connection::new(conn))
                .await
            else {
                return;
            };
            while let Ok(Some(resolver)) = h3.accept().await {
                let counters = counters.clone();
                tokio::spawn(async move {
                    let Ok((_req, mut stream)) = resolver.resolve_request().await else {
                        return;
                    };
                    let mut n = 0u64;
                    while let Ok(Some(chunk)) = stream.recv_data().await {
                        n += chunk.remaining() as u64;
                    }
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(n, Ordering::Relaxed);
                    let resp = http::Response::builder()
                        .status(202)
                        .body(())
                        .expect("a fixed response");
                    if stream.send_response(resp).await.is_ok() {
                        let _ = stream.finish().await;
                    }
                });
            }
        });
    }
    Ok(())
}
