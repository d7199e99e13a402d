//! sources: log files, Prometheus scrapes, procfs, process events, change calendar.
//!
//! Each configured source runs as one tokio task and sends [`medic_core::Signal`]s on a
//! channel; [`SourceStats`] counts what was read, emitted, dropped or altered and why.

pub mod checkpoint;
pub mod container;
mod error;
pub mod formats;
pub mod glob;
pub mod ingest;
pub mod logparse;
pub mod prometheus_api;
pub mod prometheus_text;
pub mod redact;
mod sources;
mod stats;
pub mod tail;

pub use checkpoint::{CheckpointStore, FnCheckpointStore, MemoryCheckpointStore};
pub use error::SignalsError;
pub use formats::LogParser;
pub use logparse::{parse_log_line, parse_log_record};
pub use prometheus_text::{MetricParseError, parse_prometheus_text};
pub use redact::{Redactor, redact};
pub use sources::procfs::{ProcError, read_process_stats};
pub use sources::syslog::{Frame, Framer, SyslogServer};
pub use stats::{Counter, SourceStats};

use medic_config::{RedactionConfig, SourceConfig};
use medic_core::Signal;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Starts every configured source as a tokio task. Stops when `shutdown` becomes true (or
/// its sender is dropped). Every source is validated before any is started, so a bad one
/// starts nothing.
pub fn spawn_sources(
    sources: &[SourceConfig],
    tx: mpsc::Sender<Signal>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<SourceStats>,
) -> Result<Vec<JoinHandle<()>>, SignalsError> {
    spawn_sources_with(
        sources,
        &RedactionConfig::default(),
        tx,
        shutdown,
        stats,
        None,
    )
}

/// Like [`spawn_sources`], with the config's `redaction:` (extra patterns, disabled kinds)
/// applied by every source, and file positions kept in `checkpoints` (saved at most every
/// second and on shutdown) so that a restart neither loses nor duplicates a line.
pub fn spawn_sources_with(
    sources: &[SourceConfig],
    redaction: &RedactionConfig,
    tx: mpsc::Sender<Signal>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<SourceStats>,
    checkpoints: Option<Arc<dyn CheckpointStore>>,
) -> Result<Vec<JoinHandle<()>>, SignalsError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| SignalsError::NoRuntime)?;
    let redactor =
        Arc::new(
            Redactor::from_config(redaction).map_err(|e| SignalsError::InvalidConfig {
                source_name: "redaction".into(),
                reason: e.to_string(),
            })?,
        );
    if *redaction != RedactionConfig::default() && !redact::install(redactor.clone()) {
        tracing::debug!("a redaction was installed before; sources use this config's");
    }
    let built = sources
        .iter()
        .map(|cfg| sources::build(cfg, &redactor))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(built
        .into_iter()
        .map(|source| {
            let ctx = sources::SourceContext {
                name: source.name().to_string(),
                tx: tx.clone(),
                shutdown: shutdown.clone(),
                stats: stats.clone(),
                checkpoints: checkpoints.clone(),
            };
            handle.spawn(source.run(ctx))
        })
        .collect())
}
