//! The APM Server settings the import knows: those it reads, those read whole, the secrets, and
//! those without an equivalent in apmgate (with the reason and what apmgate does instead).

/// Settings whose value is a mapping read whole (headers and the like).
pub(crate) const MAP_VALUES: &[&str] = &[
    "apm-server.response_headers",
    "apm-server.rum.response_headers",
    "output.elasticsearch.headers",
    "output.elasticsearch.parameters",
    "fields",
];

/// Every setting the import reads, for `did you mean` help on unknown ones.
pub(crate) const KNOWN: &[&str] = &[
    "apm-server.host",
    "apm-server.max_header_size",
    "apm-server.max_event_size",
    "apm-server.read_timeout",
    "apm-server.write_timeout",
    "apm-server.idle_timeout",
    "apm-server.shutdown_timeout",
    "apm-server.max_connections",
    "apm-server.max_concurrent_decoders",
    "apm-server.capture_personal_data",
    "apm-server.default_service_environment",
    "apm-server.response_headers",
    "apm-server.data_streams.namespace",
    "apm-server.data_streams.wait_for_integration",
    "apm-server.ssl.enabled",
    "apm-server.ssl.certificate",
    "apm-server.ssl.key",
    "apm-server.ssl.key_passphrase",
    "apm-server.ssl.certificate_authorities",
    "apm-server.ssl.client_authentication",
    "apm-server.ssl.supported_protocols",
    "apm-server.ssl.cipher_suites",
    "apm-server.ssl.curve_types",
    "apm-server.auth.secret_token",
    "apm-server.auth.api_key.enabled",
    "apm-server.auth.api_key.limit",
    "apm-server.auth.anonymous.enabled",
    "apm-server.auth.anonymous.allow_agent",
    "apm-server.auth.anonymous.allow_service",
    "apm-server.auth.anonymous.rate_limit.event_limit",
    "apm-server.auth.anonymous.rate_limit.ip_limit",
    "apm-server.rum.enabled",
    "apm-server.rum.allow_origins",
    "apm-server.rum.allow_headers",
    "apm-server.rum.response_headers",
    "apm-server.rum.library_pattern",
    "apm-server.rum.exclude_from_grouping",
    "apm-server.rum.source_mapping.enabled",
    "apm-server.rum.source_mapping.timeout",
    "apm-server.rum.source_mapping.max_sourcemap_size",
    "apm-server.rum.source_mapping.cache.expiration",
    "apm-server.agent.config.cache.expiration",
    "apm-server.agent_config",
    "apm-server.data_streams.enabled",
    "output.elasticsearch.enabled",
    "output.elasticsearch.hosts",
    "output.elasticsearch.protocol",
    "output.elasticsearch.path",
    "output.elasticsearch.api_key",
    "output.elasticsearch.username",
    "output.elasticsearch.password",
    "output.elasticsearch.headers",
    "output.elasticsearch.compression_level",
    "output.elasticsearch.flush_bytes",
    "output.elasticsearch.flush_interval",
    "output.elasticsearch.max_requests",
    "output.elasticsearch.max_retries",
    "output.elasticsearch.backoff.init",
    "output.elasticsearch.backoff.max",
    "output.elasticsearch.timeout",
    "output.elasticsearch.bulk_max_size",
    "output.elasticsearch.ssl.enabled",
    "output.elasticsearch.ssl.verification_mode",
    "output.elasticsearch.ssl.certificate_authorities",
    "output.elasticsearch.ssl.ca_trusted_fingerprint",
    "output.elasticsearch.ssl.certificate",
    "output.elasticsearch.ssl.key",
    "output.elasticsearch.ssl.key_passphrase",
    "output.elasticsearch.ssl.supported_protocols",
    "output.file.enabled",
    "output.file.path",
    "output.file.filename",
    "output.file.rotate_every_kb",
    "output.file.number_of_files",
];

