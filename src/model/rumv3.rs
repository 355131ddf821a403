//! RUM v3 events (`m`, `x` with embedded `y` spans and `me` metricsets, `e`): the abbreviated
//! wire types with APM Server's validation rules, and their mapping onto [`ApmEvent`].
//!
//! Follows `apm-data/input/elasticapm/internal/modeldecoder/rumv3`. This module never writes
//! documents and never sees HTTP.

use std::borrow::Cow;

use super::event::*;
use super::json::rules::*;
use super::json::{
    IsSet, JAny, JBool, JFloat, JHeaders, JInt, JMap, JObject, JStr, JTime, JVec, LabelIn,
    json_struct,
};
use super::map::*;

json_struct! {
    /// `{"m": {...}}`
    pub struct MetadataRoot<'a>: "rumv3.metadataRoot" {
        /// The metadata.
        m: Metadata<'a> = "m" / "Metadata",
    }
}

json_struct! {
    /// RUM metadata.
    pub struct Metadata<'a>: "rumv3.metadata" {
        /// Labels.
        l: JMap<'a, LabelIn<'a>> = "l" / "Labels",
        /// Service.
        se: MetadataService<'a> = "se" / "Service",
        /// User.
        u: User<'a> = "u" / "User",
        /// Network.
        n: Network<'a> = "n" / "Network",
    }
}

json_struct! {
    /// `m.se`
    pub struct MetadataService<'a>: "rumv3.metadataService" {
        /// Agent.
        a: NameVersion3<'a> = "a" / "Agent",
        /// Environment.
        en: Option<JStr<'a>> = "en" / "Environment",
        /// Framework.
        fw: NameVersion3<'a> = "fw" / "Framework",
        /// Language.
        la: NameVersion3<'a> = "la" / "Language",
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
        /// Runtime.
        ru: NameVersion3<'a> = "ru" / "Runtime",
        /// Version.
        ve: Option<JStr<'a>> = "ve" / "Version",
    }
}

json_struct! {
    /// A name (`n`) and version (`ve`).
    pub struct NameVersion3<'a>: "rumv3.nameVersion" {
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
        /// Version.
        ve: Option<JStr<'a>> = "ve" / "Version",
    }
}

json_struct! {
    /// `u`
    pub struct User<'a>: "rumv3.user" {
        /// Domain.
        ud: Option<JStr<'a>> = "ud" / "Domain",
        /// Id.
        id: Option<JAny> = "id" / "ID",
        /// Email.
        em: Option<JStr<'a>> = "em" / "Email",
        /// User name.
        un: Option<JStr<'a>> = "un" / "Name",
    }
}

json_struct! {
    /// `n`
    pub struct Network<'a>: "rumv3.network" {
        /// Connection.
        c: NetworkConnection<'a> = "c" / "Connection",
    }
}

json_struct! {
    /// `n.c`
    pub struct NetworkConnection<'a>: "rumv3.networkConnection" {
        /// Type.
        t: Option<JStr<'a>> = "t" / "Type",
    }
}

fn nv_max(v: &NameVersion3<'_>) -> VResult {
    max_len(&v.n, 1024, "n")?;
    max_len(&v.ve, 1024, "ve")
}

fn validate_user(u: &User<'_>) -> VResult {
    max_len(&u.ud, 1024, "ud")?;
    string_or_int(&u.id, "id", 1024, false)?;
    max_len(&u.em, 1024, "em")?;
    max_len(&u.un, 1024, "un")
}

/// Validates RUM v3 metadata.
pub fn validate_metadata_root(r: &MetadataRoot<'_>) -> VResult {
    nested(&r.m, "m", |m| {
        labels(&m.l.0, "l")?;
        nested(&m.se, "se", |s| {
            nested(&s.a, "a", |a| {
                max_len(&a.n, 1024, "n")?;
                min_len1(&a.n, "n")?;
                required(&a.n, "n")?;
                max_len(&a.ve, 1024, "ve")?;
                required(&a.ve, "ve")
            })?;
            required(&s.a, "a")?;
            max_len(&s.en, 1024, "en")?;
            nested(&s.fw, "fw", nv_max)?;
            nested(&s.la, "la", |l| {
                max_len(&l.n, 1024, "n")?;
                required(&l.n, "n")?;
                max_len(&l.ve, 1024, "ve")
            })?;
            max_len(&s.n, 1024, "n")?;
            min_len1(&s.n, "n")?;
            alnum_ext(&s.n, "n")?;
            required(&s.n, "n")?;
            nested(&s.ru, "ru", |r| {
                max_len(&r.n, 1024, "n")?;
                required(&r.n, "n")?;
                max_len(&r.ve, 1024, "ve")?;
                required(&r.ve, "ve")
            })?;
            max_len(&s.ve, 1024, "ve")
        })?;
        required(&m.se, "se")?;
        nested(&m.u, "u", validate_user)?;
        nested(&m.n, "n", |n| {
            nested(&n.c, "c", |c| max_len(&c.t, 1024, "t"))
        })
    })?;
    required(&r.m, "m")
}

