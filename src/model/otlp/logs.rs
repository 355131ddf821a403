//! OTLP log records (`apm-data/input/otlp/logs.go`): each becomes a log in
//! `logs-apm.app.<service>-<namespace>` with its severity, body and trace correlation, or an
//! error when it records an exception. Also the exception mapping span events share
//! (`exceptions.go`), with its Java stack trace parser.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::any_value;

use super::super::event::*;
use super::super::otel::{label_key, set_attribute_label};
use super::super::{ModelConfig, RequestMeta};
use super::{Export, ExportLogsServiceRequest, attr, hex_id, nanos, resource_event, str_value};

/// Maps a logs export request: every record is taken (APM Server rejects none).
pub fn logs(
    request: &ExportLogsServiceRequest,
    meta: &RequestMeta<'_>,
    config: &ModelConfig,
) -> Export {
    let mut out = Export::default();
    for rl in &request.resource_logs {
        let (base, time_delta) = resource_event(rl.resource.as_ref(), meta);
        let mut events = Vec::new();
        for sl in &rl.scope_logs {
            for record in &sl.log_records {
                let mut ev = base.clone();
                ev.kind = Kind::Log;
                let t = if record.time_unix_nano == 0 {
                    record.observed_time_unix_nano
                } else {
                    record.time_unix_nano
                };
                ev.timestamp = nanos(t).saturating_add(time_delta);
                ev.event_mut().severity = u64::try_from(record.severity_number).unwrap_or(0);
                ev.log = Some(Log {
                    level: Cow::Owned(record.severity_text.clone()),
                    ..Default::default()
                });
                if let Some(body) = record.body.as_ref().and_then(|b| b.value.as_ref()) {
                    ev.message = Cow::Owned(super::value_as_string(body));
                    if let any_value::Value::KvlistValue(m) = body {
                        for kv in &m.values {
                            if let Some(a) = attr(kv.value.as_ref()) {
                                set_attribute_label(label_key(&kv.key), &a, &mut ev);
                            }
                        }
                    }
                }
                let trace_id = hex_id(&record.trace_id);
                if !trace_id.is_empty() {
                    ev.trace_id = Cow::Owned(trace_id);
                }
                let span_id = hex_id(&record.span_id);
                if !span_id.is_empty() {
                    ev.span_mut().id = Cow::Owned(span_id);
                }
                map_attributes(record, &mut ev);
                events.push(ev);
            }
        }
        super::finish(events, &base.labels, meta, config, &mut out);
    }
    out
}

/// The record's attributes: an exception, a mobile device event, the session, labels.
fn map_attributes(record: &opentelemetry_proto::tonic::logs::v1::LogRecord, ev: &mut ApmEvent<'_>) {
    let (mut message, mut stacktrace, mut ty, mut escaped) = ("", "", "", false);
    let (mut event_name, mut event_domain) = ("", "");
    for kv in &record.attributes {
        let v = kv.value.as_ref();
        match kv.key.as_str() {
            "exception.message" => message = str_value(v),
            "exception.stacktrace" => stacktrace = str_value(v),
            "exception.type" => ty = str_value(v),
            "exception.escaped" => {
                escaped = matches!(
                    v.and_then(|v| v.value.as_ref()),
                    Some(any_value::Value::BoolValue(true))
                )
            }
            "event.name" => event_name = str_value(v),
            "event.domain" => event_domain = str_value(v),
            "session.id" => {
                ev.session = Some(Session {
                    id: Cow::Owned(str_value(v).to_owned()),
                    ..Default::default()
                })
            }
            key => {
                if let Some(a) = attr(v) {
                    set_attribute_label(label_key(key), &a, ev);
                }
            }
        }
    }
    if !message.is_empty() && !ty.is_empty() {
        let language = ev
            .service
            .language
            .as_ref()
            .map(|l| l.name.to_string())
            .unwrap_or_default();
        ev.error = Some(exception_error(ty, message, stacktrace, escaped, &language));
    }
    if event_domain == "device" && !event_name.is_empty() {
        let e = ev.event_mut();
        e.category = Cow::Borrowed("device");
        if event_name == "crash" {
            ev.error.get_or_insert_with(Default::default).r#type = Cow::Borrowed("crash");
        } else {
            e.kind = Cow::Borrowed("event");
            e.action = Cow::Owned(event_name.to_owned());
        }
    }
    if ev.error.is_some() {
        let e = ev.event_mut();
        e.kind = Cow::Borrowed("event");
        e.r#type = Cow::Borrowed("error");
    }
}

