//! `apmgate run`: compile the policy, bind its listeners, serve until SIGTERM/SIGINT.
//!
//! SIGHUP recompiles the file: a valid policy is swapped in whole for new requests, its
//! listeners and output applied (see `server::listeners` and `output::switch`); an invalid one
//! is reported and the running policy stays. SIGUSR1 opens the output's files again (the file
//! output's file, the dead-letter file) after log rotation moved them. With `--watch`, a change to the policy file or to a file it names (certificates,
//! keys, CAs, secrets; a Kubernetes-style symlink swap included) reloads the same way.

use std::path::PathBuf;

use apmgate::policy::diagnostics::render_human;
use apmgate::server::Server;
use apmgate::telemetry::{LogFormat, init_logging};

use super::{Outcome, UsageError, compile, use_color};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum LogFormatArg {
    /// Human-readable lines.
    Human,
    /// ECS JSON lines.
    Json,
}

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Policy file.
    file: PathBuf,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormatArg,
    /// Reload when the policy file or a file it names changes (checked every second).
    #[arg(long)]
    watch: bool,
}

/// How often `--watch` looks at the files.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What identifies a file's content without reading it: device, inode, size and modification
/// time of what the path points to (a symlink swap changes the inode).
type Stamp = Option<(u64, u64, u64, i128)>;

fn stamp(path: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.len(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    ))
}

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths.iter().map(|p| stamp(p)).collect()
}

/// Recompiles `file` and applies it; returns the files the applied policy names.
async fn reload(
    file: &std::path::Path,
    reloader: &apmgate::server::Reloader,
    why: &str,
) -> Option<Vec<PathBuf>> {
    let path = file.to_path_buf();
    let compiled = tokio::task::spawn_blocking(move || {
        apmgate::policy::compile_file(&path, apmgate::policy::CompileOptions::default())
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    match compiled {
        Ok(c) => match c.policy {
            Some(p) => {
                let files = p.files();
                match reloader.reload(p).await {
                    Ok(r) => {
                        let l = &r.listeners;
                        for (name, addr) in &l.bound {
                            if let Some(addr) = addr {
                                tracing::info!(listener = %name, address = %addr, "bound");
                            }
                        }
                        for name in &l.at_next_start {
                            tracing::warn!(listener = %name, "this listener keeps its address and socket: TLS on or off, HTTP/3 on or off and max_connections apply at the next start");
                        }
                        if !r.output.at_next_start.is_empty() {
                            tracing::warn!(settings = ?r.output.at_next_start, "these output changes apply at the next start (the running output keeps its buffer, its number of requests in flight, its spool, and its kind when it changes to or from Elasticsearch)");
                        }
                        tracing::info!(policy = %file.display(), trigger = why, tls_reloaded = ?l.tls_replaced, listeners_bound = ?l.bound.iter().map(|(n, _)| n).collect::<Vec<_>>(), listeners_stopped = ?l.stopped, listeners_reconfigured = ?l.reconfigured, output_reconfigured = r.output.reconfigured, output_replaced = r.output.replaced, "policy reloaded");
                        Some(files)
                    }
                    Err(e) => {
                        tracing::error!(policy = %file.display(), trigger = why, error = %e, "reload refused: keeping the running policy");
                        None
                    }
                }
            }
            None => {
                for d in c
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == apmgate::policy::Severity::Error)
                {
                    tracing::error!(policy = %file.display(), code = %d.code, "{}", d.message);
                }
                tracing::error!(policy = %file.display(), trigger = why, errors = c.errors(), "reload refused: the policy is invalid; keeping the running one (run `apmgate validate`)");
                None
            }
        },
        Err(e) => {
            tracing::error!(policy = %file.display(), trigger = why, error = %e, "reload refused: cannot read the policy");
            None
        }
    }
}

pub(super) fn run(args: &Args) -> Result<Outcome, UsageError> {
    init_logging(match args.log_format {
        LogFormatArg::Human => LogFormat::Human,
        LogFormatArg::Json => LogFormat::Json,
    });
    let compilation = compile(&args.file, true)?;
    let Some(policy) = compilation.policy else {
        eprint!(
            "{}",
            render_human(
                &compilation.display_source,
                &compilation.diagnostics,
                use_color()
            )
        );
        eprintln!("{}: invalid policy, not starting", compilation.source.name);
        return Ok(Outcome::Failed);
    };
    for d in &compilation.diagnostics {
        tracing::warn!(code = %d.code, "{}", d.message);
    }
    let policy_files = policy.files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Every signal the gateway answers is registered before it says it is bound: a signal
        // that came before its handler would end the process with the default action.
        let signals = Signals::register().map_err(|e| UsageError(e.to_string()))?;
        let server = Server::build(policy)
            .await
            .map_err(|e| UsageError(e.to_string()))?;
        for (name, addr) in server.local_addrs() {
            tracing::info!(listener = %name, address = %addr, "bound");
        }
        let reloader = server.reloader();
        let file = args.file.clone();
        let watch = args.watch;
        let mut watched: Vec<PathBuf> = std::iter::once(file.clone()).chain(policy_files).collect();
        let Signals {
            mut hup,
            mut usr1,
            term,
            int,
        } = signals;
        tokio::spawn(async move {
            let mut seen = stamps(&watched);
            let mut tick = tokio::time::interval(WATCH_EVERY);
            loop {
                let why = tokio::select! {
                    s = hup.recv() => match s { Some(()) => "SIGHUP", None => return },
                    s = usr1.recv() => {
                        if s.is_none() {
                            return;
                        }
                        reloader.reopen_files().await;
                        tracing::info!("output files opened again (SIGUSR1)");
                        continue;
                    }
                    _ = tick.tick(), if watch => {
                        if stamps(&watched) == seen {
                            continue;
                        }
                        "a watched file changed"
                    }
                };
                if let Some(files) = reload(&file, &reloader, why).await {
                    watched = std::iter::once(file.clone()).chain(files).collect();
                }
                // A refused change is not tried again until something changes again.
                seen = stamps(&watched);
            }
        });
        server
            .run(shutdown_signal(term, int))
            .await
            .map_err(|e| UsageError(e.to_string()))
    })?;
    Ok(Outcome::Ok)
}

/// The signals `run` answers, registered at once.
struct Signals {
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Resolves at SIGTERM or SIGINT.
async fn shutdown_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
