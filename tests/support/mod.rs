//! Test support: a real gateway on loopback (port 0), real HTTP clients, and helpers to read
//! what the output wrote. Every gateway runs in its own temporary directory, where the policy,
//! its certificates and its output file live.
#![allow(dead_code)]

pub mod es_standin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apmgate::output::Output;
use apmgate::policy::{CompileOptions, compile_file};
use apmgate::server::{Server, Shared};
use tokio::sync::oneshot;

/// Where the fixtures are.
pub const FIXTURES: &str = "../shared/fixtures";

/// A fixture file's bytes.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A running gateway.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub addrs: Vec<(String, SocketAddr)>,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Writes development certificates into `certs/` of a new directory, the policy as
    /// `policy.toml`, compiles it (environment checks on) and starts it.
    pub async fn start(policy: &str) -> Gateway {
        Self::start_with(policy, None).await
    }

    /// As `start`, with an output of the test's choosing.
    pub async fn start_with(policy: &str, output: Option<Arc<dyn Output>>) -> Gateway {
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
        let server = match output {
            Some(o) => Server::build_with_output(policy, o).await.unwrap(),
            None => Server::build(policy).await.unwrap(),
        };
        let addrs = server.local_addrs();
        let shared = server.shared();
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
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Address of a listener.
    pub fn addr(&self, listener: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(n, _)| n == listener)
            .unwrap_or_else(|| panic!("no listener {listener}"))
            .1
    }

    /// `http://addr` or `https://localhost:port` of a listener.
    pub fn url(&self, listener: &str, tls: bool, path: &str) -> String {
        let a = self.addr(listener);
        if tls {
            format!("https://localhost:{}{path}", a.port())
        } else {
            format!("http://{a}{path}")
        }
    }

    /// A path inside the gateway's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Stops the gateway and waits until it has drained and flushed its output.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

/// The documents of a `_bulk` NDJSON file: (data stream, document).
pub fn bulk_documents(path: &Path) -> Vec<(String, serde_json::Value)> {
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
pub enum Proto {
    /// HTTP/1.1 over TCP.
    H1,
    /// HTTP/2 over TLS, chosen by ALPN.
    H2Tls,
    /// HTTP/2 over TCP by prior knowledge.
    H2c,
}

impl Proto {
    pub const ALL: [Proto; 3] = [Proto::H1, Proto::H2Tls, Proto::H2c];

    /// The listener of `STANDARD_LISTENERS` this protocol uses.
    pub fn listener(self) -> &'static str {
        match self {
            Proto::H1 | Proto::H2c => "plain",
            Proto::H2Tls => "tls",
        }
    }

    pub fn tls(self) -> bool {
        self == Proto::H2Tls
    }

    pub fn version(self) -> reqwest::Version {
        match self {
            Proto::H1 => reqwest::Version::HTTP_11,
            _ => reqwest::Version::HTTP_2,
        }
    }
}

/// Two listeners on ephemeral ports: `plain` (HTTP/1.1 and h2c) and `tls` (HTTP/1.1 and h2).
pub const STANDARD_LISTENERS: &str = r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1", "h2c"]

[[listener]]
name = "tls"
bind = "127.0.0.1:0"
protocols = ["http1", "http2"]
tls = "dev"

[tls.dev]
certificate = "certs/server.crt"
key = "certs/server.key"
"#;

/// A client for a protocol that trusts the gateway's development CA.
pub fn client(gw: &Gateway, proto: Proto) -> reqwest::Client {
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(gw.path("certs/ca.crt")).unwrap()).unwrap();
    let b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .no_gzip()
        .no_proxy();
    match proto {
        Proto::H1 => b.http1_only(),
        Proto::H2c => b.http2_prior_knowledge(),
        Proto::H2Tls => b,
    }
    .build()
    .unwrap()
}
