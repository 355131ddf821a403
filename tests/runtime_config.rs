//! Central agent configuration from the policy, over real sockets (HTTP/1.1, HTTP/2 over TLS,
//! h2c and HTTP/3): GET with a query and POST with JSON, `service.name` required, the default
//! environment, values as strings, `Etag` and `If-None-Match` / `?ifnonematch=` giving 304,
//! `Cache-Control`, and what anonymous callers may read.

mod support;

use serde_json::{Value, json};
use support::{Gateway, Proto, STANDARD_LISTENERS, call, get, post};

const TOKEN: &str = "config-test-token";

fn policy() -> String {
    format!(
        r#"
[gateway]
default_service_environment = "production"
agent_config_max_age = "45s"
{STANDARD_LISTENERS}
[rum]
enabled = true

[role.agent]
privileges = ["event:write", "config_agent:read"]

[role.writer]
privileges = ["event:write"]

[auth.secret_token.agents]
secret = "{TOKEN}"
roles = ["agent"]

[auth.secret_token.writer]
secret = "writer-only"
roles = ["writer"]

[auth.anonymous]
allow_agent = ["rum-js", "js-base"]
allow_service = ["shop", "checkout", "backend-only", "nothing-here"]

[[agent_config]]
service = "checkout"
environment = "production"
settings = {{ transaction_sample_rate = 0.2, capture_body = "errors", recording = true, stack_trace_limit = 50 }}

[[agent_config]]
service = "checkout"
settings = {{ transaction_sample_rate = 0.5 }}

[[agent_config]]
service = "shop"
agent_name = "rum-js"
settings = {{ transaction_sample_rate = 0.1, capture_body = "all" }}

[[agent_config]]
service = "backend-only"
agent_name = "python"
settings = {{ transaction_sample_rate = 0.3, log_level = "debug" }}
"#
    )
}

