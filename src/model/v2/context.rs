//! The `context` of v2 transactions and errors (HTTP request and response, user, service, page,
//! message, custom): wire types, validation and mapping.

use std::borrow::Cow;

use super::metadata::{
    IdOnly, NameOnly, NameVersionIn, ServiceNode, User, map_user, name_version, name_version_max,
    validate_user,
};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{
    IsSet, JAny, JBool, JHeaders, JInt, JMap, JObject, JStr, LabelIn, json_struct,
};
use crate::model::map::*;

json_struct! {
    /// `context` of transactions and errors.
    pub struct Context<'a>: "v2.context" {
        /// Free-form custom context.
        custom: JObject = "custom" / "Custom",
        /// Labels.
        tags: JMap<'a, LabelIn<'a>> = "tags" / "Tags",
        /// Per-event service information.
        service: ContextService<'a> = "service" / "Service",
        /// Cloud origin.
        cloud: ContextCloud<'a> = "cloud" / "Cloud",
        /// Per-event user.
        user: User<'a> = "user" / "User",
        /// RUM page.
        page: ContextPage<'a> = "page" / "Page",
        /// HTTP request.
        request: ContextRequest<'a> = "request" / "Request",
        /// Messaging.
        message: ContextMessage<'a> = "message" / "Message",
        /// HTTP response.
        response: ContextResponse<'a> = "response" / "Response",
    }
}

json_struct! {
    /// `context.service`
    pub struct ContextService<'a>: "v2.contextService" {
        /// Agent.
        agent: ContextServiceAgent<'a> = "agent" / "Agent",
        /// Environment.
        environment: Option<JStr<'a>> = "environment" / "Environment",
        /// Framework.
        framework: NameVersionIn<'a> = "framework" / "Framework",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Language.
        language: NameVersionIn<'a> = "language" / "Language",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Node.
        node: ServiceNode<'a> = "node" / "Node",
        /// Origin.
        origin: ServiceOriginIn<'a> = "origin" / "Origin",
        /// Runtime.
        runtime: NameVersionIn<'a> = "runtime" / "Runtime",
        /// Target.
        target: ServiceTargetIn<'a> = "target" / "Target",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `context.service.agent`
    pub struct ContextServiceAgent<'a>: "v2.contextServiceAgent" {
        /// Ephemeral id.
        ephemeral_id: Option<JStr<'a>> = "ephemeral_id" / "EphemeralID",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `context.service.origin`
    pub struct ServiceOriginIn<'a>: "v2.contextServiceOrigin" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `context.service.target`
    pub struct ServiceTargetIn<'a>: "v2.contextServiceTarget" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `context.cloud`
    pub struct ContextCloud<'a>: "v2.contextCloud" {
        /// Origin.
        origin: ContextCloudOrigin<'a> = "origin" / "Origin",
    }
}

json_struct! {
    /// `context.cloud.origin`
    pub struct ContextCloudOrigin<'a>: "v2.contextCloudOrigin" {
        /// Account.
        account: IdOnly<'a> = "account" / "Account",
        /// Provider.
        provider: Option<JStr<'a>> = "provider" / "Provider",
        /// Region.
        region: Option<JStr<'a>> = "region" / "Region",
        /// Service.
        service: NameOnly<'a> = "service" / "Service",
    }
}

json_struct! {
    /// `context.page`
    pub struct ContextPage<'a>: "v2.contextPage" {
        /// Referer.
        referer: Option<JStr<'a>> = "referer" / "Referer",
        /// Page URL.
        url: Option<JStr<'a>> = "url" / "URL",
    }
}

json_struct! {
    /// `context.request`
    pub struct ContextRequest<'a>: "v2.contextRequest" {
        /// Cookies.
        cookies: JObject = "cookies" / "Cookies",
        /// Environment.
        env: JObject = "env" / "Env",
        /// Body: a string or an object.
        body: Option<JAny> = "body" / "Body",
        /// Headers.
        headers: JHeaders<'a> = "headers" / "Headers",
        /// URL.
        url: ContextRequestUrl<'a> = "url" / "URL",
        /// HTTP version.
        http_version: Option<JStr<'a>> = "http_version" / "HTTPVersion",
        /// Method.
        method: Option<JStr<'a>> = "method" / "Method",
        /// Socket.
        socket: ContextRequestSocket<'a> = "socket" / "Socket",
    }
}

