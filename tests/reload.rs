//! Reload applies the listeners' certificates: a certificate rotated on disk is served to new
//! connections (HTTP/1.1, HTTP/2 and HTTP/3) after a reload, while an HTTP/2 upload streaming
//! over a connection made with the old one completes; reloads are counted.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use support::{ChannelBody, Gateway, Proto};
use tokio::sync::mpsc;

const POLICY: &str = r#"
[[listener]]
name = "tls"
bind = "127.0.0.1:0"
protocols = ["http1", "http2", "http3"]
tls = "dev"

[tls.dev]
certificate = "certs/server.crt"
key = "certs/server.key"
"#;

/// An HTTP/2 connection over TLS trusting `ca` (PEM); returns the sender and the DER of the
/// certificate the server presented.
async fn h2_connect(
    addr: std::net::SocketAddr,
    ca: &[u8],
) -> std::io::Result<(
    hyper::client::conn::http2::SendRequest<ChannelBody>,
    Vec<u8>,
)> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await?;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok((sender, presented))
}

fn first_cert(path: &std::path::Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_rotated_certificate_is_served_after_reload_and_open_uploads_complete() {
    let gw = Gateway::start(POLICY).await;
    let addr = gw.addr("tls");
    let old_ca = std::fs::read(gw.path("certs/ca.crt")).unwrap();
    let old_cert = first_cert(&gw.path("certs/server.crt"));

    // An upload streaming over a connection made with the old certificate.
    let (mut sender, presented) = h2_connect(addr, &old_ca).await.unwrap();
    assert_eq!(presented, old_cert);
    let (tx, rx) = mpsc::unbounded_channel();
    let req = http::Request::post(format!(
        "https://localhost:{}/intake/v2/events",
        addr.port()
    ))
    .header("Content-Type", "application/x-ndjson")
    .body(ChannelBody(rx))
    .unwrap();
    let response = sender.send_request(req);
    let upload = tokio::spawn(async move {
        let r = response.await.unwrap();
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    tx.send(Bytes::from(support::metadata_line("python", "checkout")))
        .unwrap();
    tx.send(Bytes::from(support::transaction_line(1, None)))
        .unwrap();

    // Rotate: a new CA and server certificate replace the files the policy names.
    let fresh = tempfile::tempdir().unwrap();
    apmgate::devcerts::write(fresh.path(), &apmgate::devcerts::Validity::default()).unwrap();
    for f in ["server.crt", "server.key", "ca.crt"] {
        std::fs::copy(fresh.path().join(f), gw.path(&format!("certs/{f}.new"))).unwrap();
        std::fs::rename(
            gw.path(&format!("certs/{f}.new")),
            gw.path(&format!("certs/{f}")),
        )
        .unwrap();
    }
    let new_cert = first_cert(&gw.path("certs/server.crt"));
    assert_ne!(new_cert, old_cert);
    // Before the reload the old certificate is still served: a client trusting only the new
    // CA is refused, over TCP and over QUIC.
    for proto in [Proto::H2Tls, Proto::H3] {
        let r = support::request(&gw, proto, http::Method::GET, "/", &[], None, None).await;
        assert!(
            r.is_err(),
            "{proto:?}: the old certificate is served until the reload"
        );
    }

    gw.reload(POLICY);

    // New connections get the new certificate, over every protocol.
    for proto in [Proto::H1, Proto::H2Tls, Proto::H3] {
        let r = support::request(
            &gw,
            proto.on("tls"),
            http::Method::GET,
            "/",
            &[],
            None,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{proto:?} after the reload: {e}"));
        assert_eq!(r.status, 200, "{proto:?}");
    }
    let (_, presented) = h2_connect(addr, &std::fs::read(gw.path("certs/ca.crt")).unwrap())
        .await
        .unwrap();
    assert_eq!(presented, new_cert);
    assert!(
        h2_connect(addr, &old_ca).await.is_err(),
        "the old CA no longer verifies the server"
    );

    // The upload begun before the reload goes on and completes on its connection.
    tx.send(Bytes::from(support::transaction_line(2, None)))
        .unwrap();
    drop(tx);
    let (status, body) = upload.await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        support::metric(
            &gw.shared.metrics.render(),
            "apmgate_reloads_total{result=\"applied\"}"
        ),
        Some(1)
    );
    let dir = gw.stop().await;
    let docs = support::output_documents(dir.path());
    assert_eq!(docs.len(), 2, "both events of the upload are written");
}
