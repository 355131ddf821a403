//! The policy file as written: the TOML structure read with serde, every value keeping its span.
//!
//! These types are the "low" form of a policy: they say what the file contains, not what it
//! means. Nothing here is resolved or checked beyond its TOML type; [`crate::policy::compile`]
//! turns them into the typed [`crate::policy::Policy`]. The JSON Schema that `apmgate schema`
//! prints is generated from these types, and the structural checker walks the same schema, so
//! the file format, its schema and its diagnostics cannot drift apart.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;

use super::spanned::Sp;
use super::vocab::{
    ClientAuth, Effect, Protocol, ProxyHeader, RouteName, TlsBackend, VerificationMode,
};

/// A map of named entries (`[tls.NAME]`, `[role.NAME]`, ...), keys carrying their spans.
pub type Named<T> = BTreeMap<Sp<String>, T>;

/// An apmgate policy: everything the gateway does, in one file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "apmgate policy")]
pub struct PolicyFile {
    /// Gateway-wide settings.
    #[serde(default)]
    pub gateway: Gateway,
    /// Listeners: where the gateway accepts connections and what it serves there.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Listener>,
    /// Named server TLS profiles, referenced by listeners.
    #[serde(default)]
    pub tls: Named<TlsProfile>,
    /// Who may send: secret tokens, API keys, client certificates, anonymous agents.
    #[serde(default)]
    pub auth: Auth,
    /// Named IP allowlists, referenced by access rules (`source in NAME`).
    #[serde(default, rename = "allowlist")]
    pub allowlists: Named<Allowlist>,
    /// Feature roles: named sets of privileges.
    #[serde(default, rename = "role")]
    pub roles: Named<Role>,
    /// Ordered access rules and the default effect.
    #[serde(default)]
    pub access: Access,
    /// Real User Monitoring (browser agents).
    #[serde(default)]
    pub rum: Rum,
    /// Central agent configuration served on `/config/v1/agents`.
    #[serde(default, rename = "agent_config")]
    pub agent_configs: Vec<AgentConfig>,
    /// Central agent configuration kept in Elasticsearch by Kibana's APM app.
    #[serde(default)]
    pub agent_config_source: AgentConfigSource,
    /// Where accepted events go. Without this section, events go to the file output.
    #[serde(default)]
    pub output: Output,
    /// Aggregated metrics (what Kibana's APM app charts), as APM Server computes them.
    #[serde(default)]
    pub aggregation: Aggregation,
    /// A write-ahead log between intake and output: 202 then means "on disk".
    pub spool: Option<Spool>,
    /// Policy tests run by `apmgate test`: a request and the decision expected for it.
    #[serde(default, rename = "test")]
    pub tests: Vec<PolicyTest>,
}

/// Gateway-wide settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Data stream namespace (`traces-apm-<namespace>`). Default `default`.
    pub namespace: Option<Sp<String>>,
    /// `service.environment` for events that carry none.
    pub default_service_environment: Option<Sp<String>>,
    /// Record client IP and user agent in events. Default true.
    pub capture_personal_data: Option<Sp<bool>>,
    /// Proxies whose `Forwarded`, `X-Real-IP` and `X-Forwarded-For` headers are believed:
    /// CIDRs, ranges or addresses. Requests from anyone else are identified by their socket address.
    #[serde(default)]
    pub trusted_proxies: Vec<Sp<String>>,
    /// The forwarding header the trusted proxies set: `x-forwarded-for`, `forwarded` or
    /// `x-real-ip`. Only that header is believed from them; the others are ignored, since a
    /// client may have written them. Without it, `Forwarded`, then `X-Real-IP`, then
    /// `X-Forwarded-For` are tried (warned about).
    pub trusted_proxy_header: Option<Sp<ProxyHeader>>,
    /// Headers added to every APM response.
    #[serde(default)]
    pub response_headers: Named<Sp<String>>,
    /// How long agents may cache central configuration (`Cache-Control: max-age`). Default `30s`.
    pub agent_config_max_age: Option<Sp<String>>,
    /// Intake requests decoded at once, over all listeners (APM Server's
    /// `max_concurrent_decoders`); more wait, within their `read_timeout`. Default: as APM
    /// Server, 128 per GiB of memory (the cgroup limit, or the machine's) times 0.8, at most 2048.
    pub max_concurrent_decoders: Option<Sp<u32>>,
    /// The intake's memory budget: bytes all requests being decoded may hold at once (their
    /// current lines, metadata, batches waiting to be published and decompressors); a request
    /// that would pass it is answered 503 with `Retry-After`. Default: an eighth of the memory
    /// (the cgroup limit, or the machine's), between 32 MiB and 1 GiB.
    pub max_intake_memory: Option<Sp<SizeValue>>,
}

