//! The security API for API key management, as `apmgate apikey` uses it: users with
//! credentials and privileges (`add_user`), `POST /_security/api_key` (create, limited to what
//! the owner holds, as Elasticsearch limits it), `GET /_security/api_key` (by `id` or `name`),
//! `DELETE /_security/api_key` (invalidate by `ids` or `name`), and `_has_privileges` for users
//! as well as keys. A created key verifies (`_has_privileges` with `ApiKey`) until it is
//! invalidated or expires.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::{Value, json};

use super::{EsStandin, State, es_error, respond};

/// A user of the stand-in.
#[derive(Debug, Clone)]
struct User {
    name: String,
    /// Cluster privileges, e.g. `manage_own_api_key`.
    cluster: Vec<String>,
    /// Privileges on application `apm`.
    apm: Vec<String>,
}

/// An API key created through the API.
#[derive(Debug, Clone)]
struct ApiKey {
    id: String,
    name: String,
    secret: String,
    owner: String,
    creation_ms: u64,
    expiration_ms: Option<u64>,
    invalidated: bool,
    privileges: Vec<String>,
}

/// Users and the keys made through the API.
#[derive(Debug, Default)]
pub(crate) struct Security {
    /// `Authorization` header value → user.
    users: HashMap<String, User>,
    keys: Vec<ApiKey>,
    next_id: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `30d`, `1h`, `10m`, `5s`, `500ms` in milliseconds.
fn parse_expiration(s: &str) -> Option<u64> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = match &s[digits.len()..] {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        "ms" => 1,
        _ => return None,
    };
    Some(n * unit)
}

impl EsStandin {
    /// Adds a user (basic authentication) with cluster privileges (e.g. `manage_own_api_key`)
    /// and privileges on application `apm`; returns the `Authorization` value it sends.
    pub fn add_user(&self, name: &str, password: &str, cluster: &[&str], apm: &[&str]) -> String {
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"))
        );
        self.state.lock().security.users.insert(
            auth.clone(),
            User {
                name: name.into(),
                cluster: cluster.iter().map(|s| s.to_string()).collect(),
                apm: apm.iter().map(|s| s.to_string()).collect(),
            },
        );
        auth
    }

    /// Keys created through the API: (id, name, invalidated).
    pub fn api_keys(&self) -> Vec<(String, String, bool)> {
        self.state
            .lock()
            .security
            .keys
            .iter()
            .map(|k| (k.id.clone(), k.name.clone(), k.invalidated))
            .collect()
    }
}

fn unauthenticated() -> Response<Full<Bytes>> {
    respond(
        401,
        es_error(
            401,
            "security_exception",
            "unable to authenticate with provided credentials",
        ),
    )
}

fn user(state: &State, auth: Option<&str>) -> Option<User> {
    state.lock().security.users.get(auth?).cloned()
}

/// `_has_privileges` for a user (`None` when the caller is not a user).
pub(crate) fn user_privileges(
    state: &State,
    auth: Option<&str>,
    body: &[u8],
) -> Option<Response<Full<Bytes>>> {
    let user = user(state, auth)?;
    let req: Value = serde_json::from_slice(body).unwrap_or_default();
    let mut answer = serde_json::Map::new();
    let mut all = true;
    for app in req["application"].as_array().into_iter().flatten() {
        for p in app["privileges"].as_array().into_iter().flatten() {
            let p = p.as_str().unwrap_or("");
            let has = user.apm.iter().any(|g| g == p);
            all &= has;
            answer.insert(p.to_string(), Value::Bool(has));
        }
    }
    Some(respond(
        200,
        json!({
            "username": user.name,
            "has_all_requested": all,
            "cluster": {},
            "index": {},
            "application": {"apm": {"-": answer}}
        }),
    ))
}

/// Privileges of a key created through the API, by its `ApiKey` token (`None`: no such key;
/// `Some(None)`: invalidated or expired).
pub(crate) fn key_privileges(state: &State, token: &str) -> Option<Option<Vec<String>>> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let i = state.lock();
    let key = i
        .security
        .keys
        .iter()
        .find(|k| k.id == id && k.secret == secret)?;
    let live = !key.invalidated && key.expiration_ms.is_none_or(|e| e > now_ms());
    Some(live.then(|| key.privileges.clone()))
}

