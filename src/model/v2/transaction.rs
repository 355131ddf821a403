//! `transaction` events (`x` in RUM v3), one declaration for both protocols: wire types (with
//! FaaS, dropped span statistics, and RUM v3's embedded spans and metricsets), v2's validation,
//! and the mapping both share.

use std::borrow::Cow;

use super::context::{Context, map_context_identity, map_http_context, map_message};
use super::span::{Otel, SpanLinkIn, map_otel_and_links, validate_links};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{
    IsSet, JBool, JFloat, JInt, JMap, JStr, JTime, JVec, Protocol, json_struct,
};
use crate::model::map::*;
use crate::model::rumv3::{Metricset3, Span3};

json_struct! {
    /// A transaction line: `{"transaction": {...}}`, in RUM v3 `{"x": {...}}`.
    pub struct TransactionRoot<'a, P>: "v2.transactionRoot" | "rumv3.transactionRoot" {
        /// The transaction (required).
        transaction: TransactionIn<'a, P> = "transaction" | "x" / "Transaction",
    }
}

json_struct! {
    /// A transaction: one unit of work of a service, e.g. a request served or a page load.
    /// RUM v3 embeds the transaction's spans and breakdown metrics in it.
    pub struct TransactionIn<'a, P>: "v2.transaction" | "rumv3.transaction" {
        /// Browser navigation timing marks in milliseconds by group and name
        /// (`transaction.marks.*`).
        marks: JMap<'a, JMap<'a, JFloat>> = "marks" | "k" / "Marks",
        /// `@timestamp`; the request's receipt time when absent (v2 only).
        timestamp: Option<JTime> = "timestamp" | _ / "Timestamp",
        /// What the agent's OpenTelemetry bridge sends (v2 only).
        otel: Otel<'a> = "otel" | _ / "OTel",
        /// Links to spans of other traces (`span.links`; v2 only).
        links: JVec<SpanLinkIn<'a>> = "links" | _ / "Links",
        /// `trace.id` (required).
        trace_id: Option<JStr<'a>> = "trace_id" | "tid" / "TraceID",
        /// `transaction.id` (required).
        id: Option<JStr<'a>> = "id" | "id" / "ID",
        /// `parent.id`: the span that started this transaction, if any.
        parent_id: Option<JStr<'a>> = "parent_id" | "pid" / "ParentID",
        /// `transaction.name`, e.g. `GET /users/:id`; transactions are grouped by it.
        name: Option<JStr<'a>> = "name" | "n" / "Name",
        /// `transaction.type`, e.g. `request` or `page-load` (required).
        r#type: Option<JStr<'a>> = "type" | "t" / "Type",
        /// `transaction.result`, e.g. `HTTP 2xx`.
        result: Option<JStr<'a>> = "result" | "rt" / "Result",
        /// What the spans the agent dropped would have recorded (v2 only).
        dropped_spans_stats: JVec<DroppedSpanStats<'a>> = "dropped_spans_stats" | _ / "DroppedSpanStats",
        /// `event.outcome`: `success`, `failure` or `unknown`; from the response's status code
        /// when absent.
        outcome: Option<JStr<'a>> = "outcome" | "o" / "Outcome",
        /// The function invocation the transaction is (`faas.*`; v2 only).
        faas: FaasIn<'a> = "faas" | _ / "FAAS",
        /// The user's browser session (`session.*`).
        session: SessionIn<'a, P> = "session" | "ses" / "Session",
        /// The request, user and service the transaction ran with.
        context: Context<'a, P> = "context" | "c" / "Context",
        /// Web vitals of a page load (`transaction.experience.*`).
        experience: Experience<'a, P> = "experience" | "exp" / "UserExperience",
        /// How many spans the transaction started and dropped (required).
        span_count: SpanCountIn<'a, P> = "span_count" | "yc" / "SpanCount",
        /// The sampling rate in effect; its inverse is the transaction's representative count.
        sample_rate: Option<JFloat> = "sample_rate" | "sr" / "SampleRate",
        /// The duration in milliseconds (`transaction.duration.us`; required).
        duration: Option<JFloat> = "duration" | "d" / "Duration",
        /// `transaction.sampled`; an unsampled transaction is counted, not indexed.
        sampled: Option<JBool> = "sampled" | "sm" / "Sampled",
        /// The transaction's spans, each a document of its own (RUM v3 only).
        spans: JVec<Span3<'a>> = _ | "y" / "Spans",
        /// The transaction's breakdown metrics (RUM v3 only).
        metricsets: JVec<Metricset3<'a>> = _ | "me" / "Metricsets",
    }
}

