//! `memory_growth`: per instance, the least-squares slope of resident memory over a window;
//! a leak is steady growth that has also taken memory well above the service's healthy level.

use crate::baseline::Baseline;
use crate::bounded::BoundedMap;
use crate::counter::{MAX_INSTANCES_PER_SERVICE, stale_after};
use crate::detectors::MAX_SERVICES;
use crate::episode::{Episode, Judgement};
use crate::{Detector, finding_id, fmt_bytes, fmt_secs, score_above};
use medic_config::{BaselineConfig, DetectorsConfig, MemoryGrowthConfig};
use medic_core::{
    Evidence, Finding, FindingKind, Signal, SignalPayload, Symptom, SymptomState, Ts,
};
use std::collections::VecDeque;

const NAME: &str = "memory_growth";
/// The standard Prometheus process-collector gauge, read when no procfs source is configured.
pub const RSS_METRIC: &str = "process_resident_memory_bytes";
/// Most samples kept per instance, whatever the sampling rate.
const MAX_SAMPLES: usize = 256;
/// A gauge reading below this share of the previous one is a new process, not a free().
const RESTART_DROP: f64 = 0.5;

pub struct MemoryGrowth {
    cfg: MemoryGrowthConfig,
    baseline: BaselineConfig,
    services: BoundedMap<Service>,
}

#[derive(Debug)]
struct Service {
    instances: BoundedMap<Instance>,
    baseline: Baseline,
    episode: Episode,
}

#[derive(Debug, Default)]
struct Instance {
    samples: VecDeque<(Ts, f64)>,
    pid: Option<u32>,
    last_seen: Ts,
}

impl Instance {
    fn reset(&mut self) {
        self.samples.clear();
    }

    fn push(&mut self, ts: Ts, rss: f64, window_ms: i64) {
        if let Some(&(_, prev)) = self.samples.back()
            && rss < prev * RESTART_DROP
        {
            self.reset();
        }
        self.samples.push_back((ts, rss));
        self.last_seen = self.last_seen.max(ts);
        let newest = self.samples.back().map(|s| s.0).unwrap_or(ts);
        while self.samples.len() > MAX_SAMPLES
            || self
                .samples
                .front()
                .is_some_and(|(t, _)| t.0 < newest.0.saturating_sub(window_ms))
        {
            self.samples.pop_front();
        }
    }
}

/// One instance's fit over the window.
#[derive(Copy, Clone, Debug)]
struct Fit {
    slope: f64,
    rss: f64,
}

fn window_ms(cfg: &MemoryGrowthConfig) -> i64 {
    i64::try_from(cfg.window.as_millis())
        .unwrap_or(i64::MAX / 4)
        .max(1)
}

/// Least-squares slope (bytes per second) and latest value, when the window holds at least
/// three samples spanning half of it.
fn fit(cfg: &MemoryGrowthConfig, inst: &Instance, now: Ts) -> Option<Fit> {
    let w = window_ms(cfg);
    let start = now.0.saturating_sub(w);
    let pts: Vec<(f64, f64)> = inst
        .samples
        .iter()
        .filter(|(t, _)| t.0 > start && t.0 <= now.0)
        .map(|(t, v)| ((t.0 - start) as f64 / 1000.0, *v))
        .collect();
    let (first, last) = (pts.first()?, pts.last()?);
    if pts.len() < 3 || (last.0 - first.0) * 1000.0 < w as f64 / 2.0 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    slope.is_finite().then_some(Fit { slope, rss: last.1 })
}

fn judge_fit(cfg: &MemoryGrowthConfig, baseline: &Baseline, f: Option<Fit>) -> Judgement {
    match (f, baseline.mean()) {
        (Some(f), Some(b)) if f.slope >= cfg.min_bytes_per_second && f.rss >= cfg.min_ratio * b => {
            Judgement::Anomalous
        }
        (Some(_), Some(_)) => Judgement::Clear,
        _ => Judgement::Unknown,
    }
}

/// The service verdict and its worst instance (the fastest-growing anomalous one, else the
/// fastest-growing one).
fn judge_service(
    cfg: &MemoryGrowthConfig,
    svc: &Service,
    now: Ts,
) -> (Judgement, Option<(String, Fit)>) {
    let mut verdict = Judgement::Unknown;
    let mut worst: Option<(String, Fit, Judgement)> = None;
    for (name, inst) in svc.instances.iter() {
        let f = fit(cfg, inst, now);
        let j = judge_fit(cfg, &svc.baseline, f);
        verdict = verdict.worst(j);
        if let Some(f) = f {
            let better = match &worst {
                None => true,
                Some((_, wf, wj)) => {
                    (j == Judgement::Anomalous && *wj != Judgement::Anomalous)
                        || (j == *wj && f.slope > wf.slope)
                }
            };
            if better {
                worst = Some((name.clone(), f, j));
            }
        }
    }
    (verdict, worst.map(|(n, f, _)| (n, f)))
}