/// Aggregated metrics: APM Server's `transaction`, `service_transaction`, `service_summary`
/// and `service_destination` metric sets, written to `metrics-apm.<set>.<interval>-<namespace>`
/// when each interval closes and, for partial intervals, at shutdown.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aggregation {
    /// Aggregate events into metrics. Default true, as in APM Server.
    pub enabled: Option<Sp<bool>>,
    /// The intervals, each a multiple of the shortest, from 1s to 18h. Default
    /// `["1m", "10m", "60m"]`, the ones Kibana's APM app reads.
    pub intervals: Option<Sp<Vec<Sp<String>>>>,
    /// Services per interval before the rest go to the `_other` service. Default: 1,000 per GiB
    /// of memory (the cgroup limit, or the machine's; at most 64 GiB counted), as APM Server.
    pub max_services: Option<Sp<u32>>,
    /// Transaction groups per interval (a tenth of them per service). Default: 5,000 per GiB.
    pub max_transaction_groups: Option<Sp<u32>>,
    /// Service transaction groups per interval (a tenth per service). Default: 1,000 per GiB.
    pub max_service_transaction_groups: Option<Sp<u32>>,
    /// Service destination groups per interval (a tenth per service). Default: 5,000 per GiB
    /// plus 5,000.
    pub max_service_destination_groups: Option<Sp<u32>>,
}

/// The durable spool: accepted documents are written to a write-ahead log before the intake
/// answers 202, and replayed after a crash until the output has indexed them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spool {
    /// The spool's directory (created at start; relative paths from the policy's directory).
    pub path: Sp<String>,
    /// Bytes of documents the spool may hold before intake answers 503 `queue is full`.
    /// Default `1GiB`. The disk may hold one segment more.
    pub max_bytes: Option<Sp<SizeValue>>,
    /// `batch` (default): a batch is answered 202 once it is fsynced, concurrent batches sharing
    /// one fsync; it survives a power cut. `interval`: answered once written (it survives the
    /// process being killed), fsynced every `fsync_interval`.
    pub fsync: Option<Sp<FsyncMode>>,
    /// With `fsync = "interval"`: how often. Default `1s`.
    pub fsync_interval: Option<Sp<String>>,
    /// Size of one log file; acknowledged files are deleted whole. Default `64MiB`.
    pub segment_bytes: Option<Sp<SizeValue>>,
}

/// When the spool fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// Before answering each batch (group commit).
    Batch,
    /// Every `fsync_interval`.
    Interval,
}

/// A listener: an address, the protocols spoken there, and what is served.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique name, used in access rules (`listener == NAME`), logs and metrics.
    pub name: Sp<String>,
    /// `host:port`, `[v6]:port`, or `unix:/path/to.sock`.
    pub bind: Sp<String>,
    /// Protocols: `http1`, `http2` (TLS + ALPN), `h2c`, `http3`. Default `["http1", "http2"]`
    /// with TLS, `["http1"]` without.
    pub protocols: Option<Sp<Vec<Sp<Protocol>>>>,
    /// Name of a `[tls.NAME]` profile. Without it the listener is plaintext.
    pub tls: Option<Sp<String>>,
    /// Route groups served. Default: every APM route (not `metrics`).
    pub routes: Option<Sp<Vec<Sp<RouteName>>>>,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
}

/// A size: an integer number of bytes or a string such as `300KiB`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(u64),
    /// A size with a unit, parsed by the policy grammar.
    Text(String),
}

