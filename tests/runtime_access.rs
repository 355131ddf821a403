//! Access control of `apmgate run`, over real sockets: secret tokens, API keys, roles and
//! privileges, rules and allowlists, trusted proxies, anonymous access and its rate limits, RUM
//! CORS, the metrics route and the counting of denials. The same cases run over HTTP/1.1, HTTP/2
//! over TLS (ALPN), h2c and HTTP/3.

mod support;

use serde_json::{Value, json};
use support::{ApiKey, Gateway, Proto, STANDARD_LISTENERS, call, client, get, payload, post};

const TOKEN: &str = "s3cr3t-t0ken";

const EXPECTED: &str = "expected 'Authorization: Bearer secret_token' or 'Authorization: ApiKey base64(API key ID:API key)'";

fn with_token(extra: &str) -> String {
    format!("{STANDARD_LISTENERS}\n[auth.secret_token.agents]\nsecret = \"{TOKEN}\"\n{extra}")
}

#[tokio::test]
async fn secret_tokens_right_wrong_and_missing_over_every_protocol() {
    let gw = Gateway::start(&with_token("")).await;
    let bearer = format!("Bearer {TOKEN}");
    let missing = format!(
        "authentication failed: missing or improperly formatted Authorization header: {EXPECTED}"
    );
    for proto in Proto::EVERY {
        let intake = "/intake/v2/events?verbose";
        let ok = post(
            &gw,
            proto,
            intake,
            &[("Authorization", &bearer)],
            payload("python", "svc", 3),
        )
        .await;
        assert_eq!(ok.version, proto.version());
        assert_eq!(ok.status, 202, "{proto:?}: {}", ok.body);
        assert_eq!(ok.body, json!({"accepted": 3}));

        for (auth, message) in [
            (Some("Bearer wrong-token"), "authentication failed".to_string()),
            // The token must match whole, not as a prefix.
            (Some("Bearer s3cr3t"), "authentication failed".to_string()),
            (None, missing.clone()),
            // No space: not a credential at all.
            (Some("Bearers3cr3t-t0ken"), missing.clone()),
            // Schemes are case-sensitive.
            (
                Some("bearer s3cr3t-t0ken"),
                format!("authentication failed: unknown Authentication header bearer: {EXPECTED}"),
            ),
            (
                Some("Basic dXNlcjpwYXNz"),
                format!("authentication failed: unknown Authentication header Basic: {EXPECTED}"),
            ),
            // ApiKey with no key declared: refused like a wrong secret.
            (Some("ApiKey aWQ6a2V5"), "authentication failed".to_string()),
            (
                Some("ApiKey aWRrZXk="),
                "authentication failed: improperly formatted ApiKey credentials: expected base64(ID:APIKey)"
                    .to_string(),
            ),
        ] {
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
            let r = post(&gw, proto, intake, &headers, payload("python", "svc", 1)).await;
            assert_eq!(r.status, 401, "{proto:?} {auth:?}: {}", r.body);
            assert_eq!(r.body, json!({ "error": message }), "{proto:?} {auth:?}");
            assert!(
                r.header("www-authenticate").is_none(),
                "APM Server sends no WWW-Authenticate"
            );
        }
        // Undecodable ApiKey credentials: APM Server's prefix (the decoder's own words follow).
        let r = post(
            &gw,
            proto,
            intake,
            &[("Authorization", "ApiKey !!!")],
            vec![],
        )
        .await;
        assert_eq!(r.status, 401);
        assert!(
            r.error()
                .starts_with("authentication failed: improperly encoded ApiKey credentials: "),
            "{}",
            r.body
        );

        // `GET /` never refuses for want of credentials; only authenticated callers get the body.
        let anon = get(&gw, proto, "/", &[]).await;
        assert_eq!((anon.status, &anon.body), (200, &Value::Null));
        let wrong = get(&gw, proto, "/", &[("Authorization", "Bearer nope")]).await;
        assert_eq!((wrong.status, &wrong.body), (200, &Value::Null));
        let full = get(&gw, proto, "/", &[("Authorization", &bearer)]).await;
        assert_eq!(full.status, 200);
        assert!(full.body["version"].is_string(), "{}", full.body);
        assert!(full.body["publish_ready"].is_boolean(), "{}", full.body);
    }
    let dir = gw.stop().await;
    let docs = support::output_documents(dir.path());
    assert_eq!(
        docs.len(),
        3 * Proto::EVERY.len(),
        "3 accepted events per protocol, nothing else"
    );
}

/// `[auth.api_key.*]` entries with real Argon2id hashes, as `apmgate keys new` writes them.
fn api_key_policy(writer: &ApiKey, reader: &ApiKey, expired: &ApiKey) -> String {
    format!(
        r#"{STANDARD_LISTENERS}
[role.writer]
privileges = ["event:write", "config_agent:read"]

[role.reader]
privileges = ["config_agent:read"]

[auth.api_key.writer]
id = "{}"
hash = "{}"
roles = ["writer"]
expires = 2099-01-01T00:00:00Z

[auth.api_key.reader]
id = "{}"
hash = "{}"
roles = ["reader"]

[auth.api_key.expired]
id = "{}"
hash = "{}"
roles = ["writer"]
expires = 2020-01-01T00:00:00Z
"#,
        writer.id, writer.hash, reader.id, reader.hash, expired.id, expired.hash
    )
}

