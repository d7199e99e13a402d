//! `medic token new --name NAME --role ROLE`: a fresh bearer token for `server.auth.tokens`,
//! printed once with the config line that holds only its SHA-256. `medic token hash` prints
//! the SHA-256 of a token read from stdin (for tokens made elsewhere).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};
use std::io::Read;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a new random token and print it with its config line.
    New(NewArgs),
    /// Print the SHA-256 of the token on stdin (surrounding whitespace ignored).
    Hash,
}

#[derive(Args)]
pub struct NewArgs {
    /// The identity the audit records for what this token does.
    #[arg(long)]
    pub name: String,
    /// ingest, viewer, approver or admin.
    #[arg(long)]
    pub role: String,
}

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// 32 bytes from the kernel's CSPRNG, hex: 256 bits, printable, header-safe.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(format!("medic_{}", hex::encode(bytes)))
}

pub fn run(cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::New(a) => {
            let Some(role) = medic_config::Role::parse(&a.role) else {
                bail!(
                    "unknown role `{}`: expected ingest, viewer, approver or admin",
                    a.role
                );
            };
            if a.name.trim().is_empty() || a.name.contains(['"', '\n', '\\']) {
                bail!(
                    "invalid name {:?}: expected a plain identity such as `alertmanager` or `alice`",
                    a.name
                );
            }
            let token = random_token()?;
            println!("token (shown once; give it to the client, keep it secret):");
            println!("  {token}");
            println!("config line for `server.auth.tokens` (only the hash is stored):");
            println!(
                "  - {{ name: \"{}\", role: {}, sha256: \"{}\" }}",
                a.name,
                role.as_str(),
                sha256_hex(&token)
            );
            Ok(())
        }
        TokenCommand::Hash => {
            let mut s = String::new();
            std::io::stdin()
                .take(8192)
                .read_to_string(&mut s)
                .context("reading the token from stdin")?;
            let t = s.trim();
            if t.is_empty() {
                bail!("no token on stdin");
            }
            println!("{}", sha256_hex(t));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_like_the_server() {
        let a = random_token().expect("token");
        let b = random_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(a.len(), "medic_".len() + 64);
        // The server hashes the same way: a token made here is accepted there.
        let auth = medic_server::auth::Auth::with_env(
            &medic_config::AuthConfig {
                tokens: vec![medic_config::TokenConfig {
                    name: "x".into(),
                    role: medic_config::Role::Viewer,
                    secret: medic_config::TokenSecret::Sha256(sha256_hex(&a)),
                    groups: Vec::new(),
                    expires: None,
                    location: Default::default(),
                }],
                unauthenticated: false,
            },
            |_| None,
        )
        .expect("auth");
        assert!(auth.check(Some(&a), medic_config::Role::Viewer).is_ok());
        assert!(auth.check(Some(&b), medic_config::Role::Viewer).is_err());
    }
}
