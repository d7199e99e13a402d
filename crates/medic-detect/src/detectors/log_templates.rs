//! `log_templates`: log lines mined into templates per service (`medic-templates`), with
//! per-template counts in tumbling windows against each template's own baseline:
//! - `NewLogTemplate`: a template never seen in the service's baseline (after warm-up).
//!   Weighed by level: a new warning/error template is reported at once; a new info/debug
//!   template is normal churn unless it repeats `new_info_min_count` times in one window.
//!   New error templates are left to `log_errors` (`NewErrorMessage`) while it reports new
//!   messages, so one new error is not reported twice.
//! - `LogTemplateRate`: a template's count per window at least `spike_ratio` × its baseline
//!   (and `min_count`), or a template with a steady baseline absent for `vanish_windows`
//!   windows while its service still logs.

use crate::baseline::Baseline;
use crate::bounded::BoundedMap;
use crate::detectors::MAX_SERVICES;
use crate::detectors::log_patterns::example_line;
use crate::episode::{Episode, Judgement};
use crate::{Detector, finding_id, fmt_secs, score_above};
use medic_config::{BaselineConfig, DetectorsConfig, LogTemplatesConfig};
use medic_core::{
    Evidence, Finding, FindingKind, Level, LogLine, Signal, SignalPayload, Symptom, SymptomState,
    Ts,
};
use medic_templates::{MinerConfig, TemplateId, TemplateMiner};
use std::collections::{HashMap, VecDeque};

const NAME: &str = "log_templates";
/// Example lines kept per template.
const EXAMPLES: usize = 3;
/// Longest example kept per template (templates are many; findings quote few).
const MAX_EXAMPLE_CHARS: usize = 500;
/// Windows a template may be absent (while not vanished) before its state is forgotten.
const STALE_WINDOWS: u32 = 240;
/// Exact-shape cache entries of each service's miner (the miner's default is sized for one
/// big offline file, not hundreds of services).
const MINER_CACHE: usize = 4096;
/// Marks (and versions) the persisted state.
const STATE_MAGIC: &[u8] = b"medic-log-templates-v1\n";

