//! The per-line outcomes behind APM Server's approved intake responses
//! (`../shared/fixtures/responses`): for each body that the model alone decides, the accepted
//! count and every error message and document equal the approval. (Framing, status codes and
//! the other responses are the runtime's.)

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use apmgate::model::{ModelConfig, RequestMeta, decode_event, decode_metadata};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// Replays a body line by line as the intake handler would: a metadata failure ends the
/// stream; event failures are recorded and the stream goes on.
fn replay(body: &[u8]) -> (usize, Vec<(String, String)>) {
    let request = RequestMeta {
        receipt_time: SystemTime::now(),
        rum: false,
        client_ip: None,
        client_port: None,
        nat_ip: None,
        user_agent: None,
    };
    let cfg = ModelConfig::default();
    let mut lines = body.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let mut errors = Vec::new();
    let Some(first) = lines.next() else {
        return (0, errors);
    };
    let meta = match decode_metadata(first) {
        Ok(m) => m,
        Err(e) => {
            errors.push((e.message, String::from_utf8_lossy(first).into_owned()));
            return (0, errors);
        }
    };
    let mut accepted = 0;
    for line in lines {
        match decode_event(line, &meta, &request, &cfg) {
            Ok(d) => accepted += d.accepted,
            Err(e) => errors.push((e.message, String::from_utf8_lossy(line).into_owned())),
        }
    }
    (accepted, errors)
}

fn check(response: &str, input: &str) {
    let approved: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("responses").join(response)).unwrap(),
    )
    .unwrap();
    let body = std::fs::read(fixtures().join("intake/v2").join(input)).unwrap();
    let (accepted, errors) = replay(&body);
    assert_eq!(
        accepted as u64,
        approved["accepted"].as_u64().unwrap(),
        "{response}: accepted"
    );
    let want: Vec<(String, String)> = approved["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["message"].as_str().unwrap().to_owned(),
                        e["document"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(errors, want, "{response}: errors");
}

#[test]
fn success() {
    check("Success.approved.json", "errors.ndjson");
}

#[test]
fn invalid_event() {
    check("InvalidEvent.approved.json", "invalid-event.ndjson");
}

#[test]
fn invalid_json_event() {
    check(
        "InvalidJSONEvent.approved.json",
        "invalid-json-event.ndjson",
    );
}

#[test]
fn invalid_json_metadata() {
    check(
        "InvalidJSONMetadata.approved.json",
        "invalid-json-metadata.ndjson",
    );
}

#[test]
fn invalid_metadata() {
    check("InvalidMetadata.approved.json", "invalid-metadata.ndjson");
}

#[test]
fn invalid_metadata_2() {
    check(
        "InvalidMetadata2.approved.json",
        "invalid-metadata-2.ndjson",
    );
}

#[test]
fn unrecognized_event() {
    check(
        "UnrecognizedEvent.approved.json",
        "invalid-event-type.ndjson",
    );
}