json_struct! {
    /// `dropped_spans_stats[]`: what the spans the agent dropped to one destination and with one
    /// outcome would have recorded (service destination metrics).
    pub struct DroppedSpanStats<'a>: "v2.transactionDroppedSpanStats" {
        /// The destination's resource, e.g. `mysql`.
        destination_service_resource: Option<JStr<'a>> = "destination_service_resource" / "DestinationServiceResource",
        /// The target's type, e.g. `mysql`.
        service_target_type: Option<JStr<'a>> = "service_target_type" / "ServiceTargetType",
        /// The target's name, e.g. a database name.
        service_target_name: Option<JStr<'a>> = "service_target_name" / "ServiceTargetName",
        /// The spans' outcome.
        outcome: Option<JStr<'a>> = "outcome" / "Outcome",
        /// How many spans, and how long they took together.
        duration: DroppedDuration<'a> = "duration" / "Duration",
    }
}

json_struct! {
    /// `dropped_spans_stats[].duration`: the dropped spans' count and total duration.
    pub struct DroppedDuration<'a>: "v2.transactionDroppedSpansDuration" {
        /// How many spans were dropped, at least 1.
        count: Option<JInt> = "count" / "Count",
        /// Their total duration.
        sum: DroppedSum<'a> = "sum" / "Sum",
    }
}

json_struct! {
    /// `dropped_spans_stats[].duration.sum`: a total duration.
    pub struct DroppedSum<'a>: "v2.transactionDroppedSpansDurationSum" {
        /// In microseconds.
        us: Option<JInt> = "us" / "Us",
    }
}

json_struct! {
    /// `faas`: the serverless function invocation an event belongs to.
    pub struct FaasIn<'a>: "v2.faas" {
        /// `faas.id`: the function's unique id, e.g. its ARN.
        id: Option<JStr<'a>> = "id" / "ID",
        /// `faas.execution`: the invocation's id.
        execution: Option<JStr<'a>> = "execution" / "Execution",
        /// What triggered the invocation (`faas.trigger.*`).
        trigger: Trigger<'a> = "trigger" / "Trigger",
        /// `faas.name`.
        name: Option<JStr<'a>> = "name" / "Name",
        /// `faas.version`.
        version: Option<JStr<'a>> = "version" / "Version",
        /// `faas.coldstart`: whether the invocation started the function.
        coldstart: Option<JBool> = "coldstart" / "Coldstart",
    }
}

json_struct! {
    /// `faas.trigger`: what triggered a function invocation.
    pub struct Trigger<'a>: "v2.trigger" {
        /// `faas.trigger.type`, e.g. `http` or `pubsub`.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// `faas.trigger.request_id`.
        request_id: Option<JStr<'a>> = "request_id" / "RequestID",
    }
}

json_struct! {
    /// `session`: the user's browser session.
    pub struct SessionIn<'a, P>: "v2.transactionSession" | "rumv3.transactionSession" {
        /// `session.id` (required).
        id: Option<JStr<'a>> = "id" | "id" / "ID",
        /// `session.sequence`: the transaction's place in the session, from 1.
        sequence: Option<JInt> = "sequence" | "seq" / "Sequence",
    }
}

