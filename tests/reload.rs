//! Reload applies the listeners' certificates: a certificate rotated on disk is served to new
//! connections (HTTP/1.1, HTTP/2 and HTTP/3) after a reload, while an HTTP/2 upload streaming
//! over a connection made with the old one completes; reloads are counted.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use support::{ChannelBody, Gateway, Proto};
use tokio::sync::mpsc;

/// One TLS listener `tls` speaking HTTP/1.1, HTTP/2 and HTTP/3.
fn tls_policy() -> String {
    support::tls_listener("tls", r#"["http1", "http2", "http3"]"#, "")
}

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

/// Reads the answer to a request being sent, on a task of its own: status and body.
fn answer(
    response: impl std::future::Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>>
    + Send
    + 'static,
) -> tokio::task::JoinHandle<(u16, String)> {
    tokio::spawn(async move {
        let r = response.await.unwrap();
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
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
    let mut gw = Gateway::start(&tls_policy()).await;
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
    let upload = answer(sender.send_request(req));
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

    gw.reload(&tls_policy()).await;

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

/// `a` plaintext (HTTP/1.1 and h2c) on `bind_a`; with `b`, a TLS listener (HTTP/1.1, HTTP/2,
/// HTTP/3) on `bind_b`.
fn listeners(bind_a: Option<&str>, bind_b: Option<&str>) -> String {
    let mut p = String::new();
    if let Some(a) = bind_a {
        p += &format!(
            "[[listener]]\nname = \"a\"\nbind = \"{a}\"\nprotocols = [\"http1\", \"h2c\"]\n\n"
        );
    }
    if let Some(b) = bind_b {
        p += &format!(
            "[[listener]]\nname = \"b\"\nbind = \"{b}\"\nprotocols = [\"http1\", \"http2\", \"http3\"]\ntls = \"dev\"\n\n"
        );
    }
    p + "[tls.dev]\ncertificate = \"certs/server.crt\"\nkey = \"certs/server.key\"\n"
}

/// Waits until nothing accepts TCP connections on `addr` any more (a stopped listener closes
/// its socket once its accept loop has seen the stop).
async fn until_refused(addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            // A connection queued in the backlog as the socket closed is reset; try again.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("{addr}: {e}"),
            Ok(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "{addr} still accepts connections"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Starts an HTTP/1.1 upload on `addr` whose body streams from the returned sender; the task
/// returns the status and body of the answer.
async fn h1_upload(
    addr: std::net::SocketAddr,
) -> (
    mpsc::UnboundedSender<Bytes>,
    tokio::task::JoinHandle<(u16, String)>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, rx) = mpsc::unbounded_channel();
    let req = http::Request::post("/intake/v2/events")
        .header("Host", addr.to_string())
        .header("Content-Type", "application/x-ndjson")
        .body(ChannelBody(rx))
        .unwrap();
    let task = answer(sender.send_request(req));
    (tx, task)
}

/// An output that keeps what it is given and says how many documents it holds.
#[derive(Default)]
struct Kept {
    docs: std::sync::Mutex<Vec<apmgate::output::OutputDocument>>,
    count: tokio::sync::watch::Sender<usize>,
}

impl apmgate::output::Output for Kept {
    fn publish(
        &self,
        batch: Vec<apmgate::output::OutputDocument>,
    ) -> apmgate::output::PublishFuture<'_> {
        let mut docs = self.docs.lock().unwrap();
        docs.extend(batch);
        self.count.send_replace(docs.len());
        Box::pin(async { Ok(()) })
    }
    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + '_>> {
        Box::pin(async { 0 })
    }
}

#[tokio::test]
async fn a_reload_adds_removes_and_moves_listeners_and_uploads_on_a_removed_one_complete() {
    let kept = Arc::new(Kept::default());
    let mut gw =
        Gateway::start_with(&listeners(Some("127.0.0.1:0"), None), Some(kept.clone())).await;
    let a = gw.addr("a");

    // Added: `b` is bound and serves every protocol it names; `a` keeps its socket.
    let changes = gw
        .reload(&listeners(Some("127.0.0.1:0"), Some("127.0.0.1:0")))
        .await;
    assert_eq!(
        changes
            .listeners
            .bound
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert!(
        changes.listeners.stopped.is_empty(),
        "{:?}",
        changes.listeners
    );
    assert_eq!(gw.addr("a"), a);
    for proto in [Proto::H1, Proto::H2Tls, Proto::H3] {
        let r = support::request(&gw, proto.on("b"), http::Method::GET, "/", &[], None, None)
            .await
            .unwrap_or_else(|e| panic!("{proto:?} on the added listener: {e}"));
        assert_eq!(r.status, 200, "{proto:?}");
    }

    // Removed: `a` stops accepting, and an upload streaming on it when the reload came
    // completes. The upload is in flight once its first batch (ten events) reached the output.
    let (tx, upload) = h1_upload(a).await;
    tx.send(Bytes::from(support::metadata_line("python", "checkout")))
        .unwrap();
    for i in 0..10 {
        tx.send(Bytes::from(support::transaction_line(i, None)))
            .unwrap();
    }
    kept.count.subscribe().wait_for(|n| *n == 10).await.unwrap();
    let changes = gw.reload(&listeners(None, Some("127.0.0.1:0"))).await;
    assert_eq!(changes.listeners.stopped, ["a"]);
    assert!(
        changes.listeners.bound.is_empty(),
        "{:?}",
        changes.listeners
    );
    until_refused(a).await;
    tx.send(Bytes::from(support::transaction_line(10, None)))
        .unwrap();
    drop(tx);
    let (status, body) = upload.await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        *kept.count.borrow(),
        11,
        "every event of the upload is kept"
    );

    // Moved: `b` is bound on its new address before the old one stops.
    let old_b = gw.addr("b");
    let changes = gw.reload(&listeners(None, Some("127.0.0.2:0"))).await;
    assert_eq!(changes.listeners.stopped, ["b"]);
    let new_b = gw.addr("b");
    assert_eq!(new_b.ip().to_string(), "127.0.0.2");
    until_refused(old_b).await;
    for proto in [Proto::H1, Proto::H2Tls, Proto::H3] {
        let r = support::request(&gw, proto.on("b"), http::Method::GET, "/", &[], None, None)
            .await
            .unwrap_or_else(|e| panic!("{proto:?} on the moved listener: {e}"));
        assert_eq!(r.status, 200, "{proto:?}");
    }

    assert_eq!(
        support::metric(
            &gw.shared.metrics.render(),
            "apmgate_reloads_total{result=\"applied\"}"
        ),
        Some(3)
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_listener_that_cannot_bind_refuses_the_reload_and_the_running_policy_stays() {
    let mut gw = Gateway::start(&listeners(Some("127.0.0.1:0"), None)).await;
    let a = gw.addr("a");
    // An address another socket holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();

    // `a` would move to a free port and `b` would be added on the taken one: neither happens.
    let err = gw
        .try_reload(&listeners(Some("127.0.0.3:0"), Some(&taken_addr)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, apmgate::server::ServerError::Bind { listener, .. } if listener == "b"),
        "{err}"
    );
    {
        let rt = gw.shared.runtime.borrow();
        let names: Vec<_> = rt.policy.listeners.iter().map(|l| &l.name).collect();
        assert_eq!(names, ["a"], "the running policy stays");
    }
    let r = support::request(
        &gw,
        Proto::H1.on("a"),
        http::Method::GET,
        "/",
        &[],
        None,
        None,
    )
    .await
    .expect("the running listener still serves on its address");
    assert_eq!(r.status, 200);
    assert_eq!(gw.addr("a"), a);
    // The address `a` would have moved to was let go again.
    assert!(
        tokio::net::TcpStream::connect(a).await.is_ok(),
        "`a` still accepts on its address"
    );
    assert_eq!(
        support::metric(
            &gw.shared.metrics.render(),
            "apmgate_reloads_total{result=\"refused\"}"
        ),
        Some(1)
    );
    drop(taken);
}

/// An HTTP/1.1 keep-alive connection to `addr`.
async fn h1_connection(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get_root(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>,
) -> u16 {
    sender.ready().await.unwrap();
    let req = http::Request::get("/")
        .header("Host", "gateway")
        .body(http_body_util::Empty::new())
        .unwrap();
    let r = sender.send_request(req).await.unwrap();
    let status = r.status().as_u16();
    r.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn a_listener_that_keeps_its_address_serves_new_connections_with_its_new_routes() {
    let with_routes = |routes: &str, protocols: &str| {
        format!(
            "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:0\"\nprotocols = {protocols}\n{routes}\n"
        )
    };
    let mut gw = Gateway::start(&with_routes("", r#"["http1"]"#)).await;
    let a = gw.addr("a");
    let mut before = h1_connection(a).await;
    assert_eq!(get_root(&mut before).await, 200);

    let changes = gw
        .reload(&with_routes(r#"routes = ["intake"]"#, r#"["http1"]"#))
        .await;
    assert_eq!(changes.listeners.reconfigured, ["a"]);
    assert!(
        changes.listeners.bound.is_empty() && changes.listeners.stopped.is_empty(),
        "{:?}",
        changes.listeners
    );
    assert_eq!(gw.addr("a"), a, "the socket is kept");
    // A new connection is served with the new routes: `/` is no longer one of them.
    assert_eq!(get_root(&mut h1_connection(a).await).await, 404);
    // The connection opened before the reload keeps the routes it was opened with.
    assert_eq!(get_root(&mut before).await, 200);

    // TLS on or off, HTTP/3 on or off and max_connections need a new socket: reported, and
    // left for the next start.
    let changes = gw
        .reload(&with_routes(
            "[listener.limits]\nmax_connections = 10",
            r#"["http1"]"#,
        ))
        .await;
    assert_eq!(changes.listeners.at_next_start, ["a"]);
    assert!(
        changes.listeners.reconfigured.is_empty(),
        "{:?}",
        changes.listeners
    );
    assert_eq!(get_root(&mut h1_connection(a).await).await, 404);
    gw.stop().await;
}

#[tokio::test]
async fn a_reload_changes_the_intake_bounds() {
    let policy = |decoders: u32, memory: &str| {
        format!(
            "[gateway]\nmax_concurrent_decoders = {decoders}\nmax_intake_memory = \"{memory}\"\n\n{}",
            listeners(Some("127.0.0.1:0"), None)
        )
    };
    let mut gw = Gateway::start(&policy(2, "64MiB")).await;
    assert_eq!(gw.shared.decoders.size(), 2);
    gw.reload(&policy(5, "128MiB")).await;
    assert_eq!(gw.shared.decoders.size(), 5);
    assert_eq!(
        support::gauge(&gw, "apmgate_intake_memory_capacity_bytes"),
        128 << 20
    );
    // The intake goes on within the new bounds.
    let r = support::request(
        &gw,
        Proto::H1.on("a"),
        http::Method::POST,
        "/intake/v2/events",
        &[("Content-Type", "application/x-ndjson")],
        Some(support::payload("python", "checkout", 3)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 202);
    gw.stop().await;
}
