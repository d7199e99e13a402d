//! Recent values of the metrics behind symptoms, for verification's before/after test: a
//! bounded ring per watched symptom, filled from the detectors' own [`crate::Detector::describe`]
//! once per evaluation. A symptom is watched from its first finding (or when the agent asks,
//! for symptoms it verifies without a finding) until it has not been asked about for an hour.

use crate::bounded::BoundedMap;
use medic_core::{Direction, Evidence, FindingKind, Symptom, Ts};
use std::collections::VecDeque;

/// Most symptoms watched at once; the least recently watched is dropped first.
const MAX_WATCHED: usize = 256;
/// Samples kept per symptom: 12 minutes at one evaluation a second, enough for the
/// autocorrelated series the before/after test needs hundreds of.
const RING: usize = 720;
/// A symptom nobody watched again for this long is dropped.
const WATCH_TTL_MS: i64 = 60 * 60 * 1000;

/// A symptom's metric over a time range.
#[derive(Clone, Debug, PartialEq)]
pub struct SymptomSamples {
    pub metric: String,
    pub better: Direction,
    pub samples: Vec<(Ts, f64)>,
}

#[derive(Debug)]
struct Ring {
    symptom: Symptom,
    metric: String,
    /// Decided at the first sample that can tell (see [`direction`]).
    better: Option<Direction>,
    samples: VecDeque<(Ts, f64)>,
    watched_at: Ts,
}

#[derive(Debug)]
pub(crate) struct Rings {
    rings: BoundedMap<Ring>,
}

impl Rings {
    pub fn new() -> Self {
        Rings {
            rings: BoundedMap::new(MAX_WATCHED),
        }
    }

    /// Starts (or keeps) sampling `symptom`'s metric.
    pub fn watch(&mut self, symptom: &Symptom, now: Ts) {
        let ring = self.rings.touch(&symptom.to_string(), || Ring {
            symptom: symptom.clone(),
            metric: String::new(),
            better: None,
            samples: VecDeque::new(),
            watched_at: now,
        });
        ring.watched_at = ring.watched_at.max(now);
    }

    /// One sample of every watched symptom at `now`, from `describe`.
    pub fn sample(&mut self, now: Ts, describe: impl Fn(&Symptom, Ts) -> Option<Evidence>) {
        self.rings
            .retain(|_, r| now.0.saturating_sub(r.watched_at.0) <= WATCH_TTL_MS);
        for (_, ring) in self.rings.iter_mut() {
            if ring.samples.back().is_some_and(|(t, _)| *t >= now) {
                continue;
            }
            let Some(Evidence::Metric {
                name,
                value,
                baseline,
                ..
            }) = describe(&ring.symptom, now)
            else {
                continue;
            };
            if !value.is_finite() {
                continue;
            }
            if ring.better.is_none() {
                ring.better = direction(ring.symptom.kind, value, baseline);
            }
            ring.metric = name;
            if ring.samples.len() >= RING {
                ring.samples.pop_front();
            }
            ring.samples.push_back((now, value));
        }
    }

    /// The samples of `symptom` taken in `[since, until]`; `None` when it is not watched.
    pub fn samples(&self, symptom: &Symptom, since: Ts, until: Ts) -> Option<SymptomSamples> {
        let ring = self.rings.get(&symptom.to_string())?;
        Some(SymptomSamples {
            metric: ring.metric.clone(),
            better: ring.better.unwrap_or_default(),
            samples: ring
                .samples
                .iter()
                .filter(|(t, _)| *t >= since && *t <= until)
                .copied()
                .collect(),
        })
    }

    pub fn footprint(&self) -> usize {
        self.rings.values().map(|r| 1 + r.samples.len()).sum()
    }
}

/// Which way is better for a symptom's metric. Every detector's metric is a harm (a ratio
/// of errors, a latency, bytes, exits, targets down, alerts firing), so lower is better;
/// but a series anomaly can be a drop (throughput, availability), and then higher is:
/// the side of its baseline the value sat on when first sampled (during the anomaly) tells.
/// `None` while that cannot be told yet.
fn direction(kind: FindingKind, value: f64, baseline: Option<f64>) -> Option<Direction> {
    match (kind, baseline) {
        (FindingKind::MetricAnomaly, Some(b)) if b.is_finite() && value < b => {
            Some(Direction::HigherIsBetter)
        }
        (FindingKind::MetricAnomaly, Some(b)) if b.is_finite() && value > b => {
            Some(Direction::LowerIsBetter)
        }
        (FindingKind::MetricAnomaly, _) => None,
        _ => Some(Direction::LowerIsBetter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(service: &str, kind: FindingKind) -> Symptom {
        Symptom {
            service: service.into(),
            kind,
        }
    }

    fn metric(value: f64, baseline: Option<f64>) -> Option<Evidence> {
        Some(Evidence::Metric {
            ts: Ts(0),
            service: "api".into(),
            name: "m".into(),
            value,
            baseline,
            unit: String::new(),
        })
    }

    #[test]
    fn rings_are_bounded_in_length_count_and_time() {
        let mut r = Rings::new();
        let s = sym("api", FindingKind::ErrorRate);
        r.watch(&s, Ts(0));
        for t in 0..(RING as i64 + 100) {
            r.sample(Ts(t * 1000), |_, now| metric(now.0 as f64, Some(0.0)));
            // A second sample at the same instant is not a new sample.
            r.sample(Ts(t * 1000), |_, _| metric(-1.0, None));
        }
        let all = r.samples(&s, Ts(i64::MIN), Ts(i64::MAX)).expect("watched");
        assert_eq!(all.samples.len(), RING);
        assert_eq!(all.samples[0], (Ts(100_000), 100_000.0));
        assert_eq!(all.metric, "m");
        let some = r.samples(&s, Ts(200_000), Ts(204_000)).expect("watched");
        assert_eq!(some.samples.len(), 5);
        assert!(
            r.samples(&sym("other", FindingKind::ErrorRate), Ts(0), Ts(1))
                .is_none()
        );

        for i in 0..(MAX_WATCHED + 50) {
            r.watch(&sym(&format!("s{i}"), FindingKind::Latency), Ts(1_000_000));
        }
        assert_eq!(r.rings.len(), MAX_WATCHED);
        // Not watched again for over an hour: dropped.
        r.sample(Ts(1_000_000 + WATCH_TTL_MS + 1), |_, _| metric(1.0, None));
        assert_eq!(r.footprint(), 0);
    }

    #[test]
    fn garbage_values_are_not_sampled_and_direction_follows_the_anomaly() {
        let mut r = Rings::new();
        let drop = sym("api", FindingKind::MetricAnomaly);
        let errors = sym("api", FindingKind::ErrorRate);
        r.watch(&drop, Ts(0));
        r.watch(&errors, Ts(0));
        r.sample(Ts(1), |_, _| metric(f64::NAN, Some(5.0)));
        r.sample(Ts(2), |_, _| None);
        r.sample(Ts(3), |_, _| metric(1.0, Some(5.0)));
        r.sample(Ts(4), |_, _| metric(9.0, Some(5.0)));
        let d = r.samples(&drop, Ts(0), Ts(10)).expect("watched");
        assert_eq!(d.samples, vec![(Ts(3), 1.0), (Ts(4), 9.0)]);
        assert_eq!(d.better, Direction::HigherIsBetter);
        let e = r.samples(&errors, Ts(0), Ts(10)).expect("watched");
        assert_eq!(e.better, Direction::LowerIsBetter);
    }
}
