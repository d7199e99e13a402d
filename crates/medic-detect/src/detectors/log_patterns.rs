//! `log_patterns`: log records matching the curated pattern library ([`crate::patterns`]):
//! one `LogPattern` finding per (service, pattern) episode. An episode lasts while matches
//! keep arriving within the configured window.

use crate::bounded::BoundedMap;
use crate::detectors::MAX_SERVICES;
use crate::patterns::{PATTERNS, Pattern, match_record};
use crate::{Detector, finding_id, fmt_secs};
use medic_config::{DetectorsConfig, LogPatternsConfig};
use medic_core::{
    Evidence, Finding, FindingKind, LogLine, Signal, SignalPayload, Symptom, SymptomState, Ts,
};
use std::collections::{BTreeMap, VecDeque};

const NAME: &str = "log_patterns";
/// Example lines kept (and quoted) per (service, pattern).
const EXAMPLES: usize = 3;
/// Longest example line quoted as evidence.
const MAX_EXAMPLE_CHARS: usize = 1000;

pub struct LogPatterns {
    cfg: LogPatternsConfig,
    /// Library indexes switched off by `disabled`.
    disabled: u64,
    services: BoundedMap<Service>,
}

#[derive(Debug, Default)]
struct Service {
    /// Library index → its state; at most one entry per pattern, so bounded by the library.
    patterns: BTreeMap<usize, PatternState>,
}

#[derive(Debug, Default)]
struct PatternState {
    /// Times of the latest matches, at most `min_count` of them.
    recent: VecDeque<Ts>,
    last: Option<Ts>,
    active: bool,
    /// Matches since the episode started (or since the last one ended).
    matches: u64,
    examples: VecDeque<(Ts, String)>,
}

/// The redacted line as people should see it: raw when kept, else the message, with the
/// first two continuation lines, cut to a bounded length.
pub(crate) fn example_line(l: &LogLine) -> String {
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

fn window_ms(cfg: &LogPatternsConfig) -> i64 {
    i64::try_from(cfg.window.as_millis()).unwrap_or(i64::MAX / 4)
}

impl LogPatterns {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        let c = cfg.log_patterns.clone();
        // Unknown names are ignored: the library grows, and a config naming a pattern of a
        // newer medic must not stop an older one.
        let disabled = PATTERNS
            .iter()
            .enumerate()
            .filter(|(_, p)| c.disabled.iter().any(|d| d == p.name))
            .fold(0u64, |acc, (i, _)| acc | (1u64 << i));
        LogPatterns {
            cfg: c,
            disabled,
            services: BoundedMap::new(MAX_SERVICES),
        }
    }

    fn in_window(&self, st: &PatternState, now: Ts) -> usize {
        let since = now.0.saturating_sub(window_ms(&self.cfg));
        st.recent.iter().filter(|t| t.0 > since).count()
    }

    fn judge(&self, svc: &Service, now: Ts) -> SymptomState {
        let since = now.0.saturating_sub(window_ms(&self.cfg));
        if svc
            .patterns
            .values()
            .any(|p| p.active || p.last.is_some_and(|t| t.0 > since))
        {
            SymptomState::Anomalous
        } else {
            SymptomState::Clear
        }
    }
}

fn summary(p: &Pattern, service: &str, example: &str, n: u64, window: &str) -> String {
    let shown: String = example
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    format!(
        "{} in logs of {service} (pattern {}, {n} in {window}): \"{shown}\"",
        p.phrase, p.name
    )
}

