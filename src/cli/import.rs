//! `apmgate import`: an `apm-server.yml` to a policy, and a report of what did not carry over.
//!
//! Exit codes: 0 imported and nothing lost, 1 imported with settings that could not be carried
//! over, 2 unreadable input (or usage). The policy goes to `-o FILE`, else to stdout; the report
//! goes to stdout when the policy went to a file, to stderr otherwise.

use std::path::PathBuf;

use apmgate::policy::diagnostics::{render_github, render_human, to_json};

use super::{Outcome, ReportFormat, UsageError, use_color};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The APM Server configuration (`apm-server.yml`).
    file: PathBuf,
    /// Write the policy here (default: stdout).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "human")]
    format: ReportFormat,
}

pub(super) fn run(args: &Args) -> Result<Outcome, UsageError> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| UsageError(format!("cannot read `{}`: {e}", args.file.display())))?;
    let name = args.file.display().to_string();
    let import = apmgate::import::import(&name, &text);

    let mut report = match args.format {
        ReportFormat::Human => {
            let color = use_color() && args.output.is_some();
            render_human(&import.display_source, &import.diagnostics, color)
        }
        ReportFormat::Github => render_github(&import.display_source, &import.diagnostics),
        ReportFormat::Json => {
            let mut json = serde_json::to_string_pretty(&to_json(
                &import.display_source,
                &import.diagnostics,
            ))?;
            json.push('\n');
            json
        }
    };

    let Some(policy) = &import.policy else {
        if args.format == ReportFormat::Human {
            report.push_str(&format!("{name}: cannot be read, nothing imported\n"));
        }
        emit_report(args, &report);
        return Ok(Outcome::Unreadable);
    };

    if let Some(path) = &args.output {
        std::fs::write(path, policy)
            .map_err(|e| UsageError(format!("cannot write `{}`: {e}", path.display())))?;
    } else {
        print!("{policy}");
    }
    if args.format == ReportFormat::Human {
        let into = args
            .output
            .as_ref()
            .map_or("stdout".to_string(), |p| p.display().to_string());
        let lost = import.lost();
        let warnings = import.warnings();
        report.push_str(&format!(
            "{name}: imported into {into}; {}, {}\n",
            plural(lost, "setting not carried", "settings not carried"),
            plural(warnings, "warning", "warnings"),
        ));
        for v in &import.env {
            report.push_str(&format!("set {}: {}\n", v.name, v.what));
        }
    }
    emit_report(args, &report);
    Ok(if import.lost() > 0 {
        Outcome::Failed
    } else {
        Outcome::Ok
    })
}

fn emit_report(args: &Args, report: &str) {
    if args.output.is_some() {
        print!("{report}");
    } else {
        eprint!("{report}");
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