/// `POST|PUT /_security/api_key`.
pub(crate) fn create(state: &State, auth: Option<&str>, body: &[u8]) -> Response<Full<Bytes>> {
    let Some(owner) = user(state, auth) else {
        return unauthenticated();
    };
    if !owner.cluster.iter().any(|c| {
        matches!(
            c.as_str(),
            "manage_own_api_key" | "manage_api_key" | "manage_security" | "all"
        )
    }) {
        return respond(
            403,
            es_error(
                403,
                "security_exception",
                &format!(
                    "action [cluster:admin/xpack/security/api_key/create] is unauthorized for user [{}]",
                    owner.name
                ),
            ),
        );
    }
    let req: Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(name) = req["name"].as_str().filter(|n| !n.is_empty()) else {
        return respond(
            400,
            es_error(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: api key name is required;",
            ),
        );
    };
    let expiration_ms = match req["expiration"].as_str() {
        None => None,
        Some(e) => match parse_expiration(e) {
            Some(ms) => Some(now_ms() + ms),
            None => {
                return respond(
                    400,
                    es_error(
                        400,
                        "illegal_argument_exception",
                        &format!("failed to parse setting [expiration] with value [{e}]"),
                    ),
                );
            }
        },
    };
    // What the key may do: what its role descriptors ask, within what its owner holds.
    let mut privileges: Vec<String> = Vec::new();
    for descriptor in req["role_descriptors"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        for app in descriptor["applications"].as_array().into_iter().flatten() {
            if app["application"] != "apm" {
                continue;
            }
            for p in app["privileges"].as_array().into_iter().flatten() {
                let p = p.as_str().unwrap_or_default().to_string();
                if owner.apm.contains(&p) && !privileges.contains(&p) {
                    privileges.push(p);
                }
            }
        }
    }
    let mut i = state.lock();
    i.security.next_id += 1;
    let id = format!("standin-key-{}", i.security.next_id);
    let secret = format!("secret-{}-{}", i.security.next_id, now_ms() % 100_000);
    i.security.keys.push(ApiKey {
        id: id.clone(),
        name: name.into(),
        secret: secret.clone(),
        owner: owner.name,
        creation_ms: now_ms(),
        expiration_ms,
        invalidated: false,
        privileges,
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let mut answer = json!({"id": id, "name": name, "api_key": secret, "encoded": encoded});
    if let Some(e) = expiration_ms {
        answer["expiration"] = json!(e);
    }
    respond(200, answer)
}

fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// `GET /_security/api_key?id=..|name=..`.
pub(crate) fn get(state: &State, auth: Option<&str>, query: &str) -> Response<Full<Bytes>> {
    if user(state, auth).is_none() {
        return unauthenticated();
    }
    let (id, name) = (param(query, "id"), param(query, "name"));
    let i = state.lock();
    let found: Vec<Value> = i
        .security
        .keys
        .iter()
        .filter(|k| id.is_none_or(|x| x == k.id) && name.is_none_or(|x| x == k.name))
        .map(|k| {
            let mut v = json!({
                "id": k.id, "name": k.name, "creation": k.creation_ms,
                "invalidated": k.invalidated, "username": k.owner, "realm": "default_native",
                "metadata": {"application": "apm"},
            });
            if let Some(e) = k.expiration_ms {
                v["expiration"] = json!(e);
            }
            v
        })
        .collect();
    if found.is_empty() && id.is_some() {
        return respond(
            404,
            es_error(
                404,
                "resource_not_found_exception",
                &format!("api key with id [{}] not found", id.unwrap_or_default()),
            ),
        );
    }
    respond(200, json!({"api_keys": found}))
}

/// `DELETE /_security/api_key` with `{"ids": [..]}` or `{"name": ..}`.
pub(crate) fn invalidate(state: &State, auth: Option<&str>, body: &[u8]) -> Response<Full<Bytes>> {
    if user(state, auth).is_none() {
        return unauthenticated();
    }
    let req: Value = serde_json::from_slice(body).unwrap_or_default();
    let ids: Vec<&str> = req["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let name = req["name"].as_str();
    let mut i = state.lock();
    let (mut now, mut before) = (Vec::new(), Vec::new());
    for k in &mut i.security.keys {
        if ids.contains(&k.id.as_str()) || name == Some(k.name.as_str()) {
            if k.invalidated {
                before.push(k.id.clone());
            } else {
                k.invalidated = true;
                now.push(k.id.clone());
            }
        }
    }
    respond(
        200,
        json!({"invalidated_api_keys": now, "previously_invalidated_api_keys": before, "error_count": 0}),
    )
}
