//! The access decision procedure, through the library: the same code the gateway, `explain`
//! and `apmgate test` use.

use std::net::SocketAddr;

use apmgate::access::identity::{PeerCertificate, verify_api_key};
use apmgate::access::{AccessRequest, Outcome, Refusal, decide};
use apmgate::policy::compiled::IdentityKind;
use apmgate::policy::{CompileOptions, Policy, SourceFile, compile};
use apmgate::server::respond::{self, RUM_DISABLED};
use serde_json::json;

fn policy(text: &str) -> Policy {
    compiled(text, true)
}

/// Compiles without the environment step (no certificate files needed).
fn compiled(text: &str, environment: bool) -> Policy {
    let c = compile(
        &SourceFile::new("test.toml", text),
        CompileOptions { environment },
    );
    assert_eq!(c.errors(), 0, "{:#?}", c.diagnostics);
    c.policy.expect("valid policy")
}

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    from: &'a str,
    headers: Vec<(String, String)>,
    cert: Option<PeerCertificate>,
    listener: &'a str,
}

fn req(method: &'static str, path: &'static str) -> Req<'static> {
    Req {
        method,
        path,
        from: "192.0.2.1:5000",
        headers: Vec::new(),
        cert: None,
        listener: "l",
    }
}

impl Req<'_> {
    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    fn decide(&self, p: &Policy) -> apmgate::access::Decision {
        let listener = p
            .listeners
            .iter()
            .find(|l| l.name == self.listener)
            .expect("listener");
        let peer: SocketAddr = self.from.parse().unwrap();
        let r = AccessRequest {
            listener,
            method: self.method,
            path: self.path,
            peer,
            headers: &apmgate::access::header_map(&self.headers).expect("valid test headers"),
            client_cert: self.cert.as_ref(),
        };
        decide(p, &r, None, &|hash, key| Some(verify_api_key(hash, key)))
    }
}

fn status(d: &apmgate::access::Decision) -> u16 {
    match &d.outcome {
        Outcome::Allow { .. } => respond::allowed_status(d.route),
        Outcome::Deny(refusal) => respond::refusal_answer(refusal).0,
        Outcome::NeedsElasticsearch { .. } => 0,
    }
}

fn body(d: &apmgate::access::Decision) -> serde_json::Value {
    match &d.outcome {
        Outcome::Deny(refusal) => respond::refusal_answer(refusal).1,
        other => panic!("not a denial: {other:?}"),
    }
}

const LISTENER: &str = "[[listener]]\nname = \"l\"\nbind = \"127.0.0.1:8200\"\nroutes = [\"root\", \"intake\", \"rum_intake\", \"config\", \"metrics\"]\n";

#[test]
fn without_auth_everyone_may_do_everything() {
    let p = policy(LISTENER);
    let d = req("POST", "/intake/v2/events").decide(&p);
    assert_eq!(status(&d), 202);
    assert_eq!(d.identity.unwrap().kind, IdentityKind::None);
    assert_eq!(status(&req("GET", "/metrics").decide(&p)), 200);
    let d = req("GET", "/").decide(&p);
    assert_eq!(status(&d), 200);
    assert_eq!(
        d.outcome,
        Outcome::Allow {
            full_root_body: true,
            events_refused: None,
        }
    );
}

#[test]
fn unknown_and_unserved_routes_are_404() {
    let p = policy(LISTENER);
    let d = req("POST", "/intake/v1/transactions").decide(&p);
    assert_eq!(
        (status(&d), body(&d)),
        (404, json!({"error": "404 page not found"}))
    );
    let d = req("GET", "/config/v1/rum/agents").decide(&p);
    assert_eq!(status(&d), 404, "rum_config is not served by this listener");
}