#[tokio::test]
async fn api_keys_declared_in_the_policy() {
    let writer = ApiKey::new("writer-key-id");
    let reader = ApiKey::new("reader-key-id");
    let expired = ApiKey::new("expired-key-id");
    let gw = Gateway::start(&api_key_policy(&writer, &reader, &expired)).await;
    let wrong_secret = writer.header_with_secret("not-the-secret");
    let unknown = ApiKey::new("unknown-key-id");
    for proto in Proto::EVERY {
        let intake = "/intake/v2/events?verbose";
        let ok = post(
            &gw,
            proto,
            intake,
            &[("Authorization", &writer.header)],
            payload("python", "svc", 2),
        )
        .await;
        assert_eq!(ok.status, 202, "{proto:?}: {}", ok.body);
        assert_eq!(ok.body, json!({"accepted": 2}));

        // The right id with a wrong secret, right after the right secret was verified (and
        // cached): the cache is keyed on the whole credential, not the id. Then an unknown
        // key and an expired one.
        for (credential, what) in [
            (wrong_secret.as_str(), "wrong secret"),
            (unknown.header.as_str(), "unknown"),
            (expired.header.as_str(), "expired"),
        ] {
            let r = post(
                &gw,
                proto,
                intake,
                &[("Authorization", credential)],
                payload("python", "svc", 1),
            )
            .await;
            assert_eq!(
                (r.status, r.error()),
                (401, "authentication failed"),
                "{proto:?}: {what}"
            );
        }

        // A key without event:write is authenticated but may not ingest.
        let r = post(
            &gw,
            proto,
            intake,
            &[("Authorization", &reader.header)],
            payload("python", "svc", 1),
        )
        .await;
        assert_eq!(r.status, 403, "{proto:?}: {}", r.body);
        // The message, whichever body shape carries it (see
        // `a_key_without_event_write_is_refused_per_batch_as_apm_server_does`).
        let message = r.body["error"]
            .as_str()
            .or_else(|| r.messages().first().copied())
            .unwrap_or_else(|| panic!("no message in {}", r.body));
        assert!(
            message.ends_with("unauthorized: API Key not permitted action \"event:write\""),
            "{message}"
        );
        // ... but may read its configuration.
        let r = get(
            &gw,
            proto,
            "/config/v1/agents?service.name=svc",
            &[("Authorization", &reader.header)],
        )
        .await;
        assert_eq!(r.status, 200, "{proto:?}: {}", r.body);
        // The writer reads configuration too; the expired key does not.
        let r = get(
            &gw,
            proto,
            "/config/v1/agents?service.name=svc",
            &[("Authorization", &writer.header)],
        )
        .await;
        assert_eq!(r.status, 200);
        let r = get(
            &gw,
            proto,
            "/config/v1/agents?service.name=svc",
            &[("Authorization", &expired.header)],
        )
        .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(
        gw.shared
            .metrics
            .get("apmgate_access_denied_total", &[("reason", "privilege")]),
        Proto::EVERY.len() as u64
    );
    let dir = gw.stop().await;
    assert_eq!(
        support::output_documents(dir.path()).len(),
        2 * Proto::EVERY.len()
    );
}

#[tokio::test]
async fn a_key_without_event_write_is_refused_per_batch_as_apm_server_does() {
    let (writer, reader, expired) = (
        ApiKey::new("writer-key-id"),
        ApiKey::new("reader-key-id"),
        ApiKey::new("expired-key-id"),
    );
    let gw = Gateway::start(&api_key_policy(&writer, &reader, &expired)).await;
    for proto in Proto::EVERY {
        let auth = [("Authorization", reader.header.as_str())];
        let r = post(
            &gw,
            proto,
            "/intake/v2/events",
            &auth,
            payload("python", "svc", 1),
        )
        .await;
        assert_eq!(r.status, 403, "{proto:?}");
        assert_eq!(
            r.body,
            batch_error("unauthorized: API Key not permitted action \"event:write\"")
        );
        let r = post(&gw, proto, "/intake/v2/events", &auth, Vec::new()).await;
        assert_eq!(r.status, 202, "{proto:?}: nothing to authorize");
    }
    gw.stop().await;
}

const RULES: &str = r#"
[allowlist.office]
cidrs = ["192.0.2.0/24"]

[access]
default = "deny"

[[access.rule]]
name = "no-python"
when = 'agent == "elasticapm-python"'
effect = "deny"

[[access.rule]]
name = "office"
when = 'source in office'
effect = "allow"

[[access.rule]]
name = "office-intake-denied"
description = "never decides: `office` matches first"
when = 'source in office and route == intake'
effect = "deny"

[[access.rule]]
name = "lab"
when = 'source in ["203.0.113.0/24"] and route == intake'
effect = "allow"
"#;

#[tokio::test]
async fn rules_first_match_default_deny_and_allowlists() {
    let gw = Gateway::start(&format!(
        "[gateway]\ntrusted_proxies = [\"127.0.0.1\"]\n{STANDARD_LISTENERS}{RULES}"
    ))
    .await;
    let denied = json!({"error": "forbidden request: access denied by policy"});
    for proto in Proto::EVERY {
        let intake = "/intake/v2/events";
        let cases: [(&str, &str, &str, u16); 7] = [
            // The first matching rule decides, even though a later one would deny.
            (intake, "192.0.2.5", "elasticapm-node/4.0", 202),
            (intake, "192.0.2.5", "elasticapm-python/6.22", 403),
            (
                "/config/v1/agents?service.name=x",
                "192.0.2.5",
                "elasticapm-node/4.0",
                200,
            ),
            (intake, "203.0.113.7", "elasticapm-node/4.0", 202),
            // Matches no rule: the default decides.
            (
                "/config/v1/agents?service.name=x",
                "203.0.113.7",
                "elasticapm-node/4.0",
                403,
            ),
            (intake, "198.51.100.7", "elasticapm-node/4.0", 403),
            ("/", "198.51.100.7", "curl/8", 403),
        ];
        for (path, ip, ua, status) in cases {
            let headers = [("X-Forwarded-For", ip), ("User-Agent", ua)];
            let r = if path.starts_with(intake) {
                post(&gw, proto, path, &headers, payload("nodejs", "svc", 1)).await
            } else {
                get(&gw, proto, path, &headers).await
            };
            assert_eq!(
                r.status, status,
                "{proto:?} {path} from {ip} as {ua}: {}",
                r.body
            );
            if status == 403 {
                assert_eq!(r.body, denied);
            }
        }
        // The socket address itself (127.0.0.1) is in no allowlist.
        let r = post(&gw, proto, intake, &[], payload("nodejs", "svc", 1)).await;
        assert_eq!((r.status, &r.body), (403, &denied));
    }
    let m = &gw.shared.metrics;
    let protocols = Proto::EVERY.len() as u64;
    assert_eq!(
        m.get("apmgate_access_denied_total", &[("reason", "rule")]),
        protocols
    );
    assert_eq!(
        m.get("apmgate_access_denied_total", &[("reason", "default_deny")]),
        4 * protocols
    );
    gw.stop().await;
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_do_not_reach_an_allowlist() {
    let gw = Gateway::start(&format!("{STANDARD_LISTENERS}{RULES}")).await;
    for proto in Proto::EVERY {
        for (name, value) in [
            ("X-Forwarded-For", "192.0.2.5"),
            ("X-Real-IP", "192.0.2.5"),
            ("Forwarded", "for=192.0.2.5"),
        ] {
            let r = post(
                &gw,
                proto,
                "/intake/v2/events",
                &[(name, value)],
                payload("nodejs", "svc", 1),
            )
            .await;
            assert_eq!(r.status, 403, "{proto:?} {name}: {}", r.body);
        }
    }
    gw.stop().await;
}

/// Issue 12: behind a proxy that appends `X-Forwarded-For`, a client-written `Forwarded` or
/// `X-Real-IP` reaches the gateway untouched. With `trusted_proxy_header` only the proxy's
/// header is read, so a forged one cannot turn the office-only rule from 403 to 202.
#[tokio::test]
async fn issue_12_only_the_declared_proxy_header_is_believed() {
    let policy = |header: &str| {
        format!("[gateway]\ntrusted_proxies = [\"127.0.0.1\"]\n{header}{STANDARD_LISTENERS}{RULES}")
    };
    let declared = Gateway::start(&policy("trusted_proxy_header = \"x-forwarded-for\"\n")).await;
    let undeclared = Gateway::start(&policy("")).await;
    let intake = "/intake/v2/events";
    for proto in Proto::EVERY {
        for forged in [("Forwarded", "for=192.0.2.5"), ("X-Real-IP", "192.0.2.5")] {
            // The proxy (127.0.0.1, trusted) appended the real client, outside the office.
            let headers = [("X-Forwarded-For", "198.51.100.7"), forged];
            let r = post(
                &declared,
                proto,
                intake,
                &headers,
                payload("nodejs", "svc", 1),
            )
            .await;
            assert_eq!(r.status, 403, "{proto:?} forged {forged:?}: {}", r.body);
            // What the setting prevents: undeclared, the forged header wins over the proxy's.
            let r = post(
                &undeclared,
                proto,
                intake,
                &headers,
                payload("nodejs", "svc", 1),
            )
            .await;
            assert_eq!(
                r.status, 202,
                "{proto:?} undeclared, forged {forged:?}: {}",
                r.body
            );
        }
        // A client really in the office, whatever else it writes, is let through.
        let headers = [
            ("X-Forwarded-For", "192.0.2.5"),
            ("Forwarded", "for=198.51.100.7"),
            ("X-Real-IP", "198.51.100.7"),
        ];
        let r = post(
            &declared,
            proto,
            intake,
            &headers,
            payload("nodejs", "svc", 1),
        )
        .await;
        assert_eq!(r.status, 202, "{proto:?} office client: {}", r.body);
        // Without the declared header the proxy's own address is the client's: no office.
        let headers = [("Forwarded", "for=192.0.2.5")];
        let r = post(
            &declared,
            proto,
            intake,
            &headers,
            payload("nodejs", "svc", 1),
        )
        .await;
        assert_eq!(r.status, 403, "{proto:?} only a forged header: {}", r.body);
    }
    declared.stop().await;
    undeclared.stop().await;
}

/// The document of the file output whose `service.name` is `service`.
fn doc_of<'d>(docs: &'d [(String, Value)], service: &str) -> &'d Value {
    let mine: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["service"]["name"] == service)
        .collect();
    assert_eq!(mine.len(), 1, "one document of {service} in {docs:#?}");
    mine[0]
}

