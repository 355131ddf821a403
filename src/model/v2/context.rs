//! The `context` of transactions and errors (HTTP request and response, user, service, page,
//! message, custom; `c` in RUM v3): wire types, validation and mapping.
//!
//! RUM v3 sends a subset (no cloud, message, socket or request URL) under abbreviated keys: the
//! shared objects are declared once for both protocols.

use std::borrow::Cow;

use super::metadata::{IdOnly, NameOnly, NameVersionIn, ServiceNode, User, name_version};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{
    IsSet, JAny, JBool, JHeaders, JInt, JMap, JObject, JStr, LabelIn, Protocol, json_struct,
};
use crate::model::map::*;

json_struct! {
    /// What a transaction or an error was about: the request, the user, the page. Its service,
    /// agent and user override the metadata's.
    pub struct Context<'a, P>: "v2.context" | "rumv3.context" {
        /// Free-form data the application attached (`transaction.custom`, `error.custom`).
        custom: JObject = "custom" | "cu" / "Custom",
        /// The event's labels (`labels.*`, `numeric_labels.*`), over the metadata's.
        tags: JMap<'a, LabelIn<'a>> = "tags" | "g" / "Tags",
        /// The service, when the event's differs from the metadata's.
        service: ContextService<'a, P> = "service" | "se" / "Service",
        /// The cloud the event came from (`cloud.origin.*`; v2 only).
        cloud: ContextCloud<'a> = "cloud" | _ / "Cloud",
        /// The user, replacing the metadata's (`user.*`).
        user: User<'a, P> = "user" | "u" / "User",
        /// The browser page (`url.*` when no request URL is sent, `http.request.referrer`).
        page: ContextPage<'a, P> = "page" | "p" / "Page",
        /// The HTTP request served or sent (`http.request.*`, `url.*`, `user_agent.original`).
        request: ContextRequest<'a, P> = "request" | "q" / "Request",
        /// The message received or sent (`transaction.message.*`; v2 only).
        message: ContextMessage<'a> = "message" | _ / "Message",
        /// The HTTP response (`http.response.*`); its status code gives a transaction's
        /// outcome when the agent sends none.
        response: ContextResponse<'a, P> = "response" | "r" / "Response",
    }
}

json_struct! {
    /// `context.service`: the service of one event, when it differs from the metadata's.
    pub struct ContextService<'a, P>: "v2.contextService" | "rumv3.contextService" {
        /// The agent (`agent.*`).
        agent: ContextServiceAgent<'a, P> = "agent" | "a" / "Agent",
        /// `service.environment`.
        environment: Option<JStr<'a>> = "environment" | "en" / "Environment",
        /// `service.framework.*`.
        framework: NameVersionIn<'a, P> = "framework" | "fw" / "Framework",
        /// An immutable id of the service; accepted, not indexed (v2 only).
        id: Option<JStr<'a>> = "id" | _ / "ID",
        /// `service.language.*`.
        language: NameVersionIn<'a, P> = "language" | "la" / "Language",
        /// `service.name`: letters, digits, spaces, `_` and `-`; it brings its own version.
        name: Option<JStr<'a>> = "name" | "n" / "Name",
        /// The service instance (`service.node.name`; v2 only).
        node: ServiceNode<'a> = "node" | _ / "Node",
        /// The service that started the event, e.g. for a message (`service.origin.*`; v2
        /// only).
        origin: ServiceOriginIn<'a> = "origin" | _ / "Origin",
        /// `service.runtime.*`.
        runtime: NameVersionIn<'a, P> = "runtime" | "ru" / "Runtime",
        /// The service a span calls (`service.target.*`; v2 only).
        target: ServiceTargetIn<'a> = "target" | _ / "Target",
        /// `service.version`, with the name.
        version: Option<JStr<'a>> = "version" | "ve" / "Version",
    }
}

json_struct! {
    /// `context.service.agent`: the agent of one event (RUM v3 sends a name and a version only).
    pub struct ContextServiceAgent<'a, P>: "v2.contextServiceAgent" | "rumv3.nameVersion" {
        /// `agent.ephemeral_id` (v2 only).
        ephemeral_id: Option<JStr<'a>> = "ephemeral_id" | _ / "EphemeralID",
        /// `agent.name`.
        name: Option<JStr<'a>> = "name" | "n" / "Name",
        /// `agent.version`.
        version: Option<JStr<'a>> = "version" | "ve" / "Version",
    }
}

