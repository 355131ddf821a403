//! Compiles `[aggregation]`: whether events are aggregated into metrics, at which intervals,
//! and the group limits (left unset to be sized from memory at start, as APM Server does).

use std::time::Duration;

use super::Compiler;
use super::context::zero_value;
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::Code;
use crate::policy::spanned::Sp;

/// apm-aggregation's bounds: whole seconds, and an interval that fits two bytes of seconds.
const SHORTEST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(18 * 3600);

impl Compiler<'_> {
    pub(super) fn aggregation(&mut self, a: &ast::Aggregation) -> AggregationSettings {
        let intervals = match &a.intervals {
            None => AGGREGATION_INTERVALS.to_vec(),
            Some(list) => self.intervals(list),
        };
        AggregationSettings {
            enabled: a.enabled.as_ref().is_none_or(|e| e.value),
            intervals,
            max_services: self.group_limit(&a.max_services),
            max_transaction_groups: self.group_limit(&a.max_transaction_groups),
            max_service_transaction_groups: self.group_limit(&a.max_service_transaction_groups),
            max_service_destination_groups: self.group_limit(&a.max_service_destination_groups),
        }
    }

    fn intervals(&mut self, list: &Sp<Vec<Sp<String>>>) -> Vec<Duration> {
        if list.is_empty() {
            self.report(Code::EmptyList, "`intervals` must not be empty", list.span.clone(), "no interval", "leave `intervals` out for APM Server's `[\"1m\", \"10m\", \"60m\"]`, or set `enabled = false`");
            return AGGREGATION_INTERVALS.to_vec();
        }
        let mut parsed: Vec<(Duration, &Sp<String>)> = Vec::new();
        for v in list.iter() {
            let d = self.duration(&Some(v.clone()), Duration::ZERO);
            if d.is_zero() {
                if crate::policy::grammar::parse_duration(v).is_ok() {
                    self.push(zero_value(
                        "an aggregation interval must be longer than zero",
                        v.span.clone(),
                    ));
                }
                continue;
            }
            parsed.push((d, v));
        }
        parsed.sort_by_key(|(d, _)| *d);
        let Some(&(shortest, _)) = parsed.first() else {
            return AGGREGATION_INTERVALS.to_vec();
        };
        let mut out: Vec<Duration> = Vec::new();
        for &(d, v) in &parsed {
            let problem = if d < SHORTEST || d.subsec_nanos() != 0 {
                Some("not whole seconds".to_string())
            } else if d > LONGEST {
                Some("longer than 18 hours".to_string())
            } else if out.contains(&d) {
                Some("given twice".to_string())
            } else if d.as_nanos() % shortest.as_nanos() != 0 {
                Some(format!(
                    "not a multiple of the shortest interval ({}s)",
                    shortest.as_secs()
                ))
            } else {
                None
            };
            if let Some(label) = problem {
                self.report(
                    Code::AggregationIntervals,
                    format!("aggregation interval `{}` cannot be used", v.value),
                    v.span.clone(),
                    label,
                    "intervals are whole seconds from 1s to 18h, each a multiple of the \
                         shortest, as APM Server's aggregator requires",
                );
                continue;
            }
            if !AGGREGATION_INTERVALS.contains(&d) {
                self.report(
                    Code::IntervalUnread,
                    format!("Kibana's APM app does not read `{}` metrics", v.value),
                    v.span.clone(),
                    "written, but not charted",
                    "Kibana reads `1m`, `10m` and `60m` (`metrics-apm.*.1m-*` and so on); \
                         other intervals are written to data streams of their own",
                );
            }
            out.push(d);
        }
        if out.is_empty() {
            AGGREGATION_INTERVALS.to_vec()
        } else {
            out
        }
    }

    fn group_limit(&mut self, v: &Option<Sp<u32>>) -> Option<u32> {
        match v {
            Some(n) if n.value == 0 => {
                self.push(
                    zero_value("a group limit must be at least 1", n.span.clone()).with_help(
                        "leave it out to size it from memory as APM Server does, or set \
                         `enabled = false` to aggregate nothing",
                    ),
                );
                None
            }
            Some(n) => Some(n.value),
            None => None,
        }
    }
}
