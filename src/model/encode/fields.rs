//! The objects of each event kind (`error`, `span`, `transaction`, `metricset`, stack frames,
//! message, name/version pairs) as `modeljson` writes them, onto an open [`Obj`].

use std::net::IpAddr;

use super::Obj;
use super::write::{write_f64, write_i64, write_list, write_str, write_u64};
use crate::model::event::*;

/// IPs as Go's `netip.Addr.String()` writes them; IPv4-mapped IPv6 addresses stay IPv6.
pub(super) fn canonical_ip(ip: IpAddr) -> String {
    ip.to_string()
}

/// Label keys as stored: '.', '*' and '"' become '_'.
pub fn sanitize_label_key(k: &str) -> std::borrow::Cow<'_, str> {
    if k.contains(['.', '*', '"']) {
        std::borrow::Cow::Owned(k.replace(['.', '*', '"'], "_"))
    } else {
        std::borrow::Cow::Borrowed(k)
    }
}

pub(super) fn name_version(o: &mut Obj<'_>, k: &str, v: &Option<NameVersion<'_>>) {
    if let Some(nv) = v {
        o.nested(k, |o| {
            o.str("name", &nv.name);
            o.str("version", &nv.version);
        });
    }
}

fn frames(o: &mut Obj<'_>, k: &str, frames: &[Frame<'_>]) {
    if frames.is_empty() {
        return;
    }
    let b = o.key(k);
    write_list(b, frames, |b, f| {
        let mut fo = Obj::open(b);
        fo.key("exclude_from_grouping")
            .extend_from_slice(if f.exclude_from_grouping {
                b"true"
            } else {
                b"false"
            });
        fo.str("abs_path", &f.abs_path);
        fo.str("classname", &f.classname);
        if !f.pre_context.is_empty() || !f.post_context.is_empty() {
            fo.nested("context", |c| {
                c.strs("post", &f.post_context);
                c.strs("pre", &f.pre_context);
            });
        }
        fo.str("filename", &f.filename);
        fo.str("function", &f.function);
        fo.true_only("library_frame", f.library_frame);
        if f.lineno.is_some() || f.colno.is_some() || !f.context_line.is_empty() {
            fo.nested("line", |l| {
                l.opt_u64("column", f.colno.map(u64::from));
                l.str("context", &f.context_line);
                l.opt_u64("number", f.lineno.map(u64::from));
            });
        }
        fo.str("module", &f.module);
        if let Some(r) = &f.original_library_frame {
            // modeljson: the original position only with `sourcemap.updated`.
            let mapped = r.sourcemap_updated;
            fo.nested("original", |o| {
                if mapped {
                    o.str("abs_path", &r.abs_path);
                    o.str("classname", &r.classname);
                    o.opt_u64("colno", r.colno.map(u64::from));
                    o.str("filename", &r.filename);
                    o.str("function", &r.function);
                }
                o.true_only("library_frame", r.library_frame);
                if mapped {
                    o.opt_u64("lineno", r.lineno.map(u64::from));
                }
            });
            fo.nested("sourcemap", |o| {
                o.str("error", &r.sourcemap_error);
                o.true_only("updated", r.sourcemap_updated);
            });
        }
        fo.object("vars", &f.vars);
        fo.close();
    });
}

fn exception_list<'x, 'a>(
    e: &'x Exception<'a>,
    parent: Option<usize>,
    out: &mut Vec<(&'x Exception<'a>, Option<usize>)>,
) {
    let idx = out.len();
    out.push((e, parent));
    for c in &e.cause {
        exception_list(c, Some(idx), out);
    }
}

