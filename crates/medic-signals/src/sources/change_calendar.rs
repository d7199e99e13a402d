//! The change calendar (`ChangeEvent` per JSON line) → `Change` signals, stamped when read
//! (the event carries its own start and end).

use super::{Source, SourceContext, SourceFuture, pattern, run_json_lines};
use crate::SignalsError;
use crate::glob::PathPattern;
use crate::redact::redact;
use medic_config::{SourceConfig, SourceKind};
use medic_core::{ChangeEvent, Signal, SignalPayload, Ts};

pub(crate) struct ChangeCalendarSource {
    name: String,
    path: PathPattern,
}

impl ChangeCalendarSource {
    pub(crate) fn build(cfg: &SourceConfig) -> Result<Box<dyn Source>, SignalsError> {
        let SourceKind::ChangeCalendar { path } = &cfg.kind else {
            return Err(super::invalid(cfg, "expected a change_calendar source"));
        };
        Ok(Box::new(ChangeCalendarSource {
            name: cfg.name.clone(),
            path: pattern(cfg, &path.to_string_lossy())?,
        }))
    }
}

/// One line → one signal, `None` when the line is not a `ChangeEvent`.
pub(crate) fn decode(source: &str, line: &str) -> Option<Signal> {
    let mut change: ChangeEvent = serde_json::from_str(line).ok()?;
    // Descriptions are free text written by people and pipelines.
    change.description = redact(&change.description).into_owned();
    Some(Signal {
        ts: Ts::now(),
        source: source.to_string(),
        service: Some(change.service.clone()),
        instance: None,
        payload: SignalPayload::Change(change),
    })
}

impl Source for ChangeCalendarSource {
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
