//! Reload applies the output: the Elasticsearch output moves to new hosts and what it held
//! follows (nothing lost, nothing sent twice), its dead-letter file is opened again (log
//! rotation), the file output moves to a new path while the old file keeps what it accepted,
//! and a change to or from Elasticsearch is reported for the next start.

mod support;

use std::time::Duration;

use es_standin::EsStandin;
use support::{Gateway, events};

const WAIT: Duration = Duration::from_secs(30);

fn es_policy(es: &EsStandin) -> String {
    format!(
        r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1"]

[output.elasticsearch]
hosts = ["{}"]
flush_interval = "20ms"
backoff_init = "10ms"
backoff_max = "100ms"
dead_letter_path = "dead.ndjson"
"#,
        es.url()
    )
}

const FILE_POLICY: &str = r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1"]
"#;

async fn send(gw: &Gateway, ids: std::ops::Range<usize>) {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(gw.url("plain", false, "/intake/v2/events"))
        .header("Content-Type", "application/x-ndjson")
        .body(events(ids))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

fn ids(docs: &[(String, serde_json::Value)]) -> Vec<String> {
    let mut ids: Vec<String> = docs
        .iter()
        .map(|(_, d)| d["transaction"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[tokio::test]
async fn a_reload_moves_the_elasticsearch_output_to_new_hosts_and_what_it_held_follows() {
    let old = EsStandin::start().await;
    let new = EsStandin::start().await;
    let mut gw = Gateway::start(&es_policy(&old)).await;
    send(&gw, 0..5).await;
    old.wait_docs(WAIT, |d| d.len() == 5).await;

    // The old cluster goes away: what is accepted now waits in the output's buffer.
    old.stop();
    send(&gw, 5..10).await;

    let r = gw.reload(&es_policy(&new)).await;
    assert!(r.output.reconfigured, "{:?}", r.output);
    assert!(!r.output.replaced && r.output.at_next_start.is_empty());
    // What the output held goes to the new hosts, and so does what comes next.
    new.wait_docs(WAIT, |d| d.len() == 5).await;
    send(&gw, 10..15).await;
    new.wait_docs(WAIT, |d| d.len() == 10).await;
    gw.stop().await;

    assert_eq!(ids(&old.docs()), ids(&events_docs(0..5)));
    assert_eq!(ids(&new.docs()), ids(&events_docs(5..15)), "each once");
}

/// The transaction ids `events(range)` sends, as documents carrying them.
fn events_docs(range: std::ops::Range<usize>) -> Vec<(String, serde_json::Value)> {
    range
        .map(|n| {
            let id = format!("{n:016x}");
            (
                String::new(),
                serde_json::json!({"transaction": {"id": id}}),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_reload_opens_the_dead_letter_file_again_after_log_rotation_moved_it() {
    let es = EsStandin::start().await;
    let policy = es_policy(&es);
    let mut gw = Gateway::start(&policy).await;
    let dead_lettered = |gw: &Gateway| {
        support::metric(
            &gw.shared.metrics.render(),
            "apmgate_output_documents_dead_lettered_total",
        )
        .unwrap_or(0)
    };

    es.faults(|f| f.item_statuses.push_back(400));
    send(&gw, 0..1).await;
    support::wait_until(WAIT, "the first failure is dead-lettered", || {
        dead_lettered(&gw) == 1
    })
    .await;
    // Log rotation moves the file away.
    std::fs::rename(gw.path("dead.ndjson"), gw.path("dead.ndjson.1")).unwrap();

    gw.reload(&policy).await;
    es.faults(|f| f.item_statuses.push_back(400));
    send(&gw, 1..2).await;
    support::wait_until(WAIT, "the second failure is dead-lettered", || {
        dead_lettered(&gw) == 2
    })
    .await;
    assert_eq!(lines(&gw.path("dead.ndjson.1")), 1);
    assert_eq!(
        lines(&gw.path("dead.ndjson")),
        1,
        "the failure after the reload is in a new file at the path"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_reload_moves_the_file_output_and_the_old_file_keeps_what_it_accepted() {
    let mut gw = Gateway::start(FILE_POLICY).await;
    send(&gw, 0..3).await;
    let r = gw
        .reload(&format!(
            "{FILE_POLICY}\n[output.file]\npath = \"moved/events.ndjson\"\n"
        ))
        .await;
    assert!(r.output.replaced, "{:?}", r.output);
    send(&gw, 3..5).await;
    let dir = gw.stop().await;
    assert_eq!(
        ids(&support::output_documents(dir.path())),
        ids(&events_docs(0..3))
    );
    assert_eq!(
        ids(&support::bulk_documents(
            &dir.path().join("moved/events.ndjson")
        )),
        ids(&events_docs(3..5))
    );
}

#[tokio::test]
async fn a_change_to_or_from_elasticsearch_applies_at_the_next_start() {
    let es = EsStandin::start().await;
    let mut gw = Gateway::start(FILE_POLICY).await;
    let r = gw.reload(&es_policy(&es)).await;
    assert_eq!(r.output.at_next_start, ["output"]);
    assert!(!r.output.replaced && !r.output.reconfigured);
    // The file output goes on.
    send(&gw, 0..2).await;
    let dir = gw.stop().await;
    assert_eq!(support::output_documents(dir.path()).len(), 2);
    assert!(es.docs().is_empty());
}
