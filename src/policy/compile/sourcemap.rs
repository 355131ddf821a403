//! Compiles `[rum.source_mapping]`: whether RUM stack frames are mapped with the source maps
//! Kibana stores in Elasticsearch (by default when RUM is on and the output is Elasticsearch,
//! as in APM Server), and the cache, timeout and size limits of the maps.

use super::Compiler;
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic};

impl Compiler<'_> {
    pub(super) fn source_mapping(
        &mut self,
        s: &ast::RumSourceMapping,
        rum_enabled: bool,
        output: &OutputSettings,
    ) -> Option<SourceMappingSettings> {
        let elasticsearch = matches!(output, OutputSettings::Elasticsearch(_));
        let settings = SourceMappingSettings {
            cache_expiration: self
                .positive_duration(&s.cache_expiration, SOURCE_MAP_CACHE_EXPIRATION),
            timeout: self.positive_duration(&s.timeout, SOURCE_MAP_TIMEOUT),
            max_sourcemap_size: self.positive_size(&s.max_sourcemap_size, SOURCE_MAP_MAX_SIZE),
            cache_entries: match &s.cache_entries {
                Some(n) if n.value == 0 => {
                    self.push(
                        Diagnostic::new(
                            Code::ValueOutOfRange,
                            "`cache_entries` must be at least 1",
                            n.span.clone(),
                            "zero",
                        )
                        .with_help("leave it out for APM Server's 128"),
                    );
                    SOURCE_MAP_CACHE_ENTRIES
                }
                Some(n) => n.value,
                None => SOURCE_MAP_CACHE_ENTRIES,
            },
            cache_size: self.positive_size(&s.cache_size, SOURCE_MAP_CACHE_SIZE),
        };
        match &s.enabled {
            Some(e) if !e.value => None,
            Some(e) => {
                if !elasticsearch {
                    self.push(
                        Diagnostic::new(
                            Code::SourceMappingNeedsElasticsearch,
                            "source mapping reads the source maps from Elasticsearch, and the output is not Elasticsearch",
                            e.span.clone(),
                            "source mapping enabled here",
                        )
                        .with_help(
                            "configure `[output.elasticsearch]`, or set `enabled = false`",
                        ),
                    );
                    return None;
                }
                if !rum_enabled {
                    self.push(
                        Diagnostic::new(
                            Code::SourceMappingWithoutRum,
                            "source mapping is enabled but RUM is not: no frame will be mapped",
                            e.span.clone(),
                            "enabled here",
                        )
                        .with_help("set `[rum] enabled = true`, or remove `enabled`"),
                    );
                    return None;
                }
                Some(settings)
            }
            None => (rum_enabled && elasticsearch).then_some(settings),
        }
    }
}
