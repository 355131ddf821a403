//! The environment step on certificates and secrets made at test time.
//!
//! What depends on today's date (a certificate expiring within 30 days, W108) or on the process
//! environment cannot be a committed corpus file; it is tested here with certificates generated
//! by `apmgate::devcerts` in temporary directories.

use std::path::Path;
use std::process::Command;

use apmgate::devcerts::{self, DevCerts, Validity};
use apmgate::policy::{Code, Compilation, CompileOptions, Severity, SourceFile, compile};
use time::Duration;

/// Certificates valid from `not_before` to `not_after` days from now, in `dir`.
fn certs(dir: &Path, not_before: i64, not_after: i64) -> DevCerts {
    let validity = Validity {
        not_before: Duration::days(not_before),
        not_after: Duration::days(not_after),
    };
    devcerts::write(dir, &validity).expect("development certificates are written")
}

/// A policy with one mutual-TLS listener using the given files.
fn tls_policy(cert: &Path, key: &Path, ca: &Path) -> String {
    format!(
        r#"[[listener]]
name = "mtls"
bind = "127.0.0.1:8200"
tls = "mutual"

[tls.mutual]
certificate = "{}"
key = "{}"
certificate_authorities = ["{}"]
"#,
        cert.display(),
        key.display(),
        ca.display()
    )
}

fn compile_text(dir: &Path, text: &str) -> Compilation {
    let name = dir.join("policy.toml").display().to_string();
    compile(
        &SourceFile::new(name, text),
        CompileOptions { environment: true },
    )
}

fn codes(c: &Compilation) -> Vec<Code> {
    c.diagnostics.iter().map(|d| d.code).collect()
}

/// The byte range of `needle` (quoted) in `text`.
fn quoted_span(text: &str, needle: &str) -> std::ops::Range<usize> {
    let quoted = format!("\"{needle}\"");
    let start = text.find(&quoted).expect("the value is in the policy");
    start..start + quoted.len()
}

#[test]
fn valid_development_certificates_give_no_diagnostics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = certs(dir.path(), -1, 365);
    let text = tls_policy(&c.server_cert, &c.server_key, &c.ca_cert);
    let compilation = compile_text(dir.path(), &text);
    assert_eq!(compilation.diagnostics, Vec::new());
    assert!(compilation.policy.is_some());
}

#[test]
fn a_certificate_expiring_within_30_days_is_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = certs(dir.path(), -1, 10);
    let text = tls_policy(&c.server_cert, &c.server_key, &c.ca_cert);
    let compilation = compile_text(dir.path(), &text);
    // The CA of `devcerts` lives ten years: only the server certificate warns.
    assert_eq!(codes(&compilation), vec![Code::CertificateExpiring]);
    let d = &compilation.diagnostics[0];
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(
        d.labels[0].span,
        quoted_span(&text, &c.server_cert.display().to_string())
    );
    assert!(d.message.contains("CN=localhost"), "{}", d.message);
    assert!(d.help.as_deref().is_some_and(|h| h.contains("renew")));
    assert!(
        compilation.policy.is_some(),
        "a warning does not make the policy invalid"
    );
}

#[test]
fn a_certificate_valid_for_more_than_30_days_does_not_warn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = certs(dir.path(), -1, 31);
    let text = tls_policy(&c.server_cert, &c.server_key, &c.ca_cert);
    assert_eq!(codes(&compile_text(dir.path(), &text)), Vec::new());
}

#[test]
fn an_expired_certificate_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = certs(dir.path(), -400, -2);
    let text = tls_policy(&c.server_cert, &c.server_key, &c.ca_cert);
    let compilation = compile_text(dir.path(), &text);
    assert_eq!(codes(&compilation), vec![Code::CertificateExpired]);
    let d = &compilation.diagnostics[0];
    assert_eq!(
        d.labels[0].span,
        quoted_span(&text, &c.server_cert.display().to_string())
    );
    assert!(compilation.policy.is_none());
}

