//! The OpenTelemetry bridge: `otel.attributes` and `otel.span_kind` that Elastic agents send
//! for spans created through the OTel API, translated as APM Server translates OTLP spans
//! (`apm-data/input/otlp/traces.go`, `TranslateTransaction` / `TranslateSpan`), restricted to
//! what an intake v2 event can carry.
//!
//! The translation itself works on attributes as OTel's pdata holds them ([`Attr`]), so that
//! the OTLP intake (`super::otlp`) maps the attributes of real OTLP spans with the same code:
//! [`transaction_attributes`] and [`span_attributes`] are shared, the bridge-only defaults
//! (span kind, the status an agent ended a bridged span with) stay here.
//!
//! Pure mapping: it never rejects an event (unknown attributes become labels).

use std::borrow::Cow;

use super::event::*;
use super::json::rules::KEYWORD_MAX_LENGTH;
use super::json::{Object, Value};
use super::map::parse_url;

/// An attribute value as OTel's pdata holds it (after APM Server's JSON conversion, for the
/// bridge).
#[derive(Debug, Clone)]
pub(crate) enum Attr<'v> {
    /// A string.
    Str(&'v str),
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// An array.
    Slice(Vec<Attr<'v>>),
}

fn is_double_attribute(k: &str) -> bool {
    matches!(
        k,
        "aws.dynamodb.provisioned_read_capacity" | "aws.dynamodb.provisioned_write_capacity"
    )
}

fn attr<'v>(k: &str, v: &'v Value) -> Option<Attr<'v>> {
    match v {
        Value::String(s) => Some(Attr::Str(s)),
        Value::Bool(b) => Some(Attr::Bool(*b)),
        Value::Number(n) => {
            if !is_double_attribute(k) {
                if let Some(i) = n.as_i64() {
                    return Some(Attr::Int(i));
                }
            }
            n.as_f64().map(Attr::Double)
        }
        Value::Array(a) => Some(Attr::Slice(a.iter().filter_map(|e| attr(k, e)).collect())),
        _ => None,
    }
}

/// Strings are truncated to [`KEYWORD_MAX_LENGTH`] runes, like `truncate` in the OTLP
/// translation (where the limit is called `keywordLength`).
pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(KEYWORD_MAX_LENGTH) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub(crate) fn owned(s: &str) -> S<'static> {
    Cow::Owned(s.to_owned())
}

/// The `network.*` field an OpenTelemetry `net.host.connection.*` or `net.host.carrier.*`
/// attribute sets, for transactions and spans alike.
fn network_attribute<'n, 'a>(k: &str) -> Option<fn(&'n mut Network<'a>) -> &'n mut S<'a>> {
    Some(match k {
        "net.host.connection.type" => |n| &mut n.connection_type,
        "net.host.connection.subtype" => |n| &mut n.connection_subtype,
        "net.host.carrier.mcc" => |n| &mut n.carrier_mcc,
        "net.host.carrier.mnc" => |n| &mut n.carrier_mnc,
        "net.host.carrier.name" => |n| &mut n.carrier_name,
        "net.host.carrier.icc" => |n| &mut n.carrier_icc,
        _ => return None,
    })
}

/// Sets the `network.*` field of a network attribute (see [`network_attribute`]).
fn set_network(k: &str, s: &str, ev: &mut ApmEvent<'_>) {
    if let Some(field) = network_attribute(k) {
        *field(ev.network.get_or_insert_with(Default::default)) = owned(s);
    }
}

/// A label key as the OTLP translation writes it (`replaceDots`).
pub(crate) fn label_key(k: &str) -> S<'static> {
    Cow::Owned(k.replace('.', "_"))
}

/// `ifaceAttributeValue`: the Go value a label is made of.
#[derive(Debug)]
enum Iface {
    S(String),
    F(f64),
    Many(Vec<Iface>),
}

fn iface(a: &Attr<'_>) -> Iface {
    match a {
        Attr::Str(s) => Iface::S(truncate(s).to_owned()),
        Attr::Bool(b) => Iface::S(b.to_string()),
        Attr::Int(i) => Iface::F(*i as f64),
        Attr::Double(d) => Iface::F(*d),
        Attr::Slice(v) => Iface::Many(v.iter().map(iface).collect()),
    }
}