impl JsonSchema for SizeValue {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: bytes as an integer, or a string with a unit (B, KB, KiB, MB, MiB, GB, GiB), e.g. \"300KiB\".",
            "type": ["integer", "string"],
            "minimum": 0
        })
    }
}

/// Limits and timeouts of a listener. Defaults are APM Server's.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request header block. Default `1MiB`.
    pub max_header_size: Option<Sp<SizeValue>>,
    /// Largest NDJSON line (one event). Default `300KiB`.
    pub max_event_size: Option<Sp<SizeValue>>,
    /// Largest request body after decompression. Default `100MiB`.
    pub max_body_size: Option<Sp<SizeValue>>,
    /// Time to read a whole request. Default `30s`.
    pub read_timeout: Option<Sp<String>>,
    /// Time to write a response. Default `30s`.
    pub write_timeout: Option<Sp<String>>,
    /// Keep-alive idle time. Default `45s`.
    pub idle_timeout: Option<Sp<String>>,
    /// Time in-flight requests get on shutdown. Default `30s`.
    pub shutdown_timeout: Option<Sp<String>>,
    /// Time a TLS handshake may take. Default `10s`.
    pub tls_handshake_timeout: Option<Sp<String>>,
    /// Concurrent connections; 0 means unlimited. Default 0.
    pub max_connections: Option<Sp<u64>>,
    /// HTTP/3: concurrent request streams per QUIC connection. Default 100.
    pub quic_max_streams: Option<Sp<u32>>,
    /// HTTP/3: flow-control window of one request stream. Default `1MiB`.
    pub quic_stream_receive_window: Option<Sp<SizeValue>>,
    /// HTTP/3: flow-control window of a QUIC connection. Default `8MiB`.
    pub quic_receive_window: Option<Sp<SizeValue>>,
}

/// A server TLS profile.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsProfile {
    /// Path of the PEM certificate chain.
    pub certificate: Sp<String>,
    /// Path of the PEM private key.
    pub key: Sp<String>,
    /// Passphrase of an encrypted key: `env:NAME`, `file:/path`, or inline (discouraged).
    pub key_passphrase: Option<Sp<String>>,
    /// PEM files of the CAs that client certificates must chain to.
    #[serde(default)]
    pub certificate_authorities: Vec<Sp<String>>,
    /// `none`, `optional` or `required`. Default `none`, or `required` when
    /// `certificate_authorities` is set (as APM Server).
    pub client_auth: Option<Sp<ClientAuth>>,
    /// `TLSv1.2` and/or `TLSv1.3`. Default both.
    pub supported_protocols: Option<Sp<Vec<Sp<String>>>>,
    /// TLS 1.2 cipher suites by IANA name; TLS 1.3 suites are always the library's.
    #[serde(default)]
    pub cipher_suites: Vec<Sp<String>>,
    /// Key exchange groups: `X25519`, `P-256`, `P-384`.
    #[serde(default)]
    pub curve_types: Vec<Sp<String>>,
    /// `rustls` (default) or `native-tls`.
    pub backend: Option<Sp<TlsBackend>>,
}

/// Who may send.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Named secret tokens (`Authorization: Bearer <token>`).
    #[serde(default)]
    pub secret_token: Named<SecretToken>,
    /// API keys declared in the policy (`Authorization: ApiKey base64(id:key)`), stored as hashes.
    #[serde(default)]
    pub api_key: Named<ApiKey>,
    /// API keys verified by Elasticsearch, as APM Server does.
    pub elasticsearch_api_keys: Option<EsApiKeys>,
    /// Client-certificate identities: subject or SAN patterns that map to roles.
    #[serde(default)]
    pub client_cert: Named<ClientCertIdentity>,
    /// Anonymous access (RUM agents).
    pub anonymous: Option<Anonymous>,
}

/// A secret token.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretToken {
    /// The token: `env:NAME`, `file:/path`, or inline (discouraged: warned about).
    pub secret: Sp<String>,
    /// Roles granted. Default: every privilege, as APM Server grants secret-token holders.
    pub roles: Option<Sp<Vec<Sp<String>>>>,
}

