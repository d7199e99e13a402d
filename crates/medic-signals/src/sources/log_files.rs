//! Log files → `Log` signals: tailed, unwrapped from container envelopes, multi-line
//! records joined, parsed in the source's format, redacted. Positions are checkpointed so
//! that a restart neither loses nor duplicates a line.

use super::{Source, SourceContext, SourceFuture, pattern, poll_tailer, positive};
use crate::SignalsError;
use crate::container::{
    ContainerLine, PartialJoiner, PodRef, decode_any, decode_cri, decode_docker,
};
use crate::formats::LogParser;
use crate::glob::{PathPattern, instance_and_service};
use crate::logparse::RecordJoiner;
use crate::redact::Redactor;
use crate::stats::Counter;
use crate::tail::{FileId, Head, StartAt, TailedLine, Tailer, TailerState};
use medic_config::{ContainerFormat, LogFormat, SourceConfig, SourceKind};
use medic_core::{LogLine, Signal, SignalPayload, Ts};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A record with no continuation for this long is complete.
pub(crate) const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// Checkpoints are saved at most this often (and on shutdown).
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct LogFilesSource {
    pub(crate) name: String,
    pub(crate) patterns: Vec<PathPattern>,
    pub(crate) service: Option<String>,
    pub(crate) start_at: StartAt,
    pub(crate) poll: Duration,
    pub(crate) parser: LogParser,
    pub(crate) container: ContainerFormat,
    /// Service and instance from the kubelet path (workload and pod), not the file name.
    pub(crate) pod_names: bool,
}

impl LogFilesSource {
    pub(crate) fn build(
        cfg: &SourceConfig,
        redactor: &Arc<Redactor>,
    ) -> Result<Box<dyn Source>, SignalsError> {
        let SourceKind::LogFiles {
            paths,
            service,
            from_start,
            poll,
            format,
            container,
        } = &cfg.kind
        else {
            return Err(super::invalid(cfg, "expected a log_files source"));
        };
        let mut source = Self::from_parts(cfg, paths, *from_start, *poll, format, redactor)?;
        source.service = service.clone();
        source.container = *container;
        Ok(Box::new(source))
    }

    /// The parts every file-based log source shares.
    pub(crate) fn from_parts(
        cfg: &SourceConfig,
        paths: &[String],
        from_start: bool,
        poll: Duration,
        format: &LogFormat,
        redactor: &Arc<Redactor>,
    ) -> Result<LogFilesSource, SignalsError> {
        if paths.is_empty() {
            return Err(super::invalid(
                cfg,
                "`paths` must name at least one file or pattern",
            ));
        }
        Ok(LogFilesSource {
            name: cfg.name.clone(),
            patterns: paths
                .iter()
                .map(|p| pattern(cfg, p))
                .collect::<Result<_, _>>()?,
            service: None,
            start_at: if from_start {
                StartAt::Beginning
            } else {
                StartAt::End
            },
            poll: positive(cfg, "poll", poll)?,
            parser: LogParser::new(format, redactor.clone()).map_err(|e| super::invalid(cfg, e))?,
            container: ContainerFormat::None,
            pod_names: false,
        })
    }
}

/// A position in a file: which file, and the offset.
type Mark = (FileId, Head, u64);

/// Per-file state: the record being joined and what has been handed on.
#[derive(Clone, Debug)]
struct Names {
    instance: Option<String>,
    service: Option<String>,
}

/// `app-1.log.1`, `app-1.log.2.gz`, `app-1.log-20240101` → `app-1.log`: a rotated file
/// names the same instance as the live one.
fn strip_rotation_suffix(path: &Path) -> std::path::PathBuf {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return path.to_path_buf();
    };
    let mut n = name.strip_suffix(".gz").unwrap_or(name);
    loop {
        let cut = n
            .rsplit_once('.')
            .filter(|(_, tail)| !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()))
            .or_else(|| {
                n.rsplit_once('-').filter(|(head, tail)| {
                    head.contains('.')
                        && tail.len() >= 8
                        && tail.bytes().all(|b| b.is_ascii_digit())
                })
            });
        match cut {
            Some((head, _)) if !head.is_empty() => n = head,
            _ => break,
        }
    }
    path.with_file_name(n)
}

struct FileRecords {
    names: Names,
    joiner: RecordJoiner,
    partials: PartialJoiner,
    last_line: Instant,
    pod: Option<PodRef>,
    /// Start of the pending record's first line, and its envelope time.
    pending_start: Option<Mark>,
    pending_env_ts: Option<Ts>,
    /// Start of the first container partial not yet joined into a line.
    partial_start: Option<Mark>,
    /// End of the last line fully processed.
    consumed: Option<Mark>,
}

impl FileRecords {
    /// Up to where every line has been handed on (or is safely re-readable).
    fn delivered(&self) -> Option<Mark> {
        self.pending_start.or(self.partial_start).or(self.consumed)
    }
}

