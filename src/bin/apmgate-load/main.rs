//! apmgate-load: the load generator and measuring tools of BENCHMARKS.md.
//!
//! - `agents`: plays N concurrent APM agents against an intake endpoint. Each agent keeps one
//!   connection (HTTP/1.1, h2c, HTTP/1.1 or HTTP/2 over TLS, HTTP/3) and POSTs the same NDJSON
//!   payload (metadata line, then events) over and over, gzip-compressed or not, until a number
//!   of events or seconds is reached, then stops by itself. It reports events/s, MB/s of NDJSON,
//!   request latency p50/p99/max, answers by status, and, given the server's `--pid`, its CPU
//!   use and peak RSS read from /proc.
//! - `ceiling`: a minimal server that reads and discards request bodies over the same
//!   protocols, to measure what the transport alone allows on the same machine.
//! - `parse`: the rate at which serde_json parses the same NDJSON on one core.
//! - `es-standin`: the Elasticsearch stand-in of the tests, counting what it indexes.
//! - `agents --otlp http|grpc`: the same agents exporting OTLP traces (as many spans a request
//!   as the payload has events), and `otlp-body` the body they send, for h2load.
//!
//! Only for loopback targets.
#![forbid(unsafe_code)]

mod agents;
mod ceiling;
mod otlp;

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use rustls_pki_types::pem::PemObject;

use agents::Protocol;

/// Load generator and measuring tools for apmgate (loopback only).
#[derive(Debug, Parser)]
#[command(name = "apmgate-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Play concurrent agents against an intake endpoint and report what it took.
    Agents(AgentArgs),
    /// Serve a minimal server that reads and discards bodies (the transport's ceiling).
    Ceiling(CeilingArgs),
    /// Measure how fast serde_json parses the payload's lines on one core.
    Parse(ParseArgs),
    /// Run the Elasticsearch stand-in, counting bulk requests and documents.
    EsStandin(StandinArgs),
    /// Write the body of the OTLP export `agents --otlp` sends (for another client).
    OtlpBody(OtlpBodyArgs),
}

#[derive(Debug, clap::Args)]
struct OtlpBodyArgs {
    /// NDJSON payload: the export holds as many spans as it has events.
    #[arg(long)]
    payload: PathBuf,
    /// OTLP/HTTP or OTLP/gRPC framing.
    #[arg(long, value_enum)]
    otlp: otlp::Mode,
    /// Compress with gzip.
    #[arg(long)]
    gzip: bool,
    /// Where to write the body.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
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
    /// Export over OTLP instead (`http`: POST /v1/traces, protobuf; `grpc`: TraceService/Export,
    /// h2c or h2 only): a trace of as many spans as the payload has events (a server span
    /// and database and HTTP client spans, under an SDK's resource), gzip with `--gzip`. The
    /// URL's path, when it is `/`, becomes the export's. gRPC failures are reported as status
    /// 1000 + their gRPC code.
    #[arg(long, value_enum)]
    otlp: Option<otlp::Mode>,
    /// CA certificate (PEM) trusted for the TLS protocols.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Secret token (`Authorization: Bearer`).
    #[arg(long, env = "APMGATE_LOAD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The server's process id, to report its CPU and peak RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Worker threads of the load tool (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct CeilingArgs {
    /// Address for HTTP/1.1 and h2c (plaintext TCP).
    #[arg(long)]
    plain: Option<SocketAddr>,
    /// Address for HTTP/1.1 and HTTP/2 over TLS (TCP), and HTTP/3 (UDP, same port).
    #[arg(long, requires_all = ["cert", "key"])]
    tls: Option<SocketAddr>,
    /// Server certificate chain (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Worker threads (default: one per core, as the gateway).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct ParseArgs {
    /// NDJSON payload.
    #[arg(long)]
    payload: PathBuf,
    /// Seconds to parse for.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

#[derive(Debug, clap::Args)]
struct StandinArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9200")]
    listen: SocketAddr,
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

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build()
}

