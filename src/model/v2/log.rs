//! Intake v2 `log` events (ECS logging fields, flat or nested): wire types, validation and
//! mapping.

use std::borrow::Cow;

use super::transaction::{FaasIn, map_faas};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{IsSet, JInt, JMap, JObject, JStr, JTime, LabelIn, json_struct};
use crate::model::map::*;

json_struct! {
    /// A log line: `{"log": {...}}`.
    pub struct LogRoot<'a>: "v2.logRoot" {
        /// The log event (required).
        log: LogIn<'a> = "log" / "Log",
    }
}

json_struct! {
    /// An application log event; ECS fields may be flat (`"log.level"`) or nested
    /// (`"log": {"level"}`), nested winning.
    pub struct LogIn<'a>: "v2.log" {
        /// The event's labels (`labels.*`, `numeric_labels.*`).
        labels: JMap<'a, LabelIn<'a>> = "labels" / "Labels",
        /// `@timestamp`; the request's receipt time when absent.
        timestamp: Option<JTime> = "@timestamp" / "Timestamp",
        /// Nested `service`.
        service: JObject = "service" / "NestedStruct",
        /// Flat `service.name`.
        service_name: Option<JStr<'a>> = "service.name" / "ServiceName",
        /// Flat `service.version`.
        service_version: Option<JStr<'a>> = "service.version" / "ServiceVersion",
        /// Flat `service.environment`.
        service_environment: Option<JStr<'a>> = "service.environment" / "ServiceEnvironment",
        /// Flat `service.node.name`.
        service_node_name: Option<JStr<'a>> = "service.node.name" / "ServiceNodeName",
        /// Nested `error`.
        error: JObject = "error" / "NestedStruct",
        /// Flat `error.type`.
        error_type: Option<JStr<'a>> = "error.type" / "ErrorType",
        /// Flat `error.message`.
        error_message: Option<JStr<'a>> = "error.message" / "ErrorMessage",
        /// Flat `error.stack_trace`.
        error_stack_trace: Option<JStr<'a>> = "error.stack_trace" / "ErrorStacktrace",
        /// Nested `event`.
        event: JObject = "event" / "NestedStruct",
        /// Flat `event.dataset`.
        event_dataset: Option<JStr<'a>> = "event.dataset" / "EventDataset",
        /// Nested `process`.
        process: JObject = "process" / "NestedStruct",
        /// Flat `process.thread.name`.
        process_thread_name: Option<JStr<'a>> = "process.thread.name" / "ProcessThreadName",
        /// `trace.id` of the trace the event was logged in.
        trace_id: Option<JStr<'a>> = "trace.id" / "TraceID",
        /// `transaction.id` of the transaction the event was logged in.
        transaction_id: Option<JStr<'a>> = "transaction.id" / "TransactionID",
        /// `span.id` of the span the event was logged in.
        span_id: Option<JStr<'a>> = "span.id" / "SpanID",
        /// `message`: the logged message.
        message: Option<JStr<'a>> = "message" / "Message",
        /// The function invocation the event was logged in (`faas.*`).
        faas: FaasIn<'a> = "faas" / "FAAS",
        /// Nested `log`.
        log: JObject = "log" / "NestedStruct",
        /// Flat `log.level`.
        log_level: Option<JStr<'a>> = "log.level" / "Level",
        /// Flat `log.logger`.
        log_logger: Option<JStr<'a>> = "log.logger" / "Logger",
        /// Flat `log.origin.file.name`.
        log_origin_file_name: Option<JStr<'a>> = "log.origin.file.name" / "OriginFileName",
        /// Flat `log.origin.function`.
        log_origin_function: Option<JStr<'a>> = "log.origin.function" / "OriginFunction",
        /// Flat `log.origin.file.line`.
        log_origin_file_line: Option<JInt> = "log.origin.file.line" / "OriginFileLine",
    }
}

fn nested_str<'a>(
    obj: &serde_json::Map<String, serde_json::Value>,
    path: &[&str],
) -> Option<JStr<'a>> {
    let mut cur = obj;
    for (i, k) in path.iter().enumerate() {
        let v = cur.get(*k)?;
        if i + 1 == path.len() {
            return v.as_str().map(|s| JStr(Cow::Owned(s.to_owned())));
        }
        cur = v.as_object()?;
    }
    None
}

/// Sets `flat` to the string at `path` in a nested ECS object, when there is one.
fn nested_over<'a>(
    obj: &serde_json::Map<String, serde_json::Value>,
    path: &[&str],
    flat: &mut Option<JStr<'a>>,
) {
    if let Some(v) = nested_str(obj, path) {
        *flat = Some(v);
    }
}

