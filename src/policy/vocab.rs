//! The policy's vocabulary: the enums and small types a compiled policy is made of and the
//! runtime matches on (protocols, routes, identity kinds, rule effects, TLS choices, allowlists).
//!
//! They belong to the compiled side: the file format ([`super::ast`]) reads its values into
//! them, and [`super::compiled`] re-exports them, so that listeners, TLS, access and the
//! Elasticsearch client never import the AST. This module must not depend on the AST, the
//! compiler or expressions: it is the bottom of `policy`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::types::IpSet;

/// A protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1, plaintext or over TLS.
    Http1,
    /// HTTP/2 over TLS, chosen by ALPN.
    Http2,
    /// HTTP/2 over plaintext TCP, by prior knowledge.
    H2c,
    /// HTTP/3 over QUIC (UDP); needs TLS with the rustls backend.
    Http3,
}

/// A group of routes a listener can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteName {
    /// `GET|HEAD /`: server information.
    Root,
    /// `/intake/v2/events`: backend agents.
    Intake,
    /// `/intake/v2/rum/events` and `/intake/v3/rum/events`: browser agents.
    RumIntake,
    /// `/config/v1/agents`: central configuration for backend agents.
    Config,
    /// `/config/v1/rum/agents`: central configuration for browser agents.
    RumConfig,
    /// `/metrics`: Prometheus metrics (needs `monitoring:read`).
    Metrics,
    /// `/v1/traces`, `/v1/metrics`, `/v1/logs`: OpenTelemetry's OTLP/HTTP (needs
    /// `event:write`).
    Otlp,
}

/// Client certificate authentication of a server TLS profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Client certificates are not requested.
    None,
    /// Verified if presented.
    Optional,
    /// Required and verified.
    Required,
}

/// TLS implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsBackend {
    /// rustls (default).
    Rustls,
    /// The platform TLS library (OpenSSL on Linux).
    NativeTls,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Let the request through to the privilege check.
    Allow,
    /// Refuse it with 403.
    Deny,
}

/// Certificate verification of Elasticsearch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMode {
    /// Chain and hostname (default).
    Full,
    /// Chain and hostname; the certificate must carry a SAN.
    Strict,
    /// Chain only.
    Certificate,
    /// No verification (for tests only).
    None,
}

/// Route names as written in rule expressions.
pub const ROUTE_NAMES: [(&str, RouteName); 7] = [
    ("root", RouteName::Root),
    ("intake", RouteName::Intake),
    ("rum_intake", RouteName::RumIntake),
    ("config", RouteName::Config),
    ("rum_config", RouteName::RumConfig),
    ("metrics", RouteName::Metrics),
    ("otlp", RouteName::Otlp),
];

/// Kinds of identity a request can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// No authentication is configured: everyone may do everything (APM Server's `none`).
    None,
    /// A secret token.
    SecretToken,
    /// An API key declared in the policy.
    ApiKey,
    /// An API key verified by Elasticsearch.
    ElasticsearchApiKey,
    /// A client certificate.
    ClientCert,
    /// Anonymous.
    Anonymous,
}

impl IdentityKind {
    /// Every kind with its name in expressions.
    pub const ALL: [(&'static str, IdentityKind); 6] = [
        ("none", IdentityKind::None),
        ("secret_token", IdentityKind::SecretToken),
        ("api_key", IdentityKind::ApiKey),
        ("elasticsearch_api_key", IdentityKind::ElasticsearchApiKey),
        ("client_cert", IdentityKind::ClientCert),
        ("anonymous", IdentityKind::Anonymous),
    ];

    /// Name in expressions.
    pub fn name(self) -> &'static str {
        IdentityKind::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }
}

/// A compiled allowlist.
#[derive(Debug, Clone)]
pub struct Allowlist {
    /// Name.
    pub name: String,
    /// Addresses.
    pub set: IpSet,
}

/// The forwarding header the trusted proxies set (`gateway.trusted_proxy_header`): the only one
/// believed from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyHeader {
    /// `X-Forwarded-For`, walked from the right.
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` elements walked from the right.
    Forwarded,
    /// `X-Real-IP`, one address.
    XRealIp,
}