json_struct! {
    /// `experience`: web vitals of a page load; each not measured is written as -1.
    pub struct Experience<'a, P>: "v2.transactionUserExperience" | "rumv3.transactionUserExperience" {
        /// `transaction.experience.cls`: cumulative layout shift.
        cls: Option<JFloat> = "cls" | "cls" / "CumulativeLayoutShift",
        /// `transaction.experience.fid`: first input delay, in milliseconds.
        fid: Option<JFloat> = "fid" | "fid" / "FirstInputDelay",
        /// `transaction.experience.longtask.*`: tasks that blocked the main thread.
        longtask: Longtask<'a, P> = "longtask" | "lt" / "Longtask",
        /// `transaction.experience.tbt`: total blocking time, in milliseconds.
        tbt: Option<JFloat> = "tbt" | "tbt" / "TotalBlockingTime",
    }
}

json_struct! {
    /// `experience.longtask`: the page's long tasks, all three required.
    pub struct Longtask<'a, P>: "v2.longtaskMetrics" | "rumv3.longtaskMetrics" {
        /// How many there were.
        count: Option<JInt> = "count" | "count" / "Count",
        /// The longest, in milliseconds.
        max: Option<JFloat> = "max" | "max" / "Max",
        /// Their total, in milliseconds.
        sum: Option<JFloat> = "sum" | "sum" / "Sum",
    }
}

json_struct! {
    /// `span_count`: the transaction's spans (`transaction.span_count.*`).
    pub struct SpanCountIn<'a, P>: "v2.transactionSpanCount" | "rumv3.transactionSpanCount" {
        /// How many spans the agent dropped, e.g. over its limit.
        dropped: Option<JInt> = "dropped" | "dd" / "Dropped",
        /// How many spans the transaction started (required).
        started: Option<JInt> = "started" | "sd" / "Started",
    }
}

impl<P: Protocol> Longtask<'_, P> {
    /// Validates a page's long tasks as APM Server does.
    fn validate(&self) -> VResult {
        min_f(self.count.map(|v| v.0 as f64), 0.0, Self::count, "0")?;
        required(&self.count, Self::count)?;
        min_f(self.max.map(|v| v.0), 0.0, Self::max, "0")?;
        required(&self.max, Self::max)?;
        min_f(self.sum.map(|v| v.0), 0.0, Self::sum, "0")?;
        required(&self.sum, Self::sum)
    }
}

/// Validates a transaction as APM Server does.
pub fn validate_transaction_root(r: &TransactionRoot<'_>) -> VResult {
    nested(&r.transaction, "transaction", |t| {
        nested(&t.otel, "otel", |_| Ok(()))?;
        validate_links(&t.links)?;
        max_len(&t.trace_id, KEYWORD_MAX_LENGTH, "trace_id")?;
        required(&t.trace_id, "trace_id")?;
        max_len(&t.id, KEYWORD_MAX_LENGTH, "id")?;
        required(&t.id, "id")?;
        max_len(&t.parent_id, KEYWORD_MAX_LENGTH, "parent_id")?;
        max_len(&t.name, KEYWORD_MAX_LENGTH, "name")?;
        max_len(&t.r#type, KEYWORD_MAX_LENGTH, "type")?;
        required(&t.r#type, "type")?;
        max_len(&t.result, KEYWORD_MAX_LENGTH, "result")?;
        each(&t.dropped_spans_stats, "dropped_spans_stats", |d| {
            max_len(
                &d.destination_service_resource,
                KEYWORD_MAX_LENGTH,
                "destination_service_resource",
            )?;
            max_len(
                &d.service_target_type,
                SERVICE_TARGET_MAX_LENGTH,
                "service_target_type",
            )?;
            max_len(
                &d.service_target_name,
                SERVICE_TARGET_MAX_LENGTH,
                "service_target_name",
            )?;
            outcome(&d.outcome, "outcome")?;
            nested(&d.duration, "duration", |d| {
                min_f(d.count.map(|c| c.0 as f64), 1.0, "count", "1")?;
                nested(&d.sum, "sum", |s| {
                    min_f(s.us.map(|c| c.0 as f64), 0.0, "us", "0")
                })
            })
        })?;
        outcome(&t.outcome, "outcome")?;
        nested(&t.faas, "faas", |_| Ok(()))?;
        t.validate_session_to_duration()
    })?;
    required(&r.transaction, "transaction")
}

impl<P: Protocol> TransactionIn<'_, P> {
    /// The checks both protocols make last, in the same order: session, context, experience,
    /// span count, duration.
    pub(crate) fn validate_session_to_duration(&self) -> VResult {
        nested(&self.session, Self::session, SessionIn::validate)?;
        nested(&self.context, Self::context, Context::validate)?;
        nested(&self.experience, Self::experience, Experience::validate)?;
        nested(&self.span_count, Self::span_count, |c| {
            required(&c.started, SpanCountIn::<P>::started)
        })?;
        required(&self.span_count, Self::span_count)?;
        min_f(self.duration.map(|v| v.0), 0.0, Self::duration, "0")?;
        max_duration(self.duration.map(|v| v.0), Self::duration)?;
        required(&self.duration, Self::duration)
    }
}

impl<P: Protocol> SessionIn<'_, P> {
    fn validate(&self) -> VResult {
        // APM Server's RUM v3 decoder does not check the id's length.
        if !P::RUM_V3 {
            max_len(&self.id, KEYWORD_MAX_LENGTH, Self::id)?;
        }
        required(&self.id, Self::id)?;
        min_f(self.sequence.map(|c| c.0 as f64), 1.0, Self::sequence, "1")
    }
}

