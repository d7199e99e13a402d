//! `alerts`: alerts from an external alerting system (Alertmanager) become `AlertFiring`
//! findings. One finding per firing episode of a fingerprint: Alertmanager re-sends firing
//! alerts on every group interval and repeat interval, and those repeats are not new
//! anomalies. A resolved notification clears the symptom.

use crate::bounded::BoundedMap;
use crate::{Detector, finding_id};
use medic_config::DetectorsConfig;
use medic_core::{
    AlertSignal, Evidence, Finding, FindingKind, Signal, SignalPayload, Symptom, SymptomState, Ts,
};

const NAME: &str = "alerts";
/// Most alert fingerprints remembered; the least recently seen is dropped first.
const MAX_ALERTS: usize = 4096;
/// A resolved alert is forgotten after this long (its service then reads Unknown again).
const FORGET_RESOLVED_MS: i64 = 30 * 60 * 1000;
/// Longest annotation quoted in a summary.
const MAX_TEXT_CHARS: usize = 300;
/// Service used when neither the signal nor the alert's labels name one.
pub const UNKNOWN_SERVICE: &str = "unknown";

pub struct Alerts {
    by_fingerprint: BoundedMap<Tracked>,
}

#[derive(Debug)]
struct Tracked {
    service: String,
    firing: bool,
    last_seen: Ts,
}

impl Alerts {
    pub fn new(_cfg: &DetectorsConfig) -> Self {
        Alerts {
            by_fingerprint: BoundedMap::new(MAX_ALERTS),
        }
    }

    fn firing_for(&self, service: &str) -> Option<usize> {
        let mut known = false;
        let mut firing = 0;
        for t in self
            .by_fingerprint
            .values()
            .filter(|t| t.service == service)
        {
            known = true;
            firing += usize::from(t.firing);
        }
        known.then_some(firing)
    }
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_TEXT_CHARS).collect()
}

/// Severity label → how far from normal: alert authors already judged it.
fn score(a: &AlertSignal) -> f64 {
    match a.labels.get("severity").map(|s| s.to_ascii_lowercase()) {
        Some(s) if s == "critical" || s == "page" => 0.9,
        Some(s) if s == "warning" => 0.7,
        _ => 0.6,
    }
}

/// Summary and evidence carry the alert's name, labels and annotations, so the diagnosis's
/// keyword rules (and people) can read them.
fn finding(s: &Signal, a: &AlertSignal, service: &str) -> Finding {
    let summary_ann = a
        .annotations
        .get("summary")
        .map(|t| format!(": {}", cut(t)))
        .unwrap_or_default();
    let labels = a
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={}", cut(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut evidence = vec![Evidence::Event {
        ts: a.starts_at,
        service: service.to_string(),
        description: format!("alert {} firing since {} {{{labels}}}", a.name, a.starts_at),
    }];
    for (k, v) in &a.annotations {
        evidence.push(Evidence::Note {
            text: format!("alert {} {k}: {}", a.name, cut(v)),
        });
    }
    // The author's word on the cause, typed: `medic_cause` annotation, else `cause` label.
    if let Some(cause) = a
        .annotations
        .get("medic_cause")
        .or_else(|| a.labels.get("cause"))
        .filter(|c| !c.trim().is_empty())
    {
        evidence.push(Evidence::Hint {
            service: service.to_string(),
            cause: cut(cause.trim()),
            alert: a.name.clone(),
            sender: a.sender.clone(),
        });
    }
    if let Some(u) = &a.generator_url {
        evidence.push(Evidence::Note {
            text: format!("alert {} source: {}", a.name, cut(u)),
        });
    }
    Finding {
        id: finding_id(
            NAME,
            service,
            s.ts,
            FindingKind::AlertFiring,
            Some(&a.fingerprint),
        ),
        ts: s.ts,
        service: service.to_string(),
        instance: s.instance.clone(),
        kind: FindingKind::AlertFiring,
        detector: NAME.into(),
        score: score(a),
        summary: format!("alert {} firing on {service}{summary_ann}", a.name),
        evidence,
    }
}

