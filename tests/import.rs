//! `apmgate import apm-server.yml` as an operator runs it: every file of the corpus in
//! `tests/import/` is imported, the policy validated and its `[[test]]` cases run, the reports
//! snapshotted; secrets never reach the policy or a report; and imported policies, run, answer
//! what the YAML implied, over real sockets.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn apmgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_apmgate"));
    c.env("NO_COLOR", "1");
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

/// The corpus, and the exit code each file's import must end with.
const CORPUS: &[(&str, i32)] = &[
    ("invalid-regex", 1),
    ("reference", 0),
    ("docker-compose", 0),
    ("tls-api-keys", 0),
    ("rum-anonymous", 0),
    ("every-output-setting", 1),
    ("literal-secret", 1),
    ("wrong-types", 1),
    ("unknown-keys", 1),
    ("legacy-7x", 1),
    ("anonymous-without-auth", 1),
    ("credentials-in-headers", 1),
    ("bad-yaml", 2),
];

fn corpus_path(stem: &str) -> PathBuf {
    Path::new("tests/import").join(format!("{stem}.yml"))
}

#[test]
fn the_corpus_is_listed_whole() {
    let mut on_disk: Vec<String> = std::fs::read_dir("tests/import")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(s, _)| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn every_import_validates_and_passes_its_own_tests() {
    for (stem, code) in CORPUS {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        let (got, out, _) = run(apmgate()
            .arg("import")
            .arg(corpus_path(stem))
            .arg("-o")
            .arg(&policy));
        assert_eq!(got, *code, "{stem}: {out}");
        if *code == 2 {
            assert!(!policy.exists(), "{stem}: nothing is written");
            continue;
        }
        let (v, vout, _) = run(apmgate()
            .args(["validate", "--no-environment"])
            .arg(&policy));
        if *stem == "invalid-regex" {
            // A value APM Server refused too: reported by the import (I109), and by validate
            // at its place in the written policy.
            assert_eq!(v, 1, "{vout}");
            assert!(vout.contains("E210"), "{vout}");
            assert!(out.contains("I109"), "{out}");
            continue;
        }
        assert_eq!(v, 0, "{stem}: the imported policy validates\n{vout}");
        assert!(
            !out.contains("I109"),
            "{stem}: the import's own check passed"
        );
        let (t, tout, _) = run(apmgate().args(["test", "--no-environment"]).arg(&policy));
        assert_eq!(t, 0, "{stem}: its [[test]] cases pass\n{tout}");
        assert!(tout.contains(" passed, 0 failed"), "{stem}: {tout}");
    }
}

#[test]
fn reports_and_policies_match_snapshots() {
    for (stem, _) in CORPUS {
        let path = corpus_path(stem);
        let (_, policy, human) = run(apmgate().arg("import").arg(&path));
        let (_, _, json) = run(apmgate()
            .arg("import")
            .arg(&path)
            .args(["--format", "json"]));
        let (_, _, github) = run(apmgate()
            .arg("import")
            .arg(&path)
            .args(["--format", "github"]));
        let mut settings = insta::Settings::clone_current();
        settings.set_description(path.display().to_string());
        settings.set_omit_expression(true);
        settings.bind(|| {
            insta::assert_snapshot!(format!("{stem}.human"), human);
            insta::assert_snapshot!(format!("{stem}.json"), json);
            insta::assert_snapshot!(format!("{stem}.github"), github);
            insta::assert_snapshot!(format!("{stem}.policy"), policy);
        });
    }
}

#[test]
fn every_import_code_is_reported_by_a_corpus_file() {
    let mut seen = std::collections::BTreeSet::new();
    for (stem, _) in CORPUS {
        let (_, _, json) = run(apmgate()
            .arg("import")
            .arg(corpus_path(stem))
            .args(["--format", "json"]));
        let records: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        for r in records {
            seen.insert(r["code"].as_str().unwrap().to_string());
        }
    }
    let missing: Vec<&str> = apmgate::policy::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| c.starts_with('I') && !seen.contains(*c))
        .collect();
    assert!(missing.is_empty(), "no corpus file reports {missing:?}");
}