fn nv<'a>(out: &mut Option<NameVersion<'a>>, v: &NameVersion3<'a>) {
    if v.is_set() {
        let o = out.get_or_insert_with(Default::default);
        set(&mut o.name, &v.n);
        set(&mut o.version, &v.ve);
    }
}

/// Maps validated RUM v3 metadata onto a base event.
pub fn map_metadata<'a>(m: &Metadata<'a>, out: &mut ApmEvent<'a>) {
    global_labels(&m.l.0, out);
    set(&mut out.agent.name, &m.se.a.n);
    set(&mut out.agent.version, &m.se.a.ve);
    let s = &m.se;
    set(&mut out.service.environment, &s.en);
    nv(&mut out.service.framework, &s.fw);
    nv(&mut out.service.language, &s.la);
    set(&mut out.service.name, &s.n);
    nv(&mut out.service.runtime, &s.ru);
    set(&mut out.service.version, &s.ve);
    if m.u.is_set() {
        let u = out.user.get_or_insert_with(Default::default);
        set(&mut u.domain, &m.u.ud);
        if let Some(id) = &m.u.id {
            u.id = Cow::Owned(any_to_string(&id.0));
        }
        set(&mut u.email, &m.u.em);
        set(&mut u.name, &m.u.un);
    }
    if let Some(t) = &m.n.c.t {
        out.network
            .get_or_insert_with(Default::default)
            .connection_type = t.0.clone();
    }
}

// ---------------------------------------------------------------------------------------------
// Context.

json_struct! {
    /// `c` of transactions and errors.
    pub struct Context<'a>: "rumv3.context" {
        /// Custom.
        cu: JObject = "cu" / "Custom",
        /// Labels.
        g: JMap<'a, LabelIn<'a>> = "g" / "Tags",
        /// Service.
        se: ContextService<'a> = "se" / "Service",
        /// User.
        u: User<'a> = "u" / "User",
        /// Request.
        q: ContextRequest<'a> = "q" / "Request",
        /// Page.
        p: ContextPage<'a> = "p" / "Page",
        /// Response.
        r: ContextResponse<'a> = "r" / "Response",
    }
}

json_struct! {
    /// `c.p`
    pub struct ContextPage<'a>: "rumv3.contextPage" {
        /// Referer.
        rf: Option<JStr<'a>> = "rf" / "Referer",
        /// URL.
        url: Option<JStr<'a>> = "url" / "URL",
    }
}

json_struct! {
    /// `c.q`
    pub struct ContextRequest<'a>: "rumv3.contextRequest" {
        /// Env.
        en: JObject = "en" / "Env",
        /// Headers.
        he: JHeaders<'a> = "he" / "Headers",
        /// HTTP version.
        hve: Option<JStr<'a>> = "hve" / "HTTPVersion",
        /// Method.
        mt: Option<JStr<'a>> = "mt" / "Method",
    }
}

json_struct! {
    /// `c.r`
    pub struct ContextResponse<'a>: "rumv3.contextResponse" {
        /// Headers.
        he: JHeaders<'a> = "he" / "Headers",
        /// Decoded body size.
        dbs: Option<JInt> = "dbs" / "DecodedBodySize",
        /// Encoded body size.
        ebs: Option<JInt> = "ebs" / "EncodedBodySize",
        /// Status code.
        sc: Option<JInt> = "sc" / "StatusCode",
        /// Transfer size.
        ts: Option<JInt> = "ts" / "TransferSize",
    }
}

json_struct! {
    /// `c.se`
    pub struct ContextService<'a>: "rumv3.contextService" {
        /// Agent.
        a: NameVersion3<'a> = "a" / "Agent",
        /// Environment.
        en: Option<JStr<'a>> = "en" / "Environment",
        /// Framework.
        fw: NameVersion3<'a> = "fw" / "Framework",
        /// Language.
        la: NameVersion3<'a> = "la" / "Language",
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
        /// Runtime.
        ru: NameVersion3<'a> = "ru" / "Runtime",
        /// Version.
        ve: Option<JStr<'a>> = "ve" / "Version",
    }
}

