//! RUM v3 events (`m`, `x` with embedded `y` spans and `me` metricsets, `e`): the abbreviated
//! wire types with APM Server's validation rules, and their mapping onto [`ApmEvent`].
//!
//! Follows `apm-data/input/elasticapm/internal/modeldecoder/rumv3`. This module never writes
//! documents and never sees HTTP.
//!
//! The objects RUM v3 shares with v2 (metadata, context, errors, the transaction, stack frames,
//! ...) are declared, validated and mapped once, in `v2`, for both protocols (see
//! `model::json::Protocol`); what is RUM v3's alone lives here: `embedded`, the spans and
//! breakdown metricsets a transaction carries, and `transaction`, RUM v3's validation order and
//! the mapping of a transaction line into several events.

mod embedded;
mod transaction;

pub use self::embedded::{Metricset3, SampleValue3, Samples3, Span3, SpanContext3, SpanService3};
pub use self::transaction::{map_transaction, validate_transaction_root};

/// The metadata line, `{"m": {...}}`: v2's, under RUM v3's keys.
pub type MetadataRoot<'a> = crate::model::v2::MetadataRoot<'a, crate::model::json::RumV3>;

/// A transaction line, `{"x": {...}}`: v2's, under RUM v3's keys, with its spans and
/// metricsets embedded.
pub type TransactionRoot<'a> = crate::model::v2::TransactionRoot<'a, crate::model::json::RumV3>;

/// An error line, `{"e": {...}}`: v2's, under RUM v3's keys.
pub type ErrorRoot<'a> = crate::model::v2::ErrorRoot<'a, crate::model::json::RumV3>;
