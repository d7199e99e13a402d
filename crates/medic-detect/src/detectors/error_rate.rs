//! `error_rate`: the share of failed requests per service, from a request counter with a
//! status-code label, against a learned baseline ratio.

use crate::baseline::Baseline;
use crate::bounded::BoundedMap;
use crate::counter::{RequestMatcher, RequestWindow};
use crate::detectors::MAX_SERVICES;
use crate::episode::{Episode, Judgement};
use crate::{Detector, finding_id, fmt_secs, score_above};
use medic_config::{BaselineConfig, DetectorsConfig, ErrorRateConfig};
use medic_core::{
    Evidence, Finding, FindingKind, Signal, SignalPayload, Symptom, SymptomState, Ts,
};

const NAME: &str = "error_rate";

pub struct ErrorRate {
    cfg: ErrorRateConfig,
    baseline: BaselineConfig,
    services: BoundedMap<Service>,
}

#[derive(Debug)]
struct Service {
    window: RequestWindow,
    baseline: Baseline,
    episode: Episode,
}

#[derive(Copy, Clone, Debug)]
struct Reading {
    requests: f64,
    errors: f64,
    ratio: f64,
}

impl ErrorRate {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        ErrorRate {
            cfg: cfg.error_rate.clone(),
            baseline: cfg.baseline.clone(),
            services: BoundedMap::new(MAX_SERVICES),
        }
    }
}

/// The window's ratio, when there were enough requests to judge.
fn reading(cfg: &ErrorRateConfig, svc: &Service, now: Ts) -> Option<Reading> {
    let (requests, errors) = svc.window.totals(now)?;
    if requests < cfg.min_requests.max(1) as f64 {
        return None;
    }
    Some(Reading {
        requests,
        errors,
        ratio: (errors / requests).clamp(0.0, 1.0),
    })
}

/// Above this ratio the service is anomalous; `None` before warm-up.
fn threshold(cfg: &ErrorRateConfig, svc: &Service) -> Option<f64> {
    let mean = svc.baseline.mean()?;
    let dev = svc.baseline.deviation()?;
    Some(cfg.min_ratio.max(mean + cfg.sigma * dev))
}

