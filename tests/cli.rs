//! The `apmgate` command as a user runs it: exit codes, formats, and what it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn apmgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_apmgate"));
    c.env("NO_COLOR", "1")
        .env_remove("APMGATE_SECRET_TOKEN")
        .env_remove("ES_API_KEY");
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().expect("apmgate runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const TOKEN: &str = "a-secret-token-that-is-long-enough-1234567890";

/// Copies an example next to freshly generated development certificates, as the README says.
fn example_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    apmgate::devcerts::write(
        &dir.path().join("certs"),
        &apmgate::devcerts::Validity::default(),
    )
    .unwrap();
    let text = std::fs::read_to_string(Path::new("examples").join(name)).unwrap();
    let path = write(dir.path(), name, &text);
    (dir, path)
}

#[test]
fn committed_schema_is_the_generated_one() {
    let (code, out, _) = run(apmgate().arg("schema"));
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string("schemas/apmgate-policy.schema.json").unwrap();
    assert_eq!(
        out, committed,
        "schemas/apmgate-policy.schema.json is stale: run `apmgate schema > schemas/apmgate-policy.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(schema["properties"]["listener"].is_object());
}

#[test]
fn examples_start_with_a_schema_line() {
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("#:schema ../schemas/apmgate-policy.schema.json\n"),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn every_example_validates_with_its_environment_and_passes_its_tests() {
    for name in [
        "quickstart.toml",
        "production.toml",
        "rum.toml",
        "mtls.toml",
    ] {
        let (_dir, path) = example_dir(name);
        let (code, out, err) = run(apmgate()
            .args(["validate", "--deny-warnings"])
            .arg(&path)
            .env("APMGATE_SECRET_TOKEN", TOKEN)
            .env("ES_API_KEY", "id:key"));
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(out.ends_with(": valid\n"), "{name}: {out}");
        let (code, out, err) = run(apmgate()
            .arg("test")
            .arg(&path)
            .env("APMGATE_SECRET_TOKEN", TOKEN)
            .env("ES_API_KEY", "id:key"));
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(out.contains(" passed, 0 failed"), "{name}: {out}");
    }
}

#[test]
fn environment_checks_find_what_is_missing_and_can_be_skipped() {
    let (_dir, path) = example_dir("production.toml");
    std::fs::remove_file(path.parent().unwrap().join("certs/server.key")).unwrap();
    let (code, out, _) = run(apmgate().args(["validate", "--format", "json"]).arg(&path));
    assert_eq!(code, 1);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"E701"), "{codes:?}"); // APMGATE_SECRET_TOKEN, ES_API_KEY unset
    assert!(codes.contains(&"E702"), "{codes:?}"); // server.key removed
    let (code, out, _) = run(apmgate().args(["validate", "--no-environment"]).arg(&path));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn exit_codes_distinguish_invalid_policies_from_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\nprotocol = [\"http1\"]\n",
    );
    let warn = write(
        dir.path(),
        "warn.toml",
        "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\n[allowlist.unused]\ncidrs = [\"10.0.0.0/8\"]\n",
    );
    let (code, out, _) = run(apmgate().arg("validate").arg(&bad));
    assert_eq!(code, 1);
    assert!(
        out.contains("E101") && out.contains("did you mean `protocols`?"),
        "{out}"
    );
    let (code, _, err) = run(apmgate()
        .arg("validate")
        .arg(dir.path().join("missing.toml")));
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
    let (code, _, _) = run(apmgate().arg("validate"));
    assert_eq!(code, 2);
    let (code, out, _) = run(apmgate().arg("validate").arg(&warn));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("W103") && out.contains("valid, 1 warning"),
        "{out}"
    );
    let (code, _, _) = run(apmgate().args(["validate", "--deny-warnings"]).arg(&warn));
    assert_eq!(code, 1);
    // Several files: every one is reported, and the worst verdict wins.
    let (code, out, _) = run(apmgate().arg("validate").arg(&warn).arg(&bad));
    assert_eq!(code, 1);
    assert!(
        out.contains("warn.toml: valid, 1 warning") && out.contains("bad.toml: invalid, 1 error"),
        "{out}"
    );
}

