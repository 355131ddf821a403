//! What a RUM v3 transaction embeds: its spans (`y`) and its breakdown metricsets (`me`), each
//! becoming a document of its own: wire types, validation and mapping.
//!
//! Their destination, HTTP, stack frame and span type objects are declared once with v2's
//! (`model::v2`); the span itself and its context are RUM v3's own shape.

use std::borrow::Cow;

use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{
    IsSet, JBool, JFloat, JInt, JMap, JStr, JVec, LabelIn, RumV3, json_struct,
};
use crate::model::map::*;
use crate::model::v2::{
    Frame, NameVersionIn, SpanDestination, SpanHttp, TypeSubtype, map_destination, map_frames,
    map_span_http, validate_frames,
};

json_struct! {
    /// `x.me[]`: a breakdown metricset, the self time of the transaction's spans of one type.
    pub struct Metricset3<'a>: "rumv3.transactionMetricset" {
        /// The spans' type and subtype (`span.type`, `span.subtype`).
        y: TypeSubtype<'a, RumV3> = "y" / "Span",
        /// The self time (required).
        sa: Samples3<'a> = "sa" / "Samples",
    }
}

json_struct! {
    /// `x.me[].sa`: the two samples a breakdown metricset carries.
    pub struct Samples3<'a>: "rumv3.transactionMetricsetSamples" {
        /// `span.self_time.count`.
        ysc: SampleValue3<'a> = "ysc" / "SpanSelfTimeCount",
        /// `span.self_time.sum.us`, sent in milliseconds.
        yss: SampleValue3<'a> = "yss" / "SpanSelfTimeSum",
    }
}

json_struct! {
    /// One sample of a breakdown metricset.
    pub struct SampleValue3<'a>: "rumv3.metricsetSampleValue" {
        /// Its value (required).
        v: Option<JFloat> = "v" / "Value",
    }
}

json_struct! {
    /// `x.y[]`: a span of the transaction; its trace and parent come from the transaction.
    pub struct Span3<'a>: "rumv3.span" {
        /// `span.name` (required).
        n: Option<JStr<'a>> = "n" / "Name",
        /// Where the span started, innermost frame first.
        st: JVec<Frame<'a, RumV3>> = "st" / "Stacktrace",
        /// `span.type` (required); split on dots into type, subtype and action when neither of
        /// those is sent.
        t: Option<JStr<'a>> = "t" / "Type",
        /// `span.subtype`, e.g. `http`.
        su: Option<JStr<'a>> = "su" / "Subtype",
        /// `span.action`.
        ac: Option<JStr<'a>> = "ac" / "Action",
        /// `span.id` (required).
        id: Option<JStr<'a>> = "id" / "ID",
        /// `event.outcome`; from the HTTP status code when absent.
        o: Option<JStr<'a>> = "o" / "Outcome",
        /// What the span called.
        c: SpanContext3<'a> = "c" / "Context",
        /// The index in `y` of the span's parent span; the transaction when absent.
        pi: Option<JInt> = "pi" / "ParentIndex",
        /// The sampling rate in effect; its inverse is the span's representative count.
        sr: Option<JFloat> = "sr" / "SampleRate",
        /// The start, in milliseconds after the transaction's (required).
        s: Option<JFloat> = "s" / "Start",
        /// The duration in milliseconds (`span.duration.us`; required).
        d: Option<JFloat> = "d" / "Duration",
        /// `span.sync`: whether the span ran synchronously.
        sy: Option<JBool> = "sy" / "Sync",
    }
}

json_struct! {
    /// `y[].c`: what a span called.
    pub struct SpanContext3<'a>: "rumv3.spanContext" {
        /// The span's labels (`labels.*`, `numeric_labels.*`).
        g: JMap<'a, LabelIn<'a>> = "g" / "Tags",
        /// The service, when the span's differs from the metadata's.
        se: SpanService3<'a> = "se" / "Service",
        /// The destination (`destination.*`, `span.destination.service.*`).
        dt: SpanDestination<'a, RumV3> = "dt" / "Destination",
        /// The HTTP request the span sent (`http.*`, `url.original`).
        h: SpanHttp<'a, RumV3> = "h" / "HTTP",
    }
}

json_struct! {
    /// `y[].c.se`: the service of a span.
    pub struct SpanService3<'a>: "rumv3.spanContextService" {
        /// The agent; validated, not indexed.
        a: NameVersionIn<'a, RumV3> = "a" / "Agent",
        /// `service.name`.
        n: Option<JStr<'a>> = "n" / "Name",
    }
}

/// Validates a span of a RUM v3 transaction as APM Server does.
pub(super) fn validate_span(s: &Span3<'_>) -> VResult {
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
        nested(&c.dt, "dt", SpanDestination::validate)?;
        nested(&c.h, "h", SpanHttp::validate)
    })?;
    required(&s.s, "s")?;
    min_f(s.d.map(|v| v.0), 0.0, "d", "0")?;
    max_duration(s.d.map(|v| v.0), "d")?;
    required(&s.d, "d")
}

/// Validates a breakdown metricset of a RUM v3 transaction as APM Server does.
pub(super) fn validate_metricset(m: &Metricset3<'_>) -> VResult {
    nested(&m.y, "y", |y| {
        max_len(&y.subtype, KEYWORD_MAX_LENGTH, "su")?;
        max_len(&y.r#type, KEYWORD_MAX_LENGTH, "t")
    })?;
    nested(&m.sa, "sa", |sa| {
        nested(&sa.ysc, "ysc", |v| required(&v.v, "v"))?;
        nested(&sa.yss, "yss", |v| required(&v.v, "v"))
    })?;
    required(&m.sa, "sa")
}

/// Maps a breakdown metricset onto `ev` (a clone of the base event with the transaction's name
/// and type); `false` when it has no known sample and APM Server drops it.
pub(super) fn map_metricset<'a>(m: &Metricset3<'a>, ev: &mut ApmEvent<'a>) -> bool {
    ev.kind = Kind::Metric;
    let mut ok = false;
    if m.y.is_set() {
        let sp = ev.span_mut();
        set(&mut sp.subtype, &m.y.subtype);
        set(&mut sp.r#type, &m.y.r#type);
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
    ok
}

/// Maps a span of a RUM v3 transaction onto `ev` (a clone of the base event).
pub(super) fn map_span<'a>(s: &mut Span3<'a>, ev: &mut ApmEvent<'a>) {
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
    map_destination(&c.dt, ev, &mut sp);
    map_span_http(&c.h, ev);
    if let Some(n) = &c.se.n {
        ev.service.name = n.0.clone();
    }
    merge_labels(&c.g.0, &mut ev.labels);
    if let Some(d) = s.d {
        ev.event_mut().duration = ms_to_ns(d.0);
    }
    set(&mut sp.id, &s.id);
    set(&mut sp.name, &s.n);
    ev.event_mut().outcome = event_outcome(&s.o, c.h.status_code, 400);
    if let Some(r) = s.sr {
        if r.0 > 0.0 {
            sp.representative_count = 1.0 / r.0;
        }
    }
    sp.stacktrace = map_frames(&mut s.st.0);
    sp.sync = s.sy.map(|b| b.0);
    if let Some(start) = s.s {
        // Saturating: an absurd offset gives an absurd time, never an overflow.
        ev.timestamp = ev.timestamp.saturating_add(ms_to_ns_signed(start.0));
    }
    ev.span = Some(sp);
}
