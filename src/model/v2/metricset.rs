//! Intake v2 `metricset` events (samples, histograms, breakdown metrics): wire types,
//! validation and mapping.

use std::borrow::Cow;

use super::metadata::NameVersionIn;
use super::span::TypeSubtype;
use super::transaction::{FaasIn, map_faas};
use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{IsSet, JFloat, JInt, JMap, JStr, JTime, JVec, LabelIn, json_struct};
use crate::model::map::*;

json_struct! {
    /// `{"metricset": {...}}`
    pub struct MetricsetRoot<'a>: "v2.metricsetRoot" {
        /// The metricset.
        metricset: MetricsetIn<'a> = "metricset" / "Metricset",
    }
}

json_struct! {
    /// A metricset.
    pub struct MetricsetIn<'a>: "v2.metricset" {
        /// Timestamp.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// Samples by metric name.
        samples: JMap<'a, SampleIn<'a>> = "samples" / "Samples",
        /// Span reference (breakdown metrics).
        span: TypeSubtype<'a> = "span" / "Span",
        /// Labels.
        tags: JMap<'a, LabelIn<'a>> = "tags" / "Tags",
        /// Transaction reference (breakdown metrics).
        transaction: NameType<'a> = "transaction" / "Transaction",
        /// Service reference.
        service: NameVersionIn<'a> = "service" / "Service",
        /// Function as a service.
        faas: FaasIn<'a> = "faas" / "FAAS",
    }
}

json_struct! {
    /// One metric sample.
    pub struct SampleIn<'a>: "v2.metricsetSampleValue" {
        /// gauge, counter, histogram or summary.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Unit.
        unit: Option<JStr<'a>> = "unit" / "Unit",
        /// Histogram bucket values.
        values: JVec<JFloat> = "values" / "Values",
        /// Histogram bucket counts.
        counts: JVec<JCount> = "counts" / "Counts",
        /// Value.
        value: Option<JFloat> = "value" / "Value",
    }
}

/// A histogram count (Go `uint64`).
#[derive(Clone, Copy, Debug, Default)]
pub struct JCount(pub u64);

impl schemars::JsonSchema for JCount {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Count")
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "minimum": 0})
    }
}

impl<'de> serde::Deserialize<'de> for JCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = JInt::deserialize(d)?;
        u64::try_from(v.0)
            .map(JCount)
            .map_err(|_| serde::de::Error::custom("ReadUint64: unexpected character,"))
    }
}

json_struct! {
    /// A name and a type.
    pub struct NameType<'a>: "v2.metricsetTransactionRef" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

/// Validates a metricset as APM Server does.
pub fn validate_metricset_root(r: &MetricsetRoot<'_>) -> VResult {
    nested(&r.metricset, "metricset", |m| {
        if m.samples.0.is_empty() {
            return Err("'samples' required".into());
        }
        for (k, v) in &m.samples.0 {
            (|| {
                any_of(
                    v.value.is_some() || !v.values.is_empty(),
                    &["value", "values"],
                )?;
                if v.values.is_empty() && !v.counts.is_empty() {
                    return Err("'values' required when 'counts' is set".to_string());
                }
                if v.counts.is_empty() && !v.values.is_empty() {
                    return Err("'counts' required when 'values' is set".to_string());
                }
                Ok(())
            })()
            .map_err(|e| format!("samples: {e}"))?;
            if !k.is_empty() && k.contains(['*', '"']) {
                return Err(
                    "'samples': validation rule 'patternKeys(patternNoAsteriskQuote)' violated"
                        .into(),
                );
            }
        }
        nested(&m.span, "span", |s| {
            max_len(&s.subtype, KEYWORD_MAX_LENGTH, "subtype")?;
            max_len(&s.r#type, KEYWORD_MAX_LENGTH, "type")
        })?;
        labels(&m.tags.0, "tags")?;
        nested(&m.transaction, "transaction", |t| {
            max_len(&t.name, KEYWORD_MAX_LENGTH, "name")?;
            max_len(&t.r#type, KEYWORD_MAX_LENGTH, "type")
        })?;
        nested(&m.service, "service", NameVersionIn::lengths)?;
        nested(&m.faas, "faas", |_| Ok(()))
    })?;
    required(&r.metricset, "metricset")
}

/// Maps a validated metricset onto `out`; `false` when APM Server drops it (a breakdown
/// metricset with no known samples).
pub fn map_metricset<'a>(m: &MetricsetIn<'a>, out: &mut ApmEvent<'a>) -> bool {
    out.kind = Kind::Metric;
    let mut ms = Metricset {
        name: "app",
        samples: Vec::with_capacity(m.samples.0.len()),
        ..Default::default()
    };
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(t) = m.timestamp {
        out.timestamp = t.0;
    }
    for (name, s) in &m.samples.0 {
        let histogram = if !s.counts.is_empty() || !s.values.is_empty() {
            Some((
                s.values.iter().map(|v| v.0).collect(),
                s.counts.iter().map(|c| c.0).collect(),
            ))
        } else {
            None
        };
        ms.samples.push(Sample {
            name: name.clone(),
            r#type: metric_type(s.r#type.as_ref().map(|t| t.as_str())),
            unit: st(&s.unit),
            value: s.value.map_or(0.0, |v| v.0),
            histogram,
        });
    }
    merge_labels(&m.tags.0, &mut out.labels);
    if m.span.is_set() {
        let sp = out.span_mut();
        set(&mut sp.subtype, &m.span.subtype);
        set(&mut sp.r#type, &m.span.r#type);
    }
    let mut ok = true;
    if m.transaction.is_set() {
        let tx = out.transaction_mut();
        set(&mut tx.name, &m.transaction.name);
        set(&mut tx.r#type, &m.transaction.r#type);
        ok = set_internal_metrics(&mut ms, out);
    }
    if let Some(n) = &m.service.name {
        out.service.name = n.0.clone();
        out.service.version = st(&m.service.version);
    }
    map_faas(&m.faas, out);
    out.metricset = Some(ms);
    ok
}
