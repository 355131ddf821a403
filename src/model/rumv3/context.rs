//! The context (`c`) of RUM v3 transactions and errors: page, request, response, user, service:
//! wire types, validation and mapping.

use super::metadata::{NameVersion3, User, map_user, nv, nv_max, validate_user};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{IsSet, JHeaders, JInt, JMap, JObject, JStr, LabelIn, json_struct};
use crate::model::map::*;

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

pub(super) fn validate_context(c: &Context<'_>) -> VResult {
    labels(&c.g.0, "g")?;
    nested(&c.se, "se", |s| {
        nested(&s.a, "a", nv_max)?;
        max_len(&s.en, KEYWORD_MAX_LENGTH, "en")?;
        nested(&s.fw, "fw", nv_max)?;
        nested(&s.la, "la", nv_max)?;
        max_len(&s.n, KEYWORD_MAX_LENGTH, "n")?;
        alnum_ext(&s.n, "n")?;
        nested(&s.ru, "ru", nv_max)?;
        max_len(&s.ve, KEYWORD_MAX_LENGTH, "ve")
    })?;
    nested(&c.u, "u", validate_user)?;
    nested(&c.q, "q", |q| {
        max_len(&q.hve, KEYWORD_MAX_LENGTH, "hve")?;
        max_len(&q.mt, KEYWORD_MAX_LENGTH, "mt")?;
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
    if let Some(u) = map_user(u) {
        out.user = Some(u);
    }
}

pub(super) fn map_context<'a>(c: &Context<'a>, out: &mut ApmEvent<'a>) {
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