fn validate_context(c: &Context<'_>) -> VResult {
    labels(&c.g.0, "g")?;
    nested(&c.se, "se", |s| {
        nested(&s.a, "a", nv_max)?;
        max_len(&s.en, 1024, "en")?;
        nested(&s.fw, "fw", nv_max)?;
        nested(&s.la, "la", nv_max)?;
        max_len(&s.n, 1024, "n")?;
        alnum_ext(&s.n, "n")?;
        nested(&s.ru, "ru", nv_max)?;
        max_len(&s.ve, 1024, "ve")
    })?;
    nested(&c.u, "u", validate_user)?;
    nested(&c.q, "q", |q| {
        max_len(&q.hve, 1024, "hve")?;
        max_len(&q.mt, 1024, "mt")?;
        required(&q.mt, "mt")
    })?;
    nested(&c.p, "p", |_| Ok(()))?;
    nested(&c.r, "r", |_| Ok(()))
}

fn map_context_service<'a>(s: &ContextService<'a>, out: &mut Service<'a>) {
    set(&mut out.environment, &s.en);
    nv(&mut out.framework, &s.fw);
    nv(&mut out.language, &s.la);
    if let Some(n) = &s.n {
        out.name = n.0.clone();
        out.version = st(&s.ve);
    }
    nv(&mut out.runtime, &s.ru);
}

fn overwrite_user<'a>(u: &User<'a>, out: &mut ApmEvent<'a>) {
    if !u.is_set() {
        return;
    }
    out.user = Some(super::event::User {
        domain: st(&u.ud),
        id: u
            .id
            .as_ref()
            .map(|i| Cow::Owned(any_to_string(&i.0)))
            .unwrap_or_default(),
        email: st(&u.em),
        name: st(&u.un),
    });
}

