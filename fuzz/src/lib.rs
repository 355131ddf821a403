//! Fuzz targets for apmgate: one function per target, taking the fuzzer's bytes.
//!
//! The AFL wrappers in `src/bin/` call these functions, and `tests/replay.rs` runs every file
//! of `corpus/<target>/` and `crashes/<target>/` through them without a fuzzer. Errors and
//! diagnostics are the normal answer to bad input: only a panic, an abort, a hang or a stack
//! overflow is a finding. A few invariants are checked with assertions (named in each
//! function's docs); a failed one is a panic, hence a finding too.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, SystemTime};

use apmgate::aggregation::Aggregator;
use apmgate::intake::body::{self, BodyError};
use apmgate::intake::lines::{Line, LineReader};
use apmgate::intake::memory::IntakeMemory;
use apmgate::intake::{Failure, OpenGate, StreamContext};
use apmgate::model::{ModelConfig, RequestMeta};
use apmgate::output::{Output, OutputDocument, PublishFuture};
use apmgate::policy::compiled::AggregationSettings;
use apmgate::policy::diagnostics::{Code, Diagnostic, SourceFile, render_human, to_json};
use apmgate::policy::{CompileOptions, Policy, grammar};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

/// A fuzz target: one input, no answer (a panic is the finding).
pub type Target = fn(&[u8]);

/// Every target, by name: what `tests/replay.rs` and `run.sh` iterate over.
pub const TARGETS: &[(&str, Target)] = &[
    ("policy_compile", policy_compile),
    ("rule_grammar", rule_grammar),
    ("intake_v2", intake_v2),
    ("intake_rumv3", intake_rumv3),
    ("body_framing", body_framing),
    ("router", router),
    ("otlp", otlp),
];

/// A current-thread runtime per fuzzing thread, with tokio's clock paused: timers fire as soon
/// as nothing else can run, so a rate-limit wait or a header timeout costs no wall time and a
/// run is deterministic. A real hang (a busy loop) still trips AFL's timeout.
fn block_on<F: Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("tokio runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

/// Renders diagnostics both ways the CLI does (human, without and with colour, and JSON).
fn render(source: &SourceFile, diagnostics: &[Diagnostic]) {
    let human = render_human(source, diagnostics, false);
    let _ = render_human(source, diagnostics, true);
    let json = serde_json::to_string(&to_json(source, diagnostics)).expect("JSON diagnostics");
    std::hint::black_box((human, json));
}

// ---------------------------------------------------------------------------------------------
// policy_compile

/// The bytes (lossy UTF-8) compiled as a policy file, without the environment step, then every
/// diagnostic rendered for people and as JSON, from the source and from the masked source.
pub fn policy_compile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let source = SourceFile::new("fuzz.toml", text.as_ref());
    let c = apmgate::policy::compile(&source, CompileOptions { environment: false });
    render(&c.source, &c.diagnostics);
    render(&c.display_source, &c.diagnostics);
    std::hint::black_box(c.policy.is_some());
}

// ---------------------------------------------------------------------------------------------
// rule_grammar

