//! Fidelity: the documents apmgate's model writes for the shared fixture inputs match what APM
//! Server writes, as judged by `../shared/tools/es-compare` (python3, standard library only).
//!
//! Each case decodes an input file line by line with the request conditions the fixtures README
//! describes, builds the `_bulk` body (`{"create":{"_index":...}}` + document per event) and runs
//! es-compare on it with the README's selection flags. Where today's APM Server writes a shape
//! different from 8.6's, `--ignore-v86-drift` covers it; any further difference is listed in
//! the case with its reason.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use apmgate::model::{ModelConfig, RequestMeta, decode_event, decode_metadata};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// The request an input is replayed as.
struct Req {
    rum: bool,
    receipt: SystemTime,
    client_ip: Option<IpAddr>,
    client_port: Option<u16>,
    nat_ip: Option<IpAddr>,
    user_agent: Option<&'static str>,
}

/// 2018-08-01T10:00:00Z, the receipt time the 8.6 stream test injected.
fn receipt_86() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_533_117_600)
}

/// Backend request in the 8.6 test: the client IP becomes host.ip 192.0.0.1.
fn backend_86() -> Req {
    Req {
        rum: false,
        receipt: receipt_86(),
        client_ip: Some("192.0.0.1".parse().unwrap()),
        client_port: None,
        nat_ip: None,
        user_agent: None,
    }
}

/// RUM request in the 8.6 test, as the README says to replay it: `User-Agent: rum-2.0`,
/// `X-Forwarded-For: 192.0.0.2` from a loopback socket.
fn rum_86() -> Req {
    Req {
        rum: true,
        receipt: receipt_86(),
        client_ip: Some("192.0.0.2".parse().unwrap()),
        client_port: None,
        nat_ip: Some("127.0.0.1".parse().unwrap()),
        user_agent: Some("rum-2.0"),
    }
}

/// The system tests' backend request: from 127.0.0.1, Go's default user agent, received now.
fn backend_systemtest() -> Req {
    Req {
        rum: false,
        receipt: SystemTime::now(),
        client_ip: Some("127.0.0.1".parse().unwrap()),
        client_port: Some(41234),
        nat_ip: None,
        user_agent: Some("Go-http-client/1.1"),
    }
}