/// APM Server and libbeat settings apmgate has no equivalent for, read as a group: the reason,
/// and what apmgate does instead. A group holding only `enabled: false` carries over (off in
/// both).
pub(crate) const NO_EQUIVALENT: &[(&str, &str)] = &[
    (
        "apm-server.kibana",
        "apmgate reads central agent configuration from Elasticsearch ([agent_config_source]) and the policy's [[agent_config]] entries, not through Kibana",
    ),
    (
        "apm-server.agent.config.elasticsearch",
        "apmgate reads central agent configuration through the Elasticsearch output's connection ([agent_config_source])",
    ),
    (
        "apm-server.rum.source_mapping.elasticsearch",
        "apmgate reads source maps through the Elasticsearch output's connection (its hosts, credentials and TLS)",
    ),
    (
        "apm-server.rum.source_mapping.index_pattern",
        "apmgate reads source maps from `.apm-source-map`, where Kibana stores them",
    ),
    (
        "apm-server.expvar",
        "apmgate exposes its metrics on the `metrics` route (add it to a listener's routes)",
    ),
    ("apm-server.pprof", "apmgate has no profiling endpoint"),
    (
        "apm-server.instrumentation",
        "apmgate does not trace itself: it logs (RUST_LOG) and exposes metrics on the `metrics` route",
    ),
    (
        "instrumentation",
        "apmgate does not trace itself: it logs (RUST_LOG) and exposes metrics on the `metrics` route",
    ),
    (
        "apm-server.sampling",
        "apmgate has no tail-based sampling: every accepted event is written",
    ),
    (
        "apm-server.api_key.elasticsearch",
        "apmgate verifies API keys with the cluster of [output.elasticsearch]",
    ),
    (
        "apm-server.auth.api_key.elasticsearch",
        "apmgate verifies API keys with the cluster of [output.elasticsearch]",
    ),
    (
        "apm-server.ilm",
        "apmgate writes data streams; their lifecycle comes from Elasticsearch's APM integration",
    ),
    (
        "apm-server.register",
        "apmgate registers no ingest pipelines; they come from Elasticsearch's APM integration",
    ),
    (
        "apm-server.max_unzipped_size",
        "removed in APM Server 8; apmgate caps the decompressed body with limits.max_body_size (100MiB)",
    ),
    (
        "apm-server.max_request_queue_time",
        "removed in APM Server 8; apmgate bounds waiting for a decoder with read_timeout",
    ),
    (
        "apm-server.concurrent_requests",
        "removed in APM Server 8; apmgate bounds concurrent decoding with gateway.max_concurrent_decoders",
    ),
    (
        "apm-server.wait_ready_interval",
        "apmgate checks no Elasticsearch preconditions before serving",
    ),
    (
        "apm-server.java_attacher",
        "apmgate does not attach agents to processes",
    ),
    (
        "logging",
        "apmgate logs to stderr: the format with `apmgate run --log-format human|json`, the level with RUST_LOG",
    ),
    (
        "path",
        "apmgate resolves relative paths from the policy's directory",
    ),
    (
        "setup",
        "apmgate installs no templates, dashboards or lifecycle policies: they come from Elasticsearch's APM integration",
    ),
    (
        "monitoring",
        "apmgate sends no monitoring data; its metrics are on the `metrics` route",
    ),
    (
        "xpack",
        "apmgate sends no monitoring data; its metrics are on the `metrics` route",
    ),
    (
        "http",
        "libbeat's stats endpoint; apmgate's metrics are on the `metrics` route",
    ),
    (
        "queue",
        "apmgate's output buffer is bounded in bytes (output.elasticsearch buffer_bytes, default 64MiB)",
    ),
    ("processors", "apmgate runs no libbeat processors"),
    ("fields", "apmgate adds no custom fields to documents"),
    (
        "fields_under_root",
        "apmgate adds no custom fields to documents",
    ),
    ("tags", "apmgate adds no tags to documents"),
    ("name", "apmgate's observer fields are fixed"),
    (
        "max_procs",
        "apmgate's runtime uses every core it is given (limit it with the container's CPU quota)",
    ),
    ("gc_percent", "apmgate has no garbage collector to tune"),
    ("seccomp", "apmgate installs no seccomp filter"),
    (
        "output.elasticsearch.bulk_max_size",
        "apmgate flushes by bytes (flush_bytes) and time (flush_interval), not by a count of documents",
    ),
    (
        "output.elasticsearch.worker",
        "apmgate bounds concurrent bulk requests with max_requests",
    ),
    (
        "output.elasticsearch.loadbalance",
        "apmgate always spreads bulk requests over every host",
    ),
    (
        "output.elasticsearch.parameters",
        "apmgate adds no URL parameters to bulk requests",
    ),
    (
        "output.elasticsearch.pipeline",
        "apmgate writes to data streams, whose pipelines come from Elasticsearch's APM integration",
    ),
    (
        "output.elasticsearch.pipelines",
        "apmgate writes to data streams, whose pipelines come from Elasticsearch's APM integration",
    ),
    (
        "output.elasticsearch.index",
        "apmgate writes APM's data streams (traces-apm-<namespace>, ...); set the namespace instead",
    ),
    (
        "output.elasticsearch.indices",
        "apmgate writes APM's data streams (traces-apm-<namespace>, ...); set the namespace instead",
    ),
    (
        "output.elasticsearch.proxy_url",
        "apmgate connects to Elasticsearch directly",
    ),
    (
        "output.elasticsearch.proxy_disable",
        "apmgate connects to Elasticsearch directly",
    ),
    (
        "output.elasticsearch.escape_html",
        "apmgate writes documents as APM Server's default (no HTML escaping)",
    ),
    (
        "output.elasticsearch.allow_older_versions",
        "apmgate does not check the version of Elasticsearch",
    ),
    (
        "output.elasticsearch.autoscaling",
        "apmgate sizes its bulk indexer with max_requests",
    ),
    (
        "output.elasticsearch.ssl.ca_sha256",
        "apmgate pins a CA by ca_trusted_fingerprint (hex SHA-256 of the CA certificate)",
    ),
    (
        "output.elasticsearch.ssl.cipher_suites",
        "apmgate's Elasticsearch client uses its TLS library's suites",
    ),
    (
        "output.elasticsearch.ssl.curve_types",
        "apmgate's Elasticsearch client uses its TLS library's curves",
    ),
    (
        "output.elasticsearch.ssl.renegotiation",
        "apmgate's Elasticsearch client never renegotiates",
    ),
    (
        "apm-server.ssl.verification_mode",
        "apmgate verifies client certificates against certificate_authorities (client_auth)",
    ),
    (
        "apm-server.ssl.ca_sha256",
        "apmgate does not pin client certificates by hash; match them with [auth.client_cert] patterns",
    ),
    (
        "apm-server.ssl.renegotiation",
        "apmgate never renegotiates TLS",
    ),
    (
        "apm-server.ssl.certificate_reload",
        "apmgate reloads certificates when the policy is reloaded (SIGHUP)",
    ),
];

