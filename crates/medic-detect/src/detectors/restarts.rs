//! `restarts`: unexpected process exits (ProcessExit, or OomKilled when the supervisor killed
//! it for memory) and crash loops (several unexpected exits of one service in a window).

use crate::bounded::BoundedMap;
use crate::detectors::MAX_SERVICES;
use crate::{Detector, finding_id, fmt_secs, secs_between};
use medic_config::{DetectorsConfig, RestartsConfig};
use medic_core::{
    Evidence, Finding, FindingKind, ProcessEvent, ProcessEventKind, Signal, SignalPayload, Symptom,
    SymptomState, Ts,
};
use std::collections::VecDeque;

const NAME: &str = "restarts";
/// Most exits remembered per service; a crash loop needs far fewer to be seen.
const MAX_EXITS: usize = 64;
/// Most down instances remembered per service.
const MAX_DOWN: usize = 64;
/// How many exits are quoted in a crash-loop finding.
const QUOTED_EXITS: usize = 3;

pub struct Restarts {
    cfg: RestartsConfig,
    services: BoundedMap<Service>,
}

#[derive(Debug, Clone)]
struct Exit {
    ts: Ts,
    oom: bool,
    description: String,
}

#[derive(Debug)]
struct Service {
    exits: VecDeque<Exit>,
    /// Instances that exited unexpectedly and have not started since: (exit time, was OOM).
    down: BoundedMap<(Ts, bool)>,
    exit_episode: bool,
    oom_episode: bool,
    loop_episode: bool,
}

impl Service {
    fn new() -> Self {
        Service {
            exits: VecDeque::new(),
            down: BoundedMap::new(MAX_DOWN),
            exit_episode: false,
            oom_episode: false,
            loop_episode: false,
        }
    }

    fn last_exit(&self, oom_only: bool) -> Option<Ts> {
        self.exits
            .iter()
            .filter(|e| !oom_only || e.oom)
            .map(|e| e.ts)
            .max()
    }

    /// Anomalous until `clear_after` has passed since the last relevant exit and every
    /// instance that exited has started again.
    fn state(&self, cfg: &RestartsConfig, kind: FindingKind, now: Ts) -> SymptomState {
        let oom_only = kind == FindingKind::OomKilled;
        if kind == FindingKind::CrashLoop && !self.loop_episode {
            return SymptomState::Clear;
        }
        let still_down = self.down.values().any(|(_, oom)| !oom_only || *oom);
        let recent = self
            .last_exit(oom_only)
            .is_some_and(|last| secs_between(now, last) < cfg.clear_after.as_secs_f64());
        if recent || still_down {
            SymptomState::Anomalous
        } else {
            SymptomState::Clear
        }
    }

    fn exits_within(&self, cfg: &RestartsConfig, now: Ts) -> usize {
        let w = cfg.crash_loop_window.as_secs_f64();
        self.exits
            .iter()
            .filter(|e| secs_between(now, e.ts) <= w && e.ts <= now)
            .count()
    }
}

fn describe_exit(instance: &str, ev: &ProcessEvent) -> String {
    let mut d = format!("{instance} exited unexpectedly");
    let mut parts = vec![];
    if !ev.reason.is_empty() {
        parts.push(format!("reason {}", ev.reason));
    }
    if let Some(c) = ev.exit_code {
        parts.push(format!("exit code {c}"));
    }
    if let Some(s) = ev.signal {
        parts.push(format!("signal {s}"));
    }
    if let Some(v) = &ev.version {
        parts.push(format!("release {v}"));
    }
    if let Some(c) = &ev.config_version {
        parts.push(format!("config {c}"));
    }
    if !parts.is_empty() {
        d.push_str(&format!(" ({})", parts.join(", ")));
    }
    d
}

impl Restarts {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        Restarts {
            cfg: cfg.restarts.clone(),
            services: BoundedMap::new(MAX_SERVICES),
        }
    }
}