fn judge(cfg: &ErrorRateConfig, svc: &Service, r: Option<Reading>) -> Judgement {
    match (r, threshold(cfg, svc)) {
        (Some(r), Some(t)) if r.ratio > t => Judgement::Anomalous,
        (Some(_), Some(_)) => Judgement::Clear,
        _ => Judgement::Unknown,
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

impl Detector for ErrorRate {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, _out: &mut Vec<Finding>) {
        let (SignalPayload::Metrics { samples }, Some(service)) = (&s.payload, &s.service) else {
            return;
        };
        let m = RequestMatcher {
            metric: &self.cfg.requests_metric,
            code_label: &self.cfg.code_label,
            error_prefix: &self.cfg.error_code_prefix,
        };
        if !m.matches_any(samples) {
            return;
        }
        let window = self.cfg.window;
        let baseline = &self.baseline;
        let svc = self.services.touch(service, || Service {
            window: RequestWindow::new(window),
            baseline: Baseline::new(baseline),
            episode: Episode::default(),
        });
        svc.window
            .observe(s.instance.as_deref().unwrap_or(""), s.ts, samples, &m);
    }

    fn evaluate(&mut self, now: Ts, out: &mut Vec<Finding>) {
        let cfg = &self.cfg;
        for (name, svc) in self.services.iter_mut() {
            svc.window.expire(now);
            let r = reading(cfg, svc, now);
            let j = judge(cfg, svc, r);
            let started = svc.episode.update(j, cfg.sustain);
            let learn = match r {
                // Before warm-up nothing is judged, but a ratio that is never normal is not
                // learned either, so a fault present at start-up does not become the baseline.
                Some(r) if !svc.baseline.is_warm() => r.ratio <= cfg.min_ratio,
                Some(_) => svc.episode.may_learn(j),
                None => false,
            };
            if learn && let Some(r) = r {
                svc.baseline.learn(r.ratio);
            }
            if started && let (Some(r), Some(t)) = (r, threshold(cfg, svc)) {
                let base = svc.baseline.mean().unwrap_or(0.0);
                out.push(Finding {
                    id: finding_id(NAME, name, now, FindingKind::ErrorRate, None),
                    ts: now,
                    service: name.clone(),
                    instance: None,
                    kind: FindingKind::ErrorRate,
                    detector: NAME.into(),
                    score: score_above(r.ratio, t),
                    summary: format!(
                        "error ratio {} over {} vs baseline {} on {name} ({:.0} of {:.0} requests failed)",
                        pct(r.ratio),
                        fmt_secs(cfg.window),
                        pct(base),
                        r.errors,
                        r.requests
                    ),
                    evidence: vec![evidence(name, now, r, Some(base))],
                });
            }
        }
    }

    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState> {
        if symptom.kind != FindingKind::ErrorRate {
            return None;
        }
        let Some(svc) = self.services.get(&symptom.service) else {
            return Some(SymptomState::Unknown);
        };
        Some(judge(&self.cfg, svc, reading(&self.cfg, svc, now)).state())
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if symptom.kind != FindingKind::ErrorRate {
            return None;
        }
        let svc = self.services.get(&symptom.service)?;
        let r = reading(&self.cfg, svc, now)?;
        Some(evidence(&symptom.service, now, r, svc.baseline.mean()))
    }

    fn footprint(&self) -> usize {
        self.services
            .values()
            .map(|s| 1 + s.window.footprint())
            .sum()
    }
}

fn evidence(service: &str, now: Ts, r: Reading, baseline: Option<f64>) -> Evidence {
    Evidence::Metric {
        ts: now,
        service: service.to_string(),
        name: "error_ratio".into(),
        value: r.ratio,
        baseline,
        unit: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// One scrape of a request counter: `ok` and `err` are cumulative counts.
    fn scrape(t: i64, service: &str, instance: &str, ok: f64, err: f64) -> Signal {
        metrics(
            t,
            service,
            instance,
            vec![
                counter(
                    "http_requests_total",
                    &[("route", "/x"), ("code", "200")],
                    ok,
                ),
                counter(
                    "http_requests_total",
                    &[("route", "/x"), ("code", "500")],
                    err,
                ),
            ],
        )
    }

    struct Sim {
        d: ErrorRate,
        findings: Vec<Finding>,
        ok: Vec<f64>,
        err: Vec<f64>,
        rng: Rng,
    }

    impl Sim {
        fn new(instances: usize) -> Self {
            Sim {
                d: ErrorRate::new(&DetectorsConfig::default()),
                findings: vec![],
                ok: vec![0.0; instances],
                err: vec![0.0; instances],
                rng: Rng(7),
            }
        }
        /// One second: every instance serves ~20 requests with the given error share.
        fn second(&mut self, t: i64, error_share: f64) {
            for i in 0..self.ok.len() {
                for _ in 0..20 {
                    if self.rng.unit() < error_share {
                        self.err[i] += 1.0;
                    } else {
                        self.ok[i] += 1.0;
                    }
                }
                let s = scrape(
                    t * 1000,
                    "api",
                    &format!("api-{i}"),
                    self.ok[i],
                    self.err[i],
                );
                self.d.observe(&s, &mut self.findings);
            }
            self.d.evaluate(Ts(t * 1000), &mut self.findings);
        }
        fn status(&self, t: i64) -> SymptomState {
            self.d
                .status(&sym("api", FindingKind::ErrorRate), Ts(t * 1000))
                .unwrap_or(SymptomState::Unknown)
        }
    }

    #[test]
    fn fault_is_found_once_and_clears() {
        let mut sim = Sim::new(2);
        assert_eq!(sim.status(0), SymptomState::Unknown);
        for t in 0..60 {
            sim.second(t, 0.005);
        }
        assert!(sim.findings.is_empty(), "noise raised {:?}", sim.findings);
        assert_eq!(sim.status(59), SymptomState::Clear);
        for t in 60..90 {
            sim.second(t, 0.3);
            if t >= 63 {
                assert_eq!(sim.status(t), SymptomState::Anomalous, "t={t}");
            }
        }
        assert_eq!(sim.findings.len(), 1, "{:?}", sim.findings);
        let f = &sim.findings[0];
        // Sustain 2: the second anomalous evaluation, within the first seconds of the fault.
        assert!(f.ts >= Ts(61_000) && f.ts <= Ts(63_000), "at {}", f.ts.0);
        assert_eq!(f.service, "api");
        assert!(
            f.summary.starts_with("error ratio ") && f.summary.contains("on api"),
            "{}",
            f.summary
        );
        assert!(
            matches!(&f.evidence[0], Evidence::Metric { value, baseline: Some(b), .. } if *value > 0.1 && *b < 0.05)
        );
        for t in 90..120 {
            sim.second(t, 0.0);
        }
        assert_eq!(sim.status(119), SymptomState::Clear);
        assert_eq!(sim.findings.len(), 1);
        // A later fault is a new episode.
        for t in 120..130 {
            sim.second(t, 0.5);
        }
        assert_eq!(sim.findings.len(), 2);
    }

    #[test]
    fn long_fault_does_not_poison_the_baseline() {
        let mut sim = Sim::new(1);
        for t in 0..30 {
            sim.second(t, 0.0);
        }
        for t in 30..600 {
            sim.second(t, 0.4);
        }
        assert_eq!(sim.status(599), SymptomState::Anomalous);
        let Some(Evidence::Metric {
            baseline: Some(b), ..
        }) = sim
            .d
            .describe(&sym("api", FindingKind::ErrorRate), Ts(599_000))
        else {
            panic!("no evidence");
        };
        assert!(b < 0.01, "baseline {b}");
        assert_eq!(sim.findings.len(), 1);
    }

    #[test]
    fn fault_present_at_start_is_not_learned() {
        let mut sim = Sim::new(1);
        for t in 0..60 {
            sim.second(t, 0.5);
        }
        assert!(sim.findings.is_empty());
        assert_eq!(sim.status(59), SymptomState::Unknown);
    }

    #[test]
    fn counter_reset_is_not_a_drop_or_a_spike() {
        let mut d = ErrorRate::new(&DetectorsConfig::default());
        let mut out = vec![];
        let (mut ok, mut err) = (1000.0, 0.0);
        for t in 0..30 {
            ok += 20.0;
            d.observe(&scrape(t * 1000, "api", "api-0", ok, err), &mut out);
            d.evaluate(Ts(t * 1000), &mut out);
        }
        // The process restarts: counters start again from 0, and it now fails a lot.
        ok = 0.0;
        for t in 30..40 {
            ok += 10.0;
            err += 10.0;
            d.observe(&scrape(t * 1000, "api", "api-0", ok, err), &mut out);
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert_eq!(out.len(), 1);
        let Some(Evidence::Metric { value, .. }) =
            d.describe(&sym("api", FindingKind::ErrorRate), Ts(39_000))
        else {
            panic!("no evidence");
        };
        assert!((value - 0.5).abs() < 0.01, "ratio {value}");
    }

    #[test]
    fn scale_out_adds_instances_without_spikes() {
        let mut d = ErrorRate::new(&DetectorsConfig::default());
        let mut out = vec![];
        for t in 0..60 {
            let n = if t < 30 { 1 } else { 3 };
            for i in 0..n {
                // Instances added later start with large counters: only their increase counts.
                let base = if i == 0 { 0.0 } else { 50_000.0 };
                let s = scrape(
                    t * 1000,
                    "api",
                    &format!("api-{i}"),
                    base + t as f64 * 20.0,
                    0.0,
                );
                d.observe(&s, &mut out);
            }
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert!(out.is_empty());
        let svc = d.services.get("api").map(|s| s.window.instances());
        assert_eq!(svc, Some(3));
        assert_eq!(
            d.status(&sym("api", FindingKind::ErrorRate), Ts(59_000)),
            Some(SymptomState::Clear)
        );
        // Scaled back in: the silent instances are forgotten after a while.
        for t in 60..200 {
            d.observe(
                &scrape(t * 1000, "api", "api-0", t as f64 * 20.0, 0.0),
                &mut out,
            );
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert_eq!(d.services.get("api").map(|s| s.window.instances()), Some(1));
    }

    #[test]
    fn too_few_requests_or_no_data_is_unknown() {
        let mut d = ErrorRate::new(&DetectorsConfig::default());
        let mut out = vec![];
        for t in 0..30 {
            d.observe(
                &scrape(t * 1000, "api", "a", t as f64 * 20.0, 0.0),
                &mut out,
            );
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert_eq!(
            d.status(&sym("api", FindingKind::ErrorRate), Ts(29_000)),
            Some(SymptomState::Clear)
        );
        // Traffic stops; later only a trickle that fails.
        for t in 30..40 {
            d.observe(
                &scrape(t * 1000, "api", "a", 600.0, (t - 29) as f64 * 0.2),
                &mut out,
            );
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(
            d.status(&sym("api", FindingKind::ErrorRate), Ts(39_000)),
            Some(SymptomState::Unknown)
        );
        assert_eq!(
            d.status(&sym("api", FindingKind::ErrorRate), Ts(999_000)),
            Some(SymptomState::Unknown)
        );
        assert_eq!(
            d.status(&sym("nope", FindingKind::ErrorRate), Ts(0)),
            Some(SymptomState::Unknown)
        );
        assert_eq!(d.status(&sym("api", FindingKind::Latency), Ts(0)), None);
    }

    #[test]
    fn nan_and_inf_samples_are_ignored() {
        let mut d = ErrorRate::new(&DetectorsConfig::default());
        let mut out = vec![];
        for t in 0..30 {
            d.observe(
                &scrape(t * 1000, "api", "a", t as f64 * 20.0, 0.0),
                &mut out,
            );
            let bad = if t % 2 == 0 { f64::NAN } else { f64::INFINITY };
            d.observe(&scrape(t * 1000, "api", "a", bad, bad), &mut out);
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(
            d.status(&sym("api", FindingKind::ErrorRate), Ts(29_000)),
            Some(SymptomState::Clear)
        );
    }
}
