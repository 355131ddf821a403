//! Fidelity through the real intake path: fixture payloads are POSTed to a running gateway over
//! HTTP, the file output (the `_bulk` body the Elasticsearch output sends) is captured, and
//! `../shared/tools/es-compare` compares it with what today's APM Server writes, under the
//! request conditions of APM Server's system tests (fixtures README, es-fields section):
//! requests from 127.0.0.1 without forwarding headers, a default server, namespace `default`.
//! tests/model_fidelity.rs runs every case, the 8.6 ones included, against the model directly.

mod support;

use support::{Gateway, assert_es_compare, fixture};

const SHARED: &str = "../shared";

async fn send_and_compare(
    name: &str,
    route: &str,
    headers: &[(&str, &str)],
    policy_extra: &str,
    input: &str,
    expected: &str,
    args: &[&str],
) {
    let policy = format!("[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\n{policy_extra}");
    let gw = Gateway::start(&policy).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = http
        .post(gw.url("plain", false, &format!("{route}?verbose=true")))
        .header("Content-Type", "application/x-ndjson")
        .header("User-Agent", "Go-http-client/1.1")
        .body(fixture(input));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(
        resp.status(),
        202,
        "{name}: {}",
        resp.text().await.unwrap_or_default()
    );
    let dir = gw.stop().await;
    let captured = dir.path().join("data/apmgate-events.ndjson");
    assert_es_compare(name, &captured, expected, args);
}

const INTAKE: &[&str] = &[
    "--index",
    "traces-apm*,metrics-apm*,logs-apm*",
    "--missing",
    "metricset.interval",
];

#[tokio::test]
async fn backend_events_match_apm_server_through_the_gateway() {
    for (name, file) in [
        ("Errors", "errors"),
        ("Events", "events"),
        ("Metricsets", "metricsets"),
        ("Spans", "spans"),
        ("Transactions", "transactions"),
    ] {
        send_and_compare(
            name,
            "/intake/v2/events",
            &[],
            "",
            &format!("es-fields/inputs/intake-v2/{file}.ndjson"),
            &format!("es-fields/TestIntake/{name}.approved.json"),
            INTAKE,
        )
        .await;
    }
}

#[tokio::test]
async fn logs_match_apm_server_through_the_gateway() {
    for (case, index, phrase) in [
        (
            "with_timestamp",
            "logs-apm.app.1234_service_12a3-*",
            "message=test log message with timestamp",
        ),
        (
            "without_timestamp",
            "logs-apm.app.1234_service_12a3-*",
            "message=test log message without timestamp",
        ),
        (
            "with_nested_ecs_fields",
            "logs-apm.app.testsvc-*",
            "message=test log message with nested ecs fields",
        ),
    ] {
        send_and_compare(
            case,
            "/intake/v2/events",
            &[],
            "",
            "es-fields/inputs/intake-v2/logs.ndjson",
            &format!("es-fields/TestIntakeLog/{case}.approved.json"),
            &["--index", index, "--match-phrase", phrase],
        )
        .await;
    }
}

#[tokio::test]
async fn rum_behind_a_trusted_proxy_matches_apm_server() {
    // APM Server believes X-Forwarded-For from anyone; apmgate only from trusted proxies, so the
    // test's client (127.0.0.1) is declared one.
    send_and_compare(
        "TestRUMXForwardedFor",
        "/intake/v2/rum/events",
        &[("X-Forwarded-For", "220.244.41.16")],
        "[gateway]\ntrusted_proxies = [\"127.0.0.1\"]\n[rum]\nenabled = true\nallow_origins = [\"*\"]\n",
        "es-fields/inputs/TestRUMXForwardedFor.ndjson",
        "es-fields/TestRUMXForwardedFor.approved.json",
        &["--index", "traces-apm*,metrics-apm*", "--terms", "processor.event=transaction,metric"],
    )
    .await;
}

/// Every intake payload of the fixtures goes through the gateway: the valid ones are accepted
/// whole (one document per accepted event, at most: unsampled backend transactions are
/// dropped after being counted) and land in the file output; the invalid ones get 400 with
/// at least one error, and whatever valid lines they carry are still accepted.
#[tokio::test]
async fn every_intake_fixture_goes_through_the_gateway() {
    let policy = "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\n[rum]\nenabled = true\nallow_origins = [\"*\"]\n";
    let mut files = Vec::new();
    for dir in ["intake/v2", "intake/rumv3"] {
        for entry in std::fs::read_dir(format!("{SHARED}/fixtures/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "ndjson") {
                files.push((dir, path));
            }
        }
    }
    files.sort();
    assert!(files.len() >= 30, "{} fixture payloads", files.len());
    for (dir, path) in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let route = if dir.ends_with("rumv3") || name.contains("rum") {
            "/intake/v3/rum/events"
        } else {
            "/intake/v2/events"
        };
        let gw = Gateway::start(policy).await;
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(gw.url("plain", false, &format!("{route}?verbose")))
            .header("Content-Type", "application/x-ndjson")
            .header("Accept", "application/json")
            .body(std::fs::read(&path).unwrap())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        let dir_path = gw.stop().await;
        let docs = support::bulk_documents(&dir_path.path().join("data/apmgate-events.ndjson"));
        let accepted = body["accepted"].as_u64().unwrap() as usize;
        let errors: Vec<&str> = body["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["message"].as_str()).collect())
            .unwrap_or_default();
        if name.starts_with("invalid-") {
            assert_eq!(status, 400, "{name}: {body}");
            assert!(!errors.is_empty(), "{name}");
        } else if status == 400 {
            // apm-data's copies of a few payloads still send `null` header values, which APM
            // Server refuses since 8.10 (apm-data #140; its own copies now send `[]`): those
            // lines, and only those, are refused; the rest is accepted.
            assert!(
                errors
                    .iter()
                    .all(|m| m.ends_with("invalid input for HTTPHeader: <nil>")),
                "{name}: {body}"
            );
            assert!(accepted > 0, "{name}: {body}");
        } else {
            assert_eq!(status, 202, "{name}: {body}");
            assert!(
                accepted > 0 || name.starts_with("metadata"),
                "{name}: nothing accepted"
            );
        }
        assert!(
            docs.len() <= accepted || route.contains("rum"),
            "{name}: {} documents for {accepted} events",
            docs.len()
        );
        for (index, doc) in &docs {
            assert_eq!(doc["data_stream"]["namespace"], "default", "{name}");
            assert!(index.ends_with("-default"), "{name}: {index}");
            assert!(doc["@timestamp"].is_string(), "{name}");
        }
    }
}
