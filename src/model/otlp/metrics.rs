//! OTLP metrics (`apm-data/input/otlp/metrics.go`): the data points of one instrumentation
//! scope are grouped by timestamp and attributes into metricsets named `app`, in
//! `metrics-apm.app.<service>-<namespace>`. Gauges and sums become `gauge` and `counter`
//! samples, histograms `histogram` samples (`counts`/`values`), summaries `summary` samples
//! (`value_count`/`sum`). What APM Server does not support (exponential histograms, NaN or
//! infinite values, histograms without bounds) is rejected and counted.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, NumberDataPoint};

use super::super::event::*;
use super::super::otel::set_attribute_label;
use super::super::{ModelConfig, RequestMeta};
use super::{Export, ExportMetricsServiceRequest, attr, nanos, resource_event};

/// APM Server's partial success message for data points it does not take.
const UNSUPPORTED: &str = "unsupported data points";

/// Maps a metrics export request; unsupported data points are rejected and counted.
pub fn metrics(
    request: &ExportMetricsServiceRequest,
    meta: &RequestMeta<'_>,
    config: &ModelConfig,
) -> Export {
    let mut out = Export::default();
    for rm in &request.resource_metrics {
        let (base, time_delta) = resource_event(rm.resource.as_ref(), meta);
        let mut events = Vec::new();
        for sm in &rm.scope_metrics {
            let mut sets: Vec<Metricset<'_>> = Vec::new();
            for metric in &sm.metrics {
                out.rejected += add_metric(&metric.name, metric.data.as_ref(), &mut sets);
            }
            for set in sets {
                let mut ev = base.clone();
                ev.kind = Kind::Metric;
                ev.timestamp = set.timestamp.saturating_add(time_delta);
                if let Some(scope) = &sm.scope {
                    super::set_framework(&scope.name, &scope.version, &mut ev);
                }
                // Metric attributes are labels under their own keys (no dots replaced).
                for kv in set.attributes {
                    if let Some(a) = attr(kv.value.as_ref()) {
                        set_attribute_label(Cow::Owned(kv.key.clone()), &a, &mut ev);
                    }
                }
                ev.metricset = Some(super::super::event::Metricset {
                    name: "app",
                    samples: set.samples,
                    ..Default::default()
                });
                events.push(ev);
            }
        }
        super::finish(events, &base.labels, meta, config, &mut out);
    }
    if out.rejected > 0 {
        out.error_message = UNSUPPORTED.to_owned();
    }
    out
}

/// The samples of one timestamp and set of attributes.
struct Metricset<'r> {
    timestamp: i64,
    signature: String,
    attributes: &'r [KeyValue],
    samples: Vec<Sample<'static>>,
}

/// Adds a metric's data points to their metricsets; returns how many were rejected.
fn add_metric<'r>(name: &str, data: Option<&'r Data>, sets: &mut Vec<Metricset<'r>>) -> u64 {
    let mut rejected = 0;
    let mut add = |timestamp: u64, attributes: &'r [KeyValue], sample: Option<Sample<'static>>| {
        match sample {
            Some(mut s) => {
                s.name = Cow::Owned(name.to_owned());
                upsert(sets, nanos(timestamp), attributes, s);
            }
            None => rejected += 1,
        }
    };
    match data {
        Some(Data::Gauge(g)) => {
            for dp in &g.data_points {
                add(dp.time_unix_nano, &dp.attributes, number(dp, "gauge"));
            }
        }
        Some(Data::Sum(s)) => {
            for dp in &s.data_points {
                add(dp.time_unix_nano, &dp.attributes, number(dp, "counter"));
            }
        }
        Some(Data::Histogram(h)) => {
            for dp in &h.data_points {
                add(dp.time_unix_nano, &dp.attributes, histogram(dp));
            }
        }
        Some(Data::Summary(s)) => {
            for dp in &s.data_points {
                add(
                    dp.time_unix_nano,
                    &dp.attributes,
                    Some(Sample {
                        r#type: "summary",
                        summary: Some((dp.count, dp.sum)),
                        ..Default::default()
                    }),
                );
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            for dp in &h.data_points {
                add(dp.time_unix_nano, &dp.attributes, None);
            }
        }
        None => {}
    }
    rejected
}

/// A gauge or counter sample; NaN and infinities are not taken.
fn number(dp: &NumberDataPoint, ty: &'static str) -> Option<Sample<'static>> {
    let value = match dp.value? {
        NumberValue::AsInt(i) => i as f64,
        NumberValue::AsDouble(d) if d.is_finite() => d,
        NumberValue::AsDouble(_) => return None,
    };
    Some(Sample {
        r#type: ty,
        value,
        ..Default::default()
    })
}

/// A histogram as `counts`/`values`: each non-empty bucket at its midpoint, the first at half
/// its upper bound (or the bound, when not positive), the last at its lower bound, as
/// Prometheus' `histogram_quantile` assumes.
fn histogram(dp: &HistogramDataPoint) -> Option<Sample<'static>> {
    let (counts_in, bounds) = (&dp.bucket_counts, &dp.explicit_bounds);
    if counts_in.len() != bounds.len() + 1 || bounds.is_empty() {
        return None;
    }
    let mut values = Vec::with_capacity(counts_in.len());
    let mut counts = Vec::with_capacity(counts_in.len());
    for (i, &count) in counts_in.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let value = if i == 0 {
            let b = bounds[0];
            if b > 0.0 { b / 2.0 } else { b }
        } else if i == counts_in.len() - 1 {
            bounds[i - 1]
        } else {
            bounds[i - 1] + (bounds[i] - bounds[i - 1]) / 2.0
        };
        counts.push(count);
        values.push(value);
    }
    Some(Sample {
        r#type: "histogram",
        histogram: Some((values, counts)),
        ..Default::default()
    })
}

/// Adds a sample to the metricset of its timestamp and attributes (a sample of the same name
/// replaces the earlier one).
fn upsert<'r>(
    sets: &mut Vec<Metricset<'r>>,
    timestamp: i64,
    attributes: &'r [KeyValue],
    sample: Sample<'static>,
) {
    let mut signature = String::new();
    for kv in attributes {
        signature.push_str(&kv.key);
        if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            signature.push_str(&super::value_as_string(v));
        }
    }
    let set = match sets
        .iter_mut()
        .position(|s| s.timestamp == timestamp && s.signature == signature)
    {
        Some(i) => &mut sets[i],
        None => {
            sets.push(Metricset {
                timestamp,
                signature,
                attributes,
                samples: Vec::new(),
            });
            sets.last_mut().expect("just pushed")
        }
    };
    match set.samples.iter_mut().find(|s| s.name == sample.name) {
        Some(existing) => *existing = sample,
        None => set.samples.push(sample),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_become_midpoints() {
        let dp = HistogramDataPoint {
            bucket_counts: vec![1, 0, 2, 3],
            explicit_bounds: vec![10.0, 20.0, 40.0],
            ..Default::default()
        };
        let s = histogram(&dp).unwrap();
        assert_eq!(s.histogram, Some((vec![5.0, 30.0, 40.0], vec![1, 2, 3])));
        let no_bounds = HistogramDataPoint {
            bucket_counts: vec![1],
            ..Default::default()
        };
        assert!(histogram(&no_bounds).is_none());
    }
}