fn map_context<'a>(c: &Context<'a>, out: &mut ApmEvent<'a>) {
    if c.se.is_set() {
        map_context_service(&c.se, &mut out.service);
    }
    if c.se.a.is_set() {
        set(&mut out.agent.name, &c.se.a.n);
        set(&mut out.agent.version, &c.se.a.ve);
    }
    overwrite_user(&c.u, out);
    if c.q.he.set {
        user_agent_from_headers(&c.q.he, out);
    }
    if !c.is_set() {
        return;
    }
    merge_labels(&c.g.0, &mut out.labels);
    if c.q.is_set() {
        let http = out.http_mut();
        http.request = Some(HttpRequest {
            method: st(&c.q.mt),
            env: if c.q.en.is_set() {
                Some(c.q.en.0.clone())
            } else {
                None
            },
            headers: if c.q.he.set {
                c.q.he.values.clone()
            } else {
                Vec::new()
            },
            ..Default::default()
        });
        set(&mut http.version, &c.q.hve);
    }
    if c.r.is_set() {
        out.http_mut().response = Some(HttpResponse {
            headers: if c.r.he.set {
                c.r.he.values.clone()
            } else {
                Vec::new()
            },
            status_code: c.r.sc.map_or(0, |v| v.0 as u32),
            transfer_size: c.r.ts.map(|v| v.0 as u64),
            encoded_body_size: c.r.ebs.map(|v| v.0 as u64),
            decoded_body_size: c.r.dbs.map(|v| v.0 as u64),
            ..Default::default()
        });
    }
    if c.p.is_set() {
        if let Some(u) = &c.p.url {
            out.url = Some(parse_url(u.0.clone()));
        }
        if let Some(r) = &c.p.rf {
            out.http_mut()
                .request
                .get_or_insert_with(Default::default)
                .referrer = r.0.clone();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stack frames.

json_struct! {
    /// A RUM stack frame.
    pub struct Frame<'a>: "rumv3.stacktraceFrame" {
        /// Absolute path.
        ap: Option<JStr<'a>> = "ap" / "AbsPath",
        /// Class name.
        cn: Option<JStr<'a>> = "cn" / "Classname",
        /// Context line.
        cli: Option<JStr<'a>> = "cli" / "ContextLine",
        /// File name.
        f: Option<JStr<'a>> = "f" / "Filename",
        /// Function.
        r#fn: Option<JStr<'a>> = "fn" / "Function",
        /// Module.
        mo: Option<JStr<'a>> = "mo" / "Module",
        /// Lines after.
        poc: JVec<JStr<'a>> = "poc" / "PostContext",
        /// Lines before.
        prc: JVec<JStr<'a>> = "prc" / "PreContext",
        /// Column.
        co: Option<JInt> = "co" / "ColumnNumber",
        /// Line.
        li: Option<JInt> = "li" / "LineNumber",
    }
}

fn validate_frames(f: &[Frame<'_>]) -> VResult {
    each(f, "st", |f| required(&f.f, "f"))
}

fn map_frames<'a>(f: &[Frame<'a>]) -> Vec<super::event::Frame<'a>> {
    f.iter()
        .map(|f| super::event::Frame {
            abs_path: st(&f.ap),
            classname: st(&f.cn),
            colno: f.co.map(|v| v.0 as u32),
            context_line: st(&f.cli),
            filename: st(&f.f),
            function: st(&f.r#fn),
            lineno: f.li.map(|v| v.0 as u32),
            module: st(&f.mo),
            post_context: f.poc.iter().map(|s| s.0.clone()).collect(),
            pre_context: f.prc.iter().map(|s| s.0.clone()).collect(),
            ..Default::default()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Errors.

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
    string_or_int(&e.cd, "cd", 1024, false)?;
    each(&e.ca, "ca", validate_exception)?;
    max_len(&e.mo, 1024, "mo")?;
    validate_frames(&e.st)?;
    max_len(&e.t, 1024, "t")
}

/// Validates a RUM v3 error.
pub fn validate_error_root(r: &ErrorRoot<'_>) -> VResult {
    nested(&r.e, "e", |e| {
        any_of(e.ex.is_set() || e.log.is_set(), "ex;log")?;
        nested(&e.log, "log", |l| {
            max_len(&l.lv, 1024, "lv")?;
            max_len(&l.ln, 1024, "ln")?;
            required(&l.mg, "mg")?;
            max_len(&l.pmg, 1024, "pmg")?;
            validate_frames(&l.st)
        })?;
        max_len(&e.cl, 1024, "cl")?;
        max_len(&e.id, 1024, "id")?;
        required(&e.id, "id")?;
        max_len(&e.pid, 1024, "pid")?;
        if e.pid.is_none() {
            if e.xid.is_some() {
                return Err("'pid' required when 'xid' is set".into());
            }
            if e.tid.is_some() {
                return Err("'pid' required when 'tid' is set".into());
            }
        }
        max_len(&e.tid, 1024, "tid")?;
        if e.tid.is_none() {
            if e.xid.is_some() {
                return Err("'tid' required when 'xid' is set".into());
            }
            if e.pid.is_some() {
                return Err("'tid' required when 'pid' is set".into());
            }
        }
        max_len(&e.xid, 1024, "xid")?;
        nested(&e.ex, "ex", validate_exception)?;
        nested(&e.x, "x", |x| {
            max_len(&x.n, 1024, "n")?;
            max_len(&x.t, 1024, "t")
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
    let mut err = super::event::Error::default();
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

// ---------------------------------------------------------------------------------------------
// Transactions with their spans and breakdown metricsets.

json_struct! {
    /// `{"x": {...}}`
    pub struct TransactionRoot<'a>: "rumv3.transactionRoot" {
        /// The transaction.
        x: Transaction3<'a> = "x" / "Transaction",
    }
}

json_struct! {
    /// A RUM transaction.
    pub struct Transaction3<'a>: "rumv3.transaction" {
        /// Marks.
        k: JMap<'a, JMap<'a, JFloat>> = "k" / "Marks",
        /// Trace id.
        tid: Option<JStr<'a>> = "tid" / "TraceID",
        /// Type.
        t: Option<JStr<'a>> = "t" / "Type",
        /// Spans.
        y: JVec<Span3<'a>> = "y" / "Spans",
        /// Metricsets.
        me: JVec<Metricset3<'a>> = "me" / "Metricsets",
        /// Result.
        rt: Option<JStr<'a>> = "rt" / "Result",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
        /// Outcome.
        o: Option<JStr<'a>> = "o" / "Outcome",
        /// Parent id.
        pid: Option<JStr<'a>> = "pid" / "ParentID",
        /// Session.
        ses: Session3<'a> = "ses" / "Session",
        /// Context.
        c: Context<'a> = "c" / "Context",
        /// User experience.
        exp: Experience3<'a> = "exp" / "UserExperience",
        /// Span count.
        yc: SpanCount3<'a> = "yc" / "SpanCount",
        /// Sample rate.
        sr: Option<JFloat> = "sr" / "SampleRate",
        /// Duration.
        d: Option<JFloat> = "d" / "Duration",
        /// Sampled.
        sm: Option<JBool> = "sm" / "Sampled",
    }
}

json_struct! {
    /// `x.ses`
    pub struct Session3<'a>: "rumv3.transactionSession" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Sequence.
        seq: Option<JInt> = "seq" / "Sequence",
    }
}

json_struct! {
    /// `x.exp`
    pub struct Experience3<'a>: "rumv3.transactionUserExperience" {
        /// CLS.
        cls: Option<JFloat> = "cls" / "CumulativeLayoutShift",
        /// FID.
        fid: Option<JFloat> = "fid" / "FirstInputDelay",
        /// TBT.
        tbt: Option<JFloat> = "tbt" / "TotalBlockingTime",
        /// Long tasks.
        lt: Longtask3<'a> = "lt" / "Longtask",
    }
}

json_struct! {
    /// `x.exp.lt`
    pub struct Longtask3<'a>: "rumv3.longtaskMetrics" {
        /// Count.
        count: Option<JInt> = "count" / "Count",
        /// Max.
        max: Option<JFloat> = "max" / "Max",
        /// Sum.
        sum: Option<JFloat> = "sum" / "Sum",
    }
}

json_struct! {
    /// `x.yc`
    pub struct SpanCount3<'a>: "rumv3.transactionSpanCount" {
        /// Dropped.
        dd: Option<JInt> = "dd" / "Dropped",
        /// Started.
        sd: Option<JInt> = "sd" / "Started",
    }
}

json_struct! {
    /// `x.me[]`
    pub struct Metricset3<'a>: "rumv3.transactionMetricset" {
        /// Span reference.
        y: TypeSubtype3<'a> = "y" / "Span",
        /// Samples.
        sa: Samples3<'a> = "sa" / "Samples",
    }
}

