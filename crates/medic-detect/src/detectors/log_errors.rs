//! `log_errors`: bursts of error-level log records against a learned per-window count
//! (ErrorLogBurst), and error messages whose template was never seen before for the service
//! (NewErrorMessage).

use crate::baseline::Baseline;
use crate::bounded::BoundedMap;
use crate::counter::SlotRing;
use crate::detectors::MAX_SERVICES;
use crate::episode::{CLEAR_EVALS_TO_END, Episode, Judgement};
use crate::template::template_of;
use crate::{Detector, finding_id, fmt_secs, score_above};
use medic_config::{BaselineConfig, DetectorsConfig, LogErrorsConfig};
use medic_core::{
    Evidence, Finding, FindingKind, LogLine, Signal, SignalPayload, Symptom, SymptomState, Ts,
};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};

const NAME: &str = "log_errors";
/// Templates remembered per service; the least used are forgotten first.
pub const MAX_TEMPLATES: usize = 1024;
/// New templates tracked within one new-message episode.
const MAX_NOVEL: usize = 32;
/// Example lines kept (and quoted) per service.
const EXAMPLES: usize = 3;
/// Longest example line quoted as evidence.
const MAX_EXAMPLE_CHARS: usize = 1000;

pub struct LogErrors {
    cfg: LogErrorsConfig,
    baseline: BaselineConfig,
    services: BoundedMap<Service>,
}

/// Known templates (hashed, so a hostile message costs 8 bytes), evicted with the CLOCK
/// algorithm: a template seen again since it was last considered gets a second chance.
#[derive(Debug, Default)]
struct TemplateSet {
    seen: HashMap<u64, bool>,
    order: VecDeque<u64>,
}

impl TemplateSet {
    /// Remember a template; true when it was not known.
    fn insert(&mut self, t: u64) -> bool {
        if let Some(referenced) = self.seen.get_mut(&t) {
            *referenced = true;
            return false;
        }
        while self.seen.len() >= MAX_TEMPLATES {
            let Some(k) = self.order.pop_front() else {
                break;
            };
            match self.seen.get_mut(&k) {
                Some(r) if *r => {
                    *r = false;
                    self.order.push_back(k);
                }
                _ => {
                    self.seen.remove(&k);
                }
            }
        }
        self.seen.insert(t, false);
        self.order.push_back(t);
        true
    }

    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[derive(Debug)]
struct Service {
    counts: SlotRing<u32>,
    baseline: Baseline,
    burst: Episode,
    templates: TemplateSet,
    /// Templates first seen in the current new-message episode → when last seen.
    novel: BTreeMap<u64, Ts>,
    new_episode: bool,
    new_clears: u32,
    examples: VecDeque<(Ts, String)>,
}

fn template_hash(message: &str) -> u64 {
    let mut h = DefaultHasher::new();
    template_of(message).hash(&mut h);
    h.finish()
}

/// Structured fields that carry a failed record's error, in the names common loggers use.
const ERROR_FIELDS: [&str; 6] = [
    "error",
    "err",
    "error.message",
    "exception",
    "exception.message",
    "reason",
];

/// What an error record says went wrong: its message, and for structured lines whose message
/// is generic (`request completed`) the error field too, so a new error is told by the error
/// it carries, not by the generic words around it.
fn error_text(l: &LogLine) -> std::borrow::Cow<'_, str> {
    match ERROR_FIELDS
        .iter()
        .find_map(|k| l.fields.get(*k).filter(|v| !v.is_empty()))
    {
        Some(e) => format!("{}: {e}", l.message).into(),
        None => l.message.as_str().into(),
    }
}

fn example_line(l: &LogLine) -> String {
    let mut s = if l.raw.is_empty() {
        l.message.clone()
    } else {
        l.raw.clone()
    };
    for c in l.continuation.iter().take(2) {
        s.push('\n');
        s.push_str(c);
    }
    if s.chars().count() > MAX_EXAMPLE_CHARS {
        s = s.chars().take(MAX_EXAMPLE_CHARS).collect();
        s.push('…');
    }
    s
}

impl LogErrors {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        LogErrors {
            cfg: cfg.log_errors.clone(),
            baseline: cfg.baseline.clone(),
            services: BoundedMap::new(MAX_SERVICES),
        }
    }
}

fn count(svc: &Service, now: Ts) -> f64 {
    f64::from(
        svc.counts
            .in_window(now)
            .fold(0u32, |a, c| a.saturating_add(*c)),
    )
}

