//! Detectors with learned baselines, and the correlator that turns findings into incidents.
//!
//! Pure logic: no IO, no async, no clock reads. Time comes in as [`Ts`] arguments (the signal's
//! timestamp, or `now` for periodic evaluation), so every detector can be driven by a synthetic
//! stream in tests.
//!
//! A new detector is a new file under `src/detectors/` plus one line in
//! [`detectors::registered`].

pub mod baseline;
mod bounded;
pub mod correlator;
mod counter;
pub mod detectors;
mod episode;
pub mod patterns;
mod samples;
pub mod series;
pub mod template;

pub use baseline::Baseline;
pub use correlator::{Assignment, Correlator, IncidentView};
pub use samples::SymptomSamples;

use medic_config::DetectorsConfig;
use medic_core::{
    Evidence, Finding, FindingKind, Signal, SignalPayload, Symptom, SymptomState, Ts,
};
use std::collections::BTreeSet;

/// Most services remembered for [`Detectors::services`]; garbage input must not grow it forever.
const MAX_KNOWN_SERVICES: usize = 1024;

/// One detector: reads signals, keeps bounded state, and judges the symptoms it owns.
pub trait Detector: Send {
    fn name(&self) -> &'static str;
    /// Feed one signal; push findings whose episode starts now.
    fn observe(&mut self, s: &Signal, out: &mut Vec<Finding>);
    /// Periodic evaluation; push findings whose episode starts now.
    fn evaluate(&mut self, now: Ts, out: &mut Vec<Finding>);
    /// `None` when this detector does not own `symptom.kind`.
    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState>;
    /// The current value and baseline behind a symptom this detector owns.
    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence>;
    /// Number of stored entries (series, samples, templates...), to prove state stays bounded.
    fn footprint(&self) -> usize;
    /// What this detector has learned that should survive a restart of medic (e.g. known log
    /// templates), or `None` when it keeps nothing worth persisting.
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }
    /// Takes back what [`Detector::save_state`] returned by an earlier run. Corrupt or foreign
    /// bytes are an error, and leave the detector as it was.
    fn restore_state(&mut self, _bytes: &[u8], _now: Ts) -> Result<(), String> {
        Ok(())
    }
}

/// Every enabled detector, fed together.
pub struct Detectors {
    detectors: Vec<Box<dyn Detector>>,
    services: BTreeSet<String>,
    /// Recent metric values of the symptoms findings were raised for.
    rings: samples::Rings,
}

