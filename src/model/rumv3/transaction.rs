//! RUM v3 transactions (`x`): their validation, in RUM v3's order, and their mapping (one
//! transaction line gives the transaction, its breakdown metricsets and its spans).
//!
//! The transaction is declared and mapped with v2's (`model::v2`); what it embeds is in
//! `embedded`.

use super::embedded::{map_metricset, map_span, validate_metricset, validate_span};
use crate::model::event::*;
use crate::model::json::RumV3;
use crate::model::json::rules::*;
use crate::model::v2::{TransactionIn, TransactionRoot};

/// Validates a RUM v3 transaction with its spans and metricsets. APM Server's RUM v3 decoder
/// checks the first fields in another order than v2's; from the session on, both agree.
pub fn validate_transaction_root(r: &TransactionRoot<'_, RumV3>) -> VResult {
    nested(&r.transaction, "x", |x| {
        max_len(&x.trace_id, KEYWORD_MAX_LENGTH, "tid")?;
        required(&x.trace_id, "tid")?;
        max_len(&x.r#type, KEYWORD_MAX_LENGTH, "t")?;
        required(&x.r#type, "t")?;
        each(&x.spans, "y", validate_span)?;
        each(&x.metricsets, "me", validate_metricset)?;
        max_len(&x.result, KEYWORD_MAX_LENGTH, "rt")?;
        max_len(&x.id, KEYWORD_MAX_LENGTH, "id")?;
        required(&x.id, "id")?;
        max_len(&x.name, KEYWORD_MAX_LENGTH, "n")?;
        outcome(&x.outcome, "o")?;
        max_len(&x.parent_id, KEYWORD_MAX_LENGTH, "pid")?;
        x.validate_session_to_duration()
    })?;
    required(&r.transaction, "x")
}

/// Maps a validated RUM v3 transaction onto events: the transaction, then its breakdown
/// metricsets (those with known samples), then its spans, each cloned from `base`.
pub fn map_transaction<'a>(
    x: &mut TransactionIn<'a, RumV3>,
    base: &ApmEvent<'a>,
) -> Vec<ApmEvent<'a>> {
    let mut out = Vec::with_capacity(1 + x.metricsets.len() + x.spans.len());
    let mut ev = base.clone();
    crate::model::v2::map_transaction(x, &mut ev);
    let (tx_id, tx_name, tx_type) = ev
        .transaction
        .as_ref()
        .map(|t| (t.id.clone(), t.name.clone(), t.r#type.clone()))
        .unwrap_or_default();
    let trace_id = ev.trace_id.clone();
    out.push(ev);

    for m in x.metricsets.iter() {
        let mut ev = base.clone();
        ev.transaction = Some(crate::model::event::Transaction {
            name: tx_name.clone(),
            r#type: tx_type.clone(),
            ..Default::default()
        });
        if map_metricset(m, &mut ev) {
            out.push(ev);
        }
    }

    let first_span = out.len();
    for s in x.spans.0.iter_mut() {
        let mut ev = base.clone();
        map_span(s, &mut ev);
        ev.transaction = Some(crate::model::event::Transaction {
            id: tx_id.clone(),
            ..Default::default()
        });
        ev.parent_id = tx_id.clone();
        ev.trace_id = trace_id.clone();
        out.push(ev);
    }
    for (i, s) in x.spans.iter().enumerate() {
        if let Some(pi) = s.pi {
            if pi.0 >= 0 && (pi.0 as usize) < x.spans.len() {
                let parent = out[first_span + pi.0 as usize]
                    .span
                    .as_ref()
                    .map(|s| s.id.clone())
                    .unwrap_or_default();
                out[first_span + i].parent_id = parent;
            }
        }
    }
    out
}