fn set_label(k: S<'static>, ev: &mut ApmEvent<'_>, v: Iface) {
    match v {
        Iface::S(s) => ev.labels.set_str(k, LabelValue::One(Cow::Owned(s))),
        Iface::F(f) => ev.labels.set_num(k, NumValue::One(f)),
        Iface::Many(vals) => match vals.first() {
            None | Some(Iface::Many(_)) => {}
            Some(Iface::S(_)) => {
                let strs = vals
                    .into_iter()
                    .map(|v| match v {
                        Iface::S(s) => Cow::Owned(s),
                        Iface::F(f) => Cow::Owned(f.to_string()),
                        Iface::Many(_) => Cow::Borrowed(""),
                    })
                    .collect();
                ev.labels.set_str(k, LabelValue::Many(strs));
            }
            Some(Iface::F(_)) => {
                let nums = vals
                    .into_iter()
                    .filter_map(|v| if let Iface::F(f) = v { Some(f) } else { None })
                    .collect();
                ev.labels.set_num(k, NumValue::Many(nums));
            }
        },
    }
}

/// `setLabel(key, event, ifaceAttributeValue(v))`: an attribute as a label, under `key` as
/// given (callers replace dots where APM Server does).
pub(crate) fn set_attribute_label(key: S<'static>, a: &Attr<'_>, ev: &mut ApmEvent<'_>) {
    set_label(key, ev, iface(a));
}

fn http_status_result(code: u32) -> S<'static> {
    match code / 100 {
        1..=5 => owned(&format!("HTTP {}xx", code / 100)),
        _ => owned(&format!("HTTP {code}")),
    }
}

/// The bridge's attributes as pdata values.
fn json_attributes(attrs: &Object) -> impl Iterator<Item = (&str, Attr<'_>)> {
    attrs
        .iter()
        .filter_map(|(k, v)| attr(k, v).map(|a| (k.as_str(), a)))
}

/// Translates a bridged transaction's attributes (`mapOTelAttributesTransaction`).
pub fn translate_transaction<'a>(attrs: &Object, span_kind: Option<S<'a>>, ev: &mut ApmEvent<'a>) {
    if let Some(k) = span_kind {
        ev.span_mut().kind = k;
    }
    transaction_attributes(json_attributes(attrs), ev);
    // Bridged transactions are translated with the span status the agent ended them with, which
    // the intake format does not carry: APM Server treats it as OK (result "Success", an unknown
    // outcome becomes "success").
    let tx = ev.transaction_mut();
    if tx.result.is_empty() {
        tx.result = Cow::Borrowed("Success");
    }
    let ev_f = ev.event_mut();
    if ev_f.outcome == "unknown" {
        ev_f.outcome = Cow::Borrowed("success");
    }
    let ty = ev
        .transaction
        .as_ref()
        .map(|t| t.r#type.to_string())
        .unwrap_or_default();
    let sp = ev.span_mut();
    if sp.kind.is_empty() {
        sp.kind = Cow::Borrowed(match ty.as_str() {
            "messaging" => "CONSUMER",
            "request" => "SERVER",
            _ => "INTERNAL",
        });
    }
}

