//! Intake v2 `span` events (destination, database, message, composite): wire types,
//! validation and mapping.

use std::borrow::Cow;

use super::context::{
    ContextMessage, ContextService, map_context_agent, map_context_service, map_message,
    validate_message,
};
use super::metadata::IdOnly;
use super::stacktrace::{Frame, map_frames, validate_frames};
use super::transaction::{Otel, SpanLinkIn, map_links, validate_links};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{
    IsSet, JBool, JFloat, JHeaders, JInt, JMap, JStr, JTime, JVec, LabelIn, json_struct,
};
use crate::model::map::*;

json_struct! {
    /// `{"span": {...}}`
    pub struct SpanRoot<'a>: "v2.spanRoot" {
        /// The span.
        span: SpanIn<'a> = "span" / "Span",
    }
}

json_struct! {
    /// A span.
    pub struct SpanIn<'a>: "v2.span" {
        /// Timestamp.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// OpenTelemetry bridge data.
        otel: Otel<'a> = "otel" / "OTel",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Trace id.
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
        /// Action.
        action: Option<JStr<'a>> = "action" / "Action",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Outcome.
        outcome: Option<JStr<'a>> = "outcome" / "Outcome",
        /// Child ids.
        child_ids: JVec<JStr<'a>> = "child_ids" / "ChildIDs",
        /// Parent id.
        parent_id: Option<JStr<'a>> = "parent_id" / "ParentID",
        /// Links.
        links: JVec<SpanLinkIn<'a>> = "links" / "Links",
        /// Stack trace.
        stacktrace: JVec<Frame<'a>> = "stacktrace" / "Stacktrace",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Subtype.
        subtype: Option<JStr<'a>> = "subtype" / "Subtype",
        /// Transaction id.
        transaction_id: Option<JStr<'a>> = "transaction_id" / "TransactionID",
        /// Composite (compressed) span.
        composite: CompositeIn<'a> = "composite" / "Composite",
        /// Context.
        context: SpanContext<'a> = "context" / "Context",
        /// Start offset in milliseconds.
        start: Option<JFloat> = "start" / "Start",
        /// Sample rate.
        sample_rate: Option<JFloat> = "sample_rate" / "SampleRate",
        /// Duration in milliseconds.
        duration: Option<JFloat> = "duration" / "Duration",
        /// Synchronous.
        sync: Option<JBool> = "sync" / "Sync",
    }
}

json_struct! {
    /// `span.composite`
    pub struct CompositeIn<'a>: "v2.spanComposite" {
        /// `exact_match` or `same_kind`.
        compression_strategy: Option<JStr<'a>> = "compression_strategy" / "CompressionStrategy",
        /// Count.
        count: Option<JInt> = "count" / "Count",
        /// Sum in milliseconds.
        sum: Option<JFloat> = "sum" / "Sum",
    }
}

json_struct! {
    /// `span.context`
    pub struct SpanContext<'a>: "v2.spanContext" {
        /// Labels.
        tags: JMap<'a, LabelIn<'a>> = "tags" / "Tags",
        /// Service.
        service: ContextService<'a> = "service" / "Service",
        /// Messaging.
        message: ContextMessage<'a> = "message" / "Message",
        /// Database.
        db: SpanDb<'a> = "db" / "Database",
        /// Destination.
        destination: SpanDestination<'a> = "destination" / "Destination",
        /// HTTP.
        http: SpanHttp<'a> = "http" / "HTTP",
    }
}

json_struct! {
    /// `span.context.db`
    pub struct SpanDb<'a>: "v2.spanContextDatabase" {
        /// Instance.
        instance: Option<JStr<'a>> = "instance" / "Instance",
        /// Link.
        link: Option<JStr<'a>> = "link" / "Link",
        /// Statement.
        statement: Option<JStr<'a>> = "statement" / "Statement",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// User.
        user: Option<JStr<'a>> = "user" / "User",
        /// Rows affected.
        rows_affected: Option<JInt> = "rows_affected" / "RowsAffected",
    }
}

json_struct! {
    /// `span.context.destination`
    pub struct SpanDestination<'a>: "v2.spanContextDestination" {
        /// Service.
        service: DestinationServiceIn<'a> = "service" / "Service",
        /// Address.
        address: Option<JStr<'a>> = "address" / "Address",
        /// Port.
        port: Option<JInt> = "port" / "Port",
    }
}