#[test]
fn diagnostics_are_placed_at_their_yaml_line_and_column() {
    let (_, _, json) = run(apmgate()
        .arg("import")
        .arg(corpus_path("unknown-keys"))
        .args(["--format", "json"]));
    let records: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let typo = records
        .iter()
        .find(|r| r["message"].as_str().unwrap().contains("alow_origins"))
        .expect("the typo is reported");
    assert_eq!(typo["code"], "I102");
    assert_eq!(
        (typo["line"].as_u64(), typo["column"].as_u64()),
        (Some(6), Some(5))
    );
    assert!(
        typo["help"]
            .as_str()
            .unwrap()
            .contains("did you mean `apm-server.rum.allow_origins`?")
    );
    for code in ["I101", "I107", "I108"] {
        assert!(
            records.iter().any(|r| r["code"] == code),
            "{code} in {json}"
        );
    }
}

#[test]
fn unreadable_yaml_exits_2_with_its_place() {
    let (code, out, err) = run(apmgate().arg("import").arg(corpus_path("bad-yaml")));
    assert_eq!(code, 2);
    assert!(out.is_empty(), "no policy: {out}");
    assert!(
        err.contains("I100") && err.contains("bad-yaml.yml:2:"),
        "{err}"
    );
    let (code, _, err) = run(apmgate().arg("import").arg("tests/import/missing.yml"));
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

const SECRETS: &[&str] = &[
    "tok-3f9a7c1e5b2d8a6f4c0e9b7d5a3f1c8e",
    "ui2lp2axTNmsyakw9tvNnw",
    "kp-default-7d1e0c2b9a",
    "4a6c",
];

#[test]
fn a_credential_in_a_header_is_neither_copied_nor_printed() {
    let secret = "aGVhZGVyLXVzZXI6aGVhZGVyLXNlY3JldC05ZjJl";
    for format in ["human", "json", "github"] {
        let (code, out, err) = run(apmgate()
            .arg("import")
            .arg(corpus_path("credentials-in-headers"))
            .args(["--format", format]));
        assert_eq!(code, 1);
        assert!(!out.contains(secret) && !err.contains(secret), "{format}");
        assert!(out.contains("\"X-Team\" = \"observability\""), "{out}");
    }
}

#[test]
fn literal_secrets_move_to_the_environment_and_are_never_printed() {
    let path = corpus_path("literal-secret");
    for format in ["human", "json", "github"] {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        for args in [vec![], vec!["-o".to_string(), policy.display().to_string()]] {
            let (code, out, err) = run(apmgate()
                .arg("import")
                .arg(&path)
                .args(["--format", format])
                .args(&args));
            assert_eq!(
                code, 1,
                "a secret mixing text and a reference is not carried"
            );
            for secret in SECRETS {
                assert!(!out.contains(secret), "{format}: stdout holds a secret");
                assert!(!err.contains(secret), "{format}: stderr holds a secret");
            }
        }
        let written = std::fs::read_to_string(&policy).unwrap();
        for secret in SECRETS {
            assert!(!written.contains(secret), "the policy holds a secret");
        }
        assert!(written.contains("secret = \"env:APMGATE_SECRET_TOKEN\""));
        assert!(written.contains("api_key = \"env:APMGATE_ES_API_KEY\""));
        assert!(written.contains("key_passphrase = \"env:ES_KEY_PASS\""));
        assert!(written.contains("#   APMGATE_SECRET_TOKEN: "), "{written}");
    }
    let (_, _, human) = run(apmgate().arg("import").arg(&path));
    assert!(
        human.contains("set APMGATE_SECRET_TOKEN: ") && human.contains("I105"),
        "{human}"
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips: the imported policy, run, answers as the YAML implied.

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Imports `yaml` into a policy in `dir` and runs it with `env`.
    fn start(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> (Running, String) {
        let yml = dir.join("apm-server.yml");
        std::fs::write(&yml, yaml).unwrap();
        let policy = dir.join("policy.toml");
        let (code, out, _) = run(apmgate().arg("import").arg(&yml).arg("-o").arg(&policy));
        assert_eq!(code, 0, "{out}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_apmgate"));
        cmd.args(["run", "--log-format", "json"])
            .arg(&policy)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running = Running { child, lines: rx };
        let bound = running.wait_for("\"bound\"");
        let record: serde_json::Value = serde_json::from_str(&bound).unwrap();
        let addr = record["address"].as_str().unwrap().to_string();
        (running, format!("http://{addr}"))
    }

    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn payload(agent: &str, service: &str) -> String {
    format!(
        "{{\"metadata\":{{\"service\":{{\"name\":\"{service}\",\"agent\":{{\"name\":\"{agent}\",\"version\":\"1.0.0\"}}}}}}}}\n\
         {{\"transaction\":{{\"id\":\"0000000000000001\",\"trace_id\":\"00000000000000000000000000000001\",\"type\":\"request\",\"duration\":1.5,\"span_count\":{{\"started\":0}}}}}}\n"
    )
}

async fn post(url: &str, headers: &[(&str, &str)], body: String) -> u16 {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/x-ndjson")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

const TOKEN: &str = "import-round-trip-token-0123456789abcdef";

#[tokio::test]
async fn a_secret_token_from_the_keystore_is_required_on_intake() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "apm-server:\n  host: \"127.0.0.1:0\"\n  auth.secret_token: \"${IMPORT_RT_TOKEN}\"\n  max_event_size: 1024\n  response_headers:\n    X-Imported-From: apm-server.yml\n  agent_config:\n    - service.name: checkout\n      config:\n        transaction_sample_rate: 0.2\noutput.file:\n  path: data\n  filename: events.ndjson\n";
    let (_gw, base) = Running::start(dir.path(), yaml, &[("IMPORT_RT_TOKEN", TOKEN)]);
    let intake = format!("{base}/intake/v2/events");
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(post(&intake, &[], payload("python", "svc")).await, 401);
    assert_eq!(
        post(
            &intake,
            &[("Authorization", "Bearer wrong")],
            payload("python", "svc")
        )
        .await,
        401
    );
    assert_eq!(
        post(
            &intake,
            &[("Authorization", &bearer)],
            payload("python", "svc")
        )
        .await,
        202
    );
    // RUM is off in the YAML: refused whatever the credentials.
    let rum = format!("{base}/intake/v2/rum/events");
    assert_eq!(
        post(
            &rum,
            &[("Authorization", &bearer)],
            payload("rum-js", "web")
        )
        .await,
        403
    );
    let root = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(root.status().as_u16(), 200);
    assert_eq!(
        root.headers()
            .get("x-imported-from")
            .map(|v| v.to_str().unwrap()),
        Some("apm-server.yml"),
        "apm-server.response_headers"
    );
    // apm-server.agent_config: served as central configuration, to token holders.
    let config = reqwest::Client::new()
        .get(format!("{base}/config/v1/agents?service.name=checkout"))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(config.status().as_u16(), 200);
    let body: serde_json::Value = config.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "transaction_sample_rate": "0.2" })
    );
    // apm-server.max_event_size: a longer line is refused, as APM Server refuses it.
    let long = payload("python", "svc").replace("request", &"r".repeat(2048));
    assert_eq!(
        post(&intake, &[("Authorization", &bearer)], long).await,
        400
    );
}

