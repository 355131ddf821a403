//! Central agent configuration: which entry answers an agent, the entries Kibana's APM app
//! keeps in Elasticsearch, and the report of applied configurations Kibana reads.
//!
//! Entries come from the policy (`[[agent_config]]`) and, with `[agent_config_source]
//! elasticsearch = true`, from `.apm-agent-configuration`, read every `cache_expiration` as
//! APM Server reads it ([`elasticsearch::EsAgentConfig`]). The route handler
//! (`server::agent_config`) asks [`best`] for the entry and records what agents applied in
//! [`applied::AppliedConfigs`], which writes the `agent_config` metric set.

pub mod applied;
pub mod elasticsearch;

use crate::policy::compiled::AgentConfigEntry;

/// The entity tag answered when no entry matches (APM Server's `EtagSentinel`).
pub const NO_ENTRY_ETAG: &str = "-";

/// How closely an entry matches a service and environment, most specific first, as APM
/// Server's `matchAgentConfig` orders them: the service in this environment, the service in
/// any environment, any service in this environment, any service anywhere. `None`: the entry
/// is for another service or environment. An entry's empty service or absent environment
/// means "any" (Kibana's "All").
fn rank(entry: &AgentConfigEntry, service: &str, environment: Option<&str>) -> Option<u8> {
    let env = environment.unwrap_or("");
    let entry_env = entry.environment.as_deref().unwrap_or("");
    match (entry.service.as_str(), entry_env) {
        (s, e) if s == service && e == env => Some(0),
        (s, "") if s == service => Some(1),
        ("", e) if e == env => Some(2),
        ("", "") => Some(3),
        _ => None,
    }
}

/// The entry that answers `service` in `environment`: the most specific of `first` and
/// `then`, and at equal specificity the one of `first` (the policy's entries are passed
/// first, so that they win over Elasticsearch's).
pub fn best<'e>(
    first: &'e [AgentConfigEntry],
    then: &'e [AgentConfigEntry],
    service: &str,
    environment: Option<&str>,
) -> Option<&'e AgentConfigEntry> {
    let mut found: Option<(u8, &AgentConfigEntry)> = None;
    for entry in first.iter().chain(then) {
        if let Some(r) = rank(entry, service, environment) {
            if found.is_none_or(|(best, _)| r < best) {
                found = Some((r, entry));
                if r == 0 {
                    break;
                }
            }
        }
    }
    found.map(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn entry(service: &str, environment: Option<&str>, etag: &str) -> AgentConfigEntry {
        AgentConfigEntry {
            service: service.into(),
            environment: environment.map(Into::into),
            agent_name: None,
            settings: BTreeMap::new(),
            etag: etag.into(),
        }
    }

    #[test]
    fn the_most_specific_entry_wins_then_the_first_list() {
        let es = [
            entry("", None, "default"),
            entry("", Some("prod"), "any-service-prod"),
            entry("svc", None, "svc-any"),
            entry("svc", Some("prod"), "svc-prod"),
        ];
        let etag = |first: &[AgentConfigEntry], s: &str, e: Option<&str>| {
            best(first, &es, s, e).map(|x| x.etag.clone())
        };
        assert_eq!(etag(&[], "svc", Some("prod")), Some("svc-prod".into()));
        assert_eq!(etag(&[], "svc", Some("dev")), Some("svc-any".into()));
        assert_eq!(etag(&[], "svc", None), Some("svc-any".into()));
        assert_eq!(
            etag(&[], "other", Some("prod")),
            Some("any-service-prod".into())
        );
        assert_eq!(etag(&[], "other", None), Some("default".into()));
        let policy = [entry("svc", None, "policy-svc-any")];
        // Same specificity: the policy's entry; a more specific one elsewhere still wins.
        assert_eq!(
            etag(&policy, "svc", Some("dev")),
            Some("policy-svc-any".into())
        );
        assert_eq!(etag(&policy, "svc", Some("prod")), Some("svc-prod".into()));
        assert_eq!(best(&[], &[], "svc", None).map(|e| &e.etag), None);
    }
}
