//! `apmgate run` as an operator runs it: refuses an invalid policy, serves, reloads on SIGHUP
//! (keeping the last good policy when the new one is invalid), logs ECS JSON without secrets,
//! and stops cleanly on SIGTERM with everything accepted written.

mod support;

use std::process::Command;

const TOKEN: &str = "run-command-token-0123456789abcdefghij";

fn policy(extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\n\n[auth.secret_token.agents]\nsecret = \"env:RUN_TEST_TOKEN\"\n{extra}"
    )
}

/// The gateway as a child process on `dir/policy.toml`, with the token in its environment.
struct Running;

impl Running {
    fn start(dir: &std::path::Path) -> support::Process {
        Self::start_with(dir, &[])
    }

    fn start_with(dir: &std::path::Path, args: &[&str]) -> support::Process {
        support::Process::run(&dir.join("policy.toml"), args, &[("RUN_TEST_TOKEN", TOKEN)])
    }
}

fn post(url: &str, body: &'static [u8]) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(url)
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

const EVENTS: &[u8] = include_bytes!("../examples/events.ndjson");

#[test]
fn an_invalid_policy_is_refused_with_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        "[[listener]]\nname = \"x\"\nbnd = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_apmgate"))
        .arg("run")
        .arg(dir.path().join("policy.toml"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("E101")
            && err.contains("did you mean `bind`?")
            && err.contains("invalid policy, not starting"),
        "{err}"
    );
}

#[test]
fn serves_reloads_on_sighup_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy("")).unwrap();
    let mut run = Running::start(dir.path());
    let bound = run.wait_for("\"bound\"");
    let record: serde_json::Value = serde_json::from_str(&bound).expect("ECS JSON log lines");
    assert!(
        record["@timestamp"].is_string()
            && record["log.level"] == "info"
            && record["ecs.version"].is_string(),
        "{record}"
    );
    let addr = record["address"].as_str().unwrap().to_string();
    let url = format!("http://{addr}/intake/v2/events?verbose");

    let (status, body) = post(&url, EVENTS);
    assert_eq!(status, 202, "{body}");

    // Reload with a rule that refuses intake: new requests follow it.
    std::fs::write(&path, policy("[access]\ndefault = \"allow\"\n[[access.rule]]\nname = \"closed\"\nwhen = 'route == intake'\neffect = \"deny\"\n")).unwrap();
    run.signal("HUP");
    run.wait_for("policy reloaded");
    let (status, _) = post(&url, EVENTS);
    assert_eq!(status, 403);

    // An invalid policy is refused; the running one stays.
    std::fs::write(&path, "[[listener]]\nname = 3\n").unwrap();
    run.signal("HUP");
    run.wait_for("reload refused");
    let (status, _) = post(&url, EVENTS);
    assert_eq!(status, 403, "the last good policy is still in force");

    run.signal("TERM");
    run.wait_for("stopped");
    let status = run.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let written = std::fs::read_to_string(dir.path().join("data/apmgate-events.ndjson")).unwrap();
    let actions: Vec<&str> = written.lines().step_by(2).collect();
    let aggregated = |a: &&str| {
        [
            "transaction",
            "service_transaction",
            "service_summary",
            "service_destination",
        ]
        .iter()
        .any(|set| a.contains(&format!("\"_index\":\"metrics-apm.{set}.")))
    };
    assert_eq!(
        actions.iter().filter(|a| !aggregated(a)).count(),
        4,
        "the 4 events of the first request"
    );
    // SIGTERM writes the partial intervals of the aggregated metrics before the output drains.
    for interval in ["1m", "10m", "60m"] {
        assert!(
            actions
                .iter()
                .any(|a| a.contains(&format!("metrics-apm.service_summary.{interval}-"))),
            "no {interval} service summary in {written}"
        );
    }
    for line in &run.log {
        assert!(
            !line.contains(TOKEN),
            "a log line holds the secret token: {line}"
        );
    }
}

#[test]
fn the_discard_output_accepts_events_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        format!(
            "[gateway]\nmax_concurrent_decoders = 7\n{}\n[output.discard]\n",
            policy("")
        ),
    )
    .unwrap();
    let mut run = Running::start(dir.path());
    let decoders: serde_json::Value =
        serde_json::from_str(&run.wait_for("intake requests decoded at once")).unwrap();
    assert_eq!(decoders["max_concurrent_decoders"], 7, "{decoders}");
    let bound: serde_json::Value = serde_json::from_str(&run.wait_for("\"bound\"")).unwrap();
    let url = format!(
        "http://{}/intake/v2/events?verbose",
        bound["address"].as_str().unwrap()
    );
    let (status, body) = post(&url, EVENTS);
    assert_eq!(status, 202);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"accepted": 4})
    );
    run.signal("TERM");
    run.wait_for("stopped");
    assert_eq!(run.child.wait().unwrap().code(), Some(0));
    assert!(
        !dir.path().join("data").exists(),
        "the discard output writes no file"
    );
}