/// Builds the `_bulk` body for an input file; returns it with the number of accepted events.
fn bulk(input: &Path, req: &Req, cfg: &ModelConfig) -> (Vec<u8>, usize) {
    let text = std::fs::read(input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let meta = decode_metadata(lines.next().expect("metadata line")).expect("metadata decodes");
    let request = RequestMeta {
        receipt_time: req.receipt,
        rum: req.rum,
        client_ip: req.client_ip,
        client_port: req.client_port,
        nat_ip: req.nat_ip,
        user_agent: req.user_agent,
    };
    let mut out = Vec::new();
    let mut accepted = 0;
    for line in lines {
        // Invalid lines are part of some inputs (the 8.6 InvalidEvent cases): they write nothing.
        let Ok(d) = decode_event(line, &meta, &request, cfg) else {
            continue;
        };
        accepted += d.accepted;
        for doc in d.documents {
            writeln!(out, "{{\"create\":{{\"_index\":\"{}\"}}}}", doc.data_stream).unwrap();
            out.extend_from_slice(&doc.body);
            out.push(b'\n');
        }
    }
    (out, accepted)
}

/// es-compare pairs raw (8.6) documents by event type, and for an actual document without
/// `processor.event` it takes `span.type` before `data_stream.type`: a breakdown metricset
/// (`metrics-apm.internal`, with `span.type`) would be paired as a span and never meet its
/// expected metric. APM Server no longer writes `processor.event` (Elasticsearch sets it from
/// the data stream), and `--ignore-v86-drift` ignores `processor.*` in the comparison, so the
/// test adds `processor.event: "metric"` to documents in a `metrics-*` data stream: it only
/// restores the type the data stream already states, for pairing.
fn mark_metrics_for_raw_pairing(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut metrics = false;
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if line.starts_with(b"{\"create\"") {
            metrics = line.windows(9).any(|w| w == b"\"metrics-");
            out.extend_from_slice(line);
        } else if metrics {
            out.extend_from_slice(b"{\"processor\":{\"event\":\"metric\"},");
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
        out.push(b'\n');
    }
    out
}

/// Runs es-compare and fails with its report unless every document matches.
fn compare(name: &str, input: &str, expected: &str, req: Req, cfg: &ModelConfig, args: &[&str]) {
    compare_excluding(name, input, expected, req, cfg, args, &[]);
}

/// A document of a raw (8.6) approval that today's APM Server no longer writes, with the reason.
struct Gone {
    /// `span.id`, `transaction.id` or `error.id` of the expected document.
    id: &'static str,
    /// The error today's decoder reports for its input line.
    error: &'static str,
    why: &'static str,
}

/// Like [`compare`], with expected raw documents that today's APM Server rejects removed from
/// the approval (a filtered copy in a temporary directory); each one's input line must fail
/// with the stated error.
fn compare_excluding(
    name: &str,
    input: &str,
    expected: &str,
    req: Req,
    cfg: &ModelConfig,
    args: &[&str],
    gone: &[Gone],
) {
    let dir = tempfile::tempdir().unwrap();
    let mut expected_path = shared().join("fixtures").join(expected);
    if !gone.is_empty() {
        let text = std::fs::read_to_string(&expected_path).unwrap();
        let mut approval: serde_json::Value = serde_json::from_str(&text).unwrap();
        let events = approval["events"].as_array_mut().unwrap();
        let before = events.len();
        events.retain(|e| {
            let ids = [&e["span"]["id"], &e["transaction"]["id"], &e["error"]["id"]];
            !gone
                .iter()
                .any(|g| ids.iter().any(|id| id.as_str() == Some(g.id)))
        });
        assert_eq!(
            before - events.len(),
            gone.len(),
            "{name}: every excluded document exists"
        );
        expected_path = dir.path().join("expected.json");
        std::fs::write(&expected_path, serde_json::to_vec(&approval).unwrap()).unwrap();
        // The excluded documents' lines are rejected, and with the reason given.
        let text = std::fs::read(shared().join("fixtures").join(input)).unwrap();
        let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        let meta = decode_metadata(lines.next().unwrap()).unwrap();
        let request = RequestMeta {
            receipt_time: req.receipt,
            rum: req.rum,
            client_ip: None,
            client_port: None,
            nat_ip: None,
            user_agent: None,
        };
        for g in gone {
            let needle = format!("\"{}\"", g.id);
            let line = lines
                .clone()
                .find(|l| String::from_utf8_lossy(l).contains(&needle))
                .expect("input line");
            let err = decode_event(line, &meta, &request, cfg).expect_err(g.why);
            assert_eq!(err.message, g.error, "{name}: {}", g.why);
        }
    }
    let expected = expected_path;
    let input = shared().join("fixtures").join(input);
    let (mut body, _) = bulk(&input, &req, cfg);
    if args.contains(&"--ignore-v86-drift") {
        body = mark_metrics_for_raw_pairing(&body);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.ndjson"));
    std::fs::write(&file, &body).unwrap();
    let out = Command::new("python3")
        .arg(shared().join("tools/es-compare"))
        .arg(&file)
        .arg(&expected)
        .args(args)
        .output()
        .expect("python3 runs es-compare");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{name}: es-compare reports differences:\n{report}\nbulk body:\n{}",
        String::from_utf8_lossy(&body)
    );
}

const V86: &[&str] = &["--ignore-v86-drift"];

fn cfg() -> ModelConfig {
    ModelConfig::default()
}

/// APM Server's RUM defaults: `rum.library_pattern` and `rum.exclude_from_grouping`.
fn rum_cfg() -> ModelConfig {
    ModelConfig {
        library_pattern: Some(regex::Regex::new("node_modules|bower_components|~").unwrap()),
        exclude_from_grouping: Some(regex::Regex::new("^/webpack").unwrap()),
        ..ModelConfig::default()
    }
}

#[test]
fn v86_errors() {
    compare(
        "errors",
        "es-docs-v8.6/inputs/intake-v2/errors.ndjson",
        "es-docs-v8.6/testIntakeIntegrationErrors.approved.json",
        backend_86(),
        &cfg(),
        V86,
    );
}

#[test]
fn v86_events() {
    compare(
        "events",
        "es-docs-v8.6/inputs/intake-v2/events.ndjson",
        "es-docs-v8.6/testIntakeIntegrationEvents.approved.json",
        backend_86(),
        &cfg(),
        V86,
    );
}

#[test]
fn v86_invalid_event() {
    compare(
        "invalid-event",
        "es-docs-v8.6/inputs/intake-v2/invalid-event.ndjson",
        "es-docs-v8.6/testIntakeIntegrationInvalidEvent.approved.json",
        backend_86(),
        &cfg(),
        V86,
    );
}

#[test]
fn v86_invalid_json_event() {
    compare(
        "invalid-json-event",
        "es-docs-v8.6/inputs/intake-v2/invalid-json-event.ndjson",
        "es-docs-v8.6/testIntakeIntegrationInvalidJSONEvent.approved.json",
        backend_86(),
        &cfg(),
        V86,
    );
}

#[test]
fn v86_logs() {
    compare(
        "logs",
        "es-docs-v8.6/inputs/intake-v2/logs.ndjson",
        "es-docs-v8.6/testIntakeIntegrationLogs.approved.json",
        backend_86(),
        &cfg(),
        V86,
    );
}

#[test]
fn v86_metricsets() {
    compare(
        "metricsets",
        "es-docs-v8.6/inputs/intake-v2/metricsets.ndjson",
        "es-docs-v8.6/testIntakeIntegrationMetricsets.approved.json",
        backend_86(),
        &cfg(),
        V86,
    );
}

#[test]
fn v86_minimal_service() {
    compare(
        "minimal-service",
        "es-docs-v8.6/inputs/intake-v2/minimal-service.ndjson",
        "es-docs-v8.6/testIntakeIntegrationMinimalService.approved.json",
        backend_86(),
        &cfg(),
        V86,
    );
}

const NULL_HEADER: &str = "null header values are rejected since APM Server 8.10 (apm-data #140); APM Server's own copy of this input now sends [] instead";

#[test]
fn v86_spans() {
    let err = "decode error: data read error: v2.spanRoot.Span: v2.span.Context: v2.spanContext.HTTP: v2.spanContextHTTP.Response: v2.spanContextHTTPResponse.Headers: invalid input for HTTPHeader: <nil>";
    compare_excluding(
        "spans",
        "es-docs-v8.6/inputs/intake-v2/spans.ndjson",
        "es-docs-v8.6/testIntakeIntegrationSpans.approved.json",
        backend_86(),
        &cfg(),
        V86,
        &[
            Gone {
                id: "1234567890aaaade",
                error: err,
                why: NULL_HEADER,
            },
            Gone {
                id: "fdc4567890aaaade",
                error: err,
                why: NULL_HEADER,
            },
            Gone {
                id: "ute4567890aaaade",
                error: err,
                why: NULL_HEADER,
            },
        ],
    );
}

#[test]
fn v86_transactions() {
    compare_excluding(
        "transactions",
        "es-docs-v8.6/inputs/intake-v2/transactions.ndjson",
        "es-docs-v8.6/testIntakeIntegrationTransactions.approved.json",
        backend_86(),
        &cfg(),
        V86,
        &[Gone {
            id: "cdef4340a8e0df19",
            error: "decode error: data read error: v2.transactionRoot.Transaction: v2.transaction.Context: v2.context.Request: v2.contextRequest.Headers: invalid input for HTTPHeader: <nil>",
            why: NULL_HEADER,
        }],
    );
}

const RUM_86: &[&str] = &[
    "--ignore-v86-drift",
    "--dynamic",
    "source.ip",
    "--allow-extra",
    "source.nat",
];

#[test]
fn v86_rum_errors() {
    compare(
        "rum-errors",
        "es-docs-v8.6/inputs/intake-v2/errors_rum.ndjson",
        "es-docs-v8.6/testIntakeIntegrationRumErrors.approved.json",
        rum_86(),
        &cfg(),
        RUM_86,
    );
}

#[test]
fn v86_rumv3_errors() {
    compare(
        "rumv3-errors",
        "es-docs-v8.6/inputs/intake-v3/rum_errors.ndjson",
        "es-docs-v8.6/testIntakeRUMV3Errors.approved.json",
        rum_86(),
        &cfg(),
        RUM_86,
    );
}

const INTAKE: &[&str] = &[
    "--index",
    "traces-apm*,metrics-apm*,logs-apm*",
    "--missing",
    "metricset.interval",
];

#[test]
fn fields_errors() {
    compare(
        "f-errors",
        "es-fields/inputs/intake-v2/errors.ndjson",
        "es-fields/TestIntake/Errors.approved.json",
        backend_systemtest(),
        &cfg(),
        INTAKE,
    );
}

#[test]
fn fields_events() {
    compare(
        "f-events",
        "es-fields/inputs/intake-v2/events.ndjson",
        "es-fields/TestIntake/Events.approved.json",
        backend_systemtest(),
        &cfg(),
        INTAKE,
    );
}

#[test]
fn fields_metricsets() {
    compare(
        "f-metricsets",
        "es-fields/inputs/intake-v2/metricsets.ndjson",
        "es-fields/TestIntake/Metricsets.approved.json",
        backend_systemtest(),
        &cfg(),
        INTAKE,
    );
}

#[test]
fn fields_spans() {
    compare(
        "f-spans",
        "es-fields/inputs/intake-v2/spans.ndjson",
        "es-fields/TestIntake/Spans.approved.json",
        backend_systemtest(),
        &cfg(),
        INTAKE,
    );
}

#[test]
fn fields_transactions() {
    compare(
        "f-transactions",
        "es-fields/inputs/intake-v2/transactions.ndjson",
        "es-fields/TestIntake/Transactions.approved.json",
        backend_systemtest(),
        &cfg(),
        INTAKE,
    );
}

#[test]
fn fields_log_with_timestamp() {
    compare(
        "f-log-ts",
        "es-fields/inputs/intake-v2/logs.ndjson",
        "es-fields/TestIntakeLog/with_timestamp.approved.json",
        backend_systemtest(),
        &cfg(),
        &[
            "--index",
            "logs-apm.app.1234_service_12a3-*",
            "--match-phrase",
            "message=test log message with timestamp",
        ],
    );
}

#[test]
fn fields_log_without_timestamp() {
    compare(
        "f-log-nots",
        "es-fields/inputs/intake-v2/logs.ndjson",
        "es-fields/TestIntakeLog/without_timestamp.approved.json",
        backend_systemtest(),
        &cfg(),
        &[
            "--index",
            "logs-apm.app.1234_service_12a3-*",
            "--match-phrase",
            "message=test log message without timestamp",
        ],
    );
}

#[test]
fn fields_log_with_nested_ecs_fields() {
    compare(
        "f-log-nested",
        "es-fields/inputs/intake-v2/logs.ndjson",
        "es-fields/TestIntakeLog/with_nested_ecs_fields.approved.json",
        backend_systemtest(),
        &cfg(),
        &[
            "--index",
            "logs-apm.app.testsvc-*",
            "--match-phrase",
            "message=test log message with nested ecs fields",
        ],
    );
}

#[test]
fn fields_rum_x_forwarded_for() {
    let req = Req {
        rum: true,
        receipt: SystemTime::now(),
        client_ip: Some("220.244.41.16".parse().unwrap()),
        // X-Forwarded-For carries no port: APM Server then writes no source.port.
        client_port: None,
        nat_ip: Some("127.0.0.1".parse().unwrap()),
        user_agent: Some("Go-http-client/1.1"),
    };
    compare(
        "f-rum-xff",
        "es-fields/inputs/TestRUMXForwardedFor.ndjson",
        "es-fields/TestRUMXForwardedFor.approved.json",
        req,
        &cfg(),
        &[
            "--index",
            "traces-apm*,metrics-apm*",
            "--terms",
            "processor.event=transaction,metric",
        ],
    );
}

/// With APM Server's default RUM patterns, the library-frame processor (which the 8.6 stream
/// test did not run) decides `library_frame` from the file name and keeps the agent's value as
/// `original.library_frame`: those two fields differ from 8.6 for that reason alone (fixtures
/// README); everything else, `exclude_from_grouping` included, must still match.
const RUM_86_WITH_PATTERNS: &[&str] = &[
    "--ignore-v86-drift",
    "--dynamic",
    "source.ip",
    "--allow-extra",
    "source.nat",
    "--ignore",
    "error.exception[*].stacktrace[*].library_frame",
    "--ignore",
    "error.exception[*].stacktrace[*].original",
    "--ignore",
    "error.log.stacktrace[*].library_frame",
    "--ignore",
    "error.log.stacktrace[*].original",
];

#[test]
fn v86_rum_errors_with_rum_patterns() {
    compare(
        "rum-errors-patterns",
        "es-docs-v8.6/inputs/intake-v2/errors_rum.ndjson",
        "es-docs-v8.6/testIntakeIntegrationRumErrors.approved.json",
        rum_86(),
        &rum_cfg(),
        RUM_86_WITH_PATTERNS,
    );
}

#[test]
fn v86_rumv3_errors_with_rum_patterns() {
    compare(
        "rumv3-errors-patterns",
        "es-docs-v8.6/inputs/intake-v3/rum_errors.ndjson",
        "es-docs-v8.6/testIntakeRUMV3Errors.approved.json",
        rum_86(),
        &rum_cfg(),
        RUM_86_WITH_PATTERNS,
    );
}