pub(super) fn error(o: &mut Obj<'_>, e: &Error<'_>) {
    o.nested("error", |o| {
        o.str("culprit", &e.culprit);
        o.custom(&e.custom);
        if let Some(ex) = &e.exception {
            let mut list = Vec::new();
            exception_list(ex, None, &mut list);
            let b = o.key("exception");
            b.push(b'[');
            for (i, (x, parent)) in list.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                let mut xo = Obj::open(b);
                xo.keep_empty = true;
                xo.object("attributes", &x.attributes);
                xo.str("code", &x.code);
                xo.opt_bool("handled", x.handled);
                xo.str("message", &x.message);
                xo.str("module", &x.module);
                if let Some(p) = parent {
                    if i == 0 || *p != i - 1 {
                        let b = xo.key("parent");
                        write_u64(b, *p as u64);
                    }
                }
                frames(&mut xo, "stacktrace", &x.stacktrace);
                xo.str("type", &x.r#type);
                xo.close();
            }
            b.push(b']');
        }
        o.str("grouping_key", &e.grouping_key);
        o.str("id", &e.id);
        if let Some(l) = &e.log {
            o.nested("log", |lo| {
                lo.str("level", &l.level);
                lo.str("logger_name", &l.logger_name);
                lo.str("message", &l.message);
                lo.str("param_message", &l.param_message);
                frames(lo, "stacktrace", &l.stacktrace);
            });
        }
        o.str("message", &e.message);
        o.str("stack_trace", &e.stack_trace);
        o.str("type", &e.r#type);
    });
}

pub(super) fn message(o: &mut Obj<'_>, m: &Option<Message<'_>>) {
    if let Some(m) = m {
        o.nested("message", |o| {
            if let Some(age) = m.age_ms {
                o.nested("age", |a| a.opt_u64("ms", Some(age)));
            }
            o.str("body", &m.body);
            o.headers("headers", &m.headers);
            o.nested("queue", |q| q.str("name", &m.queue_name));
            o.str("routing_key", &m.routing_key);
        });
    }
}

pub(super) fn span(o: &mut Obj<'_>, s: &Span<'_>) {
    o.nested("span", |o| {
        o.str("action", &s.action);
        if let Some(c) = &s.composite {
            o.nested("composite", |co| {
                co.key("compression_strategy");
                write_str(co.buf, c.strategy);
                let b = co.key("count");
                write_u64(b, u64::from(c.count));
                co.nested("sum", |so| {
                    let b = so.key("us");
                    write_i64(b, (c.sum_ms * 1000.0) as i64);
                });
            });
        }
        if let Some(db) = &s.db {
            o.nested("db", |d| {
                d.str("instance", &db.instance);
                d.str("link", &db.link);
                d.opt_u64("rows_affected", db.rows_affected.map(u64::from));
                d.str("statement", &db.statement);
                d.str("type", &db.r#type);
                d.nested("user", |u| u.str("name", &db.user_name));
            });
        }
        if let Some(ds) = &s.destination_service {
            o.nested("destination", |d| {
                d.nested("service", |sv| {
                    sv.str("name", &ds.name);
                    sv.str("resource", &ds.resource);
                    if let Some((count, sum_us)) = ds.response_time {
                        sv.nested("response_time", |rt| {
                            rt.u64("count", count);
                            let b = rt.key("sum.us");
                            write_u64(b, sum_us);
                        });
                    }
                    sv.str("type", &ds.r#type);
                });
            });
        }
        o.str("id", &s.id);
        o.str("kind", &s.kind);
        if !s.links.is_empty() {
            let b = o.key("links");
            write_list(b, &s.links, |b, l| {
                b.extend_from_slice(b"{\"span\":{\"id\":");
                write_str(b, &l.span_id);
                b.extend_from_slice(b"},\"trace\":{\"id\":");
                write_str(b, &l.trace_id);
                b.extend_from_slice(b"}}");
            });
        }
        message(o, &s.message);
        o.str("name", &s.name);
        o.f64_nz("representative_count", s.representative_count);
        if let Some((count, sum_ns)) = s.self_time {
            if count != 0 {
                o.nested("self_time", |st| {
                    let b = st.key("count");
                    write_u64(b, count);
                    let b = st.key("sum.us");
                    write_u64(b, sum_ns / 1000);
                });
            }
        }
        frames(o, "stacktrace", &s.stacktrace);
        o.str("subtype", &s.subtype);
        o.opt_bool("sync", s.sync);
        o.str("type", &s.r#type);
    });
}

pub(super) fn transaction(o: &mut Obj<'_>, t: &Transaction<'_>) {
    o.nested("transaction", |o| {
        o.custom(&t.custom);
        if let Some((values, counts)) = &t.duration_histogram {
            let b = o.key("duration.histogram");
            write_histogram(b, values, counts);
        }
        if let Some((count, sum)) = t.duration_summary {
            let b = o.key("duration.summary");
            write_summary(b, count, sum);
        }
        if let Some(x) = &t.user_experience {
            o.nested("experience", |xo| {
                if x.cls >= 0.0 {
                    let b = xo.key("cls");
                    write_f64(b, x.cls);
                }
                if x.fid >= 0.0 {
                    let b = xo.key("fid");
                    write_f64(b, x.fid);
                }
                if let Some((count, sum, max)) = x.longtask {
                    xo.nested("longtask", |lo| {
                        let b = lo.key("count");
                        write_u64(b, count);
                        let b = lo.key("max");
                        write_f64(b, max);
                        let b = lo.key("sum");
                        write_f64(b, sum);
                    });
                }
                if x.tbt >= 0.0 {
                    let b = xo.key("tbt");
                    write_f64(b, x.tbt);
                }
            });
        }
        o.str("id", &t.id);
        if !t.marks.is_empty() {
            let b = o.key("marks");
            b.push(b'{');
            for (i, (k, ms)) in t.marks.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                write_str(b, &sanitize_label_key(k));
                b.extend_from_slice(b":{");
                for (j, (mk, v)) in ms.iter().enumerate() {
                    if j > 0 {
                        b.push(b',');
                    }
                    write_str(b, &sanitize_label_key(mk));
                    b.push(b':');
                    write_f64(b, *v);
                }
                b.push(b'}');
            }
            b.push(b'}');
        }
        message(o, &t.message);
        o.str("name", &t.name);
        o.strs("profiler_stack_trace_ids", &t.profiler_stack_trace_ids);
        o.f64_nz("representative_count", t.representative_count);
        o.str("result", &t.result);
        o.true_only("root", t.root);
        o.true_only("sampled", t.sampled);
        if let Some(sc) = &t.span_count {
            o.nested("span_count", |so| {
                so.opt_u64("dropped", sc.dropped.map(u64::from));
                so.opt_u64("started", sc.started.map(u64::from));
            });
        }
        o.str("type", &t.r#type);
    });
}

pub(super) fn metricset(o: &mut Obj<'_>, m: &Metricset<'_>) {
    o.nested("metricset", |o| {
        o.str("interval", &m.interval);
        o.str("name", m.name);
        if !m.samples.is_empty() {
            let b = o.key("samples");
            write_list(b, &m.samples, |b, s| {
                b.extend_from_slice(b"{\"name\":");
                write_str(b, &s.name);
                if !s.r#type.is_empty() {
                    b.extend_from_slice(b",\"type\":");
                    write_str(b, s.r#type);
                }
                if !s.unit.is_empty() {
                    b.extend_from_slice(b",\"unit\":");
                    write_str(b, &s.unit);
                }
                match s.r#type {
                    "histogram" => {
                        let (values, counts) = s.histogram.clone().unwrap_or_default();
                        b.push(b',');
                        write_histogram_fields(b, &values, &counts);
                    }
                    "summary" => {
                        let (count, sum) = s.summary.unwrap_or_default();
                        b.extend_from_slice(b",\"value_count\":");
                        write_u64(b, count);
                        b.extend_from_slice(b",\"sum\":");
                        write_f64(b, sum);
                    }
                    _ => {
                        b.extend_from_slice(b",\"value\":");
                        write_f64(b, s.value);
                    }
                }
                b.push(b'}');
            });
        }
    });
}

/// `{"values":[...],"counts":[...]}`, as Elasticsearch's `histogram` field takes it.
pub(super) fn write_histogram(b: &mut Vec<u8>, values: &[f64], counts: &[u64]) {
    b.push(b'{');
    write_histogram_fields(b, values, counts);
    b.push(b'}');
}

fn write_histogram_fields(b: &mut Vec<u8>, values: &[f64], counts: &[u64]) {
    b.extend_from_slice(b"\"values\":[");
    for (j, v) in values.iter().enumerate() {
        if j > 0 {
            b.push(b',');
        }
        write_f64(b, *v);
    }
    b.extend_from_slice(b"],\"counts\":[");
    for (j, c) in counts.iter().enumerate() {
        if j > 0 {
            b.push(b',');
        }
        write_u64(b, *c);
    }
    b.push(b']');
}

/// `{"value_count":N,"sum":S}`, as Elasticsearch's `aggregate_metric_double` takes it.
pub(super) fn write_summary(b: &mut Vec<u8>, count: u64, sum: f64) {
    b.extend_from_slice(b"{\"value_count\":");
    write_u64(b, count);
    b.extend_from_slice(b",\"sum\":");
    write_f64(b, sum);
    b.push(b'}');
}