/// Splits a little-endian u32 length-prefixed chunk off the front.
fn take_chunk(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let rest = b.get(4..)?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// Windows a new info template has to reach `new_info_min_count`.
const PENDING_WINDOWS: u32 = 2;
/// Windows without a reportable new template that end a new-template episode.
const NEW_EPISODE_QUIET_WINDOWS: i64 = 3;

pub struct LogTemplates {
    cfg: LogTemplatesConfig,
    baseline: BaselineConfig,
    /// `log_errors` reports never-seen error messages itself.
    errors_reported_elsewhere: bool,
    services: BoundedMap<Service>,
    /// Templates not tracked because their service was at its cap (counted, never silent).
    untracked: u64,
}

struct Service {
    miner: TemplateMiner,
    first: Ts,
    lines: u64,
    /// Index of the current window (ts / window).
    window: i64,
    window_lines: u32,
    templates: HashMap<TemplateId, Tpl>,
    /// When the last reportable new template arrived, while a new-template episode is open.
    new_episode: Option<Ts>,
}

#[derive(Debug)]
struct Tpl {
    level: Level,
    count: u32,
    baseline: Baseline,
    spike: Episode,
    vanish: Episode,
    /// Consecutive windows (with the service logging) that had / lacked this template.
    present_run: u32,
    absent_run: u32,
    /// Whether the template was steady when its current absence began.
    steady_when_left: bool,
    /// A new info template waiting to repeat enough: windows left.
    pending: Option<u32>,
    examples: VecDeque<(Ts, String)>,
}

impl Tpl {
    fn new(cfg: &BaselineConfig, level: Level) -> Self {
        Tpl {
            level,
            count: 0,
            baseline: Baseline::new(cfg),
            spike: Episode::default(),
            vanish: Episode::default(),
            present_run: 0,
            absent_run: 0,
            steady_when_left: false,
            pending: None,
            examples: VecDeque::new(),
        }
    }

    fn steady(&self, cfg: &LogTemplatesConfig, warmup: u32) -> bool {
        self.baseline
            .mean()
            .is_some_and(|m| m >= cfg.vanish_min_mean)
            && self.present_run >= warmup
    }
}

fn window_ms(cfg: &LogTemplatesConfig) -> i64 {
    i64::try_from(cfg.window.as_millis())
        .unwrap_or(i64::MAX / 4)
        .max(1)
}

fn short(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

impl LogTemplates {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        LogTemplates {
            cfg: cfg.log_templates.clone(),
            baseline: cfg.baseline.clone(),
            errors_reported_elsewhere: cfg.log_errors.enabled && cfg.log_errors.new_messages,
            services: BoundedMap::new(MAX_SERVICES),
            untracked: 0,
        }
    }

    /// Templates seen but not tracked because a service was at `max_templates`.
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    fn miner_config(&self) -> MinerConfig {
        MinerConfig {
            max_templates: self.cfg.max_templates.max(1),
            cache_entries: MINER_CACHE,
            extract_params: false,
            ..MinerConfig::default()
        }
    }
}

/// Closes windows up to (not including) window `to`, judging each template; pushes findings.
fn roll(
    cfg: &LogTemplatesConfig,
    bcfg: &BaselineConfig,
    name: &str,
    svc: &mut Service,
    to: i64,
    out: &mut Vec<Finding>,
) {
    if to <= svc.window {
        return;
    }
    let wms = window_ms(cfg);
    let closed_at = Ts(svc.window.saturating_add(1).saturating_mul(wms));
    // A window in which the service logged nothing says nothing about its templates (a quiet
    // batch job, a stopped service): no learning, no judgement.
    if svc.window_lines > 0 {
        let warmup = bcfg.warmup_samples.max(1);
        let mut found = Vec::new();
        for (id, t) in &mut svc.templates {
            let c = t.count;
            let spike_j = match t.baseline.mean() {
                None => Judgement::Unknown,
                Some(b) if c >= cfg.min_count && f64::from(c) >= cfg.spike_ratio * b => {
                    Judgement::Anomalous
                }
                Some(_) => Judgement::Clear,
            };
            if c == 0 {
                if t.absent_run == 0 {
                    t.steady_when_left = t.steady(cfg, warmup);
                }
                t.absent_run = t.absent_run.saturating_add(1);
                t.present_run = 0;
            } else {
                t.absent_run = 0;
                t.present_run = t.present_run.saturating_add(1);
            }
            let vanish_j = if c > 0 {
                Judgement::Clear
            } else if t.steady_when_left && t.absent_run >= cfg.vanish_windows.max(1) {
                Judgement::Anomalous
            } else {
                Judgement::Unknown
            };
            let spiked = t.spike.update(spike_j, 1);
            let vanished = t.vanish.update(vanish_j, 1);
            // Zeros of a steady template's absence are not normal until judged otherwise,
            // and a spike's counts never are.
            let absent_steady = c == 0 && t.steady_when_left;
            if !absent_steady
                && !t.vanish.is_active()
                && (!t.baseline.is_warm() || t.spike.may_learn(spike_j))
            {
                t.baseline.learn(f64::from(c));
            }
            if let Some(left) = t.pending.as_mut() {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    t.pending = None;
                }
            }
            if spiked {
                found.push((*id, true, c, t.baseline.mean().unwrap_or(0.0)));
            }
            if vanished {
                found.push((*id, false, 0, t.baseline.mean().unwrap_or(0.0)));
            }
            t.count = 0;
        }
        found.sort_by_key(|f| f.0);
        for (id, spike, c, base) in found {
            let template = svc.miner.template(id).unwrap_or_default();
            let shown = short(&template, 200);
            let Some(t) = svc.templates.get(&id) else {
                continue;
            };
            let window = fmt_secs(cfg.window);
            let (summary, score) = if spike {
                let threshold = (cfg.spike_ratio * base).max(f64::from(cfg.min_count));
                (
                    format!(
                        "log template rate spike on {name}: {c} lines in {window} vs baseline {base:.1}: \"{shown}\""
                    ),
                    score_above(f64::from(c), threshold),
                )
            } else {
                (
                    format!(
                        "log template vanished on {name}: none for {} windows of {window} vs baseline {base:.1} per window: \"{shown}\"",
                        t.absent_run
                    ),
                    0.6,
                )
            };
            let mut evidence = vec![
                Evidence::Metric {
                    ts: closed_at,
                    service: name.to_string(),
                    name: format!("log_template_lines{{template=\"{id}\"}}"),
                    value: f64::from(c),
                    baseline: Some(base),
                    unit: String::new(),
                },
                Evidence::Note {
                    text: format!("template {id}: {template}"),
                },
            ];
            evidence.extend(t.examples.iter().map(|(ts, l)| Evidence::LogLine {
                ts: *ts,
                service: name.to_string(),
                line: l.clone(),
            }));
            out.push(Finding {
                id: finding_id(
                    NAME,
                    name,
                    closed_at,
                    FindingKind::LogTemplateRate,
                    Some(&id.to_string()),
                ),
                ts: closed_at,
                service: name.to_string(),
                instance: None,
                kind: FindingKind::LogTemplateRate,
                detector: NAME.into(),
                score,
                summary,
                evidence,
            });
        }
        svc.templates
            .retain(|_, t| t.absent_run < STALE_WINDOWS || t.vanish.is_active());
    }
    svc.window_lines = 0;
    svc.window = to;
    if let Some(last) = svc.new_episode
        && closed_at.0.saturating_sub(last.0) >= NEW_EPISODE_QUIET_WINDOWS.saturating_mul(wms)
    {
        svc.new_episode = None;
    }
}