fn main() -> Result<(), BoxError> {
    match Cli::parse().command {
        Command::Agents(args) => agents_command(args),
        Command::Ceiling(args) => ceiling_command(args),
        Command::Parse(args) => parse_command(&args),
        Command::EsStandin(args) => runtime(None)?.block_on(standin_command(args)),
        Command::OtlpBody(args) => {
            let raw = std::fs::read(&args.payload)?;
            let events = lines(&raw).len().saturating_sub(1);
            let export = otlp::export(args.otlp, events, args.gzip)?;
            std::fs::write(&args.out, &export.body)?;
            for (k, v) in export.headers {
                println!("{k}: {v}");
            }
            Ok(())
        }
    }
}

/// The payload's lines that are not blank.
fn lines(raw: &[u8]) -> Vec<&[u8]> {
    raw.split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect()
}

fn agents_command(args: AgentArgs) -> Result<(), BoxError> {
    let (scheme, rest) = args
        .url
        .split_once("://")
        .ok_or("--url needs a scheme (http:// or https://)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or("the URL's host does not resolve")?;
    if !addr.ip().is_loopback() {
        return Err("apmgate-load only targets loopback addresses".into());
    }
    if args.protocol.tls() != (scheme == "https") {
        return Err(format!(
            "--protocol {:?} does not go with a {scheme}:// URL",
            args.protocol
        )
        .into());
    }
    let raw = std::fs::read(&args.payload)?;
    let events_per_request = lines(&raw).len().saturating_sub(1) as u64;
    if events_per_request == 0 {
        return Err("the payload holds no event after its metadata line".into());
    }
    let tls = match &args.ca {
        Some(ca) => Some(client_tls(ca)?),
        None => None,
    };
    let (body, mut headers, raw_len, path) = match args.otlp {
        Some(mode) => {
            if mode == otlp::Mode::Grpc && !matches!(args.protocol, Protocol::H2c | Protocol::H2) {
                return Err("--otlp grpc needs --protocol h2c or h2".into());
            }
            let export = otlp::export(mode, events_per_request as usize, args.gzip)?;
            let path = if path == "/" { mode.path() } else { path };
            (export.body, export.headers, export.size, path)
        }
        None => {
            let body = if args.gzip {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&raw)?;
                Bytes::from(e.finish()?)
            } else {
                Bytes::from(raw.clone())
            };
            let mut headers = vec![(
                "content-type".to_string(),
                "application/x-ndjson".to_string(),
            )];
            if args.gzip {
                headers.push(("content-encoding".into(), "gzip".into()));
            }
            (body, headers, raw.len() as u64, path)
        }
    };
    if let Some(t) = &args.token {
        headers.push(("authorization".into(), format!("Bearer {t}")));
    }
    let target = Arc::new(agents::Target {
        addr,
        authority: authority.to_string(),
        path: path.to_string(),
        protocol: args.protocol,
        tls,
        headers,
    });
    // Header values are checked once here, so building a request cannot fail later.
    http::Request::post(&target.path)
        .header("host", &target.authority)
        .body(())?;
    for (k, v) in &target.headers {
        http::HeaderName::try_from(k.as_str())?;
        http::HeaderValue::try_from(v.as_str())?;
    }
    let rt = runtime(args.threads)?;
    let report = rt.block_on(run_agents(&args, target, body, raw_len, events_per_request))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn client_tls(ca: &Path) -> Result<rustls::ClientConfig, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(c?)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

async fn run_agents(
    args: &AgentArgs,
    target: Arc<agents::Target>,
    body: Bytes,
    raw_len: u64,
    events_per_request: u64,
) -> Result<serde_json::Value, BoxError> {
    let budget = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let cpu_before = args.pid.and_then(cpu_seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.agents {
        tasks.spawn(agents::play(
            target.clone(),
            body.clone(),
            events_per_request,
            budget.clone(),
            args.events,
            deadline,
        ));
    }
    let mut latencies = Vec::new();
    let mut statuses: std::collections::BTreeMap<u16, u64> = Default::default();
    let mut errors = 0;
    let mut first_error = None;
    while let Some(r) = tasks.join_next().await {
        let r = r?;
        latencies.extend(r.latencies);
        for (k, v) in r.statuses {
            *statuses.entry(k).or_default() += v;
        }
        errors += r.transport_errors;
        first_error = first_error.or(r.first_error);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    // The APM intake accepts with 202, OTLP with 200.
    let accepted_status = if args.otlp.is_some() { 200 } else { 202 };
    let accepted = statuses.get(&accepted_status).copied().unwrap_or(0);
    let events = accepted * events_per_request;
    let cpu = match (cpu_before, args.pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some((b - a) / elapsed),
        _ => None,
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(serde_json::json!({
        "protocol": format!("{:?}", args.protocol).to_lowercase(),
        "payload": args.payload.display().to_string(),
        "events_per_request": events_per_request,
        "gzip": args.gzip,
        "otlp": args.otlp.map(|m| format!("{m:?}").to_lowercase()),
        "agents": args.agents,
        "seconds": elapsed,
        "requests_accepted": accepted,
        "events_accepted": events,
        "events_per_second": events as f64 / elapsed,
        "ndjson_mb_per_second": (accepted * raw_len) as f64 / elapsed / 1e6,
        "body_bytes_per_request": body.len(),
        "latency_ms": {
            "p50": ms(percentile(&latencies, 0.50)),
            "p99": ms(percentile(&latencies, 0.99)),
            "max": ms(latencies.last().copied().unwrap_or_default()),
        },
        "statuses": statuses,
        "transport_errors": errors,
        "first_transport_error": first_error,
        "server_cpu_cores": cpu,
        "server_peak_rss_mib": args.pid.and_then(peak_rss_kib).map(|k| k as f64 / 1024.0),
    }))
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn ceiling_command(args: CeilingArgs) -> Result<(), BoxError> {
    if args.plain.is_none() && args.tls.is_none() {
        return Err("give --plain ADDR, --tls ADDR (with --cert and --key), or both".into());
    }
    let rt = runtime(args.threads)?;
    rt.block_on(async {
        let counters = Arc::new(ceiling::Counters::default());
        let mut servers = tokio::task::JoinSet::new();
        if let Some(addr) = args.plain {
            servers.spawn(ceiling::serve_tcp(addr, None, counters.clone()));
        }
        if let (Some(addr), Some(cert), Some(key)) = (args.tls, &args.cert, &args.key) {
            let tcp = ceiling::server_tls(cert, key, &[b"h2", b"http/1.1"])?;
            let quic = ceiling::server_tls(cert, key, &[b"h3"])?;
            servers.spawn(ceiling::serve_tcp(addr, Some(tcp), counters.clone()));
            servers.spawn(ceiling::serve_h3(addr, quic, counters.clone()));
        }
        tokio::select! {
            _ = terminated() => {}
            Some(r) = servers.join_next() => r??,
        }
        println!(
            "{}",
            serde_json::json!({
                "requests": counters.requests.load(Ordering::Relaxed),
                "body_bytes": counters.bytes.load(Ordering::Relaxed),
            })
        );
        Ok::<_, BoxError>(())
    })
}

fn parse_command(args: &ParseArgs) -> Result<(), BoxError> {
    let raw = std::fs::read(&args.payload)?;
    let lines = lines(&raw);
    let events_per_pass = lines.len().saturating_sub(1) as u64;
    let bytes_per_pass: usize = lines.iter().map(|l| l.len() + 1).sum();
    let started = Instant::now();
    let until = Duration::from_secs(args.seconds);
    let mut passes = 0u64;
    // One thread (this one): every line of the payload parsed into a serde_json::Value, as a
    // decoder that builds a document tree would.
    while started.elapsed() < until {
        for line in &lines {
            let v: serde_json::Value = serde_json::from_slice(line)?;
            std::hint::black_box(v);
        }
        passes += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "threads": 1,
            "payload": args.payload.display().to_string(),
            "seconds": elapsed,
            "events_per_second": (passes * events_per_pass) as f64 / elapsed,
            "ndjson_mb_per_second": (passes * bytes_per_pass as u64) as f64 / elapsed / 1e6,
        }))?
    );
    Ok(())
}

async fn standin_command(args: StandinArgs) -> Result<(), BoxError> {
    let standin = es_standin::EsStandin::start_with(es_standin::StandinOptions {
        bind: Some(args.listen),
        count_only: true,
        ..Default::default()
    })
    .await;
    eprintln!("Elasticsearch stand-in on {}", standin.url());
    terminated().await;
    let (bulk, indexed) = standin.counts();
    println!(
        "{}",
        serde_json::json!({"bulk_requests": bulk, "documents_indexed": indexed})
    );
    Ok(())
}