json_struct! {
    /// `context.request.url`
    pub struct ContextRequestUrl<'a>: "v2.contextRequestURL" {
        /// Port: a string or an integer.
        port: Option<JAny> = "port" / "Port",
        /// Full URL.
        full: Option<JStr<'a>> = "full" / "Full",
        /// Fragment.
        hash: Option<JStr<'a>> = "hash" / "Hash",
        /// Host name.
        hostname: Option<JStr<'a>> = "hostname" / "Hostname",
        /// Path.
        pathname: Option<JStr<'a>> = "pathname" / "Path",
        /// Protocol.
        protocol: Option<JStr<'a>> = "protocol" / "Protocol",
        /// Raw URL.
        raw: Option<JStr<'a>> = "raw" / "Raw",
        /// Query string.
        search: Option<JStr<'a>> = "search" / "Search",
    }
}

json_struct! {
    /// `context.request.socket`
    pub struct ContextRequestSocket<'a>: "v2.contextRequestSocket" {
        /// Remote address.
        remote_address: Option<JStr<'a>> = "remote_address" / "RemoteAddress",
        /// Deprecated.
        encrypted: Option<JBool> = "encrypted" / "Encrypted",
    }
}

json_struct! {
    /// `context.message`
    pub struct ContextMessage<'a>: "v2.contextMessage" {
        /// Headers.
        headers: JHeaders<'a> = "headers" / "Headers",
        /// Body.
        body: Option<JStr<'a>> = "body" / "Body",
        /// Queue.
        queue: NameOnly<'a> = "queue" / "Queue",
        /// Routing key.
        routing_key: Option<JStr<'a>> = "routing_key" / "RoutingKey",
        /// Age.
        age: MessageAge<'a> = "age" / "Age",
    }
}

json_struct! {
    /// `context.message.age`
    pub struct MessageAge<'a>: "v2.contextMessageAge" {
        /// Milliseconds.
        ms: Option<JInt> = "ms" / "Milliseconds",
    }
}

json_struct! {
    /// `context.response`
    pub struct ContextResponse<'a>: "v2.contextResponse" {
        /// Headers.
        headers: JHeaders<'a> = "headers" / "Headers",
        /// Status code.
        status_code: Option<JInt> = "status_code" / "StatusCode",
        /// Transfer size.
        transfer_size: Option<JInt> = "transfer_size" / "TransferSize",
        /// Decoded body size.
        decoded_body_size: Option<JInt> = "decoded_body_size" / "DecodedBodySize",
        /// Encoded body size.
        encoded_body_size: Option<JInt> = "encoded_body_size" / "EncodedBodySize",
        /// Finished.
        finished: Option<JBool> = "finished" / "Finished",
        /// Headers sent.
        headers_sent: Option<JBool> = "headers_sent" / "HeadersSent",
    }
}

pub(super) fn validate_context(c: &Context<'_>) -> VResult {
    labels(&c.tags.0, "tags")?;
    nested(&c.service, "service", validate_context_service)?;
    nested(&c.cloud, "cloud", |_| Ok(()))?;
    nested(&c.user, "user", validate_user)?;
    nested(&c.page, "page", |_| Ok(()))?;
    nested(&c.request, "request", |r| {
        if let Some(JAny(b)) = &r.body {
            if !matches!(
                b,
                serde_json::Value::String(_)
                    | serde_json::Value::Object(_)
                    | serde_json::Value::Null
            ) {
                return Err("'body': validation rule 'inputTypes(string;object)' violated ".into());
            }
        }
        nested(&r.url, "url", |u| {
            string_or_int(&u.port, "port", KEYWORD_MAX_LENGTH, true)?;
            max_len(&u.full, KEYWORD_MAX_LENGTH, "full")?;
            max_len(&u.hash, KEYWORD_MAX_LENGTH, "hash")?;
            max_len(&u.hostname, KEYWORD_MAX_LENGTH, "hostname")?;
            max_len(&u.pathname, KEYWORD_MAX_LENGTH, "pathname")?;
            max_len(&u.protocol, KEYWORD_MAX_LENGTH, "protocol")?;
            max_len(&u.raw, KEYWORD_MAX_LENGTH, "raw")?;
            max_len(&u.search, KEYWORD_MAX_LENGTH, "search")
        })?;
        max_len(&r.http_version, KEYWORD_MAX_LENGTH, "http_version")?;
        max_len(&r.method, KEYWORD_MAX_LENGTH, "method")?;
        required(&r.method, "method")
    })?;
    nested(&c.message, "message", validate_message)?;
    Ok(())
}

