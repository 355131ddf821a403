//! Validation and mapping rules of the model, one behaviour per test, with APM Server's exact
//! messages (from its generated decoder) and the document fields it writes.

use std::time::{Duration, SystemTime};

use apmgate::model::{
    APM_SERVER_VERSION, Decoded, Metadata, ModelConfig, ModelError, RequestMeta, decode_event,
    decode_metadata, first_key,
};
use serde_json::Value;

const META: &str =
    r#"{"metadata":{"service":{"name":"svc","agent":{"name":"go","version":"1.0"}}}}"#;
const RUM_META: &str =
    r#"{"metadata":{"service":{"name":"rum","agent":{"name":"rum-js","version":"5.0"}}}}"#;

fn req(rum: bool) -> RequestMeta<'static> {
    RequestMeta {
        receipt_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_533_117_600),
        rum,
        client_ip: Some("10.1.2.3".parse().unwrap()),
        client_port: Some(5678),
        nat_ip: Some("127.0.0.1".parse().unwrap()),
        user_agent: Some("test-agent/1.0"),
    }
}

fn meta(line: &str) -> Metadata {
    decode_metadata(line.as_bytes()).expect("metadata")
}

fn event_with(
    meta_line: &str,
    line: &str,
    rum: bool,
    cfg: &ModelConfig,
) -> Result<Decoded, ModelError> {
    decode_event(line.as_bytes(), &meta(meta_line), &req(rum), cfg)
}

fn err(line: &str) -> String {
    event_with(META, line, false, &ModelConfig::default())
        .expect_err("invalid")
        .message
}

fn meta_err(line: &str) -> String {
    decode_metadata(line.as_bytes())
        .expect_err("invalid")
        .message
}

/// The single document of a valid line, parsed.
fn doc_with(meta_line: &str, line: &str, rum: bool, cfg: &ModelConfig) -> (String, Value) {
    let d = event_with(meta_line, line, rum, cfg).expect("valid");
    assert_eq!(d.documents.len(), 1, "one document");
    let doc = &d.documents[0];
    (
        doc.data_stream.clone(),
        serde_json::from_slice(&doc.body).expect("JSON document"),
    )
}

fn doc(line: &str) -> (String, Value) {
    doc_with(META, line, false, &ModelConfig::default())
}

const TX: &str =
    r#""id":"a1","trace_id":"t1","type":"request","duration":1.5,"span_count":{"started":1}"#;
const SPAN: &str = r#""id":"s1","trace_id":"t1","parent_id":"a1","name":"SELECT","type":"db","duration":2,"timestamp":1496170407154000"#;

