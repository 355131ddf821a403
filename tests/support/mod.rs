//! Test support: a real gateway on loopback (port 0), real HTTP clients, and helpers to read
//! what the output wrote. Every gateway runs in its own temporary directory, where the policy,
//! its certificates and its output file live.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) mod otlp;

use apmgate::output::Output;
use apmgate::policy::{CompileOptions, compile_file};
use apmgate::server::{Server, Shared};
use tokio::sync::oneshot;

/// Where the fixtures are.
pub(crate) const FIXTURES: &str = "../shared/fixtures";

/// A fixture file's bytes.
pub(crate) fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A running gateway.
pub(crate) struct Gateway {
    pub dir: tempfile::TempDir,
    pub addrs: Vec<(String, SocketAddr)>,
    pub shared: Arc<Shared>,
    reloader: apmgate::server::Reloader,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Writes development certificates into `certs/` of a new directory, the policy as
    /// `policy.toml`, compiles it (environment checks on) and starts it.
    pub(crate) async fn start(policy: &str) -> Gateway {
        Self::start_with(policy, None).await
    }

    /// As `start`, with an output of the test's choosing.
    ///
    /// A policy without an `[aggregation]` section runs with aggregation off: those tests count
    /// the documents their events become, and an aggregation interval closing during a test
    /// would add metric documents to them. Aggregated metrics have their own tests
    /// (`tests/aggregation*.rs`, `tests/agents.rs`), which say `[aggregation]`.
    pub(crate) async fn start_with(policy: &str, output: Option<Arc<dyn Output>>) -> Gateway {
        let policy = &without_aggregation_unless_asked(policy);
        let dir = tempfile::tempdir().unwrap();
        apmgate::devcerts::write(
            &dir.path().join("certs"),
            &apmgate::devcerts::Validity::default(),
        )
        .unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, policy).unwrap();
        let c = compile_file(&path, CompileOptions::default()).unwrap();
        let errors: Vec<_> = c
            .diagnostics
            .iter()
            .filter(|d| d.severity == apmgate::policy::Severity::Error)
            .collect();
        assert!(errors.is_empty(), "test policy is invalid: {errors:#?}");
        let policy = c.policy.unwrap();
        // (With port 0 and `http3`, the server itself picks again when the UDP port is taken.)
        let server = match output {
            Some(o) => Server::build_with_output(policy, o).await.unwrap(),
            None => Server::build(policy).await.unwrap(),
        };
        let addrs = server.local_addrs();
        let shared = server.shared();
        let reloader = server.reloader();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Gateway {
            dir,
            addrs,
            shared,
            reloader,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Reloads the running gateway with `policy` (written as its `policy.toml` and compiled
    /// with environment checks, as SIGHUP does; aggregation off unless asked, as `start_with`).
    pub(crate) async fn reload(&mut self, policy: &str) -> apmgate::server::Reloaded {
        self.try_reload(policy).await.expect("reload applied")
    }

    /// As `reload`, returning the server's refusal (a listener that cannot bind, a
    /// certificate that cannot be read) instead of panicking on it.
    pub(crate) async fn try_reload(
        &mut self,
        policy: &str,
    ) -> Result<apmgate::server::Reloaded, apmgate::server::ServerError> {
        let policy = &without_aggregation_unless_asked(policy);
        let path = self.dir.path().join("policy.toml");
        std::fs::write(&path, policy).unwrap();
        let c = compile_file(&path, CompileOptions::default()).unwrap();
        assert_eq!(
            c.errors(),
            0,
            "reloaded policy is invalid: {:#?}",
            c.diagnostics
        );
        let changes = self.reloader.reload(c.policy.unwrap()).await?;
        // Addresses of listeners bound by the reload; none of those it stopped.
        self.addrs
            .retain(|(n, _)| !changes.listeners.stopped.contains(n));
        for (name, addr) in &changes.listeners.bound {
            self.addrs.retain(|(n, _)| n != name);
            if let Some(a) = addr {
                self.addrs.push((name.clone(), *a));
            }
        }
        Ok(changes)
    }

    /// Address of a listener.
    pub(crate) fn addr(&self, listener: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(n, _)| n == listener)
            .unwrap_or_else(|| panic!("no listener {listener}"))
            .1
    }

    /// `http://addr` or `https://localhost:port` of a listener.
    pub(crate) fn url(&self, listener: &str, tls: bool, path: &str) -> String {
        let a = self.addr(listener);
        if tls {
            format!("https://localhost:{}{path}", a.port())
        } else {
            format!("http://{a}{path}")
        }
    }

    /// A path inside the gateway's directory.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Stops the gateway and waits until it has drained and flushed its output.
    pub(crate) async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

/// Runs `../shared/tools/es-compare` on a captured `_bulk` file against `expected` (a path
/// under the fixtures) with `args`, and fails with its report unless every document matches.
pub(crate) fn assert_es_compare(name: &str, captured: &Path, expected: &str, args: &[&str]) {
    let out = std::process::Command::new("python3")
        .arg("../shared/tools/es-compare")
        .arg(captured)
        .arg(Path::new(FIXTURES).join(expected))
        .args(args)
        .output()
        .expect("python3 runs es-compare");
    assert!(
        out.status.success(),
        "{name}: es-compare reports differences:\n{}{}\ncaptured:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(captured).unwrap_or_default()
    );
}

/// `policy` with `[aggregation] enabled = false` added when it has no `[aggregation]` section.
pub(crate) fn without_aggregation_unless_asked(policy: &str) -> String {
    if policy.contains("[aggregation]") {
        policy.to_string()
    } else {
        format!("{policy}\n[aggregation]\nenabled = false\n")
    }
}

/// The documents of a `_bulk` NDJSON file: (data stream, document).
pub(crate) fn bulk_documents(path: &Path) -> Vec<(String, serde_json::Value)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() % 2 == 0, "a bulk file has pairs of lines");
    lines
        .chunks(2)
        .map(|pair| {
            let action: serde_json::Value = serde_json::from_str(pair[0]).unwrap();
            let index = action["create"]["_index"]
                .as_str()
                .expect("a create action with an _index")
                .to_string();
            (index, serde_json::from_str(pair[1]).unwrap())
        })
        .collect()
}