fn judge_burst(cfg: &LogErrorsConfig, svc: &Service, n: f64) -> Judgement {
    match svc.baseline.mean() {
        None => Judgement::Unknown,
        Some(b) if n >= f64::from(cfg.min_count) && n >= cfg.burst_ratio * b => {
            Judgement::Anomalous
        }
        Some(_) => Judgement::Clear,
    }
}

fn window_ms(cfg: &LogErrorsConfig) -> i64 {
    i64::try_from(cfg.window.as_millis()).unwrap_or(i64::MAX / 4)
}

fn judge_new(cfg: &LogErrorsConfig, svc: &Service, now: Ts) -> Judgement {
    if !svc.baseline.is_warm() {
        return Judgement::Unknown;
    }
    let since = now.0.saturating_sub(window_ms(cfg));
    if svc.novel.values().any(|t| t.0 > since) {
        Judgement::Anomalous
    } else {
        Judgement::Clear
    }
}

fn count_evidence(service: &str, now: Ts, n: f64, baseline: Option<f64>) -> Evidence {
    Evidence::Metric {
        ts: now,
        service: service.to_string(),
        name: "error_log_lines".into(),
        value: n,
        baseline,
        unit: String::new(),
    }
}

fn example_evidence(service: &str, svc: &Service) -> impl Iterator<Item = Evidence> {
    svc.examples
        .iter()
        .map(move |(ts, line)| Evidence::LogLine {
            ts: *ts,
            service: service.to_string(),
            line: line.clone(),
        })
}

