//! One file per source kind; `build` is the registry (one line per kind).

pub(crate) mod change_calendar;
#[cfg(feature = "kubernetes")]
pub(crate) mod kubernetes;
pub(crate) mod kubernetes_logs;
pub(crate) mod log_files;
pub(crate) mod process_events;
pub(crate) mod procfs;
pub(crate) mod prometheus_query;
pub(crate) mod prometheus_scrape;
pub(crate) mod stdin;
pub(crate) mod syslog;

use crate::SignalsError;
use crate::checkpoint::CheckpointStore;
use crate::glob::PathPattern;
use crate::redact::Redactor;
use crate::stats::{Counter, SourceStats};
use crate::tail::{StartAt, TailedLine, Tailer};
use medic_config::{SourceConfig, SourceKind};
use medic_core::Signal;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub(crate) type SourceFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A validated, ready-to-run source.
pub(crate) trait Source: Send {
    fn name(&self) -> &str;
    fn run(self: Box<Self>, ctx: SourceContext) -> SourceFuture;
}

/// The registry: configuration → runnable source.
pub(crate) fn build(
    cfg: &SourceConfig,
    redactor: &Arc<Redactor>,
) -> Result<Box<dyn Source>, SignalsError> {
    match &cfg.kind {
        SourceKind::LogFiles { .. } => log_files::LogFilesSource::build(cfg, redactor),
        SourceKind::PrometheusScrape { .. } => {
            prometheus_scrape::PrometheusScrapeSource::build(cfg)
        }
        SourceKind::Procfs { .. } => procfs::ProcfsSource::build(cfg),
        SourceKind::ProcessEvents { .. } => process_events::ProcessEventsSource::build(cfg),
        SourceKind::ChangeCalendar { .. } => change_calendar::ChangeCalendarSource::build(cfg),
        SourceKind::KubernetesLogs { .. } => kubernetes_logs::build(cfg, redactor),
        SourceKind::Stdin { .. } => stdin::StdinSource::build(cfg, redactor),
        SourceKind::PrometheusQuery { .. } => prometheus_query::PrometheusQuerySource::build(cfg),
        SourceKind::Syslog(_) => syslog::SyslogSource::build(cfg),
        #[cfg(feature = "kubernetes")]
        SourceKind::Kubernetes(_) => kubernetes::build(cfg, redactor),
        #[cfg(not(feature = "kubernetes"))]
        SourceKind::Kubernetes(_) => Err(invalid(
            cfg,
            "this medic was built without the `kubernetes` feature",
        )),
    }
}

/// What every running source gets: where to send, when to stop, what to count.
pub(crate) struct SourceContext {
    pub name: String,
    pub tx: mpsc::Sender<Signal>,
    pub shutdown: watch::Receiver<bool>,
    pub stats: Arc<SourceStats>,
    /// Where file sources keep their positions; `None`: not kept across restarts.
    pub checkpoints: Option<Arc<dyn CheckpointStore>>,
}

impl SourceContext {
    /// Sends a signal; false when the source should stop (shutdown, or nobody listens).
    pub async fn emit(&mut self, signal: Signal) -> bool {
        // Fast path (most sends at high rates): room in the channel, no waiting, no select.
        let signal = match self.tx.try_send(signal) {
            Ok(()) => {
                self.stats.incr(Counter::RecordsEmitted);
                return true;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(s)) => s,
        };
        if *self.shutdown.borrow() {
            return false;
        }
        let sent = tokio::select! {
            biased;
            _ = wait_for_shutdown(&mut self.shutdown) => return false,
            r = self.tx.send(signal) => r.is_ok(),
        };
        if sent {
            self.stats.incr(Counter::RecordsEmitted);
        }
        sent
    }

    /// Moves `next` on by `interval` and sleeps until then; false when shutdown came first.
    /// After falling behind (a slow target, a suspended machine) it does not fire a burst of
    /// catch-up runs: the next run is now.
    pub async fn next_period(&mut self, next: &mut Instant, interval: std::time::Duration) -> bool {
        *next += interval;
        let now = Instant::now();
        if *next < now {
            *next = now;
        }
        self.sleep_until(*next).await
    }

    /// Sleeps until `deadline`; false when shutdown came first.
    pub async fn sleep_until(&mut self, deadline: Instant) -> bool {
        tokio::select! {
            biased;
            _ = wait_for_shutdown(&mut self.shutdown) => false,
            _ = tokio::time::sleep_until(deadline) => true,
        }
    }
}

/// Resolves when shutdown is true or its sender is gone.
async fn wait_for_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

pub(crate) fn invalid(cfg: &SourceConfig, reason: impl Into<String>) -> SignalsError {
    SignalsError::InvalidConfig {
        source_name: cfg.name.clone(),
        reason: format!("{} (at {})", reason.into(), cfg.location),
    }
}

pub(crate) fn pattern(cfg: &SourceConfig, p: &str) -> Result<PathPattern, SignalsError> {
    PathPattern::parse(p).map_err(|reason| SignalsError::InvalidPattern {
        source_name: cfg.name.clone(),
        pattern: p.to_string(),
        reason,
    })
}

pub(crate) fn positive(
    cfg: &SourceConfig,
    what: &str,
    d: Duration,
) -> Result<Duration, SignalsError> {
    if d.is_zero() {
        return Err(invalid(cfg, format!("`{what}` must be greater than zero")));
    }
    Ok(d)
}

/// Polls the tailer off the async threads (file IO blocks). `None` if the blocking task
/// failed, which only happens when the runtime is shutting down.
pub(crate) async fn poll_tailer(tailer: Tailer) -> Option<(Tailer, Vec<TailedLine>)> {
    tokio::task::spawn_blocking(move || {
        let mut tailer = tailer;
        let lines = tailer.poll();
        (tailer, lines)
    })
    .await
    .ok()
}

/// How often the JSON-lines sources look at their file: they carry events that should
/// reach the detectors quickly, and a stat per poll is cheap.
pub(crate) const JSON_LINES_POLL: Duration = Duration::from_millis(250);

/// Shared loop of the JSON-lines sources: tail `path` from its start and turn each line
/// into a signal with `decode` (None = malformed, counted and skipped).
pub(crate) async fn run_json_lines(
    mut ctx: SourceContext,
    pattern: PathPattern,
    decode: impl Fn(&str) -> Option<Signal> + Send,
) {
    let mut tailer = Tailer::new(vec![pattern], StartAt::Beginning, ctx.stats.clone());
    loop {
        let Some((t, lines)) = poll_tailer(tailer).await else {
            return;
        };
        tailer = t;
        for line in lines {
            if line.text.trim().is_empty() {
                continue;
            }
            match decode(&line.text) {
                Some(signal) => {
                    if !ctx.emit(signal).await {
                        return;
                    }
                }
                None => {
                    ctx.stats.incr(Counter::MalformedJson);
                    tracing::debug!(source = %ctx.name, path = %line.path.display(), "skipped a malformed JSON line");
                }
            }
        }
        if !ctx.sleep_until(Instant::now() + JSON_LINES_POLL).await {
            return;
        }
    }
}
