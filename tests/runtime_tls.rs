//! Listeners over real sockets: ALPN choosing h2 or http/1.1, listeners that serve only some
//! protocols, mutual TLS (required and optional client auth, unknown CAs) over HTTP/1.1, h2 and
//! HTTP/3, the native-tls backend, TLS versions, the TLS handshake timeout, and Unix-socket
//! listeners.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use support::{Gateway, HeldClock, Identity, Proto, STANDARD_LISTENERS, client, payload};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A generous upper bound for anything the gateway should do promptly.
const BOUND: Duration = Duration::from_secs(10);

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A reqwest client trusting the gateway's CA: default ALPN (h2, http/1.1), HTTP/1.1 only, or
/// HTTP/2 only (prior knowledge, ALPN h2).
fn tls_client(gw: &Gateway, mode: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&read(&gw.path("certs/ca.crt"))).unwrap();
    let b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .no_proxy();
    match mode {
        "h1" => b.http1_only(),
        "h2" => b.http2_prior_knowledge(),
        _ => b,
    }
    .build()
    .unwrap()
}

/// A raw rustls client configuration trusting the gateway's CA.
fn rustls_config(
    gw: &Gateway,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(gw.path("certs/ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

async fn tls_connect(
    gw: &Gateway,
    listener: &str,
    cfg: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(gw.addr(listener)).await?;
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

const GET_ROOT: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n";

#[tokio::test]
async fn alpn_chooses_h2_or_http1() {
    let gw = Gateway::start(STANDARD_LISTENERS).await;
    for (mode, version) in [
        ("default", reqwest::Version::HTTP_2),
        ("h1", reqwest::Version::HTTP_11),
        ("h2", reqwest::Version::HTTP_2),
    ] {
        let resp = tls_client(&gw, mode)
            .post(gw.url("tls", true, "/intake/v2/events?verbose"))
            .body(payload("python", "svc", 2))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), version, "{mode}");
        assert_eq!(resp.status(), 202, "{mode}");
        assert_eq!(resp.json::<Value>().await.unwrap(), json!({"accepted": 2}));
    }
    // The negotiated protocol, as the TLS layer reports it.
    for (offer, chosen) in [
        (vec![&b"h2"[..], b"http/1.1"], Some(&b"h2"[..])),
        (vec![&b"http/1.1"[..], b"h2"], Some(&b"h2"[..])),
        (vec![&b"http/1.1"[..]], Some(&b"http/1.1"[..])),
    ] {
        let cfg = rustls_config(&gw, &offer, rustls::ALL_VERSIONS);
        let tls = tls_connect(&gw, "tls", cfg).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), chosen, "{offer:?}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_tls_listener_without_http2_serves_http1_only() {
    let gw = Gateway::start(&support::tls_listener("tls", r#"["http1"]"#, "")).await;
    // A client offering h2 and http/1.1 gets HTTP/1.1.
    let resp = tls_client(&gw, "default")
        .post(gw.url("tls", true, "/intake/v2/events"))
        .body(payload("python", "svc", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 202);
    // A client that speaks only h2 finds no common protocol.
    let err = tls_client(&gw, "h2")
        .get(gw.url("tls", true, "/"))
        .send()
        .await;
    assert!(err.is_err(), "an h2-only client was served: {err:?}");
    let cfg = rustls_config(&gw, &[b"h2"], rustls::ALL_VERSIONS);
    assert!(tls_connect(&gw, "tls", cfg).await.is_err());
    gw.stop().await;
}

#[tokio::test]
async fn a_plaintext_listener_without_h2c_refuses_prior_knowledge_http2() {
    let gw = Gateway::start(
        "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\nprotocols = [\"http1\"]\n",
    )
    .await;
    let ok = client(&gw, Proto::H1)
        .get(gw.url("plain", false, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let h2c = client(&gw, Proto::H2c)
        .get(gw.url("plain", false, "/"))
        .send()
        .await;
    assert!(h2c.is_err(), "h2c was served: {h2c:?}");
    gw.stop().await;
}

#[tokio::test]
async fn an_h2c_only_listener_refuses_http1() {
    let gw = Gateway::start(
        "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\nprotocols = [\"h2c\"]\n",
    )
    .await;
    let h2c = client(&gw, Proto::H2c)
        .get(gw.url("plain", false, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (h2c.status().as_u16(), h2c.version()),
        (200, reqwest::Version::HTTP_2)
    );
    let h1 = client(&gw, Proto::H1)
        .get(gw.url("plain", false, "/"))
        .send()
        .await;
    assert!(h1.is_err(), "HTTP/1.1 was served: {h1:?}");
    gw.stop().await;
}

#[tokio::test]
async fn an_http2_only_tls_listener_refuses_http1_clients_that_offer_alpn() {
    let gw = Gateway::start(&support::tls_listener("tls", r#"["http2"]"#, "")).await;
    let ok = tls_client(&gw, "default")
        .get(gw.url("tls", true, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ok.status().as_u16(), ok.version()),
        (200, reqwest::Version::HTTP_2)
    );
    let h1 = tls_client(&gw, "h1")
        .get(gw.url("tls", true, "/"))
        .send()
        .await;
    assert!(h1.is_err(), "HTTP/1.1 was served: {h1:?}");
    gw.stop().await;
}

#[tokio::test]
async fn an_http2_only_tls_listener_refuses_http1_without_alpn() {
    let gw = Gateway::start(&support::tls_listener("tls", r#"["http2"]"#, "")).await;
    let cfg = rustls_config(&gw, &[], rustls::ALL_VERSIONS);
    let answer = match tls_connect(&gw, "tls", cfg).await {
        Err(_) => None,
        Ok(mut tls) => {
            tls.write_all(GET_ROOT).await.unwrap();
            tokio::time::timeout(BOUND, support::read_response(&mut tls))
                .await
                .expect("the gateway answers or closes")
                .ok()
        }
    };
    assert!(
        answer.is_none(),
        "an HTTP/1.1 request was answered: {answer:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn tls_versions_of_the_profile_are_enforced() {
    let gw = Gateway::start(&format!(
        "{}supported_protocols = [\"TLSv1.3\"]\n",
        support::tls_listener("tls", r#"["http1"]"#, "")
    ))
    .await;
    let tls12 = rustls_config(&gw, &[b"http/1.1"], &[&rustls::version::TLS12]);
    assert!(
        tls_connect(&gw, "tls", tls12).await.is_err(),
        "TLS 1.2 accepted"
    );
    let tls13 = rustls_config(&gw, &[b"http/1.1"], &[&rustls::version::TLS13]);
    let mut tls = tls_connect(&gw, "tls", tls13).await.unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    tls.write_all(GET_ROOT).await.unwrap();
    let resp = support::read_response(&mut tls).await.unwrap();
    assert_eq!(resp.status, 200);
    gw.stop().await;
}

/// A client certificate for `cn`, signed by the gateway's development CA.
fn cert_signed_by_gateway_ca(gw: &Gateway, cn: &str) -> Identity {
    let ca_key =
        rcgen::KeyPair::from_pem(&String::from_utf8(read(&gw.path("certs/ca.key"))).unwrap())
            .unwrap();
    let ca_params = rcgen::CertificateParams::from_ca_cert_pem(
        &String::from_utf8(read(&gw.path("certs/ca.crt"))).unwrap(),
    )
    .unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Identity {
        cert: cert.pem().into_bytes(),
        key: key.serialize_pem().into_bytes(),
    }
}

/// A client certificate with the same names as the development one, from another CA.
fn foreign_client_cert() -> Identity {
    let dir = tempfile::tempdir().unwrap();
    let certs =
        apmgate::devcerts::write(dir.path(), &apmgate::devcerts::Validity::default()).unwrap();
    Identity {
        cert: read(&certs.client_cert),
        key: read(&certs.client_key),
    }
}

fn mtls_policy(client_auth: &str, extra: &str) -> String {
    format!(
        r#"
[[listener]]
name = "mtls"
bind = "127.0.0.1:0"
protocols = ["http1", "http2", "http3"]
tls = "mutual"

[tls.mutual]
certificate = "certs/server.crt"
key = "certs/server.key"
certificate_authorities = ["certs/ca.crt"]
client_auth = "{client_auth}"

[role.agent]
privileges = ["event:write", "config_agent:read"]

[auth.client_cert.agents]
subject = "CN=*.agents.local,*"
san = "*.agents.local"
roles = ["agent"]
{extra}
"#
    )
}

/// The protocols that reach a TLS listener: h2 (ALPN), HTTP/1.1 over TLS and HTTP/3.
const TLS_PROTOS: [Proto; 3] = [Proto::H2Tls, Proto::H1, Proto::H3];

/// One request to the `mtls` listener, presenting `identity` if given.
async fn mtls(
    gw: &Gateway,
    proto: Proto,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    identity: Option<&Identity>,
) -> Result<support::Response, support::RequestError> {
    support::request(gw, proto.on("mtls"), method, path, headers, body, identity).await
}

#[tokio::test]
async fn mtls_required_recognises_the_client_certificate() {
    let gw = Gateway::start(&mtls_policy(
        "required",
        r#"
[access]
default = "deny"

[[access.rule]]
name = "root"
when = 'route == root'
effect = "allow"

[[access.rule]]
name = "agents-by-certificate"
when = 'identity == client_cert and identity.name == agents and client_cert.subject matches "CN=agent-1.agents.local,*"'
effect = "allow"
"#,
    ))
    .await;
    let cert = Identity::dev(&gw);
    let accept = [("Accept", "application/json")];
    for proto in TLS_PROTOS {
        let post = http::Method::POST;
        let intake = "/intake/v2/events?verbose";
        let resp = mtls(
            &gw,
            proto,
            post,
            intake,
            &accept,
            Some(payload("python", "svc", 2)),
            Some(&cert),
        )
        .await
        .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(resp.version, proto.version());
        assert_eq!(resp.status, 202, "{proto:?}");
        assert_eq!(resp.json(), json!({"accepted": 2}), "{proto:?}");
        // An authenticated caller gets the server information.
        let root = mtls(
            &gw,
            proto,
            http::Method::GET,
            "/",
            &accept,
            None,
            Some(&cert),
        )
        .await
        .unwrap_or_else(|e| panic!("{proto:?}: {e}"))
        .json();
        assert!(root["version"].is_string(), "{proto:?}: {root}");
    }
    // Without a certificate the handshake fails.
    for proto in TLS_PROTOS {
        let r = mtls(&gw, proto, http::Method::GET, "/", &[], None, None).await;
        assert!(r.is_err(), "{proto:?}: served without a certificate: {r:?}");
    }
    // A certificate from another CA is refused, even with the right names.
    let foreign = foreign_client_cert();
    for proto in TLS_PROTOS {
        let r = mtls(
            &gw,
            proto,
            http::Method::GET,
            "/",
            &[],
            None,
            Some(&foreign),
        )
        .await;
        assert!(
            r.is_err(),
            "{proto:?}: served with a foreign certificate: {r:?}"
        );
    }
    // A certificate from the right CA that no `[auth.client_cert]` entry names: no identity.
    let intruder = cert_signed_by_gateway_ca(&gw, "intruder.example.com");
    for proto in TLS_PROTOS {
        let resp = mtls(
            &gw,
            proto,
            http::Method::POST,
            "/intake/v2/events",
            &accept,
            Some(payload("python", "svc", 1)),
            Some(&intruder),
        )
        .await
        .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(resp.status, 401, "{proto:?}");
        assert_eq!(
            resp.json()["error"],
            "authentication failed: missing or improperly formatted Authorization header: expected 'Authorization: Bearer secret_token' or 'Authorization: ApiKey base64(API key ID:API key)'",
            "{proto:?}"
        );
    }
    let dir = gw.stop().await;
    assert_eq!(
        support::output_documents(dir.path()).len(),
        2 * TLS_PROTOS.len()
    );
}

#[tokio::test]
async fn mtls_optional_falls_back_to_other_authentication() {
    let gw = Gateway::start(&mtls_policy(
        "optional",
        "\n[auth.secret_token.t]\nsecret = \"opt-token\"\n",
    ))
    .await;
    let cert = Identity::dev(&gw);
    let intake = "/intake/v2/events";
    let post = || http::Method::POST;
    for proto in TLS_PROTOS {
        let resp = mtls(
            &gw,
            proto,
            post(),
            intake,
            &[],
            Some(payload("python", "svc", 1)),
            Some(&cert),
        )
        .await
        .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(resp.status, 202, "{proto:?} with a certificate");
    }
    for proto in TLS_PROTOS {
        let resp = mtls(
            &gw,
            proto,
            post(),
            intake,
            &[("Accept", "application/json")],
            Some(payload("python", "svc", 1)),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(resp.version, proto.version());
        assert_eq!(resp.status, 401, "{proto:?} with nothing");
        let resp = mtls(
            &gw,
            proto,
            post(),
            intake,
            &[("Authorization", "Bearer opt-token")],
            Some(payload("python", "svc", 1)),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(resp.status, 202, "{proto:?} with the token");
    }
    // A certificate that does not verify is refused, even though one is optional.
    let foreign = foreign_client_cert();
    for proto in TLS_PROTOS {
        let r = mtls(
            &gw,
            proto,
            http::Method::GET,
            "/",
            &[],
            None,
            Some(&foreign),
        )
        .await;
        assert!(
            r.is_err(),
            "{proto:?}: served with a foreign certificate: {r:?}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn mtls_optional_certificate_beats_anonymous() {
    let gw = Gateway::start(&mtls_policy(
        "optional",
        "\n[auth.anonymous]\nallow_agent = [\"python\"]\n",
    ))
    .await;
    let cert = Identity::dev(&gw);
    for proto in TLS_PROTOS {
        // `GET /` shows the difference: only authenticated callers get the body.
        let accept = [("Accept", "application/json")];
        let with_cert = mtls(
            &gw,
            proto,
            http::Method::GET,
            "/",
            &accept,
            None,
            Some(&cert),
        )
        .await
        .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(with_cert.status, 200, "{proto:?}");
        let body = with_cert.json();
        assert!(body["version"].is_string(), "{proto:?}: {body}");
        let anonymous = mtls(&gw, proto, http::Method::GET, "/", &[], None, None)
            .await
            .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(anonymous.status, 200, "{proto:?}");
        assert!(anonymous.body.is_empty(), "{proto:?}");
        // Anonymous intake works within the anonymous lists.
        let r = mtls(
            &gw,
            proto,
            http::Method::POST,
            "/intake/v2/events",
            &[],
            Some(payload("python", "svc", 1)),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(r.status, 202, "{proto:?}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_native_tls_backend_serves_http1() {
    let gw = Gateway::start(
        r#"
[[listener]]
name = "native"
bind = "127.0.0.1:0"
protocols = ["http1"]
tls = "native"

[tls.native]
certificate = "certs/server.crt"
key = "certs/server.key"
backend = "native-tls"
"#,
    )
    .await;
    for mode in ["default", "h1"] {
        let resp = tls_client(&gw, mode)
            .post(gw.url("native", true, "/intake/v2/events?verbose"))
            .body(payload("python", "svc", 3))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_11, "{mode}");
        assert_eq!(resp.status(), 202, "{mode}");
        assert_eq!(resp.json::<Value>().await.unwrap(), json!({"accepted": 3}));
    }
    let dir = gw.stop().await;
    assert_eq!(support::output_documents(dir.path()).len(), 6);
}

/// native-tls never negotiates TLS 1.3 as a server (issue 12): its default range ends at TLS 1.2,
/// so the compiled profile claims what connections get, and a client offering both gets 1.2.
#[tokio::test]
async fn issue_12_the_native_tls_default_is_tls_1_2_and_serves_it() {
    let policy = r#"
[[listener]]
name = "native"
bind = "127.0.0.1:0"
protocols = ["http1"]
tls = "native"

[tls.native]
certificate = "certs/server.crt"
key = "certs/server.key"
backend = "native-tls"
"#;
    let source =
        apmgate::policy::SourceFile::new("native.toml".to_string(), Arc::<str>::from(policy));
    let compiled = apmgate::policy::compile(
        &source,
        apmgate::policy::CompileOptions { environment: false },
    );
    let compiled = compiled.policy.expect("a valid policy");
    let profile = compiled.listeners[0].tls.as_ref().expect("a TLS listener");
    assert_eq!(
        profile.versions,
        [apmgate::policy::compiled::TlsVersion::Tls12]
    );

    let gw = Gateway::start(policy).await;
    let both = rustls_config(&gw, &[b"http/1.1"], rustls::ALL_VERSIONS);
    let mut tls = tls_connect(&gw, "native", both).await.unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    tls.write_all(GET_ROOT).await.unwrap();
    assert_eq!(support::read_response(&mut tls).await.unwrap().status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_disconnected_after_the_tls_handshake_timeout() {
    let gw = Gateway::start(&support::tls_listener(
        "tls",
        r#"["http1"]"#,
        "tls_handshake_timeout = \"300ms\"",
    ))
    .await;
    // The gateway's clock moves only as the test moves it.
    let clock = HeldClock::hold();
    let started = Instant::now();
    let mut tcp = TcpStream::connect(gw.addr("tls")).await.unwrap();
    let (sent, _) = clock
        .run(
            BOUND,
            "the gateway closes a silent connection",
            support::await_close(&mut tcp),
        )
        .await;
    assert!(sent.is_empty(), "nothing is sent to a silent client");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed before the handshake timeout: {:?}",
        started.elapsed()
    );
    drop(clock);
    // A client that completes the handshake in time is served.
    let cfg = rustls_config(&gw, &[b"http/1.1"], rustls::ALL_VERSIONS);
    let mut tls = tls_connect(&gw, "tls", cfg).await.unwrap();
    tls.write_all(GET_ROOT).await.unwrap();
    assert_eq!(support::read_response(&mut tls).await.unwrap().status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_unix_socket_listener_serves_http1() {
    let sockets = tempfile::tempdir().unwrap();
    let sock = sockets.path().join("apmgate.sock");
    let gw = Gateway::start(&format!(
        "[[listener]]\nname = \"local\"\nbind = \"unix:{}\"\n",
        sock.display()
    ))
    .await;
    let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let body = payload("python", "over-unix", 2);
    let head = format!(
        "POST /intake/v2/events?verbose HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    let resp = support::read_response(&mut s).await.unwrap();
    assert_eq!(resp.status, 202);
    assert_eq!(resp.json(), json!({"accepted": 2}));
    // The connection is kept alive for the next request.
    s.write_all(GET_ROOT).await.unwrap();
    let resp = support::read_response(&mut s).await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.json()["version"].is_string());
    drop(s);
    let dir = gw.stop().await;
    let docs = support::output_documents(dir.path());
    assert_eq!(docs.len(), 2);
    assert!(
        docs.iter()
            .all(|(_, d)| d["service"]["name"] == "over-unix")
    );
    // Stopped: the socket file is gone and nobody answers.
    assert!(!sock.exists(), "the socket file is removed on shutdown");
    assert!(tokio::net::UnixStream::connect(&sock).await.is_err());
}

#[tokio::test]
async fn a_stale_unix_socket_file_is_replaced() {
    let sockets = tempfile::tempdir().unwrap();
    let sock = sockets.path().join("apmgate.sock");
    // A socket file left behind by a process that is gone.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let gw = Gateway::start(&format!(
        "[[listener]]\nname = \"local\"\nbind = \"unix:{}\"\n",
        sock.display()
    ))
    .await;
    let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
    s.write_all(GET_ROOT).await.unwrap();
    assert_eq!(support::read_response(&mut s).await.unwrap().status, 200);
    drop(s);
    gw.stop().await;
}

/// Compiles a policy written into `dir` (for starting a server by hand).
fn compile_in(dir: &Path, text: &str) -> apmgate::policy::Policy {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    let c =
        apmgate::policy::compile_file(&path, apmgate::policy::CompileOptions::default()).unwrap();
    c.policy.expect("a valid policy")
}

#[tokio::test]
async fn a_unix_bind_path_never_deletes_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "do not delete").unwrap();
    let policy = compile_in(
        dir.path(),
        &format!(
            "[[listener]]\nname = \"local\"\nbind = \"unix:{}\"\n",
            precious.display()
        ),
    );
    let built = apmgate::server::Server::build(policy).await;
    assert_eq!(
        std::fs::read_to_string(&precious).ok().as_deref(),
        Some("do not delete"),
        "the file at the bind path was deleted"
    );
    assert!(built.is_err(), "bound over a regular file");
}

#[tokio::test]
async fn a_unix_socket_in_use_is_not_stolen() {
    let sockets = tempfile::tempdir().unwrap();
    let sock = sockets.path().join("apmgate.sock");
    let other = tokio::net::UnixListener::bind(&sock).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = compile_in(
        dir.path(),
        &format!(
            "[[listener]]\nname = \"local\"\nbind = \"unix:{}\"\n",
            sock.display()
        ),
    );
    let built = apmgate::server::Server::build(policy).await;
    assert!(built.is_err(), "took over a socket in use");
    // The other process still gets its connections.
    let _client = tokio::net::UnixStream::connect(&sock).await.unwrap();
    tokio::time::timeout(BOUND, other.accept())
        .await
        .expect("the other listener still accepts")
        .unwrap();
}