#[tokio::test]
async fn apm_server_ssl_becomes_a_tls_listener() {
    let dir = tempfile::tempdir().unwrap();
    let certs = apmgate::devcerts::write(
        &dir.path().join("certs"),
        &apmgate::devcerts::Validity::default(),
    )
    .unwrap();
    let yaml = format!(
        "apm-server.host: \"127.0.0.1:0\"\napm-server.ssl:\n  certificate: {}\n  key: {}\napm-server.auth.secret_token: \"${{IMPORT_RT_TOKEN}}\"\noutput.file.path: data\n",
        certs.server_cert.display(),
        certs.server_key.display()
    );
    let (_gw, base) = Running::start(dir.path(), &yaml, &[("IMPORT_RT_TOKEN", TOKEN)]);
    let port = base.rsplit(':').next().unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.ca_cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let intake = format!("https://localhost:{port}/intake/v2/events");
    let status = |r: reqwest::Response| r.status().as_u16();
    let with_token = client
        .post(&intake)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/x-ndjson")
        .body(payload("python", "svc"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(with_token), 202);
    let without = client
        .post(&intake)
        .header("Content-Type", "application/x-ndjson")
        .body(payload("python", "svc"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(without), 401);
    assert!(
        reqwest::Client::new()
            .post(format!("{base}/intake/v2/events"))
            .body(payload("python", "svc"))
            .send()
            .await
            .map_or(true, |r| r.status().as_u16() >= 400),
        "no plaintext answer on the TLS listener"
    );
}

#[tokio::test]
async fn anonymous_rum_is_allowed_from_listed_origins_only() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "apm-server:\n  host: \"127.0.0.1:0\"\n  auth.secret_token: \"${IMPORT_RT_TOKEN}\"\n  rum:\n    enabled: true\n    allow_origins: [\"https://*.shop.example.com\"]\noutput.file:\n  path: data\n";
    let (_gw, base) = Running::start(dir.path(), yaml, &[("IMPORT_RT_TOKEN", TOKEN)]);
    let rum = format!("{base}/intake/v2/rum/events");
    let origin = ("Origin", "https://www.shop.example.com");
    assert_eq!(post(&rum, &[origin], payload("rum-js", "shop")).await, 202);
    assert_eq!(
        post(
            &rum,
            &[("Origin", "https://evil.example.org")],
            payload("rum-js", "shop")
        )
        .await,
        403
    );
    // Anonymous callers are RUM agents only (APM Server's allow_agent default).
    let intake = format!("{base}/intake/v2/events");
    assert_eq!(post(&intake, &[], payload("python", "svc")).await, 403);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        post(
            &intake,
            &[("Authorization", &bearer)],
            payload("python", "svc")
        )
        .await,
        202
    );
}

