//! RUM v3 errors (`e`): wire types, validation and mapping.

use std::borrow::Cow;

use super::context::{Context, map_context, validate_context};
use super::stacktrace::{Frame, map_frames, validate_frames};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{IsSet, JAny, JBool, JObject, JStr, JTime, JVec, json_struct};
use crate::model::map::*;

json_struct! {
    /// `{"e": {...}}`
    pub struct ErrorRoot<'a>: "rumv3.errorRoot" {
        /// The error.
        e: ErrorEvent<'a> = "e" / "Error",
    }
}

json_struct! {
    /// A RUM error.
    pub struct ErrorEvent<'a>: "rumv3.errorEvent" {
        /// Log.
        log: ErrorLog3<'a> = "log" / "Log",
        /// Culprit.
        cl: Option<JStr<'a>> = "cl" / "Culprit",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Parent id.
        pid: Option<JStr<'a>> = "pid" / "ParentID",
        /// Trace id.
        tid: Option<JStr<'a>> = "tid" / "TraceID",
        /// Transaction id.
        xid: Option<JStr<'a>> = "xid" / "TransactionID",
        /// Exception.
        ex: Exception3<'a> = "ex" / "Exception",
        /// Transaction reference.
        x: ErrorTransactionRef<'a> = "x" / "Transaction",
        /// Context.
        c: Context<'a> = "c" / "Context",
        /// Timestamp.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
    }
}

json_struct! {
    /// `e.ex`
    pub struct Exception3<'a>: "rumv3.errorException" {
        /// Attributes.
        at: JObject = "at" / "Attributes",
        /// Code.
        cd: Option<JAny> = "cd" / "Code",
        /// Causes.
        ca: JVec<Exception3<'a>> = "ca" / "Cause",
        /// Message.
        mg: Option<JStr<'a>> = "mg" / "Message",
        /// Module.
        mo: Option<JStr<'a>> = "mo" / "Module",
        /// Stack trace.
        st: JVec<Frame<'a>> = "st" / "Stacktrace",
        /// Type.
        t: Option<JStr<'a>> = "t" / "Type",
        /// Handled.
        hd: Option<JBool> = "hd" / "Handled",
    }
}

json_struct! {
    /// `e.log`
    pub struct ErrorLog3<'a>: "rumv3.errorLog" {
        /// Level.
        lv: Option<JStr<'a>> = "lv" / "Level",
        /// Logger name.
        ln: Option<JStr<'a>> = "ln" / "LoggerName",
        /// Message.
        mg: Option<JStr<'a>> = "mg" / "Message",
        /// Parameterised message.
        pmg: Option<JStr<'a>> = "pmg" / "ParamMessage",
        /// Stack trace.
        st: JVec<Frame<'a>> = "st" / "Stacktrace",
    }
}

json_struct! {
    /// `e.x`
    pub struct ErrorTransactionRef<'a>: "rumv3.errorTransactionRef" {
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
        /// Type.
        t: Option<JStr<'a>> = "t" / "Type",
        /// Sampled.
        sm: Option<JBool> = "sm" / "Sampled",
    }
}

fn validate_exception(e: &Exception3<'_>) -> VResult {
    any_of(e.mg.is_some() || e.t.is_some(), "mg;t")?;
    string_or_int(&e.cd, "cd", KEYWORD_MAX_LENGTH, false)?;
    each(&e.ca, "ca", validate_exception)?;
    max_len(&e.mo, KEYWORD_MAX_LENGTH, "mo")?;
    validate_frames(&e.st)?;
    max_len(&e.t, KEYWORD_MAX_LENGTH, "t")
}

/// Validates a RUM v3 error.
pub fn validate_error_root(r: &ErrorRoot<'_>) -> VResult {
    nested(&r.e, "e", |e| {
        any_of(e.ex.is_set() || e.log.is_set(), "ex;log")?;
        nested(&e.log, "log", |l| {
            max_len(&l.lv, KEYWORD_MAX_LENGTH, "lv")?;
            max_len(&l.ln, KEYWORD_MAX_LENGTH, "ln")?;
            required(&l.mg, "mg")?;
            max_len(&l.pmg, KEYWORD_MAX_LENGTH, "pmg")?;
            validate_frames(&l.st)
        })?;
        max_len(&e.cl, KEYWORD_MAX_LENGTH, "cl")?;
        max_len(&e.id, KEYWORD_MAX_LENGTH, "id")?;
        required(&e.id, "id")?;
        max_len(&e.pid, KEYWORD_MAX_LENGTH, "pid")?;
        if e.pid.is_none() {
            if e.xid.is_some() {
                return Err("'pid' required when 'xid' is set".into());
            }
            if e.tid.is_some() {
                return Err("'pid' required when 'tid' is set".into());
            }
        }
        max_len(&e.tid, KEYWORD_MAX_LENGTH, "tid")?;
        if e.tid.is_none() {
            if e.xid.is_some() {
                return Err("'tid' required when 'xid' is set".into());
            }
            if e.pid.is_some() {
                return Err("'tid' required when 'pid' is set".into());
            }
        }
        max_len(&e.xid, KEYWORD_MAX_LENGTH, "xid")?;
        nested(&e.ex, "ex", validate_exception)?;
        nested(&e.x, "x", |x| {
            max_len(&x.n, KEYWORD_MAX_LENGTH, "n")?;
            max_len(&x.t, KEYWORD_MAX_LENGTH, "t")
        })?;
        nested(&e.c, "c", validate_context)
    })?;
    required(&r.e, "e")
}

fn map_exception<'a>(e: &Exception3<'a>) -> Exception<'a> {
    Exception {
        attributes: if e.at.is_set() {
            Some(e.at.0.clone())
        } else {
            None
        },
        code: e
            .cd
            .as_ref()
            .map(|c| Cow::Owned(any_to_string(&c.0)))
            .unwrap_or_default(),
        cause: e.ca.iter().map(map_exception).collect(),
        handled: e.hd.map(|h| h.0),
        message: st(&e.mg),
        module: st(&e.mo),
        stacktrace: map_frames(&e.st),
        r#type: st(&e.t),
    }
}

/// Maps a validated RUM v3 error onto `out`.
pub fn map_error<'a>(e: &ErrorEvent<'a>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Error;
    let mut err = crate::model::event::Error::default();
    map_context(&e.c, out);
    if e.c.is_set() && e.c.cu.is_set() {
        err.custom = Some(e.c.cu.0.clone());
    }
    set(&mut err.culprit, &e.cl);
    if e.ex.is_set() {
        err.exception = Some(map_exception(&e.ex));
    }
    set(&mut err.id, &e.id);
    if e.log.is_set() {
        err.log = Some(ErrorLog {
            level: st(&e.log.lv),
            logger_name: e
                .log
                .ln
                .as_ref()
                .map_or(Cow::Borrowed("default"), |l| l.0.clone()),
            message: st(&e.log.mg),
            param_message: st(&e.log.pmg),
            stacktrace: map_frames(&e.log.st),
        });
    }
    set(&mut out.parent_id, &e.pid);
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(t) = e.timestamp {
        out.timestamp = t.0;
    }
    set(&mut out.trace_id, &e.tid);
    if e.x.is_set() {
        let tx = out.transaction_mut();
        tx.sampled = e.x.sm.is_some_and(|b| b.0);
        set(&mut tx.name, &e.x.n);
        set(&mut tx.r#type, &e.x.t);
        set(&mut tx.id, &e.xid);
    }
    out.error = Some(err);
}