#[test]
fn secret_tokens_follow_apm_server_messages() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef").unwrap();
    let p = policy(&format!(
        "{LISTENER}[auth.secret_token.ci]\nsecret = \"file:{}\"\n",
        token.display()
    ));
    let ok = req("POST", "/intake/v2/events")
        .header("Authorization", "Bearer 0123456789abcdef0123456789abcdef")
        .decide(&p);
    assert_eq!(status(&ok), 202);
    assert_eq!(ok.identity.unwrap().name.as_deref(), Some("ci"));
    let wrong = req("POST", "/intake/v2/events")
        .header("Authorization", "Bearer nope")
        .decide(&p);
    assert_eq!(
        (status(&wrong), body(&wrong)),
        (401, json!({"error": "authentication failed"}))
    );
    let missing = req("POST", "/intake/v2/events").decide(&p);
    assert_eq!(status(&missing), 401);
    assert!(body(&missing)["error"].as_str().unwrap().starts_with(
        "authentication failed: missing or improperly formatted Authorization header"
    ));
    let scheme = req("POST", "/intake/v2/events")
        .header("Authorization", "Basic abc")
        .decide(&p);
    assert!(
        body(&scheme)["error"]
            .as_str()
            .unwrap()
            .starts_with("authentication failed: unknown Authentication header Basic:")
    );
    // GET / never refuses for want of credentials; it withholds its body.
    let root = req("GET", "/").decide(&p);
    assert_eq!(status(&root), 200);
    assert_eq!(
        root.outcome,
        Outcome::Allow {
            full_root_body: false,
            events_refused: None,
        }
    );
    let root = req("HEAD", "/")
        .header("Authorization", "Bearer 0123456789abcdef0123456789abcdef")
        .decide(&p);
    assert_eq!(status(&root), 200);
    assert_eq!(
        root.outcome,
        Outcome::Allow {
            full_root_body: true,
            events_refused: None,
        }
    );
    // Authentication comes before the method check (APM Server's Authorized approval).
    let get = req("GET", "/intake/v2/events")
        .header("Authorization", "Bearer 0123456789abcdef0123456789abcdef")
        .decide(&p);
    assert_eq!(status(&get), 400);
    assert_eq!(
        body(&get),
        json!({"accepted": 0, "errors": [{"message": "only POST requests are supported"}]})
    );
    let post_root = req("POST", "/").decide(&p);
    assert_eq!(status(&post_root), 405);
}

#[test]
fn rum_kill_switch_answers_after_authentication() {
    let p = policy(LISTENER);
    let d = req("POST", "/intake/v3/rum/events").decide(&p);
    assert_eq!(
        (status(&d), body(&d)),
        (403, json!({ "error": RUM_DISABLED }))
    );
    let p = policy(&format!(
        "{LISTENER}[rum]\nenabled = true\nallow_origins = [\"https://x.example\"]\n"
    ));
    assert_eq!(
        status(&req("POST", "/intake/v3/rum/events").decide(&p)),
        202
    );
}

#[test]
fn anonymous_access_is_switched_on_with_rum_as_apm_server_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("token"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let token = dir.path().join("token");
    let base = format!(
        "{LISTENER}[auth.secret_token.ci]\nsecret = \"file:{}\"\n",
        token.display()
    );
    let p = policy(&format!(
        "{base}[rum]\nenabled = true\nallow_origins = [\"https://x.example\"]\n"
    ));
    let d = req("POST", "/intake/v2/rum/events").decide(&p);
    assert_eq!(status(&d), 202);
    assert_eq!(d.identity.as_ref().unwrap().kind, IdentityKind::Anonymous);
    // Anonymous callers get event:write and config_agent:read, nothing else.
    let d = req("GET", "/metrics").decide(&p);
    assert_eq!(status(&d), 403);
    assert_eq!(
        body(&d),
        json!({"error": "unauthorized: anonymous access not permitted action \"monitoring:read\""})
    );
    // Without RUM, no anonymous access: 401.
    let p = policy(&base);
    assert_eq!(status(&req("POST", "/intake/v2/events").decide(&p)), 401);
    // The file secret was read with its trailing newline removed.
    let d = req("POST", "/intake/v2/events")
        .header("Authorization", "Bearer 0123456789abcdef0123456789abcdef")
        .decide(&p);
    assert_eq!(status(&d), 202);
}

