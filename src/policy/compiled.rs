//! The compiled policy: immutable, typed, every reference resolved.
//!
//! A [`Policy`] is what the runtime serves from. It is built only by
//! [`crate::policy::compile`] and never changes afterwards; a reload builds a new one and swaps
//! it whole. Nothing here holds a string that still needs parsing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::expr::Expr;
use super::types::{Bind, Glob, IpSet, PrivilegeSet, Secret, SecretRef};

pub use super::vocab::{
    Allowlist, ClientAuth, Effect, IdentityKind, Protocol, ProxyHeader, ROUTE_NAMES, RouteName,
    TlsBackend, VerificationMode,
};

/// APM Server's default routes: every APM route and OTLP, not `metrics`.
pub const DEFAULT_ROUTES: [RouteName; 6] = [
    RouteName::Root,
    RouteName::Intake,
    RouteName::RumIntake,
    RouteName::Config,
    RouteName::RumConfig,
    RouteName::Otlp,
];

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Gateway-wide settings.
    pub gateway: GatewaySettings,
    /// Listeners, in file order.
    pub listeners: Vec<Arc<Listener>>,
    /// Authentication.
    pub auth: AuthSettings,
    /// Named allowlists.
    pub allowlists: BTreeMap<String, Arc<Allowlist>>,
    /// Roles with their resolved privileges.
    pub roles: BTreeMap<String, PrivilegeSet>,
    /// Access rules.
    pub access: AccessRules,
    /// RUM.
    pub rum: RumSettings,
    /// Central agent configuration.
    pub agent_configs: Vec<AgentConfigEntry>,
    /// Central agent configuration read from Elasticsearch; `None`: the policy's entries only.
    pub agent_config_source: Option<AgentConfigSourceSettings>,
    /// Output.
    pub output: OutputSettings,
    /// Aggregated metrics.
    pub aggregation: AggregationSettings,
    /// The durable spool; `None`: accepted documents are held in memory.
    pub spool: Option<SpoolSettings>,
    /// Policy tests.
    pub tests: Vec<PolicyTestCase>,
}

/// Aggregated metrics (`[aggregation]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationSettings {
    /// Whether events are aggregated.
    pub enabled: bool,
    /// The intervals, shortest first, each a multiple of the shortest.
    pub intervals: Vec<Duration>,
    /// Services per interval; `None` sizes it from memory.
    pub max_services: Option<u32>,
    /// Transaction groups per interval; `None` sizes it from memory.
    pub max_transaction_groups: Option<u32>,
    /// Service transaction groups per interval; `None` sizes it from memory.
    pub max_service_transaction_groups: Option<u32>,
    /// Service destination groups per interval; `None` sizes it from memory.
    pub max_service_destination_groups: Option<u32>,
}

