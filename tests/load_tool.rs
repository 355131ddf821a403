//! apmgate-load, the load generator of BENCHMARKS.md: it plays agents against a real gateway
//! over every protocol, stops by itself and reports what was accepted; its ceiling server,
//! its parse measurement and its Elasticsearch stand-in do what they say.

mod support;

use std::process::Stdio;

use serde_json::Value;
use support::Gateway;
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "load-test-token-0123456789abcdefghijkl";
const PAYLOAD: &str = "../shared/fixtures/intake/v2/errors.ndjson";

fn load_tool() -> tokio::process::Command {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_apmgate-load"))
}

/// Runs `apmgate-load agents` and returns its report.
async fn agents(url: &str, protocol: &str, extra: &[&str]) -> Value {
    let out = load_tool()
        .arg("agents")
        .args(["--url", url, "--payload", PAYLOAD, "--protocol", protocol])
        .args([
            "--agents",
            "3",
            "--events",
            "60",
            "--seconds",
            "30",
            "--gzip",
        ])
        .args(extra)
        .env("APMGATE_LOAD_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{protocol}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A background `apmgate-load` server; returns it and the first `lines` lines it printed on
/// stderr (where it says what it listens on).
async fn spawn_server(args: &[&str], lines: usize) -> (tokio::process::Child, Vec<String>) {
    let mut child = load_tool()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut printed = Vec::new();
    while printed.len() < lines {
        let line = stderr
            .next_line()
            .await
            .unwrap()
            .expect("the server prints its address");
        printed.push(line);
    }
    (child, printed)
}

/// The address on the printed line that mentions `what` (servers start in any order).
fn address(printed: &[String], what: &str) -> String {
    let line = printed
        .iter()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line mentions {what}: {printed:?}"));
    line.split(' ')
        .find(|w| w.contains(':'))
        .unwrap()
        .to_string()
}

/// Stops a background server with SIGTERM and returns the JSON it prints.
async fn stop_server(child: tokio::process::Child) -> Value {
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_load_tool_plays_agents_over_every_protocol_and_stops_by_itself() {
    let gw = Gateway::start(&format!(
        "{}\n[auth.secret_token.load]\nsecret = \"{TOKEN}\"\n",
        support::STANDARD_LISTENERS
    ))
    .await;
    let ca = gw.path("certs/ca.crt");
    let pid = std::process::id().to_string();
    let mut accepted_total = 0;
    for (protocol, tls) in [
        ("h1", false),
        ("h2c", false),
        ("h1s", true),
        ("h2", true),
        ("h3", true),
    ] {
        let url = if tls {
            // The TLS certificate names localhost.
            format!(
                "https://localhost:{}/intake/v2/events",
                gw.addr("tls").port()
            )
        } else {
            gw.url("plain", false, "/intake/v2/events")
        };
        let report = agents(
            &url,
            protocol,
            &["--ca", ca.to_str().unwrap(), "--pid", &pid],
        )
        .await;
        // 5 events a request; the tool stops once 60 are sent (each agent may finish one more).
        let accepted = report["events_accepted"].as_u64().unwrap();
        assert!((60..=75).contains(&accepted), "{protocol}: {report}");
        assert_eq!(
            report["statuses"]["202"].as_u64().unwrap() * 5,
            accepted,
            "{report}"
        );
        assert_eq!(report["transport_errors"], 0, "{protocol}: {report}");
        assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
        assert!(
            report["server_peak_rss_mib"].as_f64().unwrap() > 0.0,
            "read from /proc"
        );
        accepted_total += accepted;
    }
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    assert_eq!(docs.len() as u64, accepted_total);

    // A non-loopback target is refused.
    let out = load_tool()
        .args([
            "agents",
            "--url",
            "http://192.0.2.1:8200/intake/v2/events",
            "--payload",
            PAYLOAD,
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[tokio::test]
async fn the_load_tool_exports_over_otlp_http_and_grpc() {
    let gw = Gateway::start(&format!(
        "{}\n[auth.secret_token.load]\nsecret = \"{TOKEN}\"\n",
        support::STANDARD_LISTENERS
    ))
    .await;
    let mut spans = 0;
    for (otlp, protocol) in [("http", "h1"), ("http", "h2c"), ("grpc", "h2c")] {
        let url = gw.url("plain", false, "/");
        let report = agents(&url, protocol, &["--otlp", otlp]).await;
        // A trace of 5 spans a request (the payload's 5 events), answered 200.
        assert_eq!(report["events_per_request"], 5, "{report}");
        let accepted = report["events_accepted"].as_u64().unwrap();
        assert!((60..=75).contains(&accepted), "{otlp} {protocol}: {report}");
        assert_eq!(report["statuses"]["200"].as_u64().unwrap() * 5, accepted);
        assert_eq!(report["transport_errors"], 0, "{report}");
        spans += accepted;
    }
    // A refused gRPC call is counted as 1000 + its code (16: UNAUTHENTICATED).
    let out = load_tool()
        .args([
            "agents",
            "--url",
            &gw.url("plain", false, "/"),
            "--payload",
            PAYLOAD,
        ])
        .args([
            "--protocol",
            "h2c",
            "--otlp",
            "grpc",
            "--agents",
            "1",
            "--events",
            "5",
        ])
        .output()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["statuses"]["1016"], 1, "{report}");
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    assert_eq!(docs.len() as u64, spans, "every span landed");
}

#[tokio::test]
async fn the_ceiling_reads_and_discards_every_body_over_every_protocol() {
    let certs = tempfile::tempdir().unwrap();
    apmgate::devcerts::write(certs.path(), &apmgate::devcerts::Validity::default()).unwrap();
    let (cert, key, ca) = (
        certs.path().join("server.crt"),
        certs.path().join("server.key"),
        certs.path().join("ca.crt"),
    );
    let (server, addrs) = spawn_server(
        &[
            "ceiling",
            "--plain",
            "127.0.0.1:0",
            "--tls",
            "127.0.0.1:0",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        3,
    )
    .await;
    let port = |a: &str| a.rsplit(':').next().unwrap().to_string();
    let (plain, tls, quic) = (
        &address(&addrs, "(plain)"),
        port(&address(&addrs, "(tls)")),
        port(&address(&addrs, "(quic)")),
    );
    let mut requests = 0;
    for (protocol, url) in [
        ("h1", format!("http://{plain}/intake/v2/events")),
        ("h2c", format!("http://{plain}/intake/v2/events")),
        ("h2", format!("https://localhost:{tls}/intake/v2/events")),
        ("h3", format!("https://localhost:{quic}/intake/v2/events")),
    ] {
        let report = agents(&url, protocol, &["--ca", ca.to_str().unwrap()]).await;
        assert_eq!(report["transport_errors"], 0, "{protocol}: {report}");
        requests += report["requests_accepted"].as_u64().unwrap();
    }
    let counted = stop_server(server).await;
    assert_eq!(counted["requests"].as_u64().unwrap(), requests, "{counted}");
    assert!(counted["body_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn parse_reports_a_rate_and_the_standin_counts_what_the_gateway_indexed() {
    let out = load_tool()
        .args(["parse", "--payload", PAYLOAD, "--seconds", "1"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["events_per_second"].as_f64().unwrap() > 0.0,
        "{report}"
    );

    let (standin, addrs) = spawn_server(&["es-standin", "--listen", "127.0.0.1:0"], 1).await;
    let gw = Gateway::start(&format!(
        "{}\n[auth.secret_token.load]\nsecret = \"{TOKEN}\"\n[output.elasticsearch]\nhosts = [\"{}\"]\n",
        support::STANDARD_LISTENERS,
        address(&addrs, "stand-in")
    ))
    .await;
    let report = agents(&gw.url("plain", false, "/intake/v2/events"), "h1", &[]).await;
    let accepted = report["events_accepted"].as_u64().unwrap();
    gw.stop().await; // flushes the output
    let counted = stop_server(standin).await;
    assert_eq!(
        counted["documents_indexed"].as_u64().unwrap(),
        accepted,
        "{counted}"
    );
    assert!(counted["bulk_requests"].as_u64().unwrap() >= 1);
}
