//! The server-side processing APM Server applies to every decoded event before indexing, in its
//! order: RUM stack-frame patterns and culprit (after source mapping, `super::sourcemap`), `host.hostname`, `service.node.name`, the error grouping
//! key and message, the default service environment, the observer, data stream routing, and
//! dropping unsampled non-RUM transactions.
//!
//! Works on decoded events only; never parses input and never writes documents.

use std::borrow::Cow;

use xxhash_rust::xxh64::Xxh64;

use super::ModelConfig;
use super::event::*;

/// Agents whose traces go to `traces-apm.rum-*` and whose unsampled transactions are kept.
pub fn is_rum_agent(name: &str) -> bool {
    matches!(name, "rum-js" | "js-base" | "iOS/swift")
}

/// Applies the processors; returns false when the event is dropped.
pub fn process<'a>(
    ev: &mut ApmEvent<'a>,
    rum_route: bool,
    cfg: &ModelConfig,
    observer_hostname: &'a str,
) -> bool {
    if rum_route {
        if let Some(re) = &cfg.library_pattern {
            for_each_frame(ev, &mut |f| {
                f.original_library_frame
                    .get_or_insert_with(Default::default)
                    .library_frame = f.library_frame;
                f.library_frame = (!f.filename.is_empty() && re.is_match(&f.filename))
                    || (!f.abs_path.is_empty() && re.is_match(&f.abs_path));
            });
        }
        if let Some(re) = &cfg.exclude_from_grouping {
            for_each_frame(ev, &mut |f| {
                f.exclude_from_grouping = !f.filename.is_empty() && re.is_match(&f.filename);
            });
        }
        if cfg.source_mapping {
            if let Some(err) = &mut ev.error {
                super::sourcemap::set_culprit(err);
            }
        }
    }
    set_host_hostname(ev);
    set_service_node_name(ev);
    if let Some(err) = &mut ev.error {
        err.grouping_key = grouping_key(err);
        let msg = if let Some(m) = err
            .log
            .as_ref()
            .map(|l| &l.message)
            .filter(|m| !m.is_empty())
        {
            m.clone()
        } else if let Some(m) = err
            .exception
            .as_ref()
            .map(|e| &e.message)
            .filter(|m| !m.is_empty())
        {
            m.clone()
        } else {
            Cow::Borrowed("")
        };
        // Only the top-level message is written; error.message stays what was decoded (the
        // ECS `error.message` of a log event).
        if ev.message.is_empty() {
            ev.message = msg;
        }
    }
    if ev.kind == Kind::Error {
        // Since 8.16 error logs without a level get "error" (apm-data #362).
        if let Some(log) = ev.error.as_mut().and_then(|e| e.log.as_mut()) {
            if log.level.is_empty() {
                log.level = Cow::Borrowed("error");
            }
        }
    }
    if let Some(env) = &cfg.default_service_environment {
        if ev.service.environment.is_empty() {
            ev.service.environment = Cow::Owned(env.clone());
        }
    }
    ev.observer_hostname = Cow::Borrowed(observer_hostname);
    ev.observer_version = cfg.observer_version;
    set_data_stream(ev, &cfg.namespace);
    !(ev.kind == Kind::Transaction
        && !ev.transaction.as_ref().is_some_and(|t| t.sampled)
        && !is_rum_agent(&ev.agent.name))
}

fn for_each_frame<'a>(ev: &mut ApmEvent<'a>, f: &mut impl FnMut(&mut Frame<'a>)) {
    fn exc<'a>(e: &mut Exception<'a>, f: &mut impl FnMut(&mut Frame<'a>)) {
        e.stacktrace.iter_mut().for_each(&mut *f);
        for c in &mut e.cause {
            exc(c, f);
        }
    }
    if let Some(sp) = &mut ev.span {
        if ev.kind == Kind::Span {
            sp.stacktrace.iter_mut().for_each(&mut *f);
            return;
        }
    }
    if let Some(err) = &mut ev.error {
        if let Some(l) = &mut err.log {
            l.stacktrace.iter_mut().for_each(&mut *f);
        }
        if let Some(e) = &mut err.exception {
            exc(e, f);
        }
    }
}

/// `host.hostname` / `host.name` (`SetHostHostname`): a Kubernetes node name wins; other
/// Kubernetes fields without a node name clear the hostname; an empty name takes the hostname.
fn set_host_hostname(ev: &mut ApmEvent<'_>) {
    if let Some(k) = &ev.kubernetes {
        if !k.node_name.is_empty() {
            let node = k.node_name.clone();
            ev.host.get_or_insert_with(Default::default).hostname = node;
        } else if !k.pod_name.is_empty() || !k.pod_uid.is_empty() || !k.namespace.is_empty() {
            if let Some(h) = &mut ev.host {
                h.hostname = Cow::Borrowed("");
            }
        }
    }
    if let Some(h) = &mut ev.host {
        if h.name.is_empty() && !h.hostname.is_empty() {
            h.name = h.hostname.clone();
        }
    }
}