#[test]
fn json_and_github_formats_locate_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\n\n[allowlist.office]\ncidrs = [\"10.0.0.1/8\"]\n";
    let bad = write(dir.path(), "p.toml", text);
    let (code, out, _) = run(apmgate().args(["validate", "--format", "json"]).arg(&bad));
    assert_eq!(code, 1);
    let diags: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let d = diags
        .iter()
        .find(|d| d["code"] == "E204")
        .expect("host bits error");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 6);
    assert_eq!(d["column"], 11);
    let span = d["span"].as_array().unwrap();
    let (start, end) = (
        span[0].as_u64().unwrap() as usize,
        span[1].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[start..end], "10.0.0.1/8");
    assert!(d["help"].as_str().unwrap().contains("10.0.0.0/8"));
    assert_eq!(d["url"], "docs/errors.md#e204");
    assert!(d["file"].as_str().unwrap().ends_with("p.toml"));

    let (code, out, _) = run(apmgate().args(["validate", "--format", "github"]).arg(&bad));
    assert_eq!(code, 1);
    let line = out
        .lines()
        .find(|l| l.starts_with("::error "))
        .expect("an error annotation");
    assert!(line.contains(",line=6,col=11,"), "{line}");
    assert!(
        line.contains("title=E204 CIDR with host bits set::CIDR `10.0.0.1/8` has host bits set"),
        "{line}"
    );
}

#[test]
fn human_report_has_code_snippet_label_and_help_without_color() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "p.toml",
        "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\ntls = \"mian\"\n\n[tls.main]\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n",
    );
    let (code, out, _) = run(apmgate().args(["validate", "--no-environment"]).arg(&bad));
    assert_eq!(code, 1);
    assert!(
        !out.contains('\u{1b}'),
        "NO_COLOR output has escape codes: {out}"
    );
    for expected in [
        "E301",
        "undefined TLS profile `mian`",
        "tls = \"mian\"",
        "no such TLS profile",
        "did you mean `main`?",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn secrets_never_appear_in_reports() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hunter2-inline-token";
    let p = write(
        dir.path(),
        "p.toml",
        &format!(
            "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\n[auth.secret_token.ci]\nsecret = \"{secret}\"\n"
        ),
    );
    for format in ["human", "json", "github"] {
        let (code, out, err) = run(apmgate().args(["validate", "--format", format]).arg(&p));
        assert_eq!(code, 0);
        assert!(out.contains("W105") && out.contains("W104"), "{out}");
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{format} report leaks the secret:\n{out}"
        );
    }
    let (code, out, err) = run(apmgate().args([
        "explain",
        p.to_str().unwrap(),
        "--listener",
        "a",
        "--path",
        "/intake/v2/events",
        "--from",
        "127.0.0.1",
        "--header",
        &format!("Authorization: Bearer {secret}"),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("identity:  secret_token `ci`") && out.contains("answer:    202"),
        "{out}"
    );
    assert!(!out.contains(secret) && !err.contains(secret), "{out}");
}

/// Issue 12, item 4: a file that does not parse never reaches the compiler that knows which
/// values are secrets; the report masks them all the same, in every command and format.
#[test]
fn issue_12_secrets_are_masked_when_the_file_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "SUPERSECRET-0123456789abcdefghijklmnop";
    let password = "es-password-hunter2";
    let cases = [
        // A syntax error next to the secret.
        format!(
            "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\n[auth.secret_token.ci]\nsecret = \"{secret}\"\nroles = [\"agent\"\n"
        ),
        // The secret written twice (the second copy is where the error points).
        format!(
            "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\n[auth.secret_token.ci]\nsecret = \"{secret}\"\nsecret = '{secret}'\n"
        ),
        // An unterminated secret, a password in an inline table, credentials in a host URL.
        format!(
            "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\n[output.elasticsearch]\nhosts = [\"https://elastic:{password}@es:9200\"]\nauth = {{ username = \"elastic\", password = \"{password}\" }}\n[auth.secret_token.ci]\nsecret = \"{secret}\n"
        ),
    ];
    for (i, text) in cases.iter().enumerate() {
        let p = write(dir.path(), &format!("broken-{i}.toml"), text);
        for format in ["human", "json", "github"] {
            let (code, out, err) = run(apmgate().args(["validate", "--format", format]).arg(&p));
            assert_eq!(code, 1, "case {i}: {out}{err}");
            assert!(out.contains("E100"), "case {i} {format}: {out}");
            for s in [secret, password] {
                assert!(
                    !out.contains(s) && !err.contains(s),
                    "case {i}: the {format} report shows a secret:\n{out}{err}"
                );
            }
        }
        for command in ["run", "test"] {
            let (code, out, err) = run(apmgate().arg(command).arg(&p));
            assert_eq!(code, 1, "{command} case {i}: {out}{err}");
            assert!(
                (out.contains("E100") || err.contains("E100"))
                    && !out.contains(secret)
                    && !err.contains(secret)
                    && !err.contains(password),
                "{command} case {i}:\n{out}{err}"
            );
        }
    }
}

