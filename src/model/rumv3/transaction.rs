//! RUM v3 transactions (`x`) with their embedded spans (`y`) and breakdown metricsets (`me`):
//! wire types, validation and mapping (one transaction line gives several events).

use std::borrow::Cow;

use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{
    IsSet, JBool, JFloat, JInt, JMap, JStr, JVec, LabelIn, RumV3, json_struct,
};
use crate::model::map::*;
use crate::model::v2::{
    Context, Frame, NameVersionIn, map_context_identity, map_frames, map_http_context,
    validate_frames,
};

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
        c: Context<'a, RumV3> = "c" / "Context",
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
        st: JVec<Frame<'a, RumV3>> = "st" / "Stacktrace",
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
        a: NameVersionIn<'a, RumV3> = "a" / "Agent",
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
        max_len(&x.tid, KEYWORD_MAX_LENGTH, "tid")?;
        required(&x.tid, "tid")?;
        max_len(&x.t, KEYWORD_MAX_LENGTH, "t")?;
        required(&x.t, "t")?;
        each(&x.y, "y", |s| {
            max_len(&s.n, KEYWORD_MAX_LENGTH, "n")?;
            required(&s.n, "n")?;
            validate_frames(&s.st, "st")?;
            max_len(&s.t, KEYWORD_MAX_LENGTH, "t")?;
            required(&s.t, "t")?;
            max_len(&s.su, KEYWORD_MAX_LENGTH, "su")?;
            max_len(&s.ac, KEYWORD_MAX_LENGTH, "ac")?;
            max_len(&s.id, KEYWORD_MAX_LENGTH, "id")?;
            required(&s.id, "id")?;
            outcome(&s.o, "o")?;
            nested(&s.c, "c", |c| {
                labels(&c.g.0, "g")?;
                nested(&c.se, "se", |se| {
                    nested(&se.a, "a", NameVersionIn::lengths)?;
                    max_len(&se.n, KEYWORD_MAX_LENGTH, "n")?;
                    alnum_ext(&se.n, "n")
                })?;
                nested(&c.dt, "dt", |d| {
                    nested(&d.se, "se", |s| {
                        max_len(&s.n, KEYWORD_MAX_LENGTH, "n")?;
                        max_len(&s.rc, KEYWORD_MAX_LENGTH, "rc")?;
                        required(&s.rc, "rc")?;
                        max_len(&s.t, KEYWORD_MAX_LENGTH, "t")
                    })?;
                    max_len(&d.ad, KEYWORD_MAX_LENGTH, "ad")
                })?;
                nested(&c.h, "h", |h| {
                    max_len(&h.mt, KEYWORD_MAX_LENGTH, "mt")?;
                    nested(&h.r, "r", |_| Ok(()))
                })
            })?;
            required(&s.s, "s")?;
            min_f(s.d.map(|v| v.0), 0.0, "d", "0")?;
            max_duration(s.d.map(|v| v.0), "d")?;
            required(&s.d, "d")
        })?;
        each(&x.me, "me", |m| {
            nested(&m.y, "y", |y| {
                max_len(&y.su, KEYWORD_MAX_LENGTH, "su")?;
                max_len(&y.t, KEYWORD_MAX_LENGTH, "t")
            })?;
            nested(&m.sa, "sa", |sa| {
                nested(&sa.ysc, "ysc", |v| required(&v.v, "v"))?;
                nested(&sa.yss, "yss", |v| required(&v.v, "v"))
            })?;
            required(&m.sa, "sa")
        })?;
        max_len(&x.rt, KEYWORD_MAX_LENGTH, "rt")?;
        max_len(&x.id, KEYWORD_MAX_LENGTH, "id")?;
        required(&x.id, "id")?;
        max_len(&x.n, KEYWORD_MAX_LENGTH, "n")?;
        outcome(&x.o, "o")?;
        max_len(&x.pid, KEYWORD_MAX_LENGTH, "pid")?;
        nested(&x.ses, "ses", |s| {
            required(&s.id, "id")?;
            min_f(s.seq.map(|v| v.0 as f64), 1.0, "seq", "1")
        })?;
        nested(&x.c, "c", Context::validate)?;
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
        max_duration(x.d.map(|v| v.0), "d")?;
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
    let mut tx = crate::model::event::Transaction {
        r#type: Cow::Borrowed("unknown"),
        ..Default::default()
    };
    map_context_identity(&x.c, &mut ev);
    if x.c.is_set() {
        if x.c.custom.is_set() {
            tx.custom = Some(x.c.custom.0.clone());
        }
        merge_labels(&x.c.tags.0, &mut ev.labels);
        map_http_context(&x.c, &mut ev, false);
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
    ev.event_mut().outcome = match (&x.o, x.c.response.status_code) {
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
        ev.transaction = Some(crate::model::event::Transaction {
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
            ..Default::default()
        });
        if ok {
            out.push(ev);
        }
    }

    let first_span = out.len();
    for s in x.y.iter() {
        let mut ev = base.clone();
        map_span(s, &mut ev);
        ev.transaction = Some(crate::model::event::Transaction {
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
    let mut sp = crate::model::event::Span {
        r#type: Cow::Borrowed("unknown"),
        ..Default::default()
    };
    if s.ac.is_none() && s.su.is_none() {
        if let Some(t) = &s.t {
            let mut tmp = crate::model::event::Span::default();
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
            response_time: None,
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
        // Saturating: an absurd offset gives an absurd time, never an overflow.
        ev.timestamp = ev.timestamp.saturating_add(ms_to_ns_signed(start.0));
    }
    ev.span = Some(sp);
}