impl Policy {
    /// The files the policy names and reads when compiled: listeners' certificates, keys and
    /// CAs, the Elasticsearch output's, and secrets read from files (secret tokens, output
    /// credentials, key passphrases): what `--watch` watches.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        let secret = |slot: &Option<SecretSlot>, out: &mut Vec<PathBuf>| {
            if let Some(SecretSlot {
                source: SecretRef::File(p),
                ..
            }) = slot
            {
                out.push(p.clone());
            }
        };
        for l in &self.listeners {
            if let Some(t) = &l.tls {
                out.push(t.certificate.clone());
                out.push(t.key.clone());
                out.extend(t.certificate_authorities.iter().cloned());
                secret(&t.key_passphrase, &mut out);
            }
        }
        for t in &self.auth.secret_tokens {
            secret(&Some(t.secret.clone()), &mut out);
        }
        if let OutputSettings::Elasticsearch(es) = &self.output {
            match &es.credentials {
                EsCredentials::ApiKey(k) => secret(&Some(k.clone()), &mut out),
                EsCredentials::Basic { password, .. } => secret(&Some(password.clone()), &mut out),
                EsCredentials::None => {}
            }
            out.extend(es.tls.certificate_authorities.iter().cloned());
            out.extend(es.tls.certificate.iter().cloned());
            out.extend(es.tls.key.iter().cloned());
            secret(&es.tls.key_passphrase, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The durable spool (`[spool]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// Its directory.
    pub path: PathBuf,
    /// Bytes of unacknowledged documents it may hold.
    pub max_bytes: u64,
    /// `None`: fsync each batch before answering; `Some(d)`: every `d`.
    pub fsync_interval: Option<Duration>,
    /// Size of one log file.
    pub segment_bytes: u64,
}

/// APM Server's aggregation intervals.
pub const AGGREGATION_INTERVALS: [Duration; 3] = [
    Duration::from_secs(60),
    Duration::from_secs(600),
    Duration::from_secs(3600),
];

/// Gateway-wide settings.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Data stream namespace.
    pub namespace: String,
    /// Default `service.environment`.
    pub default_service_environment: Option<String>,
    /// Record client IP and user agent.
    pub capture_personal_data: bool,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: IpSet,
    /// The one forwarding header believed from trusted proxies; `None` believes `Forwarded`,
    /// then `X-Real-IP`, then `X-Forwarded-For` (warned about: W111).
    pub trusted_proxy_header: Option<ProxyHeader>,
    /// Headers added to every APM response.
    pub response_headers: Vec<(String, String)>,
    /// `Cache-Control: max-age` of central configuration.
    pub agent_config_max_age: Duration,
    /// Intake requests decoded at once; `None`: sized from memory when the server starts.
    pub max_concurrent_decoders: Option<u32>,
    /// The intake's memory budget in bytes; `None`: sized from memory when the server starts.
    pub max_intake_memory: Option<u64>,
}

/// A listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Name.
    pub name: String,
    /// Address.
    pub bind: Bind,
    /// Protocols.
    pub protocols: Vec<Protocol>,
    /// TLS profile.
    pub tls: Option<Arc<TlsProfile>>,
    /// Routes served.
    pub routes: Vec<RouteName>,
    /// Limits.
    pub limits: Limits,
}

impl Listener {
    /// Whether the listener serves a route group.
    pub fn serves(&self, route: RouteName) -> bool {
        self.routes.contains(&route)
    }

    /// Whether the listener speaks a protocol.
    pub fn speaks(&self, protocol: Protocol) -> bool {
        self.protocols.contains(&protocol)
    }
}

/// Listener limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest header block.
    pub max_header_size: u64,
    /// Largest NDJSON line.
    pub max_event_size: u64,
    /// Largest decompressed body.
    pub max_body_size: u64,
    /// Read timeout.
    pub read_timeout: Duration,
    /// Write timeout.
    pub write_timeout: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Shutdown timeout.
    pub shutdown_timeout: Duration,
    /// TLS handshake timeout.
    pub tls_handshake_timeout: Duration,
    /// Connection cap; `None` is unlimited.
    pub max_connections: Option<u64>,
    /// HTTP/3: concurrent request streams per QUIC connection.
    pub quic_max_streams: u32,
    /// HTTP/3: flow-control window of one request stream (bytes).
    pub quic_stream_receive_window: u32,
    /// HTTP/3: flow-control window of a whole QUIC connection (bytes).
    pub quic_receive_window: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_size: 1 << 20,
            max_event_size: 307_200,
            max_body_size: 100 << 20,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(45),
            shutdown_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: None,
            quic_max_streams: 100,
            quic_stream_receive_window: 1 << 20,
            quic_receive_window: 8 << 20,
        }
    }
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2
    Tls12,
    /// TLS 1.3
    Tls13,
}

/// A server TLS profile.
#[derive(Debug, Clone)]
pub struct TlsProfile {
    /// Name.
    pub name: String,
    /// Certificate chain path.
    pub certificate: PathBuf,
    /// Key path.
    pub key: PathBuf,
    /// Key passphrase.
    pub key_passphrase: Option<SecretSlot>,
    /// Client CA paths.
    pub certificate_authorities: Vec<PathBuf>,
    /// Client authentication.
    pub client_auth: ClientAuth,
    /// Versions, ascending.
    pub versions: Vec<TlsVersion>,
    /// TLS 1.2 cipher suites (IANA names), empty for the library's defaults.
    pub cipher_suites: Vec<String>,
    /// Key exchange groups, empty for the library's defaults.
    pub curves: Vec<String>,
    /// Implementation.
    pub backend: TlsBackend,
}

/// A secret reference, with its value once the environment step has read it.
#[derive(Debug, Clone)]
pub struct SecretSlot {
    /// Where it comes from.
    pub source: SecretRef,
    /// The value, when resolved.
    pub value: Option<Secret>,
}

/// Authentication settings.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Secret tokens.
    pub secret_tokens: Vec<SecretTokenEntry>,
    /// Policy API keys.
    pub api_keys: Vec<ApiKeyEntry>,
    /// Elasticsearch-verified API keys.
    pub elasticsearch_api_keys: Option<EsApiKeySettings>,
    /// Client-certificate identities, tried in name order.
    pub client_certs: Vec<ClientCertEntry>,
    /// Anonymous access.
    pub anonymous: Option<AnonymousSettings>,
}

impl AuthSettings {
    /// Whether any authentication is configured; without it every request is allowed (as APM
    /// Server with neither secret token nor API keys).
    pub fn is_configured(&self) -> bool {
        !self.secret_tokens.is_empty()
            || !self.api_keys.is_empty()
            || self.elasticsearch_api_keys.is_some()
            || !self.client_certs.is_empty()
    }
}

/// A secret token.
#[derive(Debug, Clone)]
pub struct SecretTokenEntry {
    /// Name.
    pub name: String,
    /// The token.
    pub secret: SecretSlot,
    /// Roles held.
    pub roles: std::sync::Arc<[String]>,
    /// Privileges.
    pub privileges: PrivilegeSet,
}

/// A policy API key.
#[derive(Debug, Clone)]
pub struct ApiKeyEntry {
    /// Name.
    pub name: String,
    /// Key id.
    pub id: String,
    /// Argon2 PHC hash of the secret.
    pub hash: String,
    /// Roles.
    pub roles: std::sync::Arc<[String]>,
    /// Privileges.
    pub privileges: PrivilegeSet,
    /// Expiry.
    pub expires: Option<SystemTime>,
}

/// Elasticsearch API-key verification.
#[derive(Debug, Clone)]
pub struct EsApiKeySettings {
    /// How many verified credentials are remembered (default [`KEY_CACHE_SIZE`]).
    pub cache_size: u64,
    /// How long a verification is remembered (default [`KEY_CACHE_TTL`]).
    pub cache_ttl: Duration,
}

/// Credentials whose verification is remembered, by default: for Elasticsearch-verified keys
/// and for declared keys alike.
pub const KEY_CACHE_SIZE: u64 = 10_000;
/// How long a verification is remembered, by default.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(60);

/// A client-certificate identity.
#[derive(Debug, Clone)]
pub struct ClientCertEntry {
    /// Name.
    pub name: String,
    /// Subject pattern.
    pub subject: Option<Glob>,
    /// SAN pattern.
    pub san: Option<Glob>,
    /// Roles.
    pub roles: std::sync::Arc<[String]>,
    /// Privileges.
    pub privileges: PrivilegeSet,
}

/// Anonymous access.
#[derive(Debug, Clone)]
pub struct AnonymousSettings {
    /// Agents allowed.
    pub allow_agent: Vec<String>,
    /// Services allowed; empty = any.
    pub allow_service: Vec<String>,
    /// Roles.
    pub roles: std::sync::Arc<[String]>,
    /// Privileges.
    pub privileges: PrivilegeSet,
    /// Events per second per IP.
    pub event_limit: u64,
    /// IPs tracked.
    pub ip_limit: u64,
}

/// Access rules.
#[derive(Debug, Clone)]
pub struct AccessRules {
    /// Effect when no rule matches.
    pub default: Effect,
    /// Rules in order.
    pub rules: Vec<AccessRule>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct AccessRule {
    /// Name (shared, so decisions can name it without copying).
    pub name: std::sync::Arc<str>,
    /// Condition.
    pub when: Expr,
    /// Effect.
    pub effect: Effect,
}

/// RUM settings.
#[derive(Debug, Clone)]
pub struct RumSettings {
    /// Whether RUM routes accept events.
    pub enabled: bool,
    /// Allowed origins.
    pub allow_origins: Vec<Glob>,
    /// Extra CORS headers.
    pub allow_headers: Vec<String>,
    /// RUM response headers.
    pub response_headers: Vec<(String, String)>,
    /// Library frame pattern.
    pub library_pattern: regex::Regex,
    /// Exclude-from-grouping pattern.
    pub exclude_from_grouping: regex::Regex,
    /// Source mapping of stack frames; `None` when off.
    pub source_mapping: Option<SourceMappingSettings>,
}

/// Source mapping of RUM stack frames (`[rum.source_mapping]`), read from the Elasticsearch
/// output's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMappingSettings {
    /// How long a fetched map, or its absence, is kept; the list of uploaded maps is read
    /// again at this interval, at most [`SOURCE_MAP_METADATA_REFRESH`].
    pub cache_expiration: Duration,
    /// Time the source maps of one batch of events may take.
    pub timeout: Duration,
    /// Largest decompressed source map used.
    pub max_sourcemap_size: u64,
    /// Maps kept in memory at once.
    pub cache_entries: u32,
    /// Decompressed bytes of maps kept in memory at once.
    pub cache_size: u64,
}

impl SourceMappingSettings {
    /// How often the list of uploaded source maps is read: every `cache_expiration`, at most
    /// every 30 seconds as APM Server does.
    pub fn metadata_refresh(&self) -> Duration {
        self.cache_expiration.min(SOURCE_MAP_METADATA_REFRESH)
    }
}

/// APM Server re-reads the list of uploaded source maps every 30 seconds.
pub const SOURCE_MAP_METADATA_REFRESH: Duration = Duration::from_secs(30);
/// Default of `cache_expiration` (APM Server's former `source_mapping.cache.expiration`).
pub const SOURCE_MAP_CACHE_EXPIRATION: Duration = Duration::from_secs(300);
/// APM Server's `source_mapping.timeout`.
pub const SOURCE_MAP_TIMEOUT: Duration = Duration::from_secs(5);
/// APM Server's `source_mapping.max_sourcemap_size` (500MiB).
pub const SOURCE_MAP_MAX_SIZE: u64 = 500 << 20;
/// APM Server's source map cache size (entries).
pub const SOURCE_MAP_CACHE_ENTRIES: u32 = 128;
/// Default of `cache_size` (256MiB).
pub const SOURCE_MAP_CACHE_SIZE: u64 = 256 << 20;

/// A central configuration entry.
#[derive(Debug, Clone)]
pub struct AgentConfigEntry {
    /// Service.
    pub service: String,
    /// Environment; `None` applies to any.
    pub environment: Option<String>,
    /// Agent name.
    pub agent_name: Option<String>,
    /// Settings as strings.
    pub settings: BTreeMap<String, String>,
    /// Entity tag of the settings.
    pub etag: String,
}

/// Central agent configuration read from `.apm-agent-configuration`
/// (`[agent_config_source] elasticsearch = true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfigSourceSettings {
    /// How often the entries are read again.
    pub cache_expiration: Duration,
}

/// APM Server's `apm-server.agent.config.cache.expiration`.
pub const AGENT_CONFIG_CACHE_EXPIRATION: Duration = Duration::from_secs(30);

/// Where events go.
#[derive(Debug, Clone)]
pub enum OutputSettings {
    /// File output.
    File(FileOutputSettings),
    /// Elasticsearch.
    Elasticsearch(Box<EsOutputSettings>),
    /// Drops every document.
    Discard,
}

/// File output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutputSettings {
    /// Path.
    pub path: PathBuf,
    /// Rotation size.
    pub rotate_bytes: u64,
    /// Files kept.
    pub keep_files: u64,
}

/// Elasticsearch credentials.
#[derive(Debug, Clone)]
pub enum EsCredentials {
    /// None.
    None,
    /// `id:key`.
    ApiKey(SecretSlot),
    /// Basic auth.
    Basic {
        /// User.
        username: String,
        /// Password.
        password: SecretSlot,
    },
}

/// Elasticsearch output.
#[derive(Debug, Clone)]
pub struct EsOutputSettings {
    /// Host URLs (scheme, host, port), without trailing slash.
    pub hosts: Vec<String>,
    /// Path prefix, empty or starting with `/`.
    pub path: String,
    /// Credentials.
    pub credentials: EsCredentials,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Gzip level, 0 = off.
    pub compression_level: u32,
    /// Flush threshold (uncompressed bytes).
    pub flush_bytes: u64,
    /// Flush interval.
    pub flush_interval: Duration,
    /// Requests in flight.
    pub max_requests: u64,
    /// Retries.
    pub max_retries: u64,
    /// Backoff start.
    pub backoff_init: Duration,
    /// Backoff cap.
    pub backoff_max: Duration,
    /// Connect timeout.
    pub timeout: Duration,
    /// Buffer bound.
    pub buffer_bytes: u64,
    /// Wait for buffer room.
    pub queue_timeout: Duration,
    /// Dead-letter file.
    pub dead_letter_path: Option<PathBuf>,
    /// TLS.
    pub tls: ClientTlsSettings,
}

/// Client TLS towards Elasticsearch.
#[derive(Debug, Clone)]
pub struct ClientTlsSettings {
    /// Verification.
    pub verification_mode: VerificationMode,
    /// Extra CAs.
    pub certificate_authorities: Vec<PathBuf>,
    /// CA fingerprint (SHA-256 bytes).
    pub ca_trusted_fingerprint: Option<[u8; 32]>,
    /// Client certificate.
    pub certificate: Option<PathBuf>,
    /// Client key.
    pub key: Option<PathBuf>,
    /// Client key passphrase.
    pub key_passphrase: Option<SecretSlot>,
    /// Versions.
    pub versions: Vec<TlsVersion>,
    /// Implementation.
    pub backend: TlsBackend,
}

/// Identity a policy test assumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestIdentity {
    /// From the headers, as a real request.
    FromHeaders,
    /// A named entry of this kind, without presenting its credential.
    Named(IdentityKind, String),
    /// Anonymous.
    Anonymous,
}

/// A policy test.
#[derive(Debug, Clone)]
pub struct PolicyTestCase {
    /// Name.
    pub name: String,
    /// Span of the test in the policy, for reports.
    pub span: std::ops::Range<usize>,
    /// Listener.
    pub listener: String,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Peer address.
    pub from: std::net::IpAddr,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Assumed identity.
    pub identity: TestIdentity,
    /// Client certificate subject.
    pub client_cert_subject: Option<String>,
    /// Expected effect.
    pub expect: Effect,
    /// Expected status.
    pub status: Option<u16>,
    /// Expected deciding rule.
    pub rule: Option<String>,
}