/// Issue 12, item 1: nesting (parentheses and runs of `not`) is bounded before anything
/// recursive reads a rule, so no rule of any size aborts `validate`.
#[test]
fn issue_12_deeply_nested_rules_are_refused_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |when: &str| {
        format!(
            "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\n[[access.rule]]\nname = \"deep\"\nwhen = '{when}'\neffect = \"allow\"\n"
        )
    };
    for depth in [33, 600, 3_000, 100_000] {
        let when = format!("{}true{}", "(".repeat(depth), ")".repeat(depth));
        let p = write(dir.path(), "deep.toml", &rule(&when));
        let (code, out, err) = run(apmgate().args(["validate", "--format", "json"]).arg(&p));
        assert_eq!(code, 1, "{depth} levels: {err}");
        assert!(out.contains("\"E215\""), "{depth} levels: {out}");
    }
    let at_limit = format!("{}route == intake{}", "(".repeat(32), ")".repeat(32));
    let p = write(dir.path(), "limit.toml", &rule(&at_limit));
    let (code, out, err) = run(apmgate().arg("validate").arg(&p));
    assert_eq!(code, 0, "32 levels are allowed: {out}{err}");
    // Parentheses inside a string are not nesting.
    let quoted = format!("agent matches \"{}\"", "(".repeat(100));
    let p = write(dir.path(), "quoted.toml", &rule(&quoted));
    let (code, out, err) = run(apmgate().arg("validate").arg(&p));
    assert_eq!(code, 0, "{out}{err}");
    // Each `not` of a run is a level of the tree, as each parenthesis is.
    for (nots, valid) in [(32, true), (33, false), (20_000, false), (200_000, false)] {
        let when = format!("{}route == intake", "not ".repeat(nots));
        let p = write(dir.path(), "nots.toml", &rule(&when));
        let (code, out, err) = run(apmgate().args(["validate", "--format", "json"]).arg(&p));
        assert_eq!(code, if valid { 0 } else { 1 }, "{nots} nots: {err}");
        assert_eq!(out.contains("\"E215\""), !valid, "{nots} nots: {out}");
    }
    let mixed = format!("{}route == intake{}", "not (".repeat(17), ")".repeat(17));
    let p = write(dir.path(), "mixed.toml", &rule(&mixed));
    let (code, out, _) = run(apmgate().args(["validate", "--format", "json"]).arg(&p));
    assert!(
        code == 1 && out.contains("\"E215\""),
        "17 x `not (` is 34 levels: {out}"
    );
}

#[test]
fn issue_12_one_validate_run_reports_structural_and_later_errors_together() {
    let dir = tempfile::tempdir().unwrap();
    // An unknown key and bad enum values (one inside a listener's list, one in a rule), beside a
    // rule that does not parse, a certificate that is not there and a role nobody uses.
    let p = write(
        dir.path(),
        "staged.toml",
        r#"[gateway]
namspace = "prod"

[[listener]]
name = "local"
bind = "127.0.0.1:8200"
protocols = ["http1.1"]
tls = "public"

[tls.public]
certificate = "missing/server.crt"
key = "missing/server.key"

[[access.rule]]
name = "bad-expression"
when = "route = intake"
effect = "allow"

[[access.rule]]
name = "bad-effect"
when = "route == metrics"
effect = "reject"

[role.unused]
privileges = ["event:write"]
"#,
    );
    let (code, out, err) = run(apmgate().args(["validate", "--format", "json"]).arg(&p));
    assert_eq!(code, 1, "{err}");
    let diags: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let mut codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        ["E101", "E104", "E104", "E209", "E702", "E702", "W102"],
        "{out}"
    );
}

