//! `traffic`: per-service request rate, from the same request counter as `error_rate`, far
//! above its learned baseline.

use crate::baseline::Baseline;
use crate::bounded::BoundedMap;
use crate::counter::{RequestMatcher, RequestWindow};
use crate::detectors::MAX_SERVICES;
use crate::episode::{Episode, Judgement};
use crate::{Detector, finding_id, fmt_secs, score_above};
use medic_config::{BaselineConfig, DetectorsConfig, TrafficConfig};
use medic_core::{
    Evidence, Finding, FindingKind, Signal, SignalPayload, Symptom, SymptomState, Ts,
};

const NAME: &str = "traffic";

pub struct Traffic {
    cfg: TrafficConfig,
    requests_metric: String,
    baseline: BaselineConfig,
    services: BoundedMap<Service>,
}

#[derive(Debug)]
struct Service {
    window: RequestWindow,
    baseline: Baseline,
    episode: Episode,
}

impl Traffic {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        Traffic {
            cfg: cfg.traffic.clone(),
            requests_metric: cfg.error_rate.requests_metric.clone(),
            baseline: cfg.baseline.clone(),
            services: BoundedMap::new(MAX_SERVICES),
        }
    }
}

/// Requests per second over the window; `None` when nothing was scraped in it.
fn rate(cfg: &TrafficConfig, svc: &Service, now: Ts) -> Option<f64> {
    let (requests, _) = svc.window.totals(now)?;
    let secs = cfg.window.as_secs_f64();
    (secs > 0.0).then(|| requests / secs)
}

/// A rate below `min_rps` cannot be a surge, so it is a clear verdict once the baseline is
/// known (the quiet service is judged healthy rather than unjudged).
fn judge(cfg: &TrafficConfig, svc: &Service, rate: Option<f64>) -> Judgement {
    match (rate, svc.baseline.mean()) {
        (Some(r), Some(b)) if r >= cfg.min_rps && r >= cfg.surge_ratio * b => Judgement::Anomalous,
        (Some(_), Some(_)) => Judgement::Clear,
        _ => Judgement::Unknown,
    }
}

fn evidence(service: &str, now: Ts, rate: f64, baseline: Option<f64>) -> Evidence {
    Evidence::Metric {
        ts: now,
        service: service.to_string(),
        name: "request_rate".into(),
        value: rate,
        baseline,
        unit: "/s".into(),
    }
}

impl Detector for Traffic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, _out: &mut Vec<Finding>) {
        let (SignalPayload::Metrics { samples }, Some(service)) = (&s.payload, &s.service) else {
            return;
        };
        let m = RequestMatcher {
            metric: &self.requests_metric,
            code_label: "",
            error_prefix: "",
        };
        if !m.matches_any(samples) {
            return;
        }
        let (window, baseline) = (self.cfg.window, &self.baseline);
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
            let r = rate(cfg, svc, now);
            let j = judge(cfg, svc, r);
            let started = svc.episode.update(j, 1);
            if let Some(r) = r
                && (!svc.baseline.is_warm() || svc.episode.may_learn(j))
            {
                svc.baseline.learn(r);
            }
            if started && let (Some(r), Some(b)) = (r, svc.baseline.mean()) {
                out.push(Finding {
                    id: finding_id(NAME, name, now, FindingKind::TrafficSurge, None),
                    ts: now,
                    service: name.clone(),
                    instance: None,
                    kind: FindingKind::TrafficSurge,
                    detector: NAME.into(),
                    score: score_above(r, (cfg.surge_ratio * b).max(cfg.min_rps)),
                    summary: format!(
                        "request rate {r:.1}/s over {} vs baseline {b:.1}/s on {name}",
                        fmt_secs(cfg.window)
                    ),
                    evidence: vec![evidence(name, now, r, Some(b))],
                });
            }
        }
    }

    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState> {
        if symptom.kind != FindingKind::TrafficSurge {
            return None;
        }
        let Some(svc) = self.services.get(&symptom.service) else {
            return Some(SymptomState::Unknown);
        };
        Some(judge(&self.cfg, svc, rate(&self.cfg, svc, now)).state())
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if symptom.kind != FindingKind::TrafficSurge {
            return None;
        }
        let svc = self.services.get(&symptom.service)?;
        let r = rate(&self.cfg, svc, now)?;
        Some(evidence(&symptom.service, now, r, svc.baseline.mean()))
    }

    fn footprint(&self) -> usize {
        self.services
            .values()
            .map(|s| 1 + s.window.footprint())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn run(
        d: &mut Traffic,
        out: &mut Vec<Finding>,
        total: &mut [f64; 2],
        t: i64,
        rps_per_instance: f64,
    ) {
        for (i, v) in total.iter_mut().enumerate() {
            *v += rps_per_instance;
            let s = metrics(
                t * 1000,
                "web",
                &format!("web-{i}"),
                vec![counter("http_requests_total", &[("code", "200")], *v)],
            );
            d.observe(&s, out);
        }
        d.evaluate(Ts(t * 1000), out);
    }

    #[test]
    fn surge_found_once_and_clears() {
        let mut d = Traffic::new(&DetectorsConfig::default());
        let mut out = vec![];
        let mut total = [0.0; 2];
        let mut rng = Rng(2);
        for t in 0..60 {
            run(&mut d, &mut out, &mut total, t, 8.0 + rng.unit() * 4.0);
        }
        assert!(out.is_empty());
        assert_eq!(
            d.status(&sym("web", FindingKind::TrafficSurge), Ts(59_000)),
            Some(SymptomState::Clear)
        );
        for t in 60..300 {
            run(&mut d, &mut out, &mut total, t, 60.0);
            if t > 63 {
                assert_eq!(
                    d.status(&sym("web", FindingKind::TrafficSurge), Ts(t * 1000)),
                    Some(SymptomState::Anomalous)
                );
            }
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].ts >= Ts(60_000) && out[0].ts <= Ts(63_000));
        assert!(
            out[0].summary.starts_with("request rate ") && out[0].summary.ends_with("on web"),
            "{}",
            out[0].summary
        );
        for t in 300..320 {
            run(&mut d, &mut out, &mut total, t, 10.0);
        }
        assert_eq!(
            d.status(&sym("web", FindingKind::TrafficSurge), Ts(319_000)),
            Some(SymptomState::Clear)
        );
        let Some(Evidence::Metric {
            baseline: Some(b), ..
        }) = d.describe(&sym("web", FindingKind::TrafficSurge), Ts(319_000))
        else {
            panic!("no evidence");
        };
        assert!(b < 30.0, "baseline absorbed the surge: {b}");
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn quiet_service_is_clear_and_no_data_unknown() {
        let mut d = Traffic::new(&DetectorsConfig::default());
        let mut out = vec![];
        let mut total = [0.0; 2];
        for t in 0..30 {
            run(
                &mut d,
                &mut out,
                &mut total,
                t,
                if t < 20 { 0.1 } else { 2.0 },
            );
        }
        assert!(out.is_empty(), "below min_rps is never a surge");
        assert_eq!(
            d.status(&sym("web", FindingKind::TrafficSurge), Ts(29_000)),
            Some(SymptomState::Clear)
        );
        assert_eq!(
            d.status(&sym("web", FindingKind::TrafficSurge), Ts(90_000)),
            Some(SymptomState::Unknown)
        );
        assert_eq!(
            d.status(&sym("other", FindingKind::TrafficSurge), Ts(0)),
            Some(SymptomState::Unknown)
        );
    }
}