/// Every prefix of every corpus file (a file cut anywhere, as an editor may leave it) imports
/// without a panic, and a policy written without I109 is one `validate` accepts.
#[test]
fn any_cut_of_the_corpus_imports_into_a_valid_policy_or_says_why_not() {
    use apmgate::policy::{CompileOptions, SourceFile, compile};
    for (stem, _) in CORPUS {
        let text = std::fs::read_to_string(corpus_path(stem)).unwrap();
        let cuts: Vec<usize> = (0..=text.len())
            .step_by(7)
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        for cut in cuts {
            let part = &text[..cut];
            let import = apmgate::import::import("cut.yml", part);
            let Some(policy) = &import.policy else {
                assert!(
                    import.diagnostics.iter().any(|d| d.code.as_str() == "I100"),
                    "{stem} cut at {cut}: no policy without I100"
                );
                continue;
            };
            if import.diagnostics.iter().any(|d| d.code.as_str() == "I109") {
                continue;
            }
            let c = compile(
                &SourceFile::new("p.toml", policy.as_str()),
                CompileOptions { environment: false },
            );
            assert_eq!(c.errors(), 0, "{stem} cut at {cut}:\n{policy}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_enabled_in_the_yaml_are_verified_by_elasticsearch() {
    let es = es_standin::EsStandin::start().await;
    let writer = es.add_api_key("w1", "secret-w", &["event:write", "config_agent:read"]);
    let reader = es.add_api_key("r1", "secret-r", &["config_agent:read"]);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "apm-server:\n  host: \"127.0.0.1:0\"\n  auth.api_key:\n    enabled: true\n    limit: 10\noutput.elasticsearch:\n  hosts: [\"{}\"]\n  flush_interval: 20ms\n",
        es.url()
    );
    let (_gw, base) = Running::start(dir.path(), &yaml, &[]);
    let intake = format!("{base}/intake/v2/events");
    let auth = |token: &str| format!("ApiKey {token}");
    assert_eq!(
        post(
            &intake,
            &[("Authorization", &auth(&writer))],
            payload("python", "svc")
        )
        .await,
        202
    );
    assert_eq!(
        post(
            &intake,
            &[("Authorization", &auth(&reader))],
            payload("python", "svc")
        )
        .await,
        403,
        "a key without event:write"
    );
    let unknown = auth("dW5rbm93bjpzZWNyZXQ="); // unknown:secret
    assert_eq!(
        post(
            &intake,
            &[("Authorization", &unknown)],
            payload("python", "svc")
        )
        .await,
        401
    );
    assert_eq!(post(&intake, &[], payload("python", "svc")).await, 401);
}

/// The policy an import writes (panics when the YAML cannot be read).
fn imported(yaml: &str) -> String {
    apmgate::import::import("apm-server.yml", yaml)
        .policy
        .expect("readable YAML")
}

#[test]
fn nested_and_dotted_keys_import_alike() {
    let pairs = [
        (
            "apm-server:\n  rum:\n    enabled: true\n    allow_origins: [\"https://a.example\"]\n",
            "apm-server.rum.enabled: true\napm-server.rum.allow_origins: [\"https://a.example\"]\n",
        ),
        (
            "apm-server:\n  auth:\n    secret_token: ${T}\n  ssl:\n    certificate: /c.crt\n    key: /c.key\n",
            "apm-server.auth.secret_token: ${T}\napm-server.ssl.certificate: /c.crt\napm-server:\n  ssl.key: /c.key\n",
        ),
        (
            "output:\n  elasticsearch:\n    hosts: [es:9200]\n    backoff:\n      init: 2s\n",
            "output.elasticsearch.hosts: [es:9200]\noutput.elasticsearch.backoff.init: 2s\n",
        ),
    ];
    for (nested, dotted) in pairs {
        let a = imported(nested);
        let b = imported(dotted);
        // The header comments name the keys in the order they were read: compare the settings.
        let strip = |p: &str| {
            p.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&a), strip(&b), "{nested}\n---\n{dotted}");
    }
}

/// Anonymous access as APM Server decides it: switched on when RUM is on with authentication
/// and `enabled` is not written; what is written wins; without authentication it has no
/// effect (everyone may send).
#[test]
fn anonymous_access_follows_apm_servers_rules() {
    let token = "apm-server.auth.secret_token: ${T}\n";
    let cases: [(&str, Option<bool>); 6] = [
        ("apm-server.rum.enabled: true\n", Some(true)),
        ("apm-server.rum.enabled: false\n", None),
        (
            "apm-server.rum.enabled: true\napm-server.auth.anonymous.enabled: false\n",
            Some(false),
        ),
        ("apm-server.auth.anonymous.enabled: true\n", Some(true)),
        (
            "apm-server.auth.anonymous.allow_service: [web]\n",
            Some(false),
        ),
        (
            "apm-server.rum.enabled: true\napm-server.auth.anonymous.rate_limit.event_limit: 10\n",
            Some(true),
        ),
    ];
    for (yaml, expected) in cases {
        let policy: toml::Table = imported(&format!("{token}{yaml}")).parse().unwrap();
        let enabled = policy
            .get("auth")
            .and_then(|a| a.get("anonymous"))
            .map(|a| a["enabled"].as_bool().unwrap());
        assert_eq!(enabled, expected, "{yaml}");
    }
    // Without authentication, no anonymous section: it would restrict every caller.
    let policy: toml::Table =
        imported("apm-server.rum.enabled: true\napm-server.auth.anonymous.enabled: true\n")
            .parse()
            .unwrap();
    assert!(policy.get("auth").is_none(), "{policy:?}");
}

#[test]
fn hosts_become_bind_addresses_as_apm_server_reads_them() {
    for (host, bind) in [
        ("localhost:8200", "localhost:8200"),
        ("localhost", "localhost:8200"),
        ("0.0.0.0:8201", "0.0.0.0:8201"),
        (":8200", "0.0.0.0:8200"),
        ("[::1]:8200", "[::1]:8200"),
        ("[::1]", "[::1]:8200"),
        ("::", "[::]:8200"),
        ("unix:/run/apm.sock", "unix:/run/apm.sock"),
    ] {
        let policy = imported(&format!("apm-server.host: \"{host}\"\n"));
        assert!(
            policy.contains(&format!("bind = \"{bind}\"\n")),
            "{host}: {policy}"
        );
    }
    // Without a host, APM Server's default.
    assert!(imported("output.elasticsearch.hosts: [es]\n").contains("bind = \"127.0.0.1:8200\""));
}
