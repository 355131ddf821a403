//! `apmgate apikey` (the real binary) against the Elasticsearch stand-in's security API,
//! through the policy's Elasticsearch output: a key created with APM privileges verifies, is
//! accepted by a running gateway, and once invalidated is refused by it when its verification
//! cache entry expires; the errors an operator meets (a user without `manage_own_api_key` or
//! without the APM privileges, an unknown id, an unreachable cluster) say so with exit codes;
//! the output's password never appears.

mod support;

use std::time::Duration;

use es_standin::EsStandin;
use serde_json::Value;
use support::Gateway;

const PASSWORD: &str = "output-password-never-printed";

/// A file holding the output's password (a `file:` secret), for as long as the test runs.
fn password_file() -> &'static std::path::Path {
    static FILE: std::sync::OnceLock<tempfile::NamedTempFile> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), PASSWORD).unwrap();
        f
    })
    .path()
}

/// A policy whose output logs in as `user` (password from a file).
fn policy(hosts: &str, user: &str, rest: &str) -> String {
    let password = password_file().display();
    format!(
        r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1"]

{rest}

[output.elasticsearch]
hosts = ["{hosts}"]
username = "{user}"
password = "file:{password}"
flush_interval = "20ms"
"#
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

async fn apikey(policy: &std::path::Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_apmgate"))
        .arg("apikey")
        .args(args)
        .arg("--policy")
        .arg(policy)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("apmgate runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "the output's password was printed"
    );
    run
}

fn write_policy(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn intake(gw: &Gateway, credentials: &str) -> u16 {
    let body = concat!(
        r#"{"metadata":{"service":{"name":"checkout","agent":{"name":"python","version":"6.26.2"}}}}"#,
        "\n"
    );
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(gw.url("plain", false, "/intake/v2/events"))
        .header("Content-Type", "application/x-ndjson")
        .header("Authorization", format!("ApiKey {credentials}"))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_key_verifies_serves_a_gateway_and_once_invalidated_is_refused() {
    let es = EsStandin::start().await;
    es.add_user(
        "apm-admin",
        PASSWORD,
        &["manage_own_api_key"],
        &["event:write", "config_agent:read", "sourcemap:write"],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(&dir, &policy(&es.url(), "apm-admin", ""));

    // Human output: the credentials once, the expiry.
    let human = apikey(
        &file,
        &[
            "create",
            "--name",
            "shop-agents",
            "--privileges",
            "ingest",
            "--expiration",
            "30d",
        ],
    )
    .await;
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("Name ........... shop-agents"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("(in 30 days)"), "{}", human.stdout);
    assert!(
        human.stdout.contains("Credentials .... "),
        "{}",
        human.stdout
    );

    let created = apikey(
        &file,
        &[
            "create",
            "--name",
            "shop-agents",
            "--privileges",
            "ingest,agent-config",
            "--json",
        ],
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let created = created.json();
    let id = created["id"].as_str().unwrap().to_string();
    let credentials = created["credentials"].as_str().unwrap().to_string();

    let verified = apikey(
        &file,
        &[
            "verify",
            "--credentials",
            &credentials,
            "--privileges",
            "ingest,agent-config",
            "--json",
        ],
    )
    .await;
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert_eq!(verified.json()["event:write"], true);
    // It was not given sourcemap:write: verify says so and exits 1.
    let partial = apikey(&file, &["verify", "--credentials", &credentials]).await;
    assert_eq!(partial.code, 1);
    assert!(
        partial
            .stdout
            .contains("Authorized for privilege \"sourcemap:write\"...: No"),
        "{}",
        partial.stdout
    );
    assert!(
        partial
            .stdout
            .contains("Authorized for privilege \"event:write\"...: Yes")
    );

    let info = apikey(&file, &["info", "--id", &id, "--json"]).await;
    assert_eq!(info.code, 0, "{}", info.stderr);
    assert_eq!(info.json()["api_keys"][0]["name"], "shop-agents");
    let by_name = apikey(&file, &["info", "--name", "shop-agents"]).await;
    assert!(
        by_name.stdout.contains("2 API Keys found"),
        "{}",
        by_name.stdout
    );

    // A running gateway verifying keys with Elasticsearch, results cached for 300 ms.
    let gw = Gateway::start(&policy(
        &es.url(),
        "apm-admin",
        "[auth.elasticsearch_api_keys]\ncache_ttl = \"300ms\"",
    ))
    .await;
    assert_eq!(intake(&gw, &credentials).await, 202);

    let invalidated = apikey(&file, &["invalidate", "--id", &id]).await;
    assert_eq!(invalidated.code, 0, "{}", invalidated.stderr);
    assert!(
        invalidated
            .stdout
            .contains(&format!("Invalidated keys ... {id}"))
    );
    let again = apikey(&file, &["invalidate", "--id", &id, "--json"]).await;
    assert_eq!(
        again.json()["previously_invalidated_api_keys"][0],
        id.as_str()
    );
    // Refused once the cached verification expires.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = intake(&gw, &credentials).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 202);
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = apikey(&file, &["verify", "--credentials", &credentials]).await;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("not valid"), "{}", refused.stderr);
    let valid = apikey(&file, &["info", "--name", "shop-agents", "--valid-only"]).await;
    assert!(
        valid.stdout.contains("1 API Keys found"),
        "{}",
        valid.stdout
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_is_missing_with_exit_codes() {
    let es = EsStandin::start().await;
    es.add_user("reader", PASSWORD, &[], &["event:write"]);
    es.add_user("no-apm", PASSWORD, &["manage_own_api_key"], &[]);
    let dir = tempfile::tempdir().unwrap();

    let reader = write_policy(&dir, &policy(&es.url(), "reader", ""));
    let r = apikey(&reader, &["create", "--privileges", "ingest"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("manage_own_api_key"), "{}", r.stderr);

    let no_apm = write_policy(&dir, &policy(&es.url(), "no-apm", ""));
    let r = apikey(&no_apm, &["create"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no-apm is missing the requested privilege(s) event:write, config_agent:read, sourcemap:write"), "{}", r.stderr);
    assert!(es.api_keys().is_empty(), "nothing created");

    let r = apikey(&no_apm, &["info", "--id", "no-such-key"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no API key with id `no-such-key`"),
        "{}",
        r.stderr
    );
    let r = apikey(&no_apm, &["invalidate", "--id", "no-such-key", "--json"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["error"], "no API key with id `no-such-key`");
    let r = apikey(&no_apm, &["create", "--privileges", "everything"]).await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown privilege `everything`"),
        "{}",
        r.stderr
    );
    let r = apikey(&no_apm, &["create", "--expiration", "soon"]).await;
    assert_eq!(r.code, 2);

    // No cluster there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = write_policy(&dir, &policy(&format!("http://{closed}"), "reader", ""));
    let r = apikey(&down, &["info", "--name", "x"]).await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("cannot reach Elasticsearch"),
        "{}",
        r.stderr
    );

    // A policy without the Elasticsearch output.
    let file_output = write_policy(&dir, "[[listener]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n");
    let r = apikey(&file_output, &["info", "--name", "x"]).await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("has no [output.elasticsearch]"),
        "{}",
        r.stderr
    );
}
