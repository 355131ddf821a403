//! Intake v2 `span` events (destination, database, message, composite, links, OpenTelemetry
//! bridge data): wire types, validation and mapping. The destination, HTTP and type objects are
//! declared for RUM v3's spans too (`rumv3::embedded`).

use std::borrow::Cow;

use super::context::{
    ContextMessage, ContextService, map_context_agent, map_context_service, map_message,
    validate_message,
};
use super::metadata::IdOnly;
use super::stacktrace::{Frame, map_frames, validate_frames};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{
    IsSet, JBool, JFloat, JHeaders, JInt, JMap, JObject, JStr, JTime, JVec, LabelIn, Object,
    Protocol, json_struct,
};
use crate::model::map::*;

json_struct! {
    /// A span line: `{"span": {...}}`.
    pub struct SpanRoot<'a>: "v2.spanRoot" {
        /// The span (required).
        span: SpanIn<'a> = "span" / "Span",
    }
}

json_struct! {
    /// A span: one operation within a transaction, e.g. a database query or an outgoing
    /// request.
    pub struct SpanIn<'a>: "v2.span" {
        /// `@timestamp`; without it, the transaction's start plus `start`.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// What the agent's OpenTelemetry bridge sends.
        otel: Otel<'a> = "otel" / "OTel",
        /// `span.id` (required).
        id: Option<JStr<'a>> = "id" / "ID",
        /// `trace.id` (required).
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
        /// `span.action`, e.g. `query`.
        action: Option<JStr<'a>> = "action" / "Action",
        /// `span.name`, e.g. `SELECT FROM users` (required).
        name: Option<JStr<'a>> = "name" / "Name",
        /// `event.outcome`; from the HTTP status code when absent.
        outcome: Option<JStr<'a>> = "outcome" / "Outcome",
        /// `child.id`: the spans and transactions this span started.
        child_ids: JVec<JStr<'a>> = "child_ids" / "ChildIDs",
        /// `parent.id`: the transaction or span that started this one (required).
        parent_id: Option<JStr<'a>> = "parent_id" / "ParentID",
        /// Links to spans of other traces (`span.links`).
        links: JVec<SpanLinkIn<'a>> = "links" / "Links",
        /// Where the span started, innermost frame first.
        stacktrace: JVec<Frame<'a>> = "stacktrace" / "Stacktrace",
        /// `span.type`, e.g. `db` (required); split on dots into type, subtype and action when
        /// neither of those is sent.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// `span.subtype`, e.g. `postgresql`.
        subtype: Option<JStr<'a>> = "subtype" / "Subtype",
        /// `transaction.id` of the span's transaction.
        transaction_id: Option<JStr<'a>> = "transaction_id" / "TransactionID",
        /// What a span compressed from several similar ones sums up (`span.composite.*`).
        composite: CompositeIn<'a> = "composite" / "Composite",
        /// What the span called.
        context: SpanContext<'a> = "context" / "Context",
        /// The start, in milliseconds after the transaction's (this or a timestamp is
        /// required).
        start: Option<JFloat> = "start" / "Start",
        /// The sampling rate in effect; its inverse is the span's representative count.
        sample_rate: Option<JFloat> = "sample_rate" / "SampleRate",
        /// The duration in milliseconds (`span.duration.us`; required).
        duration: Option<JFloat> = "duration" / "Duration",
        /// `span.sync`: whether the span ran synchronously.
        sync: Option<JBool> = "sync" / "Sync",
    }
}

json_struct! {
    /// `span.composite`: a span that stands for several similar consecutive ones.
    pub struct CompositeIn<'a>: "v2.spanComposite" {
        /// How they were compressed: `exact_match` or `same_kind` (required).
        compression_strategy: Option<JStr<'a>> = "compression_strategy" / "CompressionStrategy",
        /// How many spans it stands for, at least 2 (required).
        count: Option<JInt> = "count" / "Count",
        /// Their total duration in milliseconds (required).
        sum: Option<JFloat> = "sum" / "Sum",
    }
}