fn new_template_finding(
    name: &str,
    s: &Signal,
    line: &LogLine,
    (id, template): (TemplateId, &str),
    (count, level): (u32, Level),
    why: &str,
) -> Finding {
    let shown = short(template, 200);
    let level_name = format!("{level:?}").to_lowercase();
    Finding {
        id: finding_id(
            NAME,
            name,
            s.ts,
            FindingKind::NewLogTemplate,
            Some(&id.to_string()),
        ),
        ts: s.ts,
        service: name.to_string(),
        instance: s.instance.clone(),
        kind: FindingKind::NewLogTemplate,
        detector: NAME.into(),
        score: if level >= Level::Error { 0.6 } else { 0.5 },
        summary: format!("new {level_name} log template on {name}{why}: \"{shown}\""),
        evidence: vec![
            Evidence::LogLine {
                ts: s.ts,
                service: name.to_string(),
                line: example_line(line),
            },
            Evidence::Metric {
                ts: s.ts,
                service: name.to_string(),
                name: format!("log_template_lines{{template=\"{id}\"}}"),
                value: f64::from(count),
                baseline: Some(0.0),
                unit: String::new(),
            },
            Evidence::Note {
                text: format!("template {id}: {template}"),
            },
        ],
    }
}

impl Detector for LogTemplates {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, out: &mut Vec<Finding>) {
        let (SignalPayload::Log(line), Some(name)) = (&s.payload, &s.service) else {
            return;
        };
        let miner_cfg = self.miner_config();
        let cfg = &self.cfg;
        let wms = window_ms(cfg);
        let w = s.ts.0.div_euclid(wms);
        let svc = self.services.touch(name, || Service {
            miner: TemplateMiner::new(miner_cfg),
            first: s.ts,
            lines: 0,
            window: w,
            window_lines: 0,
            templates: HashMap::new(),
            new_episode: None,
        });
        roll(cfg, &self.baseline, name, svc, w, out);
        let warm = svc.lines >= cfg.warmup_lines
            && crate::secs_between(s.ts, svc.first) >= cfg.warmup.as_secs_f64();
        svc.lines = svc.lines.saturating_add(1);
        svc.window_lines = svc.window_lines.saturating_add(1);
        let mined = svc.miner.mine(&line.message);
        if !svc.templates.contains_key(&mined.id) && svc.templates.len() >= cfg.max_templates {
            self.untracked = self.untracked.saturating_add(1);
            return;
        }
        let t = svc
            .templates
            .entry(mined.id)
            .or_insert_with(|| Tpl::new(&self.baseline, line.level));
        t.level = t.level.max(line.level);
        t.count = t.count.saturating_add(1);
        if t.count as usize <= EXAMPLES {
            let mut ex = example_line(line);
            if ex.chars().count() > MAX_EXAMPLE_CHARS {
                ex = short(&ex, MAX_EXAMPLE_CHARS);
            }
            t.examples.push_back((s.ts, ex));
            while t.examples.len() > EXAMPLES {
                t.examples.pop_front();
            }
        }
        // Before warm-up every template is new: learn them silently.
        let reportable = if mined.is_new && warm {
            if line.level >= Level::Warn {
                !(line.level.is_error() && self.errors_reported_elsewhere)
            } else {
                t.pending = Some(PENDING_WINDOWS);
                false
            }
        } else if t.pending.is_some() && t.count >= cfg.new_info_min_count {
            t.pending = None;
            true
        } else {
            false
        };
        if !reportable {
            return;
        }
        let open = svc.new_episode.is_some();
        svc.new_episode = Some(s.ts);
        if open {
            return;
        }
        let (level, count) = (t.level, t.count);
        let why = if level >= Level::Warn {
            String::new()
        } else {
            format!(" ({count} lines in {})", fmt_secs(cfg.window))
        };
        let template = svc.miner.template(mined.id).unwrap_or_default();
        out.push(new_template_finding(
            name,
            s,
            line,
            (mined.id, &template),
            (count, level),
            &why,
        ));
    }

    fn evaluate(&mut self, now: Ts, out: &mut Vec<Finding>) {
        let cfg = &self.cfg;
        let w = now.0.div_euclid(window_ms(cfg));
        for (name, svc) in self.services.iter_mut() {
            roll(cfg, &self.baseline, name, svc, w, out);
        }
    }

    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState> {
        let svc = self.services.get(&symptom.service);
        match symptom.kind {
            FindingKind::NewLogTemplate => Some(match svc {
                None => SymptomState::Unknown,
                Some(s) => match s.new_episode {
                    Some(t) if crate::secs_between(now, t) < self.cfg.window.as_secs_f64() => {
                        SymptomState::Anomalous
                    }
                    _ if s.lines < self.cfg.warmup_lines => SymptomState::Unknown,
                    _ => SymptomState::Clear,
                },
            }),
            FindingKind::LogTemplateRate => Some(match svc {
                None => SymptomState::Unknown,
                Some(s)
                    if s.templates
                        .values()
                        .any(|t| t.spike.is_active() || t.vanish.is_active()) =>
                {
                    SymptomState::Anomalous
                }
                Some(s) if s.templates.values().any(|t| t.baseline.is_warm()) => {
                    SymptomState::Clear
                }
                Some(_) => SymptomState::Unknown,
            }),
            _ => None,
        }
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if !matches!(
            symptom.kind,
            FindingKind::NewLogTemplate | FindingKind::LogTemplateRate
        ) {
            return None;
        }
        let svc = self.services.get(&symptom.service)?;
        // The template furthest from its baseline in the current window.
        let (id, t) = svc.templates.iter().max_by(|a, b| {
            let r = |t: &Tpl| f64::from(t.count) / t.baseline.mean().unwrap_or(0.0).max(1.0);
            r(a.1).total_cmp(&r(b.1)).then(b.0.cmp(a.0))
        })?;
        Some(Evidence::Metric {
            ts: now,
            service: symptom.service.clone(),
            name: format!("log_template_lines{{template=\"{id}\"}}"),
            value: f64::from(t.count),
            baseline: t.baseline.mean(),
            unit: String::new(),
        })
    }

    fn footprint(&self) -> usize {
        self.services
            .values()
            .map(|s| 1 + s.miner.len() + s.templates.len() * (1 + EXAMPLES))
            .sum()
    }

    /// Each service's known templates (the miner snapshot), so that what was normal before a
    /// restart is not reported as new after it. Rates and baselines are re-learned.
    fn save_state(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(STATE_MAGIC);
        for (name, svc) in self.services.iter() {
            let snap = svc.miner.snapshot();
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(snap.len() as u32).to_le_bytes());
            out.extend_from_slice(&snap);
        }
        Some(out)
    }

    fn restore_state(&mut self, bytes: &[u8], now: Ts) -> Result<(), String> {
        let mut rest = bytes
            .strip_prefix(STATE_MAGIC)
            .ok_or("log_templates state: not a medic log_templates state (bad magic)")?;
        let mut restored = Vec::new();
        while !rest.is_empty() {
            let (name, r) =
                take_chunk(rest).ok_or("log_templates state: truncated service name")?;
            let (snap, r) = take_chunk(r).ok_or("log_templates state: truncated snapshot")?;
            rest = r;
            let name = std::str::from_utf8(name)
                .map_err(|_| "log_templates state: service name is not UTF-8".to_string())?;
            let miner = TemplateMiner::restore(snap)
                .map_err(|e| format!("log_templates state of {name}: {e}"))?;
            restored.push((name.to_string(), miner));
        }
        let wms = window_ms(&self.cfg);
        let warm_lines = self.cfg.warmup_lines;
        for (name, miner) in restored {
            // Known templates make the service warm at once: the epoch as `first` passes the
            // time-based warm-up, and the line count the count-based one.
            let svc = self.services.touch(&name, || Service {
                miner: TemplateMiner::new(MinerConfig::default()),
                first: Ts(0),
                lines: warm_lines,
                window: now.0.div_euclid(wms),
                window_lines: 0,
                templates: HashMap::new(),
                new_episode: None,
            });
            svc.miner = miner;
            svc.first = Ts(0);
            svc.lines = svc.lines.max(warm_lines);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// Small windows and warm-up so tests run in simulated minutes.
    fn cfg(f: impl FnOnce(&mut DetectorsConfig)) -> DetectorsConfig {
        let mut c = DetectorsConfig::default();
        c.log_templates.window = std::time::Duration::from_secs(10);
        c.log_templates.warmup = std::time::Duration::from_secs(60);
        c.log_templates.warmup_lines = 100;
        c.baseline.warmup_samples = 5;
        f(&mut c);
        c
    }

    /// Normal churn: steady request lines, a periodic job line, and ever-new info messages
    /// (a fresh shape every 7 seconds) that must not page.
    fn normal(d: &mut LogTemplates, out: &mut Vec<Finding>, from: i64, to: i64, rng: &mut Rng) {
        for t in from..to {
            for k in 0..4 {
                let ms = t * 1000 + k * 200;
                let msg = format!(
                    "served GET /api/items/{} in {}ms",
                    rng.below(1000),
                    rng.below(90)
                );
                d.observe(&log(ms, "pay", Level::Info, &msg), out);
            }
            if t % 2 == 0 {
                let msg = format!("cache refreshed with {} entries", rng.below(5000));
                d.observe(&log(t * 1000 + 900, "pay", Level::Info, &msg), out);
            }
            if t % 7 == 0 {
                let words = [
                    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
                ];
                let msg = format!(
                    "feature {} toggled by {} for cohort {}",
                    words[(t / 7) as usize % 7],
                    words[(t / 3) as usize % 7],
                    t
                );
                let msg = "x ".repeat((t as usize / 7) % 9) + &msg;
                d.observe(&log(t * 1000 + 950, "pay", Level::Info, &msg), out);
            }
            d.evaluate(Ts(t * 1000 + 999), out);
        }
    }

    #[test]
    fn normal_churn_does_not_fire() {
        let mut d = LogTemplates::new(&cfg(|_| {}));
        let mut out = vec![];
        normal(&mut d, &mut out, 0, 600, &mut Rng(3));
        assert!(
            out.is_empty(),
            "{:#?}",
            out.iter().map(|f| &f.summary).collect::<Vec<_>>()
        );
        assert_eq!(
            d.status(&sym("pay", FindingKind::LogTemplateRate), Ts(600_000)),
            Some(SymptomState::Clear)
        );
        assert_eq!(
            d.status(&sym("pay", FindingKind::NewLogTemplate), Ts(600_000)),
            Some(SymptomState::Clear)
        );
    }

    #[test]
    fn new_warning_template_fires_once_and_errors_are_left_to_log_errors() {
        let mut d = LogTemplates::new(&cfg(|_| {}));
        let mut out = vec![];
        let mut rng = Rng(4);
        normal(&mut d, &mut out, 0, 120, &mut rng);
        assert!(out.is_empty());
        // An error template: log_errors reports it (NewErrorMessage), not this detector.
        d.observe(
            &log(
                120_100,
                "pay",
                Level::Error,
                "ledger write failed: disk quota 3 exceeded",
            ),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        for t in 121..140 {
            let msg = format!("retrying charge {t} against backup acquirer");
            d.observe(&log(t * 1000 + 50, "pay", Level::Warn, &msg), &mut out);
            normal(&mut d, &mut out, t, t + 1, &mut rng);
        }
        assert_eq!(out.len(), 1, "{out:?}");
        let f = &out[0];
        assert_eq!(f.kind, FindingKind::NewLogTemplate);
        assert_eq!(f.ts, Ts(121_050));
        assert!(
            f.summary.contains("new warn log template on pay"),
            "{}",
            f.summary
        );
        assert!(
            f.summary
                .contains("retrying charge <*> against backup acquirer"),
            "{}",
            f.summary
        );
        assert!(
            matches!(&f.evidence[0], Evidence::LogLine { line, .. } if line.contains("retrying charge 121"))
        );

        // With log_errors not reporting new messages, a new error template is reported here.
        let mut d = LogTemplates::new(&cfg(|c| c.log_errors.new_messages = false));
        let mut out = vec![];
        normal(&mut d, &mut out, 0, 120, &mut Rng(4));
        d.observe(
            &log(
                120_100,
                "pay",
                Level::Error,
                "ledger write failed: disk quota 3 exceeded",
            ),
            &mut out,
        );
        d.observe(
            &log(
                120_200,
                "pay",
                Level::Error,
                "ledger write failed: disk quota 4 exceeded",
            ),
            &mut out,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].summary.contains("new error log template"));
    }

    #[test]
    fn new_info_template_fires_only_when_it_repeats_a_lot() {
        let mut d = LogTemplates::new(&cfg(|c| c.log_templates.new_info_min_count = 20));
        let mut out = vec![];
        let mut rng = Rng(5);
        normal(&mut d, &mut out, 0, 120, &mut rng);
        // A handful of a new info shape: churn.
        for k in 0..5 {
            d.observe(
                &log(
                    120_000 + k,
                    "pay",
                    Level::Info,
                    &format!("rebalanced shard {k} to node b"),
                ),
                &mut out,
            );
        }
        normal(&mut d, &mut out, 120, 160, &mut rng);
        assert!(out.is_empty(), "{out:?}");
        // A new info shape that floods.
        for k in 0..30 {
            d.observe(
                &log(
                    160_000 + k * 10,
                    "pay",
                    Level::Info,
                    &format!("session {k} evicted from cache early"),
                ),
                &mut out,
            );
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0]
                .summary
                .contains("new info log template on pay (20 lines in 10s)"),
            "{}",
            out[0].summary
        );
    }

    #[test]
    fn spike_and_vanish_fire_once_each() {
        let mut d = LogTemplates::new(&cfg(|_| {}));
        let mut out = vec![];
        let mut rng = Rng(6);
        normal(&mut d, &mut out, 0, 200, &mut rng);
        assert!(out.is_empty());
        // The request template triples... no: rises tenfold for 60 s.
        for t in 200..260 {
            for k in 0..40 {
                let msg = format!("served GET /api/items/{k} in 5ms");
                d.observe(&log(t * 1000 + k, "pay", Level::Info, &msg), &mut out);
            }
            normal(&mut d, &mut out, t, t + 1, &mut rng);
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, FindingKind::LogTemplateRate);
        assert!(out[0].summary.contains("rate spike"), "{}", out[0].summary);
        assert!(
            out[0].summary.contains("served GET <*> in <*>"),
            "{}",
            out[0].summary
        );
        assert!(
            out[0]
                .evidence
                .iter()
                .filter(|e| matches!(e, Evidence::LogLine { .. }))
                .count()
                >= 1
        );
        assert_eq!(
            d.status(&sym("pay", FindingKind::LogTemplateRate), Ts(259_999)),
            Some(SymptomState::Anomalous)
        );
        normal(&mut d, &mut out, 260, 300, &mut rng);
        assert_eq!(out.len(), 1);
        assert_eq!(
            d.status(&sym("pay", FindingKind::LogTemplateRate), Ts(300_000)),
            Some(SymptomState::Clear)
        );
        // The cache refresh stops while requests go on: vanished, once.
        for t in 300..420 {
            for k in 0..4 {
                let msg = format!("served GET /api/items/{} in {}ms", rng.below(1000), k + 3);
                d.observe(&log(t * 1000 + k * 200, "pay", Level::Info, &msg), &mut out);
            }
            d.evaluate(Ts(t * 1000 + 999), &mut out);
        }
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[1].summary.contains("vanished"), "{}", out[1].summary);
        assert!(
            out[1].summary.contains("cache refreshed with <*> entries"),
            "{}",
            out[1].summary
        );
        assert!(out[1].ts <= Ts(350_000), "{:?}", out[1].ts);
    }

    #[test]
    fn silent_service_is_not_a_vanish_and_state_is_bounded() {
        let mut d = LogTemplates::new(&cfg(|c| c.log_templates.max_templates = 50));
        let mut out = vec![];
        normal(&mut d, &mut out, 0, 200, &mut Rng(7));
        for t in 200..600 {
            d.evaluate(Ts(t * 1000), &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        for k in 0..5000 {
            let msg = format!("{} {}", "w ".repeat(k % 90), k);
            d.observe(
                &log(600_000 + k as i64, "pay", Level::Debug, &msg),
                &mut out,
            );
        }
        assert!(
            d.footprint() <= 1 + 50 + 50 * (1 + EXAMPLES),
            "{}",
            d.footprint()
        );
        assert!(d.untracked() > 0);
    }

    #[test]
    fn known_templates_survive_a_restart_and_corrupt_state_is_refused() {
        let c = cfg(|_| {});
        let mut before = LogTemplates::new(&c);
        let mut out = vec![];
        let mut rng = Rng(5);
        normal(&mut before, &mut out, 0, 120, &mut rng);
        for t in 121..125 {
            let msg = format!("retrying charge {t} against backup acquirer");
            before.observe(&log(t * 1000 + 50, "pay", Level::Warn, &msg), &mut out);
        }
        assert_eq!(out.len(), 1, "the warn template is new once: {out:?}");
        let state = before.save_state().expect("log_templates keeps state");

        // A fresh detector (medic restarted) that got the state back is warm at once and
        // knows the template; a genuinely new one is still reported.
        let mut after = LogTemplates::new(&c);
        after.restore_state(&state, Ts(200_000)).expect("restore");
        let mut out = vec![];
        after.observe(
            &log(
                200_050,
                "pay",
                Level::Warn,
                "retrying charge 999 against backup acquirer",
            ),
            &mut out,
        );
        assert!(
            out.is_empty(),
            "known template reported as new after restart: {out:?}"
        );
        after.observe(
            &log(200_100, "pay", Level::Warn, "shard 7 rebalancing stalled"),
            &mut out,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].kind, FindingKind::NewLogTemplate);

        // Without the state, the restarted detector would still be warming up: nothing at all.
        let mut cold = LogTemplates::new(&c);
        let mut out = vec![];
        cold.observe(
            &log(200_100, "pay", Level::Warn, "shard 7 rebalancing stalled"),
            &mut out,
        );
        assert!(out.is_empty());

        for bad in [&b""[..], b"garbage", &state[..state.len() - 3]] {
            let mut d = LogTemplates::new(&c);
            assert!(
                d.restore_state(bad, Ts(0)).is_err(),
                "accepted {} bytes",
                bad.len()
            );
        }
        let mut flipped = state.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(
            LogTemplates::new(&c)
                .restore_state(&flipped, Ts(0))
                .is_err()
        );
    }
}
