//! `error` events (exceptions and log messages; `e` in RUM v3), one declaration for both
//! protocols: wire types, validation and mapping.

use std::borrow::Cow;

use super::context::{Context, map_context_identity, map_http_context};
use super::stacktrace::{Frame, map_frames, validate_frames};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{IsSet, JAny, JBool, JObject, JStr, JTime, JVec, Protocol, json_struct};
use crate::model::map::*;

json_struct! {
    /// An error line: `{"error": {...}}`, in RUM v3 `{"e": {...}}`.
    pub struct ErrorRoot<'a, P>: "v2.errorRoot" | "rumv3.errorRoot" {
        /// The error (required).
        error: ErrorEvent<'a, P> = "error" | "e" / "Error",
    }
}

json_struct! {
    /// An error: an exception, a logged error message, or both.
    pub struct ErrorEvent<'a, P>: "v2.errorEvent" | "rumv3.errorEvent" {
        /// `@timestamp`; the request's receipt time when absent.
        timestamp: Option<JTime> = "timestamp" | "timestamp" / "Timestamp",
        /// The logged message (`error.log.*`).
        log: ErrorLogIn<'a, P> = "log" | "log" / "Log",
        /// `error.culprit`: where the error happened, e.g. a function and a file.
        culprit: Option<JStr<'a>> = "culprit" | "cl" / "Culprit",
        /// `error.id` (required).
        id: Option<JStr<'a>> = "id" | "id" / "ID",
        /// `parent.id`: the transaction or span that was active.
        parent_id: Option<JStr<'a>> = "parent_id" | "pid" / "ParentID",
        /// `trace.id`.
        trace_id: Option<JStr<'a>> = "trace_id" | "tid" / "TraceID",
        /// `transaction.id` of the transaction that was active.
        transaction_id: Option<JStr<'a>> = "transaction_id" | "xid" / "TransactionID",
        /// The exception (`error.exception`).
        exception: ExceptionIn<'a, P> = "exception" | "ex" / "Exception",
        /// The transaction that was active (`transaction.name`, `.type`, `.sampled`).
        transaction: ErrorTransactionRef<'a, P> = "transaction" | "x" / "Transaction",
        /// The request, user and service the error happened with.
        context: Context<'a, P> = "context" | "c" / "Context",
    }
}

json_struct! {
    /// `error.exception`: an exception, with the ones that caused it.
    pub struct ExceptionIn<'a, P>: "v2.errorException" | "rumv3.errorException" {
        /// Free-form attributes of the exception.
        attributes: JObject = "attributes" | "at" / "Attributes",
        /// The error code: a string or an integer, written as a string.
        code: Option<JAny> = "code" | "cd" / "Code",
        /// The exceptions that caused this one.
        cause: JVec<ExceptionIn<'a, P>> = "cause" | "ca" / "Cause",
        /// Where the exception was raised, innermost frame first.
        stacktrace: JVec<Frame<'a, P>> = "stacktrace" | "st" / "Stacktrace",
        /// The exception's message (this or a type is required).
        message: Option<JStr<'a>> = "message" | "mg" / "Message",
        /// The module or package the exception's type is in.
        module: Option<JStr<'a>> = "module" | "mo" / "Module",
        /// The exception's type or class.
        r#type: Option<JStr<'a>> = "type" | "t" / "Type",
        /// Whether the application handled the exception.
        handled: Option<JBool> = "handled" | "hd" / "Handled",
    }
}

json_struct! {
    /// `error.log`: an error message the application logged.
    pub struct ErrorLogIn<'a, P>: "v2.errorLog" | "rumv3.errorLog" {
        /// The log level, e.g. `error`.
        level: Option<JStr<'a>> = "level" | "lv" / "Level",
        /// The logger's name (in RUM v3 `default` when absent).
        logger_name: Option<JStr<'a>> = "logger_name" | "ln" / "LoggerName",
        /// The message as logged (required).
        message: Option<JStr<'a>> = "message" | "mg" / "Message",
        /// The message before its parameters were substituted, e.g. `Could not open %s`;
        /// errors are grouped by it.
        param_message: Option<JStr<'a>> = "param_message" | "pmg" / "ParamMessage",
        /// Where the message was logged, innermost frame first.
        stacktrace: JVec<Frame<'a, P>> = "stacktrace" | "st" / "Stacktrace",
    }
}

json_struct! {
    /// `error.transaction`: what the error's transaction was, for grouping in the APM app.
    pub struct ErrorTransactionRef<'a, P>: "v2.errorTransactionRef" | "rumv3.errorTransactionRef" {
        /// `transaction.name`.
        name: Option<JStr<'a>> = "name" | "n" / "Name",
        /// `transaction.type`.
        r#type: Option<JStr<'a>> = "type" | "t" / "Type",
        /// `transaction.sampled`.
        sampled: Option<JBool> = "sampled" | "sm" / "Sampled",
    }
}

impl<P: Protocol> ErrorRoot<'_, P> {
    /// Validates an error as APM Server does.
    pub fn validate(&self) -> VResult {
        nested(&self.error, Self::error, ErrorEvent::validate)?;
        required(&self.error, Self::error)
    }
}

