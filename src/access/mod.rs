//! Access: who is calling, from where, and whether they may do what they ask.
//!
//! One decision procedure serves the runtime, `apmgate explain` and `apmgate test`, so what
//! the tools say is what the gateway does. The order is APM Server's, with the policy's rules
//! added: route, client IP, authentication, access rules (first match), privilege, RUM switch,
//! method. Rules restrict; only roles grant privileges.

pub mod argon2_pool;
pub mod cache;
pub mod client_ip;
pub mod elasticsearch;
pub mod gate;
pub mod identity;
pub mod ratelimit;
pub mod refusal;
pub mod verified;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::policy::Policy;
use crate::policy::compiled::{AccessRule, Effect, IdentityKind, Listener, RouteName};
use crate::policy::expr::RequestView;
use crate::policy::types::Privilege;

use client_ip::ClientIp;
use identity::{Authentication, Identity, PeerCertificate};
pub use refusal::{BatchRefusal, Refusal};
pub use verified::{Verifiers, decide_verified};

/// The route group of a request path, if it is an APM route.
pub fn route_for_path(path: &str) -> Option<RouteName> {
    match path {
        "/" => Some(RouteName::Root),
        "/intake/v2/events" => Some(RouteName::Intake),
        "/intake/v2/rum/events" | "/intake/v3/rum/events" => Some(RouteName::RumIntake),
        "/config/v1/agents" => Some(RouteName::Config),
        "/config/v1/rum/agents" => Some(RouteName::RumConfig),
        "/metrics" => Some(RouteName::Metrics),
        "/v1/traces" | "/v1/metrics" | "/v1/logs" => Some(RouteName::Otlp),
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        | "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        | "/opentelemetry.proto.collector.logs.v1.LogsService/Export" => Some(RouteName::Otlp),
        _ => None,
    }
}

/// The privilege a route needs.
pub fn required_privilege(route: RouteName) -> Option<Privilege> {
    match route {
        RouteName::Root => None,
        RouteName::Intake | RouteName::RumIntake | RouteName::Otlp => Some(Privilege::EventWrite),
        RouteName::Config | RouteName::RumConfig => Some(Privilege::ConfigAgentRead),
        RouteName::Metrics => Some(Privilege::MonitoringRead),
    }
}

/// The agent name of a `User-Agent` value: its first product token (`elasticapm-python/6.22`
/// gives `elasticapm-python`).
pub fn agent_from_user_agent(ua: &str) -> Option<&str> {
    let token = ua.split_whitespace().next()?;
    let name = token.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// What the decision needs to know of a request.
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    /// Listener it arrived on.
    pub listener: &'a Listener,
    /// Method.
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Socket peer.
    pub peer: SocketAddr,
    /// The request's headers, as received (read in place, never copied).
    pub headers: &'a http::HeaderMap,
    /// Client certificate, if one was presented and verified.
    pub client_cert: Option<&'a PeerCertificate>,
}

impl AccessRequest<'_> {
    /// Every value of a header that is text (names are case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The first value of a header that is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(name)
            .iter()
            .find_map(|v| v.to_str().ok())
    }
}

