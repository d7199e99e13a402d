//! `latency`: a quantile of the per-service request-duration histogram over a window (like
//! Prometheus' `histogram_quantile` over summed bucket increases) against a learned baseline.

use crate::baseline::Baseline;
use crate::bounded::BoundedMap;
use crate::counter::{CounterInstance, MAX_INSTANCES_PER_SERVICE, SlotRing, stale_after};
use crate::detectors::MAX_SERVICES;
use crate::episode::{Episode, Judgement};
use crate::{Detector, finding_id, fmt_secs, score_above};
use medic_config::{BaselineConfig, DetectorsConfig, LatencyConfig};
use medic_core::{
    Evidence, Finding, FindingKind, Signal, SignalPayload, Symptom, SymptomState, Ts,
};

const NAME: &str = "latency";
/// Most distinct bucket bounds kept per slot; real histograms have a dozen or two.
const MAX_BUCKETS: usize = 64;

/// (upper bound `le`, cumulative count) pairs.
type Buckets = Vec<(f64, f64)>;

pub struct Latency {
    cfg: LatencyConfig,
    bucket_metric: String,
    baseline: BaselineConfig,
    services: BoundedMap<Service>,
}

#[derive(Debug)]
struct Service {
    instances: BoundedMap<CounterInstance>,
    slots: SlotRing<Buckets>,
    baseline: Baseline,
    episode: Episode,
}

impl Latency {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        Latency {
            cfg: cfg.latency.clone(),
            bucket_metric: format!("{}_bucket", cfg.latency.histogram),
            baseline: cfg.baseline.clone(),
            services: BoundedMap::new(MAX_SERVICES),
        }
    }
}

fn parse_le(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("+inf") || s.eq_ignore_ascii_case("inf") {
        return Some(f64::INFINITY);
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn add_bucket(b: &mut Buckets, le: f64, inc: f64) {
    if let Some(slot) = b.iter_mut().find(|(l, _)| *l == le) {
        slot.1 += inc;
    } else if b.len() < MAX_BUCKETS {
        b.push((le, inc));
    }
}

/// The `q` quantile of a cumulative histogram, interpolating linearly inside the bucket that
/// holds it, as Prometheus does. `None` without a `+Inf` bucket or without observations.
pub(crate) fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if q.is_nan() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let mut b: Vec<(f64, f64)> = buckets
        .iter()
        .copied()
        .filter(|(le, c)| !le.is_nan() && c.is_finite())
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
        return None;
    }
    // Window sums of separately scraped buckets can be slightly non-monotonic; fix as
    // Prometheus does.
    let mut max = 0.0_f64;
    for (_, c) in &mut b {
        max = max.max(*c);
        *c = max;
    }
    let total = b.last().map(|(_, c)| *c)?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let i = b.iter().position(|(_, c)| *c >= rank)?;
    if i == b.len() - 1 {
        // In the +Inf bucket: the best answer is the highest finite bound.
        return if i == 0 { None } else { Some(b[i - 1].0) };
    }
    let (end, count) = b[i];
    let (start, start_count) = if i == 0 {
        if end <= 0.0 {
            return Some(end);
        }
        (0.0, 0.0)
    } else {
        b[i - 1]
    };
    let in_bucket = count - start_count;
    if in_bucket <= 0.0 {
        return Some(start);
    }
    Some(start + (end - start) * ((rank - start_count) / in_bucket))
}

#[derive(Copy, Clone, Debug)]
struct Reading {
    quantile: f64,
    observations: f64,
}

fn reading(cfg: &LatencyConfig, svc: &Service, now: Ts) -> Option<Reading> {
    let mut sum: Buckets = Vec::new();
    for slot in svc.slots.in_window(now) {
        for &(le, c) in slot {
            add_bucket(&mut sum, le, c);
        }
    }
    let quantile = histogram_quantile(cfg.quantile, &sum)?;
    let observations = sum
        .iter()
        .find(|(le, _)| *le == f64::INFINITY)
        .map(|(_, c)| *c)
        .unwrap_or(0.0);
    Some(Reading {
        quantile,
        observations,
    })
}

fn threshold(cfg: &LatencyConfig, svc: &Service) -> Option<f64> {
    Some((cfg.ratio * svc.baseline.mean()?).max(cfg.min_seconds))
}

