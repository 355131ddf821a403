//! `apmgate validate`: every problem of every file, at once.

use std::path::PathBuf;

use apmgate::policy::diagnostics::{render_github, render_human, to_json};

use super::{Outcome, ReportFormat, UsageError, compile, use_color};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Policy files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Fail on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Report format.
    #[arg(long, value_enum, default_value = "human")]
    format: ReportFormat,
    /// Skip checks of environment variables, files and certificates.
    #[arg(long)]
    no_environment: bool,
}

pub(super) fn run(args: &Args) -> Result<Outcome, UsageError> {
    let mut failed = false;
    let mut json = Vec::new();
    let mut out = String::new();
    // Read every file first: a missing file is a usage error, reported before any verdict.
    let mut compilations = Vec::new();
    for file in &args.files {
        compilations.push(compile(file, !args.no_environment)?);
    }
    for c in &compilations {
        let errors = c.errors();
        let warnings = c.warnings();
        failed |= errors > 0 || (args.deny_warnings && warnings > 0);
        match args.format {
            ReportFormat::Human => {
                out.push_str(&render_human(
                    &c.display_source,
                    &c.diagnostics,
                    use_color(),
                ));
                out.push_str(&summary(&c.source.name, errors, warnings));
            }
            ReportFormat::Github => out.push_str(&render_github(&c.source, &c.diagnostics)),
            ReportFormat::Json => json.extend(
                to_json(&c.source, &c.diagnostics)
                    .into_iter()
                    .map(|d| serde_json::to_value(d).unwrap_or_default()),
            ),
        }
    }
    if args.format == ReportFormat::Json {
        out = serde_json::to_string_pretty(&json)?;
        out.push('\n');
    }
    print!("{out}");
    Ok(if failed { Outcome::Failed } else { Outcome::Ok })
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn summary(name: &str, errors: usize, warnings: usize) -> String {
    match (errors, warnings) {
        (0, 0) => format!("{name}: valid\n"),
        (0, w) => format!("{name}: valid, {}\n", plural(w, "warning")),
        (e, w) => format!(
            "{name}: invalid, {}, {}\n",
            plural(e, "error"),
            plural(w, "warning")
        ),
    }
}
