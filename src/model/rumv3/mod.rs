//! RUM v3 events (`m`, `x` with embedded `y` spans and `me` metricsets, `e`): the abbreviated
//! wire types with APM Server's validation rules, and their mapping onto [`ApmEvent`].
//!
//! Follows `apm-data/input/elasticapm/internal/modeldecoder/rumv3`. This module never writes
//! documents and never sees HTTP.
//!
//! One file per section, as in `v2`: `metadata`, `context`, `stacktrace`, `error`, and
//! `transaction` with its spans and metricsets; everything is re-exported here.

mod context;
mod error;
mod metadata;
mod stacktrace;
mod transaction;

pub use self::context::{Context, ContextPage, ContextRequest, ContextResponse, ContextService};
pub use self::error::{
    ErrorEvent, ErrorLog3, ErrorRoot, ErrorTransactionRef, Exception3, map_error,
    validate_error_root,
};
pub use self::metadata::{
    Metadata, MetadataRoot, MetadataService, NameVersion3, Network, NetworkConnection, User,
    map_metadata, validate_metadata_root,
};
pub use self::stacktrace::Frame;
pub use self::transaction::{
    Destination3, DestinationService3, Experience3, Longtask3, Metricset3, SampleValue3, Samples3,
    Session3, Span3, SpanContext3, SpanCount3, SpanHttp3, SpanHttpResponse3, SpanService3,
    Transaction3, TransactionRoot, TypeSubtype3, map_transaction, validate_transaction_root,
};