json_struct! {
    /// `context.service.origin`: the service that started the event.
    pub struct ServiceOriginIn<'a>: "v2.contextServiceOrigin" {
        /// `service.origin.id`.
        id: Option<JStr<'a>> = "id" / "ID",
        /// `service.origin.name`.
        name: Option<JStr<'a>> = "name" / "Name",
        /// `service.origin.version`.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `context.service.target`: the service a span calls; at least a type or a name.
    pub struct ServiceTargetIn<'a>: "v2.contextServiceTarget" {
        /// `service.target.name`, e.g. a database or queue name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// `service.target.type`, e.g. `mysql`.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `context.cloud`: the cloud an event came from.
    pub struct ContextCloud<'a>: "v2.contextCloud" {
        /// The origin (`cloud.origin.*`).
        origin: ContextCloudOrigin<'a> = "origin" / "Origin",
    }
}

json_struct! {
    /// `context.cloud.origin`: the cloud service that triggered the event.
    pub struct ContextCloudOrigin<'a>: "v2.contextCloudOrigin" {
        /// `cloud.origin.account.id`.
        account: IdOnly<'a> = "account" / "Account",
        /// `cloud.origin.provider`.
        provider: Option<JStr<'a>> = "provider" / "Provider",
        /// `cloud.origin.region`.
        region: Option<JStr<'a>> = "region" / "Region",
        /// `cloud.origin.service.name`.
        service: NameOnly<'a> = "service" / "Service",
    }
}

json_struct! {
    /// `context.page`: the browser page a RUM event happened on.
    pub struct ContextPage<'a, P>: "v2.contextPage" | "rumv3.contextPage" {
        /// `http.request.referrer`.
        referer: Option<JStr<'a>> = "referer" | "rf" / "Referer",
        /// The page's URL (`url.*`, unless the request names one).
        url: Option<JStr<'a>> = "url" | "url" / "URL",
    }
}

json_struct! {
    /// `context.request`: the HTTP request a transaction served or an error happened in.
    pub struct ContextRequest<'a, P>: "v2.contextRequest" | "rumv3.contextRequest" {
        /// `http.request.cookies` (v2 only).
        cookies: JObject = "cookies" | _ / "Cookies",
        /// `http.request.env`: environment variables of a CGI-style request.
        env: JObject = "env" | "en" / "Env",
        /// `http.request.body`: a string or an object (v2 only).
        body: Option<JAny> = "body" | _ / "Body",
        /// `http.request.headers`; `User-Agent` gives `user_agent.original`.
        headers: JHeaders<'a> = "headers" | "he" / "Headers",
        /// The requested URL (`url.*`; v2 only).
        url: ContextRequestUrl<'a> = "url" | _ / "URL",
        /// `http.version`, e.g. `1.1`.
        http_version: Option<JStr<'a>> = "http_version" | "hve" / "HTTPVersion",
        /// `http.request.method` (required).
        method: Option<JStr<'a>> = "method" | "mt" / "Method",
        /// The connection (v2 only).
        socket: ContextRequestSocket<'a> = "socket" | _ / "Socket",
    }
}

json_struct! {
    /// `context.request.url`: the requested URL, in parts.
    pub struct ContextRequestUrl<'a>: "v2.contextRequestURL" {
        /// `url.port`: a string or an integer.
        port: Option<JAny> = "port" / "Port",
        /// `url.full`.
        full: Option<JStr<'a>> = "full" / "Full",
        /// `url.fragment`, without the `#`.
        hash: Option<JStr<'a>> = "hash" / "Hash",
        /// `url.domain`.
        hostname: Option<JStr<'a>> = "hostname" / "Hostname",
        /// `url.path`.
        pathname: Option<JStr<'a>> = "pathname" / "Path",
        /// `url.scheme`, a trailing `:` dropped.
        protocol: Option<JStr<'a>> = "protocol" / "Protocol",
        /// `url.original`: the URL as the request named it.
        raw: Option<JStr<'a>> = "raw" / "Raw",
        /// `url.query`, without the `?`.
        search: Option<JStr<'a>> = "search" / "Search",
    }
}