impl<P: Protocol> ErrorEvent<'_, P> {
    fn validate(&self) -> VResult {
        any_of(
            self.exception.is_set() || self.log.is_set(),
            &[Self::exception, Self::log],
        )?;
        nested(&self.log, Self::log, ErrorLogIn::validate)?;
        max_len(&self.culprit, KEYWORD_MAX_LENGTH, Self::culprit)?;
        max_len(&self.id, KEYWORD_MAX_LENGTH, Self::id)?;
        required(&self.id, Self::id)?;
        max_len(&self.parent_id, KEYWORD_MAX_LENGTH, Self::parent_id)?;
        // Whether each id is sent, and its key.
        let transaction_id = (self.transaction_id.is_some(), Self::transaction_id);
        let trace_id = (self.trace_id.is_some(), Self::trace_id);
        let parent_id = (self.parent_id.is_some(), Self::parent_id);
        required_if_any(&self.parent_id, parent_id.1, &[transaction_id, trace_id])?;
        max_len(&self.trace_id, KEYWORD_MAX_LENGTH, Self::trace_id)?;
        required_if_any(&self.trace_id, trace_id.1, &[transaction_id, parent_id])?;
        max_len(
            &self.transaction_id,
            KEYWORD_MAX_LENGTH,
            Self::transaction_id,
        )?;
        nested(&self.exception, Self::exception, ExceptionIn::validate)?;
        nested(
            &self.transaction,
            Self::transaction,
            ErrorTransactionRef::validate,
        )?;
        nested(&self.context, Self::context, Context::validate)
    }
}

impl<P: Protocol> ErrorLogIn<'_, P> {
    fn validate(&self) -> VResult {
        max_len(&self.level, KEYWORD_MAX_LENGTH, Self::level)?;
        max_len(&self.logger_name, KEYWORD_MAX_LENGTH, Self::logger_name)?;
        required(&self.message, Self::message)?;
        max_len(&self.param_message, KEYWORD_MAX_LENGTH, Self::param_message)?;
        validate_frames(&self.stacktrace, Self::stacktrace)
    }
}

impl<P: Protocol> ErrorTransactionRef<'_, P> {
    fn validate(&self) -> VResult {
        max_len(&self.name, KEYWORD_MAX_LENGTH, Self::name)?;
        max_len(&self.r#type, KEYWORD_MAX_LENGTH, Self::r#type)
    }
}

impl<P: Protocol> ExceptionIn<'_, P> {
    fn validate(&self) -> VResult {
        any_of(
            self.message.is_some() || self.r#type.is_some(),
            &[Self::message, Self::r#type],
        )?;
        string_or_int(&self.code, Self::code, KEYWORD_MAX_LENGTH, false)?;
        each(&self.cause, Self::cause, ExceptionIn::validate)?;
        // APM Server's generated RUM v3 code checks the module before the stack trace.
        if P::RUM_V3 {
            max_len(&self.module, KEYWORD_MAX_LENGTH, Self::module)?;
            validate_frames(&self.stacktrace, Self::stacktrace)?;
        } else {
            validate_frames(&self.stacktrace, Self::stacktrace)?;
            max_len(&self.module, KEYWORD_MAX_LENGTH, Self::module)?;
        }
        max_len(&self.r#type, KEYWORD_MAX_LENGTH, Self::r#type)
    }
}

fn map_exception<'a, P>(e: &mut ExceptionIn<'a, P>) -> Exception<'a> {
    Exception {
        attributes: if e.attributes.is_set() {
            Some(std::mem::take(&mut e.attributes.0))
        } else {
            None
        },
        code: e
            .code
            .as_ref()
            .map(|c| Cow::Owned(any_to_string(&c.0)))
            .unwrap_or_default(),
        cause: e.cause.0.iter_mut().map(map_exception).collect(),
        handled: e.handled.map(|h| h.0),
        message: st(&e.message),
        module: st(&e.module),
        stacktrace: map_frames(&mut e.stacktrace.0),
        r#type: st(&e.r#type),
        unparsed_stacktrace: false,
    }
}

/// Maps a validated error onto `out` (a clone of the base event). Free-form values move out
/// of `e`.
pub fn map_error<'a, P: Protocol>(e: &mut ErrorEvent<'a, P>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Error;
    let mut err = crate::model::event::Error::default();
    map_context_identity(&e.context, out);
    if e.context.is_set() {
        merge_labels(&e.context.tags.0, &mut out.labels);
        map_http_context(&mut e.context, out, true);
        if e.context.custom.is_set() {
            err.custom = Some(std::mem::take(&mut e.context.custom.0));
        }
    }
    set(&mut err.culprit, &e.culprit);
    if e.exception.is_set() {
        err.exception = Some(map_exception(&mut e.exception));
    }
    set(&mut err.id, &e.id);
    if e.log.is_set() {
        let l = &mut e.log;
        err.log = Some(ErrorLog {
            level: st(&l.level),
            logger_name: match &l.logger_name {
                Some(n) => n.0.clone(),
                // APM Server's RUM v3 decoder names the logger; v2 leaves it empty.
                None if P::RUM_V3 => Cow::Borrowed("default"),
                None => Cow::Borrowed(""),
            },
            message: st(&l.message),
            param_message: st(&l.param_message),
            stacktrace: map_frames(&mut l.stacktrace.0),
        });
    }
    set(&mut out.parent_id, &e.parent_id);
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(t) = e.timestamp {
        out.timestamp = t.0;
    }
    set(&mut out.trace_id, &e.trace_id);
    // v2 records the transaction when either its id or its reference is sent, and the id as the
    // span's too; RUM v3 only with a reference.
    let transaction = if P::RUM_V3 {
        e.transaction.is_set()
    } else {
        e.transaction_id.is_some() || e.transaction.is_set()
    };
    if transaction {
        let tx = out.transaction_mut();
        set(&mut tx.id, &e.transaction_id);
        tx.sampled = e.transaction.sampled.is_some_and(|b| b.0);
        set(&mut tx.name, &e.transaction.name);
        set(&mut tx.r#type, &e.transaction.r#type);
        if let Some(id) = e.transaction_id.as_ref().filter(|_| !P::RUM_V3) {
            out.span_mut().id = id.0.clone();
        }
    }
    out.error = Some(err);
}