/// The value parsers of `apmgate::policy::grammar`: the first byte picks one, the rest (lossy
/// UTF-8) is its text. An error is rendered as the compiler would report it, with its span
/// taken as relative to the value.
pub fn rule_grammar(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let text = text.as_ref();
    let error = match which % 8 {
        0 => grammar::parse_rule_expr(text).map(|v| format!("{v:?}")),
        1 => grammar::parse_duration(text).map(|v| format!("{v:?}")),
        2 => grammar::parse_size(text).map(|v| format!("{v:?}")),
        3 => grammar::parse_address_range(text).map(|v| format!("{v:?}")),
        4 => grammar::parse_glob(text).map(|v| format!("{v:?}")),
        5 => grammar::parse_privilege(text).map(|v| format!("{v:?}")),
        6 => grammar::parse_secret(text).map(|v| format!("{v:?}")),
        _ => grammar::parse_bind(text).map(|v| format!("{v:?}")),
    };
    match error {
        Ok(debug) => {
            std::hint::black_box(debug);
        }
        Err(e) => {
            let mut d = Diagnostic::new(Code::WrongType, e.message, e.span, e.label);
            if let Some(help) = e.help {
                d = d.with_help(help);
            }
            render(&SourceFile::new("fuzz.toml", text), &[d]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// intake_v2, intake_rumv3

/// An output that checks what the intake publishes: every document is one line of valid JSON
/// (an object) with a data stream name. Anything else would be written to Elasticsearch as is.
#[derive(Default)]
struct CheckingOutput {
    documents: AtomicUsize,
}

impl Output for CheckingOutput {
    fn publish(&self, batch: Vec<OutputDocument>) -> PublishFuture<'_> {
        for doc in &batch {
            assert!(
                !doc.data_stream.is_empty(),
                "a document without data stream"
            );
            assert!(
                !doc.body.contains(&b'\n'),
                "a document spans lines: {}",
                String::from_utf8_lossy(&doc.body)
            );
            match serde_json::from_slice::<serde_json::Value>(&doc.body) {
                Ok(v) => assert!(v.is_object(), "a document that is not an object: {v}"),
                Err(e) => panic!(
                    "the model wrote invalid JSON ({e}): {}",
                    String::from_utf8_lossy(&doc.body)
                ),
            }
        }
        self.documents.fetch_add(batch.len(), Ordering::Relaxed);
        Box::pin(std::future::ready(Ok(())))
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = u64> + Send + '_>> {
        Box::pin(std::future::ready(0))
    }
}

fn model_config() -> &'static ModelConfig {
    static CONFIG: OnceLock<ModelConfig> = OnceLock::new();
    CONFIG.get_or_init(|| ModelConfig {
        default_service_environment: Some("fuzzing".into()),
        library_pattern: Some(regex_of("node_modules|bower_components|~")),
        exclude_from_grouping: Some(regex_of("^/webpack")),
        aggregate: true,
        ..ModelConfig::default()
    })
}

/// Aggregation with small limits, so that inputs reach the overflow buckets.
fn aggregation_settings() -> &'static AggregationSettings {
    static SETTINGS: OnceLock<AggregationSettings> = OnceLock::new();
    SETTINGS.get_or_init(|| AggregationSettings {
        enabled: true,
        intervals: vec![Duration::from_secs(60), Duration::from_secs(600)],
        max_services: Some(2),
        max_transaction_groups: Some(20),
        max_service_transaction_groups: Some(20),
        max_service_destination_groups: Some(20),
    })
}

fn regex_of(pattern: &str) -> regex::Regex {
    regex::Regex::new(pattern).expect("regex")
}

/// An NDJSON event stream through `apmgate::intake::process_stream`, as the intake handler
/// runs it (metadata line, then events in batches of 10), with the model settings of a policy
/// with RUM enabled and an output that checks every document.
fn intake(data: &[u8], rum: bool) {
    let output = CheckingOutput::default();
    let aggregator = Aggregator::new(1 << 30, Arc::new(apmgate::telemetry::Metrics::default()));
    let ctx = StreamContext {
        max_event_size: 300 * 1024,
        max_body_size: 4 << 20,
        request: RequestMeta {
            receipt_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            rum,
            client_ip: Some(IpAddr::from([192, 0, 2, 7])),
            client_port: Some(40_000),
            nat_ip: rum.then(|| IpAddr::from([10, 0, 0, 1])),
            user_agent: Some("Mozilla/5.0 (fuzz)"),
        },
        model: model_config(),
        gate: &OpenGate,
        output: &output,
        memory: &IntakeMemory::unbounded(),
        source_maps: None,
        aggregation: Some((&aggregator, aggregation_settings())),
    };
    let result = block_on(apmgate::intake::process_stream(data, &ctx));
    // Every aggregated document is one line of JSON in an aggregated data stream.
    for doc in aggregator.harvest(0, true, model_config(), "fuzz") {
        assert!(
            doc.data_stream.starts_with("metrics-apm."),
            "{}",
            doc.data_stream
        );
        serde_json::from_slice::<serde_json::Value>(&doc.body).expect("aggregated JSON");
    }
    assert!(result.errors.len() <= apmgate::intake::MAX_REPORTED_ERRORS);
    assert!(
        result.bytes <= data.len() as u64,
        "read {} bytes of {}",
        result.bytes,
        data.len()
    );
    // An open gate and an output that never refuses: only invalid input may fail the stream.
    assert!(
        matches!(result.failure, None | Some(Failure::Invalid)),
        "failure {:?}",
        result.failure
    );
    std::hint::black_box(output.documents.load(Ordering::Relaxed));
}

/// Intake v2 (`/intake/v2/events`): `metadata`, `transaction`, `span`, `error`, `metricset`,
/// `log` lines.
pub fn intake_v2(data: &[u8]) {
    intake(data, false)
}

/// RUM (`/intake/v3/rum/events` and `/intake/v2/rum/events`): the request is marked RUM, so the
/// abbreviated v3 keys (`m`, `x`, `y`, `e`, `me`) and RUM's client and user-agent fields apply.
pub fn intake_rumv3(data: &[u8]) {
    intake(data, true)
}

// ---------------------------------------------------------------------------------------------
// body_framing

/// `Content-Encoding` values the first byte picks from (the last ones sniff).
const ENCODINGS: [Option<&str>; 8] = [
    None,
    Some("gzip"),
    Some("deflate"),
    Some(" GZip "),
    Some("identity"),
    Some("br"),
    Some("x-gzip"),
    Some(""),
];

/// Decompresses a body and frames it into lines: `[encoding, frame size, body...]`. The body is
/// read once whole and once in frames of the given size (1 to 256 bytes); the two must agree,
/// as `src/intake/body.rs`'s own tests require. Lines are capped at 64 KiB, the stream at 4 MiB.
pub fn body_framing(data: &[u8]) {
    let [which, frame, body @ ..] = data else {
        return;
    };
    let encoding = ENCODINGS[usize::from(*which) % ENCODINGS.len()];
    let frame = usize::from(*frame) + 1;
    let whole = block_on(read_body(body, encoding, body.len().max(1)));
    let framed = block_on(read_body(body, encoding, frame));
    match (&whole, &framed) {
        (Err(a), Err(b)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "frames of {frame} bytes change the error: {a} / {b}"
        ),
        _ => assert_eq!(whole, framed, "frames of {frame} bytes change the result"),
    }
}

/// What the line reader makes of a body: (line kinds and contents, bytes read) or the error.
type Framed = Result<(Vec<(Line, Vec<u8>)>, u64), BodyError>;

async fn read_body(data: &[u8], encoding: Option<&str>, frame: usize) -> Framed {
    let raw = BufReader::with_capacity(frame, Cursor::new(data.to_vec()));
    let (decoded, _) = body::decode(raw, encoding).await?;
    let mut lines = LineReader::new(decoded, 64 * 1024, 4 << 20);
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        let kind = lines.next(&mut line).await?;
        if kind == Line::Eof {
            return Ok((out, lines.bytes_read()));
        }
        out.push((kind, line.clone()));
    }
}

