//! Intake v2 `transaction` events: wire types (with span links, FaaS, OpenTelemetry
//! attributes), validation and mapping.

use std::borrow::Cow;

use super::context::{Context, map_context_identity, map_http_context, map_message};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{
    IsSet, JBool, JFloat, JInt, JMap, JObject, JStr, JTime, JVec, json_struct,
};
use crate::model::map::*;

json_struct! {
    /// `{"transaction": {...}}`
    pub struct TransactionRoot<'a>: "v2.transactionRoot" {
        /// The transaction.
        transaction: TransactionIn<'a> = "transaction" / "Transaction",
    }
}

json_struct! {
    /// A transaction.
    pub struct TransactionIn<'a>: "v2.transaction" {
        /// Marks (RUM).
        marks: JMap<'a, JMap<'a, JFloat>> = "marks" / "Marks",
        /// Timestamp.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// OpenTelemetry bridge data.
        otel: Otel<'a> = "otel" / "OTel",
        /// Span links.
        links: JVec<SpanLinkIn<'a>> = "links" / "Links",
        /// Trace id.
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Parent id.
        parent_id: Option<JStr<'a>> = "parent_id" / "ParentID",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Result.
        result: Option<JStr<'a>> = "result" / "Result",
        /// Dropped span statistics.
        dropped_spans_stats: JVec<DroppedSpanStats<'a>> = "dropped_spans_stats" / "DroppedSpanStats",
        /// Outcome.
        outcome: Option<JStr<'a>> = "outcome" / "Outcome",
        /// Function as a service.
        faas: FaasIn<'a> = "faas" / "FAAS",
        /// Session (RUM).
        session: SessionIn<'a> = "session" / "Session",
        /// Context.
        context: Context<'a> = "context" / "Context",
        /// User experience (RUM).
        experience: Experience<'a> = "experience" / "UserExperience",
        /// Span count.
        span_count: SpanCountIn<'a> = "span_count" / "SpanCount",
        /// Sample rate.
        sample_rate: Option<JFloat> = "sample_rate" / "SampleRate",
        /// Duration in milliseconds.
        duration: Option<JFloat> = "duration" / "Duration",
        /// Sampled.
        sampled: Option<JBool> = "sampled" / "Sampled",
    }
}

json_struct! {
    /// `otel`
    pub struct Otel<'a>: "v2.otel" {
        /// Unmapped attributes.
        attributes: JObject = "attributes" / "Attributes",
        /// Span kind.
        span_kind: Option<JStr<'a>> = "span_kind" / "SpanKind",
    }
}

json_struct! {
    /// A span link.
    pub struct SpanLinkIn<'a>: "v2.spanLink" {
        /// Linked span id.
        span_id: Option<JStr<'a>> = "span_id" / "SpanID",
        /// Linked trace id.
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
    }
}

json_struct! {
    /// `dropped_spans_stats[]`
    pub struct DroppedSpanStats<'a>: "v2.transactionDroppedSpanStats" {
        /// Destination resource.
        destination_service_resource: Option<JStr<'a>> = "destination_service_resource" / "DestinationServiceResource",
        /// Target type.
        service_target_type: Option<JStr<'a>> = "service_target_type" / "ServiceTargetType",
        /// Target name.
        service_target_name: Option<JStr<'a>> = "service_target_name" / "ServiceTargetName",
        /// Outcome.
        outcome: Option<JStr<'a>> = "outcome" / "Outcome",
        /// Duration.
        duration: DroppedDuration<'a> = "duration" / "Duration",
    }
}

json_struct! {
    /// `dropped_spans_stats[].duration`
    pub struct DroppedDuration<'a>: "v2.transactionDroppedSpansDuration" {
        /// Count.
        count: Option<JInt> = "count" / "Count",
        /// Sum.
        sum: DroppedSum<'a> = "sum" / "Sum",
    }
}

json_struct! {
    /// `dropped_spans_stats[].duration.sum`
    pub struct DroppedSum<'a>: "v2.transactionDroppedSpansDurationSum" {
        /// Microseconds.
        us: Option<JInt> = "us" / "Us",
    }
}

json_struct! {
    /// `faas`
    pub struct FaasIn<'a>: "v2.faas" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Execution.
        execution: Option<JStr<'a>> = "execution" / "Execution",
        /// Trigger.
        trigger: Trigger<'a> = "trigger" / "Trigger",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
        /// Cold start.
        coldstart: Option<JBool> = "coldstart" / "Coldstart",
    }
}

json_struct! {
    /// `faas.trigger`
    pub struct Trigger<'a>: "v2.trigger" {
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Request id.
        request_id: Option<JStr<'a>> = "request_id" / "RequestID",
    }
}

json_struct! {
    /// `session`
    pub struct SessionIn<'a>: "v2.transactionSession" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Sequence.
        sequence: Option<JInt> = "sequence" / "Sequence",
    }
}

