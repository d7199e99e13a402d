//! sources: log files, Prometheus scrapes, procfs, process events, change calendar.
//!
//! Each configured source runs as one tokio task and sends [`medic_core::Signal`]s on a
//! channel; [`SourceStats`] counts what was read, emitted, dropped or altered and why.

mod error;
pub mod glob;
pub mod logparse;
pub mod prometheus_text;
pub mod redact;
mod sources;
mod stats;
pub mod tail;

pub use error::SignalsError;
pub use logparse::{parse_log_line, parse_log_record};
pub use prometheus_text::{MetricParseError, parse_prometheus_text};
pub use redact::redact;
pub use sources::procfs::{ProcError, read_process_stats};
pub use stats::{Counter, SourceStats};

use medic_config::SourceConfig;
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
    let handle = tokio::runtime::Handle::try_current().map_err(|_| SignalsError::NoRuntime)?;
    let built = sources
        .iter()
        .map(sources::build)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(built
        .into_iter()
        .map(|source| {
            let ctx = sources::SourceContext {
                name: source.name().to_string(),
                tx: tx.clone(),
                shutdown: shutdown.clone(),
                stats: stats.clone(),
            };
            handle.spawn(source.run(ctx))
        })
        .collect())
}
