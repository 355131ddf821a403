//! Intake v2 `error` events (exceptions and log messages): wire types, validation and mapping.

use std::borrow::Cow;

use super::context::{
    Context, map_context_agent, map_context_service, map_http_context, overwrite_user,
    validate_context,
};
use super::stacktrace::{Frame, map_frames, validate_frames};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{IsSet, JAny, JBool, JObject, JStr, JTime, JVec, json_struct};
use crate::model::map::*;

json_struct! {
    /// `{"error": {...}}`
    pub struct ErrorRoot<'a>: "v2.errorRoot" {
        /// The error.
        error: ErrorEvent<'a> = "error" / "Error",
    }
}

json_struct! {
    /// An error or a logged error message.
    pub struct ErrorEvent<'a>: "v2.errorEvent" {
        /// Timestamp.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// Log.
        log: ErrorLogIn<'a> = "log" / "Log",
        /// Culprit.
        culprit: Option<JStr<'a>> = "culprit" / "Culprit",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Parent id.
        parent_id: Option<JStr<'a>> = "parent_id" / "ParentID",
        /// Trace id.
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
        /// Transaction id.
        transaction_id: Option<JStr<'a>> = "transaction_id" / "TransactionID",
        /// Exception.
        exception: ExceptionIn<'a> = "exception" / "Exception",
        /// Transaction reference.
        transaction: ErrorTransactionRef<'a> = "transaction" / "Transaction",
        /// Context.
        context: Context<'a> = "context" / "Context",
    }
}

json_struct! {
    /// `error.exception`
    pub struct ExceptionIn<'a>: "v2.errorException" {
        /// Attributes.
        attributes: JObject = "attributes" / "Attributes",
        /// Code: a string or an integer.
        code: Option<JAny> = "code" / "Code",
        /// Causes.
        cause: JVec<ExceptionIn<'a>> = "cause" / "Cause",
        /// Stack trace.
        stacktrace: JVec<Frame<'a>> = "stacktrace" / "Stacktrace",
        /// Message.
        message: Option<JStr<'a>> = "message" / "Message",
        /// Module.
        module: Option<JStr<'a>> = "module" / "Module",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Handled.
        handled: Option<JBool> = "handled" / "Handled",
    }
}

json_struct! {
    /// `error.log`
    pub struct ErrorLogIn<'a>: "v2.errorLog" {
        /// Level.
        level: Option<JStr<'a>> = "level" / "Level",
        /// Logger name.
        logger_name: Option<JStr<'a>> = "logger_name" / "LoggerName",
        /// Message.
        message: Option<JStr<'a>> = "message" / "Message",
        /// Parameterised message.
        param_message: Option<JStr<'a>> = "param_message" / "ParamMessage",
        /// Stack trace.
        stacktrace: JVec<Frame<'a>> = "stacktrace" / "Stacktrace",
    }
}

json_struct! {
    /// `error.transaction`
    pub struct ErrorTransactionRef<'a>: "v2.errorTransactionRef" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Sampled.
        sampled: Option<JBool> = "sampled" / "Sampled",
    }
}

