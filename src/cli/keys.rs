//! `apmgate keys new`: creates an API key, prints the credential once and the policy entry.

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use base64::Engine as _;
use rand::Rng;

use std::path::Path;
use std::time::SystemTime;

use apmgate::policy::diagnostics::did_you_mean;
use apmgate::policy::types::datetime_to_system_time;

use super::{Outcome, UsageError};

/// Refuses roles the policy does not declare: the entry printed would not compile (E301). Only
/// the `[role.NAME]` headers are read, so a policy with other errors still answers.
fn check_roles(policy: &Path, roles: &[String]) -> Result<(), UsageError> {
    let text = std::fs::read_to_string(policy)
        .map_err(|e| UsageError(format!("cannot read `{}`: {e}", policy.display())))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        UsageError(format!(
            "cannot read the roles of `{}`: {}",
            policy.display(),
            e.message()
        ))
    })?;
    let declared: Vec<&str> = table
        .get("role")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for role in roles {
        if !declared.contains(&role.as_str()) {
            let help = did_you_mean(role, declared.iter().copied()).unwrap_or_else(|| {
                if declared.is_empty() {
                    format!(
                        "`{}` declares no role: add `[role.{role}]`",
                        policy.display()
                    )
                } else {
                    format!("roles of `{}`: {}", policy.display(), declared.join(", "))
                }
            });
            return Err(UsageError(format!(
                "role `{role}` is not declared in `{}`; {help}",
                policy.display()
            )));
        }
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum Command {
    /// Create an API key.
    New {
        /// The policy the key is for: every `--role` must be one of its `[role.NAME]` sections.
        #[arg(long, value_name = "FILE")]
        policy: std::path::PathBuf,
        /// Role granted (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Name of the policy entry (`[auth.api_key.NAME]`).
        #[arg(long, default_value = "agent")]
        name: String,
        /// Expiry, RFC 3339 (`2027-06-30T00:00:00Z`).
        #[arg(long)]
        expires: Option<String>,
    },
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_string(len: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(super) fn run(command: &Command) -> Result<Outcome, UsageError> {
    let Command::New {
        policy,
        roles,
        name,
        expires,
    } = command;
    check_roles(policy, roles)?;
    if let Some(e) = expires {
        let at = e
            .parse::<toml::value::Datetime>()
            .map_err(|_| UsageError(format!("`{e}` is not an RFC 3339 date-time")))?;
        // The policy refuses an expiry without an offset, and warns about a past one (W107):
        // a key printed with either would be refused or useless.
        let at = datetime_to_system_time(&at).ok_or_else(|| {
            UsageError(format!(
                "`{e}` needs a full date-time with an offset, e.g. 2027-06-30T00:00:00Z"
            ))
        })?;
        if at <= SystemTime::now() {
            return Err(UsageError(format!(
                "`--expires {e}` is in the past: the key would be expired before its first use"
            )));
        }
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || name.is_empty()
    {
        return Err(UsageError(
            "the name may hold letters, digits, `-` and `_`".into(),
        ));
    }
    let id = random_string(20);
    let key = random_string(40);
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2::Argon2::default()
        .hash_password(key.as_bytes(), &salt)
        .map_err(|e| UsageError(e.to_string()))?
        .to_string();
    let credential = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"));
    let roles_toml = roles
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("# API key `{name}`: the credential below is shown once. Give it to the agent");
    println!(
        "# (ELASTIC_APM_API_KEY, or `Authorization: ApiKey <credential>`); it is not stored anywhere."
    );
    println!("#");
    println!("#   credential: {credential}");
    println!();
    println!("# Add this entry to the policy (it holds only a hash of the key):");
    println!("[auth.api_key.{name}]");
    println!("id = \"{id}\"");
    println!("hash = \"{hash}\"");
    println!("roles = [{roles_toml}]");
    if let Some(e) = expires {
        println!("expires = {e}");
    }
    Ok(Outcome::Ok)
}