/// An API key declared in the policy. The secret itself is never stored, only its hash.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Key id: the part before `:` in the decoded credential.
    pub id: Sp<String>,
    /// Argon2id hash of the key secret, in PHC form (`$argon2id$v=19$...`); `apmgate keys new` prints it.
    pub hash: Sp<String>,
    /// Roles granted.
    pub roles: Sp<Vec<Sp<String>>>,
    /// When the key stops working (RFC 3339 date-time).
    pub expires: Option<Sp<Expiry>>,
}

/// An RFC 3339 date-time, written as a TOML date-time.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Expiry(pub toml::value::Datetime);

impl JsonSchema for Expiry {
    fn schema_name() -> Cow<'static, str> {
        "DateTime".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// API keys verified by Elasticsearch (`_has_privileges`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EsApiKeys {
    /// Default true when the section exists.
    pub enabled: Option<Sp<bool>>,
    /// Verification results kept in the cache (an LRU). Default 10000.
    pub cache_size: Option<Sp<u64>>,
    /// How long a verification result is trusted. Default `1m`.
    pub cache_ttl: Option<Sp<String>>,
}

/// A client-certificate identity.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertIdentity {
    /// Glob over the RFC 4514 subject, e.g. `CN=*.agents.example.com,O=Example`.
    pub subject: Option<Sp<String>>,
    /// Glob over DNS subject alternative names, e.g. `*.agents.example.com`.
    pub san: Option<Sp<String>>,
    /// Roles granted.
    pub roles: Sp<Vec<Sp<String>>>,
}

/// Anonymous access.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Anonymous {
    /// Default true when the section exists.
    pub enabled: Option<Sp<bool>>,
    /// Agent names allowed (`agent.name`). Default `["rum-js", "js-base"]`.
    pub allow_agent: Option<Sp<Vec<Sp<String>>>>,
    /// Service names allowed; empty means any. Default empty.
    #[serde(default)]
    pub allow_service: Vec<Sp<String>>,
    /// Roles granted to anonymous callers. Default: `event:write` and `config_agent:read`.
    pub roles: Option<Sp<Vec<Sp<String>>>>,
    /// Per-IP rate limits.
    pub rate_limit: Option<RateLimit>,
}

/// Per-IP token buckets for anonymous callers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Events per second per IP (burst 3x). Default 300.
    pub event_limit: Option<Sp<u64>>,
    /// Number of IPs tracked (LRU). Default 1000.
    pub ip_limit: Option<Sp<u64>>,
}

/// A named IP allowlist.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allowlist {
    /// CIDRs (`10.0.0.0/8`, `2001:db8::/32`), ranges (`10.0.0.1-10.0.0.9`) or addresses.
    pub cidrs: Vec<Sp<String>>,
    /// Exceptions carved out of `cidrs`.
    #[serde(default)]
    pub except: Vec<Sp<String>>,
}

/// A feature role.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Privileges: `event:write`, `config_agent:read`, `sourcemap:write`, `monitoring:read`.
    #[serde(default)]
    pub privileges: Vec<Sp<String>>,
    /// Other roles whose privileges this one includes.
    #[serde(default)]
    pub include: Vec<Sp<String>>,
}

/// Access rules.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Effect when no rule matches. Default `allow`.
    pub default: Option<Sp<Effect>>,
    /// Rules, tried in order; the first whose `when` matches decides.
    #[serde(default)]
    pub rule: Vec<Rule>,
}

/// An access rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique name, reported in decisions and denials.
    pub name: Sp<String>,
    /// Condition over the request, e.g. `route == intake and not source in office`.
    pub when: Sp<String>,
    /// `allow` or `deny`.
    pub effect: Sp<Effect>,
    /// Free text for humans.
    pub description: Option<String>,
}