pub(super) fn validate_message(m: &ContextMessage<'_>) -> VResult {
    nested(&m.queue, "queue", |q| {
        max_len(&q.name, KEYWORD_MAX_LENGTH, "name")
    })
}

pub(super) fn validate_context_service(s: &ContextService<'_>) -> VResult {
    nested(&s.agent, "agent", |a| {
        max_len(&a.ephemeral_id, KEYWORD_MAX_LENGTH, "ephemeral_id")?;
        max_len(&a.name, KEYWORD_MAX_LENGTH, "name")?;
        max_len(&a.version, KEYWORD_MAX_LENGTH, "version")
    })?;
    max_len(&s.environment, KEYWORD_MAX_LENGTH, "environment")?;
    nested(&s.framework, "framework", name_version_max)?;
    nested(&s.language, "language", name_version_max)?;
    max_len(&s.name, KEYWORD_MAX_LENGTH, "name")?;
    alnum_ext(&s.name, "name")?;
    nested(&s.node, "node", |n| {
        max_len(&n.configured_name, KEYWORD_MAX_LENGTH, "configured_name")
    })?;
    nested(&s.runtime, "runtime", name_version_max)?;
    nested(&s.target, "target", |t| {
        any_of(t.r#type.is_some() || t.name.is_some(), "type;name")
    })?;
    max_len(&s.version, KEYWORD_MAX_LENGTH, "version")
}

pub(super) fn map_context_service<'a>(s: &ContextService<'a>, out: &mut Service<'a>) {
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

pub(super) fn map_context_agent<'a>(a: &ContextServiceAgent<'a>, out: &mut Agent<'a>) {
    set(&mut out.name, &a.name);
    set(&mut out.version, &a.version);
    set(&mut out.ephemeral_id, &a.ephemeral_id);
}

pub(super) fn overwrite_user<'a>(u: &User<'a>, out: &mut ApmEvent<'a>) {
    if let Some(u) = map_user(u) {
        out.user = Some(u);
    }
}

fn map_request<'a>(r: &ContextRequest<'a>, out: &mut HttpRequest<'a>) {
    set(&mut out.method, &r.method);
    if r.env.is_set() {
        out.env = Some(r.env.0.clone());
    }
    if let Some(b) = &r.body {
        out.body = normalize_body(b.0.clone());
    }
    if r.cookies.is_set() {
        out.cookies = Some(r.cookies.0.clone());
    }
    if r.headers.set {
        out.headers = r.headers.values.clone();
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

fn map_response<'a>(r: &ContextResponse<'a>, out: &mut HttpResponse<'a>) {
    out.finished = r.finished.map(|b| b.0);
    if r.headers.set {
        out.headers = r.headers.values.clone();
    }
    out.headers_sent = r.headers_sent.map(|b| b.0);
    if let Some(c) = r.status_code {
        out.status_code = c.0 as u32;
    }
    out.transfer_size = r.transfer_size.map(|v| v.0 as u64);
    out.encoded_body_size = r.encoded_body_size.map(|v| v.0 as u64);
    out.decoded_body_size = r.decoded_body_size.map(|v| v.0 as u64);
}

pub(super) fn map_message<'a>(m: &ContextMessage<'a>) -> Message<'a> {
    Message {
        queue_name: st(&m.queue.name),
        routing_key: st(&m.routing_key),
        body: st(&m.body),
        headers: if m.headers.set {
            m.headers.values.clone()
        } else {
            Vec::new()
        },
        age_ms: m.age.ms.map(|v| v.0 as u64),
    }
}

/// Page URL, referer, request, response and URL of transactions and errors.
pub(super) fn map_http_context<'a>(c: &Context<'a>, out: &mut ApmEvent<'a>, response_first: bool) {
    let req = |out: &mut ApmEvent<'a>| {
        if c.request.is_set() {
            let http = out.http_mut();
            let mut r = HttpRequest::default();
            map_request(&c.request, &mut r);
            http.request = Some(r);
            set(&mut http.version, &c.request.http_version);
        }
    };
    let resp = |out: &mut ApmEvent<'a>| {
        if c.response.is_set() {
            let mut r = HttpResponse::default();
            map_response(&c.response, &mut r);
            out.http_mut().response = Some(r);
        }
    };
    let url = |out: &mut ApmEvent<'a>| {
        if c.request.url.is_set() {
            map_request_url(&c.request.url, out.url.get_or_insert_with(Default::default));
        }
    };
    if response_first {
        req(out);
        resp(out);
        url(out);
    } else {
        req(out);
        url(out);
        resp(out);
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
