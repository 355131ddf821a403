//! JSON Schemas of the intake events as apmgate accepts them, generated from the decoder's Rust
//! types (field names, types, `null` as "not set", documentation).
//!
//! The committed copies live in `schemas/intake/`; `tests/model_schemas.rs` fails when they
//! differ from what this module generates (`UPDATE_SCHEMAS=1` rewrites them). The rules
//! enforced in code (required fields, lengths, patterns) are the validators' and are not
//! repeated here. Never used on the decoding path.

use schemars::{JsonSchema, generate::SchemaSettings};

use super::{rumv3, v2};

fn generate<T: JsonSchema>(id: &str) -> serde_json::Value {
    let mut schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert("$id".into(), serde_json::Value::String(id.to_owned()));
    schema.to_value()
}

/// Every intake schema, keyed by its file name under `schemas/intake/`.
pub fn intake_schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "v2/metadata.json",
            generate::<v2::MetadataRoot<'_>>("apmgate/intake/v2/metadata"),
        ),
        (
            "v2/transaction.json",
            generate::<v2::TransactionRoot<'_>>("apmgate/intake/v2/transaction"),
        ),
        (
            "v2/span.json",
            generate::<v2::SpanRoot<'_>>("apmgate/intake/v2/span"),
        ),
        (
            "v2/error.json",
            generate::<v2::ErrorRoot<'_>>("apmgate/intake/v2/error"),
        ),
        (
            "v2/metricset.json",
            generate::<v2::MetricsetRoot<'_>>("apmgate/intake/v2/metricset"),
        ),
        (
            "v2/log.json",
            generate::<v2::LogRoot<'_>>("apmgate/intake/v2/log"),
        ),
        (
            "rumv3/metadata.json",
            generate::<rumv3::MetadataRoot<'_>>("apmgate/intake/rumv3/metadata"),
        ),
        (
            "rumv3/transaction.json",
            generate::<rumv3::TransactionRoot<'_>>("apmgate/intake/rumv3/transaction"),
        ),
        (
            "rumv3/error.json",
            generate::<rumv3::ErrorRoot<'_>>("apmgate/intake/rumv3/error"),
        ),
    ]
}