/// `service.node.name` (`SetServiceNodeName`): configured name, else container id, else host
/// name.
fn set_service_node_name(ev: &mut ApmEvent<'_>) {
    if !ev.service.node_name.is_empty() {
        return;
    }
    let name = if !ev.container_id.is_empty() {
        ev.container_id.clone()
    } else {
        ev.host.as_ref().map(|h| h.name.clone()).unwrap_or_default()
    };
    ev.service.node_name = name;
}

fn write_if(h: &mut Xxh64, s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    h.update(s.as_bytes());
    true
}

fn hash_frames(h: &mut Xxh64, frames: &[Frame<'_>]) -> bool {
    let mut updated = false;
    for f in frames {
        if f.exclude_from_grouping {
            continue;
        }
        if !f.module.is_empty() {
            h.update(f.module.as_bytes());
            updated = true;
        } else if !f.filename.is_empty() {
            h.update(f.filename.as_bytes());
            updated = true;
        } else if !f.classname.is_empty() {
            h.update(f.classname.as_bytes());
            updated = true;
        }
        updated |= write_if(h, &f.function);
    }
    updated
}

fn tree(e: &Exception<'_>, h: &mut Xxh64, f: &dyn Fn(&Exception<'_>, &mut Xxh64) -> bool) -> bool {
    let mut updated = f(e, h);
    for c in &e.cause {
        updated |= tree(c, h, f);
    }
    updated
}

fn tree_has_stacktrace(e: &Exception<'_>) -> bool {
    !e.stacktrace.is_empty() || e.unparsed_stacktrace || e.cause.iter().any(tree_has_stacktrace)
}