#[tokio::test]
async fn trusted_proxies_decide_the_client_ip_of_backend_and_rum_events() {
    let gw = Gateway::start(&format!(
        "[gateway]\ntrusted_proxies = [\"127.0.0.1\", \"203.0.113.0/24\"]\n{STANDARD_LISTENERS}\n[rum]\nenabled = true\n"
    ))
    .await;
    let cases: [(&str, &str, &str, &str); 6] = [
        // Walked from the right: the trusted hop 203.0.113.9 is skipped.
        (
            "xff-chain",
            "X-Forwarded-For",
            "198.51.100.1, 203.0.113.9",
            "198.51.100.1",
        ),
        // An untrusted hop ends the walk: what is left of it is unverifiable.
        (
            "xff-untrusted-hop",
            "X-Forwarded-For",
            "198.51.100.1, 192.0.2.9",
            "192.0.2.9",
        ),
        ("real-ip", "X-Real-IP", "192.0.2.44", "192.0.2.44"),
        (
            "forwarded",
            "Forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https",
            "2001:db8::1",
        ),
        ("direct", "X-Nothing", "-", "127.0.0.1"),
        (
            "xff-single",
            "X-Forwarded-For",
            "198.51.100.2",
            "198.51.100.2",
        ),
    ];
    let service_over = |service: &str, proto: Proto| format!("{service}-{proto:?}").to_lowercase();
    for proto in Proto::EVERY {
        for (service, name, value, _) in cases {
            let service = service_over(service, proto);
            let r = post(
                &gw,
                proto,
                "/intake/v2/events",
                &[(name, value)],
                payload("python", &service, 1),
            )
            .await;
            assert_eq!(r.status, 202, "{service}: {}", r.body);
        }
    }
    for proto in Proto::EVERY {
        let service = format!("rum-{proto:?}").to_lowercase();
        let r = post(
            &gw,
            proto,
            "/intake/v2/rum/events",
            &[
                ("X-Forwarded-For", "192.0.2.77"),
                ("User-Agent", "Mozilla/5.0 (rum test)"),
            ],
            payload("rum-js", &service, 1),
        )
        .await;
        assert_eq!(r.status, 202, "{proto:?}: {}", r.body);
    }
    let dir = gw.stop().await;
    let docs = support::output_documents(dir.path());
    for proto in Proto::EVERY {
        for (service, _, _, ip) in cases {
            let service = service_over(service, proto);
            assert_eq!(
                doc_of(&docs, &service)["host"]["ip"],
                json!([ip]),
                "{service}"
            );
        }
    }
    for proto in Proto::EVERY {
        let service = format!("rum-{proto:?}").to_lowercase();
        let doc = doc_of(&docs, &service);
        assert_eq!(doc["client"]["ip"], "192.0.2.77", "{doc}");
        // The forwarded address is the source; the proxy that vouched for it is the NAT.
        assert_eq!(doc["source"]["ip"], "192.0.2.77", "{doc}");
        assert_eq!(doc["source"]["nat"]["ip"], "127.0.0.1", "{doc}");
        assert_eq!(
            doc["user_agent"]["original"], "Mozilla/5.0 (rum test)",
            "{doc}"
        );
    }
}

#[tokio::test]
async fn untrusted_peers_cannot_choose_their_client_ip() {
    let gw = Gateway::start(&format!("{STANDARD_LISTENERS}\n[rum]\nenabled = true\n")).await;
    for proto in Proto::EVERY {
        let svc = format!("backend-{proto:?}").to_lowercase();
        let h = [
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Real-IP", "198.51.100.2"),
            ("Forwarded", "for=198.51.100.3"),
        ];
        assert_eq!(
            post(
                &gw,
                proto,
                "/intake/v2/events",
                &h,
                payload("python", &svc, 1)
            )
            .await
            .status,
            202
        );
        let svc = format!("rum-{proto:?}").to_lowercase();
        assert_eq!(
            post(
                &gw,
                proto,
                "/intake/v2/rum/events",
                &h,
                payload("rum-js", &svc, 1)
            )
            .await
            .status,
            202
        );
    }
    let dir = gw.stop().await;
    let docs = support::output_documents(dir.path());
    for proto in Proto::EVERY {
        let svc = format!("backend-{proto:?}").to_lowercase();
        assert_eq!(doc_of(&docs, &svc)["host"]["ip"], json!(["127.0.0.1"]));
        let svc = format!("rum-{proto:?}").to_lowercase();
        let doc = doc_of(&docs, &svc);
        assert_eq!(doc["client"]["ip"], "127.0.0.1", "{doc}");
        assert_eq!(doc["source"]["ip"], "127.0.0.1", "{doc}");
        assert!(doc.pointer("/source/nat").is_none(), "{doc}");
    }
}

