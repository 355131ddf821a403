//! Compiles `[[agent_config]]`: central configuration entries and their entity tags.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use super::Compiler;
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic};

impl Compiler<'_> {
    /// A float setting as the operator wrote it (`1.0` stays `1.0`, where formatting the number
    /// gives `1`), without TOML's digit separators: agents receive the text the policy shows.
    fn float_as_written(&self, span: &Range<usize>, value: f64) -> String {
        let written: String = self
            .src
            .get(span.clone())
            .unwrap_or_default()
            .trim()
            .chars()
            .filter(|c| *c != '_')
            .collect();
        if written.parse::<f64>().is_ok_and(|w| w == value) {
            written
        } else {
            value.to_string()
        }
    }

    pub(super) fn agent_configs(&mut self, entries: &[ast::AgentConfig]) -> Vec<AgentConfigEntry> {
        let mut seen: HashMap<(String, Option<String>), Range<usize>> = HashMap::new();
        let mut out = Vec::new();
        for e in entries {
            let key = (
                e.service.value.clone(),
                e.environment.as_ref().map(|v| v.value.clone()),
            );
            if let Some(first) = seen.get(&key) {
                self.push(
                    Diagnostic::new(
                        Code::DuplicateName,
                        format!(
                            "central configuration for service `{}`{} is declared twice",
                            key.0,
                            key.1
                                .as_ref()
                                .map(|e| format!(" in environment `{e}`"))
                                .unwrap_or_default()
                        ),
                        e.service.span.clone(),
                        "declared again here",
                    )
                    .with_label(first.clone(), "first declared here")
                    .with_help("merge the settings into one entry"),
                );
                continue;
            }
            seen.insert(key, e.service.span.clone());
            let settings: BTreeMap<String, String> = e
                .settings
                .iter()
                .map(|(k, v)| {
                    let s = match &v.value {
                        ast::SettingValue::Bool(b) => b.to_string(),
                        ast::SettingValue::Integer(i) => i.to_string(),
                        ast::SettingValue::Float(f) => self.float_as_written(&v.span, *f),
                        ast::SettingValue::String(s) => s.clone(),
                    };
                    (k.value.clone(), s)
                })
                .collect();
            let etag = etag_of(&settings);
            out.push(AgentConfigEntry {
                service: e.service.value.clone(),
                environment: e.environment.as_ref().map(|v| v.value.clone()),
                agent_name: e.agent_name.as_ref().map(|v| v.value.clone()),
                settings,
                etag,
            });
        }
        out
    }
}

/// Entity tag of a settings map: stable across runs and key order.
pub fn etag_of(settings: &BTreeMap<String, String>) -> String {
    // FNV-1a over the canonical JSON: stable, dependency-free, and only needs to change when
    // the settings do.
    let canonical = serde_json::to_string(settings).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Compiler<'_> {
    /// `[agent_config_source]`: entries read from Elasticsearch, which needs the Elasticsearch
    /// output's connection (E802).
    pub(super) fn agent_config_source(
        &mut self,
        s: &ast::AgentConfigSource,
        output: &OutputSettings,
    ) -> Option<AgentConfigSourceSettings> {
        let cache_expiration =
            self.positive_duration(&s.cache_expiration, AGENT_CONFIG_CACHE_EXPIRATION);
        let enabled = s.elasticsearch.as_ref()?;
        if !enabled.value {
            return None;
        }
        if !matches!(output, OutputSettings::Elasticsearch(_)) {
            self.push(
                Diagnostic::new(
                    Code::EsSourceWithoutOutput,
                    "central agent configuration from Elasticsearch needs an Elasticsearch output",
                    enabled.span.clone(),
                    "no cluster to read from",
                )
                .with_help(
                    "add `[output.elasticsearch]`, or serve the configuration from the policy with `[[agent_config]]` entries",
                ),
            );
        }
        Some(AgentConfigSourceSettings { cache_expiration })
    }
}