/// The attributes of a transaction (`TranslateTransaction` up to the span status, which the
/// caller applies): HTTP, RPC, messaging, network, client and labels.
pub(crate) fn transaction_attributes<'v>(
    attrs: impl IntoIterator<Item = (&'v str, Attr<'v>)>,
    ev: &mut ApmEvent<'_>,
) {
    let (mut is_http, mut is_rpc, mut is_messaging) = (false, false, false);
    let (mut http_url, mut http_host, mut http_scheme, mut http_server_name, mut net_host_name) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    let mut net_host_port = 0i64;
    let mut queue_name: Option<String> = None;
    let mut status_code = 0u32;
    for (k, a) in attrs {
        let lk = label_key(k);
        match a {
            Attr::Slice(ref items) if k == "elastic.profiler_stack_trace_ids" => {
                let ids: Vec<S<'static>> = items
                    .iter()
                    .filter_map(|i| {
                        if let Attr::Str(s) = i {
                            Some(owned(s))
                        } else {
                            None
                        }
                    })
                    .collect();
                ev.transaction_mut().profiler_stack_trace_ids = ids;
            }
            Attr::Slice(_) | Attr::Bool(_) | Attr::Double(_) => set_label(lk, ev, iface(&a)),
            Attr::Int(i) => match k {
                "http.status_code" | "http.response.status_code" => {
                    is_http = true;
                    status_code = i as u32;
                    ev.http_mut()
                        .response
                        .get_or_insert_with(Default::default)
                        .status_code = status_code;
                }
                "net.peer.port" => ev.source.get_or_insert_with(Default::default).port = i as u32,
                "net.host.port" => net_host_port = i,
                "rpc.grpc.status_code" => {
                    is_rpc = true;
                    ev.transaction_mut().result = owned(grpc_code(i));
                }
                _ => set_label(lk, ev, iface(&a)),
            },
            Attr::Str(s) => {
                let s = truncate(s);
                match k {
                    "http.method" | "http.request.method" => {
                        is_http = true;
                        ev.http_mut()
                            .request
                            .get_or_insert_with(Default::default)
                            .method = owned(s);
                    }
                    "http.url" | "http.target" | "http.path" | "url.full" => {
                        is_http = true;
                        http_url = s.to_owned();
                    }
                    "http.host" => {
                        is_http = true;
                        http_host = s.to_owned();
                    }
                    "http.scheme" => {
                        is_http = true;
                        http_scheme = s.to_owned();
                    }
                    "http.status_code" | "http.response.status_code" => {
                        if let Ok(c) = s.parse::<u32>() {
                            is_http = true;
                            status_code = c;
                            ev.http_mut()
                                .response
                                .get_or_insert_with(Default::default)
                                .status_code = c;
                        }
                    }
                    "http.protocol" => match s.strip_prefix("HTTP/") {
                        Some(v) => {
                            is_http = true;
                            ev.http_mut().version = owned(v);
                        }
                        None => ev.labels.set_str(lk, LabelValue::One(owned(s))),
                    },
                    "http.flavor" => {
                        is_http = true;
                        ev.http_mut().version = owned(s);
                    }
                    "http.server_name" => {
                        is_http = true;
                        http_server_name = s.to_owned();
                    }
                    "http.client_ip" => {
                        if let Ok(ip) = s.parse() {
                            ev.client.get_or_insert_with(Default::default).ip = Some(ip);
                        }
                    }
                    "http.user_agent" | "user_agent.original" => ev.user_agent = owned(s),
                    "net.peer.ip" => {
                        let src = ev.source.get_or_insert_with(Default::default);
                        if let Ok(ip) = s.parse() {
                            src.ip = Some(ip);
                        }
                    }
                    "net.peer.name" => {
                        ev.source.get_or_insert_with(Default::default).domain = owned(s)
                    }
                    "net.host.name" => net_host_name = s.to_owned(),
                    k if network_attribute(k).is_some() => set_network(k, s, ev),
                    "message_bus.destination" | "messaging.destination" => {
                        queue_name = Some(s.to_owned());
                        is_messaging = true;
                    }
                    "rpc.system" | "rpc.grpc.status_code" => is_rpc = true,
                    "rpc.service" | "rpc.method" => {}
                    "type" => ev.transaction_mut().r#type = owned(s),
                    "session.id" => ev.session.get_or_insert_with(Default::default).id = owned(s),
                    "service.version" => ev.service.version = owned(s),
                    _ => ev.labels.set_str(lk, LabelValue::One(owned(s))),
                }
            }
        }
    }
    let tx = ev.transaction_mut();
    if tx.r#type.is_empty() {
        tx.r#type = Cow::Borrowed(if is_messaging {
            "messaging"
        } else if is_http || is_rpc {
            "request"
        } else {
            "unknown"
        });
    }
    if is_http {
        if status_code > 0 {
            let ev_f = ev.event_mut();
            if ev_f.outcome == "unknown" {
                ev_f.outcome = Cow::Borrowed(if status_code >= 500 {
                    "failure"
                } else {
                    "success"
                });
            }
            let tx = ev.transaction_mut();
            if tx.result.is_empty() {
                tx.result = http_status_result(status_code);
            }
        }
        let mut host = http_host;
        if host.is_empty() {
            host = if !http_server_name.is_empty() {
                http_server_name
            } else if !net_host_name.is_empty() {
                net_host_name
            } else {
                ev.host
                    .as_ref()
                    .map(|h| h.hostname.to_string())
                    .unwrap_or_default()
            };
            if !host.is_empty() && net_host_port > 0 {
                host = if host.contains(':') {
                    format!("[{host}]:{net_host_port}")
                } else {
                    format!("{host}:{net_host_port}")
                };
            }
        }
        ev.url = Some(url_from_parts(&http_url, &host, &http_scheme));
    }
    if let Some(q) = queue_name {
        ev.transaction_mut().message = Some(Message {
            queue_name: owned(&q),
            ..Default::default()
        });
    }
    if ev.client.is_none() {
        if let Some(src) = &ev.source {
            ev.client = Some(Client {
                ip: src.ip,
                port: src.port,
                domain: src.domain.clone(),
            });
        }
    }
}