/// Which protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// HTTP/1.1 over TCP (plaintext on `plain`, over TLS on a TLS listener).
    H1,
    /// HTTP/2 over TLS, chosen by ALPN.
    H2Tls,
    /// HTTP/2 over TCP by prior knowledge.
    H2c,
    /// HTTP/3 over QUIC (quinn + h3), TLS 1.3 with ALPN `h3`.
    H3,
}

impl Proto {
    /// The protocols reqwest speaks here, for tests that use `client` directly.
    pub(crate) const ALL: [Proto; 3] = [Proto::H1, Proto::H2Tls, Proto::H2c];

    /// Every protocol the gateway serves, for tests that go through `request`.
    pub(crate) const EVERY: [Proto; 4] = [Proto::H1, Proto::H2Tls, Proto::H2c, Proto::H3];

    /// The listener of `STANDARD_LISTENERS` this protocol uses.
    pub(crate) fn listener(self) -> &'static str {
        match self {
            Proto::H1 | Proto::H2c => "plain",
            Proto::H2Tls | Proto::H3 => "tls",
        }
    }

    /// Whether this protocol reaches its standard listener over TLS.
    pub(crate) fn tls(self) -> bool {
        matches!(self, Proto::H2Tls | Proto::H3)
    }

    /// The HTTP version of the responses.
    pub(crate) fn version(self) -> http::Version {
        match self {
            Proto::H1 => http::Version::HTTP_11,
            Proto::H2Tls | Proto::H2c => http::Version::HTTP_2,
            Proto::H3 => http::Version::HTTP_3,
        }
    }

    /// This protocol on another listener than its standard one.
    pub(crate) fn on(self, listener: &str) -> Target<'_> {
        Target {
            proto: self,
            listener,
        }
    }

    /// The policy's name of this protocol.
    fn policy_protocol(self) -> apmgate::policy::compiled::Protocol {
        use apmgate::policy::compiled::Protocol;
        match self {
            Proto::H1 => Protocol::Http1,
            Proto::H2Tls => Protocol::Http2,
            Proto::H2c => Protocol::H2c,
            Proto::H3 => Protocol::Http3,
        }
    }
}

/// Where a request goes: a protocol on a listener (a bare `Proto` means its standard listener).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub proto: Proto,
    pub listener: &'a str,
}