json_struct! {
    /// `x.me[].y`
    pub struct TypeSubtype3<'a>: "rumv3.metricsetSpanRef" {
        /// Subtype.
        su: Option<JStr<'a>> = "su" / "Subtype",
        /// Type.
        t: Option<JStr<'a>> = "t" / "Type",
    }
}

json_struct! {
    /// `x.me[].sa`
    pub struct Samples3<'a>: "rumv3.transactionMetricsetSamples" {
        /// Span self-time count.
        ysc: SampleValue3<'a> = "ysc" / "SpanSelfTimeCount",
        /// Span self-time sum.
        yss: SampleValue3<'a> = "yss" / "SpanSelfTimeSum",
    }
}

json_struct! {
    /// A sample value.
    pub struct SampleValue3<'a>: "rumv3.metricsetSampleValue" {
        /// Value.
        v: Option<JFloat> = "v" / "Value",
    }
}

json_struct! {
    /// `x.y[]`
    pub struct Span3<'a>: "rumv3.span" {
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
        /// Stack trace.
        st: JVec<Frame<'a>> = "st" / "Stacktrace",
        /// Type.
        t: Option<JStr<'a>> = "t" / "Type",
        /// Subtype.
        su: Option<JStr<'a>> = "su" / "Subtype",
        /// Action.
        ac: Option<JStr<'a>> = "ac" / "Action",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Outcome.
        o: Option<JStr<'a>> = "o" / "Outcome",
        /// Context.
        c: SpanContext3<'a> = "c" / "Context",
        /// Parent index.
        pi: Option<JInt> = "pi" / "ParentIndex",
        /// Sample rate.
        sr: Option<JFloat> = "sr" / "SampleRate",
        /// Start offset in milliseconds.
        s: Option<JFloat> = "s" / "Start",
        /// Duration in milliseconds.
        d: Option<JFloat> = "d" / "Duration",
        /// Synchronous.
        sy: Option<JBool> = "sy" / "Sync",
    }
}

json_struct! {
    /// `y[].c`
    pub struct SpanContext3<'a>: "rumv3.spanContext" {
        /// Labels.
        g: JMap<'a, LabelIn<'a>> = "g" / "Tags",
        /// Service.
        se: SpanService3<'a> = "se" / "Service",
        /// Destination.
        dt: Destination3<'a> = "dt" / "Destination",
        /// HTTP.
        h: SpanHttp3<'a> = "h" / "HTTP",
    }
}

json_struct! {
    /// `y[].c.se`
    pub struct SpanService3<'a>: "rumv3.spanContextService" {
        /// Agent.
        a: NameVersion3<'a> = "a" / "Agent",
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
    }
}

json_struct! {
    /// `y[].c.dt`
    pub struct Destination3<'a>: "rumv3.spanContextDestination" {
        /// Service.
        se: DestinationService3<'a> = "se" / "Service",
        /// Address.
        ad: Option<JStr<'a>> = "ad" / "Address",
        /// Port.
        po: Option<JInt> = "po" / "Port",
    }
}

json_struct! {
    /// `y[].c.dt.se`
    pub struct DestinationService3<'a>: "rumv3.spanContextDestinationService" {
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
        /// Resource.
        rc: Option<JStr<'a>> = "rc" / "Resource",
        /// Type.
        t: Option<JStr<'a>> = "t" / "Type",
    }
}

json_struct! {
    /// `y[].c.h`
    pub struct SpanHttp3<'a>: "rumv3.spanContextHTTP" {
        /// Method.
        mt: Option<JStr<'a>> = "mt" / "Method",
        /// URL.
        url: Option<JStr<'a>> = "url" / "URL",
        /// Response.
        r: SpanHttpResponse3<'a> = "r" / "Response",
        /// Status code.
        sc: Option<JInt> = "sc" / "StatusCode",
    }
}

