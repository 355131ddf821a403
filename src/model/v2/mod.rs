//! Intake v2 events (`metadata`, `transaction`, `span`, `error`, `metricset`, `log`): the wire
//! types with APM Server's validation rules, and their mapping onto [`ApmEvent`].
//!
//! Field order, rule order and messages follow APM Server's generated decoder
//! (`apm-data/input/elasticapm/internal/modeldecoder/v2`), because the first failing rule is the
//! one reported. This module never writes documents and never sees HTTP.
//!
//! One file per section of the protocol: `metadata`, the `context` shared by transactions and
//! errors, `stacktrace`, then one per event kind. The wire types and functions are re-exported
//! here, so callers name them `v2::...`. The objects RUM v3 shares are declared here for both
//! protocols (generic over `model::json::Protocol`, v2 by default); `rumv3` uses them under its
//! abbreviated keys.

mod context;
mod error;
mod log;
mod metadata;
mod metricset;
mod span;
mod stacktrace;
mod transaction;

pub use self::context::{
    Context, ContextCloud, ContextCloudOrigin, ContextMessage, ContextPage, ContextRequest,
    ContextRequestSocket, ContextRequestUrl, ContextResponse, ContextService, ContextServiceAgent,
    MessageAge, ServiceOriginIn, ServiceTargetIn,
};
pub use self::error::{
    ErrorEvent, ErrorLogIn, ErrorRoot, ErrorTransactionRef, ExceptionIn, map_error,
};
pub use self::log::{LogIn, LogRoot, map_log, process_nested_log, validate_log_root};
pub use self::metadata::{
    CloudMachine, IdName, IdOnly, KubernetesPod, Metadata, MetadataCloud, MetadataKubernetes,
    MetadataProcess, MetadataRoot, MetadataService, MetadataServiceAgent, MetadataSystem, NameOnly,
    NameVersionIn, Network, NetworkConnection, ServiceNode, User, map_metadata,
};
pub use self::metricset::{
    JCount, MetricsetIn, MetricsetRoot, NameType, SampleIn, map_metricset, validate_metricset_root,
};
pub use self::span::{
    CompositeIn, DestinationServiceIn, Otel, SpanContext, SpanDb, SpanDestination, SpanHttp,
    SpanHttpResponse, SpanIn, SpanLinkIn, SpanRoot, TypeSubtype, map_span, validate_span_root,
};
pub(crate) use self::span::{map_destination, map_span_http};
pub use self::stacktrace::Frame;
pub(crate) use self::stacktrace::{map_frames, validate_frames};
pub use self::transaction::{
    DroppedDuration, DroppedSpanStats, DroppedSum, Experience, FaasIn, Longtask, SessionIn,
    SpanCountIn, TransactionIn, TransactionRoot, Trigger, map_transaction,
    validate_transaction_root,
};