impl<P: Protocol> Experience<'_, P> {
    fn validate(&self) -> VResult {
        min_f(self.cls.map(|v| v.0), 0.0, Self::cls, "0")?;
        min_f(self.fid.map(|v| v.0), 0.0, Self::fid, "0")?;
        // APM Server's v2 decoder checks the long tasks before the total blocking time, its RUM
        // v3 decoder after.
        if P::RUM_V3 {
            min_f(self.tbt.map(|v| v.0), 0.0, Self::tbt, "0")?;
            nested(&self.longtask, Self::longtask, Longtask::validate)
        } else {
            nested(&self.longtask, Self::longtask, Longtask::validate)?;
            min_f(self.tbt.map(|v| v.0), 0.0, Self::tbt, "0")
        }
    }
}

pub(super) fn map_faas<'a>(f: &FaasIn<'a>, out: &mut ApmEvent<'a>) {
    if !f.is_set() {
        return;
    }
    let faas = out.faas.get_or_insert_with(Default::default);
    set(&mut faas.id, &f.id);
    if let Some(c) = f.coldstart {
        faas.coldstart = Some(c.0);
    }
    set(&mut faas.execution, &f.execution);
    set(&mut faas.trigger_type, &f.trigger.r#type);
    set(&mut faas.trigger_request_id, &f.trigger.request_id);
    set(&mut faas.name, &f.name);
    set(&mut faas.version, &f.version);
}