impl Detector for LogPatterns {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, out: &mut Vec<Finding>) {
        let (SignalPayload::Log(line), Some(service)) = (&s.payload, &s.service) else {
            return;
        };
        let found = match_record(&line.message, &line.continuation, line.level);
        let svc = self.services.touch(service, Service::default);
        if found.is_empty() {
            return;
        }
        let min = self.cfg.min_count.max(1) as usize;
        let since = s.ts.0.saturating_sub(window_ms(&self.cfg));
        let window = fmt_secs(self.cfg.window);
        let mut example: Option<String> = None;
        for i in found.indexes() {
            if self.disabled & (1u64 << i) != 0 {
                continue;
            }
            let Some(p) = PATTERNS.get(i) else {
                continue;
            };
            let st = svc.patterns.entry(i).or_default();
            st.recent.push_back(s.ts);
            while st.recent.len() > min {
                st.recent.pop_front();
            }
            st.last = Some(st.last.map_or(s.ts, |l| l.max(s.ts)));
            st.matches = st.matches.saturating_add(1);
            let ex = example.get_or_insert_with(|| example_line(line)).clone();
            st.examples.push_back((s.ts, ex.clone()));
            while st.examples.len() > EXAMPLES {
                st.examples.pop_front();
            }
            let recent = st.recent.iter().filter(|t| t.0 > since).count();
            if st.active || recent < min {
                continue;
            }
            st.active = true;
            let mut evidence: Vec<Evidence> = st
                .examples
                .iter()
                .rev()
                .map(|(ts, l)| Evidence::LogLine {
                    ts: *ts,
                    service: service.clone(),
                    line: l.clone(),
                })
                .collect();
            evidence.push(Evidence::Metric {
                ts: s.ts,
                service: service.clone(),
                name: format!("log_pattern_lines{{pattern=\"{}\"}}", p.name),
                value: recent as f64,
                baseline: None,
                unit: String::new(),
            });
            evidence.push(Evidence::Note {
                text: format!("pattern {} usually means: {}", p.name, p.hint),
            });
            out.push(Finding {
                id: finding_id(NAME, service, s.ts, FindingKind::LogPattern, Some(p.name)),
                ts: s.ts,
                service: service.clone(),
                instance: s.instance.clone(),
                kind: FindingKind::LogPattern,
                detector: NAME.into(),
                score: p.severity.score(),
                summary: summary(p, service, &ex, recent as u64, &window),
                evidence,
            });
        }
    }

    fn evaluate(&mut self, now: Ts, _out: &mut Vec<Finding>) {
        let since = now.0.saturating_sub(window_ms(&self.cfg));
        for (_, svc) in self.services.iter_mut() {
            svc.patterns.retain(|_, st| {
                let quiet = st.last.is_none_or(|t| t.0 <= since);
                if quiet {
                    // No match for a whole window: the episode is over and its state can go.
                    st.active = false;
                }
                !quiet
            });
        }
    }

    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState> {
        if symptom.kind != FindingKind::LogPattern {
            return None;
        }
        Some(
            self.services
                .get(&symptom.service)
                .map_or(SymptomState::Unknown, |s| self.judge(s, now)),
        )
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if symptom.kind != FindingKind::LogPattern {
            return None;
        }
        let svc = self.services.get(&symptom.service)?;
        let n: usize = svc
            .patterns
            .values()
            .map(|st| self.in_window(st, now))
            .sum();
        Some(Evidence::Metric {
            ts: now,
            service: symptom.service.clone(),
            name: "log_pattern_lines".into(),
            value: n as f64,
            baseline: Some(0.0),
            unit: String::new(),
        })
    }

    fn footprint(&self) -> usize {
        self.services
            .values()
            .map(|s| {
                1 + s
                    .patterns
                    .values()
                    .map(|p| 1 + p.recent.len() + p.examples.len())
                    .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn det(cfg: impl FnOnce(&mut DetectorsConfig)) -> LogPatterns {
        let mut c = DetectorsConfig::default();
        cfg(&mut c);
        LogPatterns::new(&c)
    }

    #[test]
    fn one_finding_per_episode_with_examples_and_hint() {
        let mut d = det(|_| {});
        let mut out = vec![];
        for t in 0..30 {
            d.observe(
                &log(t * 1000, "checkout", Level::Info, "served GET /cart in 3ms"),
                &mut out,
            );
            d.evaluate(Ts(t * 1000 + 500), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(
            d.status(&sym("checkout", FindingKind::LogPattern), Ts(30_000)),
            Some(SymptomState::Clear)
        );
        for t in 30..60 {
            let msg = format!("GET http://cache:4000/get failed: connection refused (try {t})");
            d.observe(&log(t * 1000, "checkout", Level::Error, &msg), &mut out);
            d.evaluate(Ts(t * 1000 + 500), &mut out);
        }
        assert_eq!(out.len(), 1, "{out:?}");
        let f = &out[0];
        assert_eq!(f.kind, FindingKind::LogPattern);
        assert_eq!(f.ts, Ts(30_000));
        assert!(f.summary.contains("connection refused"), "{}", f.summary);
        assert!(f.summary.contains("connection_refused"));
        assert!(
            f.evidence.iter().any(
                |e| matches!(e, Evidence::Note { text } if text.contains("dependency is down"))
            )
        );
        assert_eq!(
            d.status(&sym("checkout", FindingKind::LogPattern), Ts(59_500)),
            Some(SymptomState::Anomalous)
        );
        // A different pattern on the same service is its own episode.
        d.observe(
            &log(
                60_000,
                "checkout",
                Level::Error,
                "call to payment timed out after 400ms",
            ),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(out[1].summary.contains("timed out"));
        // Quiet for a window ends the episodes; a later match starts a new one.
        for t in 61..200 {
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert_eq!(
            d.status(&sym("checkout", FindingKind::LogPattern), Ts(200_000)),
            Some(SymptomState::Clear)
        );
        assert_eq!(d.footprint(), 1);
        d.observe(
            &log(201_000, "checkout", Level::Error, "connection refused"),
            &mut out,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[2]
                .evidence
                .iter()
                .filter(|e| matches!(e, Evidence::LogLine { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn min_count_and_disabled_patterns() {
        let mut d = det(|c| {
            c.log_patterns.min_count = 3;
            c.log_patterns.disabled = vec!["timeout".into(), "no_such_pattern".into()];
        });
        let mut out = vec![];
        for t in 0..10 {
            d.observe(
                &log(t * 1000, "api", Level::Error, "upstream timed out"),
                &mut out,
            );
        }
        assert!(out.is_empty(), "disabled pattern fired");
        // Two matches far apart never reach three within the window.
        d.observe(
            &log(100_000, "api", Level::Error, "Permission denied"),
            &mut out,
        );
        d.observe(
            &log(200_000, "api", Level::Error, "Permission denied"),
            &mut out,
        );
        d.observe(
            &log(201_000, "api", Level::Error, "Permission denied"),
            &mut out,
        );
        assert!(out.is_empty());
        d.observe(
            &log(202_000, "api", Level::Error, "Permission denied"),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(out[0].summary.contains("permission denied"));
        assert_eq!(
            out[0]
                .evidence
                .iter()
                .filter(|e| matches!(e, Evidence::LogLine { .. }))
                .count(),
            3
        );
    }

    #[test]
    fn info_config_lines_do_not_fire_and_unknown_service_is_unknown() {
        let mut d = det(|_| {});
        let mut out = vec![];
        d.observe(
            &log(0, "api", Level::Info, "timeout=30s configured"),
            &mut out,
        );
        d.observe(
            &log(1, "api", Level::Info, "TLS handshake completed in 3ms"),
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(
            d.status(&sym("nope", FindingKind::LogPattern), Ts(0)),
            Some(SymptomState::Unknown)
        );
        assert_eq!(d.status(&sym("api", FindingKind::Latency), Ts(0)), None);
    }

    #[test]
    fn state_is_bounded_under_many_services() {
        let mut d = det(|_| {});
        let mut out = vec![];
        for i in 0..(MAX_SERVICES as i64 * 3) {
            d.observe(
                &log(
                    i,
                    &format!("svc{i}"),
                    Level::Error,
                    "no space left on device; out of memory",
                ),
                &mut out,
            );
        }
        assert!(d.services.len() <= MAX_SERVICES);
        assert!(d.footprint() <= MAX_SERVICES * (1 + 2 * (2 + EXAMPLES)));
    }
}