/// The secrets APM Server reads, and the variable a literal one moves to.
pub(crate) const SECRETS: &[(&str, &str)] = &[
    ("apm-server.auth.secret_token", "APMGATE_SECRET_TOKEN"),
    (
        "apm-server.ssl.key_passphrase",
        "APMGATE_TLS_KEY_PASSPHRASE",
    ),
    ("output.elasticsearch.password", "APMGATE_ES_PASSWORD"),
    ("output.elasticsearch.api_key", "APMGATE_ES_API_KEY"),
    (
        "output.elasticsearch.ssl.key_passphrase",
        "APMGATE_ES_TLS_KEY_PASSPHRASE",
    ),
];

/// APM Server 7's names of settings that APM Server 8 renamed: carried under the new name.
pub(crate) const LEGACY: &[(&str, &str)] = &[
    ("apm-server.secret_token", "apm-server.auth.secret_token"),
    (
        "apm-server.api_key.enabled",
        "apm-server.auth.api_key.enabled",
    ),
    ("apm-server.api_key.limit", "apm-server.auth.api_key.limit"),
    (
        "apm-server.rum.allow_service_names",
        "apm-server.auth.anonymous.allow_service",
    ),
    (
        "apm-server.rum.event_rate.limit",
        "apm-server.auth.anonymous.rate_limit.event_limit",
    ),
    (
        "apm-server.rum.event_rate.lru_size",
        "apm-server.auth.anonymous.rate_limit.ip_limit",
    ),
];