#[tokio::test]
async fn without_capture_personal_data_no_client_ip_or_user_agent_is_recorded() {
    let gw = Gateway::start(&format!(
        "[gateway]\ncapture_personal_data = false\ntrusted_proxies = [\"127.0.0.1\"]\n{STANDARD_LISTENERS}\n[rum]\nenabled = true\n"
    ))
    .await;
    let h = [
        ("X-Forwarded-For", "198.51.100.1"),
        ("User-Agent", "Mozilla/5.0 (rum test)"),
    ];
    for proto in Proto::EVERY {
        let r = post(
            &gw,
            proto,
            "/intake/v2/events",
            &h,
            payload("python", "backend", 1),
        )
        .await;
        assert_eq!(r.status, 202, "{proto:?}: {}", r.body);
        let r = post(
            &gw,
            proto,
            "/intake/v2/rum/events",
            &h,
            payload("rum-js", "rum", 1),
        )
        .await;
        assert_eq!(r.status, 202, "{proto:?}: {}", r.body);
    }
    let dir = gw.stop().await;
    let docs = support::output_documents(dir.path());
    assert_eq!(docs.len(), 2 * Proto::EVERY.len());
    for (_, doc) in &docs {
        assert!(doc["@timestamp"].is_string(), "{doc}");
        for pointer in [
            "/host/ip",
            "/client/ip",
            "/source/ip",
            "/user_agent/original",
        ] {
            assert!(doc.pointer(pointer).is_none(), "{pointer} in {doc}");
        }
    }
}

fn anonymous_policy(extra: &str) -> String {
    with_token(&format!(
        r#"
[rum]
enabled = true

[auth.anonymous]
allow_agent = ["rum-js"]
allow_service = ["shop"]
{extra}
"#
    ))
}

fn batch_error(reason: &str) -> Value {
    json!({"accepted": 0, "errors": [{"message": format!("cannot handle stream: cannot process batch: {reason}")}]})
}

#[tokio::test]
async fn anonymous_agents_and_services_are_checked_per_event() {
    let gw = Gateway::start(&anonymous_policy("")).await;
    let bearer = format!("Bearer {TOKEN}");
    for proto in Proto::EVERY {
        for route in [
            "/intake/v2/rum/events?verbose",
            "/intake/v3/rum/events?verbose",
        ] {
            let r = post(&gw, proto, route, &[], payload("rum-js", "shop", 3)).await;
            assert_eq!(
                (r.status, &r.body),
                (202, &json!({"accepted": 3})),
                "{proto:?} {route}"
            );

            let r = post(&gw, proto, route, &[], payload("python", "shop", 12)).await;
            assert_eq!(r.status, 403, "{proto:?} {route}");
            assert_eq!(
                r.body,
                batch_error("unauthorized: anonymous access not permitted for agent \"python\"")
            );
            // How the connection is closed after this refusal is protocol-specific: see
            // `response_framing_over`.

            let r = post(&gw, proto, route, &[], payload("rum-js", "other", 2)).await;
            assert_eq!(r.status, 403, "{proto:?} {route}");
            assert_eq!(
                r.body,
                batch_error("unauthorized: anonymous access not permitted for service \"other\"")
            );

            // Authenticated callers are not held to the anonymous lists.
            let r = post(
                &gw,
                proto,
                route,
                &[("Authorization", &bearer)],
                payload("python", "other", 2),
            )
            .await;
            assert_eq!((r.status, &r.body), (202, &json!({"accepted": 2})));
        }
        // Anonymous access applies to the backend intake as well.
        let r = post(
            &gw,
            proto,
            "/intake/v2/events",
            &[],
            payload("python", "shop", 1),
        )
        .await;
        assert_eq!(r.status, 403);
        assert_eq!(
            r.body,
            batch_error("unauthorized: anonymous access not permitted for agent \"python\"")
        );
        let r = post(
            &gw,
            proto,
            "/intake/v2/events?verbose",
            &[],
            payload("rum-js", "shop", 1),
        )
        .await;
        assert_eq!((r.status, &r.body), (202, &json!({"accepted": 1})));
    }
    gw.stop().await;
}

/// Connection-specific header fields: HTTP/2 (RFC 9113 section 8.2.2) and HTTP/3 (RFC 9114
/// section 4.2) forbid them, and their receivers treat a message carrying one as malformed.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// A request (method, path, headers, body) and the status it gets.
type FramingCase<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Option<Vec<u8>>,
    u16,
);