impl Detectors {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        Detectors {
            detectors: detectors::registered(cfg),
            services: BTreeSet::new(),
            rings: samples::Rings::new(),
        }
    }

    /// Feed one signal; returns findings that start now (edge-triggered).
    pub fn observe(&mut self, s: &Signal) -> Vec<Finding> {
        self.remember_service(s);
        let mut out = Vec::new();
        for d in &mut self.detectors {
            d.observe(s, &mut out);
        }
        for f in &out {
            self.rings.watch(&f.symptom(), f.ts);
        }
        out
    }

    /// Periodic evaluation (every agent tick, ~1 s): windows, rates, slopes. Returns findings
    /// that start now.
    pub fn evaluate(&mut self, now: Ts) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in &mut self.detectors {
            d.evaluate(now, &mut out);
        }
        for f in &out {
            self.rings.watch(&f.symptom(), f.ts);
        }
        let detectors = &self.detectors;
        self.rings.sample(now, |symptom, now| {
            detectors.iter().find_map(|d| d.describe(symptom, now))
        });
        out
    }

    /// Keeps sampling `symptom`'s metric (at every [`Detectors::evaluate`]) for the next
    /// hour: for symptoms verified without a finding of their own.
    pub fn watch(&mut self, symptom: &Symptom, now: Ts) {
        self.rings.watch(symptom, now);
    }

    /// The values of the metric behind `symptom` sampled in `[since, until]` (one per
    /// evaluation, at most the last 720), for the before/after test; `None` when the
    /// symptom is not watched or no detector describes it.
    pub fn symptom_samples(
        &self,
        symptom: &Symptom,
        since: Ts,
        until: Ts,
    ) -> Option<SymptomSamples> {
        self.rings
            .samples(symptom, since, until)
            .filter(|s| !s.metric.is_empty())
    }

    /// Current judgement of a symptom, for the verifier. `Unknown` when no enabled detector
    /// owns the symptom's kind.
    pub fn status(&self, symptom: &Symptom, now: Ts) -> SymptomState {
        self.detectors
            .iter()
            .find_map(|d| d.status(symptom, now))
            .unwrap_or(SymptomState::Unknown)
    }

    /// Current value and baseline of the metric behind a symptom (for evidence and timelines).
    pub fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        self.detectors.iter().find_map(|d| d.describe(symptom, now))
    }

    /// Services this detector set has seen, for diagnosis context.
    pub fn services(&self) -> Vec<String> {
        self.services.iter().cloned().collect()
    }

    /// Names of the enabled detectors.
    pub fn names(&self) -> Vec<&'static str> {
        self.detectors.iter().map(|d| d.name()).collect()
    }

    /// Learned state worth keeping across restarts, per detector name.
    pub fn save_state(&self) -> Vec<(&'static str, Vec<u8>)> {
        self.detectors
            .iter()
            .filter_map(|d| d.save_state().map(|b| (d.name(), b)))
            .collect()
    }

    /// Restores one detector's saved state (no-op for a detector that is not enabled).
    pub fn restore_state(&mut self, name: &str, bytes: &[u8], now: Ts) -> Result<(), String> {
        match self.detectors.iter_mut().find(|d| d.name() == name) {
            Some(d) => d.restore_state(bytes, now),
            None => Ok(()),
        }
    }

    /// Stored entries across all detectors (bounded whatever the input).
    pub fn footprint(&self) -> usize {
        self.detectors.iter().map(|d| d.footprint()).sum::<usize>()
            + self.services.len()
            + self.rings.footprint()
    }

    fn remember_service(&mut self, s: &Signal) {
        let service = match (&s.service, &s.payload) {
            (Some(svc), _) => svc,
            (None, SignalPayload::Change(c)) => &c.service,
            (None, _) => return,
        };
        if service.is_empty() || self.services.contains(service) {
            return;
        }
        if self.services.len() >= MAX_KNOWN_SERVICES {
            // Keep the first ones: an estate with more services than this is not something
            // the diagnosis context can use anyway, and garbage must not grow memory.
            return;
        }
        self.services.insert(service.clone());
    }
}

/// A finding id: stable for the same detector, service and time. The kind and instance are
/// added so that two findings of one detector at the same instant (a process exit and the
/// crash loop it completes) do not share an id.
pub(crate) fn finding_id(
    detector: &str,
    service: &str,
    ts: Ts,
    kind: FindingKind,
    instance: Option<&str>,
) -> String {
    let ts = ts.0.to_string();
    medic_core::stable_id(&[
        detector,
        service,
        &ts,
        kind.as_str(),
        instance.unwrap_or(""),
    ])
}

/// Score in [0.5, 1] for a value above its threshold: 0.5 just above, towards 1 far above.
pub(crate) fn score_above(value: f64, threshold: f64) -> f64 {
    if !(value.is_finite() && threshold.is_finite()) || value <= 0.0 {
        return 0.5;
    }
    let excess = (1.0 - threshold.max(0.0) / value).clamp(0.0, 1.0);
    (0.5 + 0.5 * excess).clamp(0.0, 1.0)
}

/// Seconds from `earlier` to `later`; saturates instead of overflowing on absurd timestamps
/// (`Ts::secs_since` subtracts unchecked).
pub(crate) fn secs_between(later: Ts, earlier: Ts) -> f64 {
    later.0.saturating_sub(earlier.0) as f64 / 1000.0
}

/// Human form of a byte count.
pub(crate) fn fmt_bytes(b: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b.abs() >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

/// Human form of a window length.
pub(crate) fn fmt_secs(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;
