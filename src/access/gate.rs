//! The checks access makes on each batch of an intake stream, after the request was allowed:
//! APM Server authorizes per batch, not per request.
//!
//! The intake asks its [`BatchGate`] before publishing each batch; the router picks the gate
//! from the decision with [`gate_for`]: callers lacking `event:write` get a gate that refuses
//! every batch (an empty stream is still accepted, as in APM Server), anonymous callers one that
//! checks `allow_agent`/`allow_service` per event and takes rate-limit tokens per event, and
//! everyone else the open gate.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::intake::{BatchGate, OpenGate};
use crate::model::Document;
use crate::policy::compiled::AnonymousSettings;

use super::ratelimit::RateLimiter;
use super::refusal::BatchRefusal;

/// A caller without `event:write`: every batch is refused.
pub struct RefusingGate(pub BatchRefusal);

impl BatchGate for RefusingGate {
    fn authorize(&self, _: &Document) -> Result<(), String> {
        Err(self.0.reason())
    }

    fn acquire(&self, _: usize) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(std::future::ready(true))
    }
}

/// An anonymous caller: `allow_agent` / `allow_service` per event, the per-IP rate limit per
/// batch.
pub struct AnonymousGate<'a> {
    /// The anonymous settings of the policy in force.
    pub settings: &'a AnonymousSettings,
    /// The limiter, when the policy has anonymous access.
    pub limiter: Option<&'a RateLimiter>,
    /// The caller's address.
    pub ip: IpAddr,
}

impl BatchGate for AnonymousGate<'_> {
    fn authorize(&self, document: &Document) -> Result<(), String> {
        let agent = document.agent_name.as_deref().unwrap_or("");
        let allow_agent = &self.settings.allow_agent;
        if !allow_agent.is_empty() && !allow_agent.iter().any(|a| a == agent) {
            return Err(format!(
                "anonymous access not permitted for agent \"{agent}\""
            ));
        }
        let service = document.service_name.as_deref().unwrap_or("");
        let allow_service = &self.settings.allow_service;
        if !allow_service.is_empty() && !allow_service.iter().any(|s| s == service) {
            return Err(format!(
                "anonymous access not permitted for service \"{service}\""
            ));
        }
        Ok(())
    }

    fn acquire(&self, events: usize) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            match self.limiter {
                Some(rl) => rl.acquire(self.ip, events).await,
                None => true,
            }
        })
    }
}

/// The gate of an allowed intake request.
pub enum Gate<'a> {
    /// Every batch refused.
    Refusing(RefusingGate),
    /// Anonymous checks and limits.
    Anonymous(AnonymousGate<'a>),
    /// Nothing to check.
    Open,
}

impl Gate<'_> {
    /// As the intake takes it.
    pub fn as_batch_gate(&self) -> &dyn BatchGate {
        match self {
            Gate::Refusing(g) => g,
            Gate::Anonymous(g) => g,
            Gate::Open => &OpenGate,
        }
    }

    /// Whether it refuses every batch (so a 403 from the intake is a missing privilege).
    pub fn refuses_all(&self) -> bool {
        matches!(self, Gate::Refusing(_))
    }
}

/// Picks the gate for an allowed intake request.
pub fn gate_for<'a>(
    events_refused: Option<BatchRefusal>,
    anonymous: Option<&'a AnonymousSettings>,
    limiter: Option<&'a RateLimiter>,
    ip: IpAddr,
) -> Gate<'a> {
    match (events_refused, anonymous) {
        (Some(refusal), _) => Gate::Refusing(RefusingGate(refusal)),
        (None, Some(settings)) => Gate::Anonymous(AnonymousGate {
            settings,
            limiter,
            ip,
        }),
        (None, None) => Gate::Open,
    }
}
