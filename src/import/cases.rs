//! The `[[test]]` cases of an imported policy: the access decisions apm-server.yml implied.

use super::draft::TestCase;
use super::map::Facts;

/// The access decisions the YAML implies, as `[[test]]` cases.
pub(crate) fn cases(facts: &Facts) -> Vec<TestCase> {
    let auth = facts.secret_token || facts.es_api_keys;
    let anonymous = facts.anonymous.unwrap_or(false);
    let intake = "/intake/v2/events";
    let mut cases = Vec::new();
    cases.push(TestCase::new(
        "GET / answers without credentials",
        "GET",
        "/",
        None,
        None,
        "allow",
        200,
    ));
    if !auth {
        cases.push(TestCase::new(
            "intake is open: apm-server.yml configures no authentication",
            "POST",
            intake,
            None,
            None,
            "allow",
            202,
        ));
    } else if anonymous {
        cases.push(TestCase::new(
            "callers without credentials are anonymous (their agent and service are checked per event)",
            "POST",
            intake,
            None,
            None,
            "allow",
            202,
        ));
    } else {
        cases.push(TestCase::new(
            "intake without credentials is refused",
            "POST",
            intake,
            None,
            None,
            "deny",
            401,
        ));
    }
    if facts.secret_token {
        cases.push(TestCase::new(
            "intake with the secret token is accepted",
            "POST",
            intake,
            Some("secret_token:apm-server"),
            None,
            "allow",
            202,
        ));
        cases.push(TestCase::new(
            "agent configuration with the secret token",
            "GET",
            "/config/v1/agents?service.name=checkout",
            Some("secret_token:apm-server"),
            None,
            "allow",
            200,
        ));
    }
    let rum = "/intake/v2/rum/events";
    let identity = if !auth || anonymous {
        None
    } else {
        Some("secret_token:apm-server")
    };
    if facts.rum && (identity.is_none() || facts.secret_token) {
        let origin = facts
            .origins
            .as_ref()
            .and_then(|o| o.iter().find(|o| *o != "*"))
            .map(|o| o.replace('*', "app").replace('?', "a"));
        cases.push(TestCase::new(
            if anonymous {
                "browsers send RUM events anonymously"
            } else {
                "RUM intake is served"
            },
            "POST",
            rum,
            identity,
            origin.clone(),
            "allow",
            202,
        ));
    } else if !facts.rum && (identity.is_none() || facts.secret_token) {
        cases.push(TestCase::new(
            "RUM intake is refused while RUM is off",
            "POST",
            rum,
            identity,
            None,
            "deny",
            403,
        ));
    }
    cases
}
