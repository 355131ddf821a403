//! API keys verified by Elasticsearch as APM Server does it: `_security/user/_has_privileges`
//! sent with the caller's own credential, asking for the `apm` application's `event:write`,
//! `config_agent:read` and `sourcemap:write` on resource `-` (all three at once, so one answer
//! serves every route). APM Server sends it as GET with a body; this sends POST, which
//! Elasticsearch takes alike and which proxies and strict servers do not mishandle.
//!
//! A key is valid when Elasticsearch grants any of the three; the route's privilege is then
//! checked by the access decision like any other identity's (403 `unauthorized: API Key not
//! permitted action "event:write"`). Elasticsearch's 401 makes it invalid (401). Verdicts,
//! valid and invalid, are cached for the TTL in a bounded LRU keyed on a SHA-256 of the whole
//! credential (APM Server keys on the id alone and refuses new keys with 503 when its cache is
//! full; this one evicts). Concurrent requests with the same uncached credential share one
//! question to Elasticsearch. Only when Elasticsearch cannot answer is the caller told 503.
//!
//! The credential is never logged, cached in clear or put in an error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http::header::{HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::cache::VerificationCache;
use crate::elasticsearch::transport::{Credentials, Transport, TransportError};
use crate::policy::compiled::{EsApiKeySettings, EsOutputSettings};
use crate::policy::types::{Privilege, PrivilegeSet};
use crate::telemetry::{Counter, Metrics};

/// The request body APM Server sends.
pub const HAS_PRIVILEGES_BODY: &str = r#"{"application":[{"application":"apm","privileges":["config_agent:read","event:write","sourcemap:write"],"resources":["-"]}]}"#;

/// What Elasticsearch said of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated, with the privileges granted.
    Valid(PrivilegeSet),
    /// Unknown, expired, or granted none of the three privileges.
    Invalid,
}

/// Elasticsearch could not answer (the caller gets 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Elasticsearch cannot verify API keys: {0}")]
pub struct Unavailable(pub String);

type Flight = Arc<OnceCell<Result<Verdict, Unavailable>>>;

/// Verifies API keys with Elasticsearch.
pub struct EsKeyVerifier {
    transport: Transport,
    cache: VerificationCache<Verdict>,
    in_flight: Mutex<HashMap<[u8; 32], Flight>>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl EsKeyVerifier {
    /// A verifier towards the output's cluster (its hosts, path, TLS and headers, never its
    /// credentials).
    pub fn new(
        output: &EsOutputSettings,
        keys: &EsApiKeySettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, TransportError> {
        Ok(Self {
            transport: Transport::new(output, Credentials::PerRequest, 16)?,
            cache: VerificationCache::new(keys.cache_size, keys.cache_ttl),
            in_flight: Mutex::new(HashMap::new()),
            // Connect within `timeout`, and as long again for the answer.
            timeout: output.timeout.saturating_mul(2),
            metrics,
        })
    }

    /// The client verifications go through (a reload points it at the output's new hosts).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Verifies the token of an `Authorization: ApiKey <token>` header.
    pub async fn verify(&self, token: &str) -> Result<Verdict, Unavailable> {
        let key = VerificationCache::<Verdict>::key(&format!("elasticsearch\u{0}{token}"));
        if let Some(v) = self.cache.get(&key) {
            self.count("cached");
            return Ok(v);
        }
        let flight = {
            let mut m = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(key).or_default().clone()
        };
        let result = flight.get_or_init(|| self.ask(token)).await.clone();
        if let Ok(v) = &result {
            self.cache.put(key, *v);
        }
        {
            let mut m = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if m.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                m.remove(&key);
            }
        }
        result
    }

    fn count(&self, result: &str) {
        self.metrics
            .add(Counter::ApiKeyVerificationsTotal, &[("result", result)], 1);
    }

    async fn ask(&self, token: &str) -> Result<Verdict, Unavailable> {
        let mut auth = HeaderValue::try_from(format!("ApiKey {token}"))
            .map_err(|_| Unavailable("the credential cannot be sent".into()))?;
        auth.set_sensitive(true);
        let headers = [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        let send = self.transport.send(
            Method::POST,
            "/_security/user/_has_privileges",
            Bytes::from_static(HAS_PRIVILEGES_BODY.as_bytes()),
            &headers as &[(HeaderName, HeaderValue)],
            Some(&auth),
        );
        let r = match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.count("unavailable");
                tracing::warn!(error = %e, "cannot verify an API key with Elasticsearch");
                return Err(Unavailable(e.to_string()));
            }
            Err(_) => {
                self.count("unavailable");
                tracing::warn!("Elasticsearch did not answer an API key verification in time");
                return Err(Unavailable("no answer in time".into()));
            }
        };
        match r.status {
            200 => {
                let body: Value = serde_json::from_slice(&r.body).map_err(|e| {
                    self.count("unavailable");
                    Unavailable(format!("unreadable _has_privileges answer: {e}"))
                })?;
                let granted = &body["application"]["apm"]["-"];
                let privileges: PrivilegeSet = [
                    Privilege::EventWrite,
                    Privilege::ConfigAgentRead,
                    Privilege::SourcemapWrite,
                ]
                .into_iter()
                .filter(|p| granted[p.as_str()].as_bool() == Some(true))
                .collect();
                if privileges == PrivilegeSet::NONE {
                    self.count("invalid");
                    Ok(Verdict::Invalid)
                } else {
                    self.count("valid");
                    Ok(Verdict::Valid(privileges))
                }
            }
            401 => {
                self.count("invalid");
                Ok(Verdict::Invalid)
            }
            status => {
                self.count("unavailable");
                tracing::warn!(status, host = %r.host, "Elasticsearch could not verify an API key");
                Err(Unavailable(format!("Elasticsearch answered {status}")))
            }
        }
    }
}