/// `modelpb.ParseURL(original, host, scheme)` as the OTLP translation uses it.
fn url_from_parts(original: &str, host: &str, scheme: &str) -> Url<'static> {
    let mut u = parse_url(Cow::Owned(original.to_owned()));
    if u.domain.is_empty() && !host.is_empty() {
        let (h, p) = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => {
                (h, p.parse().unwrap_or(0))
            }
            _ => (host, 0),
        };
        u.domain = owned(h.trim_start_matches('[').trim_end_matches(']'));
        if p != 0 {
            u.port = p;
        }
    }
    if u.scheme.is_empty() && !scheme.is_empty() {
        u.scheme = owned(scheme);
    }
    if u.full.is_empty() && !u.domain.is_empty() {
        let scheme = if u.scheme.is_empty() {
            "http"
        } else {
            &u.scheme
        };
        u.full = owned(&format!("{scheme}://{host}{original}"));
    }
    u
}

fn grpc_code(i: i64) -> &'static str {
    match i {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Code(unknown)",
    }
}

fn scheme_default_port(s: &str) -> u32 {
    match s {
        "http" => 80,
        "https" => 443,
        _ => 0,
    }
}

/// Translates a bridged span's attributes (`mapOTelAttributesSpan`).
pub fn translate_span<'a>(attrs: &Object, span_kind: Option<S<'a>>, ev: &mut ApmEvent<'a>) {
    let kind = span_kind.as_ref().map(|k| k.to_string());
    let known_kind = matches!(
        kind.as_deref(),
        Some("INTERNAL" | "SERVER" | "CLIENT" | "PRODUCER" | "CONSUMER")
    );
    if let Some(k) = span_kind {
        ev.span_mut().kind = k;
    }
    span_attributes(json_attributes(attrs), kind.as_deref(), ev);
    if !known_kind {
        let span_type = ev.span_mut().r#type.clone();
        ev.span_mut().kind = Cow::Borrowed(match span_type.as_ref() {
            "db" | "external" | "storage" => "CLIENT",
            _ => "INTERNAL",
        });
    }
}

