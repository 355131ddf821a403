//! apmgate-load, the load generator of BENCHMARKS.md: it plays agents against a real gateway,
//! stops by itself, and reports what was accepted.

mod support;

use support::Gateway;

#[tokio::test]
async fn the_load_tool_plays_agents_and_stops_by_itself() {
    let gw = Gateway::start(
        "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\nprotocols = [\"http1\", \"h2c\"]\n[auth.secret_token.load]\nsecret = \"load-test-token-0123456789abcdefghijkl\"\n",
    )
    .await;
    for protocol in ["h1", "h2c"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_apmgate-load"))
            .args(["--url", &gw.url("plain", false, "/intake/v2/events")])
            .args(["--payload", "../shared/fixtures/intake/v2/errors.ndjson"])
            .args([
                "--agents",
                "3",
                "--events",
                "60",
                "--seconds",
                "30",
                "--gzip",
            ])
            .args(["--protocol", protocol])
            .env(
                "APMGATE_LOAD_TOKEN",
                "load-test-token-0123456789abcdefghijkl",
            )
            .args(["--pid", &std::process::id().to_string()])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // 5 events a request; the tool stops once 60 are sent (each agent may finish one more).
        let accepted = report["events_accepted"].as_u64().unwrap();
        assert!((60..=75).contains(&accepted), "{report}");
        assert_eq!(report["statuses"]["202"].as_u64().unwrap() * 5, accepted);
        assert_eq!(report["transport_errors"], 0);
        assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
        assert!(
            report["gateway_peak_rss_mib"].as_f64().unwrap() > 0.0,
            "read from /proc"
        );
    }
    let dir = gw.stop().await;
    let docs = support::bulk_documents(&dir.path().join("data/apmgate-events.ndjson"));
    assert!(docs.len() >= 120, "{} documents", docs.len());
    // A non-loopback target is refused.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apmgate-load"))
        .args([
            "--url",
            "http://192.0.2.1:8200/intake/v2/events",
            "--payload",
            "../shared/fixtures/intake/v2/errors.ndjson",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