/// Real User Monitoring.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rum {
    /// Serve the RUM routes. Default false.
    pub enabled: Option<Sp<bool>>,
    /// Origins allowed (globs over the `Origin` header). Default `["*"]`.
    pub allow_origins: Option<Sp<Vec<Sp<String>>>>,
    /// Extra request headers allowed in CORS preflight.
    #[serde(default)]
    pub allow_headers: Vec<Sp<String>>,
    /// Headers added to RUM responses.
    #[serde(default)]
    pub response_headers: Named<Sp<String>>,
    /// Regex marking stack frames as library frames. Default `node_modules|bower_components|~`.
    pub library_pattern: Option<Sp<String>>,
    /// Regex of frames left out of error grouping. Default `^/webpack`.
    pub exclude_from_grouping: Option<Sp<String>>,
    /// Source mapping of RUM stack frames with the maps Kibana stores in Elasticsearch.
    #[serde(default)]
    pub source_mapping: RumSourceMapping,
}

/// `[rum.source_mapping]`: RUM stack frames mapped to their original source with the source
/// maps uploaded through Kibana (index `.apm-source-map`), as APM Server does.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RumSourceMapping {
    /// Map RUM stack frames. Default: on when RUM is enabled and the output is Elasticsearch.
    pub enabled: Option<Sp<bool>>,
    /// How long a fetched source map (or its absence) is kept, and the longest the list of
    /// uploaded maps is trusted before it is read again (at most every 30s). Default `5m`.
    pub cache_expiration: Option<Sp<String>>,
    /// Time the source maps of a batch (10 events) may take. Default `5s` (APM Server's).
    pub timeout: Option<Sp<String>>,
    /// Largest source map, decompressed; a larger one is not used (`sourcemap.error`).
    /// Default `500MiB` (APM Server's).
    pub max_sourcemap_size: Option<Sp<SizeValue>>,
    /// Source maps kept in memory at once. Default 128 (APM Server's).
    pub cache_entries: Option<Sp<u32>>,
    /// Bytes of source maps (decompressed) kept in memory at once. Default `256MiB`.
    pub cache_size: Option<Sp<SizeValue>>,
}

/// A central configuration setting value; served to agents as a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A string.
    String(String),
}

impl JsonSchema for SettingValue {
    fn schema_name() -> Cow<'static, str> {
        "SettingValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "integer", "number", "boolean"] })
    }
}

/// One central agent configuration entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// `service.name` it applies to.
    pub service: Sp<String>,
    /// `service.environment` it applies to; absent means any environment.
    pub environment: Option<Sp<String>>,
    /// Agent the settings are for; anonymous callers only get settings of entries whose
    /// `agent_name` is empty or allowed for them (as APM Server).
    pub agent_name: Option<Sp<String>>,
    /// Settings, e.g. `transaction_sample_rate = 0.2`.
    pub settings: Named<Sp<SettingValue>>,
}

/// Where central agent configuration comes from besides the policy's `[[agent_config]]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfigSource {
    /// Answer agents from the entries Kibana's APM app keeps in `.apm-agent-configuration`,
    /// read through the Elasticsearch output's connection (its hosts, credentials and TLS), as
    /// APM Server does. Needs `[output.elasticsearch]`. Default false: only the policy's
    /// entries are served.
    pub elasticsearch: Option<Sp<bool>>,
    /// How often the entries are read again, so how long a change made in Kibana takes to
    /// reach agents (APM Server's `apm-server.agent.config.cache.expiration`). Default `30s`.
    pub cache_expiration: Option<Sp<String>>,
}

/// Outputs. At most one may be declared; the file output is the default.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Writes `_bulk` NDJSON to a local file.
    pub file: Option<FileOutput>,
    /// Sends documents to Elasticsearch.
    pub elasticsearch: Option<EsOutput>,
    /// Drops every document (for measuring the intake, and dry runs); events are still counted
    /// in the metrics as accepted.
    pub discard: Option<Sp<DiscardOutput>>,
}

/// The discard output: no settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscardOutput {}

/// File output.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileOutput {
    /// File to write. Default `data/apmgate-events.ndjson`.
    pub path: Option<Sp<String>>,
    /// Rotate when the file reaches this size. Default `100MiB`.
    pub rotate_bytes: Option<Sp<SizeValue>>,
    /// Rotated files kept. Default 5.
    pub keep_files: Option<Sp<u64>>,
}

