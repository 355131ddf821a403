//! `apmgate apikey`: API keys with APM privileges, managed through Elasticsearch's security
//! API as APM Server's `apikey` commands manage them (`create`, `invalidate`, `info`,
//! `verify`), over the policy's Elasticsearch output connection (its hosts, credentials and
//! TLS). Keys get privileges of application `apm`: `event:write` (`ingest`),
//! `config_agent:read` (`agent-config`), `sourcemap:write` (`sourcemap`).
//!
//! Human output by default, `--json` for scripts. Exit codes: 0 done, 1 Elasticsearch refused
//! or found nothing (missing `manage_own_api_key`, an unknown id, credentials without the
//! privileges asked), 2 unusable input (the policy, the flags, an unreachable cluster). The
//! output's credentials never appear; a created key's secret is printed once.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apmgate::elasticsearch::transport::{Credentials, EsResponse, Transport};
use apmgate::policy::compiled::OutputSettings;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde_json::{Value, json};

use super::{Outcome, UsageError, compile};

/// The privileges an APM key can hold, by the names the commands take.
const PRIVILEGES: [(&str, &str); 3] = [
    ("ingest", "event:write"),
    ("agent-config", "config_agent:read"),
    ("sourcemap", "sourcemap:write"),
];

/// How long one request to Elasticsearch may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub(super) struct Common {
    /// The policy whose `[output.elasticsearch]` connects to the cluster.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum Command {
    /// Create an API key with APM privileges (all three unless `--privileges` says which).
    Create {
        #[command(flatten)]
        common: Common,
        /// The key's name.
        #[arg(long, default_value = "apm-key")]
        name: String,
        /// Comma-separated: ingest, agent-config, sourcemap.
        #[arg(long, value_delimiter = ',')]
        privileges: Vec<String>,
        /// How long the key is valid (`30d`, `12h`, `90m`); default never expires.
        #[arg(long)]
        expiration: Option<String>,
    },
    /// Invalidate API keys by id or by name (every key of that name).
    Invalidate {
        #[command(flatten)]
        common: Common,
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        id: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Show API keys by id or by name.
    Info {
        #[command(flatten)]
        common: Common,
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        id: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Only keys neither invalidated nor expired.
        #[arg(long)]
        valid_only: bool,
    },
    /// Check which APM privileges credentials (base64 of `id:key`) hold.
    Verify {
        #[command(flatten)]
        common: Common,
        /// The credentials an agent sends (`Authorization: ApiKey <credentials>`).
        #[arg(long)]
        credentials: String,
        /// Comma-separated: ingest, agent-config, sourcemap (default all three).
        #[arg(long, value_delimiter = ',')]
        privileges: Vec<String>,
    },
}

impl Command {
    fn common(&self) -> &Common {
        match self {
            Command::Create { common, .. }
            | Command::Invalidate { common, .. }
            | Command::Info { common, .. }
            | Command::Verify { common, .. } => common,
        }
    }
}

/// Why a command failed: exit 1 (Elasticsearch said no) or 2 (could not ask).
enum Failure {
    Refused(String),
    Unusable(String),
}

pub(super) fn run(command: &Command) -> Result<Outcome, UsageError> {
    let common = command.common();
    let compilation = compile(&common.policy, true)?;
    let Some(policy) = compilation.policy else {
        return Err(UsageError(format!(
            "`{}` does not compile ({} errors): run `apmgate validate {}`",
            common.policy.display(),
            compilation.errors(),
            common.policy.display()
        )));
    };
    let OutputSettings::Elasticsearch(es) = &policy.output else {
        return Err(UsageError(format!(
            "`{}` has no [output.elasticsearch]: API keys are managed in the cluster it names",
            common.policy.display()
        )));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let transport = Transport::new(es, Credentials::Own, 1)
            .map_err(|e| Failure::Unusable(e.to_string()))?;
        execute(command, &transport).await
    });
    match result {
        Ok(v) => {
            if common.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            Ok(Outcome::Ok)
        }
        Err(Failure::Refused(message)) => {
            if common.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"error": message})).unwrap_or_default()
                );
            } else {
                eprintln!("error: {message}");
            }
            Ok(Outcome::Failed)
        }
        Err(Failure::Unusable(message)) => Err(UsageError(message)),
    }
}

/// The Elasticsearch names of the privileges asked for (all when none is).
fn privileges(names: &[String]) -> Result<Vec<&'static str>, Failure> {
    if names.is_empty() {
        return Ok(PRIVILEGES.iter().map(|(_, p)| *p).collect());
    }
    let mut out = Vec::new();
    for n in names {
        let Some((_, p)) = PRIVILEGES.iter().find(|(k, p)| k == n || p == n) else {
            return Err(Failure::Unusable(format!(
                "unknown privilege `{n}`: use ingest, agent-config or sourcemap"
            )));
        };
        if !out.contains(p) {
            out.push(*p);
        }
    }
    Ok(out)
}

