//! `apmgate keys new`: creates an API key, prints the credential once and the policy entry.

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use base64::Engine as _;
use rand::Rng;

use super::{Outcome, UsageError};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create an API key.
    New {
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

pub fn run(command: &Command) -> Result<Outcome, UsageError> {
    let Command::New {
        roles,
        name,
        expires,
    } = command;
    if let Some(e) = expires {
        e.parse::<toml::value::Datetime>()
            .map_err(|_| UsageError(format!("`{e}` is not an RFC 3339 date-time")))?;
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