/// Validates an error as APM Server does.
pub fn validate_error_root(r: &ErrorRoot<'_>) -> VResult {
    nested(&r.error, "error", |e| {
        any_of(e.exception.is_set() || e.log.is_set(), "exception;log")?;
        nested(&e.log, "log", |l| {
            max_len(&l.level, KEYWORD_MAX_LENGTH, "level")?;
            max_len(&l.logger_name, KEYWORD_MAX_LENGTH, "logger_name")?;
            required(&l.message, "message")?;
            max_len(&l.param_message, KEYWORD_MAX_LENGTH, "param_message")?;
            validate_frames(&l.stacktrace)
        })?;
        max_len(&e.culprit, KEYWORD_MAX_LENGTH, "culprit")?;
        max_len(&e.id, KEYWORD_MAX_LENGTH, "id")?;
        required(&e.id, "id")?;
        max_len(&e.parent_id, KEYWORD_MAX_LENGTH, "parent_id")?;
        if e.parent_id.is_none() {
            if e.transaction_id.is_some() {
                return Err("'parent_id' required when 'transaction_id' is set".into());
            }
            if e.trace_id.is_some() {
                return Err("'parent_id' required when 'trace_id' is set".into());
            }
        }
        max_len(&e.trace_id, KEYWORD_MAX_LENGTH, "trace_id")?;
        if e.trace_id.is_none() {
            if e.transaction_id.is_some() {
                return Err("'trace_id' required when 'transaction_id' is set".into());
            }
            if e.parent_id.is_some() {
                return Err("'trace_id' required when 'parent_id' is set".into());
            }
        }
        max_len(&e.transaction_id, KEYWORD_MAX_LENGTH, "transaction_id")?;
        nested(&e.exception, "exception", validate_exception)?;
        nested(&e.transaction, "transaction", |t| {
            max_len(&t.name, KEYWORD_MAX_LENGTH, "name")?;
            max_len(&t.r#type, KEYWORD_MAX_LENGTH, "type")
        })?;
        nested(&e.context, "context", validate_context)
    })?;
    required(&r.error, "error")
}

fn validate_exception(e: &ExceptionIn<'_>) -> VResult {
    any_of(e.message.is_some() || e.r#type.is_some(), "message;type")?;
    string_or_int(&e.code, "code", KEYWORD_MAX_LENGTH, false)?;
    each(&e.cause, "cause", validate_exception)?;
    validate_frames(&e.stacktrace)?;
    max_len(&e.module, KEYWORD_MAX_LENGTH, "module")?;
    max_len(&e.r#type, KEYWORD_MAX_LENGTH, "type")
}

fn map_exception<'a>(e: &ExceptionIn<'a>) -> Exception<'a> {
    Exception {
        attributes: if e.attributes.is_set() {
            Some(e.attributes.0.clone())
        } else {
            None
        },
        code: e
            .code
            .as_ref()
            .map(|c| Cow::Owned(any_to_string(&c.0)))
            .unwrap_or_default(),
        cause: e.cause.iter().map(map_exception).collect(),
        handled: e.handled.map(|h| h.0),
        message: st(&e.message),
        module: st(&e.module),
        stacktrace: map_frames(&e.stacktrace),
        r#type: st(&e.r#type),
    }
}

/// Maps a validated error onto `out` (a clone of the base event).
pub fn map_error<'a>(e: &ErrorEvent<'a>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Error;
    let mut err = crate::model::event::Error::default();
    map_context_service(&e.context.service, &mut out.service);
    map_context_agent(&e.context.service.agent, &mut out.agent);
    overwrite_user(&e.context.user, out);
    user_agent_from_headers(&e.context.request.headers, out);
    map_client(
        e.context.request.socket.remote_address.as_ref(),
        &e.context.request.headers,
        out,
    );
    if e.context.is_set() {
        merge_labels(&e.context.tags.0, &mut out.labels);
        map_http_context(&e.context, out, true);
        if e.context.custom.is_set() {
            err.custom = Some(e.context.custom.0.clone());
        }
    }
    set(&mut err.culprit, &e.culprit);
    if e.exception.is_set() {
        err.exception = Some(map_exception(&e.exception));
    }
    set(&mut err.id, &e.id);
    if e.log.is_set() {
        let l = &e.log;
        err.log = Some(ErrorLog {
            level: st(&l.level),
            logger_name: st(&l.logger_name),
            message: st(&l.message),
            param_message: st(&l.param_message),
            stacktrace: map_frames(&l.stacktrace),
        });
    }
    set(&mut out.parent_id, &e.parent_id);
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(t) = e.timestamp {
        out.timestamp = t.0;
    }
    set(&mut out.trace_id, &e.trace_id);
    if e.transaction_id.is_some() || e.transaction.is_set() {
        let tx = out.transaction_mut();
        if let Some(id) = &e.transaction_id {
            tx.id = id.0.clone();
        }
        tx.sampled = e.transaction.sampled.is_some_and(|b| b.0);
        set(&mut tx.name, &e.transaction.name);
        set(&mut tx.r#type, &e.transaction.r#type);
        if let Some(id) = &e.transaction_id {
            out.span_mut().id = id.0.clone();
        }
    }
    out.error = Some(err);
}