impl From<Proto> for Target<'static> {
    fn from(proto: Proto) -> Self {
        Target {
            proto,
            listener: proto.listener(),
        }
    }
}

/// Two listeners on ephemeral ports: `plain` (HTTP/1.1 and h2c) and `tls` (HTTP/1.1, h2 and
/// HTTP/3 on the same port number, TCP and UDP).
pub(crate) const STANDARD_LISTENERS: &str = r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1", "h2c"]

[[listener]]
name = "tls"
bind = "127.0.0.1:0"
protocols = ["http1", "http2", "http3"]
tls = "dev"

[tls.dev]
certificate = "certs/server.crt"
key = "certs/server.key"
"#;

/// One listener `name` on an ephemeral port speaking `protocols` (a TOML array) over TLS with the
/// development certificates, with `limits` (the body of an inline table, may be empty). The
/// text ends inside `[tls.dev]`, so profile settings can be appended.
pub(crate) fn tls_listener(name: &str, protocols: &str, limits: &str) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\nbind = \"127.0.0.1:0\"\nprotocols = {protocols}\ntls = \"dev\"\nlimits = {{ {limits} }}\n\n[tls.dev]\ncertificate = \"certs/server.crt\"\nkey = \"certs/server.key\"\n"
    )
}

/// A client for a protocol that trusts the gateway's development CA. reqwest speaks no HTTP/3
/// here: tests that cover `Proto::H3` go through `request`.
pub(crate) fn client(gw: &Gateway, proto: Proto) -> reqwest::Client {
    reqwest_client(gw, proto, None)
}

fn reqwest_client(gw: &Gateway, proto: Proto, identity: Option<&Identity>) -> reqwest::Client {
    reqwest_builder(gw, proto, identity).build().unwrap()
}

fn reqwest_builder(
    gw: &Gateway,
    proto: Proto,
    identity: Option<&Identity>,
) -> reqwest::ClientBuilder {
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(gw.path("certs/ca.crt")).unwrap()).unwrap();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .no_gzip()
        .no_proxy();
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(&[&id.cert[..], &id.key[..]].concat()).unwrap());
    }
    match proto {
        Proto::H1 => b.http1_only(),
        Proto::H2c => b.http2_prior_knowledge(),
        Proto::H2Tls => b,
        Proto::H3 => panic!("reqwest speaks no HTTP/3 here: use support::request for Proto::H3"),
    }
}

/// A client certificate and its private key (PEM), presented in the TLS handshake.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl Identity {
    /// The development client certificate (CN=agent-1.agents.local) of a gateway.
    pub(crate) fn dev(gw: &Gateway) -> Identity {
        Identity {
            cert: std::fs::read(gw.path("certs/client.crt")).unwrap(),
            key: std::fs::read(gw.path("certs/client.key")).unwrap(),
        }
    }
}

/// A response read whole, the same shape whatever the protocol it came over.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("a visible ASCII header value"))
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Why a request got no response (a refused handshake, a reset, a client-side refusal).
pub(crate) type RequestError = Box<dyn std::error::Error + Send + Sync>;