#[test]
fn a_key_from_another_certificate_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = certs(&dir.path().join("a"), -1, 365);
    let b = certs(&dir.path().join("b"), -1, 365);
    let text = tls_policy(&a.server_cert, &b.server_key, &a.ca_cert);
    let compilation = compile_text(dir.path(), &text);
    assert_eq!(codes(&compilation), vec![Code::KeyMismatch]);
    let d = &compilation.diagnostics[0];
    // The key is what is wrong; the certificate is shown beside it.
    assert_eq!(
        d.labels[0].span,
        quoted_span(&text, &b.server_key.display().to_string())
    );
    assert_eq!(
        d.labels[1].span,
        quoted_span(&text, &a.server_cert.display().to_string())
    );
    assert!(compilation.policy.is_none());
}

const UNSET: &str = "APMGATE_ENVIRONMENT_CHECKS_SURELY_UNSET_7";

fn env_token_policy(var: &str) -> String {
    format!(
        r#"[[listener]]
name = "local"
bind = "127.0.0.1:8200"

[auth.secret_token.agents]
secret = "env:{var}"
"#
    )
}

#[test]
fn an_unset_environment_variable_is_an_error() {
    assert!(std::env::var_os(UNSET).is_none(), "{UNSET} must not be set");
    let dir = tempfile::tempdir().expect("temp dir");
    let text = env_token_policy(UNSET);
    let compilation = compile_text(dir.path(), &text);
    assert_eq!(codes(&compilation), vec![Code::EnvVarMissing]);
    let d = &compilation.diagnostics[0];
    assert_eq!(
        d.labels[0].span,
        quoted_span(&text, &format!("env:{UNSET}"))
    );
    assert!(d.message.contains(UNSET), "{}", d.message);
    assert!(compilation.policy.is_none());
}

#[test]
fn without_the_environment_step_nothing_is_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing");
    let text = format!(
        "{}\n[auth.secret_token.agents]\nsecret = \"env:{UNSET}\"\n",
        tls_policy(
            &missing.join("server.crt"),
            &missing.join("server.key"),
            &missing.join("ca.crt")
        )
    );
    let name = dir.path().join("policy.toml").display().to_string();
    let skipped = compile(
        &SourceFile::new(name, text.as_str()),
        CompileOptions { environment: false },
    );
    assert_eq!(codes(&skipped), Vec::new());
    // With the environment step, the variable and the three files are reported.
    let checked = compile_text(dir.path(), &text);
    let mut found = codes(&checked);
    found.sort();
    assert_eq!(
        found,
        vec![
            Code::EnvVarMissing,
            Code::FileUnreadable,
            Code::FileUnreadable,
            Code::FileUnreadable
        ]
    );
}

/// Runs `apmgate validate --format json` on `policy` with `var=value` in its environment,
/// returning the exit code and the reported codes. A child process keeps the test process's
/// own environment untouched.
fn validate_with_env(
    policy: &Path,
    var: &str,
    value: &str,
    deny_warnings: bool,
) -> (i32, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_apmgate"));
    cmd.args(["validate", "--format", "json"]);
    if deny_warnings {
        cmd.arg("--deny-warnings");
    }
    let out = cmd
        .arg(policy)
        .env(var, value)
        .env("NO_COLOR", "1")
        .output()
        .expect("apmgate runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let codes = report
        .as_array()
        .expect("a JSON list")
        .iter()
        .map(|d| d["code"].as_str().expect("a code").to_string())
        .collect();
    (out.status.code().expect("an exit code"), codes)
}

#[test]
fn a_short_secret_token_from_the_environment_is_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let var = "APMGATE_ENVIRONMENT_CHECKS_TOKEN";
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, env_token_policy(var)).expect("policy written");

    let short = "a".repeat(31);
    assert_eq!(
        validate_with_env(&policy, var, &short, false),
        (0, vec!["W104".to_string()])
    );
    // `--deny-warnings` turns the warning into a failure.
    assert_eq!(
        validate_with_env(&policy, var, &short, true),
        (1, vec!["W104".to_string()])
    );
    // 32 characters are enough.
    let long = "a".repeat(32);
    assert_eq!(
        validate_with_env(&policy, var, &long, true),
        (0, Vec::new())
    );
}
