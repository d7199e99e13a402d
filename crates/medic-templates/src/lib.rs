//! Streaming log template mining: every message maps online to a template id and its
//! parameters, with bounded memory (a template cap with eviction) and snapshot/restore so
//! templates survive restarts. One default configuration for all systems: variables are found
//! by a hand-written byte classifier (numbers, hex, IPs, UUIDs, paths, URLs, durations, sizes,
//! timestamps, ids), then a Drain-like prefix tree groups messages by token count, leading
//! tokens and similarity. Where values at a position differ, the template keeps the literal
//! punctuation around them (`rhost=<*>`, `<*>,`, `[<*>]`). A line whose masked shape was seen
//! before costs one hash-only walk and one cache lookup.
//!
//! [`loghub`] reads Loghub log formats and scores grouping / parsing accuracy.

mod canonical;
mod hash;
pub mod loghub;
mod mask;
mod miner;
mod snapshot;

pub use canonical::canonical_template;
pub use miner::{Mined, MinerConfig, MinerStats, TemplateId, TemplateMiner};

/// Errors of this crate. Mining itself never fails; only parsing formats, reading files and
/// restoring snapshots can.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("invalid log format {format:?}: {reason}")]
    Format { format: String, reason: String },
    #[error("corrupt template snapshot: {0}")]
    Snapshot(String),
    #[error("unsupported template snapshot version {found} (expected {expected})")]
    SnapshotVersion { found: u32, expected: u32 },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad csv {path}: {reason}")]
    Csv { path: String, reason: String },
    #[error("dataset {path}: {reason}")]
    Dataset { path: String, reason: String },
}