/// An upper bound on one exchange, so a gateway that never answers fails the test instead of
/// hanging it.
const EXCHANGE_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends one request over any protocol, on a fresh connection, and reads the response whole:
/// reqwest for HTTP/1.1, h2 and h2c, quinn + h3 for HTTP/3. `to` is a `Proto` (its standard
/// listener) or `proto.on(listener)`; the scheme follows the listener's TLS profile. The same
/// request goes out over every protocol: with a body, a `Content-Length`; without an `Accept`,
/// `Accept: */*` (what reqwest sends). With `identity`, the client certificate is presented.
pub(crate) async fn request<'a>(
    gw: &Gateway,
    to: impl Into<Target<'a>>,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    identity: Option<&Identity>,
) -> Result<Response, RequestError> {
    let Target { proto, listener } = to.into();
    let tls = {
        let rt = gw.shared.runtime.borrow();
        let l = rt
            .policy
            .listeners
            .iter()
            .find(|l| l.name == listener)
            .unwrap_or_else(|| panic!("no listener {listener}"));
        assert!(
            l.speaks(proto.policy_protocol()),
            "listener {listener} does not speak {proto:?}"
        );
        l.tls.is_some()
    };
    let exchange = async {
        if proto == Proto::H3 {
            let mut all: Vec<(&str, String)> = headers
                .iter()
                .map(|(k, v)| (*k, (*v).to_string()))
                .collect();
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
            {
                all.push(("accept", "*/*".to_string()));
            }
            if let Some(b) = &body {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                {
                    all.push(("content-length", b.len().to_string()));
                }
            }
            let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = h3_exchange(
                gw,
                listener,
                method.as_str(),
                path,
                &all,
                body.unwrap_or_default(),
                identity,
            )
            .await?;
            return Ok(Response {
                status: r.status,
                version: http::Version::HTTP_3,
                headers: r.headers,
                body: r.body,
            });
        }
        assert!(
            tls || proto != Proto::H2Tls,
            "h2 over TLS on the plaintext listener {listener}"
        );
        assert!(
            !tls || proto != Proto::H2c,
            "h2c on the TLS listener {listener}"
        );
        // `localhost` is the listener's address (which need not be 127.0.0.1).
        let http = reqwest_builder(gw, proto, identity)
            .resolve("localhost", gw.addr(listener))
            .build()
            .unwrap();
        let mut req = http.request(method, gw.url(listener, tls, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(Response {
            status,
            version,
            headers,
            body,
        })
    };
    tokio::time::timeout(EXCHANGE_BOUND, exchange)
        .await
        .map_err(|_| format!("{proto:?}: no response within {EXCHANGE_BOUND:?}"))?
}

/// A response read whole with its body as JSON (`Null` when empty): what the runtime tests
/// compare.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    /// The first value of a header.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The message of an `{"error": ...}` body.
    pub(crate) fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {}", self.body))
    }

    /// The messages of an intake result body.
    pub(crate) fn messages(&self) -> Vec<&str> {
        self.body["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e["message"].as_str().unwrap()).collect())
            .unwrap_or_default()
    }

    /// The Etag without its quotes (asserting that it is quoted).
    pub(crate) fn etag(&self) -> String {
        let raw = self.header("etag").expect("an Etag header");
        assert!(
            raw.len() >= 3 && raw.starts_with('"') && raw.ends_with('"'),
            "Etag {raw:?} is not quoted"
        );
        raw.trim_matches('"').to_string()
    }
}

/// The body of a `call`: bytes sent as they are, or JSON sent as `application/json`.
pub(crate) enum Body {
    Bytes(Vec<u8>),
    Json(serde_json::Value),
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Body {
        Body::Bytes(b)
    }
}

impl From<serde_json::Value> for Body {
    fn from(v: serde_json::Value) -> Body {
        Body::Json(v)
    }
}

/// One request over `proto` (on its standard listener) asking for JSON (`Accept:
/// application/json`, then `headers`), read whole into an `Answer`. Panics when no response
/// comes, or when it comes over another HTTP version than `proto`'s.
pub(crate) async fn call(
    gw: &Gateway,
    proto: Proto,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Body>,
) -> Answer {
    let mut all = vec![("Accept", "application/json")];
    let body = body.map(|b| match b {
        Body::Bytes(b) => b,
        Body::Json(v) => {
            all.push(("Content-Type", "application/json"));
            v.to_string().into_bytes()
        }
    });
    all.extend_from_slice(headers);
    let resp = request(gw, proto, method.clone(), path, &all, body, None)
        .await
        .unwrap_or_else(|e| panic!("{proto:?} {method} {path}: {e}"));
    assert_eq!(resp.version, proto.version());
    let body = if resp.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&resp.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&resp.body)))
    };
    Answer {
        status: resp.status,
        version: resp.version,
        headers: resp.headers,
        body,
    }
}

/// `call` with GET.
pub(crate) async fn get(
    gw: &Gateway,
    proto: Proto,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    call(gw, proto, http::Method::GET, path, headers, None).await
}