json_struct! {
    /// `experience`
    pub struct Experience<'a>: "v2.transactionUserExperience" {
        /// Cumulative layout shift.
        cls: Option<JFloat> = "cls" / "CumulativeLayoutShift",
        /// First input delay.
        fid: Option<JFloat> = "fid" / "FirstInputDelay",
        /// Long tasks.
        longtask: Longtask<'a> = "longtask" / "Longtask",
        /// Total blocking time.
        tbt: Option<JFloat> = "tbt" / "TotalBlockingTime",
    }
}

json_struct! {
    /// `experience.longtask`
    pub struct Longtask<'a>: "v2.longtaskMetrics" {
        /// Count.
        count: Option<JInt> = "count" / "Count",
        /// Max.
        max: Option<JFloat> = "max" / "Max",
        /// Sum.
        sum: Option<JFloat> = "sum" / "Sum",
    }
}

json_struct! {
    /// `span_count`
    pub struct SpanCountIn<'a>: "v2.transactionSpanCount" {
        /// Dropped.
        dropped: Option<JInt> = "dropped" / "Dropped",
        /// Started.
        started: Option<JInt> = "started" / "Started",
    }
}

pub(super) fn validate_links(l: &[SpanLinkIn<'_>]) -> VResult {
    each(l, "links", |l| {
        max_len(&l.span_id, KEYWORD_MAX_LENGTH, "span_id")?;
        required(&l.span_id, "span_id")?;
        max_len(&l.trace_id, KEYWORD_MAX_LENGTH, "trace_id")?;
        required(&l.trace_id, "trace_id")
    })
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
        nested(&t.session, "session", |s| {
            max_len(&s.id, KEYWORD_MAX_LENGTH, "id")?;
            required(&s.id, "id")?;
            min_f(s.sequence.map(|c| c.0 as f64), 1.0, "sequence", "1")
        })?;
        nested(&t.context, "context", Context::validate)?;
        nested(&t.experience, "experience", |x| {
            min_f(x.cls.map(|v| v.0), 0.0, "cls", "0")?;
            min_f(x.fid.map(|v| v.0), 0.0, "fid", "0")?;
            nested(&x.longtask, "longtask", |l| {
                min_f(l.count.map(|v| v.0 as f64), 0.0, "count", "0")?;
                required(&l.count, "count")?;
                min_f(l.max.map(|v| v.0), 0.0, "max", "0")?;
                required(&l.max, "max")?;
                min_f(l.sum.map(|v| v.0), 0.0, "sum", "0")?;
                required(&l.sum, "sum")
            })?;
            min_f(x.tbt.map(|v| v.0), 0.0, "tbt", "0")
        })?;
        nested(&t.span_count, "span_count", |s| {
            required(&s.started, "started")
        })?;
        required(&t.span_count, "span_count")?;
        min_f(t.duration.map(|v| v.0), 0.0, "duration", "0")?;
        max_duration(t.duration.map(|v| v.0), "duration")?;
        required(&t.duration, "duration")
    })?;
    required(&r.transaction, "transaction")
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

/// Maps a validated transaction onto `out` (a clone of the base event).
pub fn map_transaction<'a>(t: &TransactionIn<'a>, out: &mut ApmEvent<'a>) {
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
    let c = &t.context;
    if c.is_set() {
        if c.custom.is_set() {
            tx.custom = Some(c.custom.0.clone());
        }
        merge_labels(&c.tags.0, &mut out.labels);
        if c.message.is_set() {
            tx.message = Some(map_message(&c.message));
        }
        map_http_context(c, out, false);
    }
    if let Some(d) = t.duration {
        out.event_mut().duration = ms_to_ns(d.0);
    }
    if let Some(id) = &t.id {
        tx.id = id.0.clone();
        out.span_mut().id = id.0.clone();
    }
    if t.marks.is_set() {
        tx.marks = t
            .marks
            .0
            .iter()
            .filter(|(_, m)| !m.0.is_empty())
            .map(|(k, m)| {
                (
                    k.clone(),
                    m.0.iter().map(|(mk, v)| (mk.clone(), v.0)).collect(),
                )
            })
            .collect();
    }
    set(&mut tx.name, &t.name);
    let ev = out.event_mut();
    ev.outcome = match (&t.outcome, t.context.response.status_code) {
        (Some(o), _) => o.0.clone(),
        (None, Some(code)) if code.0 >= 500 => Cow::Borrowed("failure"),
        (None, Some(_)) => Cow::Borrowed("success"),
        (None, None) => Cow::Borrowed("unknown"),
    };
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
    if t.otel.is_set() {
        crate::model::otel::translate_transaction(
            &t.otel.attributes.0,
            t.otel.span_kind.as_ref().map(|s| s.0.clone()),
            out,
        );
    }
    if !t.links.is_empty() {
        out.span_mut().links = map_links(&t.links);
    }
    if let Some(tx) = &mut out.transaction {
        if tx.r#type.is_empty() {
            tx.r#type = Cow::Borrowed("unknown");
        }
    }
}

pub(super) fn map_links<'a>(l: &[SpanLinkIn<'a>]) -> Vec<Link<'a>> {
    l.iter()
        .map(|l| Link {
            span_id: st(&l.span_id),
            trace_id: st(&l.trace_id),
        })
        .collect()
}