/// Issue 12, item 1: a rule nested deep enough to overflow a tokio worker's stack once aborted
/// the process on SIGHUP and lost what it had answered 202. Now the reload is refused with E215,
/// the gateway keeps serving with the policy it had, and everything accepted is written.
#[test]
fn issue_12_a_deeply_nested_rule_is_refused_on_reload_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    // Counting what the output wrote: without aggregated metrics.
    let policy = |extra: &str| policy(&format!("[aggregation]\nenabled = false\n{extra}"));
    std::fs::write(&path, policy("")).unwrap();
    let mut run = Running::start(dir.path());
    let bound: serde_json::Value = serde_json::from_str(&run.wait_for("\"bound\"")).unwrap();
    let url = format!(
        "http://{}/intake/v2/events?verbose",
        bound["address"].as_str().unwrap()
    );
    assert_eq!(post(&url, EVENTS).0, 202);

    for when in [
        format!("{}true{}", "(".repeat(600), ")".repeat(600)),
        format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}true", "not ".repeat(20_000)),
    ] {
        std::fs::write(
            &path,
            policy(&format!(
                "[[access.rule]]\nname = \"deep\"\nwhen = '{when}'\neffect = \"deny\"\n"
            )),
        )
        .unwrap();
        run.signal("HUP");
        let refused = run.wait_for("reload refused");
        assert!(refused.contains("\"errors\":1"), "{refused}");
        assert_eq!(
            post(&url, EVENTS).0,
            202,
            "still serving with the old policy"
        );
    }
    // A rule within the bound applies as usual.
    std::fs::write(
        &path,
        policy(&format!(
            "[[access.rule]]\nname = \"nots\"\nwhen = '{}route == intake'\neffect = \"deny\"\n",
            "not ".repeat(30)
        )),
    )
    .unwrap();
    run.signal("HUP");
    run.wait_for("policy reloaded");
    assert_eq!(
        post(&url, EVENTS).0,
        403,
        "not^30 (route == intake) is route == intake"
    );

    run.signal("TERM");
    run.wait_for("stopped");
    assert_eq!(run.child.wait().unwrap().code(), Some(0));
    let written = std::fs::read_to_string(dir.path().join("data/apmgate-events.ndjson")).unwrap();
    assert_eq!(
        written.lines().count(),
        4 * 8,
        "four accepted requests of 4 events"
    );
}

#[test]
fn watch_reloads_on_an_edit_and_on_a_symlink_swap() {
    let dir = tempfile::tempdir().unwrap();
    let closed = policy(
        "[access]\ndefault = \"allow\"\n[[access.rule]]\nname = \"closed\"\nwhen = 'route == intake'\neffect = \"deny\"\n",
    );
    std::fs::create_dir(dir.path().join("v1")).unwrap();
    std::fs::create_dir(dir.path().join("v2")).unwrap();
    std::fs::write(dir.path().join("v1/policy.toml"), policy("")).unwrap();
    std::fs::write(dir.path().join("v2/policy.toml"), closed.clone()).unwrap();
    // As Kubernetes mounts a ConfigMap: the policy is a symlink into a versioned directory.
    std::os::unix::fs::symlink("v1/policy.toml", dir.path().join("policy.toml")).unwrap();
    let mut run = Running::start_with(dir.path(), &["--watch"]);
    let bound: serde_json::Value = serde_json::from_str(&run.wait_for("\"bound\"")).unwrap();
    let url = format!(
        "http://{}/intake/v2/events",
        bound["address"].as_str().unwrap()
    );
    assert_eq!(post(&url, EVENTS).0, 202);

    // The symlink swapped to the next version, atomically.
    std::os::unix::fs::symlink("v2/policy.toml", dir.path().join("policy.toml.next")).unwrap();
    std::fs::rename(
        dir.path().join("policy.toml.next"),
        dir.path().join("policy.toml"),
    )
    .unwrap();
    let line = run.wait_for("policy reloaded");
    assert!(line.contains("a watched file changed"), "{line}");
    assert_eq!(post(&url, EVENTS).0, 403);

    // The file edited in place: open again.
    std::fs::write(dir.path().join("v2/policy.toml"), policy("")).unwrap();
    run.wait_for("policy reloaded");
    assert_eq!(post(&url, EVENTS).0, 202);

    // A broken edit is refused once, and the running policy stays.
    std::fs::write(
        dir.path().join("v2/policy.toml"),
        "[[listener]]\nname = 3\n",
    )
    .unwrap();
    run.wait_for("reload refused");
    assert_eq!(post(&url, EVENTS).0, 202);

    run.signal("TERM");
    run.wait_for("stopped");
    assert_eq!(run.child.wait().unwrap().code(), Some(0));
}

/// What the event lines of a file output's `_bulk` file are, without the aggregated metrics
/// written at shutdown.
fn event_actions(path: &std::path::Path) -> usize {
    let written = std::fs::read_to_string(path).unwrap();
    written
        .lines()
        .step_by(2)
        .filter(|a| {
            ![
                "transaction",
                "service_transaction",
                "service_summary",
                "service_destination",
            ]
            .iter()
            .any(|set| a.contains(&format!("\"_index\":\"metrics-apm.{set}.")))
        })
        .count()
}

#[test]
fn sigusr1_opens_the_output_file_again_after_log_rotation_moved_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), policy("")).unwrap();
    let mut run = Running::start(dir.path());
    let bound: serde_json::Value = serde_json::from_str(&run.wait_for("\"bound\"")).unwrap();
    let url = format!(
        "http://{}/intake/v2/events",
        bound["address"].as_str().unwrap()
    );
    assert_eq!(post(&url, EVENTS).0, 202);
    let file = dir.path().join("data/apmgate-events.ndjson");
    let moved = dir.path().join("data/apmgate-events.ndjson.1");
    std::fs::rename(&file, &moved).unwrap();

    run.signal("USR1");
    run.wait_for("output files opened again");
    assert_eq!(post(&url, EVENTS).0, 202);
    run.signal("TERM");
    run.wait_for("stopped");
    assert_eq!(run.child.wait().unwrap().code(), Some(0));
    assert_eq!(event_actions(&moved), 4, "the events before the signal");
    assert_eq!(
        event_actions(&file),
        4,
        "the events after it, in a new file at the path"
    );
}