fn judge(cfg: &LatencyConfig, svc: &Service, r: Option<Reading>) -> Judgement {
    match (r, threshold(cfg, svc)) {
        (Some(r), Some(t)) if r.quantile > t => Judgement::Anomalous,
        (Some(_), Some(_)) => Judgement::Clear,
        _ => Judgement::Unknown,
    }
}

fn ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.2} s")
    } else {
        format!("{:.0} ms", v * 1000.0)
    }
}

fn quantile_name(q: f64) -> String {
    let p = q * 100.0;
    if p.fract() == 0.0 {
        format!("p{p:.0}")
    } else {
        format!("p{p}")
    }
}

fn evidence(service: &str, now: Ts, q: f64, r: Reading, baseline: Option<f64>) -> Evidence {
    Evidence::Metric {
        ts: now,
        service: service.to_string(),
        name: format!("latency_{}", quantile_name(q)),
        value: r.quantile,
        baseline,
        unit: "s".into(),
    }
}

impl Detector for Latency {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, _out: &mut Vec<Finding>) {
        let (SignalPayload::Metrics { samples }, Some(service)) = (&s.payload, &s.service) else {
            return;
        };
        let metric = self.bucket_metric.as_str();
        if !samples.iter().any(|m| m.name == metric) {
            return;
        }
        let (window, baseline) = (self.cfg.window, &self.baseline);
        let svc = self.services.touch(service, || Service {
            instances: BoundedMap::new(MAX_INSTANCES_PER_SERVICE),
            slots: SlotRing::new(window),
            baseline: Baseline::new(baseline),
            episode: Episode::default(),
        });
        let inst = svc.instances.touch(
            s.instance.as_deref().unwrap_or(""),
            CounterInstance::default,
        );
        let mut scrape: Buckets = Vec::new();
        for m in samples.iter().filter(|m| m.name == metric) {
            let Some(le) = m.label("le").and_then(parse_le) else {
                continue;
            };
            if let Some(inc) = inst.increase(m) {
                add_bucket(&mut scrape, le, inc);
            }
        }
        let primed = inst.is_primed();
        inst.mark_primed(s.ts);
        if primed {
            svc.slots.add(s.ts, Vec::new, |slot| {
                for (le, inc) in scrape {
                    add_bucket(slot, le, inc);
                }
            });
        }
    }

    fn evaluate(&mut self, now: Ts, out: &mut Vec<Finding>) {
        let cfg = &self.cfg;
        let stale = stale_after(cfg.window);
        for (name, svc) in self.services.iter_mut() {
            svc.slots.expire(now);
            let cutoff = now.0.saturating_sub(stale);
            svc.instances.retain(|_, i| i.last_seen.0 >= cutoff);
            let r = reading(cfg, svc, now);
            let j = judge(cfg, svc, r);
            let started = svc.episode.update(j, cfg.sustain);
            if let Some(r) = r
                && (!svc.baseline.is_warm() || svc.episode.may_learn(j))
            {
                svc.baseline.learn(r.quantile);
            }
            if started && let (Some(r), Some(t)) = (r, threshold(cfg, svc)) {
                let base = svc.baseline.mean().unwrap_or(0.0);
                out.push(Finding {
                    id: finding_id(NAME, name, now, FindingKind::Latency, None),
                    ts: now,
                    service: name.clone(),
                    instance: None,
                    kind: FindingKind::Latency,
                    detector: NAME.into(),
                    score: score_above(r.quantile, t),
                    summary: format!(
                        "{} latency {} over {} vs baseline {} on {name} ({:.0} requests)",
                        quantile_name(cfg.quantile),
                        ms(r.quantile),
                        fmt_secs(cfg.window),
                        ms(base),
                        r.observations
                    ),
                    evidence: vec![evidence(name, now, cfg.quantile, r, Some(base))],
                });
            }
        }
    }

    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState> {
        if symptom.kind != FindingKind::Latency {
            return None;
        }
        let Some(svc) = self.services.get(&symptom.service) else {
            return Some(SymptomState::Unknown);
        };
        Some(judge(&self.cfg, svc, reading(&self.cfg, svc, now)).state())
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if symptom.kind != FindingKind::Latency {
            return None;
        }
        let svc = self.services.get(&symptom.service)?;
        let r = reading(&self.cfg, svc, now)?;
        Some(evidence(
            &symptom.service,
            now,
            self.cfg.quantile,
            r,
            svc.baseline.mean(),
        ))
    }

    fn footprint(&self) -> usize {
        self.services
            .values()
            .map(|s| {
                1 + s.slots.len() + s.instances.values().map(|i| 1 + i.series()).sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const BOUNDS: [&str; 6] = ["0.01", "0.05", "0.1", "0.5", "1", "+Inf"];

    /// A cumulative histogram scrape from per-bucket (non-cumulative) totals.
    fn scrape(t: i64, inst: &str, per_bucket: &[f64; 6]) -> Signal {
        let mut cum = 0.0;
        let samples = BOUNDS
            .iter()
            .zip(per_bucket)
            .map(|(le, n)| {
                cum += n;
                counter("http_request_duration_seconds_bucket", &[("le", le)], cum)
            })
            .collect();
        metrics(t * 1000, "shop", inst, samples)
    }

    #[test]
    fn quantile_matches_prometheus() {
        let b = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        let q = |q| histogram_quantile(q, &b).unwrap_or(f64::NAN);
        assert!((q(0.5) - 0.1).abs() < 1e-9);
        assert!((q(0.25) - 0.05).abs() < 1e-9);
        assert!((q(0.7) - 0.3).abs() < 1e-9);
        assert!((q(0.95) - 0.75).abs() < 1e-9);
        // Everything in +Inf: the highest finite bound.
        assert_eq!(
            histogram_quantile(0.99, &[(1.0, 0.0), (f64::INFINITY, 5.0)]),
            Some(1.0)
        );
        assert_eq!(histogram_quantile(0.5, &[(1.0, 3.0)]), None);
        assert_eq!(
            histogram_quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        assert_eq!(histogram_quantile(f64::NAN, &b), None);
        // Non-monotonic input is repaired rather than producing nonsense.
        let bad = [(0.1, 10.0), (0.5, 5.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.9, &bad).map(|v| v <= 0.1), Some(true));
    }

    #[test]
    fn slow_period_found_once_then_clear() {
        let mut d = Latency::new(&DetectorsConfig::default());
        let mut out = vec![];
        let mut totals = [[0.0; 6]; 2];
        let mut rng = Rng(3);
        for t in 0..120 {
            let slow = (60..85).contains(&t);
            for (i, tot) in totals.iter_mut().enumerate() {
                for _ in 0..20 {
                    let b = if slow {
                        4
                    } else if rng.unit() < 0.9 {
                        0
                    } else {
                        1
                    };
                    tot[b] += 1.0;
                }
                d.observe(&scrape(t, &format!("shop-{i}"), tot), &mut out);
            }
            d.evaluate(Ts(t * 1000), &mut out);
            let st = d.status(&sym("shop", FindingKind::Latency), Ts(t * 1000));
            if t < 59 {
                assert!(out.is_empty(), "t={t}: {out:?}");
            }
            if (62..85).contains(&t) {
                assert_eq!(st, Some(SymptomState::Anomalous), "t={t}");
            }
            if t > 95 {
                assert_eq!(st, Some(SymptomState::Clear), "t={t}");
            }
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].ts >= Ts(60_000) && out[0].ts <= Ts(62_000));
        assert!(
            out[0].summary.starts_with("p99 latency "),
            "{}",
            out[0].summary
        );
        let Some(Evidence::Metric {
            baseline: Some(b), ..
        }) = out[0].evidence.first()
        else {
            panic!("no metric evidence");
        };
        assert!(*b < 0.06, "baseline {b}");
    }

    #[test]
    fn no_traffic_is_unknown_and_bad_buckets_ignored() {
        let mut d = Latency::new(&DetectorsConfig::default());
        let mut out = vec![];
        let bad = metrics(
            0,
            "shop",
            "x",
            vec![
                counter(
                    "http_request_duration_seconds_bucket",
                    &[("le", "NaN")],
                    5.0,
                ),
                counter(
                    "http_request_duration_seconds_bucket",
                    &[("le", "abc")],
                    5.0,
                ),
                counter("http_request_duration_seconds_bucket", &[], 5.0),
                counter(
                    "http_request_duration_seconds_bucket",
                    &[("le", "+Inf")],
                    f64::NAN,
                ),
            ],
        );
        for t in 0..20 {
            d.observe(
                &Signal {
                    ts: Ts(t * 1000),
                    ..bad.clone()
                },
                &mut out,
            );
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(
            d.status(&sym("shop", FindingKind::Latency), Ts(19_000)),
            Some(SymptomState::Unknown)
        );
        assert_eq!(
            d.describe(&sym("shop", FindingKind::Latency), Ts(19_000)),
            None
        );
    }
}