#[test]
fn issue_12_trusted_proxies_without_their_header_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let policy = |header: &str| {
        format!(
            "[gateway]\ntrusted_proxies = [\"10.0.0.0/24\"]\n{header}\n[[listener]]\nname = \"local\"\nbind = \"127.0.0.1:8200\"\n"
        )
    };
    let p = write(dir.path(), "proxies.toml", &policy(""));
    let (code, out, err) = run(apmgate().args(["validate", "--format", "json"]).arg(&p));
    assert_eq!(code, 0, "a warning, not an error: {err}");
    let diags: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["W111"], "{out}");
    assert_eq!(diags[0]["severity"], "warning");
    let (code, _, _) = run(apmgate().args(["validate", "--deny-warnings"]).arg(&p));
    assert_eq!(code, 1);
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let p = write(
            dir.path(),
            "proxies.toml",
            &policy(&format!("trusted_proxy_header = \"{header}\"")),
        );
        let (code, out, err) = run(apmgate()
            .args(["validate", "--deny-warnings", "--format", "json"])
            .arg(&p));
        assert_eq!((code, out.trim()), (0, "[]"), "{header}: {err}");
    }
    let p = write(
        dir.path(),
        "proxies.toml",
        &policy("trusted_proxy_header = \"x-forwarded-host\""),
    );
    let (code, out, _) = run(apmgate().args(["validate", "--format", "json"]).arg(&p));
    assert_eq!(code, 1);
    assert!(out.contains("\"E104\""), "{out}");
}

