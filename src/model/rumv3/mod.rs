//! RUM v3 events (`m`, `x` with embedded `y` spans and `me` metricsets, `e`): the abbreviated
//! wire types with APM Server's validation rules, and their mapping onto [`ApmEvent`].
//!
//! Follows `apm-data/input/elasticapm/internal/modeldecoder/rumv3`. This module never writes
//! documents and never sees HTTP.
//!
//! The objects RUM v3 shares with v2 (metadata, stack frames, ...) are declared once, in `v2`,
//! for both protocols (see `model::json::Protocol`); what is RUM v3's alone lives here, one file
//! per section: so far `transaction`, with its spans and metricsets, re-exported here.

mod transaction;

/// The metadata line, `{"m": {...}}`: v2's, under RUM v3's keys.
pub type MetadataRoot<'a> = crate::model::v2::MetadataRoot<'a, crate::model::json::RumV3>;

/// An error line, `{"e": {...}}`: v2's, under RUM v3's keys.
pub type ErrorRoot<'a> = crate::model::v2::ErrorRoot<'a, crate::model::json::RumV3>;
pub use self::transaction::{
    Destination3, DestinationService3, Experience3, Longtask3, Metricset3, SampleValue3, Samples3,
    Session3, Span3, SpanContext3, SpanCount3, SpanHttp3, SpanHttpResponse3, SpanService3,
    Transaction3, TransactionRoot, TypeSubtype3, map_transaction, validate_transaction_root,
};
