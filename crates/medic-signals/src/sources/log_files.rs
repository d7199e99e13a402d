//! Log files → `Log` signals: tailed, parsed, multi-line records joined, redacted.

use super::{Source, SourceContext, SourceFuture, pattern, poll_tailer, positive};
use crate::SignalsError;
use crate::glob::{PathPattern, instance_and_service};
use crate::logparse::RecordJoiner;
use crate::tail::{StartAt, Tailer};
use medic_config::{SourceConfig, SourceKind};
use medic_core::{LogLine, Signal, SignalPayload, Ts};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// A record with no continuation for this long is complete.
pub(crate) const FLUSH_AFTER: Duration = Duration::from_millis(200);

pub(crate) struct LogFilesSource {
    name: String,
    patterns: Vec<PathPattern>,
    service: Option<String>,
    start_at: StartAt,
    poll: Duration,
}

impl LogFilesSource {
    pub(crate) fn build(cfg: &SourceConfig) -> Result<Box<dyn Source>, SignalsError> {
        let SourceKind::LogFiles {
            paths,
            service,
            from_start,
            poll,
        } = &cfg.kind
        else {
            return Err(super::invalid(cfg, "expected a log_files source"));
        };
        if paths.is_empty() {
            return Err(super::invalid(
                cfg,
                "`paths` must name at least one file or pattern",
            ));
        }
        Ok(Box::new(LogFilesSource {
            name: cfg.name.clone(),
            patterns: paths
                .iter()
                .map(|p| pattern(cfg, p))
                .collect::<Result<_, _>>()?,
            service: service.clone(),
            start_at: if *from_start {
                StartAt::Beginning
            } else {
                StartAt::End
            },
            poll: positive(cfg, "poll", *poll)?,
        }))
    }
}

struct FileRecords {
    joiner: RecordJoiner,
    last_line: Instant,
}

impl LogFilesSource {
    fn signal(&self, path: &Path, (line, ts): (LogLine, Option<Ts>)) -> Signal {
        let (instance, file_service) = instance_and_service(path);
        Signal {
            ts: ts.unwrap_or_else(Ts::now),
            source: self.name.clone(),
            service: self.service.clone().or(file_service),
            instance,
            payload: SignalPayload::Log(line),
        }
    }

    async fn run_loop(self, mut ctx: SourceContext) {
        let mut tailer = Tailer::new(self.patterns.clone(), self.start_at, ctx.stats.clone());
        let mut files: HashMap<PathBuf, FileRecords> = HashMap::new();
        let mut next_poll = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_poll {
                let Some((t, lines)) = poll_tailer(tailer).await else {
                    return;
                };
                tailer = t;
                next_poll = Instant::now() + self.poll;
                let now = Instant::now();
                for line in lines {
                    let state = files
                        .entry(line.path.clone())
                        .or_insert_with(|| FileRecords {
                            joiner: RecordJoiner::new(),
                            last_line: now,
                        });
                    state.last_line = now;
                    if let Some(rec) = state.joiner.push(line.text, &ctx.stats)
                        && !ctx.emit(self.signal(&line.path, rec)).await
                    {
                        return;
                    }
                }
            }
            // Records that waited long enough for a continuation are complete.
            let now = Instant::now();
            let mut ready = Vec::new();
            for (path, state) in files.iter_mut() {
                if state.joiner.has_pending()
                    && now >= state.last_line + FLUSH_AFTER
                    && let Some(rec) = state.joiner.flush()
                {
                    ready.push((path.clone(), rec));
                }
            }
            for (path, rec) in ready {
                if !ctx.emit(self.signal(&path, rec)).await {
                    return;
                }
            }
            // Forget files no longer followed (deleted, rotated away) once they are flushed.
            let followed = tailer.followed();
            files.retain(|p, s| s.joiner.has_pending() || followed.contains(p));

            let flush_due = files
                .values()
                .filter(|s| s.joiner.has_pending())
                .map(|s| s.last_line + FLUSH_AFTER)
                .min();
            let wake = flush_due.map_or(next_poll, |f| f.min(next_poll));
            if !ctx.sleep_until(wake).await {
                return;
            }
        }
    }
}

impl Source for LogFilesSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, ctx: SourceContext) -> SourceFuture {
        Box::pin(self.run_loop(ctx))
    }
}