json_struct! {
    /// `span.context`: what a span called.
    pub struct SpanContext<'a>: "v2.spanContext" {
        /// The span's labels (`labels.*`, `numeric_labels.*`).
        tags: JMap<'a, LabelIn<'a>> = "tags" / "Tags",
        /// The service, when the span's differs from the metadata's; its target names what the
        /// span called.
        service: ContextService<'a> = "service" / "Service",
        /// The message the span sent (`span.message.*`).
        message: ContextMessage<'a> = "message" / "Message",
        /// The database query (`span.db.*`).
        db: SpanDb<'a> = "db" / "Database",
        /// The destination (`destination.*`, `span.destination.service.*`).
        destination: SpanDestination<'a> = "destination" / "Destination",
        /// The HTTP request the span sent (`http.*`, `url.original`).
        http: SpanHttp<'a> = "http" / "HTTP",
    }
}

json_struct! {
    /// `span.context.db`: the database query a span ran.
    pub struct SpanDb<'a>: "v2.spanContextDatabase" {
        /// `span.db.instance`: the database's name.
        instance: Option<JStr<'a>> = "instance" / "Instance",
        /// `span.db.link`: a database link, e.g. of Oracle.
        link: Option<JStr<'a>> = "link" / "Link",
        /// `span.db.statement`: the query.
        statement: Option<JStr<'a>> = "statement" / "Statement",
        /// `span.db.type`, e.g. `sql`.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// `span.db.user.name`.
        user: Option<JStr<'a>> = "user" / "User",
        /// `span.db.rows_affected`.
        rows_affected: Option<JInt> = "rows_affected" / "RowsAffected",
    }
}

json_struct! {
    /// `span.context.destination`: what the span called.
    pub struct SpanDestination<'a, P>: "v2.spanContextDestination" | "rumv3.spanContextDestination" {
        /// The service called (`span.destination.service.*`).
        service: DestinationServiceIn<'a, P> = "service" | "se" / "Service",
        /// `destination.address`: a host name or an IP address.
        address: Option<JStr<'a>> = "address" | "ad" / "Address",
        /// `destination.port`.
        port: Option<JInt> = "port" | "po" / "Port",
    }
}

json_struct! {
    /// `span.context.destination.service`: the service called, for the service map.
    pub struct DestinationServiceIn<'a, P>: "v2.spanContextDestinationService" | "rumv3.spanContextDestinationService" {
        /// `span.destination.service.name` (deprecated by APM Server).
        name: Option<JStr<'a>> = "name" | "n" / "Name",
        /// `span.destination.service.resource`, e.g. `mysql` or `kafka/orders` (required);
        /// gives `service.target.*` when the span names no target.
        resource: Option<JStr<'a>> = "resource" | "rc" / "Resource",
        /// `span.destination.service.type` (deprecated by APM Server).
        r#type: Option<JStr<'a>> = "type" | "t" / "Type",
    }
}

json_struct! {
    /// `span.context.http`: the HTTP request a span sent.
    pub struct SpanHttp<'a, P>: "v2.spanContextHTTP" | "rumv3.spanContextHTTP" {
        /// The request (`http.request.id`; v2 only).
        request: IdOnly<'a> = "request" | _ / "Request",
        /// `http.request.method`.
        method: Option<JStr<'a>> = "method" | "mt" / "Method",
        /// `url.original`.
        url: Option<JStr<'a>> = "url" | "url" / "URL",
        /// The response (`http.response.*`).
        response: SpanHttpResponse<'a, P> = "response" | "r" / "Response",
        /// `http.response.status_code`, over the response's own; a code of 400 or more makes
        /// the span's outcome a failure when the agent sends none.
        status_code: Option<JInt> = "status_code" | "sc" / "StatusCode",
    }
}

json_struct! {
    /// `span.context.http.response`: the response a span received.
    pub struct SpanHttpResponse<'a, P>: "v2.spanContextHTTPResponse" | "rumv3.spanContextHTTPResponse" {
        /// `http.response.headers` (v2 only).
        headers: JHeaders<'a> = "headers" | _ / "Headers",
        /// `http.response.decoded_body_size`: the body after content decoding.
        decoded_body_size: Option<JInt> = "decoded_body_size" | "dbs" / "DecodedBodySize",
        /// `http.response.encoded_body_size`: the body as received.
        encoded_body_size: Option<JInt> = "encoded_body_size" | "ebs" / "EncodedBodySize",
        /// `http.response.status_code` (v2 only).
        status_code: Option<JInt> = "status_code" | _ / "StatusCode",
        /// `http.response.transfer_size`: bytes on the wire, headers included.
        transfer_size: Option<JInt> = "transfer_size" | "ts" / "TransferSize",
    }
}