impl Detector for Alerts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, out: &mut Vec<Finding>) {
        let SignalPayload::Alert(a) = &s.payload else {
            return;
        };
        let service = s
            .service
            .as_deref()
            .filter(|x| !x.is_empty())
            .or_else(|| a.labels.get("service").map(String::as_str))
            .unwrap_or(UNKNOWN_SERVICE)
            .to_string();
        let t = self.by_fingerprint.touch(&a.fingerprint, || Tracked {
            service: service.clone(),
            firing: false,
            last_seen: s.ts,
        });
        // Notifications can arrive out of order (two receivers, retries): an older one
        // never overrides what a newer one said.
        if s.ts < t.last_seen {
            return;
        }
        t.last_seen = s.ts;
        t.service = service.clone();
        let was_firing = t.firing;
        t.firing = a.firing;
        if a.firing && !was_firing {
            out.push(finding(s, a, &service));
        }
    }

    fn evaluate(&mut self, now: Ts, _out: &mut Vec<Finding>) {
        let cutoff = now.0.saturating_sub(FORGET_RESOLVED_MS);
        self.by_fingerprint
            .retain(|_, t| t.firing || t.last_seen.0 >= cutoff);
    }

    fn status(&self, symptom: &Symptom, _now: Ts) -> Option<SymptomState> {
        if symptom.kind != FindingKind::AlertFiring {
            return None;
        }
        Some(match self.firing_for(&symptom.service) {
            None => SymptomState::Unknown,
            Some(0) => SymptomState::Clear,
            Some(_) => SymptomState::Anomalous,
        })
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if symptom.kind != FindingKind::AlertFiring {
            return None;
        }
        Some(Evidence::Metric {
            ts: now,
            service: symptom.service.clone(),
            name: "alerts_firing".into(),
            value: self.firing_for(&symptom.service)? as f64,
            baseline: Some(0.0),
            unit: String::new(),
        })
    }

    fn footprint(&self) -> usize {
        self.by_fingerprint.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn alert(t: i64, fp: &str, service: &str, firing: bool) -> Signal {
        Signal {
            ts: Ts(t),
            source: "alertmanager".into(),
            service: Some(service.into()),
            instance: None,
            payload: SignalPayload::Alert(AlertSignal {
                fingerprint: fp.into(),
                firing,
                name: "HighErrorRate".into(),
                labels: BTreeMap::from([
                    ("alertname".into(), "HighErrorRate".into()),
                    ("severity".into(), "critical".into()),
                ]),
                annotations: BTreeMap::from([("summary".into(), "payment returns 5xx".into())]),
                starts_at: Ts(t),
                ends_at: None,
                generator_url: None,
                group_key: None,
                sender: None,
            }),
        }
    }

    fn st(d: &Alerts, service: &str) -> Option<SymptomState> {
        d.status(
            &Symptom {
                service: service.into(),
                kind: FindingKind::AlertFiring,
            },
            Ts(0),
        )
    }

    #[test]
    fn repeats_are_deduped_by_fingerprint_and_resolved_clears() {
        let mut d = Alerts::new(&DetectorsConfig::default());
        let mut out = vec![];
        assert_eq!(st(&d, "payment"), Some(SymptomState::Unknown));
        d.observe(&alert(1_000, "fp1", "payment", true), &mut out);
        d.observe(&alert(2_000, "fp1", "payment", true), &mut out);
        d.observe(&alert(3_000, "fp1", "payment", true), &mut out);
        assert_eq!(out.len(), 1, "repeats of one fingerprint are one finding");
        assert_eq!(out[0].kind, FindingKind::AlertFiring);
        assert_eq!(out[0].score, 0.9);
        assert!(out[0].summary.contains("HighErrorRate"));
        assert!(out[0].summary.contains("payment returns 5xx"));
        assert!(
            out[0]
                .evidence
                .iter()
                .any(|e| e.describe().contains("severity=critical"))
        );
        assert_eq!(st(&d, "payment"), Some(SymptomState::Anomalous));
        // A second alert on the same service is its own finding.
        d.observe(&alert(3_500, "fp2", "payment", true), &mut out);
        assert_eq!(out.len(), 2);
        d.observe(&alert(4_000, "fp1", "payment", false), &mut out);
        assert_eq!(st(&d, "payment"), Some(SymptomState::Anomalous));
        d.observe(&alert(4_000, "fp2", "payment", false), &mut out);
        assert_eq!(st(&d, "payment"), Some(SymptomState::Clear));
        // A stale firing notification does not reopen it.
        d.observe(&alert(3_900, "fp1", "payment", true), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(st(&d, "payment"), Some(SymptomState::Clear));
        // Firing again later is a new episode.
        d.observe(&alert(10_000, "fp1", "payment", true), &mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn state_is_bounded_and_resolved_alerts_are_forgotten() {
        let mut d = Alerts::new(&DetectorsConfig::default());
        let mut out = vec![];
        for i in 0..(MAX_ALERTS + 100) {
            d.observe(&alert(1, &format!("fp{i}"), "s", false), &mut out);
        }
        assert!(d.footprint() <= MAX_ALERTS);
        d.evaluate(Ts(FORGET_RESOLVED_MS + 10), &mut out);
        assert_eq!(d.footprint(), 0);
        assert!(out.is_empty());
    }
}