/// An exception as an error (`convertOpenTelemetryExceptionSpanEvent`): handled unless it
/// escaped, a new id, and the stack trace parsed into frames for Java, else kept as text.
pub(super) fn exception_error(
    ty: &str,
    message: &str,
    stacktrace: &str,
    escaped: bool,
    language: &str,
) -> Error<'static> {
    let mut exception = Exception {
        message: Cow::Owned(
            if message.is_empty() {
                "[EMPTY]"
            } else {
                message
            }
            .to_owned(),
        ),
        r#type: Cow::Owned(ty.to_owned()),
        handled: Some(!escaped),
        ..Default::default()
    };
    let mut err = Error {
        id: Cow::Owned(new_id()),
        ..Default::default()
    };
    if !stacktrace.is_empty() {
        let parsed = match language {
            "java" => java_stacktrace(stacktrace, &mut exception),
            _ => Err(()),
        };
        if parsed.is_err() {
            // APM Server 9.5 keeps an empty (not nil) frame list here: the grouping key
            // hashes the exception types only (TestOTLPGRPCTraces' approval).
            exception.stacktrace.clear();
            exception.cause.clear();
            exception.unparsed_stacktrace = true;
            err.stack_trace = Cow::Owned(stacktrace.to_owned());
        }
    }
    err.exception = Some(exception);
    err
}

/// 16 random bytes in hex, as APM Server ids errors it creates.
fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Java stack trace as `Throwable.printStackTrace` writes it: `at` frames, `... N more`
/// (the enclosing exception's last N frames), `Caused by:` (a cause) and `Suppressed:`
/// (ignored, with its indented lines). Any other line fails the parse.
fn java_stacktrace(s: &str, out: &mut Exception<'static>) -> Result<(), ()> {
    // The exceptions being built, as paths of cause indices from `out`: the current one, the
    // one enclosing it, and the indentation it started at.
    struct Level {
        path: Vec<usize>,
        enclosing: Option<Vec<usize>>,
        indent: usize,
        // A suppressed exception's lines are read and dropped.
        dropped: bool,
    }
    fn at<'x>(root: &'x mut Exception<'static>, path: &[usize]) -> &'x mut Exception<'static> {
        path.iter().fold(root, |e, &i| &mut e.cause[i])
    }
    fn target<'x>(
        cur: &Level,
        out: &'x mut Exception<'static>,
        scratch: &'x mut Exception<'static>,
    ) -> &'x mut Exception<'static> {
        if cur.dropped {
            scratch
        } else {
            at(out, &cur.path)
        }
    }
    let mut scratch = Exception::default();
    let mut current = Level {
        path: vec![],
        enclosing: None,
        indent: 0,
        dropped: false,
    };
    let mut stack: Vec<Level> = Vec::new();
    for line in s.lines().skip(1) {
        let indent = line.len() - line.trim_start_matches('\t').len();
        let line = &line[indent..];
        while indent < current.indent {
            current = stack.pop().ok_or(())?;
        }
        if let Some(rest) = line.strip_prefix("at ") {
            let frame = java_frame(rest)?;
            target(&current, out, &mut scratch).stacktrace.push(frame);
        } else if line.starts_with("...") {
            let enclosing = current.enclosing.clone().ok_or(())?;
            let n: usize = line
                .strip_prefix("... ")
                .and_then(|r| r.strip_suffix(" more"))
                .and_then(|n| n.parse().ok())
                .ok_or(())?;
            let frames = &at(out, &enclosing).stacktrace;
            if frames.len() < n {
                return Err(());
            }
            let common = frames[frames.len() - n..].to_vec();
            target(&current, out, &mut scratch)
                .stacktrace
                .extend(common);
        } else if let Some(message) = line.strip_prefix("Caused by: ") {
            let enclosing = target(&current, out, &mut scratch);
            let handled = enclosing.handled;
            enclosing.cause = vec![Exception {
                message: Cow::Owned(message.to_owned()),
                handled,
                ..Default::default()
            }];
            current.enclosing = Some(current.path.clone());
            current.path.push(0);
        } else if line.starts_with("Suppressed: ") {
            let enclosing = Some(current.path.clone());
            let path = current.path.clone();
            stack.push(current);
            scratch = Exception::default();
            current = Level {
                path,
                enclosing,
                indent,
                dropped: true,
            };
        } else {
            return Err(());
        }
    }
    Ok(())
}