json_struct! {
    /// A span's type and subtype: a breakdown metricset's span (`metricset.span`, `me[].y`).
    pub struct TypeSubtype<'a, P>: "v2.metricsetSpanRef" | "rumv3.metricsetSpanRef" {
        /// `span.subtype`, e.g. `mysql`.
        subtype: Option<JStr<'a>> = "subtype" | "su" / "Subtype",
        /// `span.type`, e.g. `db`.
        r#type: Option<JStr<'a>> = "type" | "t" / "Type",
    }
}

json_struct! {
    /// `otel`: what the OpenTelemetry bridge of an agent sends, translated as APM Server's
    /// OTLP intake would.
    pub struct Otel<'a>: "v2.otel" {
        /// The span's OpenTelemetry attributes (`labels.*`, or the fields they map onto).
        attributes: JObject = "attributes" / "Attributes",
        /// `span.kind`, e.g. `SERVER`.
        span_kind: Option<JStr<'a>> = "span_kind" / "SpanKind",
    }
}

json_struct! {
    /// A link to a span of another trace (`span.links[]`).
    pub struct SpanLinkIn<'a>: "v2.spanLink" {
        /// The linked span's id (required).
        span_id: Option<JStr<'a>> = "span_id" / "SpanID",
        /// The linked span's trace id (required).
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
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

/// What the agent's OpenTelemetry bridge sends, translated by `translate` (a transaction's or a
/// span's translation), then the span links; after everything else, because the translation
/// overrides what the event's own fields gave.
pub(super) fn map_otel_and_links<'a>(
    otel: &Otel<'a>,
    links: &[SpanLinkIn<'a>],
    translate: fn(&Object, Option<S<'a>>, &mut ApmEvent<'a>),
    out: &mut ApmEvent<'a>,
) {
    if otel.is_set() {
        translate(
            &otel.attributes.0,
            otel.span_kind.as_ref().map(|k| k.0.clone()),
            out,
        );
    }
    if !links.is_empty() {
        out.span_mut().links = links
            .iter()
            .map(|l| Link {
                span_id: st(&l.span_id),
                trace_id: st(&l.trace_id),
            })
            .collect();
    }
}

impl<P: Protocol> SpanDestination<'_, P> {
    /// Validates a span's destination as APM Server does.
    pub(crate) fn validate(&self) -> VResult {
        nested(&self.service, Self::service, DestinationServiceIn::validate)?;
        max_len(&self.address, KEYWORD_MAX_LENGTH, Self::address)
    }
}

impl<P: Protocol> DestinationServiceIn<'_, P> {
    fn validate(&self) -> VResult {
        max_len(&self.name, KEYWORD_MAX_LENGTH, Self::name)?;
        max_len(&self.resource, KEYWORD_MAX_LENGTH, Self::resource)?;
        required(&self.resource, Self::resource)?;
        max_len(&self.r#type, KEYWORD_MAX_LENGTH, Self::r#type)
    }
}

impl<P: Protocol> SpanHttp<'_, P> {
    /// Validates a span's HTTP request as APM Server does.
    pub(crate) fn validate(&self) -> VResult {
        nested(&self.request, Self::request, |_| Ok(()))?;
        max_len(&self.method, KEYWORD_MAX_LENGTH, Self::method)?;
        nested(&self.response, Self::response, |_| Ok(()))
    }
}