json_struct! {
    /// `y[].c.h.r`
    pub struct SpanHttpResponse3<'a>: "rumv3.spanContextHTTPResponse" {
        /// Decoded body size.
        dbs: Option<JInt> = "dbs" / "DecodedBodySize",
        /// Encoded body size.
        ebs: Option<JInt> = "ebs" / "EncodedBodySize",
        /// Transfer size.
        ts: Option<JInt> = "ts" / "TransferSize",
    }
}

/// Validates a RUM v3 transaction with its spans and metricsets.
pub fn validate_transaction_root(r: &TransactionRoot<'_>) -> VResult {
    nested(&r.x, "x", |x| {
        max_len(&x.tid, 1024, "tid")?;
        required(&x.tid, "tid")?;
        max_len(&x.t, 1024, "t")?;
        required(&x.t, "t")?;
        each(&x.y, "y", |s| {
            max_len(&s.n, 1024, "n")?;
            required(&s.n, "n")?;
            validate_frames(&s.st)?;
            max_len(&s.t, 1024, "t")?;
            required(&s.t, "t")?;
            max_len(&s.su, 1024, "su")?;
            max_len(&s.ac, 1024, "ac")?;
            max_len(&s.id, 1024, "id")?;
            required(&s.id, "id")?;
            outcome(&s.o, "o")?;
            nested(&s.c, "c", |c| {
                labels(&c.g.0, "g")?;
                nested(&c.se, "se", |se| {
                    nested(&se.a, "a", nv_max)?;
                    max_len(&se.n, 1024, "n")?;
                    alnum_ext(&se.n, "n")
                })?;
                nested(&c.dt, "dt", |d| {
                    nested(&d.se, "se", |s| {
                        max_len(&s.n, 1024, "n")?;
                        max_len(&s.rc, 1024, "rc")?;
                        required(&s.rc, "rc")?;
                        max_len(&s.t, 1024, "t")
                    })?;
                    max_len(&d.ad, 1024, "ad")
                })?;
                nested(&c.h, "h", |h| {
                    max_len(&h.mt, 1024, "mt")?;
                    nested(&h.r, "r", |_| Ok(()))
                })
            })?;
            required(&s.s, "s")?;
            min_f(s.d.map(|v| v.0), 0.0, "d", "0")?;
            required(&s.d, "d")
        })?;
        each(&x.me, "me", |m| {
            nested(&m.y, "y", |y| {
                max_len(&y.su, 1024, "su")?;
                max_len(&y.t, 1024, "t")
            })?;
            nested(&m.sa, "sa", |sa| {
                nested(&sa.ysc, "ysc", |v| required(&v.v, "v"))?;
                nested(&sa.yss, "yss", |v| required(&v.v, "v"))
            })?;
            required(&m.sa, "sa")
        })?;
        max_len(&x.rt, 1024, "rt")?;
        max_len(&x.id, 1024, "id")?;
        required(&x.id, "id")?;
        max_len(&x.n, 1024, "n")?;
        outcome(&x.o, "o")?;
        max_len(&x.pid, 1024, "pid")?;
        nested(&x.ses, "ses", |s| {
            required(&s.id, "id")?;
            min_f(s.seq.map(|v| v.0 as f64), 1.0, "seq", "1")
        })?;
        nested(&x.c, "c", validate_context)?;
        nested(&x.exp, "exp", |e| {
            min_f(e.cls.map(|v| v.0), 0.0, "cls", "0")?;
            min_f(e.fid.map(|v| v.0), 0.0, "fid", "0")?;
            min_f(e.tbt.map(|v| v.0), 0.0, "tbt", "0")?;
            nested(&e.lt, "lt", |l| {
                min_f(l.count.map(|v| v.0 as f64), 0.0, "count", "0")?;
                required(&l.count, "count")?;
                min_f(l.max.map(|v| v.0), 0.0, "max", "0")?;
                required(&l.max, "max")?;
                min_f(l.sum.map(|v| v.0), 0.0, "sum", "0")?;
                required(&l.sum, "sum")
            })
        })?;
        nested(&x.yc, "yc", |c| required(&c.sd, "sd"))?;
        required(&x.yc, "yc")?;
        min_f(x.d.map(|v| v.0), 0.0, "d", "0")?;
        required(&x.d, "d")
    })?;
    required(&r.x, "x")
}

fn mark_event_name(k: &str) -> Option<&'static str> {
    match k {
        "a" => Some("agent"),
        "nt" => Some("navigationTiming"),
        _ => None,
    }
}

