//! A supervisor's process events (`ProcessEventRecord` per JSON line) → `Process` signals.

use super::{Source, SourceContext, SourceFuture, pattern, run_json_lines};
use crate::SignalsError;
use crate::glob::PathPattern;
use medic_config::{SourceConfig, SourceKind};
use medic_core::{ProcessEventRecord, Signal, SignalPayload};

pub(crate) struct ProcessEventsSource {
    name: String,
    path: PathPattern,
}

impl ProcessEventsSource {
    pub(crate) fn build(cfg: &SourceConfig) -> Result<Box<dyn Source>, SignalsError> {
        let SourceKind::ProcessEvents { path } = &cfg.kind else {
            return Err(super::invalid(cfg, "expected a process_events source"));
        };
        Ok(Box::new(ProcessEventsSource {
            name: cfg.name.clone(),
            path: pattern(cfg, &path.to_string_lossy())?,
        }))
    }
}

/// One line → one signal, `None` when the line is not a `ProcessEventRecord`.
pub(crate) fn decode(source: &str, line: &str) -> Option<Signal> {
    let rec: ProcessEventRecord = serde_json::from_str(line).ok()?;
    Some(Signal {
        ts: rec.ts,
        source: source.to_string(),
        service: Some(rec.service),
        instance: Some(rec.instance),
        payload: SignalPayload::Process(rec.event),
    })
}

impl Source for ProcessEventsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>, ctx: SourceContext) -> SourceFuture {
        let name = self.name.clone();
        Box::pin(run_json_lines(ctx, self.path, move |line| {
            decode(&name, line)
        }))
    }
}