json_struct! {
    /// `span.context.destination.service`
    pub struct DestinationServiceIn<'a>: "v2.spanContextDestinationService" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Resource.
        resource: Option<JStr<'a>> = "resource" / "Resource",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `span.context.http`
    pub struct SpanHttp<'a>: "v2.spanContextHTTP" {
        /// Request.
        request: IdOnly<'a> = "request" / "Request",
        /// Method.
        method: Option<JStr<'a>> = "method" / "Method",
        /// URL.
        url: Option<JStr<'a>> = "url" / "URL",
        /// Response.
        response: SpanHttpResponse<'a> = "response" / "Response",
        /// Deprecated status code.
        status_code: Option<JInt> = "status_code" / "StatusCode",
    }
}

json_struct! {
    /// `span.context.http.response`
    pub struct SpanHttpResponse<'a>: "v2.spanContextHTTPResponse" {
        /// Headers.
        headers: JHeaders<'a> = "headers" / "Headers",
        /// Decoded body size.
        decoded_body_size: Option<JInt> = "decoded_body_size" / "DecodedBodySize",
        /// Encoded body size.
        encoded_body_size: Option<JInt> = "encoded_body_size" / "EncodedBodySize",
        /// Status code.
        status_code: Option<JInt> = "status_code" / "StatusCode",
        /// Transfer size.
        transfer_size: Option<JInt> = "transfer_size" / "TransferSize",
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
            nested(&c.destination, "destination", |d| {
                nested(&d.service, "service", |s| {
                    max_len(&s.name, KEYWORD_MAX_LENGTH, "name")?;
                    max_len(&s.resource, KEYWORD_MAX_LENGTH, "resource")?;
                    required(&s.resource, "resource")?;
                    max_len(&s.r#type, KEYWORD_MAX_LENGTH, "type")
                })?;
                max_len(&d.address, KEYWORD_MAX_LENGTH, "address")
            })?;
            nested(&c.http, "http", |h| {
                nested(&h.request, "request", |_| Ok(()))?;
                max_len(&h.method, KEYWORD_MAX_LENGTH, "method")?;
                nested(&h.response, "response", |_| Ok(()))
            })
        })?;
        min_f(s.duration.map(|v| v.0), 0.0, "duration", "0")?;
        max_duration(s.duration.map(|v| v.0), "duration")?;
        required(&s.duration, "duration")
    })?;
    required(&r.span, "span")
}

/// Maps a validated span onto `out` (a clone of the base event).
pub fn map_span<'a>(s: &SpanIn<'a>, out: &mut ApmEvent<'a>) {
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
    let c = &s.context;
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
    if c.destination.address.is_some() || c.destination.port.is_some() {
        let dest = out.destination.get_or_insert_with(Default::default);
        set(&mut dest.address, &c.destination.address);
        if let Some(p) = c.destination.port {
            dest.port = p.0 as u32;
        }
    }
    if c.destination.service.is_set() {
        let d = &c.destination.service;
        sp.destination_service = Some(DestinationService {
            name: st(&d.name),
            resource: st(&d.resource),
            r#type: st(&d.r#type),
            response_time: None,
        });
    }
    if c.http.is_set() {
        let h = &c.http;
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
    if c.message.is_set() {
        sp.message = Some(map_message(&c.message));
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
    ev.outcome = match (&s.outcome, c.http.status_code) {
        (Some(o), _) => o.0.clone(),
        (None, Some(code)) if code.0 >= 400 => Cow::Borrowed("failure"),
        (None, Some(_)) => Cow::Borrowed("success"),
        (None, None) => Cow::Borrowed("unknown"),
    };
    set(&mut out.parent_id, &s.parent_id);
    sp.representative_count = match s.sample_rate {
        Some(r) if r.0 > 0.0 => 1.0 / r.0,
        Some(_) => 0.0,
        // Agents never send spans of unsampled transactions: assume everything was sampled.
        None => 1.0,
    };
    sp.stacktrace = map_frames(&s.stacktrace);
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
    if s.otel.is_set() {
        crate::model::otel::translate_span(
            &s.otel.attributes.0,
            s.otel.span_kind.as_ref().map(|k| k.0.clone()),
            out,
        );
    }
    if !s.links.is_empty() {
        out.span_mut().links = map_links(&s.links);
    }
    let sp = out.span_mut();
    if sp.r#type.is_empty() {
        sp.r#type = Cow::Borrowed("unknown");
    }
}
