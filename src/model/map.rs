//! Mapping helpers shared by the v2 and RUM v3 decoders: labels, client addresses, URLs, span
//! types and breakdown metrics, each as APM Server computes them.
//!
//! Pure functions of their inputs: no I/O, no configuration, no HTTP.

use std::borrow::Cow;
use std::net::IpAddr;

use super::event::*;
use super::json::{JAny, JHeaders, JInt, JStr, LabelIn, Value};

/// Sets `out` when the nullable string is set.
pub fn set<'a>(out: &mut S<'a>, v: &Option<JStr<'a>>) {
    if let Some(v) = v {
        out.clone_from(&v.0);
    }
}

/// The value of a nullable string, empty when unset.
pub fn st<'a>(v: &Option<JStr<'a>>) -> S<'a> {
    v.as_ref().map(|s| s.0.clone()).unwrap_or_default()
}

/// Milliseconds (as sent) to nanoseconds, truncating like Go's `uint64(ms * 1e6)`.
pub fn ms_to_ns(ms: f64) -> u64 {
    let ns = ms * 1_000_000.0;
    if ns <= 0.0 || ns.is_nan() {
        0
    } else if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns as u64
    }
}

/// `event.outcome` as sent; else from the HTTP status code, a failure from `failure_from` up
/// (500 for a transaction, which served the request; 400 for a span, which sent it); else
/// `unknown`.
pub fn event_outcome<'a>(
    sent: &Option<JStr<'a>>,
    status: Option<JInt>,
    failure_from: i64,
) -> S<'a> {
    match (sent, status) {
        (Some(o), _) => o.0.clone(),
        (None, Some(code)) if code.0 >= failure_from => Cow::Borrowed("failure"),
        (None, Some(_)) => Cow::Borrowed("success"),
        (None, None) => Cow::Borrowed("unknown"),
    }
}

/// Signed milliseconds to nanoseconds (span `start` offsets may be negative).
pub fn ms_to_ns_signed(ms: f64) -> i64 {
    let ns = ms * 1_000_000.0;
    if ns.is_nan() { 0 } else { ns as i64 }
}

/// A name/version pair (service framework, language and runtime), set when either is sent. v2
/// (`name`, `version`) and RUM v3 (`n`, `ve`) send the same pair under different keys.
pub fn name_version<'a>(
    out: &mut Option<NameVersion<'a>>,
    name: &Option<JStr<'a>>,
    version: &Option<JStr<'a>>,
) {
    if name.is_some() || version.is_some() {
        let nv = out.get_or_insert_with(Default::default);
        set(&mut nv.name, name);
        set(&mut nv.version, version);
    }
}

/// The user an event or its metadata names, `None` when it names none. A user replaces the one
/// before it whole (`overwriteUserInMetadataModel`). v2 (`domain`, `id`, `email`, `username`)
/// and RUM v3 (`ud`, `id`, `em`, `un`) send the same four fields under different keys.
pub fn user<'a>(
    domain: &Option<JStr<'a>>,
    id: &Option<JAny>,
    email: &Option<JStr<'a>>,
    name: &Option<JStr<'a>>,
) -> Option<User<'a>> {
    if domain.is_none() && id.is_none() && email.is_none() && name.is_none() {
        return None;
    }
    Some(User {
        domain: st(domain),
        id: id
            .as_ref()
            .map(|i| Cow::Owned(any_to_string(&i.0)))
            .unwrap_or_default(),
        email: st(email),
        name: st(name),
    })
}

/// Go's `fmt.Sprint` of a decoded `string`-or-`int` value (user id, exception code).
pub fn any_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "<nil>".to_owned(),
        other => other.to_string(),
    }
}

/// Event labels over metadata labels: strings and booleans are string labels, numbers numeric
/// labels; `null` values are skipped (the key is sanitised only when the document is written).
pub fn merge_labels<'a>(from: &[(Cow<'a, str>, LabelIn<'a>)], to: &mut Labels<'a>) {
    for (k, v) in from {
        match v {
            LabelIn::Str(s) => to.set_str(k.clone(), LabelValue::One(s.clone())),
            LabelIn::Bool(b) => to.set_str(
                k.clone(),
                LabelValue::One(Cow::Borrowed(if *b { "true" } else { "false" })),
            ),
            LabelIn::Num(n) => to.set_num(k.clone(), NumValue::One(*n)),
            LabelIn::Null | LabelIn::Other => {}
        }
    }
}

/// The metadata's labels, written on every event of the request (the event's own labels are
/// merged over them).
pub fn global_labels<'a>(from: &[(Cow<'a, str>, LabelIn<'a>)], to: &mut ApmEvent<'a>) {
    merge_labels(from, &mut to.labels);
}