json_struct! {
    /// `context.request.socket`: the connection the request came on.
    pub struct ContextRequestSocket<'a>: "v2.contextRequestSocket" {
        /// The peer's address (`source.*` and `client.*` unless the request's own peer is
        /// known).
        remote_address: Option<JStr<'a>> = "remote_address" / "RemoteAddress",
        /// Accepted for old agents and ignored.
        encrypted: Option<JBool> = "encrypted" / "Encrypted",
    }
}

json_struct! {
    /// `context.message`: a message received or sent (`*.message.*`).
    pub struct ContextMessage<'a>: "v2.contextMessage" {
        /// The message's headers.
        headers: JHeaders<'a> = "headers" / "Headers",
        /// The message's body.
        body: Option<JStr<'a>> = "body" / "Body",
        /// The queue or topic (`message.queue.name`).
        queue: NameOnly<'a> = "queue" / "Queue",
        /// `message.routing_key`, e.g. of RabbitMQ.
        routing_key: Option<JStr<'a>> = "routing_key" / "RoutingKey",
        /// How long the message waited (`message.age.ms`).
        age: MessageAge<'a> = "age" / "Age",
    }
}

json_struct! {
    /// `context.message.age`: the time from sending to receiving.
    pub struct MessageAge<'a>: "v2.contextMessageAge" {
        /// In milliseconds.
        ms: Option<JInt> = "ms" / "Milliseconds",
    }
}

json_struct! {
    /// `context.response`: the HTTP response.
    pub struct ContextResponse<'a, P>: "v2.contextResponse" | "rumv3.contextResponse" {
        /// `http.response.headers`.
        headers: JHeaders<'a> = "headers" | "he" / "Headers",
        /// `http.response.status_code`.
        status_code: Option<JInt> = "status_code" | "sc" / "StatusCode",
        /// `http.response.transfer_size`: bytes on the wire, headers included.
        transfer_size: Option<JInt> = "transfer_size" | "ts" / "TransferSize",
        /// `http.response.decoded_body_size`: the body after content decoding.
        decoded_body_size: Option<JInt> = "decoded_body_size" | "dbs" / "DecodedBodySize",
        /// `http.response.encoded_body_size`: the body as sent.
        encoded_body_size: Option<JInt> = "encoded_body_size" | "ebs" / "EncodedBodySize",
        /// `http.response.finished` (v2 only).
        finished: Option<JBool> = "finished" | _ / "Finished",
        /// `http.response.headers_sent` (v2 only).
        headers_sent: Option<JBool> = "headers_sent" | _ / "HeadersSent",
    }
}

impl<P: Protocol> Context<'_, P> {
    /// Validates a transaction's or an error's context as APM Server does.
    pub(crate) fn validate(&self) -> VResult {
        labels(&self.tags.0, Self::tags)?;
        nested(&self.service, Self::service, ContextService::validate)?;
        nested(&self.cloud, Self::cloud, |_| Ok(()))?;
        nested(&self.user, Self::user, User::validate)?;
        nested(&self.page, Self::page, |_| Ok(()))?;
        nested(&self.request, Self::request, ContextRequest::validate)?;
        nested(&self.message, Self::message, validate_message)
    }
}

impl<P: Protocol> ContextRequest<'_, P> {
    fn validate(&self) -> VResult {
        if let Some(JAny(b)) = &self.body {
            if !matches!(
                b,
                serde_json::Value::String(_)
                    | serde_json::Value::Object(_)
                    | serde_json::Value::Null
            ) {
                return Err("'body': validation rule 'inputTypes(string;object)' violated ".into());
            }
        }
        nested(&self.url, Self::url, |u| {
            string_or_int(&u.port, "port", KEYWORD_MAX_LENGTH, true)?;
            max_len(&u.full, KEYWORD_MAX_LENGTH, "full")?;
            max_len(&u.hash, KEYWORD_MAX_LENGTH, "hash")?;
            max_len(&u.hostname, KEYWORD_MAX_LENGTH, "hostname")?;
            max_len(&u.pathname, KEYWORD_MAX_LENGTH, "pathname")?;
            max_len(&u.protocol, KEYWORD_MAX_LENGTH, "protocol")?;
            max_len(&u.raw, KEYWORD_MAX_LENGTH, "raw")?;
            max_len(&u.search, KEYWORD_MAX_LENGTH, "search")
        })?;
        max_len(&self.http_version, KEYWORD_MAX_LENGTH, Self::http_version)?;
        max_len(&self.method, KEYWORD_MAX_LENGTH, Self::method)?;
        required(&self.method, Self::method)
    }
}

