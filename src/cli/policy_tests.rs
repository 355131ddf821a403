//! Runs the `[[test]]` cases of a policy through the same decision procedure as the gateway,
//! and reads the status the gateway would answer from the same rendering.

use std::net::SocketAddr;

use apmgate::access::identity::{PeerCertificate, verify_api_key};
use apmgate::access::{
    AccessRequest, Decision, Outcome, anonymous_identity, assumed_identity, decide, header_map,
};
use apmgate::policy::Policy;
use apmgate::policy::compiled::Effect;
use apmgate::policy::compiled::{PolicyTestCase, TestIdentity};
use apmgate::server::respond;

/// The result of one test.
#[derive(Debug, Clone)]
pub(super) struct TestResult {
    /// The test.
    pub case: PolicyTestCase,
    /// What happened.
    pub decision: Decision,
    /// Differences from what was expected; empty when the test passed.
    pub failures: Vec<String>,
}

impl TestResult {
    /// Whether the test passed.
    pub(super) fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Effect and status of a decision.
pub(super) fn summarize(decision: &Decision) -> (Option<Effect>, Option<u16>) {
    match &decision.outcome {
        // Every batch of events will be refused with 403: what any real stream gets.
        Outcome::Allow {
            events_refused: Some(_),
            ..
        } => (Some(Effect::Deny), Some(403)),
        Outcome::Allow { .. } => (
            Some(Effect::Allow),
            Some(respond::allowed_status(decision.route)),
        ),
        Outcome::Deny(refusal) => (Some(Effect::Deny), Some(respond::refusal_answer(refusal).0)),
        Outcome::NeedsElasticsearch { .. } => (None, None),
    }
}

fn effect_name(e: Effect) -> &'static str {
    match e {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

/// Runs every test of the policy.
pub(super) fn run(policy: &Policy) -> Vec<TestResult> {
    policy
        .tests
        .iter()
        .map(|case| run_one(policy, case))
        .collect()
}

fn run_one(policy: &Policy, case: &PolicyTestCase) -> TestResult {
    let Some(listener) = policy.listeners.iter().find(|l| l.name == case.listener) else {
        unreachable!("the compiler resolves test listeners")
    };
    let cert = case.client_cert_subject.as_ref().map(|s| PeerCertificate {
        subject: s.clone(),
        dns_sans: Vec::new(),
    });
    let mut failures = Vec::new();
    // The compiler checked the test's headers; a pair HTTP refuses still fails the test.
    let headers = header_map(&case.headers).unwrap_or_else(|e| {
        failures.push(e);
        http::HeaderMap::new()
    });
    let request = AccessRequest {
        listener,
        method: &case.method,
        path: case.path.split('?').next().unwrap_or(""),
        peer: SocketAddr::new(case.from, 0),
        headers: &headers,
        client_cert: cert.as_ref(),
    };
    let assumed = match &case.identity {
        TestIdentity::FromHeaders => None,
        TestIdentity::Named(kind, name) => assumed_identity(policy, *kind, name),
        TestIdentity::Anonymous => anonymous_identity(policy),
    };
    if case.identity == TestIdentity::Anonymous && assumed.is_none() {
        failures
            .push("the test assumes an anonymous caller, but anonymous access is off".to_string());
    }
    let decision = decide(policy, &request, assumed, &|hash, key| {
        Some(verify_api_key(hash, key))
    });
    let (effect, status) = summarize(&decision);
    match effect {
        None => failures.push(
            "the decision needs Elasticsearch to verify the API key; name the identity instead"
                .to_string(),
        ),
        Some(e) if e != case.expect => failures.push(format!(
            "expected {}, got {}",
            effect_name(case.expect),
            effect_name(e)
        )),
        Some(_) => {}
    }
    if let (Some(want), Some(got)) = (case.status, status) {
        if want != got {
            failures.push(format!("expected status {want}, got {got}"));
        }
    }
    if let Some(want) = &case.rule {
        if decision.deciding_rule.as_deref() != Some(want.as_str()) {
            failures.push(format!(
                "expected rule `{want}` to decide, {}",
                match &decision.deciding_rule {
                    Some(r) => format!("rule `{r}` did"),
                    None => "no rule matched".to_string(),
                }
            ));
        }
    }
    TestResult {
        case: case.clone(),
        decision,
        failures,
    }
}