/// `call` with POST.
pub(crate) async fn post(
    gw: &Gateway,
    proto: Proto,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Answer {
    call(
        gw,
        proto,
        http::Method::POST,
        path,
        headers,
        Some(body.into()),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Helpers for the runtime tests (`tests/runtime_*.rs`).

/// An output that refuses every batch with its error (a full queue, a stopping gateway).
pub(crate) struct Refusing(pub apmgate::output::PublishError);

impl Output for Refusing {
    fn publish(
        &self,
        _: Vec<apmgate::output::OutputDocument>,
    ) -> apmgate::output::PublishFuture<'_> {
        let e = self.0.clone();
        Box::pin(async move { Err(e) })
    }
    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + '_>> {
        Box::pin(async { 0 })
    }
}

/// The default file output of a gateway directory (after `Gateway::stop`).
pub(crate) fn output_documents(dir: &Path) -> Vec<(String, serde_json::Value)> {
    bulk_documents(&dir.join("data/apmgate-events.ndjson"))
}

/// A v2 intake payload: a metadata line for `service` sent by `agent`, then `n` transactions
/// (valid by APM Server's schema, so the payload stays valid when the model grows).
pub(crate) fn payload(agent: &str, service: &str, n: usize) -> Vec<u8> {
    let mut s = metadata_line(agent, service);
    for i in 0..n {
        s.push_str(&transaction_line(i, None));
    }
    s.into_bytes()
}

/// The v2 metadata line of `payload`, with its newline.
pub(crate) fn metadata_line(agent: &str, service: &str) -> String {
    format!(
        "{{\"metadata\":{{\"service\":{{\"name\":\"{service}\",\"agent\":{{\"name\":\"{agent}\",\"version\":\"1.0.0\"}}}}}}}}\n"
    )
}

/// One v2 transaction line (with its newline); `agent` overrides the agent name of this event
/// through `context.service.agent.name`.
pub(crate) fn transaction_line(i: usize, agent: Option<&str>) -> String {
    let context = agent
        .map(|a| format!(",\"context\":{{\"service\":{{\"agent\":{{\"name\":\"{a}\"}}}}}}"))
        .unwrap_or_default();
    format!(
        "{{\"transaction\":{{\"id\":\"{i:016x}\",\"trace_id\":\"{i:032x}\",\"type\":\"request\",\"duration\":1.5,\"span_count\":{{\"started\":0}}{context}}}}}\n"
    )
}

/// A client for a protocol that trusts the gateway's development CA and presents a client
/// certificate (`cert` and `key` PEM).
pub(crate) fn client_with_identity(
    gw: &Gateway,
    proto: Proto,
    cert: &[u8],
    key: &[u8],
) -> reqwest::Client {
    let identity = Identity {
        cert: cert.to_vec(),
        key: key.to_vec(),
    };
    reqwest_client(gw, proto, Some(&identity))
}

/// An API key as `apmgate keys new` makes it: the id, the secret, the Argon2id PHC hash the
/// policy holds, and the `Authorization` header value an agent sends.
pub(crate) struct ApiKey {
    pub id: String,
    pub secret: String,
    pub hash: String,
    pub header: String,
}

impl ApiKey {
    /// A new key with a random secret, hashed with Argon2id's default parameters.
    pub(crate) fn new(id: &str) -> ApiKey {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        use base64::Engine as _;
        let secret: String = {
            use rand::Rng;
            let mut rng = rand::rngs::OsRng;
            (0..40)
                .map(|_| {
                    let c = rng.gen_range(0..62u8);
                    (match c {
                        0..=25 => b'A' + c,
                        26..=51 => b'a' + c - 26,
                        _ => b'0' + c - 52,
                    }) as char
                })
                .collect()
        };
        let salt = SaltString::generate(&mut OsRng);
        let hash = argon2::Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .unwrap()
            .to_string();
        let header = format!(
            "ApiKey {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        );
        ApiKey {
            id: id.to_string(),
            secret,
            hash,
            header,
        }
    }

    /// The header value for this id with another secret.
    pub(crate) fn header_with_secret(&self, secret: &str) -> String {
        use base64::Engine as _;
        format!(
            "ApiKey {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", self.id))
        )
    }
}

/// The value of one series (`name{labels}` exactly as rendered, or a bare name) in a
/// Prometheus text exposition.
pub(crate) fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok()).flatten()
    })
}