fn count_metric(service: &str, ts: Ts, count: usize) -> Evidence {
    // There is no learned baseline of exits: a healthy service does not exit unasked.
    Evidence::Metric {
        ts,
        service: service.to_string(),
        name: "unexpected_exits".into(),
        value: count as f64,
        baseline: None,
        unit: String::new(),
    }
}

impl Detector for Restarts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn observe(&mut self, s: &Signal, out: &mut Vec<Finding>) {
        let (SignalPayload::Process(ev), Some(service)) = (&s.payload, &s.service) else {
            return;
        };
        let cfg = &self.cfg;
        let instance = s.instance.as_deref().unwrap_or("");
        let svc = self.services.touch(service, Service::new);
        if ev.kind == ProcessEventKind::Started {
            if svc
                .down
                .get(instance)
                .is_some_and(|(exit, _)| *exit <= s.ts)
            {
                svc.down.remove(instance);
            }
            return;
        }
        if !ev.is_unexpected_exit() {
            // Stopped by its orchestrator (a pod deleted, a replica scaled away): it will
            // not start again, and that is not a failure.
            svc.down.remove(instance);
            return;
        }
        let oom = ev.reason == "OOMKilled";
        let exit = Exit {
            ts: s.ts,
            oom,
            description: describe_exit(instance, ev),
        };
        svc.exits.push_back(exit.clone());
        while svc.exits.len() > MAX_EXITS {
            svc.exits.pop_front();
        }
        *svc.down.touch(instance, || (s.ts, oom)) = (s.ts, oom);
        let count = svc.exits_within(cfg, s.ts);
        let event = Evidence::Event {
            ts: s.ts,
            service: service.clone(),
            description: exit.description.clone(),
        };
        let mut emit = |kind: FindingKind, score: f64, summary: String, evidence: Vec<Evidence>| {
            out.push(Finding {
                id: finding_id(NAME, service, s.ts, kind, Some(instance)),
                ts: s.ts,
                service: service.clone(),
                instance: Some(instance.to_string()).filter(|i| !i.is_empty()),
                kind,
                detector: NAME.into(),
                score,
                summary,
                evidence,
            });
        };
        let (kind, active) = if oom {
            (FindingKind::OomKilled, &mut svc.oom_episode)
        } else {
            (FindingKind::ProcessExit, &mut svc.exit_episode)
        };
        if !*active {
            *active = true;
            let (what, score) = if oom {
                ("was killed for exceeding its memory limit", 0.8)
            } else {
                ("exited unexpectedly", 0.6)
            };
            let who = if instance.is_empty() {
                service.as_str()
            } else {
                instance
            };
            emit(
                kind,
                score,
                format!(
                    "{who} {what} on {service} ({count} unexpected exits in {})",
                    fmt_secs(cfg.crash_loop_window)
                ),
                vec![event.clone(), count_metric(service, s.ts, count)],
            );
        }
        if !svc.loop_episode && count >= cfg.crash_loop_count.max(1) as usize {
            svc.loop_episode = true;
            let mut evidence: Vec<Evidence> = svc
                .exits
                .iter()
                .rev()
                .take(QUOTED_EXITS)
                .map(|e| Evidence::Event {
                    ts: e.ts,
                    service: service.clone(),
                    description: e.description.clone(),
                })
                .collect();
            evidence.push(count_metric(service, s.ts, count));
            emit(
                FindingKind::CrashLoop,
                0.9,
                format!(
                    "{service} is crash-looping: {count} unexpected exits in {} (last: {})",
                    fmt_secs(cfg.crash_loop_window),
                    exit.description
                ),
                evidence,
            );
        }
    }

    fn evaluate(&mut self, now: Ts, _out: &mut Vec<Finding>) {
        let cfg = &self.cfg;
        let keep = cfg.crash_loop_window.max(cfg.clear_after).as_secs_f64();
        for (_, svc) in self.services.iter_mut() {
            // Episodes end once their symptom is clear; `clear_after` is the hysteresis.
            if svc.exit_episode
                && svc.state(cfg, FindingKind::ProcessExit, now) == SymptomState::Clear
            {
                svc.exit_episode = false;
            }
            if svc.oom_episode && svc.state(cfg, FindingKind::OomKilled, now) == SymptomState::Clear
            {
                svc.oom_episode = false;
            }
            if svc.loop_episode
                && svc.state(cfg, FindingKind::ProcessExit, now) == SymptomState::Clear
                && svc.exits_within(cfg, now) < cfg.crash_loop_count.max(1) as usize
            {
                svc.loop_episode = false;
            }
            // Exits older than any window that reads them only cost memory.
            while svc.exits.len() > 1
                && svc
                    .exits
                    .front()
                    .is_some_and(|e| secs_between(now, e.ts) > keep)
            {
                svc.exits.pop_front();
            }
        }
    }

    fn status(&self, symptom: &Symptom, now: Ts) -> Option<SymptomState> {
        if !matches!(
            symptom.kind,
            FindingKind::ProcessExit | FindingKind::OomKilled | FindingKind::CrashLoop
        ) {
            return None;
        }
        Some(match self.services.get(&symptom.service) {
            Some(svc) => svc.state(&self.cfg, symptom.kind, now),
            None => SymptomState::Unknown,
        })
    }

    fn describe(&self, symptom: &Symptom, now: Ts) -> Option<Evidence> {
        if !matches!(
            symptom.kind,
            FindingKind::ProcessExit | FindingKind::OomKilled | FindingKind::CrashLoop
        ) {
            return None;
        }
        let svc = self.services.get(&symptom.service)?;
        Some(count_metric(
            &symptom.service,
            now,
            svc.exits_within(&self.cfg, now),
        ))
    }

    fn footprint(&self) -> usize {
        self.services
            .values()
            .map(|s| 1 + s.exits.len() + s.down.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn exit(t: i64, inst: &str, reason: &str) -> Signal {
        process(t, "db", inst, ProcessEventKind::Exited, reason)
    }
    fn start(t: i64, inst: &str) -> Signal {
        process(t, "db", inst, ProcessEventKind::Started, "")
    }
    fn st(d: &Restarts, kind: FindingKind, t: i64) -> Option<SymptomState> {
        d.status(&sym("db", kind), Ts(t))
    }

    /// Regression (Kubernetes): a crash-looping pod that its controller deleted and replaced
    /// never starts again under its name; it must not keep the workload "down" forever.
    #[test]
    fn a_crashed_instance_that_is_stopped_for_good_clears() {
        let mut d = Restarts::new(&DetectorsConfig::default());
        let mut out = vec![];
        d.observe(&start(0, "db-a"), &mut out);
        d.observe(&exit(1_000, "db-a", "Error"), &mut out);
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 60_000),
            Some(SymptomState::Anomalous),
            "still down: it has not started again"
        );
        d.observe(&exit(61_000, "db-a", "Stopped"), &mut out);
        d.observe(&start(61_500, "db-b"), &mut out);
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 120_000),
            Some(SymptomState::Clear)
        );
    }

    #[test]
    fn single_crash_then_restart_clears() {
        let mut d = Restarts::new(&DetectorsConfig::default());
        let mut out = vec![];
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 0),
            Some(SymptomState::Unknown)
        );
        d.observe(&start(0, "db-0"), &mut out);
        d.observe(&exit(1_000, "db-0", "Stopped"), &mut out);
        assert!(out.is_empty(), "a requested stop is not a failure");
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 1_000),
            Some(SymptomState::Clear)
        );
        d.observe(&exit(10_000, "db-0", "Error"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, FindingKind::ProcessExit);
        assert!(
            out[0].summary.contains("db-0 exited unexpectedly"),
            "{}",
            out[0].summary
        );
        let Evidence::Event { description, .. } = &out[0].evidence[0] else {
            panic!("no event evidence");
        };
        assert!(
            description.contains("reason Error") && description.contains("release v1"),
            "{description}"
        );
        d.observe(&start(11_000, "db-0"), &mut out);
        d.evaluate(Ts(12_000), &mut out);
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 12_000),
            Some(SymptomState::Anomalous)
        );
        d.evaluate(Ts(18_001), &mut out);
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 18_001),
            Some(SymptomState::Clear)
        );
        assert_eq!(
            st(&d, FindingKind::CrashLoop, 18_001),
            Some(SymptomState::Clear)
        );
        assert_eq!(out.len(), 1);
        // Much later, another crash is a new episode (and, alone in its window, no loop).
        d.observe(&exit(100_000, "db-0", "Error"), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn instance_that_stays_down_stays_anomalous() {
        let mut d = Restarts::new(&DetectorsConfig::default());
        let mut out = vec![];
        d.observe(&exit(1_000, "db-0", "Error"), &mut out);
        d.evaluate(Ts(60_000), &mut out);
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 60_000),
            Some(SymptomState::Anomalous)
        );
        // A stale Started (before the exit) does not count.
        d.observe(&start(500, "db-0"), &mut out);
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 60_000),
            Some(SymptomState::Anomalous)
        );
        d.observe(&start(61_000, "db-0"), &mut out);
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 61_000),
            Some(SymptomState::Clear)
        );
    }

    #[test]
    fn oom_and_crash_loop() {
        let mut d = Restarts::new(&DetectorsConfig::default());
        let mut out = vec![];
        d.observe(&exit(1_000, "db-0", "OOMKilled"), &mut out);
        assert_eq!(
            out.iter().map(|f| f.kind).collect::<Vec<_>>(),
            vec![FindingKind::OomKilled]
        );
        assert_eq!(
            st(&d, FindingKind::OomKilled, 2_000),
            Some(SymptomState::Anomalous)
        );
        assert_eq!(
            st(&d, FindingKind::ProcessExit, 2_000),
            Some(SymptomState::Anomalous)
        );
        d.observe(&start(2_000, "db-0"), &mut out);
        d.observe(&exit(5_000, "db-0", "OOMKilled"), &mut out);
        assert_eq!(
            out.iter().map(|f| f.kind).collect::<Vec<_>>(),
            vec![FindingKind::OomKilled, FindingKind::CrashLoop]
        );
        assert_ne!(out[0].id, out[1].id);
        assert_eq!(
            st(&d, FindingKind::CrashLoop, 6_000),
            Some(SymptomState::Anomalous)
        );
        for t in [7_000, 9_000, 11_000] {
            d.observe(&start(t - 500, "db-0"), &mut out);
            d.observe(&exit(t, "db-0", "Error"), &mut out);
            d.evaluate(Ts(t), &mut out);
        }
        // One ProcessExit for the first non-OOM exit; no repeats of the loop.
        assert_eq!(out.len(), 3, "{out:?}");
        d.observe(&start(12_000, "db-0"), &mut out);
        d.evaluate(Ts(30_000), &mut out);
        for k in [
            FindingKind::CrashLoop,
            FindingKind::OomKilled,
            FindingKind::ProcessExit,
        ] {
            assert_eq!(st(&d, k, 30_000), Some(SymptomState::Clear), "{k:?}");
        }
        assert!(matches!(
            d.describe(&sym("db", FindingKind::CrashLoop), Ts(30_000)),
            Some(Evidence::Metric { value, .. }) if value == 5.0
        ));
    }

    #[test]
    fn exits_are_bounded() {
        let mut d = Restarts::new(&DetectorsConfig::default());
        let mut out = vec![];
        for i in 0..10_000 {
            d.observe(&exit(i, &format!("db-{i}"), "Error"), &mut out);
        }
        assert!(d.footprint() <= 1 + MAX_EXITS + MAX_DOWN);
        assert_eq!(out.len(), 2);
    }
}
