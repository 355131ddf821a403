//! apmgate: a policy-driven, drop-in replacement for Elastic's APM Server.
//!
//! The data path reads top to bottom: [`policy`] (parse, check, compile) produces a compiled
//! [`policy::Policy`]; [`access`] decides who may do what with it.
#![forbid(unsafe_code)]

pub mod access;
pub mod agent_config;
pub mod aggregation;
pub mod devcerts;
pub mod elasticsearch;
pub mod import;
pub mod intake;
pub mod model;
pub mod output;
pub mod pem;
pub mod policy;
pub mod server;
pub mod sourcemap;
pub mod telemetry;