/// Refusals and successes of every kind of route: over HTTP/1.1 a refusal closes the connection
/// (`Connection: close`) and a success keeps it; over HTTP/2 and HTTP/3 no response carries a
/// connection-specific field.
async fn response_framing_over(protos: &[Proto]) {
    let gw = Gateway::start(&anonymous_policy("")).await;
    let bearer = format!("Bearer {TOKEN}");
    for &proto in protos {
        let cases: [FramingCase; 6] = [
            // Anonymous, per batch.
            (
                "POST",
                "/intake/v2/rum/events",
                vec![],
                Some(payload("python", "shop", 12)),
                403,
            ),
            (
                "POST",
                "/intake/v2/events",
                vec![("Authorization", "Bearer wrong")],
                Some(payload("python", "svc", 1)),
                401,
            ),
            ("GET", "/nowhere", vec![], None, 404),
            (
                "GET",
                "/config/v1/agents",
                vec![("Authorization", bearer.as_str())],
                None,
                400,
            ),
            (
                "POST",
                "/intake/v2/rum/events",
                vec![],
                Some(payload("rum-js", "shop", 1)),
                202,
            ),
            ("GET", "/", vec![], None, 200),
        ];
        for (method, path, headers, body, status) in cases {
            let what = format!("{proto:?} {method} {path}");
            let method = http::Method::from_bytes(method.as_bytes()).unwrap();
            let r = call(&gw, proto, method, path, &headers, body.map(Into::into)).await;
            assert_eq!(r.status, status, "{what}: {}", r.body);
            if proto == Proto::H1 {
                assert_eq!(
                    r.header("connection"),
                    (status >= 400).then_some("close"),
                    "{what}"
                );
            } else {
                for name in CONNECTION_SPECIFIC {
                    assert_eq!(r.header(name), None, "{what}: {name} in {:?}", r.headers);
                }
            }
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn refusals_close_http1_connections_and_http2_responses_carry_no_connection_fields() {
    response_framing_over(&Proto::ALL).await;
}

#[tokio::test]
async fn http3_responses_carry_no_connection_fields() {
    response_framing_over(&[Proto::H3]).await;
}

#[tokio::test]
async fn an_anonymous_violation_mid_stream_keeps_the_earlier_batches() {
    let gw = Gateway::start(&anonymous_policy("")).await;
    for proto in Proto::EVERY {
        let mut body = support::metadata_line("rum-js", "shop");
        for i in 0..10 {
            body.push_str(&support::transaction_line(i, None));
        }
        body.push_str(&support::transaction_line(10, Some("x")));
        body.push_str(&support::transaction_line(11, None));
        let r = post(&gw, proto, "/intake/v2/rum/events", &[], body.into_bytes()).await;
        assert_eq!(r.status, 403, "{proto:?}: {}", r.body);
        assert_eq!(
            r.body,
            json!({"accepted": 10, "errors": [{"message": "cannot handle stream: cannot process batch: unauthorized: anonymous access not permitted for agent \"x\""}]})
        );
    }
    let dir = gw.stop().await;
    assert_eq!(
        support::output_documents(dir.path()).len(),
        10 * Proto::EVERY.len()
    );
}

#[tokio::test]
async fn anonymous_rate_limit_up_front_and_mid_stream() {
    // event_limit 4: a burst of 12 tokens per IP. Trusted forwarding headers give each case
    // its own client IP, hence its own bucket.
    let gw = Gateway::start(&format!(
        "[gateway]\ntrusted_proxies = [\"127.0.0.1\"]\n{}",
        anonymous_policy("[auth.anonymous.rate_limit]\nevent_limit = 4\nip_limit = 100\n")
    ))
    .await;
    for (n, proto) in Proto::EVERY.into_iter().enumerate() {
        // Up front: every request takes a token; once the burst is spent, 429 before any body.
        let ip = format!("192.0.2.{}", 10 + n);
        let mut statuses = Vec::new();
        let refused = loop {
            let r = post(
                &gw,
                proto,
                "/intake/v2/rum/events",
                &[("X-Forwarded-For", &ip)],
                Vec::new(),
            )
            .await;
            if r.status != 202 {
                break r;
            }
            statuses.push(r.status);
            assert!(statuses.len() < 60, "{proto:?}: never rate limited");
        };
        assert!(
            statuses.len() >= 12,
            "{proto:?}: the burst is 3 x event_limit"
        );
        assert_eq!(refused.status, 429, "{proto:?}: {}", refused.body);
        assert_eq!(
            refused.body,
            json!({"error": "too many requests: rate limit exceeded"})
        );

        // Mid-stream: the first batch of 10 takes 10 of the 11 tokens left after the request's
        // own; the second cannot get its 10 within a second. The first stays accepted.
        let ip = format!("192.0.2.{}", 20 + n);
        let r = post(
            &gw,
            proto,
            "/intake/v2/rum/events",
            &[("X-Forwarded-For", &ip)],
            payload("rum-js", "shop", 20),
        )
        .await;
        assert_eq!(r.status, 429, "{proto:?}: {}", r.body);
        assert_eq!(
            r.body,
            json!({"accepted": 10, "errors": [{"message": "cannot handle stream: cannot process batch: rate limit exceeded"}]})
        );

        // Authenticated callers are never rate limited, whatever their address.
        let bearer = format!("Bearer {TOKEN}");
        for _ in 0..3 {
            let r = post(
                &gw,
                proto,
                "/intake/v2/rum/events",
                &[("X-Forwarded-For", &ip), ("Authorization", &bearer)],
                payload("rum-js", "shop", 12),
            )
            .await;
            assert_eq!(r.status, 202, "{proto:?}: {}", r.body);
        }
    }
    let m = &gw.shared.metrics;
    let protocols = Proto::EVERY.len();
    assert_eq!(
        m.get("apmgate_rate_limited_total", &[("stage", "request")]),
        protocols as u64
    );
    assert_eq!(
        m.get("apmgate_rate_limited_total", &[("stage", "batch")]),
        protocols as u64
    );
    let dir = gw.stop().await;
    assert_eq!(
        support::output_documents(dir.path()).len(),
        protocols * (10 + 3 * 12)
    );
}

#[tokio::test]
async fn a_batch_larger_than_the_burst_is_refused_at_once() {
    // event_limit 1: a burst of 3; a batch of 10 can never be had. A gateway per protocol: the
    // rate limit is the state under test.
    for proto in Proto::EVERY {
        let gw = Gateway::start(&anonymous_policy(
            "[auth.anonymous.rate_limit]\nevent_limit = 1\n",
        ))
        .await;
        let r = post(
            &gw,
            proto,
            "/intake/v2/rum/events",
            &[],
            payload("rum-js", "shop", 10),
        )
        .await;
        assert_eq!(r.status, 429, "{proto:?}: {}", r.body);
        assert_eq!(r.body, batch_error("rate limit exceeded"), "{proto:?}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn spoofed_forwarding_headers_do_not_dodge_the_rate_limit() {
    // No trusted proxies: every request comes from 127.0.0.1, whatever it claims (APM Server's
    // open issue #6424). A gateway per protocol: the rate limit is the state under test.
    for proto in Proto::EVERY {
        let gw = Gateway::start(&anonymous_policy(
            "[auth.anonymous.rate_limit]\nevent_limit = 1\n",
        ))
        .await;
        let mut sent = 0;
        let refused = loop {
            let ip = format!("198.51.100.{}", sent + 1);
            let r = post(
                &gw,
                proto,
                "/intake/v2/rum/events",
                &[("X-Forwarded-For", &ip)],
                Vec::new(),
            )
            .await;
            sent += 1;
            if r.status != 202 {
                break r;
            }
            assert!(
                sent < 20,
                "{proto:?}: never rate limited: the forwarded addresses were believed"
            );
        };
        assert_eq!(refused.status, 429, "{proto:?}: {}", refused.body);
        assert!(
            sent <= 5,
            "{proto:?}: the burst of 3 is shared: refused after {sent}"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn evicted_rate_limit_buckets_are_reused_not_refilled() {
    // One bucket for all addresses (ip_limit 1): a new address inherits the spent bucket. A
    // gateway per protocol: the rate limit is the state under test.
    for proto in Proto::EVERY {
        let gw = Gateway::start(&format!(
            "[gateway]\ntrusted_proxies = [\"127.0.0.1\"]\n{}",
            anonymous_policy("[auth.anonymous.rate_limit]\nevent_limit = 1\nip_limit = 1\n")
        ))
        .await;
        let mut sent = 0;
        loop {
            let r = post(
                &gw,
                proto,
                "/intake/v2/rum/events",
                &[("X-Forwarded-For", "192.0.2.1")],
                Vec::new(),
            )
            .await;
            sent += 1;
            if r.status == 429 {
                break;
            }
            assert_eq!(r.status, 202, "{proto:?}: {}", r.body);
            assert!(sent < 20, "{proto:?}: never rate limited");
        }
        let r = post(
            &gw,
            proto,
            "/intake/v2/rum/events",
            &[("X-Forwarded-For", "192.0.2.2")],
            Vec::new(),
        )
        .await;
        assert_eq!(
            r.status, 429,
            "{proto:?}: a fresh address got a fresh bucket"
        );
        gw.stop().await;
    }
}

const CORS: &str = r#"
[gateway.response_headers]
X-Served-By = "apmgate-test"

[rum]
enabled = true
allow_origins = ["https://shop.example.com", "https://*.shop.example.com"]
allow_headers = ["X-Shop-Session"]

[rum.response_headers]
Timing-Allow-Origin = "https://shop.example.com"
"#;

#[tokio::test]
async fn cors_on_rum_routes() {
    let gw = Gateway::start(&format!("{STANDARD_LISTENERS}{CORS}")).await;
    let good = "https://www.shop.example.com";
    for proto in Proto::EVERY {
        for route in [
            "/intake/v2/rum/events",
            "/intake/v3/rum/events",
            "/config/v1/rum/agents",
        ] {
            let what = format!("{proto:?} {route}");
            // Preflight: answered before anything else, 200 and empty.
            let r = call(
                &gw,
                proto,
                http::Method::OPTIONS,
                route,
                &[("Origin", good), ("Access-Control-Request-Method", "POST")],
                None,
            )
            .await;
            assert_eq!(r.status, 200, "{what}");
            assert_eq!(r.body, Value::Null, "{what}");
            assert_eq!(r.header("content-length"), Some("0"), "{what}");
            assert_eq!(
                r.header("access-control-allow-origin"),
                Some(good),
                "{what}"
            );
            assert_eq!(r.header("access-control-max-age"), Some("3600"), "{what}");
            assert_eq!(r.header("vary"), Some("Origin"), "{what}");
            assert_eq!(
                r.header("access-control-allow-methods"),
                Some("POST, OPTIONS"),
                "{what}"
            );
            assert_eq!(
                r.header("access-control-allow-headers"),
                Some("X-Shop-Session, Content-Type, Content-Encoding, Accept"),
                "{what}"
            );
            assert_eq!(
                r.header("access-control-expose-headers"),
                Some("Etag"),
                "{what}"
            );
            assert_eq!(r.header("x-served-by"), Some("apmgate-test"), "{what}");
            assert_eq!(
                r.header("timing-allow-origin"),
                Some("https://shop.example.com"),
                "{what}"
            );

            // A preflight from elsewhere: still 200, without the allowed origin.
            let r = call(
                &gw,
                proto,
                http::Method::OPTIONS,
                route,
                &[("Origin", "https://evil.example.com")],
                None,
            )
            .await;
            assert_eq!(r.status, 200, "{what}");
            assert_eq!(r.header("access-control-allow-origin"), None, "{what}");

            // The request itself.
            let (allowed, expected) = if route.starts_with("/config") {
                (
                    get(
                        &gw,
                        proto,
                        &format!("{route}?service.name=shop"),
                        &[("Origin", good)],
                    )
                    .await,
                    200,
                )
            } else {
                (
                    post(
                        &gw,
                        proto,
                        route,
                        &[("Origin", good)],
                        payload("rum-js", "shop", 1),
                    )
                    .await,
                    202,
                )
            };
            assert_eq!(allowed.status, expected, "{what}: {}", allowed.body);
            assert_eq!(
                allowed.header("access-control-allow-origin"),
                Some(good),
                "{what}"
            );
            assert_eq!(
                allowed.header("x-served-by"),
                Some("apmgate-test"),
                "{what}"
            );
            assert_eq!(
                allowed.header("timing-allow-origin"),
                Some("https://shop.example.com"),
                "{what}"
            );
            assert_eq!(
                allowed.header("x-content-type-options"),
                Some("nosniff"),
                "{what}"
            );

            for origin in [
                "https://evil.example.com",
                "https://shop.example.com.evil.org",
                "",
            ] {
                let headers: Vec<(&str, &str)> = if origin.is_empty() {
                    vec![]
                } else {
                    vec![("Origin", origin)]
                };
                let r = post(&gw, proto, route, &headers, payload("rum-js", "shop", 1)).await;
                assert_eq!(r.status, 403, "{what} from {origin:?}");
                assert_eq!(
                    r.body,
                    json!({"error": format!("forbidden request: origin: '{origin}' is not allowed")}),
                    "{what}"
                );
                assert_eq!(r.header("access-control-allow-origin"), None, "{what}");
            }
        }
        // The backend intake has no CORS and no RUM headers, but the gateway's.
        let r = post(
            &gw,
            proto,
            "/intake/v2/events",
            &[("Origin", "https://evil.example.com")],
            payload("python", "svc", 1),
        )
        .await;
        assert_eq!(r.status, 202);
        assert_eq!(r.header("x-served-by"), Some("apmgate-test"));
        assert_eq!(r.header("timing-allow-origin"), None);
        assert_eq!(r.header("access-control-allow-origin"), None);
        // Unknown paths get none of the APM headers.
        let r = get(&gw, proto, "/nowhere", &[]).await;
        assert_eq!(
            (r.status, &r.body),
            (404, &json!({"error": "404 page not found"}))
        );
        assert_eq!(r.header("x-served-by"), None);
    }
    assert_eq!(
        gw.shared
            .metrics
            .get("apmgate_access_denied_total", &[("reason", "cors")]),
        3 * 3 * Proto::EVERY.len() as u64
    );
    gw.stop().await;
}

#[tokio::test]
async fn cors_default_allows_any_origin_and_none() {
    let gw = Gateway::start(&format!("{STANDARD_LISTENERS}\n[rum]\nenabled = true\n")).await;
    for proto in Proto::EVERY {
        for origin in [Some("https://anything.example"), None] {
            let headers: Vec<(&str, &str)> = origin.iter().map(|o| ("Origin", *o)).collect();
            let r = post(
                &gw,
                proto,
                "/intake/v2/rum/events",
                &headers,
                payload("rum-js", "shop", 1),
            )
            .await;
            assert_eq!(r.status, 202, "{proto:?} {origin:?}");
            assert_eq!(r.header("access-control-allow-origin"), origin, "{proto:?}");
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn refusals_on_rum_routes_keep_the_allowed_origin_so_browsers_can_read_them() {
    // An allowed origin's request refused by authentication: the browser must see the 401.
    let gw = Gateway::start(&with_token(&format!(
        "{CORS}\n[auth.anonymous]\nenabled = false\n"
    )))
    .await;
    let good = "https://shop.example.com";
    for proto in Proto::EVERY {
        let r = post(
            &gw,
            proto,
            "/intake/v2/rum/events",
            &[("Origin", good)],
            payload("rum-js", "shop", 1),
        )
        .await;
        assert_eq!(r.status, 401, "{proto:?}: {}", r.body);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some(good),
            "{proto:?}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn rate_limited_rum_requests_keep_the_allowed_origin() {
    let good = "https://shop.example.com";
    // A gateway per protocol: the rate limit is the state under test.
    for proto in Proto::EVERY {
        let gw = Gateway::start(&with_token(
            r#"
[rum]
enabled = true
allow_origins = ["https://shop.example.com"]

[auth.anonymous]
allow_agent = ["rum-js"]

[auth.anonymous.rate_limit]
event_limit = 1
"#,
        ))
        .await;
        let mut sent = 0;
        let refused = loop {
            let r = post(
                &gw,
                proto,
                "/intake/v2/rum/events",
                &[("Origin", good)],
                Vec::new(),
            )
            .await;
            sent += 1;
            if r.status != 202 {
                break r;
            }
            assert!(sent < 20, "{proto:?}: never rate limited");
        };
        assert_eq!(refused.status, 429, "{proto:?}: {}", refused.body);
        assert_eq!(
            refused.header("access-control-allow-origin"),
            Some(good),
            "{proto:?}"
        );
        gw.stop().await;
    }
}

/// A plaintext listener with only the metrics route, beside the standard ones.
const METRICS_POLICY: &str = r#"
[[listener]]
name = "ops"
bind = "127.0.0.1:0"
routes = ["metrics"]

[role.ops]
privileges = ["monitoring:read"]

[role.agent]
privileges = ["event:write", "config_agent:read"]

[auth.secret_token.ops]
secret = "ops-token"
roles = ["ops"]

[auth.secret_token.agents]
secret = "agent-token"
roles = ["agent"]

[rum]
enabled = true
allow_origins = ["https://shop.example.com"]

[auth.anonymous]
enabled = false

[access]
default = "allow"

[[access.rule]]
name = "no-python"
when = 'agent == "elasticapm-python"'
effect = "deny"
"#;

async fn scrape(gw: &Gateway, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(gw.url("ops", false, "/metrics"));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn metrics_route_needs_monitoring_read_and_counts_requests_and_denials() {
    let gw = Gateway::start(&format!("{STANDARD_LISTENERS}{METRICS_POLICY}")).await;
    let agent = [("Authorization", "Bearer agent-token")];
    // Known traffic: accepted events on every protocol, and one denial of each kind.
    for (proto, n) in [
        (Proto::H1, 3),
        (Proto::H2Tls, 2),
        (Proto::H2c, 1),
        (Proto::H3, 4),
    ] {
        for _ in 0..n {
            let r = post(
                &gw,
                proto,
                "/intake/v2/events",
                &agent,
                payload("nodejs", "svc", 4),
            )
            .await;
            assert_eq!(r.status, 202);
        }
    }
    // One valid and one invalid event.
    let mut mixed = payload("nodejs", "svc", 1);
    mixed.extend_from_slice(b"{\"transaction\": {\"id\": 12}}\n");
    let r = post(&gw, Proto::H1, "/intake/v2/events", &agent, mixed).await;
    assert_eq!(r.status, 400);
    let r = post(
        &gw,
        Proto::H1,
        "/intake/v2/events",
        &[("Authorization", "Bearer wrong")],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = post(&gw, Proto::H1, "/intake/v2/events", &[], vec![]).await;
    assert_eq!(r.status, 401);
    let r = post(
        &gw,
        Proto::H1,
        "/intake/v2/events",
        &[
            ("Authorization", "Bearer agent-token"),
            ("User-Agent", "elasticapm-python/6"),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(
        &gw,
        Proto::H1,
        "/intake/v2/rum/events",
        &[("Origin", "https://evil.example.com")],
        vec![],
    )
    .await;
    assert_eq!(r.status, 403);
    // The metrics route is only where a listener serves it.
    let r = get(
        &gw,
        Proto::H1,
        "/metrics",
        &[("Authorization", "Bearer ops-token")],
    )
    .await;
    assert_eq!(r.status, 404);

    // Without credentials, and without monitoring:read.
    let r = scrape(&gw, None).await;
    assert_eq!(r.status(), 401);
    let r = scrape(&gw, Some("agent-token")).await;
    assert_eq!(r.status(), 403);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"error": "unauthorized: secret token not permitted action \"monitoring:read\""})
    );

    let r = scrape(&gw, Some("ops-token")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    // Well-formed exposition: every sample line is `series value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(v.parse::<f64>().is_ok(), "{line}");
    }
    assert!(text.contains("# TYPE apmgate_requests_total counter"));
    let m = |s: &str| support::metric(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    let requests = |listener: &str, route: &str, protocol: &str, status: u16| {
        m(&format!(
            "apmgate_requests_total{{listener=\"{listener}\",route=\"{route}\",protocol=\"{protocol}\",status=\"{status}\"}}"
        ))
    };
    for (listener, route, protocol, status, count) in [
        ("plain", "intake", "http/1.1", 202, 3),
        ("tls", "intake", "h2", 202, 2),
        ("plain", "intake", "h2c", 202, 1),
        ("tls", "intake", "h3", 202, 4),
        ("plain", "intake", "http/1.1", 400, 1),
        ("plain", "intake", "http/1.1", 401, 2),
        ("plain", "intake", "http/1.1", 403, 1),
        ("plain", "rum_intake", "http/1.1", 403, 1),
        ("plain", "unknown", "http/1.1", 404, 1),
        ("ops", "metrics", "http/1.1", 401, 1),
        ("ops", "metrics", "http/1.1", 403, 1),
    ] {
        assert_eq!(
            requests(listener, route, protocol, status),
            count,
            "{listener} {route} {protocol} {status}"
        );
    }
    assert_eq!(
        m(r#"apmgate_events_accepted_total{route="intake"}"#),
        10 * 4 + 1
    );
    assert_eq!(m(r#"apmgate_events_rejected_total{reason="invalid"}"#), 1);
    assert_eq!(
        m(r#"apmgate_access_denied_total{reason="unauthenticated"}"#),
        3
    );
    assert_eq!(m(r#"apmgate_access_denied_total{reason="rule"}"#), 1);
    assert_eq!(m(r#"apmgate_access_denied_total{reason="cors"}"#), 1);
    assert_eq!(m(r#"apmgate_access_denied_total{reason="privilege"}"#), 1);
    assert!(m(r#"apmgate_bytes_received_total{route="intake"}"#) > 0);
    assert!(m(r#"apmgate_connections_total{listener="tls",transport="tls"}"#) >= 1);
    assert!(m(r#"apmgate_connections_total{listener="tls",transport="quic"}"#) >= 1);
    assert_eq!(m("apmgate_requests_in_flight"), 1, "the scrape itself");
    gw.stop().await;
}

#[tokio::test]
async fn listeners_serve_only_their_routes_and_metrics_can_be_guarded_by_an_allowlist() {
    // No authentication: everyone holds every privilege, so only the rule guards metrics.
    let gw = Gateway::start(
        r#"
[gateway]
trusted_proxies = ["127.0.0.1"]

[[listener]]
name = "public"
bind = "127.0.0.1:0"
protocols = ["http1", "h2c"]
routes = ["root", "rum_intake"]

[[listener]]
name = "ops"
bind = "127.0.0.1:0"
routes = ["metrics"]

[rum]
enabled = true

[allowlist.ops]
cidrs = ["10.0.0.0/8"]

[[access.rule]]
name = "metrics-from-ops-only"
when = 'route == metrics and not source in ops'
effect = "deny"
"#,
    )
    .await;
    let not_found = json!({"error": "404 page not found"});
    for proto in [Proto::H1, Proto::H2c] {
        let http = client(&gw, proto);
        let url = |path: &str| gw.url("public", false, path);
        let r = http
            .post(url("/intake/v2/rum/events"))
            .body(payload("rum-js", "shop", 1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{proto:?}");
        for path in [
            "/intake/v2/events",
            "/config/v1/agents?service.name=x",
            "/metrics",
        ] {
            let r = http
                .get(url(path))
                .header("Accept", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{proto:?} {path}");
            assert_eq!(r.json::<Value>().await.unwrap(), not_found);
        }
    }
    let http = client(&gw, Proto::H1);
    let metrics = |xff: Option<&'static str>| {
        let mut req = http.get(gw.url("ops", false, "/metrics"));
        if let Some(ip) = xff {
            req = req.header("X-Forwarded-For", ip);
        }
        req.send()
    };
    assert_eq!(metrics(Some("10.1.2.3")).await.unwrap().status(), 200);
    for xff in [Some("192.0.2.1"), None] {
        let r = metrics(xff).await.unwrap();
        assert_eq!(r.status(), 403, "{xff:?}");
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"error": "forbidden request: access denied by policy"})
        );
    }
    let r = http.get(gw.url("ops", false, "/")).send().await.unwrap();
    assert_eq!(r.status(), 404, "the ops listener does not serve `/`");
    gw.stop().await;
}

/// Issue 12, item 8: a reload with the same limits keeps every address's bucket and the API
/// key verifications; new limits start afresh.
#[tokio::test]
async fn issue_12_reload_keeps_rate_limit_buckets_and_key_verifications() {
    let key = ApiKey::new("reload-key-id");
    let keys = format!(
        "[role.writer]\nprivileges = [\"event:write\"]\n[auth.api_key.writer]\nid = \"{}\"\nhash = \"{}\"\nroles = [\"writer\"]\n",
        key.id, key.hash
    );
    let limits = |event_limit: u32| {
        format!(
            "[gateway]\ntrusted_proxies = [\"127.0.0.1\"]\n{}\n{keys}",
            anonymous_policy(&format!(
                "[auth.anonymous.rate_limit]\nevent_limit = {event_limit}\nip_limit = 10\n"
            ))
        )
    };
    let mut gw = Gateway::start(&limits(1)).await;
    async fn anonymous(gw: &Gateway) -> u16 {
        let from = [("X-Forwarded-For", "192.0.2.1")];
        post(gw, Proto::H1, "/intake/v2/rum/events", &from, Vec::new())
            .await
            .status
    }
    let metrics = gw.shared.metrics.clone();
    let hashes = |result: &str| metrics.get("apmgate_api_key_hashes_total", &[("result", result)]);
    let with_key = [("Authorization", key.header.as_str())];
    let keyed = post(&gw, Proto::H1, "/intake/v2/events", &with_key, Vec::new()).await;
    assert_eq!(keyed.status, 202, "{}", keyed.body);
    assert_eq!(hashes("valid"), 1);

    // Spend the address's bucket (a token comes back each second), then reload at once.
    let mut sent = 0;
    while anonymous(&gw).await == 202 {
        sent += 1;
        assert!(sent < 20, "never rate limited");
    }
    // The same limits (and another unrelated change): nothing refills, nothing is hashed again.
    gw.reload(&format!(
        "{}\n[[access.rule]]\nname = \"noop\"\nwhen = 'route == metrics'\neffect = \"allow\"\n",
        limits(1)
    ))
    .await;
    assert_eq!(
        anonymous(&gw).await,
        429,
        "a reload refilled a spent bucket"
    );
    let keyed = post(&gw, Proto::H1, "/intake/v2/events", &with_key, Vec::new()).await;
    assert_eq!(keyed.status, 202, "{}", keyed.body);
    assert_eq!(hashes("valid"), 1, "the verification survived the reload");

    // Other limits: the buckets are new.
    gw.reload(&limits(2)).await;
    assert_eq!(anonymous(&gw).await, 202, "new limits, new buckets");
    gw.stop().await;
}

/// Issue 12, item 2: anyone who knows a declared key id can ask for Argon2 work. Hashing runs
/// on a fixed number of threads with a short queue; beyond it, requests are refused at once with
/// 503 and `Retry-After`, and a failed credential is remembered, so a repeat costs nothing.
#[tokio::test]
async fn issue_12_guessing_secrets_for_a_known_key_id_is_bounded() {
    let key = ApiKey::new("attacked-key-id");
    // A read timeout long enough that no guess waiting for a verifier times out on a slow,
    // busy machine (unoptimised Argon2 takes seconds): the refusals counted are the pool's.
    let gw = Gateway::start(&format!(
        "[[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\nlimits = {{ read_timeout = \"30m\" }}\n[role.writer]\nprivileges = [\"event:write\"]\n[auth.api_key.writer]\nid = \"{}\"\nhash = \"{}\"\nroles = [\"writer\"]\n",
        key.id, key.hash
    ))
    .await;
    let hashes = |result: &str| {
        gw.shared
            .metrics
            .get("apmgate_api_key_hashes_total", &[("result", result)])
    };
    let http = reqwest::Client::new();
    let url = gw.url("plain", false, "/intake/v2/events");
    let guesses: Vec<_> = (0..200)
        .map(|i| {
            let http = http.clone();
            let url = url.clone();
            let credential = key.header_with_secret(&format!("guess-{i}"));
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("Authorization", credential)
                    .header("Accept", "application/json")
                    .send()
                    .await
                    .unwrap();
                let retry_after = r.headers().get("retry-after").cloned();
                (r.status().as_u16(), retry_after, r.text().await.unwrap())
            })
        })
        .collect();
    let mut busy = 0;
    for g in guesses {
        let (status, retry_after, body) = g.await.unwrap();
        match status {
            401 => {}
            503 => {
                busy += 1;
                assert_eq!(
                    retry_after.as_ref().map(|v| v.to_str().unwrap()),
                    Some("1"),
                    "{body}"
                );
                assert!(body.contains("service unavailable"), "{body}");
            }
            other => panic!("a guess got {other}: {body}"),
        }
    }
    assert_eq!(hashes("busy"), busy, "every 503 is a refusal without work");
    assert_eq!(hashes("invalid") + busy, 200);
    assert!(
        hashes("invalid") <= 200 - busy,
        "only the guesses that got a verifier were hashed"
    );
    assert!(
        busy > 0,
        "200 guesses at once exceed the verifiers and their queue"
    );

    // A repeated guess is answered from the failures remembered: no second hash.
    let repeat = key.header_with_secret("guess-0");
    let before = hashes("invalid") + hashes("busy");
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = http
            .post(&url)
            .header("Authorization", &repeat)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401]);
    assert!(
        hashes("invalid") + hashes("busy") <= before + 1,
        "hashed at most once more"
    );
    // The right secret still works once the storm has passed.
    let ok = post(
        &gw,
        Proto::H1,
        "/intake/v2/events",
        &[("Authorization", &key.header)],
        Vec::new(),
    )
    .await;
    assert_eq!(ok.status, 202, "{}", ok.body);
    gw.stop().await;
}