/// Polls `cond` until it holds; panics with `what` after `limit`. For conditions the test
/// cannot await directly (a gauge reaching a value); never a substitute for an event.
pub(crate) async fn wait_until(
    limit: std::time::Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Tokio's clock, paused and moved only by the test, for checking that something happens no
/// earlier (or no later) than a configured time on the clock of the code under test, which runs
/// on the test's runtime, without waiting for that time to pass.
///
/// `tokio::time::pause` alone does not do: tokio then moves the clock to the next timer
/// whenever every task waits, and a task waiting on a socket counts as waiting, so a timer
/// could fire while loopback bytes are on their way. While the clock is held, a task that is
/// always ready keeps the runtime from ever parking, so the clock moves only in `run`, 1 ms at
/// a time, each step after every ready task and every socket has had its turns. Dropping it
/// gives the runtime back the real clock. Only on a current-thread runtime (`#[tokio::test]`).
pub(crate) struct HeldClock {
    spinner: tokio::task::JoinHandle<()>,
}

impl HeldClock {
    /// Runs of the scheduler (each one polls the sockets) between two steps of the clock.
    const TURNS: usize = 64;

    /// Pauses the clock and keeps it still.
    pub(crate) fn hold() -> HeldClock {
        tokio::time::pause();
        let spinner = tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
        HeldClock { spinner }
    }

    /// Drives `fut` to completion, moving the clock 1 ms whenever `fut` is still pending after
    /// `TURNS` runs of the scheduler; returns its output and the time it took on this clock.
    /// Panics, naming `what`, once `limit` has passed on this clock.
    pub(crate) async fn run<F: std::future::Future>(
        &self,
        limit: std::time::Duration,
        what: &str,
        fut: F,
    ) -> (F::Output, std::time::Duration) {
        use std::task::Poll;
        let started = tokio::time::Instant::now();
        let mut fut = std::pin::pin!(fut);
        loop {
            for _ in 0..Self::TURNS {
                let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
                if let Poll::Ready(out) = polled {
                    return (out, started.elapsed());
                }
                tokio::task::yield_now().await;
            }
            assert!(
                started.elapsed() < limit,
                "{what}: not within {limit:?} on the held clock"
            );
            tokio::time::advance(std::time::Duration::from_millis(1)).await;
        }
    }
}

impl Drop for HeldClock {
    fn drop(&mut self) {
        self.spinner.abort();
        tokio::time::resume();
    }
}

/// A gauge of the gateway's metrics (`apmgate_requests_in_flight`, `apmgate_connections_open`).
pub(crate) fn gauge(gw: &Gateway, name: &str) -> i64 {
    gw.shared
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gauge {name}"))
}

/// An HTTP/1.1 response read off a raw stream.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of a header (names compared case-insensitively).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one HTTP/1.1 response (head, then a body framed by Content-Length or chunked, or
/// none) from a raw stream.
pub(crate) async fn read_response<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<RawResponse> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if r.read(&mut byte).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = resp.header("content-length") {
        let mut body = vec![0u8; len.parse().unwrap()];
        r.read_exact(&mut body).await?;
        resp.body = body;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = Vec::new();
            while !size_line.ends_with(b"\r\n") {
                r.read_exact(&mut byte).await?;
                size_line.push(byte[0]);
            }
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&size_line)
                    .trim()
                    .split(';')
                    .next()
                    .unwrap(),
                16,
            )
            .unwrap();
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            resp.body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(resp)
}

/// Waits until the peer closes a raw stream (EOF or reset), discarding what it sends; the
/// bytes it sent before closing are returned.
pub(crate) async fn await_close<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// A response read over HTTP/3.
pub(crate) struct H3Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// Sends one request over HTTP/3 (quinn + h3) to a listener, trusting the dev CA; with
/// `client_cert`, presents the dev client certificate. Panics if no response comes.
pub(crate) async fn h3_request(
    gw: &Gateway,
    listener: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    client_cert: bool,
) -> H3Response {
    let identity = client_cert.then(|| Identity::dev(gw));
    h3_exchange(gw, listener, method, path, headers, body, identity.as_ref())
        .await
        .unwrap_or_else(|e| panic!("HTTP/3 {method} {path}: {e}"))
}

