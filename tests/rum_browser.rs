//! The real RUM agent in a real browser: headless Chromium loads a page served here on
//! loopback, with `@elastic/apm-rum` (tests/agents/rum, pinned) pointed at a running gateway and
//! a minified bundle (tests/agents/rum/bundle.min.js, built by terser with its source map) that
//! throws once the page has loaded. The Elasticsearch stand-in holds the bundle's source map as
//! Kibana stores it; the stored error has its frames mapped back to `app.src.js`, with the
//! original names.
//!
//! Needs Debian's `chromium` and `npm ci` in tests/agents/rum (`.ci/run` installs both). Outside
//! CI the test is skipped, saying so, when either is missing; in CI it fails instead.

mod support;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use es_standin::EsStandin;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use support::Gateway;

const WAIT: Duration = Duration::from_secs(60);
const RUM: &str = "tests/agents/rum";
const AGENT: &str = "node_modules/@elastic/apm-rum/dist/bundles/elastic-apm-rum.umd.min.js";

fn chromium() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    })
}

/// Whether the test can run here; outside CI a missing browser or agent skips it, in CI it
/// fails.
fn prerequisites() -> Option<PathBuf> {
    let browser = chromium();
    let agent = Path::new(RUM).join(AGENT);
    let missing = match (&browser, agent.is_file()) {
        (None, _) => Some("Debian's `chromium` is not installed (apt-get install -y chromium)"),
        (_, false) => Some("the RUM agent is not installed (cd tests/agents/rum && npm ci)"),
        _ => None,
    };
    if let Some(why) = missing {
        if std::env::var_os("CI").is_some() {
            panic!("the RUM browser test must run in CI, but {why}");
        }
        eprintln!("SKIPPED rum_browser: {why}");
        return None;
    }
    browser
}

/// The page, pointing the agent at `gateway`.
fn page(gateway: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>checkout</title>
<script src="/elastic-apm-rum.umd.min.js"></script>
<script>
elasticApm.init({{
  serviceName: "checkout-web",
  serviceVersion: "1.4.2",
  environment: "browser-test",
  serverUrl: "{gateway}",
  flushInterval: 100,
  centralConfig: false,
  breakdownMetrics: false
}});
</script>
<script src="/bundle.min.js"></script>
</head><body>checkout</body></html>"#
    )
}

/// Serves the page (once `gateway` is known), the agent and the bundle on loopback.
async fn serve_page(gateway: Arc<OnceLock<String>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let files: Arc<Vec<(&str, &str, Bytes)>> = Arc::new(vec![
        (
            "/elastic-apm-rum.umd.min.js",
            "application/javascript",
            Bytes::from(std::fs::read(Path::new(RUM).join(AGENT)).unwrap()),
        ),
        (
            "/bundle.min.js",
            "application/javascript",
            Bytes::from(std::fs::read(Path::new(RUM).join("bundle.min.js")).unwrap()),
        ),
    ]);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let files = files.clone();
            let gateway = gateway.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let files = files.clone();
                    let gateway = gateway.clone();
                    async move {
                        if req.uri().path() == "/" {
                            let html = page(gateway.get().expect("the gateway runs"));
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(html)));
                            resp.headers_mut()
                                .insert("content-type", "text/html".parse().unwrap());
                            return Ok::<_, Infallible>(resp);
                        }
                        let found = files.iter().find(|(p, _, _)| *p == req.uri().path());
                        let mut resp = hyper::Response::new(Full::new(
                            found.map(|f| f.2.clone()).unwrap_or_default(),
                        ));
                        match found {
                            Some((_, ct, _)) => {
                                resp.headers_mut()
                                    .insert("content-type", ct.parse().unwrap());
                            }
                            None => *resp.status_mut() = hyper::StatusCode::NOT_FOUND,
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_error_from_a_minified_bundle_is_stored_with_mapped_frames() {
    let Some(browser) = prerequisites() else {
        return;
    };
    // The map is in Elasticsearch before the gateway first reads the list of maps.
    let es = EsStandin::start().await;
    let gateway = Arc::new(OnceLock::new());
    let page = serve_page(gateway.clone()).await;
    let bundle = format!("http://{page}/bundle.min.js");
    es.put_source_map(
        "checkout-web",
        "1.4.2",
        &bundle,
        &std::fs::read(Path::new(RUM).join("bundle.min.js.map")).unwrap(),
    );
    let gw = Gateway::start(&format!(
        r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1"]

[rum]
enabled = true
allow_origins = ["*"]

[output.elasticsearch]
hosts = ["{}"]
flush_interval = "20ms"
dead_letter_path = "dead.ndjson"
"#,
        es.url()
    ))
    .await;
    gateway.set(gw.url("plain", false, "")).unwrap();

    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            // Timers run ahead in virtual time; it stands still while requests are in flight,
            // so the agent's flush reaches the gateway before the browser quits.
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://{page}/"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, run)
        .await
        .expect("chromium finishes within its virtual time budget")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let is_ours = |d: &Value| d["service"]["name"] == "checkout-web";
    es.wait_docs(WAIT, |docs| {
        docs.iter()
            .any(|(i, d)| i.starts_with("logs-apm.error") && is_ours(d))
    })
    .await;
    let error = es
        .docs()
        .into_iter()
        .find(|(i, d)| i.starts_with("logs-apm.error") && is_ours(d))
        .unwrap()
        .1;
    let exception = &error["error"]["exception"][0];
    assert!(
        exception["message"]
            .as_str()
            .unwrap_or("")
            .contains("checkout failed"),
        "{error}"
    );
    let frames = exception["stacktrace"].as_array().expect("frames");
    let mapped: Vec<&Value> = frames
        .iter()
        .filter(|f| f["sourcemap"]["updated"] == true)
        .collect();
    assert!(!mapped.is_empty(), "no frame was mapped: {error}");
    for f in &mapped {
        assert_eq!(f["filename"], "app.src.js", "{f}");
        assert_eq!(f["abs_path"], bundle.as_str(), "{f}");
        assert_eq!(f["original"]["abs_path"], bundle.as_str(), "{f}");
        assert!(f["line"]["context"].is_string(), "{f}");
    }
    // The throwing frame takes the name the map gives its caller's position.
    assert_eq!(frames[0]["sourcemap"]["updated"], true, "{error}");
    assert_eq!(frames[0]["function"], "renderCheckout", "{error}");
    assert_eq!(
        frames[0]["line"]["context"].as_str().unwrap_or("").trim(),
        "throw new Error('checkout failed: no currency for a total of ' + total);"
    );
    assert_eq!(error["error"]["culprit"], "app.src.js in renderCheckout");
    gw.stop().await;
}