// ---------------------------------------------------------------------------------------------
// router

/// The gateway the router target talks to: one per fuzzing process.
struct Gateway {
    policy: Policy,
    runtime_tx: tokio::sync::watch::Sender<Arc<apmgate::server::Runtime>>,
    shared: Arc<apmgate::server::Shared>,
}

/// The policy of the router target: a secret token, anonymous RUM with CORS and a rate limit,
/// trusted proxies (so forwarding headers count), rules, agent configuration, every route, the
/// discard output.
pub const ROUTER_POLICY: &str = r#"
[gateway]
namespace = "default"
trusted_proxies = ["127.0.0.0/8"]
max_concurrent_decoders = 4

[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1", "h2c"]
routes = ["root", "intake", "rum_intake", "config", "rum_config", "metrics"]

[listener.limits]
max_header_size = "16KiB"
max_event_size = "16KiB"
max_body_size = "1MiB"
read_timeout = "10s"
write_timeout = "10s"
idle_timeout = "5s"

[rum]
enabled = true
allow_origins = ["https://shop.example.com", "https://*.shop.example.com"]
allow_headers = ["X-Shop-Session"]
response_headers = { "Timing-Allow-Origin" = "https://shop.example.com" }
library_pattern = "node_modules|bower_components|~"
exclude_from_grouping = "^/webpack"

[role.browser]
privileges = ["event:write", "config_agent:read"]

[role.backend]
privileges = ["event:write", "config_agent:read", "monitoring:read"]

[auth.secret_token.agents]
secret = "fuzz-secret-token-0123456789abcdef"
roles = ["backend"]

[auth.anonymous]
enabled = true
allow_agent = ["rum-js", "js-base"]
allow_service = ["shop-frontend"]
roles = ["browser"]

[auth.anonymous.rate_limit]
event_limit = 300
ip_limit = 1000

[access]
default = "allow"

[[access.rule]]
name = "anonymous-only-on-rum"
when = 'identity == anonymous and route in [intake, config]'
effect = "deny"

[[access.rule]]
name = "no-documentation-range"
when = 'source in ["198.51.100.0/24"] and not route == root'
effect = "deny"

[[agent_config]]
service = "shop-frontend"
agent_name = "rum-js"
settings = { transaction_sample_rate = 0.1 }

[output.discard]
"#;

/// The secret token of [`ROUTER_POLICY`].
pub const ROUTER_TOKEN: &str = "fuzz-secret-token-0123456789abcdef";

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let source = SourceFile::new("fuzz-router.toml", ROUTER_POLICY);
        let c = apmgate::policy::compile(&source, CompileOptions { environment: false });
        let policy = c.policy.unwrap_or_else(|| {
            panic!(
                "the router policy does not compile:\n{}",
                render_human(&c.source, &c.diagnostics, false)
            )
        });
        let runtime = Arc::new(apmgate::server::Runtime::new(policy.clone()));
        let (runtime_tx, runtime_rx) = tokio::sync::watch::channel(runtime);
        let shared = Arc::new(apmgate::server::Shared {
            runtime: runtime_rx,
            output: Arc::new(apmgate::output::discard::DiscardOutput::new()),
            metrics: Arc::new(apmgate::telemetry::Metrics::default()),
            publish_ready: AtomicBool::new(true),
            es_keys: None,
            argon2: apmgate::access::argon2_pool::Argon2Pool::start()
                .expect("the Argon2 verification threads start"),
            decoders: apmgate::intake::decoders::DecoderLimit::new(4),
            intake_memory: IntakeMemory::unbounded(),
            aggregator: Arc::new(Aggregator::new(
                1 << 30,
                Arc::new(apmgate::telemetry::Metrics::default()),
            )),
            source_maps: None,
            elasticsearch: None,
            es_agent_config: None,
            applied_configs: Arc::default(),
        });
        Gateway {
            policy,
            runtime_tx,
            shared,
        }
    })
}