/// The attributes of a span (`TranslateSpan`): type and subtype, HTTP, database, messaging,
/// RPC, destination and `service.target`, labels. `kind` is the OTel span kind's name
/// (`INTERNAL`, `PRODUCER`, ...).
pub(crate) fn span_attributes<'v>(
    attrs: impl IntoIterator<Item = (&'v str, Attr<'v>)>,
    kind: Option<&str>,
    ev: &mut ApmEvent<'_>,
) {
    let (mut net_peer_name, mut net_peer_ip, mut peer_service, mut peer_address) =
        (String::new(), String::new(), String::new(), String::new());
    let mut net_peer_port = 0i64;
    let (mut http_url, mut http_host, mut http_target, mut http_scheme) = (
        String::new(),
        String::new(),
        String::new(),
        "http".to_owned(),
    );
    let (mut msg_system, mut msg_operation, mut msg_temp) = (String::new(), String::new(), false);
    let (mut rpc_system, mut rpc_service) = (String::new(), String::new());
    let (mut is_http, mut is_db, mut is_rpc, mut is_messaging) = (false, false, false, false);
    let mut db = Db::default();
    let mut queue_name = String::new();
    let mut status_code = 0u32;
    for (k, a) in attrs {
        let lk = label_key(k);
        match a {
            Attr::Slice(_) => set_label(lk, ev, iface(&a)),
            Attr::Bool(b) => {
                if k == "messaging.temp_destination" {
                    msg_temp = b;
                }
                ev.labels
                    .set_str(lk, LabelValue::One(owned(&b.to_string())));
            }
            Attr::Double(d) => ev.labels.set_num(lk, NumValue::One(d)),
            Attr::Int(i) => match k {
                "http.status_code" | "http.response.status_code" => {
                    status_code = i as u32;
                    ev.http_mut()
                        .response
                        .get_or_insert_with(Default::default)
                        .status_code = status_code;
                    is_http = true;
                }
                "net.peer.port" | "peer.port" | "server.port" => net_peer_port = i,
                "rpc.grpc.status_code" => {
                    rpc_system = "grpc".into();
                    is_rpc = true;
                }
                _ => ev.labels.set_num(lk, NumValue::One(i as f64)),
            },
            Attr::Str(raw) => {
                let s = truncate(raw);
                match k {
                    "http.host" => {
                        http_host = s.into();
                        is_http = true;
                    }
                    "http.scheme" => {
                        http_scheme = s.into();
                        is_http = true;
                    }
                    "http.target" => {
                        http_target = s.into();
                        is_http = true;
                    }
                    "http.url" | "url.full" => {
                        http_url = s.into();
                        is_http = true;
                    }
                    "http.method" | "http.request.method" => {
                        ev.http_mut()
                            .request
                            .get_or_insert_with(Default::default)
                            .method = owned(s);
                        is_http = true;
                    }
                    "sql.query" | "db.statement" => {
                        if k == "sql.query" && db.r#type.is_empty() {
                            db.r#type = Cow::Borrowed("sql");
                        }
                        db.statement = owned(raw);
                        is_db = true;
                    }
                    "db.name" | "db.instance" | "db.elasticsearch.cluster.name" => {
                        db.instance = owned(s);
                        is_db = true;
                    }
                    "db.system" | "db.type" => {
                        db.r#type = owned(s);
                        is_db = true;
                    }
                    "db.user" => {
                        db.user_name = owned(s);
                        is_db = true;
                    }
                    "net.peer.name" | "peer.hostname" | "server.address" => {
                        net_peer_name = s.into()
                    }
                    "net.peer.ip" | "peer.ipv4" | "peer.ipv6" => net_peer_ip = s.into(),
                    "peer.address" => peer_address = s.into(),
                    k if network_attribute(k).is_some() => set_network(k, s, ev),
                    "session.id" => ev.session.get_or_insert_with(Default::default).id = owned(s),
                    "message_bus.destination" | "messaging.destination" => {
                        queue_name = s.into();
                        is_messaging = true;
                    }
                    "messaging.operation" => {
                        msg_operation = s.into();
                        is_messaging = true;
                    }
                    "messaging.system" => {
                        msg_system = s.into();
                        is_messaging = true;
                    }
                    "rpc.system" => {
                        rpc_system = s.into();
                        is_rpc = true;
                    }
                    "rpc.service" => {
                        rpc_service = s.into();
                        is_rpc = true;
                    }
                    "rpc.grpc.status_code" => {
                        rpc_system = "grpc".into();
                        is_rpc = true;
                    }
                    "rpc.method" | "span.kind" | "code.stacktrace" => {}
                    "peer.service" => peer_service = s.into(),
                    _ => ev.labels.set_str(lk, LabelValue::One(owned(s))),
                }
            }
        }
    }
    if net_peer_name.is_empty()
        && (!peer_address.contains(':') || peer_address.parse::<std::net::IpAddr>().is_ok())
    {
        net_peer_name = peer_address.clone();
    }
    let mut dest_port = net_peer_port;
    let mut dest_addr = if net_peer_name.is_empty() {
        net_peer_ip
    } else {
        net_peer_name
    };
    let mut full: Option<Url<'static>> = None;
    if !http_url.is_empty() {
        full = Some(parse_url(owned(&http_url)));
    } else if !http_target.is_empty() {
        if http_host.is_empty() {
            http_host = dest_addr.clone();
            if dest_port > 0 {
                http_host = format!("{http_host}:{dest_port}");
            }
        }
        http_url = format!("{http_scheme}://{http_host}{http_target}");
        full = Some(parse_url(owned(&http_url)));
    }
    let mut explicit_port = false;
    if let Some(u) = &full {
        explicit_port = host_has_port(&http_url);
        dest_addr = truncate(&u.domain).to_owned();
        if u.port > 0 {
            dest_port = i64::from(u.port);
        }
    }
    let mut target = ServiceTarget {
        r#type: Cow::Borrowed(""),
        name: owned(&peer_service),
    };
    let mut dest = DestinationService {
        name: owned(&peer_service),
        resource: owned(if peer_address.is_empty() {
            &peer_service
        } else {
            &peer_address
        }),
        r#type: Cow::Borrowed(""),
        response_time: None,
    };
    if is_http && status_code > 0 {
        let ev_f = ev.event_mut();
        if ev_f.outcome == "unknown" {
            ev_f.outcome = Cow::Borrowed(if status_code >= 400 {
                "failure"
            } else {
                "success"
            });
        }
    }
    if is_http {
        ev.url.get_or_insert_with(Default::default).original = owned(&http_url);
    }
    if is_db {
        ev.span_mut().db = Some(db.clone());
    }
    if is_messaging {
        ev.span_mut().message = Some(Message {
            queue_name: owned(&queue_name),
            ..Default::default()
        });
    }
    let sp = ev.span_mut();
    if is_db {
        sp.r#type = Cow::Borrowed("db");
        sp.subtype = db.r#type.clone();
        target.r#type = sp.r#type.clone();
        if !sp.subtype.is_empty() {
            target.r#type = sp.subtype.clone();
            if dest.name.is_empty() {
                dest.name = sp.subtype.clone();
                dest.resource = sp.subtype.clone();
            }
        }
        if !db.instance.is_empty() {
            target.name = db.instance.clone();
        }
    } else if is_messaging {
        sp.r#type = Cow::Borrowed("messaging");
        sp.subtype = owned(&msg_system);
        if msg_operation.is_empty() && kind == Some("PRODUCER") {
            msg_operation = "send".into();
        }
        sp.action = owned(&msg_operation);
        target.r#type = sp.r#type.clone();
        if !sp.subtype.is_empty() {
            target.r#type = sp.subtype.clone();
            if dest.name.is_empty() {
                dest.name = sp.subtype.clone();
                dest.resource = sp.subtype.clone();
            }
        }
        if !dest.resource.is_empty() && !queue_name.is_empty() {
            dest.resource = owned(&format!("{}/{}", dest.resource, queue_name));
        }
        if !queue_name.is_empty() && !msg_temp {
            target.name = owned(&queue_name);
        }
    } else if is_rpc {
        sp.r#type = Cow::Borrowed("external");
        sp.subtype = owned(&rpc_system);
        target.r#type = sp.r#type.clone();
        if !sp.subtype.is_empty() {
            target.r#type = sp.subtype.clone();
        }
        if dest.name.is_empty() {
            let hp = if dest_addr.contains(':') {
                format!("[{dest_addr}]:{dest_port}")
            } else {
                format!("{dest_addr}:{dest_port}")
            };
            dest.name = owned(&hp);
            dest.resource = owned(&hp);
        }
        if !rpc_service.is_empty() {
            target.name = owned(&rpc_service);
        }
    } else if is_http {
        sp.r#type = Cow::Borrowed("external");
        sp.subtype = Cow::Borrowed("http");
        target.r#type = sp.subtype.clone();
        if let Some(u) = &full {
            let host_port = authority_of(&http_url).to_owned();
            let mut resource = host_port.clone();
            let mut name_host = host_port.clone();
            if dest_port == i64::from(scheme_default_port(&u.scheme)) {
                if explicit_port {
                    name_host = dest_addr.clone();
                } else {
                    resource = format!("{resource}:{dest_port}");
                }
            }
            target.name = owned(&resource);
            if dest.name.is_empty() {
                dest.name = owned(&format!("{}://{}", u.scheme, name_host));
                dest.resource = owned(&resource);
            }
        }
    } else if sp.r#type.is_empty() {
        if kind == Some("INTERNAL") {
            sp.r#type = Cow::Borrowed("app");
            sp.subtype = Cow::Borrowed("internal");
        } else {
            sp.r#type = Cow::Borrowed("unknown");
        }
    }
    let span_type = sp.r#type.clone();
    if !dest_addr.is_empty() {
        ev.destination = Some(Destination {
            address: owned(&dest_addr),
            port: dest_port as u32,
        });
    }
    if !dest.name.is_empty() || !dest.resource.is_empty() {
        if dest.r#type.is_empty() {
            dest.r#type = span_type.clone();
        }
        ev.span_mut().destination_service = Some(dest);
    }
    if !target.r#type.is_empty() || !target.name.is_empty() {
        ev.service.target = Some(target);
    }
}

fn authority_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    auth.rsplit_once('@').map_or(auth, |(_, h)| h)
}

fn host_has_port(url: &str) -> bool {
    let auth = authority_of(url);
    match auth.rsplit_once(':') {
        Some((h, p)) => {
            !p.is_empty()
                && p.bytes().all(|c| c.is_ascii_digit())
                && (!h.starts_with('[') || h.ends_with(']'))
        }
        None => false,
    }
}