/// `user_agent.original` from the agent-reported request headers, values joined with ", ".
pub fn user_agent_from_headers<'a>(h: &JHeaders<'a>, out: &mut ApmEvent<'a>) {
    if !h.set {
        return;
    }
    if let Some(v) = h.get("User-Agent") {
        if !v.is_empty() {
            out.user_agent = if v.len() == 1 {
                v[0].clone()
            } else {
                Cow::Owned(v.join(", "))
            };
        }
    }
}

/// Splits `host:port`, `[v6]:port` or a bare address, as APM Server's `netutil.SplitAddrPort`.
pub fn split_addr_port(s: &str) -> Option<(IpAddr, u16)> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, 0));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let ip = rest[..end].parse::<IpAddr>().ok()?;
        let port = rest[end + 1..]
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        return Some((ip, port));
    }
    let (h, p) = s.rsplit_once(':')?;
    let ip = h.parse::<IpAddr>().ok()?;
    Some((ip, p.parse().unwrap_or(0)))
}

/// The client address from forwarding headers, as APM Server's `netutil.ClientAddrFromHeaders`:
/// `Forwarded` (first element's `for=`), then `X-Real-IP`, then the left-most `X-Forwarded-For`.
pub fn client_addr_from_headers(h: &JHeaders<'_>) -> Option<(IpAddr, u16)> {
    if let Some(vals) = h.get("Forwarded") {
        if let Some(first) = vals.first() {
            let elem = first.split(',').next().unwrap_or("");
            for pair in elem.split(';') {
                let pair = pair.trim();
                if let Some((k, v)) = pair.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("for") {
                        let v = v.trim().trim_matches('"');
                        if let Some(addr) = split_addr_port(v) {
                            return Some(addr);
                        }
                    }
                }
            }
        }
    }
    if let Some(vals) = h.get("X-Real-Ip") {
        if let Some(addr) = vals.first().and_then(|v| split_addr_port(v)) {
            return Some(addr);
        }
    }
    if let Some(vals) = h.get("X-Forwarded-For") {
        if let Some(first) = vals.first() {
            if let Some(addr) = split_addr_port(first.split(',').next().unwrap_or("")) {
                return Some(addr);
            }
        }
    }
    None
}

/// Source and client addresses from the agent-reported request (`mapToClientModel`): only when
/// the request did not already provide them (they are provided on RUM routes). `remote_address`
/// and `headers` are the agent-reported `context.request.socket.remote_address` and
/// `context.request.headers`.
pub fn map_client<'a>(
    remote_address: Option<&JStr<'a>>,
    headers: &JHeaders<'a>,
    out: &mut ApmEvent<'a>,
) {
    let source_has_ip = out.source.as_ref().is_some_and(|s| s.ip.is_some());
    if !source_has_ip {
        if let Some((ip, port)) = remote_address.and_then(|a| split_addr_port(a)) {
            let src = out.source.get_or_insert_with(Default::default);
            src.ip = Some(ip);
            src.port = u32::from(port);
        }
    }
    let client_has_ip = out.client.as_ref().is_some_and(|c| c.ip.is_some());
    if !client_has_ip {
        if let Some(ip) = out.source.as_ref().and_then(|s| s.ip) {
            out.client.get_or_insert_with(Default::default).ip = Some(ip);
        }
        if let Some((ip, port)) = client_addr_from_headers(headers) {
            if let Some(src) = &mut out.source {
                if src.ip.is_some() {
                    src.nat_ip = src.ip;
                }
            }
            let client = out.client.get_or_insert_with(Default::default);
            client.ip = Some(ip);
            client.port = u32::from(port);
            let src = out.source.get_or_insert_with(Default::default);
            src.ip = Some(ip);
            src.port = u32::from(port);
        }
    }
}

/// `http.request.body`: numbers become floats, and empty objects, empty arrays and nulls are
/// dropped recursively (`NormalizeHTTPRequestBody`).
pub fn normalize_body(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) => {
            let out: Vec<Value> = a
                .into_iter()
                .map(|e| normalize_body(e).unwrap_or(Value::Null))
                .collect();
            if out.is_empty() {
                None
            } else {
                Some(Value::Array(out))
            }
        }
        Value::Object(m) => {
            let out: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| normalize_body(v).map(|v| (k, v)))
                .collect();
            if out.is_empty() {
                None
            } else {
                Some(Value::Object(out))
            }
        }
        other => Some(other),
    }
}

