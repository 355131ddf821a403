//! The Elasticsearch document APM Server writes for an event (`apm-data/model/modeljson`):
//! field names, which empty values are left out, number formats and the nesting.
//!
//! Writes one line of JSON into a caller-provided buffer; it never decides routing or
//! validation (see `process` and the decoders).

use std::net::IpAddr;

use super::event::*;
use super::json::Object;

mod fields;
mod write;

pub use self::fields::sanitize_label_key;
use self::fields::{
    canonical_ip, error, metricset, name_version, span, transaction, write_summary,
};
pub use self::write::{write_f64, write_str, write_timestamp, write_value};
use self::write::{write_i64, write_list, write_object, write_u64};

/// An object being written: keys are added only for non-empty values, and an object that ends
/// up with no key is removed again (APM Server leaves such objects out).
struct Obj<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    first: bool,
    keep_empty: bool,
}

impl<'b> Obj<'b> {
    fn open(buf: &'b mut Vec<u8>) -> Obj<'b> {
        let start = buf.len();
        buf.push(b'{');
        Obj {
            buf,
            start,
            first: true,
            keep_empty: false,
        }
    }

    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
        self.buf
    }

    fn str(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            let b = self.key(k);
            write_str(b, v);
        }
    }

    fn u64(&mut self, k: &str, v: u64) {
        if v != 0 {
            let b = self.key(k);
            write_u64(b, v);
        }
    }

    fn opt_u64(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            let b = self.key(k);
            write_u64(b, v);
        }
    }

    fn f64_nz(&mut self, k: &str, v: f64) {
        if v != 0.0 {
            let b = self.key(k);
            write_f64(b, v);
        }
    }

    fn opt_bool(&mut self, k: &str, v: Option<bool>) {
        if let Some(v) = v {
            let b = self.key(k);
            b.extend_from_slice(if v { b"true" } else { b"false" });
        }
    }

    fn true_only(&mut self, k: &str, v: bool) {
        if v {
            self.key(k).extend_from_slice(b"true");
        }
    }

    fn ip(&mut self, k: &str, v: Option<IpAddr>) {
        if let Some(ip) = v {
            let b = self.key(k);
            write_str(b, &canonical_ip(ip));
        }
    }

    fn strs(&mut self, k: &str, v: &[S<'_>]) {
        if !v.is_empty() {
            let b = self.key(k);
            write_list(b, v, |b, s| write_str(b, s));
        }
    }

    fn object(&mut self, k: &str, v: &Option<Object>) {
        if let Some(m) = v {
            let b = self.key(k);
            write_object(b, m);
        }
    }

    /// `custom` context: top-level keys sanitised like label keys (they become field names).
    fn custom(&mut self, v: &Option<Object>) {
        if let Some(m) = v {
            let b = self.key("custom");
            b.push(b'{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                write_str(b, &sanitize_label_key(k));
                b.push(b':');
                write_value(b, v);
            }
            b.push(b'}');
        }
    }

    fn headers(&mut self, k: &str, h: &Headers<'_>) {
        if h.is_empty() {
            return;
        }
        let b = self.key(k);
        b.push(b'{');
        for (i, (name, vals)) in h.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            write_str(b, name);
            b.push(b':');
            write_list(b, vals, |b, v| write_str(b, v));
        }
        b.push(b'}');
    }

    /// A nested object, left out when it ends up empty.
    fn nested(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) {
        let mark = self.buf.len();
        let was_first = self.first;
        self.key(k);
        let mut inner = Obj::open(self.buf);
        f(&mut inner);
        if inner.close() {
            // nothing written: roll back the key too
            self.buf.truncate(mark);
            self.first = was_first;
        }
    }

    /// Closes the object; returns true (and removes it) when it has no key.
    fn close(self) -> bool {
        if self.first && !self.keep_empty {
            self.buf.truncate(self.start);
            true
        } else {
            self.buf.push(b'}');
            false
        }
    }
}