/// Panics seen by the hook (the router turns a handler panic into a 500; under AFL the hook
/// aborts first).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Virtual time one connection may take (the clock is paused: no wall time passes).
/// (The listener's timeouts are 5 and 10 seconds.)
const CONNECTION_TIME: Duration = Duration::from_secs(300);

/// Serves one connection of raw bytes (HTTP/1.1, or HTTP/2 by prior knowledge, as the listener's
/// auto builder picks) through `apmgate::server::router::service`, as the listener does but
/// over an in-memory duplex stream, and returns what the server wrote.
async fn exchange(gw: &Gateway, peer: SocketAddr, request: Vec<u8>) -> Vec<u8> {
    use hyper_util::rt::TokioIo;
    let listener = gw.policy.listeners[0].clone();
    let limits = listener.limits.clone();
    let active = Arc::new(AtomicUsize::new(0));
    let conn_listener = listener.clone();
    let conn = Arc::new(apmgate::server::router::ConnInfo {
        listener,
        peer,
        cert: None,
        protocol: apmgate::server::router::Protocol::Http1,
        alt_svc: None,
        active: active.clone(),
    });
    let service = apmgate::server::router::service(gw.shared.clone(), conn);
    let builder = apmgate::server::listener::connection_builder(&limits);
    // As the listener does on plaintext: HTTP/2 by prior knowledge only where h2c is served.
    let speaks_h2c = conn_listener.speaks(apmgate::policy::compiled::Protocol::H2c);
    let speaks_http1 = conn_listener.speaks(apmgate::policy::compiled::Protocol::Http1);
    let builder = match (speaks_h2c, speaks_http1) {
        (true, true) => builder,
        (true, false) => builder.http2_only(),
        (false, _) => builder.http1_only(),
    };
    let (client, server) = tokio::io::duplex(64 * 1024);
    let server = apmgate::server::timeout::ConnectionTimeouts::new(
        server,
        limits.write_timeout,
        limits.idle_timeout,
        active.clone(),
    );
    let server_task = tokio::spawn(async move {
        let _ = builder
            .serve_connection(TokioIo::new(server), service)
            .await;
    });
    let (mut read, mut write) = tokio::io::split(client);
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        // No half-close: hyper (as configured by the listener) drops a connection whose
        // client shuts its write side, answered or not. The server ends the connection:
        // `Connection: close`, an error, or the idle and read timeouts (virtual time).
        write
    });
    let mut response = Vec::new();
    let outcome = tokio::time::timeout(CONNECTION_TIME, async {
        let _ = read.read_to_end(&mut response).await;
        let _ = server_task.await;
    })
    .await;
    writer.abort();
    assert!(
        outcome.is_ok(),
        "hang: the connection was still open after {CONNECTION_TIME:?} (virtual time)"
    );
    assert_eq!(
        active.load(Ordering::SeqCst),
        0,
        "a request is still counted in flight after its connection closed"
    );
    response
}