impl LogFilesSource {
    /// Instance and service named by a file (computed once per file, not per record).
    fn names(&self, path: &Path, pod: Option<&PodRef>) -> Names {
        let (instance, service) = match pod {
            // `namespace/workload`, as the Kubernetes source names the same workload, so the
            // findings of both land on one service.
            Some(p) => (
                Some(p.pod.clone()),
                Some(format!("{}/{}", p.namespace, p.workload())),
            ),
            None => instance_and_service(&strip_rotation_suffix(path)),
        };
        Names {
            instance,
            service: self.service.clone().or(service),
        }
    }

    fn signal(
        &self,
        names: &Names,
        pod: Option<&PodRef>,
        (mut line, ts): (LogLine, Option<Ts>),
        env_ts: Option<Ts>,
    ) -> Signal {
        if let Some(p) = pod {
            line.fields.insert("namespace".into(), p.namespace.clone());
            line.fields.insert("pod".into(), p.pod.clone());
            line.fields.insert("container".into(), p.container.clone());
        }
        Signal {
            ts: ts.or(env_ts).unwrap_or_else(Ts::now),
            source: self.name.clone(),
            service: names.service.clone(),
            instance: names.instance.clone(),
            payload: SignalPayload::Log(line),
        }
    }

    /// The line inside a container envelope; a line that is not one is passed on as it
    /// is (and counted).
    fn unwrap_envelope(&self, text: String, ctx: &SourceContext) -> ContainerLine {
        let decoded = match self.container {
            ContainerFormat::Cri => decode_cri(&text),
            ContainerFormat::Docker => decode_docker(&text),
            ContainerFormat::Auto | ContainerFormat::None => decode_any(&text),
        };
        decoded.unwrap_or_else(|| {
            ctx.stats.incr(Counter::MalformedContainerLine);
            ContainerLine {
                time: None,
                stream: "stdout".into(),
                partial: false,
                message: text,
            }
        })
    }

    async fn run_loop(mut self, mut ctx: SourceContext) {
        let mut tailer = Tailer::new(self.patterns.clone(), self.start_at, ctx.stats.clone());
        if let Some(store) = &ctx.checkpoints
            && let Some(saved) = store.load(&ctx.name)
        {
            match TailerState::from_json(&saved) {
                Ok(state) => tailer.restore(state),
                Err(e) => {
                    ctx.stats.incr(Counter::CheckpointError);
                    tracing::warn!(source = %ctx.name, error = %e, "ignoring an unreadable checkpoint");
                }
            }
        }
        let parser = Arc::new(
            std::mem::replace(&mut self.parser, LogParser::auto()).with_stats(ctx.stats.clone()),
        );
        let mut run = Run {
            files: HashMap::new(),
            last_save: Instant::now(),
            dirty: false,
        };
        if let Some(t) = self.follow(&mut ctx, tailer, &parser, &mut run).await {
            run.save(&ctx, &t);
        }
    }

    /// The source's loop; returns the tailer (to save its final positions) when it
    /// stopped on shutdown, `None` when the runtime went away with it.
    async fn follow(
        &self,
        ctx: &mut SourceContext,
        mut tailer: Tailer,
        parser: &Arc<LogParser>,
        run: &mut Run,
    ) -> Option<Tailer> {
        let mut next_poll = Instant::now();
        loop {
            if Instant::now() >= next_poll {
                let (t, lines) = poll_tailer(tailer).await?;
                tailer = t;
                next_poll = if tailer.has_more() {
                    Instant::now()
                } else {
                    Instant::now() + self.poll
                };
                let now = Instant::now();
                for line in lines {
                    if !self.take_line(ctx, parser, run, line, now).await {
                        return Some(tailer);
                    }
                }
            }
            // Records that waited long enough for a continuation are complete.
            let now = Instant::now();
            let mut ready = Vec::new();
            for (path, state) in run.files.iter_mut() {
                if state.joiner.has_pending()
                    && now >= state.last_line + FLUSH_AFTER
                    && let Some(rec) = state.joiner.flush()
                {
                    ready.push((path.clone(), rec, state.pending_env_ts.take()));
                }
            }
            for (path, rec, env_ts) in ready {
                let Some(st) = run.files.get(&path) else {
                    continue;
                };
                let signal = self.signal(&st.names, st.pod.as_ref(), rec, env_ts);
                if !ctx.emit(signal).await {
                    return Some(tailer);
                }
                if let Some(st) = run.files.get_mut(&path) {
                    st.pending_start = None;
                }
                run.dirty = true;
            }
            // Forget files no longer followed (deleted, rotated away) once they are flushed;
            // a container partial that will never be finished is passed on as it is.
            let followed = tailer.followed();
            let gone: Vec<Arc<Path>> = run
                .files
                .keys()
                .filter(|p| !followed.iter().any(|f| f.as_path() == &***p))
                .cloned()
                .collect();
            for path in gone {
                let Some(st) = run.files.get_mut(&path) else {
                    continue;
                };
                for cl in st.partials.flush() {
                    if let Some(rec) = st.joiner.push(cl.message, &ctx.stats) {
                        let signal = self.signal(&st.names, st.pod.as_ref(), rec, cl.time);
                        if !ctx.emit(signal).await {
                            return Some(tailer);
                        }
                    }
                }
                let Some(st) = run.files.get_mut(&path) else {
                    continue;
                };
                if !st.joiner.has_pending() {
                    run.files.remove(&path);
                }
            }

            if run.dirty && run.last_save.elapsed() >= CHECKPOINT_EVERY {
                run.save(ctx, &tailer);
            }
            let flush_due = run
                .files
                .values()
                .filter(|s| s.joiner.has_pending())
                .map(|s| s.last_line + FLUSH_AFTER)
                .min();
            let mut wake = flush_due.map_or(next_poll, |f| f.min(next_poll));
            if run.dirty && ctx.checkpoints.is_some() {
                wake = wake.min(run.last_save + CHECKPOINT_EVERY);
            }
            if !ctx.sleep_until(wake).await {
                return Some(tailer);
            }
        }
    }

