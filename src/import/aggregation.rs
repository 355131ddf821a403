//! `apm-server.aggregation.*`: the group limits go to `[aggregation]`; the rest (APM Server 7's
//! intervals and histogram precision) is reported, since apmgate aggregates as APM Server 8.7+.

use crate::policy::diagnostics::Code;

use super::map::{Leaf, Mapper};

/// APM Server's aggregation limits and the `[aggregation]` keys they become.
const LIMITS: &[(&str, &str)] = &[
    ("apm-server.aggregation.max_services", "max_services"),
    (
        "apm-server.aggregation.transactions.max_groups",
        "max_transaction_groups",
    ),
    (
        "apm-server.aggregation.service_transactions.max_groups",
        "max_service_transaction_groups",
    ),
    (
        "apm-server.aggregation.service_destinations.max_groups",
        "max_service_destination_groups",
    ),
];

impl Mapper {
    /// One `apm-server.aggregation.*` setting.
    pub(super) fn aggregation(&mut self, leaf: &Leaf, path: &str) {
        let Some((_, key)) = LIMITS.iter().find(|(p, _)| *p == path) else {
            self.report(
                Code::ImportAggregation,
                format!("`{path}` is not carried over"),
                leaf.key.clone(),
                "not carried",
                "apmgate aggregates as APM Server 8.7 and later do: at `[aggregation] intervals` (1m, 10m, 60m) with APM Server's histogram precision; only the group limits are settings",
            );
            return;
        };
        // 0 (or less, refused as not an integer) is sized from memory, in both.
        if let Some(n) = self.integer(leaf).filter(|&n| n > 0) {
            let n = n.min(u64::from(u32::MAX));
            self.draft.set("aggregation", key, n.to_string(), path);
        }
    }
}