/// One HTTP/3 request on a new QUIC connection (TLS 1.3, ALPN `h3`, trusting the dev CA,
/// presenting `identity` if given). As RFC 9114 section 4.1 asks of clients, a request body
/// the server stops reading does not discard the response it sent.
pub(crate) async fn h3_exchange(
    gw: &Gateway,
    listener: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    identity: Option<&Identity>,
) -> Result<H3Response, RequestError> {
    use bytes::Buf;
    use rustls_pki_types::pem::PemObject;
    // The client's own set-up panics: only what the server does may come back as an error, so
    // that a test expecting a refusal cannot pass on a broken client.
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(gw.path("certs/ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some(id) => {
            let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&id.cert)
                .collect::<Result<Vec<_>, _>>()
                .expect("a PEM client certificate");
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&id.key)
                .expect("a PEM private key");
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let addr = gw.addr(listener);
    let result = async {
        let conn = endpoint.connect(addr, "localhost").unwrap().await?;
        let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
        let drive =
            tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost:{}{path}", addr.port()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let exchange = async {
            let req = req.body(()).expect("a well-formed request");
            let mut stream = send.send_request(req).await?;
            // The server may answer without reading the whole body (a refusal); its response
            // counts, and a send error only matters if there is none.
            let mut sent: Result<(), RequestError> = Ok(());
            if !body.is_empty() {
                sent = stream
                    .send_data(bytes::Bytes::from(body))
                    .await
                    .map_err(Into::into);
            }
            if sent.is_ok() {
                sent = stream.finish().await.map_err(Into::into);
            }
            let resp = match stream.recv_response().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(match sent {
                        Err(s) => format!("{e} (after sending failed: {s})").into(),
                        Ok(()) => e.into(),
                    });
                }
            };
            let mut out = Vec::new();
            while let Some(mut chunk) = stream.recv_data().await? {
                out.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
            }
            Ok::<_, RequestError>(H3Response {
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
                body: out,
            })
        }
        .await;
        drop(send);
        drive.abort();
        exchange
    }
    .await;
    endpoint.close(0u32.into(), b"done");
    result
}

/// A QUIC connection (TLS 1.3, ALPN `h3`, trusting the dev CA) to a listener, without HTTP/3
/// on top: for tests of the connection itself (idle timeout, connection limit). The endpoint
/// must outlive the connection.
pub(crate) async fn quic_connect(
    gw: &Gateway,
    listener: &str,
) -> (
    quinn::Endpoint,
    Result<quinn::Connection, quinn::ConnectionError>,
) {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(gw.path("certs/ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint
        .connect(gw.addr(listener), "localhost")
        .unwrap()
        .await;
    (endpoint, conn)
}

/// A request body fed by a channel, for holding request streams open (uploads that stream as
/// long as a test wants).
pub(crate) struct ChannelBody(pub tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// An intake body: metadata (service `checkout`), then one transaction per id, each id as its
/// transaction id (16 hex digits).
pub(crate) fn events(ids: std::ops::Range<usize>) -> String {
    let mut body = String::from(
        r#"{"metadata":{"service":{"name":"checkout","agent":{"name":"python","version":"6.26.2"}}}}"#,
    );
    body.push('\n');
    for n in ids {
        body.push_str(&format!(
            r#"{{"transaction":{{"id":"{n:016x}","trace_id":"{n:032x}","name":"GET /","type":"request","duration":1.5,"span_count":{{"started":0}}}}}}"#
        ));
        body.push('\n');
    }
    body
}

/// Transaction ids among documents, with how often each was indexed.
pub(crate) fn transaction_ids(
    docs: &[(String, serde_json::Value)],
) -> std::collections::HashMap<String, usize> {
    let mut m = std::collections::HashMap::new();
    for (index, d) in docs {
        if index.starts_with("traces-apm") {
            if let Some(id) = d["transaction"]["id"].as_str() {
                *m.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    m
}

/// `apmgate run --log-format json` as a child process, its log lines read as they come.
pub(crate) struct Process {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Process {
    /// Runs `apmgate run --log-format json FILE ARGS...` with `env`.
    pub(crate) fn run(policy: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apmgate"))
            .args(["run", "--log-format", "json"])
            .args(args)
            .arg(policy)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            child,
            lines: rx,
            log: Vec::new(),
        }
    }

    /// Waits (at most 30 s) for the next log line containing `needle`; returns it.
    pub(crate) fn wait_for(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}; log: {:#?}", self.log));
            self.log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The first log line containing `needle`, already read or waited for.
    pub(crate) fn find(&mut self, needle: &str) -> String {
        match self.log.iter().find(|l| l.contains(needle)) {
            Some(line) => line.clone(),
            None => self.wait_for(needle),
        }
    }

    /// Sends a signal (`TERM`, `HUP`, ...).
    pub(crate) fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }
}
