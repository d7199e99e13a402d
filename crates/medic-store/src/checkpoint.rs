//! Signed checkpoints of the audit chain, kept outside the database.
//!
//! The hash chain and its head anchor catch edits, deletions, insertions and reorderings —
//! but someone who can write the database can also recompute the whole chain and its anchor.
//! A checkpoint is the chain's head (seq, hash) signed with an Ed25519 key that never sits in
//! the store, appended as one JSON line to a file elsewhere. Verifying with the public key
//! then also catches a rewritten chain (a signed hash no longer matches its record) and a
//! truncated one (a signed seq beyond the log's end), which the writer cannot re-sign.

use crate::{Store, StoreError};
use medic_core::Ts;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// What is signed: a versioned, unambiguous text of the head.
fn message(seq: u64, hash: &str, ts: Ts) -> String {
    format!("medic-audit-checkpoint:v1:{seq}:{hash}:{}", ts.0)
}

/// A checkpoint line (hex signature; `key` names the public key that verifies it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub ts: Ts,
    pub key: String,
    pub signature: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("public key {path}: {reason}")]
    Public { path: PathBuf, reason: String },
    #[error("checkpoint file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The short id of a public key (the first 16 hex digits of its SHA-256).
pub fn key_id(public: &[u8]) -> String {
    medic_core::stable_id(&[&hex::encode(public)])
}

/// An Ed25519 signing key, read from a PKCS#8 file (`medic audit keygen` writes one).
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// Makes a new key: writes the private key to `path` (mode 0600, never overwriting) and
    /// the public key, hex, to `path.pub`. Returns the public key's hex.
    pub fn generate(path: &Path) -> Result<String, KeyError> {
        let err = |reason: String| KeyError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| err("the system random generator failed".into()))?;
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
            .map_err(|e| err(format!("generated key unreadable: {e}")))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(|e| {
            err(format!(
                "cannot create it (an existing key is never overwritten): {e}"
            ))
        })?;
        f.write_all(doc.as_ref())
            .and_then(|()| f.sync_all())
            .map_err(|e| err(e.to_string()))?;
        let public = hex::encode(pair.public_key().as_ref());
        let pub_path = public_path(path);
        std::fs::write(&pub_path, format!("{public}\n")).map_err(|e| KeyError::Public {
            path: pub_path,
            reason: e.to_string(),
        })?;
        Ok(public)
    }

    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let err = |reason: String| KeyError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8(&bytes)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&bytes))
            .map_err(|e| {
                err(format!(
                    "not an Ed25519 PKCS#8 key ({e}); make one with `medic audit keygen`"
                ))
            })?;
        Ok(SigningKey { pair })
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    fn sign(&self, seq: u64, hash: &str, ts: Ts) -> Checkpoint {
        let sig = self.pair.sign(message(seq, hash, ts).as_bytes());
        Checkpoint {
            seq,
            hash: hash.to_string(),
            ts,
            key: key_id(self.pair.public_key().as_ref()),
            signature: hex::encode(sig.as_ref()),
        }
    }
}

/// Where `generate` writes the public key of `private`.
pub fn public_path(private: &Path) -> PathBuf {
    let mut p = private.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Reads a public key: 64 hex digits (the `.pub` file), surrounding whitespace ignored.
pub fn read_public_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let err = |reason: String| KeyError::Public {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let bytes =
        hex::decode(text.trim()).map_err(|e| err(format!("expected 64 hex digits: {e}")))?;
    if bytes.len() != 32 {
        return Err(err(format!(
            "expected a 32-byte Ed25519 key, found {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The last checkpoint in `file` that parses (None: no file or no line yet).
fn last_checkpoint(file: &Path) -> Option<Checkpoint> {
    let f = std::fs::File::open(file).ok()?;
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Checkpoint>(&l).ok())
        .last()
}

impl Store {
    /// Signs the chain's current head and appends it to `file`, unless the last checkpoint
    /// there already covers it. Returns the new checkpoint.
    pub fn checkpoint(
        &self,
        key: &SigningKey,
        file: &Path,
        now: Ts,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        let head = {
            let conn = self.conn();
            crate::audit::read_head(&conn)?
        };
        let Some((seq, hash)) = head else {
            return Ok(None);
        };
        if last_checkpoint(file).is_some_and(|c| c.seq >= seq) {
            return Ok(None);
        }
        let cp = key.sign(seq, &hash, now);
        let line = serde_json::to_string(&cp).map_err(|e| {
            CheckpointError::Key(KeyError::File {
                path: file.to_path_buf(),
                reason: e.to_string(),
            })
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)?;
            writeln!(f, "{line}")?;
            f.sync_all()
        };
        write().map_err(|e| {
            CheckpointError::Key(KeyError::File {
                path: file.to_path_buf(),
                reason: e.to_string(),
            })
        })?;
        Ok(Some(cp))
    }

    /// Checks every checkpoint in `file` against `public` (raw 32 bytes) and the records in
    /// this store.
    pub fn verify_checkpoints(
        &self,
        public: &[u8],
        file: &Path,
    ) -> Result<CheckpointReport, CheckpointError> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            CheckpointError::Key(KeyError::File {
                path: file.to_path_buf(),
                reason: e.to_string(),
            })
        })?;
        let verifier = UnparsedPublicKey::new(&ED25519, public);
        let records = self.audit_records_raw()?;
        let tip = records.last().map_or(0, |(s, _)| *s);
        let mut report = CheckpointReport::default();
        let mut last_seq = 0u64;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let n = i + 1;
            let fail = |why: String| Some(format!("checkpoint line {n}: {why}"));
            let cp: Checkpoint = match serde_json::from_str(line) {
                Ok(c) => c,
                Err(e) => {
                    report.broken = fail(format!("malformed ({e})"));
                    break;
                }
            };
            let sig = hex::decode(&cp.signature).unwrap_or_default();
            if verifier
                .verify(message(cp.seq, &cp.hash, cp.ts).as_bytes(), &sig)
                .is_err()
            {
                report.broken = fail(format!(
                    "the signature of seq {} does not verify with this public key (the checkpoint was edited, or signed by another key)",
                    cp.seq
                ));
                break;
            }
            if cp.seq < last_seq {
                report.broken = fail(format!(
                    "seq {} comes after seq {last_seq}: checkpoints were reordered",
                    cp.seq
                ));
                break;
            }
            last_seq = cp.seq;
            if cp.seq > tip {
                report.broken = fail(format!(
                    "signed at seq {} but the log ends at {tip}: records were removed from the end",
                    cp.seq
                ));
                break;
            }
            match records.binary_search_by_key(&cp.seq, |(s, _)| *s) {
                Ok(at) if records[at].1 == cp.hash => report.checked += 1,
                Ok(_) => {
                    report.broken = fail(format!(
                        "record {} is not the one that was signed: the chain was rewritten (or that record edited)",
                        cp.seq
                    ));
                    break;
                }
                Err(_) => {
                    report.broken = fail(format!("record {} that was signed is gone", cp.seq));
                    break;
                }
            }
        }
        report.last_seq = last_seq;
        Ok(report)
    }
}

/// What [`Store::verify_checkpoints`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckpointReport {
    /// Checkpoints that verified.
    pub checked: u64,
    /// The last signed seq read.
    pub last_seq: u64,
    /// The first problem.
    pub broken: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}
