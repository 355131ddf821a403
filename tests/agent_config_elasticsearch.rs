//! Central agent configuration read from Elasticsearch (`[agent_config_source]`), through a
//! real gateway and the Elasticsearch stand-in holding `.apm-agent-configuration` as Kibana
//! writes it: APM Server's matching and answers (`{}` with ETag `"-"`, 304, the most specific
//! entry), the `agent_config` metric set of applied configurations (APM Server's approval),
//! a scrolled read of many entries, a cold cache (503, or 403 for refused credentials), a warm
//! cache that outlives a slow or failing cluster, and the policy's own entries beside them.

mod support;

use std::time::Duration;

use es_standin::EsStandin;
use serde_json::{Value, json};
use support::Gateway;

const WAIT: Duration = Duration::from_secs(30);

fn policy(es: &EsStandin, rest: &str) -> String {
    format!(
        r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1"]

[agent_config_source]
elasticsearch = true
cache_expiration = "200ms"

{rest}

[output.elasticsearch]
hosts = ["{}"]
flush_interval = "20ms"
backoff_init = "10ms"
backoff_max = "100ms"
"#,
        es.url()
    )
}

/// An entry as Kibana's APM app stores it.
fn entry(service: Option<&str>, environment: Option<&str>, etag: &str, rate: &str) -> Value {
    let mut svc = json!({});
    if let Some(s) = service {
        svc["name"] = json!(s);
    }
    if let Some(e) = environment {
        svc["environment"] = json!(e);
    }
    json!({
        "service": svc,
        "settings": {"transaction_sample_rate": rate, "capture_body": "all"},
        "etag": etag,
        "agent_name": "",
        "applied_by_agent": false,
        "@timestamp": 1_700_000_000_000u64,
    })
}

struct Answer {
    status: u16,
    etag: Option<String>,
    cache_control: Option<String>,
    body: Value,
}