#[test]
fn explain_walks_the_rules_and_shows_the_answer() {
    let (_dir, path) = example_dir("production.toml");
    let base = |from: &str| {
        let mut c = apmgate();
        c.arg("explain")
            .arg(&path)
            .args([
                "--listener",
                "agents",
                "--path",
                "/intake/v2/events",
                "--from",
                from,
            ])
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .env("APMGATE_SECRET_TOKEN", TOKEN)
            .env("ES_API_KEY", "id:key");
        c
    };
    let (code, out, err) = run(&mut base("203.0.113.7"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("identity:  secret_token `legacy-agents`"),
        "{out}"
    );
    assert!(
        out.contains(
            "1. health-checks [allow] when route == root and method in [GET, HEAD] -> no match"
        ),
        "{out}"
    );
    assert!(
        out.contains("3. legacy-token-only-from-datacenter [deny]") && out.contains("-> matched"),
        "{out}"
    );
    assert!(
        out.contains("(1 later rule not tried: first match decides)"),
        "{out}"
    );
    assert!(
        out.contains("answer:    403 {\"error\":\"forbidden request: access denied by policy\"}"),
        "{out}"
    );

    let (code, out, _) = run(base("10.1.2.3").args(["--format", "json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["status"], 202);
    assert_eq!(v["deciding_rule"], "agents");
    assert_eq!(v["identity"]["kind"], "secret_token");
    assert_eq!(v["rules"].as_array().unwrap().len(), 4);
    assert_eq!(v["client_ip"]["source"], "socket peer address");

    // Forwarding headers count only from trusted proxies.
    let (_, out, _) = run(base("203.0.113.7").args([
        "--header",
        "X-Forwarded-For: 10.1.2.3",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["client_ip"]["ip"], "203.0.113.7");
    assert_eq!(v["decision"], "deny");
    let (_, out, _) = run(base("10.0.0.9").args([
        "--header",
        "X-Forwarded-For: 203.0.113.7, 10.1.2.3",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["client_ip"]["ip"], "10.1.2.3");
    assert_eq!(v["client_ip"]["source"], "X-Forwarded-For header");

    // A wrong token is APM Server's 401.
    let (_, out, _) = run(apmgate()
        .arg("explain")
        .arg(&path)
        .args([
            "--listener",
            "agents",
            "--path",
            "/intake/v2/events",
            "--from",
            "10.1.2.3",
        ])
        .args([
            "--header",
            "Authorization: Bearer wrong",
            "--format",
            "json",
        ])
        .env("APMGATE_SECRET_TOKEN", TOKEN)
        .env("ES_API_KEY", "id:key"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], 401);
    assert_eq!(
        v["body"],
        serde_json::json!({"error": "authentication failed"})
    );
}

#[test]
fn policy_test_failures_say_what_differed() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.toml",
        r#"[[listener]]
name = "a"
bind = "127.0.0.1:8200"

[auth.anonymous]
allow_agent = ["rum-js"]

[[access.rule]]
name = "no-config"
when = 'route == config'
effect = "deny"

[[test]]
name = "config is open"
listener = "a"
method = "GET"
path = "/config/v1/agents"
from = "127.0.0.1"
expect = "allow"

[[test]]
name = "intake is open"
listener = "a"
path = "/intake/v2/events"
from = "127.0.0.1"
expect = "allow"
status = 202
"#,
    );
    let (code, out, _) = run(apmgate().arg("test").arg(&p));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED config is open"), "{out}");
    assert!(out.contains("expected allow, got deny"), "{out}");
    assert!(out.contains("decided by rule `no-config`"), "{out}");
    assert!(out.contains("ok     intake is open"), "{out}");
    assert!(out.ends_with("1 passed, 1 failed\n"), "{out}");
}

#[test]
fn keys_new_prints_a_credential_that_the_policy_entry_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let roles = write(
        dir.path(),
        "roles.toml",
        "[role.agent]\nprivileges = [\"event:write\"]\n",
    );
    let (code, out, _) = run(apmgate()
        .args(["keys", "new", "--role", "agent", "--name", "ci", "--policy"])
        .arg(&roles));
    assert_eq!(code, 0);
    let credential = out
        .lines()
        .find_map(|l| l.strip_prefix("#   credential: "))
        .expect("credential line")
        .to_string();
    let entry: String = out
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!entry.contains(&credential));
    let p = write(
        dir.path(),
        "p.toml",
        &format!(
            "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8200\"\n[role.agent]\nprivileges = [\"event:write\"]\n{entry}\n"
        ),
    );
    let explain = |cred: &str| {
        let (code, out, err) = run(apmgate()
            .arg("explain")
            .arg(&p)
            .args([
                "--listener",
                "a",
                "--path",
                "/intake/v2/events",
                "--from",
                "127.0.0.1",
                "--format",
                "json",
            ])
            .args(["--header", &format!("Authorization: ApiKey {cred}")]));
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains(cred));
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let v = explain(&credential);
    assert_eq!(v["decision"], "allow", "{v}");
    assert_eq!(v["identity"]["kind"], "api_key");
    assert_eq!(v["identity"]["name"], "ci");
    // The same id with another secret is refused.
    use base64::Engine as _;
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&credential)
            .unwrap(),
    )
    .unwrap();
    let id = decoded.split(':').next().unwrap();
    let forged = base64::engine::general_purpose::STANDARD.encode(format!("{id}:not-the-key"));
    let v = explain(&forged);
    assert_eq!(v["status"], 401, "{v}");
}

#[test]
fn issue_12_keys_new_refuses_an_undeclared_role_and_a_past_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "p.toml",
        "[role.agent]\nprivileges = [\"event:write\"]\n[role.reader]\nprivileges = [\"config_agent:read\"]\n",
    );
    let keys = |args: &[&str]| {
        run(apmgate()
            .args(["keys", "new", "--policy"])
            .arg(&policy)
            .args(args))
    };
    let (code, out, err) = keys(&["--role", "nosuchrole"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "no credential is printed: {out}");
    assert!(err.contains("role `nosuchrole` is not declared"), "{err}");
    let (code, _, err) = keys(&["--role", "agent", "--role", "agnet"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `agent`"), "{err}");
    let (code, out, err) = keys(&["--role", "agent", "--expires", "2020-01-01T00:00:00Z"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "no credential is printed: {out}");
    assert!(err.contains("is in the past"), "{err}");
    let (code, _, err) = keys(&["--role", "agent", "--expires", "2999-01-01T00:00:00"]);
    assert_eq!(
        code, 2,
        "an expiry without an offset, which the policy refuses"
    );
    assert!(err.contains("with an offset"), "{err}");
    let (code, out, err) = keys(&["--role", "reader", "--expires", "2999-01-01T00:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("expires = 2999-01-01T00:00:00Z"), "{out}");
    // The roles can only be checked against a policy: it is required.
    let (code, _, err) = run(apmgate().args(["keys", "new", "--role", "agent"]));
    assert_eq!(code, 2);
    assert!(err.contains("--policy"), "{err}");
}

#[test]
fn certs_dev_writes_a_chain_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(apmgate().args(["certs", "dev"]).arg(dir.path().join("c")));
    assert_eq!(code, 0, "{out}");
    for f in [
        "ca.crt",
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
    ] {
        assert!(dir.path().join("c").join(f).exists(), "{f}");
    }
    let p = write(
        dir.path(),
        "p.toml",
        "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8443\"\ntls = \"t\"\n[tls.t]\ncertificate = \"c/server.crt\"\nkey = \"c/server.key\"\ncertificate_authorities = [\"c/ca.crt\"]\n",
    );
    let (code, out, _) = run(apmgate().args(["validate", "--deny-warnings"]).arg(&p));
    assert_eq!(code, 0, "{out}");
    // A key from another pair is refused.
    let q = write(
        dir.path(),
        "q.toml",
        "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:8443\"\ntls = \"t\"\n[tls.t]\ncertificate = \"c/server.crt\"\nkey = \"c/client.key\"\n",
    );
    let (code, out, _) = run(apmgate().arg("validate").arg(&q));
    assert_eq!(code, 1);
    assert!(out.contains("E705"), "{out}");
}