impl Detector for LogErrors {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, out: &mut Vec<Finding>) {
        let (SignalPayload::Log(line), Some(service)) = (&s.payload, &s.service) else {
            return;
        };
        let cfg = &self.cfg;
        let (window, baseline) = (cfg.window, &self.baseline);
        let svc = self.services.touch(service, || Service {
            counts: SlotRing::new(window),
            baseline: Baseline::new(baseline),
            burst: Episode::default(),
            templates: TemplateSet::default(),
            novel: BTreeMap::new(),
            new_episode: false,
            new_clears: 0,
            examples: VecDeque::new(),
        });
        if !line.level.is_error() {
            return;
        }
        svc.counts.add(s.ts, || 0, |c| *c = c.saturating_add(1));
        let example = example_line(line);
        svc.examples.push_back((s.ts, example.clone()));
        while svc.examples.len() > EXAMPLES {
            svc.examples.pop_front();
        }
        let text = error_text(line);
        let t = template_hash(&text);
        if let Some(last) = svc.novel.get_mut(&t) {
            *last = (*last).max(s.ts);
        }
        let is_new = svc.templates.insert(t);
        // Before warm-up every template is new: learn them silently.
        if !(is_new && cfg.new_messages && svc.baseline.is_warm()) {
            return;
        }
        if svc.novel.len() < MAX_NOVEL {
            svc.novel.insert(t, s.ts);
        }
        svc.new_clears = 0;
        if svc.new_episode {
            return;
        }
        svc.new_episode = true;
        let n = count(svc, s.ts);
        let base = svc.baseline.mean();
        let shown: String = text.chars().take(200).collect();
        out.push(Finding {
            id: finding_id(NAME, service, s.ts, FindingKind::NewErrorMessage, None),
            ts: s.ts,
            service: service.clone(),
            instance: s.instance.clone(),
            kind: FindingKind::NewErrorMessage,
            detector: NAME.into(),
            score: 0.6,
            summary: format!("new error message on {service}: \"{shown}\""),
            evidence: vec![
                Evidence::LogLine {
                    ts: s.ts,
                    service: service.clone(),
                    line: example,
                },
                count_evidence(service, s.ts, n, base),
            ],
        });
    }

    fn evaluate(&mut self, now: Ts, out: &mut Vec<Finding>) {
        let cfg = &self.cfg;
        for (name, svc) in self.services.iter_mut() {
            svc.counts.expire(now);
            let n = count(svc, now);
            let j = judge_burst(cfg, svc, n);
            let started = svc.burst.update(j, 1);
            if !svc.baseline.is_warm() || svc.burst.may_learn(j) {
                svc.baseline.learn(n);
            }
            if svc.new_episode {
                if judge_new(cfg, svc, now) == Judgement::Clear {
                    svc.new_clears += 1;
                }
                if svc.new_clears >= CLEAR_EVALS_TO_END {
                    svc.new_episode = false;
                    svc.new_clears = 0;
                    svc.novel.clear();
                }
            }
            if started {
                let base = svc.baseline.mean().unwrap_or(0.0);
                let threshold = (cfg.burst_ratio * base).max(f64::from(cfg.min_count));
                let mut evidence = vec![count_evidence(name, now, n, Some(base))];
                evidence.extend(example_evidence(name, svc));
                out.push(Finding {
                    id: finding_id(NAME, name, now, FindingKind::ErrorLogBurst, None),
                    ts: now,
                    service: name.clone(),
                    instance: None,
                    kind: FindingKind::ErrorLogBurst,
                    detector: NAME.into(),
                    score: score_above(n, threshold),
                    summary: format!(
                        "{n:.0} error log lines over {} vs baseline {base:.1} on {name}",
                        fmt_secs(cfg.window)
                    ),
                    evidence,
                });
            }
        }
    }

    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState> {
        let svc = self.services.get(&symptom.service);
        match symptom.kind {
            FindingKind::ErrorLogBurst => Some(
                svc.map_or(Judgement::Unknown, |s| {
                    judge_burst(&self.cfg, s, count(s, now))
                })
                .state(),
            ),
            FindingKind::NewErrorMessage => Some(
                svc.map_or(Judgement::Unknown, |s| judge_new(&self.cfg, s, now))
                    .state(),
            ),
            _ => None,
        }
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if !matches!(
            symptom.kind,
            FindingKind::ErrorLogBurst | FindingKind::NewErrorMessage
        ) {
            return None;
        }
        let svc = self.services.get(&symptom.service)?;
        Some(count_evidence(
            &symptom.service,
            now,
            count(svc, now),
            svc.baseline.mean(),
        ))
    }

    fn footprint(&self) -> usize {
        self.services
            .values()
            .map(|s| 1 + s.counts.len() + s.templates.len() + s.novel.len() + s.examples.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use medic_core::Level;

    fn st(d: &LogErrors, kind: FindingKind, t: i64) -> Option<SymptomState> {
        d.status(&sym("pay", kind), Ts(t))
    }

    /// `seconds` of normal logging: info lines and a rare known error.
    fn normal(d: &mut LogErrors, out: &mut Vec<Finding>, from: i64, to: i64, rng: &mut Rng) {
        for t in from..to {
            d.observe(
                &log(
                    t * 1000,
                    "pay",
                    Level::Info,
                    &format!("served request {t} in 12ms"),
                ),
                out,
            );
            if t % 4 == 0 || rng.unit() < 0.1 {
                let msg = format!("cache miss for key 0x{:x} after 3ms", rng.next());
                d.observe(&log(t * 1000 + 1, "pay", Level::Error, &msg), out);
            }
            d.evaluate(Ts(t * 1000 + 500), out);
        }
    }

    #[test]
    fn burst_found_once_and_baseline_kept() {
        let mut d = LogErrors::new(&DetectorsConfig::default());
        let mut out = vec![];
        let mut rng = Rng(5);
        assert_eq!(
            st(&d, FindingKind::ErrorLogBurst, 0),
            Some(SymptomState::Unknown)
        );
        normal(&mut d, &mut out, 0, 60, &mut rng);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            st(&d, FindingKind::ErrorLogBurst, 59_500),
            Some(SymptomState::Clear)
        );
        for t in 60..200 {
            for k in 0..5 {
                let msg = format!("cache miss for key 0x{k:x} after {t}ms");
                d.observe(&log(t * 1000 + k, "pay", Level::Error, &msg), &mut out);
            }
            d.evaluate(Ts(t * 1000 + 500), &mut out);
            if t > 61 {
                assert_eq!(
                    st(&d, FindingKind::ErrorLogBurst, t * 1000 + 500),
                    Some(SymptomState::Anomalous)
                );
            }
        }
        assert_eq!(out.len(), 1, "{out:?}");
        let f = &out[0];
        assert_eq!(f.kind, FindingKind::ErrorLogBurst);
        assert!(f.ts >= Ts(60_000) && f.ts <= Ts(62_000));
        assert_eq!(
            f.evidence
                .iter()
                .filter(|e| matches!(e, Evidence::LogLine { .. }))
                .count(),
            3
        );
        normal(&mut d, &mut out, 200, 230, &mut rng);
        assert_eq!(out.len(), 1);
        assert_eq!(
            st(&d, FindingKind::ErrorLogBurst, 229_500),
            Some(SymptomState::Clear)
        );
        let Some(Evidence::Metric {
            baseline: Some(b), ..
        }) = d.describe(&sym("pay", FindingKind::ErrorLogBurst), Ts(229_500))
        else {
            panic!("no evidence");
        };
        assert!(b < 2.0, "baseline {b}");
    }

    #[test]
    fn new_message_found_once_then_clears() {
        let mut d = LogErrors::new(&DetectorsConfig::default());
        let mut out = vec![];
        let mut rng = Rng(9);
        normal(&mut d, &mut out, 0, 30, &mut rng);
        assert!(out.is_empty());
        assert_eq!(
            st(&d, FindingKind::NewErrorMessage, 29_500),
            Some(SymptomState::Clear)
        );
        for t in 30..40 {
            let mut l = LogLine {
                level: Level::Error,
                message: format!("charge {t} failed: upstream returned 500 after {t}ms"),
                ..LogLine::default()
            };
            l.continuation = vec![
                "  at pay::charge".into(),
                "  at pay::main".into(),
                "  at std".into(),
            ];
            d.observe(&log_line(t * 1000, "pay", l), &mut out);
            d.evaluate(Ts(t * 1000 + 500), &mut out);
            assert_eq!(
                st(&d, FindingKind::NewErrorMessage, t * 1000 + 500),
                Some(SymptomState::Anomalous)
            );
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, FindingKind::NewErrorMessage);
        assert_eq!(out[0].ts, Ts(30_000));
        let Evidence::LogLine { line, .. } = &out[0].evidence[0] else {
            panic!("no line");
        };
        assert!(
            line.contains("charge 30 failed")
                && line.contains("at pay::main")
                && !line.contains("at std")
        );
        normal(&mut d, &mut out, 40, 60, &mut rng);
        assert_eq!(
            st(&d, FindingKind::NewErrorMessage, 59_500),
            Some(SymptomState::Clear)
        );
        // The same message later is known; a different one is a new episode.
        d.observe(
            &log(
                61_000,
                "pay",
                Level::Error,
                "charge 99 failed: upstream returned 502 after 1ms",
            ),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        d.observe(
            &log(62_000, "pay", Level::Fatal, "ledger unreachable"),
            &mut out,
        );
        assert_eq!(out.len(), 2);
    }

    /// Structured request logs share one generic message; what is new is the error they carry.
    #[test]
    fn a_generic_structured_message_is_told_apart_by_its_error_field() {
        let json = |t: i64, error: &str| {
            let mut l = LogLine {
                level: Level::Error,
                message: "request completed".into(),
                ..LogLine::default()
            };
            l.fields.insert("error".into(), error.into());
            log_line(t, "pay", l)
        };
        let mut d = LogErrors::new(&DetectorsConfig::default());
        let mut out = vec![];
        let mut rng = Rng(3);
        for t in 0..30 {
            d.observe(&json(t * 1000 + 2, "card declined by issuer"), &mut out);
            normal(&mut d, &mut out, t, t + 1, &mut rng);
        }
        assert!(out.is_empty(), "{out:?}");
        d.observe(&json(31_000, "card declined by issuer"), &mut out);
        assert!(out.is_empty(), "a known error is not new: {out:?}");
        d.observe(&json(32_000, "connection refused by ledger"), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].summary.contains("connection refused by ledger"),
            "{}",
            out[0].summary
        );
    }

    #[test]
    fn no_new_messages_during_warmup_or_when_disabled() {
        let mut d = LogErrors::new(&DetectorsConfig::default());
        let mut out = vec![];
        for t in 0..5 {
            d.observe(
                &log(
                    t * 1000,
                    "pay",
                    Level::Error,
                    &format!("boom {t} kind-{t}x"),
                ),
                &mut out,
            );
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(
            st(&d, FindingKind::NewErrorMessage, 4_000),
            Some(SymptomState::Unknown)
        );
        let mut cfg = DetectorsConfig::default();
        cfg.log_errors.new_messages = false;
        let mut d = LogErrors::new(&cfg);
        let mut rng = Rng(1);
        normal(&mut d, &mut out, 0, 30, &mut rng);
        d.observe(&log(31_000, "pay", Level::Error, "never seen"), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn templates_are_bounded_and_frequent_ones_survive() {
        let mut s = TemplateSet::default();
        assert!(s.insert(1));
        for i in 0..10 * MAX_TEMPLATES as u64 {
            s.insert(1);
            assert!(s.insert(1000 + i));
        }
        assert!(s.len() <= MAX_TEMPLATES);
        assert!(!s.insert(1), "a template in constant use was evicted");
    }
}