async fn call(
    transport: &Transport,
    method: Method,
    path: &str,
    body: Option<Value>,
    authorization: Option<&HeaderValue>,
) -> Result<(u16, Value), Failure> {
    let headers = [(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let sent = transport.send(
        method,
        path,
        body,
        &headers as &[(HeaderName, HeaderValue)],
        authorization,
    );
    let r: EsResponse = match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(Failure::Unusable(format!(
                "cannot reach Elasticsearch: {e}"
            )));
        }
        Err(_) => {
            return Err(Failure::Unusable(format!(
                "Elasticsearch did not answer within {}s",
                REQUEST_TIMEOUT.as_secs()
            )));
        }
    };
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    Ok((r.status, v))
}

/// Elasticsearch's reason for an error answer.
fn reason(status: u16, v: &Value) -> String {
    let r = v["error"]["reason"]
        .as_str()
        .or_else(|| v["error"].as_str())
        .unwrap_or("no reason given");
    format!("Elasticsearch answered {status}: {r}")
}

fn refused(status: u16, v: &Value, what: &str) -> Failure {
    let hint = match status {
        401 => " (the output's credentials are not valid)",
        403 => " (the output's user needs the `manage_own_api_key` cluster privilege)",
        _ => "",
    };
    Failure::Refused(format!("{what}: {}{hint}", reason(status, v)))
}

async fn execute(command: &Command, transport: &Transport) -> Result<Value, Failure> {
    match command {
        Command::Create {
            name,
            privileges: names,
            expiration,
            common,
        } => {
            let privileges = privileges(names)?;
            if let Some(e) = expiration {
                let ok = e
                    .strip_suffix('d')
                    .or_else(|| e.strip_suffix('h'))
                    .or_else(|| e.strip_suffix('m'))
                    .or_else(|| e.strip_suffix('s'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    return Err(Failure::Unusable(format!(
                        "`--expiration {e}`: use a whole number of days, hours, minutes or seconds (`30d`, `12h`)"
                    )));
                }
            }
            create(
                transport,
                name,
                &privileges,
                expiration.as_deref(),
                common.json,
            )
            .await
        }
        Command::Invalidate { id, name, common } => {
            let body = match (id, name) {
                (Some(id), _) => json!({"ids": [id]}),
                (None, Some(name)) => json!({"name": name}),
                (None, None) => unreachable!("clap requires --id or --name"),
            };
            let (status, v) = call(
                transport,
                Method::DELETE,
                "/_security/api_key",
                Some(body),
                None,
            )
            .await?;
            if status != 200 {
                return Err(refused(status, &v, "cannot invalidate"));
            }
            let ids = |k: &str| -> Vec<String> {
                v[k].as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            };
            let (now, before) = (
                ids("invalidated_api_keys"),
                ids("previously_invalidated_api_keys"),
            );
            if now.is_empty() && before.is_empty() {
                return Err(Failure::Refused(match id {
                    Some(id) => format!("no API key with id `{id}`"),
                    None => format!("no API key named `{}`", name.as_deref().unwrap_or_default()),
                }));
            }
            if !common.json {
                println!("Invalidated keys ... {}", now.join(", "));
                if !before.is_empty() {
                    println!("Already invalid .... {}", before.join(", "));
                }
                println!(
                    "Error count ........ {}",
                    v["error_count"].as_u64().unwrap_or(0)
                );
            }
            Ok(v)
        }
        Command::Info {
            id,
            name,
            valid_only,
            common,
        } => {
            let query = match (id, name) {
                (Some(id), _) => format!("id={}", encode(id)),
                (None, Some(name)) => format!("name={}", encode(name)),
                (None, None) => unreachable!("clap requires --id or --name"),
            };
            let (status, v) = call(
                transport,
                Method::GET,
                &format!("/_security/api_key?{query}"),
                None,
                None,
            )
            .await?;
            if status == 404 {
                return Err(Failure::Refused(format!(
                    "no API key with {}",
                    query.replacen('=', " `", 1) + "`"
                )));
            }
            if status != 200 {
                return Err(refused(status, &v, "cannot read API keys"));
            }
            let now = now_ms();
            let keys: Vec<Value> = v["api_keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|k| {
                    let expired = k["expiration"].as_u64().is_some_and(|e| e <= now);
                    !*valid_only || !(k["invalidated"].as_bool().unwrap_or(false) || expired)
                })
                .cloned()
                .collect();
            if keys.is_empty() && id.is_some() {
                return Err(Failure::Refused(format!(
                    "no API key with id `{}`",
                    id.as_deref().unwrap_or_default()
                )));
            }
            if !common.json {
                for k in &keys {
                    println!(
                        "Username ....... {}",
                        k["username"].as_str().unwrap_or_default()
                    );
                    println!(
                        "Api Key Name ... {}",
                        k["name"].as_str().unwrap_or_default()
                    );
                    println!("Id ............. {}", k["id"].as_str().unwrap_or_default());
                    println!("Creation ....... {}", rfc3339(k["creation"].as_u64()));
                    println!(
                        "Invalidated .... {}",
                        k["invalidated"].as_bool().unwrap_or(false)
                    );
                    if !k["invalidated"].as_bool().unwrap_or(false) {
                        println!("Expiration ..... {}", expiry(k["expiration"].as_u64(), now));
                    }
                    println!();
                }
                println!("{} API Keys found", keys.len());
            }
            Ok(json!({"api_keys": keys}))
        }
        Command::Verify {
            credentials,
            privileges: names,
            common,
        } => {
            let privileges = privileges(names)?;
            let mut auth = HeaderValue::try_from(format!("ApiKey {}", credentials.trim()))
                .map_err(|_| {
                    Failure::Unusable("the credentials cannot be sent in a header".into())
                })?;
            auth.set_sensitive(true);
            let body = json!({"application": [{"application": "apm", "privileges": privileges, "resources": ["-"]}]});
            let (status, v) = call(
                transport,
                Method::POST,
                "/_security/user/_has_privileges",
                Some(body),
                Some(&auth),
            )
            .await?;
            if status == 401 {
                return Err(Failure::Refused(
                    "the credentials are not valid (unknown, invalidated or expired key)".into(),
                ));
            }
            if status != 200 {
                return Err(refused(status, &v, "cannot verify the credentials"));
            }
            let mut answer = serde_json::Map::new();
            let mut all = true;
            for p in &privileges {
                let granted = v["application"]["apm"]["-"][*p].as_bool().unwrap_or(false);
                all &= granted;
                answer.insert((*p).to_owned(), Value::Bool(granted));
                if !common.json {
                    println!(
                        "Authorized for privilege \"{p}\"...: {}",
                        if granted { "Yes" } else { "No" }
                    );
                }
            }
            if !all {
                if common.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&answer).unwrap_or_default()
                    );
                }
                return Err(Failure::Refused(
                    "the credentials lack some of the privileges asked for".into(),
                ));
            }
            Ok(Value::Object(answer))
        }
    }
}