fn evidence(service: &str, now: Ts, f: Fit, baseline: Option<f64>) -> Evidence {
    Evidence::Metric {
        ts: now,
        service: service.to_string(),
        name: "resident_memory_bytes".into(),
        value: f.rss,
        baseline,
        unit: "B".into(),
    }
}

impl MemoryGrowth {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        MemoryGrowth {
            cfg: cfg.memory_growth.clone(),
            baseline: cfg.baseline.clone(),
            services: BoundedMap::new(MAX_SERVICES),
        }
    }

    fn instance(&mut self, service: &str, instance: &str) -> &mut Instance {
        let baseline = &self.baseline;
        self.services
            .touch(service, || Service {
                instances: BoundedMap::new(MAX_INSTANCES_PER_SERVICE),
                baseline: Baseline::new(baseline),
                episode: Episode::default(),
            })
            .instances
            .touch(instance, Instance::default)
    }
}

impl Detector for MemoryGrowth {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, _out: &mut Vec<Finding>) {
        let Some(service) = &s.service else {
            return;
        };
        let w = window_ms(&self.cfg);
        match &s.payload {
            SignalPayload::ProcessStats { pid, rss_bytes, .. } => {
                let pid_name = pid.to_string();
                let inst = self.instance(service, s.instance.as_deref().unwrap_or(&pid_name));
                if inst.pid.is_some_and(|p| p != *pid) {
                    inst.reset();
                }
                inst.pid = Some(*pid);
                inst.push(s.ts, *rss_bytes as f64, w);
            }
            SignalPayload::Metrics { samples } => {
                let Some(rss) = samples
                    .iter()
                    .find(|m| m.name == RSS_METRIC && m.value.is_finite() && m.value >= 0.0)
                    .map(|m| m.value)
                else {
                    return;
                };
                self.instance(service, s.instance.as_deref().unwrap_or(""))
                    .push(s.ts, rss, w);
            }
            // A new process starts a new series: its memory has nothing to do with the old one's.
            SignalPayload::Process(_) => {
                if let Some(svc) = self.services.get_mut(service)
                    && let Some(inst) = svc.instances.get_mut(s.instance.as_deref().unwrap_or(""))
                {
                    inst.reset();
                }
            }
            _ => {}
        }
    }

    fn evaluate(&mut self, now: Ts, out: &mut Vec<Finding>) {
        let cfg = &self.cfg;
        let cutoff = now.0.saturating_sub(stale_after(cfg.window));
        for (name, svc) in self.services.iter_mut() {
            svc.instances.retain(|_, i| i.last_seen.0 >= cutoff);
            let (j, worst) = judge_service(cfg, svc, now);
            let started = svc.episode.update(j, 1);
            if !svc.episode.is_active() {
                // Healthy level: the latest memory of every instance that is not growing and
                // not already far above the baseline.
                let healthy: Vec<f64> = svc
                    .instances
                    .values()
                    .filter_map(|i| fit(cfg, i, now))
                    .filter(|f| f.slope < cfg.min_bytes_per_second)
                    .filter(|f| {
                        svc.baseline
                            .mean()
                            .is_none_or(|b| f.rss < cfg.min_ratio * b)
                    })
                    .map(|f| f.rss)
                    .collect();
                for v in healthy {
                    svc.baseline.learn(v);
                }
            }
            if started && let (Some((inst, f)), Some(b)) = (worst, svc.baseline.mean()) {
                out.push(Finding {
                    id: finding_id(NAME, name, now, FindingKind::MemoryGrowth, Some(&inst)),
                    ts: now,
                    service: name.clone(),
                    instance: Some(inst.clone()),
                    kind: FindingKind::MemoryGrowth,
                    detector: NAME.into(),
                    score: score_above(f.rss, cfg.min_ratio * b),
                    summary: format!(
                        "resident memory of {inst} growing {}/s over {} to {} vs baseline {} on {name}",
                        fmt_bytes(f.slope),
                        fmt_secs(cfg.window),
                        fmt_bytes(f.rss),
                        fmt_bytes(b)
                    ),
                    evidence: vec![evidence(name, now, f, Some(b))],
                });
            }
        }
    }

    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState> {
        if symptom.kind != FindingKind::MemoryGrowth {
            return None;
        }
        let Some(svc) = self.services.get(&symptom.service) else {
            return Some(SymptomState::Unknown);
        };
        Some(judge_service(&self.cfg, svc, now).0.state())
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if symptom.kind != FindingKind::MemoryGrowth {
            return None;
        }
        let svc = self.services.get(&symptom.service)?;
        let (_, worst) = judge_service(&self.cfg, svc, now);
        let (_, f) = worst?;
        Some(evidence(&symptom.service, now, f, svc.baseline.mean()))
    }

    fn footprint(&self) -> usize {
        self.services
            .values()
            .map(|s| {
                1 + s
                    .instances
                    .values()
                    .map(|i| 1 + i.samples.len())
                    .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn status(d: &MemoryGrowth, t: i64) -> Option<SymptomState> {
        d.status(&sym("api", FindingKind::MemoryGrowth), Ts(t * 1000))
    }

    #[test]
    fn leak_found_once_and_restart_clears() {
        let mut d = MemoryGrowth::new(&DetectorsConfig::default());
        let mut out = vec![];
        let mut rng = Rng(11);
        assert_eq!(status(&d, 0), Some(SymptomState::Unknown));
        let mut leak = 0.0;
        for t in 0..120 {
            let (pid, rss0) = if t < 90 {
                (100, 20.0 * MIB)
            } else {
                (200, 19.0 * MIB)
            };
            if (40..90).contains(&t) {
                leak += 4.0 * MIB;
            }
            if t == 90 {
                leak = 0.0;
                d.observe(
                    &process(t * 1000, "api", "api-0", ProcessEventKind::Started, ""),
                    &mut out,
                );
            }
            let noise = (rng.unit() - 0.5) * 2.0 * MIB;
            d.observe(
                &stats(t * 1000, "api", "api-0", pid, rss0 + leak + noise),
                &mut out,
            );
            d.observe(
                &stats(t * 1000, "api", "api-1", 300, 22.0 * MIB + noise),
                &mut out,
            );
            d.evaluate(Ts(t * 1000), &mut out);
            if t < 40 {
                assert!(out.is_empty(), "t={t}: {out:?}");
            }
            if (50..90).contains(&t) {
                assert_eq!(status(&d, t), Some(SymptomState::Anomalous), "t={t}");
            }
            if t >= 100 {
                assert_eq!(status(&d, t), Some(SymptomState::Clear), "t={t}");
            }
        }
        assert_eq!(out.len(), 1, "{out:?}");
        let f = &out[0];
        assert_eq!(f.instance.as_deref(), Some("api-0"));
        // Growth of 4 MiB/s passes 1.5 × ~21 MiB about 3 s in.
        assert!(f.ts >= Ts(42_000) && f.ts <= Ts(50_000), "at {}", f.ts.0);
        let Some(Evidence::Metric {
            baseline: Some(b), ..
        }) = f.evidence.first()
        else {
            panic!("no metric evidence");
        };
        assert!((*b - 21.0 * MIB).abs() < 2.0 * MIB, "baseline {b}");
        let Some(Evidence::Metric {
            baseline: Some(b2), ..
        }) = d.describe(&sym("api", FindingKind::MemoryGrowth), Ts(119_000))
        else {
            panic!("no describe");
        };
        assert!(
            (b2 - 21.0 * MIB).abs() < 2.0 * MIB,
            "baseline after leak {b2}"
        );
    }

    #[test]
    fn gauge_metric_and_restart_drop() {
        let mut d = MemoryGrowth::new(&DetectorsConfig::default());
        let mut out = vec![];
        let gauge =
            |t: i64, v: f64| metrics(t * 1000, "api", "api-0", vec![counter(RSS_METRIC, &[], v)]);
        for t in 0..30 {
            d.observe(&gauge(t, 30.0 * MIB), &mut out);
            d.observe(&gauge(t, f64::NAN), &mut out);
            d.observe(&gauge(t, f64::INFINITY), &mut out);
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert_eq!(status(&d, 29), Some(SymptomState::Clear));
        for t in 30..60 {
            d.observe(
                &gauge(t, 30.0 * MIB + (t - 29) as f64 * 5.0 * MIB),
                &mut out,
            );
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert_eq!(out.len(), 1);
        // A restart without any process event: the drop starts a new series.
        d.observe(&gauge(60, 30.0 * MIB), &mut out);
        d.evaluate(Ts(60_000), &mut out);
        assert_eq!(status(&d, 60), Some(SymptomState::Unknown));
    }

    #[test]
    fn step_then_flat_memory_clears() {
        let mut d = MemoryGrowth::new(&DetectorsConfig::default());
        let mut out = vec![];
        for t in 0..50 {
            d.observe(&stats(t * 1000, "flat", "a", 1, 20.0 * MIB), &mut out);
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert!(out.is_empty());
        for t in 0..200 {
            let v = if t < 50 { 20.0 * MIB } else { 80.0 * MIB };
            d.observe(&stats(t * 1000, "api", "a", 1, v), &mut out);
            d.evaluate(Ts(t * 1000), &mut out);
        }
        // A step looks like growth while it is inside the fit window; once flat it is clear.
        assert_eq!(out.len(), 1);
        assert!(out[0].ts >= Ts(50_000) && out[0].ts <= Ts(58_000));
        assert_eq!(status(&d, 199), Some(SymptomState::Clear));
    }
}
