//! Why a request is refused: one vocabulary for every step that can say no.
//!
//! Access decisions, the route handlers and the intake return a [`Refusal`]; none of them
//! chooses a status code, a body or a header. `server::respond::refusal` turns a refusal into
//! APM Server's HTTP answer (status, body, `Cache-Control`, `Retry-After`, `Connection: close`,
//! CORS), and `explain` and `apmgate test` read the same rendering; `respond::otlp_refusal` is
//! OTLP/HTTP's rendering of the same reasons (and gRPC statuses will be another). This module must never learn HTTP.

use std::sync::Arc;

use crate::intake::IntakeResult;
use crate::policy::compiled::RouteName;
use crate::policy::types::Privilege;

use super::identity::AuthError;

/// A reason to refuse a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Not an APM route, or not one this listener serves.
    NotFound,
    /// The method is not one the route takes.
    MethodNotAllowed {
        /// The route.
        route: RouteName,
        /// The method as sent.
        method: String,
        /// Whether the caller is anonymous (APM Server names the method to others only).
        anonymous: bool,
    },
    /// No credential where one is needed, or one that is not valid.
    Unauthenticated(AuthError),
    /// An access rule denied it (`None`: no rule matched and the default is `deny`).
    DeniedByRule(Option<Arc<str>>),
    /// The identity lacks the route's privilege.
    MissingPrivilege(BatchRefusal),
    /// RUM is disabled and this is a RUM route.
    RumDisabled,
    /// The `Origin` of a RUM request is not allowed.
    OriginNotAllowed {
        /// The origin as sent.
        origin: String,
    },
    /// The anonymous rate limit of the caller's address is spent.
    RateLimited,
    /// Elasticsearch could not verify the caller's API key (down, slow, or no output).
    ElasticsearchUnavailable,
    /// Too many API key verifications are in progress to start another now.
    VerificationBusy,
    /// The request did not arrive in full within the listener's `read_timeout`.
    Timeout,
    /// An OTLP request in a content type OTLP/HTTP does not define (it takes
    /// `application/x-protobuf` and `application/json`).
    UnsupportedContentType {
        /// The content type as sent.
        content_type: String,
    },
    /// The intake refused all or part of an event stream (invalid or too large events, a
    /// body that does not decode, a full output queue, per-batch permissions and limits):
    /// what it accepted and the errors it reports.
    Intake(IntakeResult),
    /// The configuration query names no service.
    ConfigQueryMissingService {
        /// Whether the caller is anonymous (APM Server words it differently).
        anonymous: bool,
    },
    /// Anonymous configuration for a service not in `allow_service`.
    ConfigServiceNotAllowed {
        /// The service.
        service: String,
    },
    /// Central configuration is read from Elasticsearch and no read has succeeded yet.
    ConfigNotReady,
    /// Central configuration is read from Elasticsearch, no read has succeeded yet, and
    /// Elasticsearch refused the output's credentials.
    ConfigSourceUnauthorized,
    /// A bug: a handler panicked.
    Internal,
}

impl Refusal {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::MethodNotAllowed { .. } => "method",
            Refusal::Unauthenticated(_) => "unauthenticated",
            Refusal::DeniedByRule(Some(_)) => "rule",
            Refusal::DeniedByRule(None) => "default_deny",
            Refusal::MissingPrivilege(_) => "privilege",
            Refusal::RumDisabled => "rum_disabled",
            Refusal::OriginNotAllowed { .. } => "cors",
            Refusal::RateLimited => "rate_limited",
            Refusal::ElasticsearchUnavailable => "elasticsearch_unavailable",
            Refusal::VerificationBusy => "verification_busy",
            Refusal::Timeout => "timeout",
            Refusal::UnsupportedContentType { .. } => "content_type",
            Refusal::Intake(_) => "intake",
            Refusal::ConfigQueryMissingService { .. } => "invalid_query",
            Refusal::ConfigServiceNotAllowed { .. } => "service_not_allowed",
            Refusal::ConfigNotReady => "config_not_ready",
            Refusal::ConfigSourceUnauthorized => "config_unauthorized",
            Refusal::Internal => "internal",
        }
    }
}

/// A privilege the caller lacks, and who lacks it in APM Server's words.
///
/// On intake routes APM Server checks `event:write` per batch, so an empty stream is accepted
/// and any event refuses the stream; on other routes the request is refused at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRefusal {
    /// The privilege missing.
    pub privilege: Privilege,
    /// Who lacks it, in APM Server's words (`API Key`).
    pub who: &'static str,
}

impl BatchRefusal {
    /// The reason, as APM Server words it after `unauthorized: `.
    pub fn reason(&self) -> String {
        format!("{} not permitted action \"{}\"", self.who, self.privilege)
    }
}