#[test]
fn first_key_takes_single_or_double_quotes() {
    assert_eq!(first_key(br#"{"transaction": {}}"#), Some("transaction"));
    assert_eq!(first_key(b"{'span': {}}"), Some("span"));
    assert_eq!(first_key(b"{ nothing }"), None);
}

#[test]
fn metadata_rules() {
    assert_eq!(
        meta_err(r#"{"metadata": {"user": null}}"#),
        "validation error: 'metadata' required"
    );
    assert_eq!(
        meta_err(r#"{"metadata": {"service": {}}}"#),
        "validation error: 'metadata' required"
    );
    assert_eq!(
        meta_err(r#"{"metadata": {"process": {"pid": 1}}}"#),
        "validation error: metadata: 'service' required"
    );
    assert_eq!(
        meta_err(r#"{"metadata": {"service": {"name": "x"}}}"#),
        "validation error: metadata: service: 'agent' required"
    );
    assert_eq!(
        meta_err(r#"{"metadata": {"service": {"name": "x", "agent": {"name": "go"}}}}"#),
        "validation error: metadata: service: agent: 'version' required"
    );
    assert_eq!(
        meta_err(
            r#"{"metadata": {"service": {"name": "bad/name", "agent": {"name": "go", "version": "1"}}}}"#
        ),
        "validation error: metadata: service: 'name': validation rule 'pattern(patternAlphaNumericExt)' violated"
    );
    assert_eq!(
        meta_err(
            r#"{"metadata": {"service": {"name": "", "agent": {"name": "go", "version": "1"}}}}"#
        ),
        "validation error: metadata: service: 'name': validation rule 'minLength(1)' violated"
    );
    let long = "x".repeat(1025);
    assert_eq!(
        meta_err(&format!(
            r#"{{"metadata": {{"service": {{"name": "ok", "version": "{long}", "agent": {{"name": "go", "version": "1"}}}}}}}}"#
        )),
        "validation error: metadata: service: 'version': validation rule 'maxLength(1024)' violated"
    );
    assert_eq!(
        meta_err(
            r#"{"metadata": {"service": {"name": "ok", "agent": {"name": "go", "version": "1"}}, "cloud": {"region": "r"}}}"#
        ),
        "validation error: metadata: cloud: 'provider' required"
    );
    assert_eq!(
        meta_err(
            r#"{"metadata": {"service": {"name": "ok", "agent": {"name": "go", "version": "1"}}, "process": {"title": "t"}}}"#
        ),
        "validation error: metadata: process: 'pid' required"
    );
    assert_eq!(
        meta_err(
            r#"{"metadata": {"labels": {"a": [1]}, "service": {"name": "ok", "agent": {"name": "go", "version": "1"}}}}"#
        ),
        "validation error: metadata: 'labels': validation rule 'inputTypesVals(string;bool;number)' violated for key a"
    );
    assert_eq!(
        meta_err(r#"{"tennis": 1}"#),
        "\"metadata\" or \"m\" required"
    );
}

#[test]
fn rum_v3_metadata_rules() {
    assert_eq!(
        meta_err(r#"{"m": {"se": {"n": "x"}}}"#),
        "validation error: m: se: 'a' required"
    );
    assert!(
        decode_metadata(br#"{"m": {"se": {"n": "x", "a": {"n": "rum-js", "ve": "5"}}}}"#).is_ok()
    );
}

#[test]
fn unknown_event_type_is_quoted_like_go() {
    assert_eq!(
        err(r#"{"tennis-court": {}}"#),
        "did not recognize object type: \"tennis-court\""
    );
    assert_eq!(
        err(r#"{"metadata": {}}"#),
        "did not recognize object type: \"metadata\""
    );
    assert_eq!(err("{}"), "did not recognize object type: \"\"");
}

#[test]
fn transaction_rules() {
    assert_eq!(
        err(r#"{"transaction": {}}"#),
        "validation error: 'transaction' required"
    );
    assert_eq!(
        err(r#"{"transaction": {"id": "a"}}"#),
        "validation error: transaction: 'trace_id' required"
    );
    assert_eq!(
        err(r#"{"transaction": {"id":"a","trace_id":"t","type":"x","duration":1}}"#),
        "validation error: transaction: 'span_count' required"
    );
    assert_eq!(
        err(
            r#"{"transaction": {"id":"a","trace_id":"t","type":"x","duration":-1,"span_count":{"started":1}}}"#
        ),
        "validation error: transaction: 'duration': validation rule 'min(0)' violated"
    );
    assert_eq!(
        err(&format!(r#"{{"transaction": {{{TX},"outcome":"maybe"}}}}"#)),
        "validation error: transaction: 'outcome': validation rule 'enum(enumOutcome)' violated"
    );
    assert_eq!(
        err(&format!(
            r#"{{"transaction": {{{TX},"span_count":{{"dropped":1}}}}}}"#
        )),
        "validation error: transaction: span_count: 'started' required"
    );
    assert_eq!(
        err(&format!(
            r#"{{"transaction": {{{TX},"context":{{"request":{{"url":{{"port":"eighty"}}}}}}}}}}"#
        )),
        "validation error: transaction: context: request: url: 'port': validation rule 'targetType(int)' violated"
    );
    assert_eq!(
        err(&format!(
            r#"{{"transaction": {{{TX},"context":{{"request":{{"url":{{"raw":"/"}}}}}}}}}}"#
        )),
        "validation error: transaction: context: request: 'method' required"
    );
    // An object whose fields are all null is not set, so its rules do not apply.
    let ok = format!(
        r#"{{"transaction": {{{TX},"context":{{"service":{{"target":{{"name":null}}}}}}}}}}"#
    );
    assert!(event_with(META, &ok, false, &ModelConfig::default()).is_ok());
    assert_eq!(
        err(&format!(
            r#"{{"transaction": {{{TX},"session":{{"sequence":0}}}}}}"#
        )),
        "validation error: transaction: session: 'id' required"
    );
}

#[test]
fn decode_errors_carry_go_paths() {
    assert_eq!(
        err(r#"{"transaction": {"id": 12345}}"#),
        "decode error: data read error: v2.transactionRoot.Transaction: v2.transaction.ID: ReadString: expects \" or n,"
    );
    assert!(
        err(r#"{"span": {"duration": "long"}}"#)
            .starts_with("decode error: data read error: v2.spanRoot.Span: v2.span.Duration: ")
    );
    assert!(err(r#"{"error": {"timestamp": 1.5}}"#).starts_with("decode error: "));
    assert!(
        err(r#"{"error": {"timestamp": "yesterday"}}"#)
            .ends_with("failed to parse the provided time string")
    );
}

#[test]
fn span_rules() {
    assert_eq!(
        err(
            r#"{"span": {"id":"s","trace_id":"t","parent_id":"p","name":"n","type":"x","duration":1}}"#
        ),
        "validation error: span: requires at least one of the fields 'start;timestamp'"
    );
    assert_eq!(
        err(
            r#"{"span": {"id":"s","trace_id":"t","parent_id":"p","name":"n","type":"x","start":1}}"#
        ),
        "validation error: span: 'duration' required"
    );
    assert_eq!(
        err(&format!(
            r#"{{"span": {{{SPAN},"composite":{{"count":1,"sum":1,"compression_strategy":"exact_match"}}}}}}"#
        )),
        "validation error: span: composite: 'count': validation rule 'min(2)' violated"
    );
    assert_eq!(
        err(&format!(
            r#"{{"span": {{{SPAN},"context":{{"destination":{{"service":{{"name":"x"}}}}}}}}}}"#
        )),
        "validation error: span: context: destination: service: 'resource' required"
    );
    assert_eq!(
        err(&format!(
            r#"{{"span": {{{SPAN},"links":[{{"span_id":"x"}}]}}}}"#
        )),
        "validation error: span: links: 'trace_id' required"
    );
    assert_eq!(
        err(&format!(
            r#"{{"span": {{{SPAN},"stacktrace":[{{"function":"f"}}]}}}}"#
        )),
        "validation error: span: stacktrace: requires at least one of the fields 'classname;filename'"
    );
}

#[test]
fn error_rules() {
    assert_eq!(
        err(r#"{"error": {"id": "e"}}"#),
        "validation error: error: requires at least one of the fields 'exception;log'"
    );
    assert_eq!(
        err(r#"{"error": {"id": "e", "log": {"level": "x"}}}"#),
        "validation error: error: log: 'message' required"
    );
    assert_eq!(
        err(r#"{"error": {"id": "e", "transaction_id": "x", "log": {"message": "m"}}}"#),
        "validation error: error: 'parent_id' required when 'transaction_id' is set"
    );
    assert_eq!(
        err(r#"{"error": {"id": "e", "parent_id": "x", "log": {"message": "m"}}}"#),
        "validation error: error: 'trace_id' required when 'parent_id' is set"
    );
    assert_eq!(
        err(r#"{"error": {"id": "e", "exception": {"module": "m"}}}"#),
        "validation error: error: exception: requires at least one of the fields 'message;type'"
    );
    assert_eq!(
        err(r#"{"error": {"id": "e", "exception": {"type": "T", "code": true}}}"#),
        "validation error: error: exception: 'code': validation rule 'inputTypes(string;int)' violated "
    );
}

#[test]
fn metricset_rules() {
    assert_eq!(
        err(r#"{"metricset": {"samples": {}}}"#),
        "validation error: 'metricset' required"
    );
    assert_eq!(
        err(r#"{"metricset": {"timestamp": 1}}"#),
        "validation error: metricset: 'samples' required"
    );
    assert_eq!(
        err(r#"{"metricset": {"samples": {"a*b": {"value": 1}}}}"#),
        "validation error: metricset: 'samples': validation rule 'patternKeys(patternNoAsteriskQuote)' violated"
    );
    assert_eq!(
        err(r#"{"metricset": {"samples": {"a": {"counts": [1]}}}}"#),
        "validation error: metricset: samples: requires at least one of the fields 'value;values'"
    );
    assert_eq!(
        err(r#"{"metricset": {"samples": {"a": {"values": [1]}}}}"#),
        "validation error: metricset: samples: 'counts' required when 'values' is set"
    );
}

#[test]
fn null_means_unset_and_last_duplicate_wins() {
    let (_, d) = doc(&format!(
        r#"{{"transaction": {{{TX},"name":"first","name":"second","result":null,"context":null}}}}"#
    ));
    assert_eq!(d["transaction"]["name"], "second");
    assert!(d["transaction"].get("result").is_none());
}

#[test]
fn trailing_bytes_after_the_object_are_ignored() {
    let (_, d) = doc(&format!(r#"{{"transaction": {{{TX}}}}} trailing garbage"#));
    assert_eq!(d["transaction"]["id"], "a1");
}

#[test]
fn transaction_document_shape() {
    let (ds, d) = doc(&format!(r#"{{"transaction": {{{TX}}}}}"#));
    assert_eq!(ds, "traces-apm-default");
    assert_eq!(d["@timestamp"], "2018-08-01T10:00:00.000Z");
    assert_eq!(d["timestamp"]["us"], 1_533_117_600_000_000u64);
    assert_eq!(d["event"]["duration"], 1_500_000);
    assert_eq!(d["event"]["outcome"], "unknown");
    assert_eq!(d["span"]["id"], "a1", "span.id mirrors transaction.id");
    assert_eq!(d["transaction"]["representative_count"], 1);
    assert_eq!(d["transaction"]["sampled"], true);
    assert_eq!(
        d["host"]["ip"],
        serde_json::json!(["10.1.2.3"]),
        "backend: client IP as host.ip"
    );
    assert!(d.get("processor").is_none() && d.get("ecs").is_none());
    assert_eq!(d["observer"]["type"], "apm-server");
    assert_eq!(d["observer"]["version"], APM_SERVER_VERSION);
    assert!(
        d["observer"]["hostname"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );
    assert_eq!(
        d["data_stream"],
        serde_json::json!({"type": "traces", "dataset": "apm", "namespace": "default"})
    );
}

#[test]
fn unsampled_backend_transactions_are_accepted_but_dropped() {
    let line = format!(r#"{{"transaction": {{{TX},"sampled":false}}}}"#);
    let d = event_with(META, &line, false, &ModelConfig::default()).unwrap();
    assert_eq!((d.accepted, d.documents.len()), (1, 0));
    let d = event_with(RUM_META, &line, true, &ModelConfig::default()).unwrap();
    assert_eq!(
        (d.accepted, d.documents.len()),
        (1, 1),
        "RUM agents keep unsampled transactions"
    );
    assert_eq!(d.documents[0].data_stream, "traces-apm.rum-default");
}

#[test]
fn span_start_offsets_receipt_time() {
    let (_, d) = doc(
        r#"{"span": {"id":"s","trace_id":"t","parent_id":"p","name":"n","type":"db.mysql.query","duration":1,"start":1.5}}"#,
    );
    assert_eq!(d["timestamp"]["us"], 1_533_117_600_001_500u64);
    assert_eq!(
        (
            &d["span"]["type"],
            &d["span"]["subtype"],
            &d["span"]["action"]
        ),
        (&"db".into(), &"mysql".into(), &"query".into())
    );
    assert_eq!(d["span"]["representative_count"], 1);
    assert!(
        d["service"].get("target").is_none(),
        "no destination, no target"
    );
}

#[test]
fn labels_are_sanitised_and_split_by_type() {
    let (_, d) = doc(&format!(
        r#"{{"transaction": {{{TX},"context":{{"tags":{{"a.b":"x","c*d":true,"n":1.5,"z":null}}}}}}}}"#
    ));
    assert_eq!(d["labels"], serde_json::json!({"a_b": "x", "c_d": "true"}));
    assert_eq!(d["numeric_labels"], serde_json::json!({"n": 1.5}));
}

#[test]
fn rum_route_writes_client_source_and_user_agent() {
    let (_, d) = doc_with(
        RUM_META,
        &format!(r#"{{"transaction": {{{TX}}}}}"#),
        true,
        &ModelConfig::default(),
    );
    assert_eq!(d["client"]["ip"], "10.1.2.3");
    assert_eq!(d["source"]["ip"], "10.1.2.3");
    assert_eq!(d["source"]["port"], 5678);
    assert_eq!(d["source"]["nat"]["ip"], "127.0.0.1");
    assert_eq!(d["user_agent"]["original"], "test-agent/1.0");
    assert!(d.get("host").is_none());
}

#[test]
fn capture_personal_data_off_writes_no_address_or_user_agent() {
    let cfg = ModelConfig {
        capture_personal_data: false,
        ..ModelConfig::default()
    };
    let (_, d) = doc_with(
        RUM_META,
        &format!(r#"{{"transaction": {{{TX}}}}}"#),
        true,
        &cfg,
    );
    assert!(
        d.get("client").is_none() && d.get("source").is_none() && d.get("user_agent").is_none()
    );
    let (_, d) = doc_with(
        META,
        &format!(r#"{{"transaction": {{{TX}}}}}"#),
        false,
        &cfg,
    );
    assert!(d.get("host").is_none());
}

#[test]
fn default_environment_and_namespace() {
    let cfg = ModelConfig {
        namespace: "prod".into(),
        default_service_environment: Some("staging".into()),
        ..ModelConfig::default()
    };
    let (ds, d) = doc_with(
        META,
        &format!(r#"{{"transaction": {{{TX}}}}}"#),
        false,
        &cfg,
    );
    assert_eq!(ds, "traces-apm-prod");
    assert_eq!(d["service"]["environment"], "staging");
}

#[test]
fn hostname_and_node_name_rules() {
    let m = r#"{"metadata":{"service":{"name":"svc","agent":{"name":"go","version":"1"}},"system":{"detected_hostname":"host-a","kubernetes":{"node":{"name":"node-1"}}}}}"#;
    let (_, d) = doc_with(
        m,
        &format!(r#"{{"transaction": {{{TX}}}}}"#),
        false,
        &ModelConfig::default(),
    );
    assert_eq!(d["host"]["hostname"], "node-1");
    assert_eq!(d["host"]["name"], "node-1");
    assert_eq!(d["service"]["node"]["name"], "node-1");
    let m = r#"{"metadata":{"service":{"name":"svc","agent":{"name":"go","version":"1"}},"system":{"detected_hostname":"host-a","container":{"id":"c1"},"kubernetes":{"namespace":"ns"}}}}"#;
    let (_, d) = doc_with(
        m,
        &format!(r#"{{"transaction": {{{TX}}}}}"#),
        false,
        &ModelConfig::default(),
    );
    assert!(
        d["host"].get("hostname").is_none(),
        "kubernetes without a node name clears the hostname"
    );
    assert_eq!(d["service"]["node"]["name"], "c1");
}

#[test]
fn data_streams_by_event() {
    let (ds, _) = doc(r#"{"error": {"id": "e", "log": {"message": "m"}}}"#);
    assert_eq!(ds, "logs-apm.error-default");
    let (ds, _) = doc(r#"{"log": {"message": "m", "service.name": "My-Svc:1"}}"#);
    assert_eq!(ds, "logs-apm.app.my_svc_1-default");
    let (ds, d) = doc(
        r#"{"metricset": {"samples": {"custom.metric": {"value": 1, "type": "gauge", "unit": "ms"}}}}"#,
    );
    assert_eq!(ds, "metrics-apm.app.svc-default");
    assert_eq!(
        d["metricset"]["samples"],
        serde_json::json!([{"name": "custom.metric", "type": "gauge", "unit": "ms", "value": 1}])
    );
    let (ds, d) = doc(
        r#"{"metricset": {"samples": {"system.memory.total": {"value": 2, "type": "gauge"}}}}"#,
    );
    assert_eq!(ds, "metrics-apm.internal-default");
    assert_eq!(
        d["metricset"]["samples"],
        serde_json::json!([{"name": "system.memory.total", "value": 2}]),
        "internal: type and unit dropped"
    );
}

#[test]
fn breakdown_metricsets() {
    let line = r#"{"metricset": {"samples": {"span.self_time.count": {"value": 2}, "span.self_time.sum.us": {"value": 10.5}}, "transaction": {"name": "GET /", "type": "request"}, "span": {"type": "db"}}}"#;
    let (ds, d) = doc(line);
    assert_eq!(ds, "metrics-apm.internal-default");
    assert_eq!(d["metricset"]["name"], "span_breakdown");
    assert_eq!(
        d["span"]["self_time"],
        serde_json::json!({"count": 2, "sum.us": 10})
    );
    // Known transaction fields but no known sample: accepted by nobody, dropped.
    let d = event_with(
        META,
        r#"{"metricset": {"samples": {"x": {"value": 1}}, "transaction": {"name": "n"}}}"#,
        false,
        &ModelConfig::default(),
    )
    .unwrap();
    assert_eq!((d.accepted, d.documents.len()), (0, 0));
}

#[test]
fn error_grouping_key_message_and_default_level() {
    let (_, d) =
        doc(r#"{"error": {"id": "e", "log": {"message": "boom", "param_message": "boom %s"}}}"#);
    assert_eq!(d["message"], "boom");
    assert_eq!(d["error"]["log"]["level"], "error");
    // xxhash64 of "boom %s": the parameterised message is the only grouping input here.
    assert_eq!(
        d["error"]["grouping_key"],
        format!("{:016x}", xxh64(b"boom %s"))
    );
}

fn xxh64(b: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(b, 0)
}

#[test]
fn rum_library_and_grouping_patterns() {
    let cfg = ModelConfig {
        library_pattern: Some(regex::Regex::new("node_modules").unwrap()),
        exclude_from_grouping: Some(regex::Regex::new("^/webpack").unwrap()),
        ..ModelConfig::default()
    };
    let line = r#"{"error": {"id": "e", "exception": {"message": "m", "stacktrace": [{"filename": "/webpack/a.js", "function": "f"}, {"filename": "node_modules/b.js", "function": "g"}, {"filename": "app.js", "library_frame": true}]}}}"#;
    let (_, d) = doc_with(RUM_META, line, true, &cfg);
    let st = &d["error"]["exception"][0]["stacktrace"];
    assert_eq!(st[0]["exclude_from_grouping"], true);
    assert_eq!(st[1]["library_frame"], true);
    assert!(st[2].get("library_frame").is_none());
    assert_eq!(st[2]["original"]["library_frame"], true);
    // Backend routes do not run the RUM patterns.
    let (_, d) = doc_with(META, line, false, &cfg);
    assert_eq!(
        d["error"]["exception"][0]["stacktrace"][0]["exclude_from_grouping"],
        false
    );
}

#[test]
fn rum_v3_transaction_with_spans_and_metricsets() {
    let m = r#"{"m": {"se": {"n": "rum", "a": {"n": "rum-js", "ve": "5"}}}}"#;
    let line = r#"{"x": {"id": "x1", "tid": "t1", "t": "page-load", "d": 10, "yc": {"sd": 2}, "y": [{"id": "y1", "n": "a", "t": "resource.script", "s": 1, "d": 2}, {"id": "y2", "n": "b", "t": "app", "s": 2, "d": 1, "pi": 0}], "me": [{"y": {"t": "resource"}, "sa": {"ysc": {"v": 1}, "yss": {"v": 2}}}]}}"#;
    let d = event_with(m, line, true, &ModelConfig::default()).unwrap();
    assert_eq!(d.accepted, 4);
    let docs: Vec<Value> = d
        .documents
        .iter()
        .map(|d| serde_json::from_slice(&d.body).unwrap())
        .collect();
    assert_eq!(docs[0]["transaction"]["id"], "x1");
    assert_eq!(d.documents[1].data_stream, "metrics-apm.internal-default");
    assert_eq!(docs[2]["parent"]["id"], "x1");
    assert_eq!(docs[2]["span"]["type"], "resource");
    assert_eq!(docs[2]["span"]["subtype"], "script");
    assert_eq!(
        docs[3]["parent"]["id"], "y1",
        "pi points at another span of the same transaction"
    );
    assert_eq!(docs[3]["timestamp"]["us"], 1_533_117_600_002_000u64);
}

#[test]
fn custom_context_keys_are_sanitised_at_the_top_level_only() {
    let (_, d) = doc(&format!(
        r#"{{"transaction": {{{TX},"context":{{"custom":{{"a.b":{{"c.d":1}},"n":2.0}}}}}}}}"#
    ));
    assert_eq!(
        d["transaction"]["custom"],
        serde_json::json!({"a_b": {"c.d": 1}, "n": 2})
    );
}