/// `destination.*` and `span.destination.service.*` of a span.
pub(crate) fn map_destination<'a, P>(
    d: &SpanDestination<'a, P>,
    out: &mut ApmEvent<'a>,
    sp: &mut crate::model::event::Span<'a>,
) {
    if d.address.is_some() || d.port.is_some() {
        let dest = out.destination.get_or_insert_with(Default::default);
        set(&mut dest.address, &d.address);
        if let Some(p) = d.port {
            dest.port = p.0 as u32;
        }
    }
    if d.service.is_set() {
        let s = &d.service;
        sp.destination_service = Some(DestinationService {
            name: st(&s.name),
            resource: st(&s.resource),
            r#type: st(&s.r#type),
            response_time: None,
        });
    }
}

/// `http.*` and `url.original` of a span that sent an HTTP request.
pub(crate) fn map_span_http<'a, P>(h: &SpanHttp<'a, P>, out: &mut ApmEvent<'a>) {
    if !h.is_set() {
        return;
    }
    if let Some(m) = &h.method {
        out.http_mut()
            .request
            .get_or_insert_with(Default::default)
            .method = m.0.clone();
    }
    if let Some(id) = &h.request.id {
        out.http_mut()
            .request
            .get_or_insert_with(Default::default)
            .id = id.0.clone();
    }
    if h.response.is_set() {
        let r = &h.response;
        out.http_mut().response = Some(HttpResponse {
            decoded_body_size: r.decoded_body_size.map(|v| v.0 as u64),
            encoded_body_size: r.encoded_body_size.map(|v| v.0 as u64),
            headers: if r.headers.set {
                r.headers.values.clone()
            } else {
                Vec::new()
            },
            status_code: r.status_code.map_or(0, |v| v.0 as u32),
            transfer_size: r.transfer_size.map(|v| v.0 as u64),
            ..Default::default()
        });
    }
    if let Some(code) = h.status_code {
        out.http_mut()
            .response
            .get_or_insert_with(Default::default)
            .status_code = code.0 as u32;
    }
    if let Some(u) = &h.url {
        out.url.get_or_insert_with(Default::default).original = u.0.clone();
    }
}