/// The status code of an HTTP/1.1 response.
fn status_of(response: &[u8]) -> Option<u16> {
    let rest = response.strip_prefix(b"HTTP/1.1 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// Raw bytes of one connection to the gateway of [`ROUTER_POLICY`]. The first byte picks the
/// peer address (127.0.0.1, a trusted proxy, or a public one; IPv4 or IPv6), the rest is what
/// the client sends. The connection must close within [`CONNECTION_TIME`] (virtual), no
/// handler may panic (the router would answer 500), no request may stay counted in flight, and
/// afterwards the gateway must still answer `GET /` with 200 and accept an authenticated event.
pub fn router(data: &[u8]) {
    std::hint::black_box(router_response(data));
}

/// [`router`], returning what the gateway answered to the input (for looking at a finding).
pub fn router_response(data: &[u8]) -> Vec<u8> {
    count_panics();
    let Some((&which, request)) = data.split_first() else {
        return Vec::new();
    };
    let gw = gateway();
    // A fresh runtime state (rate limiter, key cache) per input keeps runs deterministic.
    gw.runtime_tx
        .send_replace(Arc::new(apmgate::server::Runtime::new(gw.policy.clone())));
    let peer = match which % 4 {
        0 => SocketAddr::from(([127, 0, 0, 1], 40_000)),
        1 => SocketAddr::from(([203, 0, 113, 9], 40_001)),
        2 => SocketAddr::from(([198, 51, 100, 4], 40_002)),
        _ => SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 40_003)),
    };
    let panics = PANICS.load(Ordering::SeqCst);
    let response = block_on(async {
        let response = exchange(gw, peer, request.to_vec()).await;
        if status_of(&response) == Some(500) {
            panic!(
                "the router answered 500:\n{}",
                String::from_utf8_lossy(&response)
            );
        }
        let local = SocketAddr::from(([127, 0, 0, 1], 40_100));
        let root = exchange(
            gw,
            local,
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        )
        .await;
        assert_eq!(
            status_of(&root),
            Some(200),
            "GET / after the input:\n{}",
            String::from_utf8_lossy(&root)
        );
        let body = concat!(
            r#"{"metadata":{"service":{"name":"fuzz","agent":{"name":"python","version":"6.0.0"}}}}"#,
            "\n",
            r#"{"span":{"id":"0123456789abcdef","trace_id":"0123456789abcdef0123456789abcdef","parent_id":"0123456789abcdef","name":"s","type":"db","duration":1.5,"start":0}}"#,
            "\n"
        );
        let intake = format!(
            "POST /intake/v2/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ROUTER_TOKEN}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let accepted = exchange(gw, local, intake.into_bytes()).await;
        assert_eq!(
            status_of(&accepted),
            Some(202),
            "an authenticated event after the input:\n{}",
            String::from_utf8_lossy(&accepted)
        );
        response
    });
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics,
        "a request handler panicked (see above)"
    );
    response
}

// ---------------------------------------------------------------------------------------------
// otlp

/// OTLP export messages (`/v1/traces`, `/v1/metrics`, `/v1/logs`): the first byte picks the
/// signal (its value mod 3) and the encoding (bit 2: JSON, else protobuf), the rest is the
/// message, decoded and mapped into documents as the OTLP route does. Invariant: every document
/// is one line of JSON.
pub fn otlp(data: &[u8]) {
    use apmgate::model::otlp::{self, Encoding, Signal};
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let signal = match selector % 3 {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        _ => Signal::Logs,
    };
    let encoding = if selector & 4 != 0 {
        Encoding::Json
    } else {
        Encoding::Protobuf
    };
    let Ok(request) = otlp::decode(signal, encoding, message) else {
        return;
    };
    let meta = RequestMeta {
        receipt_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        rum: false,
        client_ip: Some(IpAddr::from([127, 0, 0, 1])),
        client_port: None,
        nat_ip: None,
        user_agent: None,
    };
    let config = ModelConfig {
        aggregate: true,
        ..ModelConfig::default()
    };
    let export = otlp::map(&request, &meta, &config);
    for doc in &export.documents {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&doc.body).is_ok(),
            "a document is JSON: {}",
            String::from_utf8_lossy(&doc.body)
        );
        assert!(!doc.body.contains(&b'\n'), "a document is one line");
    }
}
