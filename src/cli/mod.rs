//! Command-line interface: parses arguments, runs a command, maps its result to an exit code.
//!
//! Exit codes: 0 success, 1 the policy is invalid (or a policy test failed), 2 usage or I/O
//! error.

// Output goes through `emit`: a closed pipe (`apmgate validate ... | head`) ends the output
// quietly instead of panicking. These shadow the std macros for every command module below.
macro_rules! print {
    ($($t:tt)*) => { $crate::cli::emit(&format!($($t)*)) };
}
macro_rules! println {
    () => { $crate::cli::emit("\n") };
    ($($t:tt)*) => { $crate::cli::emit(&format!("{}\n", format_args!($($t)*))) };
}

mod apikey;
mod explain;
mod import;
mod keys;
mod policy_tests;
mod run;
mod test;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// apmgate: a policy-driven, drop-in replacement for Elastic's APM Server.
#[derive(Debug, Parser)]
#[command(name = "apmgate", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve APM agents as the policy says, until SIGTERM or SIGINT (SIGHUP reloads).
    Run(run::Args),
    /// Check policy files and report every problem at once.
    Validate(validate::Args),
    /// Show how the policy decides one request, and why.
    Explain(explain::Args),
    /// Run the `[[test]]` cases written in policy files.
    Test(test::Args),
    /// Print the JSON Schema of the policy format, or write the intake event schemas.
    Schema {
        /// Write the JSON Schemas of the intake events (v2 and RUM v3), as apmgate accepts
        /// them, into this directory (`schemas/intake` in the repository).
        #[arg(long, value_name = "DIR")]
        intake: Option<PathBuf>,
    },
    /// Translate an APM Server `apm-server.yml` into a policy, reporting what did not carry over.
    Import(import::Args),
    /// Manage API keys declared in the policy.
    Keys {
        #[command(subcommand)]
        command: keys::Command,
    },
    /// Manage API keys with APM privileges in Elasticsearch (APM Server's `apikey` commands),
    /// through the policy's Elasticsearch output.
    Apikey {
        #[command(subcommand)]
        command: apikey::Command,
    },
    /// Development certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Write a development CA, a server certificate for localhost and 127.0.0.1, and a client
    /// certificate into DIR. Never for production.
    Dev {
        /// Directory to write into.
        dir: PathBuf,
    },
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// Graphical report for people (honours NO_COLOR).
    Human,
    /// A JSON document.
    Json,
    /// GitHub Actions annotations.
    Github,
}

/// What a command ended with.
pub(crate) enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: invalid policy, failed test.
    Failed,
    /// Exit 2, already reported: `import`'s unreadable input.
    Unreadable,
}

/// A usage or I/O error: exit 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(e: E) -> Self {
        UsageError(e.to_string())
    }
}

/// Writes to stdout; a reader that went away (broken pipe) ends the process quietly.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Whether to colour output written to stdout.
pub(crate) fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Reads and compiles one policy file; I/O errors are usage errors.
pub(crate) fn compile(
    path: &std::path::Path,
    environment: bool,
) -> Result<apmgate::policy::Compilation, UsageError> {
    apmgate::policy::compile_file(path, apmgate::policy::CompileOptions { environment })
        .map_err(|e| UsageError(format!("cannot read `{}`: {e}", path.display())))
}

fn write_intake_schemas(dir: &std::path::Path) -> Result<Outcome, UsageError> {
    for (name, schema) in apmgate::model::schema::intake_schemas() {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, serde_json::to_string_pretty(&schema)? + "\n")?;
        println!("wrote {}", path.display());
    }
    Ok(Outcome::Ok)
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Schema { intake: None } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&apmgate::policy::schema()).unwrap_or_default()
            );
            Ok(Outcome::Ok)
        }
        Command::Schema { intake: Some(dir) } => write_intake_schemas(&dir),
        Command::Keys { command } => keys::run(&command),
        Command::Apikey { command } => apikey::run(&command),
        Command::Import(args) => import::run(&args),
        Command::Certs {
            command: CertsCommand::Dev { dir },
        } => match apmgate::devcerts::write(&dir, &apmgate::devcerts::Validity::default()) {
            Ok(c) => {
                println!(
                    "wrote {}, {}, {}, {}, {}, {}",
                    c.ca_cert.display(),
                    c.ca_key.display(),
                    c.server_cert.display(),
                    c.server_key.display(),
                    c.client_cert.display(),
                    c.client_key.display()
                );
                println!(
                    "trust {} in clients (curl --cacert {})",
                    c.ca_cert.display(),
                    c.ca_cert.display()
                );
                Ok(Outcome::Ok)
            }
            Err(e) => Err(UsageError(format!(
                "cannot write certificates into `{}`: {e}",
                dir.display()
            ))),
        },
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::Unreadable) => ExitCode::from(2),
        Err(UsageError(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