/// `url.*` from a page URL (`modelpb.ParseURL(url, "", "")`): keeps `original` and `full`, and
/// splits scheme, domain, port, path, query and fragment when the URL parses.
pub fn parse_url(original: S<'_>) -> Url<'_> {
    let mut u = Url {
        original: original.clone(),
        ..Default::default()
    };
    let s: &str = &original;
    let Some((scheme, rest)) = s.split_once("://") else {
        // A relative URL: Go's url.Parse succeeds; only the path and query are known.
        let (before_frag, frag) = match s.split_once('#') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let (path, query) = match before_frag.split_once('?') {
            Some((a, b)) => (a, Some(b)),
            None => (before_frag, None),
        };
        u.full = original.clone();
        u.path = Cow::Owned(path.to_owned());
        if let Some(q) = query {
            u.query = Cow::Owned(q.to_owned());
        }
        if let Some(f) = frag {
            u.fragment = Cow::Owned(f.to_owned());
        }
        return u;
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
    {
        return u;
    }
    let (before_frag, frag) = match rest.split_once('#') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (before_query, query) = match before_frag.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (before_frag, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').unwrap_or("")),
            None => (host_port, ""),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => (h, p),
            _ => (host_port, ""),
        }
    };
    u.scheme = Cow::Owned(scheme.to_owned());
    u.full = original.clone();
    u.domain = Cow::Owned(host.to_owned());
    u.path = Cow::Owned(path.to_owned());
    if let Some(q) = query {
        u.query = Cow::Owned(q.to_owned());
    }
    if let Some(f) = frag {
        u.fragment = Cow::Owned(f.to_owned());
    }
    u.port = if port.is_empty() {
        match scheme {
            "http" => 80,
            "https" => 443,
            _ => 0,
        }
    } else {
        port.parse().unwrap_or(0)
    };
    u
}

/// `type` split on dots into type, subtype and action when neither subtype nor action is sent.
pub fn split_type<'a>(t: Option<&S<'a>>, sp: &mut Span<'a>) {
    let Some(t) = t else { return };
    let sub = |s: &str| -> S<'a> {
        match t {
            Cow::Borrowed(b) => {
                let start = s.as_ptr() as usize - b.as_ptr() as usize;
                Cow::Borrowed(&b[start..start + s.len()])
            }
            Cow::Owned(_) => Cow::Owned(s.to_owned()),
        }
    };
    match t.split_once('.') {
        Some((ty, rest)) => {
            sp.r#type = sub(ty);
            match rest.split_once('.') {
                Some((st, ac)) => {
                    sp.subtype = sub(st);
                    sp.action = sub(ac);
                }
                None => sp.subtype = sub(rest),
            }
        }
        None => sp.r#type = t.clone(),
    }
}

/// `service.target` from a destination resource (`^([a-z0-9]+)(?:/(\w+))?$`; otherwise the
/// whole resource is the name).
pub fn target_from_resource<'a>(res: &S<'a>) -> ServiceTarget<'a> {
    let (ty, name) = match res.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (res.as_ref(), None),
    };
    let ty_ok = !ty.is_empty()
        && ty
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let name_ok =
        name.is_none_or(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'));
    if ty_ok && name_ok {
        ServiceTarget {
            r#type: Cow::Owned(ty.to_owned()),
            name: Cow::Owned(name.unwrap_or("").to_owned()),
        }
    } else {
        ServiceTarget {
            r#type: Cow::Borrowed(""),
            name: res.clone(),
        }
    }
}

/// The metric type names APM Server knows; anything else is unspecified.
pub fn metric_type(t: Option<&str>) -> &'static str {
    match t {
        Some("gauge") => "gauge",
        Some("counter") => "counter",
        Some("histogram") => "histogram",
        Some("summary") => "summary",
        _ => "",
    }
}

/// Breakdown metrics (`SetInternalMetrics`): `span.self_time.{count,sum.us}` move onto the span
/// and the samples are dropped; `false` when no known sample was found.
pub fn set_internal_metrics<'a>(ms: &mut Metricset<'a>, out: &mut ApmEvent<'a>) -> bool {
    let mut have = false;
    if let Some(span) = &mut out.span {
        for s in &ms.samples {
            match s.name.as_ref() {
                "span.self_time.count" => {
                    let st = span.self_time.get_or_insert((0, 0));
                    st.0 = s.value as i64 as u64;
                    have = true;
                }
                "span.self_time.sum.us" => {
                    let st = span.self_time.get_or_insert((0, 0));
                    st.1 = (s.value * 1000.0) as i64 as u64;
                    have = true;
                }
                _ => {}
            }
        }
    }
    if have {
        ms.name = "span_breakdown";
    }
    ms.samples.clear();
    have
}