/// A header map from (name, value) pairs, for requests described in text (policy tests,
/// `apmgate explain`); a pair that is not valid HTTP is an error naming it.
pub fn header_map(pairs: &[(String, String)]) -> Result<http::HeaderMap, String> {
    let mut map = http::HeaderMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        let name = http::HeaderName::try_from(k.as_str())
            .map_err(|_| format!("`{k}` is not a valid header name"))?;
        let value = http::HeaderValue::try_from(v.as_str())
            .map_err(|_| format!("the value of header `{k}` is not valid in HTTP"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// The outcome of a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Passed on to the route's handler.
    Allow {
        /// Whether `GET /` answers with its body (authenticated, or no auth configured).
        full_root_body: bool,
        /// On intake routes, a privilege the caller lacks: as APM Server, it is checked per
        /// batch, so an empty stream is accepted and any event refuses the stream
        /// (`gate::RefusingGate`).
        events_refused: Option<BatchRefusal>,
    },
    /// Refused here.
    Deny(Refusal),
    /// Elasticsearch must verify the API key before the rest can be decided.
    NeedsElasticsearch {
        /// Key id.
        id: String,
    },
}

/// A decision and how it was reached.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Client address.
    pub client_ip: ClientIp,
    /// Route group.
    pub route: Option<RouteName>,
    /// Identity, once authenticated.
    pub identity: Option<Identity>,
    /// How many rules were tried, in order; every one before the last did not match.
    pub rules_tried: usize,
    /// The rule that decided, if any (the last one tried).
    pub deciding_rule: Option<Arc<str>>,
    /// The access effect (rules or default).
    pub effect: Option<Effect>,
    /// The outcome.
    pub outcome: Outcome,
}

impl Decision {
    /// The rules tried, in order, with whether each matched (only the last can have).
    pub fn trace<'p>(
        &self,
        policy: &'p Policy,
    ) -> impl Iterator<Item = (&'p AccessRule, bool)> + 'p {
        let tried = self.rules_tried;
        let decided = self.deciding_rule.is_some();
        policy
            .access
            .rules
            .iter()
            .take(tried)
            .enumerate()
            .map(move |(i, r)| (r, decided && i + 1 == tried))
    }
}

/// Decides a request. `assumed` replaces authentication (policy tests that name an identity);
/// `verify` checks an API key secret against its hash, `None` when it cannot now (the runtime
/// answers from its cache, filled by [`decide_verified`]; the tools hash).
pub fn decide(
    policy: &Policy,
    request: &AccessRequest<'_>,
    assumed: Option<Identity>,
    verify: &dyn Fn(&str, &str) -> Option<bool>,
) -> Decision {
    let client_ip = client_ip::client_ip(
        request.peer,
        |n| request.header_values(n),
        &policy.gateway.trusted_proxies,
        policy.gateway.trusted_proxy_header,
    );
    let route = route_for_path(request.path).filter(|r| request.listener.serves(*r));
    let mut decision = Decision {
        client_ip,
        route,
        identity: None,
        rules_tried: 0,
        deciding_rule: None,
        effect: None,
        outcome: Outcome::Deny(Refusal::NotFound),
    };
    let Some(route) = route else { return decision };
    let is_root = route == RouteName::Root;

    let authentication = match assumed {
        Some(identity) => Ok(Authentication::Identified(identity)),
        None => identity::parse_authorization(request.header("authorization"))
            .and_then(|c| identity::authenticate(policy, &c, request.client_cert, verify)),
    };
    let (identity, authenticated) = match authentication {
        Ok(Authentication::Identified(identity)) => {
            let full = identity.kind != IdentityKind::Anonymous;
            (identity, full)
        }
        Ok(Authentication::NeedsElasticsearch { id }) => {
            decision.outcome = Outcome::NeedsElasticsearch { id };
            return decision;
        }
        // `GET /` never refuses for want of credentials: it answers without its body.
        Err(_) | Ok(Authentication::Unverified) if is_root => (
            Identity {
                kind: IdentityKind::Anonymous,
                name: None,
                roles: Vec::new().into(),
                privileges: Default::default(),
            },
            false,
        ),
        Ok(Authentication::Unverified) => {
            decision.outcome = Outcome::Deny(Refusal::VerificationBusy);
            return decision;
        }
        Err(e) => {
            decision.outcome = Outcome::Deny(Refusal::Unauthenticated(e));
            return decision;
        }
    };

    let user_agent = request.header("user-agent");
    let view = RequestView {
        listener: &request.listener.name,
        route: Some(route),
        method: request.method,
        source: client_ip.ip,
        identity: identity.kind,
        identity_name: identity.name.as_deref(),
        roles: &identity.roles,
        agent: user_agent.and_then(agent_from_user_agent),
        client_cert_subject: request.client_cert.map(|c| c.subject.as_str()),
    };
    let mut effect = policy.access.default;
    for rule in &policy.access.rules {
        let matched = rule.when.eval(&view);
        decision.rules_tried += 1;
        if matched {
            effect = rule.effect;
            decision.deciding_rule = Some(rule.name.clone());
            break;
        }
    }
    decision.effect = Some(effect);
    let privileges = identity.privileges;
    let kind = identity.kind;
    decision.identity = Some(identity);
    if effect == Effect::Deny {
        decision.outcome = Outcome::Deny(Refusal::DeniedByRule(decision.deciding_rule.clone()));
        return decision;
    }
    let who = match kind {
        IdentityKind::ApiKey | IdentityKind::ElasticsearchApiKey => "API Key",
        IdentityKind::Anonymous => "anonymous access",
        IdentityKind::ClientCert => "client certificate",
        IdentityKind::SecretToken => "secret token",
        IdentityKind::None => "caller",
    };
    let intake = matches!(route, RouteName::Intake | RouteName::RumIntake);
    let mut events_refused = None;
    if let Some(privilege) = required_privilege(route) {
        if !privileges.contains(privilege) {
            let refusal = BatchRefusal { privilege, who };
            if intake {
                events_refused = Some(refusal);
            } else {
                decision.outcome = Outcome::Deny(Refusal::MissingPrivilege(refusal));
                return decision;
            }
        }
    }
    let rum_route = matches!(route, RouteName::RumIntake | RouteName::RumConfig);
    if rum_route && !policy.rum.enabled {
        decision.outcome = Outcome::Deny(Refusal::RumDisabled);
        return decision;
    }
    let method = request.method;
    let method_ok = match route {
        RouteName::Root => method == "GET" || method == "HEAD",
        RouteName::Intake | RouteName::RumIntake | RouteName::Otlp => method == "POST",
        RouteName::Config | RouteName::RumConfig => method == "GET" || method == "POST",
        RouteName::Metrics => method == "GET",
    };
    if !method_ok {
        decision.outcome = Outcome::Deny(Refusal::MethodNotAllowed {
            route,
            method: method.to_string(),
            anonymous: kind == IdentityKind::Anonymous,
        });
        return decision;
    }
    decision.outcome = Outcome::Allow {
        full_root_body: authenticated || !policy.auth.is_configured(),
        events_refused,
    };
    decision
}

/// The identity a policy test names, without its credential.
pub fn assumed_identity(policy: &Policy, kind: IdentityKind, name: &str) -> Option<Identity> {
    let auth = &policy.auth;
    let (roles, privileges) = match kind {
        IdentityKind::SecretToken => auth
            .secret_tokens
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t.roles.clone(), t.privileges))?,
        IdentityKind::ApiKey => auth
            .api_keys
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t.roles.clone(), t.privileges))?,
        IdentityKind::ClientCert => auth
            .client_certs
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t.roles.clone(), t.privileges))?,
        _ => return None,
    };
    Some(Identity {
        kind,
        name: Some(name.to_string()),
        roles,
        privileges,
    })
}

/// The anonymous identity, when anonymous access is on.
pub fn anonymous_identity(policy: &Policy) -> Option<Identity> {
    policy.auth.anonymous.as_ref().map(|a| Identity {
        kind: IdentityKind::Anonymous,
        name: None,
        roles: a.roles.clone(),
        privileges: a.privileges,
    })
}