    /// One tailed line: unwrapped, joined, and the record it completes (if any) emitted.
    /// False when the source should stop.
    async fn take_line(
        &self,
        ctx: &mut SourceContext,
        parser: &Arc<LogParser>,
        run: &mut Run,
        line: TailedLine,
        now: Instant,
    ) -> bool {
        let TailedLine { path, text, pos } = line;
        let here: Mark = (pos.file, pos.head, pos.start);
        let end: Mark = (pos.file, pos.head, pos.end);
        let st = run.files.entry(path.clone()).or_insert_with(|| {
            let pod = if self.pod_names {
                PodRef::from_path(&path)
            } else {
                None
            };
            FileRecords {
                names: self.names(&path, pod.as_ref()),
                joiner: RecordJoiner::with_parser(parser.clone()),
                partials: PartialJoiner::new(),
                last_line: now,
                pod,
                pending_start: None,
                pending_env_ts: None,
                partial_start: None,
                consumed: None,
            }
        });
        st.last_line = now;
        run.dirty = true;
        let envelope = if self.container == ContainerFormat::None {
            Err(text)
        } else {
            Ok(self.unwrap_envelope(text, ctx))
        };
        let (text, env_ts, first) = match envelope {
            Err(text) => (text, None, here),
            Ok(cl) if cl.partial || st.partials.has_pending() => {
                let start = st.partial_start.unwrap_or(here);
                match st.partials.push(cl, &ctx.stats) {
                    None => {
                        st.partial_start = Some(start);
                        st.consumed = Some(end);
                        return true;
                    }
                    Some(whole) => {
                        st.partial_start = None;
                        (whole.message, whole.time, start)
                    }
                }
            }
            Ok(cl) => (cl.message, cl.time, here),
        };
        let had_pending = st.joiner.has_pending();
        let finished = st.joiner.push(text, &ctx.stats);
        let prev_env_ts = st.pending_env_ts;
        let prev_start = st.pending_start;
        if finished.is_some() || (!had_pending && st.joiner.has_pending()) {
            st.pending_start = st.joiner.has_pending().then_some(first);
            st.pending_env_ts = env_ts;
        }
        if let Some(rec) = finished {
            let signal = self.signal(&st.names, st.pod.as_ref(), rec, prev_env_ts);
            if !ctx.emit(signal).await {
                // Not handed on: resume at that record next time.
                if let Some(st) = run.files.get_mut(&path) {
                    st.pending_start = prev_start;
                }
                return false;
            }
        }
        if let Some(st) = run.files.get_mut(&path) {
            st.consumed = Some(end);
        }
        true
    }
}

struct Run {
    files: HashMap<Arc<Path>, FileRecords>,
    last_save: Instant,
    dirty: bool,
}

impl Run {
    fn save(&mut self, ctx: &SourceContext, tailer: &Tailer) {
        let Some(store) = &ctx.checkpoints else {
            return;
        };
        let files = &self.files;
        let state = tailer.state(&|p: &Path| files.get(p).and_then(FileRecords::delivered));
        store.save(&ctx.name, &state.to_json());
        self.last_save = Instant::now();
        self.dirty = false;
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

#[cfg(test)]
mod tests {
    use super::strip_rotation_suffix;
    use std::path::Path;

    #[test]
    fn rotation_suffixes() {
        for (from, to) in [
            ("/l/app-1.log", "/l/app-1.log"),
            ("/l/app-1.log.1", "/l/app-1.log"),
            ("/l/app-1.log.2.gz", "/l/app-1.log"),
            ("/l/app-1.log-20240101", "/l/app-1.log"),
            ("/l/app-1.log-20240101.gz", "/l/app-1.log"),
            ("/l/v1.2", "/l/v1"),
            ("/l/1", "/l/1"),
        ] {
            assert_eq!(
                strip_rotation_suffix(Path::new(from)),
                Path::new(to),
                "{from}"
            );
        }
    }
}