const AGENTS: &str = "/config/v1/agents";
const RUM_AGENTS: &str = "/config/v1/rum/agents";

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[tokio::test]
async fn get_with_a_query_and_post_with_json() {
    let gw = Gateway::start(&policy()).await;
    let auth = bearer();
    let auth = [("Authorization", auth.as_str())];
    let production = json!({
        "capture_body": "errors",
        "recording": "true",
        "stack_trace_limit": "50",
        "transaction_sample_rate": "0.2",
    });
    for proto in Proto::EVERY {
        for route in [AGENTS, RUM_AGENTS] {
            let what = format!("{proto:?} {route}");
            let r = get(
                &gw,
                proto,
                &format!("{route}?service.name=checkout&service.environment=production"),
                &auth,
            )
            .await;
            assert_eq!(r.status, 200, "{what}: {}", r.body);
            assert_eq!(r.body, production, "{what}: values are strings");
            assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
            assert_eq!(
                r.header("cache-control"),
                Some("max-age=45, must-revalidate"),
                "{what}"
            );
            assert_eq!(
                r.header("access-control-expose-headers"),
                Some("Etag"),
                "{what}"
            );
            let etag = r.etag();

            // Without an environment: the policy's default environment.
            let r = get(&gw, proto, &format!("{route}?service.name=checkout"), &auth).await;
            assert_eq!((r.status, &r.body), (200, &production), "{what}");
            assert_eq!(r.etag(), etag, "{what}");

            // Another environment: the entry for any environment.
            let r = get(
                &gw,
                proto,
                &format!("{route}?service.name=checkout&service.environment=staging"),
                &auth,
            )
            .await;
            assert_eq!(
                (r.status, &r.body),
                (200, &json!({"transaction_sample_rate": "0.5"})),
                "{what}"
            );
            assert_ne!(r.etag(), etag, "{what}");

            // Query values are URL-decoded.
            let r = get(
                &gw,
                proto,
                &format!("{route}?service.name=check%6Fut&service.environment=prod%75ction"),
                &auth,
            )
            .await;
            assert_eq!((r.status, &r.body), (200, &production), "{what}");

            // POST with JSON, with and without an environment.
            let r = post(
                &gw,
                proto,
                route,
                &auth,
                json!({"service": {"name": "checkout", "environment": "production"}}),
            )
            .await;
            assert_eq!((r.status, &r.body), (200, &production), "{what}");
            assert_eq!(r.etag(), etag);
            let r = post(
                &gw,
                proto,
                route,
                &auth,
                json!({"service": {"name": "checkout"}}),
            )
            .await;
            assert_eq!((r.status, &r.body), (200, &production), "{what}");
            let r = post(
                &gw,
                proto,
                route,
                &auth,
                json!({"service": {"name": "checkout", "environment": "staging"}}),
            )
            .await;
            assert_eq!(
                (r.status, &r.body),
                (200, &json!({"transaction_sample_rate": "0.5"})),
                "{what}"
            );

            // No configuration: `{}` and the sentinel Etag.
            let r = get(&gw, proto, &format!("{route}?service.name=unknown"), &auth).await;
            assert_eq!((r.status, &r.body), (200, &json!({})), "{what}");
            assert_eq!(r.header("etag"), Some("\"-\""), "{what}");

            // An authenticated caller reads every setting, whatever the entry's agent.
            let r = get(&gw, proto, &format!("{route}?service.name=shop"), &auth).await;
            assert_eq!(
                (r.status, &r.body),
                (
                    200,
                    &json!({"capture_body": "all", "transaction_sample_rate": "0.1"})
                ),
                "{what}"
            );
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn service_name_is_required() {
    let gw = Gateway::start(&policy()).await;
    let auth = bearer();
    let auth = [("Authorization", auth.as_str())];
    for proto in Proto::EVERY {
        for route in [AGENTS, RUM_AGENTS] {
            let what = format!("{proto:?} {route}");
            for r in [
                get(&gw, proto, route, &auth).await,
                get(
                    &gw,
                    proto,
                    &format!("{route}?service.environment=production"),
                    &auth,
                )
                .await,
                get(&gw, proto, &format!("{route}?service.name="), &auth).await,
                post(&gw, proto, route, &auth, json!({})).await,
                post(
                    &gw,
                    proto,
                    route,
                    &auth,
                    json!({"service": {"environment": "production"}}),
                )
                .await,
            ] {
                assert_eq!(r.status, 400, "{what}");
                assert_eq!(
                    r.body,
                    json!({"error": "service.name is required"}),
                    "{what}"
                );
                assert_eq!(
                    r.header("cache-control"),
                    Some("max-age=300, must-revalidate"),
                    "{what}"
                );
            }
            // Anonymous callers are told less.
            for r in [
                get(&gw, proto, route, &[]).await,
                post(&gw, proto, route, &[], json!({"service": {}})).await,
            ] {
                assert_eq!(r.status, 400, "{what}");
                assert_eq!(r.body, json!({"error": "invalid query"}), "{what}");
                assert_eq!(
                    r.header("cache-control"),
                    Some("max-age=300, must-revalidate"),
                    "{what}"
                );
            }
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn etags_answer_304() {
    let gw = Gateway::start(&policy()).await;
    let auth = bearer();
    for proto in Proto::EVERY {
        let path = format!("{AGENTS}?service.name=checkout&service.environment=production");
        let first = get(&gw, proto, &path, &[("Authorization", &auth)]).await;
        assert_eq!(first.status, 200);
        let etag = first.etag();
        let quoted = format!("\"{etag}\"");
        for (headers, path) in [
            (vec![("If-None-Match", quoted.as_str())], path.clone()),
            (vec![("If-None-Match", etag.as_str())], path.clone()),
            (vec![], format!("{path}&ifnonematch={etag}")),
        ] {
            let mut headers = headers;
            headers.push(("Authorization", &auth));
            let r = get(&gw, proto, &path, &headers).await;
            assert_eq!(r.status, 304, "{proto:?} {headers:?} {path}");
            assert_eq!(r.body, Value::Null, "a 304 has no body");
            assert_eq!(r.etag(), etag);
            assert_eq!(
                r.header("cache-control"),
                Some("max-age=45, must-revalidate")
            );
        }
        // POST honours If-None-Match too.
        let r = post(
            &gw,
            proto,
            AGENTS,
            &[("Authorization", &auth), ("If-None-Match", &quoted)],
            json!({"service": {"name": "checkout"}}),
        )
        .await;
        assert_eq!(r.status, 304, "{proto:?}");
        // A stale Etag gets the configuration.
        let r = get(
            &gw,
            proto,
            &path,
            &[("Authorization", &auth), ("If-None-Match", "\"stale\"")],
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, first.body);
        // Nothing configured: the sentinel Etag is current.
        let r = get(
            &gw,
            proto,
            &format!("{AGENTS}?service.name=unknown"),
            &[("Authorization", &auth), ("If-None-Match", "\"-\"")],
        )
        .await;
        assert_eq!(r.status, 304);
    }
    gw.stop().await;
}

#[tokio::test]
async fn anonymous_callers_get_only_the_sample_rate_of_entries_for_their_agents() {
    let gw = Gateway::start(&policy()).await;
    for proto in Proto::EVERY {
        for route in [AGENTS, RUM_AGENTS] {
            let what = format!("{proto:?} {route}");
            // An entry for rum-js: trimmed to the sample rate.
            let r = get(&gw, proto, &format!("{route}?service.name=shop"), &[]).await;
            assert_eq!(
                (r.status, &r.body),
                (200, &json!({"transaction_sample_rate": "0.1"})),
                "{what}"
            );
            let etag = r.etag();
            let r = get(
                &gw,
                proto,
                &format!("{route}?service.name=shop"),
                &[("If-None-Match", &format!("\"{etag}\""))],
            )
            .await;
            assert_eq!(r.status, 304, "{what}");

            // An entry for any agent (and the default environment): trimmed as well.
            let r = post(
                &gw,
                proto,
                route,
                &[],
                json!({"service": {"name": "checkout"}}),
            )
            .await;
            assert_eq!(
                (r.status, &r.body),
                (200, &json!({"transaction_sample_rate": "0.2"})),
                "{what}"
            );

            // An entry for another agent: nothing.
            let r = get(
                &gw,
                proto,
                &format!("{route}?service.name=backend-only"),
                &[],
            )
            .await;
            assert_eq!((r.status, &r.body), (200, &json!({})), "{what}");
            assert_eq!(r.header("etag"), Some("\"-\""), "{what}");

            // A service outside allow_service is refused.
            let r = get(&gw, proto, &format!("{route}?service.name=other"), &[]).await;
            assert_eq!(r.status, 403, "{what}: {}", r.body);
            assert_eq!(
                r.body,
                json!({"error": "unauthorized: anonymous access not permitted for service \"other\""}),
                "{what}"
            );
            assert_eq!(
                r.header("cache-control"),
                Some("max-age=300, must-revalidate"),
                "{what}"
            );
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn configuration_needs_config_agent_read_and_get_or_post() {
    let gw = Gateway::start(&policy()).await;
    for proto in Proto::EVERY {
        let r = get(
            &gw,
            proto,
            &format!("{AGENTS}?service.name=checkout"),
            &[("Authorization", "Bearer writer-only")],
        )
        .await;
        assert_eq!(r.status, 403, "{proto:?}");
        assert_eq!(
            r.body,
            json!({"error": "unauthorized: secret token not permitted action \"config_agent:read\""})
        );
        assert_eq!(
            r.header("cache-control"),
            Some("max-age=300, must-revalidate")
        );

        let r = get(
            &gw,
            proto,
            &format!("{AGENTS}?service.name=checkout"),
            &[("Authorization", "Bearer wrong")],
        )
        .await;
        assert_eq!(
            (r.status, &r.body),
            (401, &json!({"error": "authentication failed"}))
        );
        assert_eq!(
            r.header("cache-control"),
            Some("max-age=300, must-revalidate")
        );

        for method in [http::Method::PUT, http::Method::DELETE] {
            let path = format!("{AGENTS}?service.name=checkout");
            let r = call(
                &gw,
                proto,
                method.clone(),
                &path,
                &[("Authorization", &bearer())],
                None,
            )
            .await;
            assert_eq!(r.status, 405, "{proto:?} {method}");
            assert_eq!(
                r.header("cache-control"),
                Some("max-age=300, must-revalidate")
            );
            // Anonymous callers are told the short message.
            let r = call(&gw, proto, method.clone(), &path, &[], None).await;
            assert_eq!(r.status, 405, "{proto:?} {method}");
            assert_eq!(r.body, json!({"error": "method not supported"}));
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_named_to_authenticated_callers() {
    let gw = Gateway::start(&policy()).await;
    for proto in Proto::EVERY {
        let path = format!("{AGENTS}?service.name=checkout");
        let r = call(
            &gw,
            proto,
            http::Method::PUT,
            &path,
            &[("Authorization", &bearer())],
            None,
        )
        .await;
        assert_eq!(r.status, 405);
        assert_eq!(r.body, json!({"error": "method not supported: PUT"}));
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_trimmed_answer_keeps_the_entry_etag() {
    let gw = Gateway::start(&policy()).await;
    for proto in Proto::EVERY {
        let path = format!("{AGENTS}?service.name=shop");
        let full = get(&gw, proto, &path, &[("Authorization", &bearer())]).await;
        let trimmed = get(&gw, proto, &path, &[]).await;
        assert_eq!(trimmed.body, json!({"transaction_sample_rate": "0.1"}));
        assert_eq!(trimmed.etag(), full.etag(), "{proto:?}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_empty_allow_agent_does_not_restrict_anonymous_configuration() {
    let gw = Gateway::start(&format!(
        r#"{STANDARD_LISTENERS}
[auth.secret_token.agents]
secret = "{TOKEN}"

[auth.anonymous]
allow_agent = []

[[agent_config]]
service = "backend-only"
agent_name = "python"
settings = {{ transaction_sample_rate = 0.3, log_level = "debug" }}
"#
    ))
    .await;
    for proto in Proto::EVERY {
        let r = get(
            &gw,
            proto,
            &format!("{AGENTS}?service.name=backend-only"),
            &[],
        )
        .await;
        assert_eq!(r.status, 200, "{proto:?}: {}", r.body);
        assert_eq!(
            r.body,
            json!({"log_level": "debug", "transaction_sample_rate": "0.3"}),
            "{proto:?}"
        );
    }
    gw.stop().await;
}

/// Issue 12: a float setting is served as written (`1.0`, not `1`), digit separators aside.
#[tokio::test]
async fn issue_12_float_settings_are_served_as_written() {
    let gw = Gateway::start(&format!(
        r#"{STANDARD_LISTENERS}
[[agent_config]]
service = "checkout"
settings = {{ transaction_sample_rate = 1.0, span_frames_min_duration = 5.50, exit_span_min_duration = 1_000.5, stack_trace_limit = 50 }}
"#
    ))
    .await;
    for proto in Proto::EVERY {
        let r = get(&gw, proto, &format!("{AGENTS}?service.name=checkout"), &[]).await;
        assert_eq!(r.status, 200, "{proto:?}: {}", r.body);
        assert_eq!(
            r.body,
            json!({
                "exit_span_min_duration": "1000.5",
                "span_frames_min_duration": "5.50",
                "stack_trace_limit": "50",
                "transaction_sample_rate": "1.0",
            }),
            "{proto:?}"
        );
    }
    gw.stop().await;
}
