//! Central agent configuration (`/config/v1/agents`, `/config/v1/rum/agents`) from the policy
//! and, with `[agent_config_source] elasticsearch = true`, from `.apm-agent-configuration`.
//!
//! As APM Server: GET with `service.name`/`service.environment` query parameters or POST with
//! `{"service":{"name","environment"}}`; a missing environment takes the default; values are
//! strings; `Etag` and `If-None-Match` (or `?ifnonematch=`) give 304; `Cache-Control` from the
//! policy. Anonymous callers must pass `allow_service`, and only get `transaction_sample_rate`
//! of entries meant for their agents (entries without `agent_name`, or whose `agent_name`
//! starts with an allowed agent).

use std::collections::BTreeMap;

use http::header::{CACHE_CONTROL, ETAG, HeaderValue};
use http::{Method, Response};

use super::respond::{self, Body};
use super::runtime::{Runtime, Shared};
use crate::access::Refusal;
use crate::agent_config::{self, elasticsearch::Cached};
use crate::telemetry::Counter;

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn with_cache_control(mut r: Response<Body>, value: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::try_from(value) {
        r.headers_mut().insert(CACHE_CONTROL, v);
    }
    r
}

/// Answers a configuration request from the policy's entries and, when the policy reads
/// them, Elasticsearch's; notes the entity tags agents present back as applied.
pub fn handle(
    rt: &Runtime,
    shared: &Shared,
    parts: &http::request::Parts,
    body: Option<&[u8]>,
    anonymous: bool,
    json: bool,
) -> Result<Response<Body>, Refusal> {
    let policy = &rt.policy;
    let query = parts.uri.query().unwrap_or("");
    let (service, mut environment) = if parts.method == Method::POST {
        let v: serde_json::Value = body
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let s = &v["service"];
        (
            s["name"].as_str().map(str::to_string),
            s["environment"].as_str().map(str::to_string),
        )
    } else {
        (
            query_param(query, "service.name"),
            query_param(query, "service.environment"),
        )
    };
    let Some(service) = service.filter(|s| !s.is_empty()) else {
        return Err(Refusal::ConfigQueryMissingService { anonymous });
    };
    if environment.as_deref().is_none_or(str::is_empty) {
        environment = policy.gateway.default_service_environment.clone();
    }
    let anon = policy.auth.anonymous.as_ref().filter(|_| anonymous);
    if let Some(anon) = anon {
        if !anon.allow_service.is_empty() && !anon.allow_service.contains(&service) {
            return Err(Refusal::ConfigServiceNotAllowed { service });
        }
    }
    let count = |source: &str| {
        shared
            .metrics
            .add(Counter::AgentConfigRequestsTotal, &[("source", source)], 1);
    };
    let from_elasticsearch = match (&policy.agent_config_source, &shared.es_agent_config) {
        (Some(_), Some(cache)) => match cache.cached() {
            Cached::Ready(entries) => Some(entries),
            Cached::NotReady => {
                count("not_ready");
                return Err(Refusal::ConfigNotReady);
            }
            Cached::Unauthorized => {
                count("unauthorized");
                return Err(Refusal::ConfigSourceUnauthorized);
            }
        },
        _ => None,
    };
    let entry = agent_config::best(
        &policy.agent_configs,
        from_elasticsearch.as_deref().map_or(&[], |e| &e[..]),
        &service,
        environment.as_deref(),
    );
    count(match entry {
        None => "none",
        Some(e) if policy.agent_configs.iter().any(|p| std::ptr::eq(p, e)) => "policy",
        Some(_) => "elasticsearch",
    });
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    let mut etag = agent_config::NO_ENTRY_ETAG.to_string();
    if let Some(anon) = anon {
        if let Some(entry) = entry {
            let for_them = entry.agent_name.as_deref().is_none_or(|a| {
                a.is_empty() || anon.allow_agent.iter().any(|x| a.starts_with(x.as_str()))
            });
            if anon.allow_agent.is_empty() {
                // No agent list: APM Server does not restrict anonymous configuration at all.
                settings = entry.settings.clone();
                etag = entry.etag.clone();
            } else if for_them {
                // Trimmed to the sample rate, keeping the entry's own Etag (APM Server's
                // sanitize); an entry for another agent is replaced by the empty result.
                if let Some(rate) = entry.settings.get("transaction_sample_rate") {
                    settings.insert("transaction_sample_rate".into(), rate.clone());
                }
                etag = entry.etag.clone();
            }
        }
    } else if let Some(entry) = entry {
        settings = entry.settings.clone();
        etag = entry.etag.clone();
    }
    let if_none_match = parts
        .headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"').to_string())
        .or_else(|| query_param(query, "ifnonematch"));
    let cache = format!(
        "max-age={}, must-revalidate",
        policy.gateway.agent_config_max_age.as_secs()
    );
    let mut r = if if_none_match.as_deref() == Some(etag.as_str()) {
        shared.applied_configs.record(&etag);
        respond::empty(304)
    } else {
        respond::json(200, &settings, json)
    };
    if let Ok(v) = HeaderValue::try_from(format!("\"{etag}\"")) {
        r.headers_mut().insert(ETAG, v);
    }
    r.headers_mut().insert(
        http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Etag"),
    );
    Ok(with_cache_control(r, &cache))
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding() {
        assert_eq!(super::percent_decode("my%20svc+x%2"), "my svc x%2");
        assert_eq!(
            super::query_param("a=1&service.name=s%C3%A9&b", "service.name").as_deref(),
            Some("sé")
        );
    }
}
