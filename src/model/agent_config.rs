//! The `agent_config` metric set: how Kibana's APM app learns that agents applied a central
//! configuration.
//!
//! When an agent asks for its configuration presenting the entity tag it already holds, the
//! configuration is applied; APM Server then writes, once per reporting period and tag, a
//! metric document with `labels.etag` and `agent_config_applied: 1` to the internal metrics
//! data stream (`metrics-apm.internal-<namespace>`). Kibana marks the entry "applied" when it
//! finds one.

use std::borrow::Cow;

use super::encode;
use super::event::{ApmEvent, DataStream, Kind, LabelValue, Metricset, Sample};
use super::{Document, ModelConfig};

/// The document saying that the configuration with entity tag `etag` was applied, timestamped
/// `timestamp` (nanoseconds since the epoch).
pub fn applied(
    etag: &str,
    timestamp: i64,
    config: &ModelConfig,
    observer_hostname: &str,
) -> Document {
    let mut ev = ApmEvent {
        kind: Kind::Metric,
        timestamp,
        ..Default::default()
    };
    ev.labels
        .set_str(Cow::Borrowed("etag"), LabelValue::One(Cow::Borrowed(etag)));
    ev.metricset = Some(Metricset {
        name: "agent_config",
        samples: vec![Sample {
            name: Cow::Borrowed("agent_config_applied"),
            value: 1.0,
            ..Default::default()
        }],
        ..Default::default()
    });
    ev.observer_hostname = Cow::Borrowed(observer_hostname);
    ev.observer_version = config.observer_version;
    ev.data_stream = DataStream {
        r#type: "metrics",
        dataset: "apm.internal".into(),
        namespace: config.namespace.clone(),
    };
    let mut body = Vec::with_capacity(256);
    encode::encode(&ev, &mut body);
    Document {
        data_stream: format!("metrics-apm.internal-{}", config.namespace),
        body,
        agent_name: None,
        service_name: None,
    }
}