fn mark_measurement_name(k: &str) -> Option<&'static str> {
    Some(match k {
        "ce" => "connectEnd",
        "cs" => "connectStart",
        "dc" => "domComplete",
        "de" => "domContentLoadedEventEnd",
        "di" => "domInteractive",
        "dl" => "domLoading",
        "ds" => "domContentLoadedEventStart",
        "ee" => "loadEventEnd",
        "es" => "loadEventStart",
        "fb" => "timeToFirstByte",
        "fp" => "firstContentfulPaint",
        "fs" => "fetchStart",
        "le" => "domainLookupEnd",
        "lp" => "largestContentfulPaint",
        "ls" => "domainLookupStart",
        "re" => "responseEnd",
        "rs" => "responseStart",
        "qs" => "requestStart",
        _ => return None,
    })
}

/// Maps a validated RUM v3 transaction onto events: the transaction, then its breakdown
/// metricsets (those with known samples), then its spans, each cloned from `base`.
pub fn map_transaction<'a>(x: &Transaction3<'a>, base: &ApmEvent<'a>) -> Vec<ApmEvent<'a>> {
    let mut out = Vec::with_capacity(1 + x.me.len() + x.y.len());
    let mut ev = base.clone();
    ev.kind = Kind::Transaction;
    let mut tx = super::event::Transaction {
        r#type: Cow::Borrowed("unknown"),
        ..Default::default()
    };
    map_context(&x.c, &mut ev);
    if x.c.is_set() && x.c.cu.is_set() {
        tx.custom = Some(x.c.cu.0.clone());
    }
    if let Some(d) = x.d {
        ev.event_mut().duration = ms_to_ns(d.0);
    }
    set(&mut tx.id, &x.id);
    if x.k.is_set() {
        tx.marks = x
            .k
            .0
            .iter()
            .map(|(k, m)| {
                let name = mark_event_name(k).map_or_else(|| k.clone(), Cow::Borrowed);
                let meas =
                    m.0.iter()
                        .map(|(mk, v)| {
                            (
                                mark_measurement_name(mk).map_or_else(|| mk.clone(), Cow::Borrowed),
                                v.0,
                            )
                        })
                        .collect();
                (name, meas)
            })
            .collect();
    }
    set(&mut tx.name, &x.n);
    ev.event_mut().outcome = match (&x.o, x.c.r.sc) {
        (Some(o), _) => o.0.clone(),
        (None, Some(c)) if c.0 >= 500 => Cow::Borrowed("failure"),
        (None, Some(_)) => Cow::Borrowed("success"),
        (None, None) => Cow::Borrowed("unknown"),
    };
    set(&mut ev.parent_id, &x.pid);
    set(&mut tx.result, &x.rt);
    tx.sampled = x.sm.is_none_or(|s| s.0);
    tx.representative_count = match x.sr {
        Some(r) if r.0 > 0.0 => 1.0 / r.0,
        Some(_) => 0.0,
        None => 1.0,
    };
    if let Some(id) = &x.ses.id {
        ev.session = Some(Session {
            id: id.0.clone(),
            sequence: x.ses.seq.map_or(0, |s| s.0 as u64),
        });
    }
    if x.yc.dd.is_some() || x.yc.sd.is_some() {
        tx.span_count = Some(SpanCount {
            dropped: x.yc.dd.map(|v| v.0 as u32),
            started: x.yc.sd.map(|v| v.0 as u32),
        });
    }
    set(&mut ev.trace_id, &x.tid);
    set(&mut tx.r#type, &x.t);
    if x.exp.is_set() {
        let e = &x.exp;
        tx.user_experience = Some(UserExperience {
            cls: e.cls.map_or(-1.0, |v| v.0),
            fid: e.fid.map_or(-1.0, |v| v.0),
            tbt: e.tbt.map_or(-1.0, |v| v.0),
            longtask: if e.lt.is_set() {
                Some((
                    e.lt.count.map_or(0, |v| v.0 as u64),
                    e.lt.sum.map_or(0.0, |v| v.0),
                    e.lt.max.map_or(0.0, |v| v.0),
                ))
            } else {
                None
            },
        });
    }
    let (tx_id, tx_name, tx_type) = (tx.id.clone(), tx.name.clone(), tx.r#type.clone());
    ev.transaction = Some(tx);
    let trace_id = ev.trace_id.clone();
    out.push(ev);

    for m in x.me.iter() {
        let mut ev = base.clone();
        ev.kind = Kind::Metric;
        ev.transaction = Some(super::event::Transaction {
            name: tx_name.clone(),
            r#type: tx_type.clone(),
            ..Default::default()
        });
        let mut ok = false;
        if m.y.is_set() {
            let sp = ev.span_mut();
            set(&mut sp.subtype, &m.y.su);
            set(&mut sp.r#type, &m.y.t);
            if m.sa.is_set() {
                if let Some(v) = m.sa.ysc.v {
                    sp.self_time.get_or_insert((0, 0)).0 = v.0 as u64;
                    ok = true;
                }
                if let Some(v) = m.sa.yss.v {
                    sp.self_time.get_or_insert((0, 0)).1 = (v.0 * 1000.0) as u64;
                    ok = true;
                }
            }
        }
        // The v3 decoder leaves the metricset name empty; the span_breakdown name comes from the
        // v2 decoder only.
        ev.metricset = Some(Metricset {
            name: "",
            samples: Vec::new(),
        });
        if ok {
            out.push(ev);
        }
    }

    let first_span = out.len();
    for s in x.y.iter() {
        let mut ev = base.clone();
        map_span(s, &mut ev);
        ev.transaction = Some(super::event::Transaction {
            id: tx_id.clone(),
            ..Default::default()
        });
        ev.parent_id = tx_id.clone();
        ev.trace_id = trace_id.clone();
        out.push(ev);
    }
    for (i, s) in x.y.iter().enumerate() {
        if let Some(pi) = s.pi {
            if pi.0 >= 0 && (pi.0 as usize) < x.y.len() {
                let parent = out[first_span + pi.0 as usize]
                    .span
                    .as_ref()
                    .map(|s| s.id.clone())
                    .unwrap_or_default();
                out[first_span + i].parent_id = parent;
            }
        }
    }
    out
}

fn map_span<'a>(s: &Span3<'a>, ev: &mut ApmEvent<'a>) {
    ev.kind = Kind::Span;
    let mut sp = super::event::Span {
        r#type: Cow::Borrowed("unknown"),
        ..Default::default()
    };
    if s.ac.is_none() && s.su.is_none() {
        if let Some(t) = &s.t {
            let mut tmp = super::event::Span::default();
            split_type(Some(&t.0), &mut tmp);
            if !tmp.r#type.is_empty() {
                sp.r#type = tmp.r#type;
            }
            sp.subtype = tmp.subtype;
            sp.action = tmp.action;
        }
    } else {
        set(&mut sp.action, &s.ac);
        set(&mut sp.subtype, &s.su);
        set(&mut sp.r#type, &s.t);
    }
    let c = &s.c;
    if c.dt.ad.is_some() || c.dt.po.is_some() {
        let d = ev.destination.get_or_insert_with(Default::default);
        set(&mut d.address, &c.dt.ad);
        if let Some(p) = c.dt.po {
            d.port = p.0 as u32;
        }
    }
    if c.dt.se.is_set() {
        sp.destination_service = Some(DestinationService {
            name: st(&c.dt.se.n),
            resource: st(&c.dt.se.rc),
            r#type: st(&c.dt.se.t),
        });
    }
    if c.h.is_set() {
        if let Some(m) = &c.h.mt {
            ev.http_mut().request = Some(HttpRequest {
                method: m.0.clone(),
                ..Default::default()
            });
        }
        if let Some(code) = c.h.sc {
            ev.http_mut()
                .response
                .get_or_insert_with(Default::default)
                .status_code = code.0 as u32;
        }
        if let Some(u) = &c.h.url {
            ev.url.get_or_insert_with(Default::default).original = u.0.clone();
        }
        if c.h.r.is_set() {
            let r = ev.http_mut().response.get_or_insert_with(Default::default);
            r.decoded_body_size = c.h.r.dbs.map(|v| v.0 as u64);
            r.encoded_body_size = c.h.r.ebs.map(|v| v.0 as u64);
            r.transfer_size = c.h.r.ts.map(|v| v.0 as u64);
        }
    }
    if let Some(n) = &c.se.n {
        ev.service.name = n.0.clone();
    }
    merge_labels(&c.g.0, &mut ev.labels);
    if let Some(d) = s.d {
        ev.event_mut().duration = ms_to_ns(d.0);
    }
    set(&mut sp.id, &s.id);
    set(&mut sp.name, &s.n);
    ev.event_mut().outcome = match (&s.o, c.h.sc) {
        (Some(o), _) => o.0.clone(),
        (None, Some(code)) if code.0 >= 400 => Cow::Borrowed("failure"),
        (None, Some(_)) => Cow::Borrowed("success"),
        (None, None) => Cow::Borrowed("unknown"),
    };
    if let Some(r) = s.sr {
        if r.0 > 0.0 {
            sp.representative_count = 1.0 / r.0;
        }
    }
    sp.stacktrace = map_frames(&s.st);
    sp.sync = s.sy.map(|b| b.0);
    if let Some(start) = s.s {
        ev.timestamp += ms_to_ns_signed(start.0);
    }
    ev.span = Some(sp);
}
