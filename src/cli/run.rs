//! `apmgate run`: compile the policy, bind its listeners, serve until SIGTERM/SIGINT.
//!
//! SIGHUP recompiles the file: a valid policy is swapped in whole for new requests; an invalid
//! one is reported and the running policy stays.

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = Server::build(policy).await.map_err(|e| UsageError(e.to_string()))?;
        for (name, addr) in server.local_addrs() {
            tracing::info!(listener = %name, address = %addr, "bound");
        }
        let reloader = server.reloader();
        let file = args.file.clone();
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                let path = file.clone();
                let compiled = tokio::task::spawn_blocking(move || {
                    apmgate::policy::compile_file(&path, apmgate::policy::CompileOptions::default())
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                match compiled {
                    Ok(c) => match c.policy {
                        Some(p) => match reloader.reload(p) {
                            Ok(r) => tracing::info!(policy = %file.display(), tls_reloaded = ?r.tls_replaced, "policy reloaded, listeners' certificates read again (listener addresses, the output and max_concurrent_decoders apply at the next start)"),
                            Err(e) => tracing::error!(policy = %file.display(), error = %e, "reload refused: keeping the running policy"),
                        },
                        None => {
                            for d in c.diagnostics.iter().filter(|d| d.severity == apmgate::policy::Severity::Error) {
                                tracing::error!(policy = %file.display(), code = %d.code, "{}", d.message);
                            }
                            tracing::error!(policy = %file.display(), errors = c.errors(), "reload refused: the policy is invalid; keeping the running one (run `apmgate validate`)");
                        }
                    },
                    Err(e) => tracing::error!(policy = %file.display(), error = %e, "reload refused: cannot read the policy"),
                }
            }
        });
        server.run(shutdown_signal()).await.map_err(|e| UsageError(e.to_string()))
    })?;
    Ok(Outcome::Ok)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