/// Validates a span as APM Server does.
pub fn validate_span_root(r: &SpanRoot<'_>) -> VResult {
    nested(&r.span, "span", |s| {
        any_of(
            s.start.is_some() || s.timestamp.is_some(),
            &["start", "timestamp"],
        )?;
        nested(&s.otel, "otel", |_| Ok(()))?;
        max_len(&s.id, KEYWORD_MAX_LENGTH, "id")?;
        required(&s.id, "id")?;
        max_len(&s.trace_id, KEYWORD_MAX_LENGTH, "trace_id")?;
        required(&s.trace_id, "trace_id")?;
        max_len(&s.action, KEYWORD_MAX_LENGTH, "action")?;
        max_len(&s.name, KEYWORD_MAX_LENGTH, "name")?;
        required(&s.name, "name")?;
        outcome(&s.outcome, "outcome")?;
        if s.child_ids
            .iter()
            .any(|c| c.len() > KEYWORD_MAX_LENGTH && c.runes() > KEYWORD_MAX_LENGTH)
        {
            return Err(format!(
                "'child_ids': validation rule 'maxLength({KEYWORD_MAX_LENGTH})' violated"
            ));
        }
        max_len(&s.parent_id, KEYWORD_MAX_LENGTH, "parent_id")?;
        required(&s.parent_id, "parent_id")?;
        validate_links(&s.links)?;
        validate_frames(&s.stacktrace, "stacktrace")?;
        max_len(&s.r#type, KEYWORD_MAX_LENGTH, "type")?;
        required(&s.r#type, "type")?;
        max_len(&s.subtype, KEYWORD_MAX_LENGTH, "subtype")?;
        max_len(&s.transaction_id, KEYWORD_MAX_LENGTH, "transaction_id")?;
        nested(&s.composite, "composite", |c| {
            required(&c.compression_strategy, "compression_strategy")?;
            min_f(c.count.map(|v| v.0 as f64), 2.0, "count", "2")?;
            required(&c.count, "count")?;
            min_f(c.sum.map(|v| v.0), 0.0, "sum", "0")?;
            required(&c.sum, "sum")
        })?;
        nested(&s.context, "context", |c| {
            labels(&c.tags.0, "tags")?;
            nested(&c.service, "service", ContextService::validate)?;
            nested(&c.message, "message", validate_message)?;
            nested(&c.db, "db", |d| {
                max_len(&d.link, KEYWORD_MAX_LENGTH, "link")
            })?;
            nested(&c.destination, "destination", SpanDestination::validate)?;
            nested(&c.http, "http", SpanHttp::validate)
        })?;
        min_f(s.duration.map(|v| v.0), 0.0, "duration", "0")?;
        max_duration(s.duration.map(|v| v.0), "duration")?;
        required(&s.duration, "duration")
    })?;
    required(&r.span, "span")
}

/// Maps a validated span onto `out` (a clone of the base event). Free-form values move out
/// of `s`.
pub fn map_span<'a>(s: &mut SpanIn<'a>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Span;
    let mut sp = crate::model::event::Span::default();
    if s.action.is_none() && s.subtype.is_none() {
        split_type(s.r#type.as_ref().map(|t| &t.0), &mut sp);
    } else {
        set(&mut sp.action, &s.action);
        set(&mut sp.subtype, &s.subtype);
        set(&mut sp.r#type, &s.r#type);
    }
    if s.composite.is_set() {
        sp.composite = Some(Composite {
            count: s.composite.count.map_or(0, |c| c.0 as u32),
            sum_ms: s.composite.sum.map_or(0.0, |c| c.0),
            strategy: match s
                .composite
                .compression_strategy
                .as_ref()
                .map(|c| c.as_str())
            {
                Some("exact_match") => "exact_match",
                Some("same_kind") => "same_kind",
                _ => "",
            },
        });
    }
    if !s.child_ids.is_empty() {
        out.child_ids = s.child_ids.iter().map(|c| c.0.clone()).collect();
    }
    let c = &mut s.context;
    if c.db.is_set() {
        let d = &c.db;
        sp.db = Some(Db {
            instance: st(&d.instance),
            link: st(&d.link),
            rows_affected: d.rows_affected.map(|v| v.0 as u32),
            statement: st(&d.statement),
            r#type: st(&d.r#type),
            user_name: st(&d.user),
        });
    }
    map_destination(&c.destination, out, &mut sp);
    map_span_http(&c.http, out);
    if c.message.is_set() {
        sp.message = Some(map_message(&mut c.message));
    }
    if c.service.is_set() {
        map_context_service(&c.service, &mut out.service);
        map_context_agent(&c.service.agent, &mut out.agent);
    }
    if c.service.target.r#type.is_none() {
        if let Some(res) = &c.destination.service.resource {
            out.service.target = Some(target_from_resource(&res.0));
        }
    }
    merge_labels(&c.tags.0, &mut out.labels);
    if let Some(d) = s.duration {
        out.event_mut().duration = ms_to_ns(d.0);
    }
    set(&mut sp.id, &s.id);
    set(&mut sp.name, &s.name);
    let ev = out.event_mut();
    ev.outcome = event_outcome(&s.outcome, c.http.status_code, 400);
    set(&mut out.parent_id, &s.parent_id);
    sp.representative_count = match s.sample_rate {
        Some(r) if r.0 > 0.0 => 1.0 / r.0,
        Some(_) => 0.0,
        // Agents never send spans of unsampled transactions: assume everything was sampled.
        None => 1.0,
    };
    sp.stacktrace = map_frames(&mut s.stacktrace.0);
    sp.sync = s.sync.map(|b| b.0);
    match (s.timestamp, s.start) {
        (Some(t), _) => out.timestamp = t.0,
        // Saturating: an absurd offset gives an absurd time, never an overflow.
        (_, Some(start)) => out.timestamp = out.timestamp.saturating_add(ms_to_ns_signed(start.0)),
        _ => {}
    }
    set(&mut out.trace_id, &s.trace_id);
    if let Some(id) = &s.transaction_id {
        out.transaction = Some(crate::model::event::Transaction {
            id: id.0.clone(),
            ..Default::default()
        });
    }
    out.span = Some(sp);
    map_otel_and_links(&s.otel, &s.links, crate::model::otel::translate_span, out);
    let sp = out.span_mut();
    if sp.r#type.is_empty() {
        sp.r#type = Cow::Borrowed("unknown");
    }
}