/// Maps a validated transaction onto `out` (a clone of the base event); RUM v3's embedded spans
/// and metricsets are `rumv3::map_transaction`'s.
pub fn map_transaction<'a, P: Protocol>(t: &mut TransactionIn<'a, P>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Transaction;
    let mut tx = crate::model::event::Transaction::default();
    map_context_identity(&t.context, out);
    map_faas(&t.faas, out);
    if t.context.cloud.is_set() {
        let o = &t.context.cloud.origin;
        out.cloud.get_or_insert_with(Default::default).origin = Some(CloudOrigin {
            account_id: st(&o.account.id),
            provider: st(&o.provider),
            region: st(&o.region),
            service_name: st(&o.service.name),
        });
    }
    let c = &mut t.context;
    if c.is_set() {
        if c.custom.is_set() {
            tx.custom = Some(std::mem::take(&mut c.custom.0));
        }
        merge_labels(&c.tags.0, &mut out.labels);
        if c.message.is_set() {
            tx.message = Some(map_message(&mut c.message));
        }
        map_http_context(c, out, false);
    }
    if let Some(d) = t.duration {
        out.event_mut().duration = ms_to_ns(d.0);
    }
    if let Some(id) = &t.id {
        tx.id = id.0.clone();
        // v2 writes the transaction's id as its span id too; RUM v3 does not.
        if !P::RUM_V3 {
            out.span_mut().id = id.0.clone();
        }
    }
    if t.marks.is_set() {
        tx.marks = t
            .marks
            .0
            .iter()
            // v2 drops groups without marks; RUM v3 keeps them.
            .filter(|(_, m)| P::RUM_V3 || !m.0.is_empty())
            .map(|(k, m)| {
                (
                    mark_name::<P>(k, rum_mark_group),
                    m.0.iter()
                        .map(|(mk, v)| (mark_name::<P>(mk, rum_mark), v.0))
                        .collect(),
                )
            })
            .collect();
    }
    set(&mut tx.name, &t.name);
    let ev = out.event_mut();
    ev.outcome = event_outcome(&t.outcome, t.context.response.status_code, 500);
    set(&mut out.parent_id, &t.parent_id);
    set(&mut tx.result, &t.result);
    tx.sampled = t.sampled.is_none_or(|s| s.0);
    tx.representative_count = match t.sample_rate {
        Some(r) if r.0 > 0.0 => 1.0 / r.0,
        Some(_) => 0.0,
        None => 1.0,
    };
    if let Some(id) = &t.session.id {
        out.session = Some(Session {
            id: id.0.clone(),
            sequence: t.session.sequence.map_or(0, |s| s.0 as u64),
        });
    }
    tx.dropped_spans_stats = t
        .dropped_spans_stats
        .0
        .iter()
        .map(|d| crate::model::event::DroppedSpanStats {
            destination_service_resource: st(&d.destination_service_resource),
            service_target_type: st(&d.service_target_type),
            service_target_name: st(&d.service_target_name),
            outcome: st(&d.outcome),
            count: d.duration.count.map_or(0, |c| c.0.max(0) as u64),
            sum_us: d.duration.sum.us.map_or(0, |u| u.0.max(0) as u64),
        })
        .collect();
    if t.span_count.dropped.is_some() || t.span_count.started.is_some() {
        tx.span_count = Some(SpanCount {
            dropped: t.span_count.dropped.map(|v| v.0 as u32),
            started: t.span_count.started.map(|v| v.0 as u32),
        });
    }
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(ts) = t.timestamp {
        out.timestamp = ts.0;
    }
    set(&mut out.trace_id, &t.trace_id);
    set(&mut tx.r#type, &t.r#type);
    if t.experience.is_set() {
        let x = &t.experience;
        tx.user_experience = Some(UserExperience {
            cls: x.cls.map_or(-1.0, |v| v.0),
            fid: x.fid.map_or(-1.0, |v| v.0),
            tbt: x.tbt.map_or(-1.0, |v| v.0),
            longtask: if x.longtask.is_set() {
                Some((
                    x.longtask.count.map_or(0, |v| v.0 as u64),
                    x.longtask.sum.map_or(0.0, |v| v.0),
                    x.longtask.max.map_or(0.0, |v| v.0),
                ))
            } else {
                None
            },
        });
    }
    out.transaction = Some(tx);
    map_otel_and_links(
        &t.otel,
        &t.links,
        crate::model::otel::translate_transaction,
        out,
    );
    if let Some(tx) = &mut out.transaction {
        // Without a type a transaction is `unknown`; RUM v3 keeps an empty type as sent.
        if tx.r#type.is_empty() && !(P::RUM_V3 && t.r#type.is_some()) {
            tx.r#type = Cow::Borrowed("unknown");
        }
    }
}

/// A mark's group or name as written: RUM v3 abbreviates the ones the RUM agent knows.
fn mark_name<'a, P: Protocol>(
    k: &Cow<'a, str>,
    full: fn(&str) -> Option<&'static str>,
) -> Cow<'a, str> {
    if P::RUM_V3 {
        if let Some(name) = full(k) {
            return Cow::Borrowed(name);
        }
    }
    k.clone()
}

/// The RUM v3 abbreviations of mark groups.
fn rum_mark_group(k: &str) -> Option<&'static str> {
    match k {
        "a" => Some("agent"),
        "nt" => Some("navigationTiming"),
        _ => None,
    }
}

/// The RUM v3 abbreviations of navigation timing marks.
fn rum_mark(k: &str) -> Option<&'static str> {
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
