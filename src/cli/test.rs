//! `apmgate test`: runs the `[[test]]` cases of policy files.

use std::path::PathBuf;

use apmgate::access::Outcome;
use apmgate::server::respond;

use super::policy_tests::{TestResult, run as run_tests};
use apmgate::policy::diagnostics::{LineIndex, render_human};
use serde_json::json;

use super::{Outcome as CliOutcome, ReportFormat, UsageError, compile, use_color};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Policy files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format (`human` or `json`).
    #[arg(long, value_enum, default_value = "human")]
    format: ReportFormat,
    /// Skip reading environment variables and files.
    #[arg(long)]
    no_environment: bool,
}

pub(super) fn run(args: &Args) -> Result<CliOutcome, UsageError> {
    let mut failed = false;
    let mut out = String::new();
    let mut records = Vec::new();
    let (mut passed_total, mut failed_total) = (0, 0);
    for file in &args.files {
        let c = compile(file, !args.no_environment)?;
        let Some(policy) = &c.policy else {
            failed = true;
            out.push_str(&render_human(
                &c.display_source,
                &c.diagnostics,
                use_color(),
            ));
            out.push_str(&format!(
                "{}: invalid policy, tests not run\n",
                c.source.name
            ));
            records.push(json!({ "file": c.source.name, "error": "invalid policy" }));
            continue;
        };
        let results = run_tests(policy);
        if results.is_empty() {
            out.push_str(&format!("{}: no tests\n", c.source.name));
        }
        let lines = LineIndex::new(&c.source.text);
        for r in &results {
            let (line, _) = lines.line_col(&c.source.text, r.case.span.start);
            if r.passed() {
                passed_total += 1;
                out.push_str(&format!(
                    "ok     {} ({}:{line})\n",
                    r.case.name, c.source.name
                ));
            } else {
                failed_total += 1;
                failed = true;
                out.push_str(&format!(
                    "FAILED {} ({}:{line})\n",
                    r.case.name, c.source.name
                ));
                for f in &r.failures {
                    out.push_str(&format!("         {f}\n"));
                }
                out.push_str(&format!("         answer: {}\n", answer(r)));
                if let Some(rule) = &r.decision.deciding_rule {
                    out.push_str(&format!("         decided by rule `{rule}`\n"));
                }
            }
            records.push(json!({
                "file": c.source.name,
                "line": line,
                "name": r.case.name,
                "passed": r.passed(),
                "failures": r.failures,
                "deciding_rule": r.decision.deciding_rule.as_deref(),
                "answer": answer(r),
            }));
        }
    }
    out.push_str(&format!("{passed_total} passed, {failed_total} failed\n"));
    match args.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&records)?),
        _ => print!("{out}"),
    }
    Ok(if failed {
        CliOutcome::Failed
    } else {
        CliOutcome::Ok
    })
}

fn answer(r: &TestResult) -> String {
    match &r.decision.outcome {
        Outcome::Allow {
            events_refused: Some(r),
            ..
        } => format!("403: every batch refused: {} (privilege)", r.reason()),
        Outcome::Allow { .. } => format!("{} (allow)", respond::allowed_status(r.decision.route)),
        Outcome::Deny(refusal) => {
            let (status, body) = respond::refusal_answer(refusal);
            format!("{status} {body} ({})", refusal.label())
        }
        Outcome::NeedsElasticsearch { .. } => "pending Elasticsearch verification".to_string(),
    }
}