/// Copies nested ECS fields over the flat ones, as APM Server's `processNestedSource` does;
/// fails like it when `log.origin.file.line` is not an integer.
pub fn process_nested_log(l: &mut LogIn<'_>) -> Result<(), String> {
    nested_over(&l.service.0, &["name"], &mut l.service_name);
    nested_over(&l.service.0, &["version"], &mut l.service_version);
    nested_over(&l.service.0, &["environment"], &mut l.service_environment);
    nested_over(&l.service.0, &["node", "name"], &mut l.service_node_name);
    nested_over(&l.error.0, &["type"], &mut l.error_type);
    nested_over(&l.error.0, &["message"], &mut l.error_message);
    nested_over(&l.error.0, &["stack_trace"], &mut l.error_stack_trace);
    nested_over(&l.event.0, &["dataset"], &mut l.event_dataset);
    nested_over(
        &l.process.0,
        &["thread", "name"],
        &mut l.process_thread_name,
    );
    nested_over(&l.log.0, &["level"], &mut l.log_level);
    nested_over(&l.log.0, &["logger"], &mut l.log_logger);
    nested_over(
        &l.log.0,
        &["origin", "file", "name"],
        &mut l.log_origin_file_name,
    );
    nested_over(
        &l.log.0,
        &["origin", "function"],
        &mut l.log_origin_function,
    );
    let line = l
        .log
        .0
        .get("origin")
        .and_then(|o| o.as_object())
        .and_then(|o| o.get("file"))
        .and_then(|f| f.as_object())
        .and_then(|f| f.get("line"));
    if let Some(serde_json::Value::Number(n)) = line {
        match n.as_i64() {
            Some(i) => l.log_origin_file_line = Some(JInt(i)),
            None => return Err(format!("strconv.ParseInt: parsing \"{n}\": invalid syntax")),
        }
    }
    Ok(())
}

/// Validates a log as APM Server does.
pub fn validate_log_root(r: &LogRoot<'_>) -> VResult {
    nested(&r.log, "log", |l| {
        labels(&l.labels.0, "labels")?;
        let service_set = l.service.is_set()
            || l.service_name.is_some()
            || l.service_version.is_some()
            || l.service_environment.is_some()
            || l.service_node_name.is_some();
        if service_set {
            keywords(&[
                (&l.service_name, "service.name"),
                (&l.service_version, "service.version"),
                (&l.service_environment, "service.environment"),
                (&l.service_node_name, "service.node.name"),
            ])
            .map_err(|e| format!("ecslogservicefields: {e}"))?;
        }
        if l.event.is_set() || l.event_dataset.is_some() {
            max_len(&l.event_dataset, KEYWORD_MAX_LENGTH, "event.dataset")
                .map_err(|e| format!("ecslogeventfields: {e}"))?;
        }
        if l.process.is_set() || l.process_thread_name.is_some() {
            max_len(
                &l.process_thread_name,
                KEYWORD_MAX_LENGTH,
                "process.thread.name",
            )
            .map_err(|e| format!("ecslogprocessfields: {e}"))?;
        }
        keywords(&[
            (&l.trace_id, "trace.id"),
            (&l.transaction_id, "transaction.id"),
            (&l.span_id, "span.id"),
        ])?;
        nested(&l.faas, "faas", |_| Ok(()))?;
        if l.log.is_set()
            || l.log_level.is_some()
            || l.log_logger.is_some()
            || l.log_origin_file_name.is_some()
            || l.log_origin_function.is_some()
            || l.log_origin_file_line.is_some()
        {
            keywords(&[
                (&l.log_level, "log.level"),
                (&l.log_logger, "log.logger"),
                (&l.log_origin_file_name, "log.origin.file.name"),
            ])
            .map_err(|e| format!("ecsloglogfields: {e}"))?;
        }
        Ok(())
    })?;
    required(&r.log, "log")
}

/// Maps a validated log onto `out` (a clone of the base event).
pub fn map_log<'a>(l: &LogIn<'a>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Log;
    map_faas(&l.faas, out);
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(t) = l.timestamp {
        out.timestamp = t.0;
    }
    set(&mut out.trace_id, &l.trace_id);
    if let Some(id) = &l.transaction_id {
        out.transaction = Some(crate::model::event::Transaction {
            id: id.0.clone(),
            ..Default::default()
        });
        out.span_mut().id = id.0.clone();
    }
    if let Some(id) = &l.span_id {
        out.span = Some(crate::model::event::Span {
            id: id.0.clone(),
            ..Default::default()
        });
    }
    set(&mut out.message, &l.message);
    if l.log_level.is_some()
        || l.log_logger.is_some()
        || l.log_origin_function.is_some()
        || l.log_origin_file_line.is_some()
        || l.log_origin_file_name.is_some()
    {
        let log = out.log.get_or_insert_with(Default::default);
        set(&mut log.level, &l.log_level);
        set(&mut log.logger, &l.log_logger);
        if let Some(f) = &l.log_origin_function {
            log.origin_function = f.0.clone();
            log.origin_set = true;
        }
        if let Some(line) = l.log_origin_file_line {
            log.origin_file_line = line.0 as u32;
            log.origin_set = true;
        }
        if let Some(f) = &l.log_origin_file_name {
            log.origin_file_name = f.0.clone();
            log.origin_set = true;
        }
    }
    if l.error_type.is_some() || l.error_message.is_some() || l.error_stack_trace.is_some() {
        out.error = Some(crate::model::event::Error {
            message: st(&l.error_message),
            r#type: st(&l.error_type),
            stack_trace: st(&l.error_stack_trace),
            ..Default::default()
        });
    }
    set(&mut out.service.name, &l.service_name);
    set(&mut out.service.version, &l.service_version);
    set(&mut out.service.environment, &l.service_environment);
    set(&mut out.service.node_name, &l.service_node_name);
    if let Some(t) = &l.process_thread_name {
        out.process.get_or_insert_with(Default::default).thread_name = t.0.clone();
    }
    if let Some(d) = &l.event_dataset {
        out.event_mut().dataset = d.0.clone();
    }
    merge_labels(&l.labels.0, &mut out.labels);
    if out.error.is_none() {
        out.event_mut().kind = Cow::Borrowed("event");
    }
}