/// Writes the document for `e` into `buf` (one line, no trailing newline).
pub fn encode(e: &ApmEvent<'_>, buf: &mut Vec<u8>) {
    let mut o = Obj::open(buf);
    o.keep_empty = true;
    write_timestamp(o.key("@timestamp"), e.timestamp);
    let a = &e.agent;
    o.nested("agent", |o| {
        o.str("activation_method", &a.activation_method);
        o.str("ephemeral_id", &a.ephemeral_id);
        o.str("name", &a.name);
        o.str("version", &a.version);
    });
    o.strs_child(&e.child_ids);
    if let Some(c) = &e.client {
        o.nested("client", |o| {
            o.str("domain", &c.domain);
            o.ip("ip", c.ip);
            o.u64("port", u64::from(c.port));
        });
    }
    if let Some(c) = &e.cloud {
        o.nested("cloud", |o| {
            o.nested("account", |o| {
                o.str("id", &c.account_id);
                o.str("name", &c.account_name);
            });
            o.str("availability_zone", &c.availability_zone);
            o.nested("instance", |o| {
                o.str("id", &c.instance_id);
                o.str("name", &c.instance_name);
            });
            o.nested("machine", |o| o.str("type", &c.machine_type));
            if let Some(or) = &c.origin {
                o.nested("origin", |o| {
                    o.nested("account", |o| o.str("id", &or.account_id));
                    o.str("provider", &or.provider);
                    o.str("region", &or.region);
                    o.nested("service", |o| o.str("name", &or.service_name));
                });
            }
            o.nested("project", |o| {
                o.str("id", &c.project_id);
                o.str("name", &c.project_name);
            });
            o.str("provider", &c.provider);
            o.str("region", &c.region);
            o.nested("service", |o| o.str("name", &c.service_name));
        });
    }
    o.nested("container", |o| {
        o.str("id", &e.container_id);
        if let Some(c) = &e.container {
            o.nested("image", |o| {
                o.str("name", &c.image_name);
                o.str("tag", &c.image_tag);
            });
            o.str("name", &c.name);
            o.str("runtime", &c.runtime);
        }
    });
    o.nested("data_stream", |o| {
        o.str("dataset", &e.data_stream.dataset);
        o.str("namespace", &e.data_stream.namespace);
        o.str("type", e.data_stream.r#type);
    });
    if let Some(d) = &e.destination {
        o.nested("destination", |o| {
            o.str("address", &d.address);
            // An address that is an IP is also written as destination.ip.
            // (As sent: Elasticsearch's ip mapping normalises it.)
            if d.address.parse::<IpAddr>().is_ok() {
                o.str("ip", &d.address);
            }
            o.u64("port", u64::from(d.port));
        });
    }
    if let Some(d) = &e.device {
        o.nested("device", |o| {
            o.str("id", &d.id);
            o.str("manufacturer", &d.manufacturer);
            o.nested("model", |o| {
                o.str("identifier", &d.model_identifier);
                o.str("name", &d.model_name);
            });
        });
    }
    if let Some(err) = &e.error {
        error(&mut o, err);
    }
    if let Some(ev) = &e.event {
        o.nested("event", |o| {
            o.str("action", &ev.action);
            o.str("category", &ev.category);
            o.str("dataset", &ev.dataset);
            o.u64("duration", ev.duration);
            o.str("kind", &ev.kind);
            o.str("outcome", &ev.outcome);
            o.u64("severity", ev.severity);
            o.str("type", &ev.r#type);
            if let Some((count, sum)) = ev.success_count {
                let b = o.key("success_count");
                write_summary(b, count, sum);
            }
        });
    }
    if let Some(f) = &e.faas {
        o.nested("faas", |o| {
            o.opt_bool("coldstart", f.coldstart);
            o.str("execution", &f.execution);
            o.str("id", &f.id);
            o.str("name", &f.name);
            o.nested("trigger", |o| {
                o.str("request_id", &f.trigger_request_id);
                o.str("type", &f.trigger_type);
            });
            o.str("version", &f.version);
        });
    }
    if let Some(h) = &e.host {
        o.nested("host", |o| {
            o.str("architecture", &h.architecture);
            o.str("hostname", &h.hostname);
            o.str("id", &h.id);
            if !h.ip.is_empty() {
                let b = o.key("ip");
                write_list(b, &h.ip, |b, ip| write_str(b, &canonical_ip(*ip)));
            }
            o.str("name", &h.name);
            o.nested("os", |o| {
                o.str("full", &h.os_full);
                o.str("name", &h.os_name);
                o.str("platform", &h.os_platform);
                o.str("type", &h.os_type);
                o.str("version", &h.os_version);
            });
            o.str("type", &h.r#type);
        });
    }
    if let Some(h) = &e.http {
        o.nested("http", |o| {
            if let Some(r) = &h.request {
                o.nested("request", |o| {
                    if let Some(body) = &r.body {
                        o.nested("body", |o| {
                            let b = o.key("original");
                            write_value(b, body);
                        });
                    }
                    o.object("cookies", &r.cookies);
                    o.object("env", &r.env);
                    o.headers("headers", &r.headers);
                    o.str("id", &r.id);
                    o.str("method", &r.method);
                    o.str("referrer", &r.referrer);
                });
            }
            if let Some(r) = &h.response {
                o.nested("response", |o| {
                    o.opt_u64("decoded_body_size", r.decoded_body_size);
                    o.opt_u64("encoded_body_size", r.encoded_body_size);
                    o.opt_bool("finished", r.finished);
                    o.headers("headers", &r.headers);
                    o.opt_bool("headers_sent", r.headers_sent);
                    o.u64("status_code", u64::from(r.status_code));
                    o.opt_u64("transfer_size", r.transfer_size);
                });
            }
            o.str("version", &h.version);
        });
    }
    if let Some(k) = &e.kubernetes {
        o.nested("kubernetes", |o| {
            o.str("namespace", &k.namespace);
            o.nested("node", |o| o.str("name", &k.node_name));
            o.nested("pod", |o| {
                o.str("name", &k.pod_name);
                o.str("uid", &k.pod_uid);
            });
        });
    }
    labels(&mut o, &e.labels);
    if let Some(l) = &e.log {
        o.nested("log", |o| {
            o.str("level", &l.level);
            o.str("logger", &l.logger);
            if l.origin_set {
                // APM Server always writes both keys of log.origin once it has one of them.
                let b = o.key("origin");
                b.extend_from_slice(b"{\"file\":{");
                let mut first = true;
                if l.origin_file_line != 0 {
                    b.extend_from_slice(b"\"line\":");
                    write_u64(b, u64::from(l.origin_file_line));
                    first = false;
                }
                if !l.origin_file_name.is_empty() {
                    if !first {
                        b.push(b',');
                    }
                    b.extend_from_slice(b"\"name\":");
                    write_str(b, &l.origin_file_name);
                }
                b.extend_from_slice(b"},\"function\":");
                write_str(b, &l.origin_function);
                b.push(b'}');
            }
        });
    }
    o.str("message", &e.message);
    if let Some(m) = &e.metricset {
        metricset(&mut o, m);
    }
    if let Some(n) = &e.network {
        o.nested("network", |o| {
            o.nested("carrier", |o| {
                o.str("icc", &n.carrier_icc);
                o.str("mcc", &n.carrier_mcc);
                o.str("mnc", &n.carrier_mnc);
                o.str("name", &n.carrier_name);
            });
            o.nested("connection", |o| {
                o.str("subtype", &n.connection_subtype);
                o.str("type", &n.connection_type);
            });
        });
    }
    o.nested("observer", |o| {
        o.str("hostname", &e.observer_hostname);
        o.str("type", "apm-server");
        o.str("version", e.observer_version);
    });
    o.nested("parent", |o| o.str("id", &e.parent_id));
    if let Some(p) = &e.process {
        o.nested("process", |o| {
            o.strs("args", &p.argv);
            o.str("command_line", &p.command_line);
            o.str("executable", &p.executable);
            o.nested("parent", |o| o.u64("pid", u64::from(p.ppid)));
            o.u64("pid", u64::from(p.pid));
            o.nested("thread", |o| o.str("name", &p.thread_name));
            o.str("title", &p.title);
        });
    }
    let s = &e.service;
    o.nested("service", |o| {
        o.str("environment", &s.environment);
        name_version(o, "framework", &s.framework);
        name_version(o, "language", &s.language);
        o.str("name", &s.name);
        o.nested("node", |o| o.str("name", &s.node_name));
        if let Some(or) = &s.origin {
            o.nested("origin", |o| {
                o.str("id", &or.id);
                o.str("name", &or.name);
                o.str("version", &or.version);
            });
        }
        name_version(o, "runtime", &s.runtime);
        if let Some(t) = &s.target {
            let b = o.key("target");
            b.extend_from_slice(b"{\"type\":");
            write_str(b, &t.r#type);
            if !t.name.is_empty() {
                b.extend_from_slice(b",\"name\":");
                write_str(b, &t.name);
            }
            b.push(b'}');
        }
        o.str("version", &s.version);
    });
    if let Some(se) = &e.session {
        let b = o.key("session");
        b.extend_from_slice(b"{\"id\":");
        write_str(b, &se.id);
        if se.sequence != 0 {
            b.extend_from_slice(b",\"sequence\":");
            write_u64(b, se.sequence);
        }
        b.push(b'}');
    }
    if let Some(src) = &e.source {
        o.nested("source", |o| {
            o.str("domain", &src.domain);
            o.ip("ip", src.ip);
            if src.nat_ip.is_some() {
                o.nested("nat", |o| o.ip("ip", src.nat_ip));
            }
            o.u64("port", u64::from(src.port));
        });
    }
    if let Some(sp) = &e.span {
        span(&mut o, sp);
    }
    // `timestamp.us` for transactions, spans and errors only (a v2 log carrying `error.*`
    // fields counts as an error here), and never for the epoch itself: APM Server's encoder
    // treats a zero timestamp as unset for this field, while `@timestamp` shows the epoch.
    let high_resolution = match e.kind {
        Kind::Transaction | Kind::Span | Kind::Error => true,
        Kind::Log => e.error.is_some(),
        Kind::Metric => false,
    };
    if e.timestamp != 0 && high_resolution {
        let b = o.key("timestamp");
        b.extend_from_slice(b"{\"us\":");
        write_i64(b, e.timestamp / 1000);
        b.push(b'}');
    }
    o.nested("trace", |o| o.str("id", &e.trace_id));
    if let Some(t) = &e.transaction {
        transaction(&mut o, t);
    }
    if let Some(u) = &e.url {
        o.nested("url", |o| {
            o.str("domain", &u.domain);
            o.str("fragment", &u.fragment);
            o.str("full", &u.full);
            o.str("original", &u.original);
            o.str("path", &u.path);
            o.u64("port", u64::from(u.port));
            o.str("query", &u.query);
            o.str("scheme", &u.scheme);
        });
    }
    if let Some(u) = &e.user {
        o.nested("user", |o| {
            o.str("domain", &u.domain);
            o.str("email", &u.email);
            o.str("id", &u.id);
            o.str("name", &u.name);
        });
    }
    o.nested("user_agent", |o| o.str("original", &e.user_agent));
    if let Some(m) = &e.metricset {
        o.u64("_doc_count", m.doc_count);
    }
    o.close();
}

impl Obj<'_> {
    fn strs_child(&mut self, ids: &[S<'_>]) {
        if !ids.is_empty() {
            self.nested("child", |o| o.strs("id", ids));
        }
    }
}

fn labels(o: &mut Obj<'_>, l: &Labels<'_>) {
    label_map(o, "labels", &l.strings, |b, v| match v {
        LabelValue::One(s) => write_str(b, s),
        LabelValue::Many(vs) => write_list(b, vs, |b, s| write_str(b, s)),
    });
    label_map(o, "numeric_labels", &l.numbers, |b, v| match v {
        NumValue::One(f) => write_f64(b, *f),
        NumValue::Many(fs) => write_list(b, fs, |b, f| write_f64(b, *f)),
    });
}

/// A label object (`labels` or `numeric_labels`) with sanitised keys; when two keys sanitise to
/// the same name, the later label wins, as the last map write does in APM Server.
fn label_map<V>(
    o: &mut Obj<'_>,
    name: &str,
    entries: &[(S<'_>, V)],
    value: impl Fn(&mut Vec<u8>, &V),
) {
    if entries.is_empty() {
        return;
    }
    let keys: Vec<std::borrow::Cow<'_, str>> =
        entries.iter().map(|(k, _)| sanitize_label_key(k)).collect();
    let b = o.key(name);
    b.push(b'{');
    let mut first = true;
    for (i, (_, v)) in entries.iter().enumerate() {
        if keys[i + 1..].contains(&keys[i]) {
            continue;
        }
        if !first {
            b.push(b',');
        }
        first = false;
        write_str(b, &keys[i]);
        b.push(b':');
        value(b, v);
    }
    b.push(b'}');
}
