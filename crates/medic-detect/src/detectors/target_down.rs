//! `target_down`: an instance whose scrapes failed `after_failures` times in a row; it clears
//! with the next successful scrape.

use crate::bounded::BoundedMap;
use crate::counter::MAX_INSTANCES_PER_SERVICE;
use crate::detectors::MAX_SERVICES;
use crate::{Detector, finding_id};
use medic_config::{DetectorsConfig, TargetDownConfig};
use medic_core::{
    Evidence, Finding, FindingKind, Signal, SignalPayload, Symptom, SymptomState, Ts,
};

const NAME: &str = "target_down";
/// A target that stops producing signals at all was removed (scaled in), not down.
const FORGET_AFTER_MS: i64 = 60_000;
/// Longest scrape error quoted as evidence.
const MAX_ERROR_CHARS: usize = 300;

pub struct TargetDown {
    cfg: TargetDownConfig,
    services: BoundedMap<BoundedMap<Instance>>,
}

#[derive(Debug, Default)]
struct Instance {
    failures: u32,
    last_seen: Ts,
}

impl TargetDown {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        TargetDown {
            cfg: cfg.target_down.clone(),
            services: BoundedMap::new(MAX_SERVICES),
        }
    }

    fn down_count(&self, service: &str) -> Option<usize> {
        let need = self.cfg.after_failures.max(1);
        self.services
            .get(service)
            .map(|s| s.values().filter(|i| i.failures >= need).count())
    }
}

fn evidence(service: &str, ts: Ts, down: usize) -> Evidence {
    // A reachable target is the only normal: the baseline of down targets is zero.
    Evidence::Metric {
        ts,
        service: service.to_string(),
        name: "targets_down".into(),
        value: down as f64,
        baseline: Some(0.0),
        unit: String::new(),
    }
}