#[test]
fn first_matching_rule_decides_and_default_applies_otherwise() {
    let p = policy(&format!(
        r#"{LISTENER}
[allowlist.office]
cidrs = ["192.0.2.0/24"]
except = ["192.0.2.66"]

[access]
default = "deny"

[[access.rule]]
name = "office-may-read-config"
when = 'route == config and source in office'
effect = "allow"

[[access.rule]]
name = "python-agents"
when = 'route == intake and agent matches "elasticapm-*"'
effect = "allow"
"#
    ));
    let d = req("GET", "/config/v1/agents").decide(&p);
    assert_eq!(status(&d), 200);
    assert_eq!(d.deciding_rule.as_deref(), Some("office-may-read-config"));
    assert_eq!(d.rules_tried, 1, "later rules are not tried");

    let mut outside = req("GET", "/config/v1/agents");
    outside.from = "192.0.2.66:1";
    let d = outside.decide(&p);
    assert_eq!(status(&d), 403);
    assert_eq!(d.outcome, Outcome::Deny(Refusal::DeniedByRule(None)));
    assert_eq!(
        body(&d),
        json!({"error": "forbidden request: access denied by policy"})
    );
    assert_eq!(
        d.trace(&p)
            .map(|(r, matched)| (&*r.name, matched))
            .collect::<Vec<_>>(),
        vec![("office-may-read-config", false), ("python-agents", false)]
    );

    let d = req("POST", "/intake/v2/events")
        .header("User-Agent", "elasticapm-python/6.22.0")
        .decide(&p);
    assert_eq!(status(&d), 202);
    let d = req("POST", "/intake/v2/events")
        .header("User-Agent", "apm-agent-nodejs/4.7.0")
        .decide(&p);
    assert_eq!(status(&d), 403);
}

#[test]
fn roles_grant_privileges_and_rules_can_test_them() {
    let p = compiled(
        &format!(
            r#"{LISTENER}
[role.agent]
privileges = ["event:write"]
[role.ops]
privileges = ["monitoring:read"]
include = ["agent"]

[auth.client_cert.agents]
subject = "CN=*.agents.local,*"
roles = ["agent"]
[auth.client_cert.ops]
san = "ops.example.com"
roles = ["ops"]

[tls.t]
certificate = "c.pem"
key = "k.pem"
certificate_authorities = ["ca.pem"]

[[listener]]
name = "tls"
bind = "127.0.0.1:8443"
tls = "t"
routes = ["intake", "metrics"]

[[access.rule]]
name = "ops-only-metrics"
when = 'route == metrics and role != ops'
effect = "deny"
"#
        ),
        false,
    );
    let agent = PeerCertificate {
        subject: "CN=a1.agents.local,O=x".into(),
        dns_sans: vec![],
    };
    let ops = PeerCertificate {
        subject: "CN=ops".into(),
        dns_sans: vec!["ops.example.com".into()],
    };
    let mut r = req("POST", "/intake/v2/events");
    r.listener = "tls";
    r.cert = Some(agent.clone());
    assert_eq!(status(&r.decide(&p)), 202);
    let mut m = req("GET", "/metrics");
    m.listener = "tls";
    m.cert = Some(agent);
    let d = m.decide(&p);
    assert_eq!(d.deciding_rule.as_deref(), Some("ops-only-metrics"));
    assert_eq!(status(&d), 403);
    m.cert = Some(ops);
    let d = m.decide(&p);
    assert_eq!(status(&d), 200);
    assert_eq!(&*d.identity.unwrap().roles, &["ops".to_string()]);
    // An unknown certificate with no anonymous access: 401.
    m.cert = Some(PeerCertificate {
        subject: "CN=evil".into(),
        dns_sans: vec![],
    });
    assert_eq!(status(&m.decide(&p)), 401);
}

#[test]
fn expired_api_keys_are_refused() {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    use base64::Engine as _;
    let hash = argon2::Argon2::default()
        .hash_password(b"k3y", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    let text = |expires: &str| {
        format!(
            "{LISTENER}[role.agent]\nprivileges = [\"event:write\"]\n[auth.api_key.a]\nid = \"kid\"\nhash = \"{hash}\"\nroles = [\"agent\"]\nexpires = {expires}\n"
        )
    };
    let cred = base64::engine::general_purpose::STANDARD.encode("kid:k3y");
    let live = compile(
        &SourceFile::new("t.toml", text("2999-01-01T00:00:00Z")),
        CompileOptions::default(),
    )
    .policy
    .unwrap();
    let d = req("POST", "/intake/v2/events")
        .header("Authorization", &format!("ApiKey {cred}"))
        .decide(&live);
    assert_eq!(status(&d), 202);
    let c = compile(
        &SourceFile::new("t.toml", text("2001-01-01T00:00:00Z")),
        CompileOptions::default(),
    );
    assert!(c.diagnostics.iter().any(|d| d.code.as_str() == "W107"));
    let expired = c.policy.unwrap();
    let d = req("POST", "/intake/v2/events")
        .header("Authorization", &format!("ApiKey {cred}"))
        .decide(&expired);
    assert_eq!(
        (status(&d), body(&d)),
        (401, json!({"error": "authentication failed"}))
    );
}
