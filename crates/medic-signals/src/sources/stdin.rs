//! `stdin`: lines piped into `medic run` (`app | medic run …`), parsed and redacted like a
//! log file's. Ends when the pipe closes; lines are bounded like a tailed file's.

use super::log_files::FLUSH_AFTER;
use super::{Source, SourceContext, SourceFuture};
use crate::SignalsError;
use crate::formats::LogParser;
use crate::logparse::RecordJoiner;
use crate::redact::Redactor;
use crate::stats::Counter;
use crate::tail::{LineBuffer, MAX_LINE_BYTES};
use medic_config::{SourceConfig, SourceKind};
use medic_core::{LogLine, Signal, SignalPayload, Ts};
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

type Chunk = std::io::Result<Vec<u8>>;

/// Reads `input` on its own thread (stdin has no readiness to wait on portably; a blocked
/// read must not hold a runtime thread). The thread ends at end of input, or when the
/// source is gone and the next chunk cannot be handed over.
pub(crate) fn spawn_reader(mut input: impl Read + Send + 'static) -> mpsc::Receiver<Chunk> {
    let (tx, rx) = mpsc::channel(4);
    let spawned = std::thread::Builder::new()
        .name("medic-stdin".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let chunk = match input.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the stdin reader thread");
    }
    rx
}

pub(crate) struct StdinSource {
    name: String,
    service: Option<String>,
    parser: LogParser,
}

impl StdinSource {
    pub(crate) fn build(
        cfg: &SourceConfig,
        redactor: &Arc<Redactor>,
    ) -> Result<Box<dyn Source>, SignalsError> {
        let SourceKind::Stdin { service, format } = &cfg.kind else {
            return Err(super::invalid(cfg, "expected a stdin source"));
        };
        Ok(Box::new(StdinSource {
            name: cfg.name.clone(),
            service: service.clone(),
            parser: LogParser::new(format, redactor.clone()).map_err(|e| super::invalid(cfg, e))?,
        }))
    }
}

/// Reads `input` to its end as log lines. Shared with tests, which feed a pipe.
pub(crate) async fn read_lines(
    mut input: mpsc::Receiver<Chunk>,
    name: String,
    service: Option<String>,
    parser: LogParser,
    mut ctx: SourceContext,
) {
    let parser = Arc::new(parser.with_stats(ctx.stats.clone()));
    let mut joiner = RecordJoiner::with_parser(parser);
    let mut lines = LineBuffer::new(MAX_LINE_BYTES);
    let signal = |(line, ts): (LogLine, Option<Ts>)| Signal {
        ts: ts.unwrap_or_else(Ts::now),
        source: name.clone(),
        service: Some(service.clone().unwrap_or_else(|| "stdin".into())),
        instance: None,
        payload: SignalPayload::Log(line),
    };
    loop {
        // A record waits for continuation lines only so long: stdin may pause for hours.
        let read = if joiner.has_pending() {
            tokio::time::timeout_at(Instant::now() + FLUSH_AFTER, input.recv())
                .await
                .ok()
        } else {
            Some(input.recv().await)
        };
        let data = match read {
            None => {
                if let Some(rec) = joiner.flush()
                    && !ctx.emit(signal(rec)).await
                {
                    return;
                }
                continue;
            }
            Some(None) => break,
            Some(Some(Ok(d))) => d,
            Some(Some(Err(e))) => {
                ctx.stats.incr(Counter::ReadError);
                tracing::warn!(source = %name, error = %e, "cannot read stdin");
                break;
            }
        };
        let mut complete = Vec::new();
        lines.feed(&data, &mut |bytes, truncated| {
            complete.push((bytes, truncated))
        });
        for (bytes, truncated) in complete {
            if let Some(rec) = push(&mut joiner, bytes, truncated, &ctx)
                && !ctx.emit(signal(rec)).await
            {
                return;
            }
        }
    }
    // The pipe closed: what is held is complete.
    let mut last = Vec::new();
    lines.finish(&mut |bytes, truncated| last.push((bytes, truncated)));
    for (bytes, truncated) in last {
        if let Some(rec) = push(&mut joiner, bytes, truncated, &ctx)
            && !ctx.emit(signal(rec)).await
        {
            return;
        }
    }
    if let Some(rec) = joiner.flush() {
        ctx.emit(signal(rec)).await;
    }
}

fn push(
    joiner: &mut RecordJoiner,
    mut bytes: Vec<u8>,
    truncated: bool,
    ctx: &SourceContext,
) -> Option<(LogLine, Option<Ts>)> {
    ctx.stats.incr(Counter::LinesRead);
    if truncated {
        ctx.stats.incr(Counter::LineTooLong);
        if let Err(e) = std::str::from_utf8(&bytes)
            && e.error_len().is_none()
        {
            bytes.truncate(e.valid_up_to());
        }
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    let text = String::from_utf8(bytes).unwrap_or_else(|e| {
        ctx.stats.incr(Counter::InvalidUtf8);
        String::from_utf8_lossy(e.as_bytes()).into_owned()
    });
    joiner.push(text, &ctx.stats)
}

impl Source for StdinSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, ctx: SourceContext) -> SourceFuture {
        let s = *self;
        Box::pin(read_lines(
            spawn_reader(std::io::stdin()),
            s.name,
            s.service,
            s.parser,
            ctx,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SourceStats;
    use std::io::Write;
    use tokio::sync::watch;

    /// Through a real OS pipe, as `app | medic run` would.
    #[tokio::test]
    async fn pipe_lines_become_records_until_the_pipe_closes() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (_stop, shutdown) = watch::channel(false);
        let stats = Arc::new(SourceStats::new());
        let ctx = SourceContext {
            name: "in".into(),
            tx,
            shutdown,
            stats: stats.clone(),
            checkpoints: None,
        };
        let parser = LogParser::new(
            &medic_config::LogFormat::Auto,
            Arc::new(Redactor::default()),
        )
        .unwrap();
        let task = tokio::spawn(read_lines(
            spawn_reader(reader),
            "in".into(),
            None,
            parser,
            ctx,
        ));
        writer
            .write_all(b"ERROR boom token=abc\n\tat x.y(Z.java:1)\nINFO \xff next\npartial")
            .unwrap();
        drop(writer);
        let mut got = Vec::new();
        while let Some(s) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
        {
            assert_eq!(s.service.as_deref(), Some("stdin"));
            let SignalPayload::Log(l) = s.payload else {
                panic!("expected a log");
            };
            got.push((l.level, l.message, l.continuation.len()));
        }
        task.await.unwrap();
        assert_eq!(
            got,
            vec![
                (
                    medic_core::Level::Error,
                    "boom token=[REDACTED:secret]".to_string(),
                    1
                ),
                (medic_core::Level::Info, "\u{fffd} next".to_string(), 0),
                (medic_core::Level::Info, "partial".to_string(), 0),
            ]
        );
        assert_eq!(stats.get(Counter::InvalidUtf8), 1);
        assert_eq!(stats.get(Counter::LinesRead), 4);
    }
}