impl Detector for TargetDown {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, out: &mut Vec<Finding>) {
        let Some(service) = &s.service else {
            return;
        };
        let instance = s.instance.as_deref().unwrap_or("");
        match &s.payload {
            SignalPayload::TargetDown { error } => {
                let need = self.cfg.after_failures.max(1);
                let inst = self
                    .services
                    .touch(service, || BoundedMap::new(MAX_INSTANCES_PER_SERVICE))
                    .touch(instance, Instance::default);
                inst.failures = inst.failures.saturating_add(1);
                inst.last_seen = inst.last_seen.max(s.ts);
                if inst.failures != need {
                    return;
                }
                let down = self.down_count(service).unwrap_or(1);
                let who = if instance.is_empty() {
                    service.as_str()
                } else {
                    instance
                };
                let err: String = error.chars().take(MAX_ERROR_CHARS).collect();
                out.push(Finding {
                    id: finding_id(NAME, service, s.ts, FindingKind::TargetDown, Some(instance)),
                    ts: s.ts,
                    service: service.clone(),
                    instance: s.instance.clone(),
                    kind: FindingKind::TargetDown,
                    detector: NAME.into(),
                    score: 0.7,
                    summary: format!("{who} failed {need} scrapes in a row on {service}: {err}"),
                    evidence: vec![
                        evidence(service, s.ts, down),
                        Evidence::Event {
                            ts: s.ts,
                            service: service.clone(),
                            description: format!("scrape of {who} failed: {err}"),
                        },
                    ],
                });
            }
            // Stopped by its orchestrator (a pod deleted): its target is gone, not down.
            SignalPayload::Process(ev)
                if ev.kind == medic_core::ProcessEventKind::Exited && !ev.is_unexpected_exit() =>
            {
                if let Some(svc) = self.services.get_mut(service) {
                    svc.remove(instance);
                }
            }
            SignalPayload::Metrics { .. } => {
                let inst = self
                    .services
                    .touch(service, || BoundedMap::new(MAX_INSTANCES_PER_SERVICE))
                    .touch(instance, Instance::default);
                inst.failures = 0;
                inst.last_seen = inst.last_seen.max(s.ts);
            }
            _ => {}
        }
    }

    fn evaluate(&mut self, now: Ts, _out: &mut Vec<Finding>) {
        let cutoff = now.0.saturating_sub(FORGET_AFTER_MS);
        for (_, svc) in self.services.iter_mut() {
            svc.retain(|_, i| i.last_seen.0 >= cutoff);
        }
        self.services.retain(|_, s| s.len() > 0);
    }

    fn status(&self, symptom: &Symptom, _now: Ts) -> Option<SymptomState> {
        if symptom.kind != FindingKind::TargetDown {
            return None;
        }
        Some(match self.down_count(&symptom.service) {
            None => SymptomState::Unknown,
            Some(0) => SymptomState::Clear,
            Some(_) => SymptomState::Anomalous,
        })
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if symptom.kind != FindingKind::TargetDown {
            return None;
        }
        Some(evidence(
            &symptom.service,
            now,
            self.down_count(&symptom.service)?,
        ))
    }

    fn footprint(&self) -> usize {
        self.services.values().map(|s| 1 + s.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn down(t: i64, inst: &str) -> Signal {
        target_down(t, "cache", inst)
    }
    fn up(t: i64, inst: &str) -> Signal {
        metrics(t, "cache", inst, vec![counter("up", &[], 1.0)])
    }
    fn st(d: &TargetDown, t: i64) -> Option<SymptomState> {
        d.status(&sym("cache", FindingKind::TargetDown), Ts(t))
    }

    #[test]
    fn consecutive_failures_then_recovery() {
        let mut d = TargetDown::new(&DetectorsConfig::default());
        let mut out = vec![];
        assert_eq!(st(&d, 0), Some(SymptomState::Unknown));
        d.observe(&up(0, "cache-0"), &mut out);
        assert_eq!(st(&d, 0), Some(SymptomState::Clear));
        d.observe(&down(1_000, "cache-0"), &mut out);
        d.observe(&up(2_000, "cache-0"), &mut out);
        d.observe(&down(3_000, "cache-0"), &mut out);
        assert!(out.is_empty(), "failures were not consecutive");
        d.observe(&down(4_000, "cache-0"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ts, Ts(4_000));
        assert_eq!(out[0].instance.as_deref(), Some("cache-0"));
        assert_eq!(st(&d, 4_000), Some(SymptomState::Anomalous));
        for t in 5..20 {
            d.observe(&down(t * 1000, "cache-0"), &mut out);
        }
        assert_eq!(out.len(), 1);
        d.observe(&up(20_000, "cache-0"), &mut out);
        assert_eq!(st(&d, 20_000), Some(SymptomState::Clear));
        d.observe(&down(21_000, "cache-0"), &mut out);
        d.observe(&down(22_000, "cache-0"), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn removed_target_is_forgotten() {
        let mut d = TargetDown::new(&DetectorsConfig::default());
        let mut out = vec![];
        d.observe(&down(0, "cache-1"), &mut out);
        d.observe(&down(1_000, "cache-1"), &mut out);
        assert_eq!(st(&d, 1_000), Some(SymptomState::Anomalous));
        d.evaluate(Ts(120_000), &mut out);
        assert_eq!(st(&d, 120_000), Some(SymptomState::Unknown));
        assert_eq!(d.footprint(), 0);
    }

    /// Regression (Kubernetes): a crash-looping pod deleted by its controller is never
    /// scraped again; its target must not stay "down" until it is forgotten.
    #[test]
    fn a_stopped_instance_is_no_longer_down() {
        let mut d = TargetDown::new(&DetectorsConfig::default());
        let mut out = vec![];
        for t in [1_000, 2_000, 3_000] {
            d.observe(&down(t, "cache-x"), &mut out);
        }
        assert_eq!(st(&d, 3_500), Some(SymptomState::Anomalous));
        // An unexpected exit does not clear it: the target is still expected back.
        let crash = process(3_600, "cache", "cache-x", ProcessEventKind::Exited, "Error");
        d.observe(&crash, &mut out);
        assert_eq!(st(&d, 3_700), Some(SymptomState::Anomalous));
        let stopped = process(
            4_000,
            "cache",
            "cache-x",
            ProcessEventKind::Exited,
            "Stopped",
        );
        d.observe(&stopped, &mut out);
        assert_eq!(st(&d, 4_500), Some(SymptomState::Clear));
    }
}