pub(super) fn validate_message(m: &ContextMessage<'_>) -> VResult {
    nested(&m.queue, "queue", |q| {
        max_len(&q.name, KEYWORD_MAX_LENGTH, "name")
    })
}

impl<P: Protocol> ContextService<'_, P> {
    /// Validates the service of a transaction, an error or a span as APM Server does.
    pub(crate) fn validate(&self) -> VResult {
        nested(&self.agent, Self::agent, ContextServiceAgent::validate)?;
        max_len(&self.environment, KEYWORD_MAX_LENGTH, Self::environment)?;
        nested(&self.framework, Self::framework, NameVersionIn::lengths)?;
        nested(&self.language, Self::language, NameVersionIn::lengths)?;
        max_len(&self.name, KEYWORD_MAX_LENGTH, Self::name)?;
        alnum_ext(&self.name, Self::name)?;
        nested(&self.node, Self::node, |n| {
            max_len(&n.configured_name, KEYWORD_MAX_LENGTH, "configured_name")
        })?;
        nested(&self.runtime, Self::runtime, NameVersionIn::lengths)?;
        nested(&self.target, Self::target, |t| {
            any_of(t.r#type.is_some() || t.name.is_some(), &["type", "name"])
        })?;
        max_len(&self.version, KEYWORD_MAX_LENGTH, Self::version)
    }
}

impl<P: Protocol> ContextServiceAgent<'_, P> {
    fn validate(&self) -> VResult {
        max_len(&self.ephemeral_id, KEYWORD_MAX_LENGTH, Self::ephemeral_id)?;
        max_len(&self.name, KEYWORD_MAX_LENGTH, Self::name)?;
        max_len(&self.version, KEYWORD_MAX_LENGTH, Self::version)
    }
}

/// What transactions and errors take alike from their context, before anything else: the
/// service, agent and user (over the metadata's), the user agent and, in v2, the client address
/// the agent reports.
pub(super) fn map_context_identity<'a, P: Protocol>(c: &Context<'a, P>, out: &mut ApmEvent<'a>) {
    map_context_service(&c.service, &mut out.service);
    map_context_agent(&c.service.agent, &mut out.agent);
    if let Some(u) = c.user.to_event() {
        out.user = Some(u);
    }
    user_agent_from_headers(&c.request.headers, out);
    // RUM v3 has no socket, and APM Server's RUM v3 decoder does not take the client from the
    // request headers the agent reports.
    if !P::RUM_V3 {
        map_client(
            c.request.socket.remote_address.as_ref(),
            &c.request.headers,
            out,
        );
    }
}

pub(super) fn map_context_service<'a, P>(s: &ContextService<'a, P>, out: &mut Service<'a>) {
    set(&mut out.environment, &s.environment);
    name_version(&mut out.framework, &s.framework);
    name_version(&mut out.language, &s.language);
    if let Some(n) = &s.name {
        out.name = n.0.clone();
        out.version = s.version.as_ref().map(|v| v.0.clone()).unwrap_or_default();
    }
    set(&mut out.node_name, &s.node.configured_name);
    name_version(&mut out.runtime, &s.runtime);
    if s.origin.is_set() {
        out.origin = Some(ServiceOrigin {
            id: st(&s.origin.id),
            name: st(&s.origin.name),
            version: st(&s.origin.version),
        });
    }
    if s.target.is_set() {
        out.target = Some(ServiceTarget {
            r#type: st(&s.target.r#type),
            name: st(&s.target.name),
        });
    }
}

