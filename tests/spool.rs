//! The durable spool through real sockets and a real process: a gateway killed with SIGKILL
//! (a child process) while Elasticsearch is down loses nothing it answered 202, a torn final
//! record included, and a restart on the same spool indexes all of it; killed while indexing,
//! it indexes everything again at most once more than the bulk requests in flight allowed; a
//! spool at `max_bytes` answers 503 with `Retry-After` and recovers by itself.

mod support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use es_standin::{EsStandin, StandinOptions};
use serde_json::Value;
use support::events;

const WAIT: Duration = Duration::from_secs(60);

/// An address nothing listens on (yet).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn policy(es: SocketAddr, spool: &str) -> String {
    format!(
        r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1"]

[spool]
path = "spool"
{spool}

[output.elasticsearch]
hosts = ["http://{es}"]
flush_interval = "20ms"
flush_bytes = "16KiB"
backoff_init = "10ms"
backoff_max = "200ms"
queue_timeout = "50ms"

[aggregation]
enabled = false
"#
    )
}

/// `apmgate run` on the policy of `dir` as a child process, with the intake URL it serves.
struct Gateway(support::Process);

impl Gateway {
    fn start(dir: &std::path::Path) -> (Gateway, String) {
        let mut p = support::Process::run(&dir.join("policy.toml"), &[], &[]);
        let bound: Value = serde_json::from_str(&p.find("\"bound\"")).unwrap();
        let url = format!(
            "http://{}/intake/v2/events",
            bound["address"].as_str().unwrap()
        );
        (Gateway(p), url)
    }

    fn find(&mut self, needle: &str) -> String {
        self.0.find(needle)
    }

    /// SIGKILL.
    fn kill(mut self) {
        self.0.child.kill().unwrap();
        self.0.child.wait().unwrap();
    }

    fn stop(self) {
        self.0.signal("TERM");
        let mut child = self.0.child;
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
}

async fn send(url: &str, body: String) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(url)
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Transaction ids indexed, with how often.
fn indexed(es: &EsStandin) -> std::collections::HashMap<String, usize> {
    support::transaction_ids(&es.docs())
}

fn last_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files.pop().expect("a spool file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answered_202_is_lost_to_sigkill_or_a_torn_record() {
    let es_addr = free_addr();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), policy(es_addr, "")).unwrap();
    // Elasticsearch is down: everything accepted waits in the spool.
    let (gw, url) = Gateway::start(dir.path());
    for r in 0..40 {
        let resp = send(&url, events(r * 10..r * 10 + 10)).await;
        assert_eq!(resp.status(), 202);
    }
    gw.kill();
    // A write torn by a crash: half a record at the end of the last file.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(last_segment(dir.path()))
        .unwrap();
    f.write_all(&[0x40, 0, 0, 0, 1, 2, 3, 4, b'{', b'"'])
        .unwrap();
    drop(f);

    let es = EsStandin::start_with(StandinOptions {
        bind: Some(es_addr),
        ..StandinOptions::default()
    })
    .await;
    let (mut gw, url) = Gateway::start(dir.path());
    let replay: Value =
        serde_json::from_str(&gw.find("replaying the documents the spool holds")).unwrap();
    assert_eq!(replay["documents"], 400, "{replay}");
    assert_eq!(replay["corrupt"], 1, "{replay}");
    es.wait_docs(WAIT, |d| d.len() >= 400).await;
    let got = indexed(&es);
    assert_eq!(got.len(), 400);
    assert!(
        got.values().all(|n| *n == 1),
        "nothing was in flight: exactly once"
    );
    // The spool goes on taking events after the cut.
    assert_eq!(send(&url, events(400..410)).await.status(), 202);
    es.wait_docs(WAIT, |d| d.len() >= 410).await;
    gw.stop();
    assert_eq!(indexed(&es).len(), 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_indexing_everything_is_indexed_duplicates_within_what_was_in_flight() {
    let es = EsStandin::start().await;
    // Slow answers: bulk requests are in flight when the process dies.
    es.faults(|f| f.latency = Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), policy(es.addr, "")).unwrap();
    let (gw, url) = Gateway::start(dir.path());
    for r in 0..60 {
        assert_eq!(send(&url, events(r * 10..r * 10 + 10)).await.status(), 202);
    }
    es.wait_requests(WAIT, |r| {
        r.iter().filter(|r| r.path.ends_with("/_bulk")).count() >= 3
    })
    .await;
    gw.kill();
    // Everything a bulk request carried before the kill may be indexed twice; nothing else.
    let sent_before: usize = es
        .bulk_requests()
        .iter()
        .map(|r| r.body.iter().filter(|b| **b == b'\n').count() / 2)
        .sum();
    es.faults(|f| f.latency = Duration::ZERO);
    let (gw, _) = Gateway::start(dir.path());
    es.wait_docs(WAIT, |docs| support::transaction_ids(docs).len() == 600)
        .await;
    gw.stop();
    let got = indexed(&es);
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= sent_before,
        "{duplicates} duplicates, {sent_before} documents were sent before the kill"
    );
}

#[tokio::test]
async fn a_full_spool_answers_503_and_recovers_by_itself() {
    let es_addr = free_addr();
    let gw = support::Gateway::start(&policy(es_addr, "max_bytes = \"16KiB\"")).await;
    let url = gw.url("plain", false, "/intake/v2/events");
    let mut accepted = Vec::new();
    let mut refused = None;
    for r in 0..200 {
        let resp = send(&url, events(r * 10..r * 10 + 10)).await;
        match resp.status().as_u16() {
            202 => accepted.push(r),
            503 => {
                assert_eq!(resp.headers()["retry-after"], "1");
                let body: Value = resp.json().await.unwrap();
                assert!(body.to_string().contains("queue is full"), "{body}");
                refused = Some(r);
                break;
            }
            s => panic!("status {s}"),
        }
    }
    assert!(refused.is_some(), "the spool never filled");
    // Elasticsearch comes up: the spool drains and intake is accepted again.
    let es = EsStandin::start_with(StandinOptions {
        bind: Some(es_addr),
        ..StandinOptions::default()
    })
    .await;
    let n = accepted.len() * 10;
    es.wait_docs(WAIT, |d| d.len() >= n).await;
    assert_eq!(send(&url, events(5000..5010)).await.status(), 202);
    es.wait_docs(WAIT, |d| d.len() >= n + 10).await;
    gw.stop().await;
    let got = indexed(&es);
    for r in &accepted {
        for id in r * 10..r * 10 + 10 {
            assert_eq!(got.get(&format!("{id:016x}")), Some(&1), "{id}");
        }
    }
}

#[tokio::test]
async fn the_batches_of_one_request_share_one_fsync_taken_before_the_answer() {
    let es = EsStandin::start().await;
    let gw = support::Gateway::start(&policy(es.addr, "")).await;
    let fsyncs = |gw: &support::Gateway| {
        support::metric(&gw.shared.metrics.render(), "apmgate_spool_fsyncs_total").unwrap_or(0)
    };
    let before = fsyncs(&gw);
    // 100 events: ten batches of ten written to the spool, one fsync for all of them, done
    // when the answer comes.
    let r = send(&gw.url("plain", false, "/intake/v2/events"), events(0..100)).await;
    assert_eq!(r.status(), 202);
    assert_eq!(fsyncs(&gw) - before, 1);
    es.wait_docs(WAIT, |d| d.len() == 100).await;
    gw.stop().await;
}
