//! Compiles `[gateway]` (namespace, trusted proxies, response headers, decoders) and `[rum]`.

use std::ops::Range;
use std::time::Duration;

use super::Compiler;
use super::context::zero_value;
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::Code;
use crate::policy::grammar;
use crate::policy::spanned::Sp;
use crate::policy::types::IpSet;

impl Compiler<'_> {
    pub(super) fn gateway(&mut self, g: &ast::Gateway) -> GatewaySettings {
        let namespace = match &g.namespace {
            Some(ns) => {
                let ok = !ns.is_empty()
                    && ns.len() <= 100
                    && ns
                        .chars()
                        .all(|c| !c.is_ascii_uppercase() && !"\\/*?\"<>| ,#:-".contains(c));
                if !ok {
                    self.report(Code::ValueOutOfRange, format!("invalid data stream namespace `{}`", ns.value), ns.span.clone(), "not a valid namespace", "a namespace is lower case, at most 100 characters, without `\\ / * ? \" < > | , # : -` or spaces");
                }
                ns.value.clone()
            }
            None => "default".to_string(),
        };
        let trusted = self.address_ranges(&g.trusted_proxies);
        if let (Some(first), None) = (g.trusted_proxies.first(), &g.trusted_proxy_header) {
            self.report(
                Code::ProxyHeaderUnset,
                "trusted proxies are declared without the header they set",
                first.span.clone(),
                "believed in any of three headers",
                "add `trusted_proxy_header = \"x-forwarded-for\"` (or `forwarded`, `x-real-ip`): \
                     otherwise a client can send a `Forwarded` or `X-Real-IP` header that your \
                     proxy passes on, and it wins over the `X-Forwarded-For` the proxy appended",
            );
        }
        GatewaySettings {
            namespace,
            default_service_environment: g
                .default_service_environment
                .as_ref()
                .map(|e| e.value.clone()),
            capture_personal_data: g.capture_personal_data.as_ref().is_none_or(|b| b.value),
            trusted_proxies: IpSet::new(&trusted, &[]),
            trusted_proxy_header: g.trusted_proxy_header.as_ref().map(|h| h.value),
            response_headers: self.headers(&g.response_headers),
            agent_config_max_age: self
                .positive_duration(&g.agent_config_max_age, Duration::from_secs(30)),
            max_concurrent_decoders: match &g.max_concurrent_decoders {
                Some(n) if n.value == 0 => {
                    self.push(
                        zero_value(
                            "`max_concurrent_decoders` must be at least 1",
                            n.span.clone(),
                        )
                        .with_help("leave it out to size it from memory as APM Server does"),
                    );
                    None
                }
                Some(n) => Some(n.value),
                None => None,
            },
            max_intake_memory: g
                .max_intake_memory
                .as_ref()
                .map(|_| self.positive_size(&g.max_intake_memory, 0))
                .filter(|&n| n > 0),
        }
    }

    pub(super) fn rum(&mut self, r: &ast::Rum) -> RumSettings {
        let enabled = r.enabled.as_ref().is_some_and(|e| e.value);
        let allow_origins = match &r.allow_origins {
            Some(list) => list.iter().filter_map(|o| self.glob(o)).collect(),
            None => vec![grammar::parse_glob("*").expect("`*` is a valid glob")],
        };
        if enabled {
            let open: Option<Range<usize>> = match &r.allow_origins {
                None => r.enabled.as_ref().map(|e| e.span.clone()),
                Some(list) => list
                    .iter()
                    .find(|o| o.as_str() == "*")
                    .map(|o| o.span.clone()),
            };
            if let Some(span) = open {
                self.report(
                    Code::RumOpenOrigin,
                    "RUM accepts events from any origin",
                    span,
                    "any web page may send events",
                    "list your sites: `allow_origins = [\"https://*.example.com\"]`",
                );
            }
        }
        let mut allow_headers = Vec::new();
        for h in &r.allow_headers {
            let empty = Sp::new(String::new(), h.span.clone());
            if let Some((name, _)) = self.header(h, &empty) {
                allow_headers.push(name);
            }
        }
        RumSettings {
            enabled,
            allow_origins,
            allow_headers,
            response_headers: self.headers(&r.response_headers),
            library_pattern: self.regex(&r.library_pattern, "node_modules|bower_components|~"),
            exclude_from_grouping: self.regex(&r.exclude_from_grouping, "^/webpack"),
            // Compiled once the output is known (`source_mapping`).
            source_mapping: None,
        }
    }
}