pub(super) fn map_context_agent<'a, P>(a: &ContextServiceAgent<'a, P>, out: &mut Agent<'a>) {
    set(&mut out.name, &a.name);
    set(&mut out.version, &a.version);
    set(&mut out.ephemeral_id, &a.ephemeral_id);
}

fn map_request<'a, P>(r: &mut ContextRequest<'a, P>, out: &mut HttpRequest<'a>) {
    set(&mut out.method, &r.method);
    if r.env.is_set() {
        out.env = Some(std::mem::take(&mut r.env.0));
    }
    if let Some(b) = r.body.take() {
        out.body = normalize_body(b.0);
    }
    if r.cookies.is_set() {
        out.cookies = Some(std::mem::take(&mut r.cookies.0));
    }
    if r.headers.set {
        out.headers = std::mem::take(&mut r.headers.values);
    }
}

fn map_request_url<'a>(u: &ContextRequestUrl<'a>, out: &mut Url<'a>) {
    set(&mut out.original, &u.raw);
    set(&mut out.full, &u.full);
    set(&mut out.domain, &u.hostname);
    set(&mut out.path, &u.pathname);
    set(&mut out.query, &u.search);
    set(&mut out.fragment, &u.hash);
    if let Some(p) = &u.protocol {
        out.scheme = match &p.0 {
            Cow::Borrowed(s) => Cow::Borrowed(s.strip_suffix(':').unwrap_or(s)),
            Cow::Owned(s) => Cow::Owned(s.strip_suffix(':').unwrap_or(s).to_owned()),
        };
    }
    if let Some(JAny(p)) = &u.port {
        let port = match p {
            serde_json::Value::String(s) => s.parse::<i64>().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        };
        if let Some(p) = port {
            out.port = p as u32;
        }
    }
}

fn map_response<'a, P>(r: &mut ContextResponse<'a, P>, out: &mut HttpResponse<'a>) {
    out.finished = r.finished.map(|b| b.0);
    if r.headers.set {
        out.headers = std::mem::take(&mut r.headers.values);
    }
    out.headers_sent = r.headers_sent.map(|b| b.0);
    if let Some(c) = r.status_code {
        out.status_code = c.0 as u32;
    }
    out.transfer_size = r.transfer_size.map(|v| v.0 as u64);
    out.encoded_body_size = r.encoded_body_size.map(|v| v.0 as u64);
    out.decoded_body_size = r.decoded_body_size.map(|v| v.0 as u64);
}

pub(super) fn map_message<'a>(m: &mut ContextMessage<'a>) -> Message<'a> {
    Message {
        queue_name: st(&m.queue.name),
        routing_key: st(&m.routing_key),
        body: st(&m.body),
        headers: if m.headers.set {
            std::mem::take(&mut m.headers.values)
        } else {
            Vec::new()
        },
        age_ms: m.age.ms.map(|v| v.0 as u64),
    }
}

/// Page URL, referer, request, response and URL of transactions and errors.
pub(super) fn map_http_context<'a, P>(
    c: &mut Context<'a, P>,
    out: &mut ApmEvent<'a>,
    response_first: bool,
) {
    if c.request.is_set() {
        let http = out.http_mut();
        let mut r = HttpRequest::default();
        map_request(&mut c.request, &mut r);
        http.request = Some(r);
        set(&mut http.version, &c.request.http_version);
    }
    let url = |c: &Context<'a, P>, out: &mut ApmEvent<'a>| {
        if c.request.url.is_set() {
            map_request_url(&c.request.url, out.url.get_or_insert_with(Default::default));
        }
    };
    if !response_first {
        url(c, out);
    }
    if c.response.is_set() {
        let mut r = HttpResponse::default();
        map_response(&mut c.response, &mut r);
        out.http_mut().response = Some(r);
    }
    if response_first {
        url(c, out);
    }
    if c.page.is_set() {
        if let Some(u) = &c.page.url {
            if !c.request.url.is_set() {
                out.url = Some(parse_url(u.0.clone()));
            }
        }
        if let Some(r) = &c.page.referer {
            let req = out.http_mut().request.get_or_insert_with(Default::default);
            if req.referrer.is_empty() {
                req.referrer = r.0.clone();
            }
        }
    }
}
