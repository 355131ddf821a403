//! apmgate-load: plays N concurrent APM agents against an intake endpoint and reports what it
//! took. Each agent POSTs the same NDJSON payload (metadata line, then events) over and over,
//! gzip-compressed or not, over HTTP/1.1 or HTTP/2 (h2c), until a number of events or seconds
//! is reached, then stops by itself.
//!
//! It reports events/s, MB/s of NDJSON, request latency p50/p99/max, answers by status, and,
//! given the gateway's `--pid`, its CPU use and peak RSS read from /proc.
//! Only for loopback targets (see BENCHMARKS.md).
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// HTTP/1.1, one connection per agent.
    H1,
    /// HTTP/2 by prior knowledge (h2c), one connection per agent.
    H2c,
}

/// Plays concurrent APM agents against an intake endpoint.
#[derive(Debug, Parser)]
#[command(name = "apmgate-load", version)]
struct Args {
    /// Intake URL, e.g. http://127.0.0.1:8200/intake/v2/events (loopback only).
    #[arg(long)]
    url: String,
    /// NDJSON payload: a metadata line, then events.
    #[arg(long)]
    payload: PathBuf,
    /// Concurrent agents.
    #[arg(long, default_value_t = 16)]
    agents: usize,
    /// Stop after this many events (0: no limit).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Protocol.
    #[arg(long, value_enum, default_value = "h1")]
    protocol: Protocol,
    /// Compress bodies with gzip (as the agents do).
    #[arg(long)]
    gzip: bool,
    /// Secret token (`Authorization: Bearer`).
    #[arg(long, env = "APMGATE_LOAD_TOKEN")]
    token: Option<String>,
    /// The gateway's process id, to report its CPU and peak RSS.
    #[arg(long)]
    pid: Option<u32>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU seconds (user + system) of a process, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, 100 on every architecture it runs on here.
    Some(ticks / 100.0)
}

/// Peak resident memory of a process in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let host = args
        .url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("");
    if !(host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")) {
        return Err("apmgate-load only targets loopback addresses".into());
    }
    let raw = std::fs::read(&args.payload)?;
    let events_per_request = raw
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count()
        .saturating_sub(1) as u64;
    if events_per_request == 0 {
        return Err("the payload holds no event after its metadata line".into());
    }
    let body = if args.gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&raw)?;
        Bytes::from(e.finish()?)
    } else {
        Bytes::from(raw.clone())
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args, body, raw.len() as u64, events_per_request))
}

async fn run(
    args: Args,
    body: Bytes,
    raw_len: u64,
    events_per_request: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let sent_events = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let cpu_before = args.pid.and_then(cpu_seconds);
    let started = Instant::now();
    let mut agents = tokio::task::JoinSet::new();
    for _ in 0..args.agents {
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_max_idle_per_host(1);
        if args.protocol == Protocol::H2c {
            builder.http2_only(true);
        }
        let client: Client<_, Full<Bytes>> = builder.build_http();
        let (url, body, token, gzip, limit) = (
            args.url.clone(),
            body.clone(),
            args.token.clone(),
            args.gzip,
            args.events,
        );
        let sent = sent_events.clone();
        agents.spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: std::collections::BTreeMap<u16, u64> = Default::default();
            let mut errors = 0u64;
            loop {
                if Instant::now() >= deadline
                    || (limit > 0 && sent.fetch_add(events_per_request, Ordering::Relaxed) >= limit)
                {
                    break;
                }
                let mut req =
                    hyper::Request::post(&url).header("content-type", "application/x-ndjson");
                if gzip {
                    req = req.header("content-encoding", "gzip");
                }
                if let Some(t) = &token {
                    req = req.header("authorization", format!("Bearer {t}"));
                }
                let Ok(req) = req.body(Full::new(body.clone())) else {
                    break;
                };
                let t0 = Instant::now();
                match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.into_body().collect().await;
                        latencies.push(t0.elapsed());
                        *statuses.entry(status).or_default() += 1;
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, statuses, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut statuses: std::collections::BTreeMap<u16, u64> = Default::default();
    let mut errors = 0;
    while let Some(r) = agents.join_next().await {
        let (l, s, e) = r?;
        latencies.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let accepted = statuses.get(&202).copied().unwrap_or(0);
    let events = accepted * events_per_request;
    let cpu = match (cpu_before, args.pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some((b - a) / elapsed),
        _ => None,
    };
    let report = serde_json::json!({
        "protocol": format!("{:?}", args.protocol).to_lowercase(),
        "gzip": args.gzip,
        "agents": args.agents,
        "seconds": elapsed,
        "requests_accepted": accepted,
        "events_accepted": events,
        "events_per_second": events as f64 / elapsed,
        "ndjson_mb_per_second": (accepted * raw_len) as f64 / elapsed / 1e6,
        "latency_ms": {
            "p50": percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            "p99": percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            "max": latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        },
        "statuses": statuses,
        "transport_errors": errors,
        "gateway_cpu_cores": cpu,
        "gateway_peak_rss_mib": args.pid.and_then(peak_rss_kib).map(|k| k as f64 / 1024.0),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