/// The error grouping key (`SetGroupingKey` with xxhash64): exception types and the log's
/// parameterised message, then the exception (or else log) stack frames, falling back to the
/// messages and finally the plain stack trace; 16 hex digits.
pub fn grouping_key(err: &Error<'_>) -> String {
    let mut h = Xxh64::new(0);
    let mut updated = false;
    if let Some(ex) = &err.exception {
        updated |= tree(ex, &mut h, &|e, h| write_if(h, &e.r#type));
    }
    if let Some(log) = &err.log {
        updated |= write_if(&mut h, &log.param_message);
    }
    let mut have_exception_stacktrace = false;
    if let Some(ex) = &err.exception {
        have_exception_stacktrace = if tree_has_stacktrace(ex) {
            tree(ex, &mut h, &|e, h| hash_frames(h, &e.stacktrace))
        } else {
            tree(ex, &mut h, &|e, h| write_if(h, &e.message))
        };
        updated = updated || have_exception_stacktrace;
    }
    if !have_exception_stacktrace {
        if let Some(log) = &err.log {
            updated |= hash_frames(&mut h, &log.stacktrace);
        }
    }
    if !updated {
        if let Some(ex) = &err.exception {
            updated = tree(ex, &mut h, &|e, h| write_if(h, &e.message));
        }
        if !updated {
            if let Some(log) = &err.log {
                write_if(&mut h, &log.message);
            }
        }
        if !updated {
            write_if(&mut h, &err.stack_trace);
        }
    }
    format!("{:016x}", h.digest())
}

/// Data stream routing (`SetDataStream`).
fn set_data_stream(ev: &mut ApmEvent<'_>, namespace: &str) {
    let (ty, dataset): (&'static str, Cow<'static, str>) = match ev.kind {
        Kind::Transaction | Kind::Span => (
            "traces",
            Cow::Borrowed(if is_rum_agent(&ev.agent.name) {
                "apm.rum"
            } else {
                "apm"
            }),
        ),
        Kind::Error => ("logs", Cow::Borrowed("apm.error")),
        Kind::Log => {
            let svc = if ev.service.name.is_empty() {
                "unknown"
            } else {
                &ev.service.name
            };
            (
                "logs",
                Cow::Owned(format!("apm.app.{}", normalize_service_name(svc))),
            )
        }
        Kind::Metric => ("metrics", metricset_dataset(ev)),
    };
    ev.data_stream = DataStream {
        r#type: ty,
        dataset,
        namespace: namespace.to_owned(),
    };
}

fn metricset_dataset(ev: &mut ApmEvent<'_>) -> Cow<'static, str> {
    if ev.transaction.is_some() || ev.span.is_some() || ev.service.name.is_empty() {
        return Cow::Borrowed("apm.internal");
    }
    if let Some(ms) = &mut ev.metricset {
        if ms.samples.iter().all(|s| is_internal_metric(&s.name)) {
            // The internal data stream has no dynamic mapping: type and unit are dropped.
            for s in &mut ms.samples {
                s.r#type = "";
                s.unit = Cow::Borrowed("");
            }
            return Cow::Borrowed("apm.internal");
        }
    }
    Cow::Owned(format!(
        "apm.app.{}",
        normalize_service_name(&ev.service.name)
    ))
}

/// Service names in data stream names: lower case, reserved characters as '_'.
pub fn normalize_service_name(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| match c {
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':' | '-' => '_',
            c => c,
        })
        .collect()
}

/// Metrics stored in the strictly mapped internal data stream.
pub fn is_internal_metric(name: &str) -> bool {
    matches!(
        name,
        "jvm.memory.non_heap.pool.used"
            | "jvm.memory.non_heap.pool.committed"
            | "jvm.memory.non_heap.pool.max"
            | "jvm.fd.used"
            | "jvm.fd.max"
            | "agent.background.cpu.overhead.pct"
            | "agent.background.cpu.total.pct"
            | "agent.background.memory.allocation.bytes"
            | "agent.events.dropped"
            | "agent.events.queue.max_size.pct"
            | "agent.events.queue.min_size.pct"
            | "agent.events.requests.bytes"
            | "agent.events.requests.count"
            | "agent.events.total"
            | "clr.gc.count"
            | "clr.gc.gen0size"
            | "clr.gc.gen1size"
            | "clr.gc.gen2size"
            | "clr.gc.gen3size"
            | "clr.gc.time"
            | "faas.billed_duration"
            | "faas.coldstart_duration"
            | "faas.duration"
            | "faas.timeout"
            | "golang.goroutines"
            | "golang.heap.allocations.active"
            | "golang.heap.allocations.allocated"
            | "golang.heap.allocations.frees"
            | "golang.heap.allocations.idle"
            | "golang.heap.allocations.mallocs"
            | "golang.heap.allocations.objects"
            | "golang.heap.allocations.total"
            | "golang.heap.gc.cpu_fraction"
            | "golang.heap.gc.next_gc_limit"
            | "golang.heap.gc.total_count"
            | "golang.heap.gc.total_pause.ns"
            | "golang.heap.system.obtained"
            | "golang.heap.system.released"
            | "golang.heap.system.stack"
            | "golang.heap.system.total"
            | "jvm.gc.alloc"
            | "jvm.gc.count"
            | "jvm.gc.time"
            | "jvm.memory.heap.committed"
            | "jvm.memory.heap.max"
            | "jvm.memory.heap.pool.committed"
            | "jvm.memory.heap.pool.max"
            | "jvm.memory.heap.pool.used"
            | "jvm.memory.heap.used"
            | "jvm.memory.non_heap.committed"
            | "jvm.memory.non_heap.max"
            | "jvm.memory.non_heap.used"
            | "jvm.thread.count"
            | "nodejs.eventloop.delay.avg.ms"
            | "nodejs.handles.active"
            | "nodejs.memory.arrayBuffers.bytes"
            | "nodejs.memory.external.bytes"
            | "nodejs.memory.heap.allocated.bytes"
            | "nodejs.memory.heap.used.bytes"
            | "nodejs.requests.active"
            | "ruby.gc.count"
            | "ruby.gc.time"
            | "ruby.heap.allocations.total"
            | "ruby.heap.slots.free"
            | "ruby.heap.slots.live"
            | "ruby.threads"
            | "system.cpu.total.norm.pct"
            | "system.memory.actual.free"
            | "system.memory.total"
            | "system.process.cgroup.cpu.cfs.period.us"
            | "system.process.cgroup.cpu.cfs.quota.us"
            | "system.process.cgroup.cpu.stats.periods"
            | "system.process.cgroup.cpu.stats.throttled.ns"
            | "system.process.cgroup.cpu.stats.throttled.periods"
            | "system.process.cgroup.cpuacct.total.ns"
            | "system.process.cgroup.memory.mem.limit.bytes"
            | "system.process.cgroup.memory.mem.usage.bytes"
            | "system.process.cgroup.memory.stats.inactive_file.bytes"
            | "system.process.cpu.system.norm.pct"
            | "system.process.cpu.total.norm.pct"
            | "system.process.cpu.user.norm.pct"
            | "system.process.memory.rss.bytes"
            | "system.process.memory.size"
    )
}