/// Client TLS towards Elasticsearch.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// `full` (default), `strict`, `certificate` or `none`.
    pub verification_mode: Option<Sp<VerificationMode>>,
    /// Extra CA PEM files, trusted beside the system roots.
    #[serde(default)]
    pub certificate_authorities: Vec<Sp<String>>,
    /// Hex SHA-256 of a CA certificate to trust.
    pub ca_trusted_fingerprint: Option<Sp<String>>,
    /// Client certificate for PKI authentication.
    pub certificate: Option<Sp<String>>,
    /// Its key.
    pub key: Option<Sp<String>>,
    /// Its key's passphrase (secret reference).
    pub key_passphrase: Option<Sp<String>>,
    /// `TLSv1.2` and/or `TLSv1.3`.
    pub supported_protocols: Option<Sp<Vec<Sp<String>>>>,
    /// `rustls` (default) or `native-tls`.
    pub backend: Option<Sp<TlsBackend>>,
}

/// Elasticsearch output. Defaults are APM Server's.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EsOutput {
    /// URLs such as `https://es1:9200`.
    pub hosts: Sp<Vec<Sp<String>>>,
    /// Path prefix for every Elasticsearch API call.
    pub path: Option<Sp<String>>,
    /// `id:api_key` as a secret reference (encoded by apmgate).
    pub api_key: Option<Sp<String>>,
    /// Basic auth user.
    pub username: Option<Sp<String>>,
    /// Basic auth password (secret reference).
    pub password: Option<Sp<String>>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: Named<Sp<String>>,
    /// Gzip level 0-9; 0 disables compression. Default 5.
    pub compression_level: Option<Sp<u64>>,
    /// Flush when this many uncompressed bytes are buffered. Default `1MiB`.
    pub flush_bytes: Option<Sp<SizeValue>>,
    /// Flush at least this often. Default `1s`.
    pub flush_interval: Option<Sp<String>>,
    /// Bulk requests in flight. Default 10.
    pub max_requests: Option<Sp<u64>>,
    /// Retries of a request or a document. Default 3.
    pub max_retries: Option<Sp<u64>>,
    /// First retry backoff. Default `1s`.
    pub backoff_init: Option<Sp<String>>,
    /// Longest retry backoff. Default `60s`.
    pub backoff_max: Option<Sp<String>>,
    /// Connect and TLS handshake timeout. Default `5s`.
    pub timeout: Option<Sp<String>>,
    /// In-memory buffer for accepted events. Default `64MiB`.
    pub buffer_bytes: Option<Sp<SizeValue>>,
    /// How long intake waits for room in a full buffer before answering 503. Default `1s`.
    pub queue_timeout: Option<Sp<String>>,
    /// File where documents that failed for good are written with their reason.
    pub dead_letter_path: Option<Sp<String>>,
    /// TLS towards Elasticsearch.
    pub tls: Option<ClientTls>,
}

/// What a policy test expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The request is let through.
    Allow,
    /// The request is refused.
    Deny,
}

/// A policy test: a request and the decision expected for it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyTest {
    /// Unique name.
    pub name: Sp<String>,
    /// Listener the request arrives on.
    pub listener: Sp<String>,
    /// HTTP method. Default `POST`.
    pub method: Option<Sp<String>>,
    /// Request path, e.g. `/intake/v2/events`.
    pub path: Sp<String>,
    /// Socket peer address.
    pub from: Sp<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: Named<Sp<String>>,
    /// Identity to assume without a credential: `secret_token:NAME`, `api_key:NAME`,
    /// `client_cert:NAME`, `anonymous`.
    pub identity: Option<Sp<String>>,
    /// Subject of the client certificate presented.
    pub client_cert_subject: Option<Sp<String>>,
    /// `allow` or `deny`.
    pub expect: Sp<Expect>,
    /// Expected HTTP status.
    pub status: Option<Sp<u16>>,
    /// Expected deciding rule.
    pub rule: Option<Sp<String>>,
}