async fn ask(gw: &Gateway, query: &str, if_none_match: Option<&str>) -> Answer {
    let mut req = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(gw.url("plain", false, &format!("/config/v1/agents?{query}")));
    if let Some(tag) = if_none_match {
        req = req.header("If-None-Match", format!("\"{tag}\""));
    }
    let r = tokio::time::timeout(Duration::from_secs(5), req.send())
        .await
        .expect("answered without waiting for Elasticsearch")
        .unwrap();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().trim_matches('"').to_string())
    };
    let (status, etag, cache_control) =
        (r.status().as_u16(), header("etag"), header("cache-control"));
    let text = r.text().await.unwrap();
    Answer {
        status,
        etag,
        cache_control,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// Asks until the answer's entity tag is `etag` (the cache is read every 200 ms), or panics.
async fn until_etag(gw: &Gateway, query: &str, etag: &str) -> Answer {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a = ask(gw, query, None).await;
        if a.etag.as_deref() == Some(etag) {
            return a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never answered with ETag {etag}; last: {} {:?} {}",
            a.status,
            a.etag,
            a.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn counter(gw: &Gateway, series: &str) -> u64 {
    support::metric(&gw.shared.metrics.render(), series).unwrap_or(0)
}

#[tokio::test]
async fn answers_from_elasticsearch_as_apm_server_and_reports_what_agents_applied() {
    let es = EsStandin::start().await;
    let gw = Gateway::start(&policy(&es, "")).await;
    // No index yet (Kibana creates it with the first entry): nothing matches.
    let a = until_etag(&gw, "service.name=opbeans", "-").await;
    assert_eq!((a.status, &a.body), (200, &json!({})));
    assert_eq!(
        a.cache_control.as_deref(),
        Some("max-age=30, must-revalidate")
    );
    assert_eq!(
        ask(&gw, "service.name=opbeans", Some("-")).await.status,
        304
    );

    // An entry for the service in any environment, then a more specific one.
    es.set_agent_configs(vec![entry(Some("opbeans"), None, "etag-any", "0.5")]);
    let a = until_etag(
        &gw,
        "service.name=opbeans&service.environment=production",
        "etag-any",
    )
    .await;
    assert_eq!(
        a.body,
        json!({"transaction_sample_rate": "0.5", "capture_body": "all"})
    );
    es.set_agent_configs(vec![
        entry(Some("opbeans"), None, "etag-any", "0.5"),
        entry(
            Some("opbeans"),
            Some("production"),
            "etag-production",
            "0.1",
        ),
        entry(None, Some("staging"), "etag-staging", "0.9"),
        entry(None, None, "etag-default", "1.0"),
    ]);
    let q = "service.name=opbeans&service.environment=production";
    assert_eq!(
        until_etag(&gw, q, "etag-production").await.body["transaction_sample_rate"],
        "0.1"
    );
    let other = ask(&gw, "service.name=opbeans&service.environment=dev", None).await;
    assert_eq!(other.etag.as_deref(), Some("etag-any"));
    let staging = ask(
        &gw,
        "service.name=checkout&service.environment=staging",
        None,
    )
    .await;
    assert_eq!(staging.etag.as_deref(), Some("etag-staging"));
    let anywhere = ask(&gw, "service.name=checkout", None).await;
    assert_eq!(anywhere.etag.as_deref(), Some("etag-default"));

    // Agents that present the current tag have applied it: APM Server's `agent_config`
    // metric set, one document per tag (the last report is written at shutdown).
    assert_eq!(ask(&gw, q, Some("etag-production")).await.status, 304);
    assert_eq!(ask(&gw, q, Some("etag-production")).await.status, 304);
    let a = ask(
        &gw,
        "service.name=opbeans&service.environment=dev",
        Some("etag-any"),
    )
    .await;
    assert_eq!(a.status, 304);
    // A stale tag gets the new settings and is not reported.
    assert_eq!(ask(&gw, q, Some("etag-any")).await.status, 200);
    assert!(
        counter(
            &gw,
            "apmgate_agent_config_requests_total{source=\"elasticsearch\"}"
        ) >= 8
    );
    gw.stop().await;
    let applied: Vec<Value> = es
        .docs()
        .into_iter()
        .filter(|(index, _)| index == "metrics-apm.internal-default")
        .map(|(_, d)| d)
        .collect();
    let mut tags: Vec<&str> = applied
        .iter()
        .map(|d| d["labels"]["etag"].as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["etag-any", "etag-production"]);
    // Read back through es-compare against APM Server's approval.
    let dir = tempfile::tempdir().unwrap();
    for (i, b) in es.bulk_requests().iter().enumerate() {
        std::fs::write(dir.path().join(format!("bulk-{i}.ndjson.gz")), &b.raw_body).unwrap();
    }
    support::assert_es_compare(
        "TestAgentConfig",
        dir.path(),
        "agentcfg/TestAgentConfig.approved.json",
        &["--index", "metrics-apm.internal*"],
    );
}

#[tokio::test]
async fn many_entries_are_read_page_by_page_and_the_scroll_is_cleared() {
    let es = EsStandin::start().await;
    let entries: Vec<Value> = (0..250)
        .map(|i| entry(Some(&format!("svc-{i}")), None, &format!("etag-{i}"), "0.5"))
        .collect();
    es.set_agent_configs(entries);
    let gw = Gateway::start(&policy(&es, "")).await;
    until_etag(&gw, "service.name=svc-249", "etag-249").await;
    assert_eq!(
        ask(&gw, "service.name=svc-0", None).await.etag.as_deref(),
        Some("etag-0")
    );
    gw.stop().await;
    // 100 entries a page: three pages and the empty one that ends the scroll, each time.
    let first = es
        .requests()
        .iter()
        .find(|r| r.path.ends_with("/_search"))
        .map(|r| r.query.clone())
        .unwrap();
    assert!(
        first.contains("size=100") && first.contains("scroll=200ms"),
        "{first}"
    );
    assert_eq!(es.open_scrolls(), 0, "every scroll cleared");
}

#[tokio::test]
async fn a_cold_cache_answers_503_and_a_warm_one_outlives_a_failing_cluster() {
    let es = EsStandin::start().await;
    es.fail_agent_config_searches(&[503; 3]);
    let gw = Gateway::start(&policy(&es, "")).await;
    let a = ask(&gw, "service.name=opbeans", None).await;
    assert_eq!(a.status, 503);
    assert_eq!(
        a.body,
        json!({"error": "Agent configuration infrastructure is not ready. Please retry later."})
    );
    assert_eq!(
        a.cache_control.as_deref(),
        Some("max-age=300, must-revalidate")
    );
    es.set_agent_configs(vec![entry(Some("opbeans"), None, "etag-1", "0.5")]);
    until_etag(&gw, "service.name=opbeans", "etag-1").await;

    // Failing reads, then no cluster at all: the last entries are still served.
    let failures = counter(
        &gw,
        "apmgate_agent_config_refreshes_total{result=\"failure\"}",
    );
    es.fail_agent_config_searches(&[500; 2]);
    es.set_agent_configs(vec![entry(Some("opbeans"), None, "etag-2", "0.1")]);
    support::wait_until(WAIT, "two failed reads", || {
        counter(
            &gw,
            "apmgate_agent_config_refreshes_total{result=\"failure\"}",
        ) >= failures + 2
    })
    .await;
    let a = ask(&gw, "service.name=opbeans", None).await;
    assert_eq!((a.status, a.etag.as_deref()), (200, Some("etag-1")));
    // Then the reads succeed again and the change arrives.
    until_etag(&gw, "service.name=opbeans", "etag-2").await;
    es.stop();
    let failures = counter(
        &gw,
        "apmgate_agent_config_refreshes_total{result=\"failure\"}",
    );
    support::wait_until(WAIT, "a read without a cluster", || {
        counter(
            &gw,
            "apmgate_agent_config_refreshes_total{result=\"failure\"}",
        ) > failures
    })
    .await;
    let a = ask(&gw, "service.name=opbeans", None).await;
    assert_eq!((a.status, a.etag.as_deref()), (200, Some("etag-2")));
    assert_eq!(
        gw.shared
            .metrics
            .gauge_value("apmgate_agent_config_entries"),
        1
    );
}

#[tokio::test]
async fn a_slow_cluster_does_not_slow_agents_down() {
    let es = EsStandin::start().await;
    es.set_agent_configs(vec![entry(Some("opbeans"), None, "etag-1", "0.5")]);
    let gw = Gateway::start(&policy(&es, "")).await;
    until_etag(&gw, "service.name=opbeans", "etag-1").await;
    // Every answer of the cluster now takes 3 s; a read is in flight while agents ask.
    es.faults(|f| f.latency = Duration::from_secs(3));
    let searches = es.agent_config_searches();
    es.wait_requests(WAIT, |r| {
        r.iter().filter(|r| r.path.ends_with("/_search")).count() > searches
    })
    .await;
    // `ask` fails unless answered within 5 s; it is answered from the cache at once.
    for _ in 0..3 {
        let a = ask(&gw, "service.name=opbeans", None).await;
        assert_eq!((a.status, a.etag.as_deref()), (200, Some("etag-1")));
    }
    es.faults(|f| f.latency = Duration::ZERO);
    gw.stop().await;
}

#[tokio::test]
async fn refused_credentials_answer_403_while_the_cache_is_cold() {
    let es = EsStandin::start().await;
    // Refused for about 5 s (25 reads, one every 200 ms), then allowed.
    es.fail_agent_config_searches(&[403; 25]);
    let gw = Gateway::start(&policy(&es, "")).await;
    support::wait_until(WAIT, "a refused read", || {
        counter(
            &gw,
            "apmgate_agent_config_refreshes_total{result=\"unauthorized\"}",
        ) > 0
    })
    .await;
    let a = ask(&gw, "service.name=opbeans", None).await;
    assert_eq!(a.status, 403);
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .starts_with("Your Elasticsearch configuration does not support agent config queries."),
        "{}",
        a.body
    );
    // Granting the privilege is enough: the reads go on (APM Server stops them for good).
    es.set_agent_configs(vec![entry(Some("opbeans"), None, "etag-1", "0.5")]);
    until_etag(&gw, "service.name=opbeans", "etag-1").await;
    gw.stop().await;
}

#[tokio::test]
async fn the_policy_entries_win_at_equal_specificity_and_anonymous_agents_get_the_sample_rate() {
    let es = EsStandin::start().await;
    es.set_agent_configs(vec![
        entry(Some("opbeans"), None, "es-any", "0.5"),
        entry(Some("opbeans"), Some("production"), "es-production", "0.1"),
        json!({
            "service": {"name": "frontend"},
            "settings": {"transaction_sample_rate": "0.3", "capture_body": "all"},
            "etag": "es-rum",
            "agent_name": "rum-js",
        }),
    ]);
    let gw = Gateway::start(&policy(
        &es,
        r#"
[[agent_config]]
service = "opbeans"
settings = { transaction_sample_rate = 0.2 }

[auth.secret_token.agents]
secret = "a-long-enough-secret-for-the-agents"

[auth.anonymous]
allow_agent = ["rum-js"]

[rum]
enabled = true
"#,
    ))
    .await;
    let prod = until_etag(
        &gw,
        "service.name=opbeans&service.environment=production",
        "es-production",
    )
    .await;
    assert_eq!(prod.body["transaction_sample_rate"], "0.1");
    // (Anonymous here: a secret token is declared and none is sent.)
    let dev = ask(&gw, "service.name=opbeans&service.environment=dev", None).await;
    assert_eq!(
        dev.body,
        json!({"transaction_sample_rate": "0.2"}),
        "the policy's"
    );
    // Anonymous (RUM) callers get the sample rate of entries for their agent only.
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(gw.url(
            "plain",
            false,
            "/config/v1/rum/agents?service.name=frontend",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"es-rum\"");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"transaction_sample_rate": "0.3"})
    );
    gw.stop().await;
}