async fn create(
    transport: &Transport,
    name: &str,
    privileges: &[&str],
    expiration: Option<&str>,
    json_out: bool,
) -> Result<Value, Failure> {
    // Elasticsearch lets a user create keys with privileges it does not hold, and such keys
    // never verify: check first, as APM Server does.
    let check = json!({"application": [{"application": "apm", "privileges": privileges, "resources": ["-"]}]});
    let (status, v) = call(
        transport,
        Method::POST,
        "/_security/user/_has_privileges",
        Some(check),
        None,
    )
    .await?;
    if status != 200 {
        return Err(refused(
            status,
            &v,
            "cannot check the output user's privileges",
        ));
    }
    let missing: Vec<&str> = privileges
        .iter()
        .copied()
        .filter(|p| v["application"]["apm"]["-"][*p].as_bool() != Some(true))
        .collect();
    if !missing.is_empty() {
        return Err(Failure::Refused(format!(
            "{} is missing the requested privilege(s) {}: grant them in a role, e.g. \"applications\": [{{\"application\": \"apm\", \"privileges\": [\"event:write\", \"config_agent:read\", \"sourcemap:write\"], \"resources\": [\"*\"]}}]",
            v["username"].as_str().unwrap_or("the output's user"),
            missing.join(", ")
        )));
    }
    let mut body = json!({
        "name": name,
        "role_descriptors": {"apm": {"applications": [{"application": "apm", "privileges": privileges, "resources": ["*"]}]}},
        "metadata": {"application": "apm"},
    });
    if let Some(e) = expiration {
        body["expiration"] = json!(e);
    }
    let (status, v) = call(
        transport,
        Method::POST,
        "/_security/api_key",
        Some(body),
        None,
    )
    .await?;
    if status != 200 {
        return Err(refused(status, &v, "cannot create the API key"));
    }
    let (id, key) = (
        v["id"].as_str().unwrap_or_default(),
        v["api_key"].as_str().unwrap_or_default(),
    );
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"));
    if !json_out {
        println!("API Key created:");
        println!();
        println!("Name ........... {}", v["name"].as_str().unwrap_or(name));
        println!(
            "Expiration ..... {}",
            expiry(v["expiration"].as_u64(), now_ms())
        );
        println!("Id ............. {id}");
        println!("API Key ........ {key} (won't be shown again)");
        println!(
            "Credentials .... {credentials} (send it as \"Authorization: ApiKey <credentials>\"; won't be shown again)"
        );
    }
    let mut out = v.clone();
    out["credentials"] = json!(credentials);
    Ok(out)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A time in milliseconds since the epoch as RFC 3339 (UTC).
fn rfc3339(ms: Option<u64>) -> String {
    ms.and_then(|ms| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
    })
    .and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_else(|| "unknown".into())
}

/// `never`, `expired`, or the time of expiry.
fn expiry(ms: Option<u64>, now: u64) -> String {
    match ms {
        None => "never".into(),
        Some(e) if e <= now => "expired".into(),
        Some(e) => format!("{} (in {})", rfc3339(Some(e)), in_words(e - now)),
    }
}

/// A duration to the nearest second, minute, hour or day.
fn in_words(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    let nearest = |unit: u64| (s + unit / 2) / unit;
    match s {
        0..=119 => format!("{s} seconds"),
        120..=7199 => format!("{} minutes", nearest(60)),
        7200..=172_799 => format!("{} hours", nearest(3600)),
        _ => format!("{} days", nearest(86_400)),
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