/// One `at` line: `[class_loader/][module/]class.method(file[:line])`.
fn java_frame(s: &str) -> Result<Frame<'static>, ()> {
    let open = s.rfind('(').ok_or(())?;
    let close = s[open..].find(')').ok_or(())? + open;
    let mut function = &s[..open];
    let location = &s[open + 1..close];
    let (file, line) = match location.split_once(':') {
        Some((f, l)) if l.bytes().all(|b| b.is_ascii_digit()) && !l.is_empty() => {
            (f, l.parse::<u32>().ok())
        }
        Some(_) => return Err(()),
        None => (location, None),
    };
    let mut module = "";
    if let Some((m, f)) = function.split_once('/') {
        module = m;
        function = f;
        if let Some((m, f)) = function.split_once('/') {
            module = m;
            function = f;
        }
    }
    let mut classname = "";
    if let Some(dot) = function.rfind('.').filter(|&d| d > 0) {
        classname = &function[..dot];
        function = &function[dot + 1..];
    }
    Ok(Frame {
        module: Cow::Owned(module.to_owned()),
        classname: Cow::Owned(classname.to_owned()),
        function: Cow::Owned(function.to_owned()),
        filename: Cow::Owned(file.to_owned()),
        lineno: line,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_stack_traces_become_frames_and_causes() {
        let trace = "java.lang.RuntimeException: boom\n\
                     \tat com.example.App.run(App.java:10)\n\
                     \tat java.base/java.lang.Thread.run(Thread.java:833)\n\
                     Caused by: java.io.IOException: disk\n\
                     \tat com.example.Disk.read(Disk.java)\n\
                     \t... 1 more\n";
        let err = exception_error("java.lang.RuntimeException", "boom", trace, false, "java");
        assert!(err.stack_trace.is_empty());
        let e = err.exception.unwrap();
        assert_eq!(e.stacktrace.len(), 2);
        assert_eq!(e.stacktrace[0].classname, "com.example.App");
        assert_eq!(e.stacktrace[0].function, "run");
        assert_eq!(e.stacktrace[0].lineno, Some(10));
        assert_eq!(e.stacktrace[1].module, "java.base");
        assert_eq!(e.cause[0].message, "java.io.IOException: disk");
        assert_eq!(e.cause[0].stacktrace.len(), 2);
        assert_eq!(e.cause[0].stacktrace[1].function, "run");
        assert_eq!(e.cause[0].handled, Some(true));
    }

    #[test]
    fn other_stack_traces_stay_text() {
        let err = exception_error("E", "", "trace", true, "go");
        assert_eq!(err.stack_trace, "trace");
        let e = err.exception.unwrap();
        assert_eq!(e.message, "[EMPTY]");
        assert_eq!(e.handled, Some(false));
        assert_eq!(err.id.len(), 32);
    }

    #[test]
    fn unparsable_java_stack_traces_stay_text() {
        let err = exception_error("E", "m", "E: m\nnot a frame", false, "java");
        assert_eq!(err.stack_trace, "E: m\nnot a frame");
        assert!(err.exception.unwrap().stacktrace.is_empty());
    }
}
