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
    /// A metricset line: `{"metricset": {...}}`.
    pub struct MetricsetRoot<'a>: "v2.metricsetRoot" {
        /// The metricset (required).
        metricset: MetricsetIn<'a> = "metricset" / "Metricset",
    }
}

json_struct! {
    /// A metricset: samples of metrics taken at one time, or a breakdown of a transaction's
    /// self time by span type.
    pub struct MetricsetIn<'a>: "v2.metricset" {
        /// `@timestamp`; the request's receipt time when absent.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// The samples by metric name, written as fields of that name (required).
        samples: JMap<'a, SampleIn<'a>> = "samples" / "Samples",
        /// The spans' type and subtype, for breakdown metrics (`span.type`, `span.subtype`).
        span: TypeSubtype<'a> = "span" / "Span",
        /// The metricset's labels (`labels.*`, `numeric_labels.*`).
        tags: JMap<'a, LabelIn<'a>> = "tags" / "Tags",
        /// The transaction's name and type, for breakdown metrics (`transaction.*`).
        transaction: NameType<'a> = "transaction" / "Transaction",
        /// The service, when it differs from the metadata's (`service.name`, `service.version`).
        service: NameVersionIn<'a> = "service" / "Service",
        /// The function invocation the metrics are of (`faas.*`).
        faas: FaasIn<'a> = "faas" / "FAAS",
    }
}

json_struct! {
    /// One metric's sample: a value, or a histogram.
    pub struct SampleIn<'a>: "v2.metricsetSampleValue" {
        /// The metric's type: `gauge`, `counter`, `histogram` or `summary`.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// The metric's unit, e.g. `byte` or `percent`.
        unit: Option<JStr<'a>> = "unit" / "Unit",
        /// A histogram's bucket values, ascending (with `counts`).
        values: JVec<JFloat> = "values" / "Values",
        /// A histogram's count in each bucket (with `values`).
        counts: JVec<JCount> = "counts" / "Counts",
        /// The value (this or a histogram is required).
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
        /// `transaction.name`.
        name: Option<JStr<'a>> = "name" / "Name",
        /// `transaction.type`.
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
            summary: None,
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
