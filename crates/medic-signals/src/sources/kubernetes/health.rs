//! The state of the API server connection as the watches see it: every failure is counted
//! (by reason) in `SourceStats`; a log line is written when a watch's state changes, not per
//! retry; while any watch fails, a `TargetDown` naming the API server and the error is
//! emitted at most every [`TARGET_DOWN_EVERY`], so the `target_down` detector and the status
//! page show it; when all are well again an `up` sample clears it.
//!
//! A watch that failed because the server was unreachable says nothing when its retry
//! succeeds (a resumed watch has no news), so recovery from `unreachable` is confirmed by a
//! probe (`GET /version`) on its own back-off.

use super::common::Out;
use super::watch::{Problem, Retry, classify, describe};
use crate::stats::{Counter, SourceStats};
use medic_core::{MetricSample, SignalPayload};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The `service` of the API server's signals; the instance is its URL.
pub(crate) const API_SERVICE: &str = "kube-apiserver";
const TARGET_DOWN_EVERY: Duration = Duration::from_secs(2);

pub(crate) struct Health {
    source: String,
    api: String,
    problems: BTreeMap<Arc<str>, (Problem, String)>,
    last_target_down: Option<Instant>,
    /// An `up` sample was emitted since the last failure (or since start).
    up_reported: bool,
    pub probe_at: Option<Instant>,
    probe_retry: Retry,
}

impl Health {
    pub(crate) fn new(source: &str, api: &str) -> Health {
        Health {
            source: source.to_string(),
            api: api.to_string(),
            problems: BTreeMap::new(),
            last_target_down: None,
            up_reported: false,
            probe_at: None,
            probe_retry: Retry::new(),
        }
    }

    pub(crate) fn set_api(&mut self, api: &str) {
        self.api = api.to_string();
    }

    #[cfg(test)]
    pub(crate) fn is_failing(&self) -> bool {
        !self.problems.is_empty()
    }

    /// A failure of `watch` (or of connecting: `watch` = `connect`).
    pub(crate) fn failed(
        &mut self,
        watch: &Arc<str>,
        problem: Problem,
        error: String,
        stats: &SourceStats,
        out: &mut Out,
    ) {
        stats.incr(match problem {
            Problem::Unreachable => Counter::KubeApiUnreachable,
            Problem::Forbidden => Counter::KubeApiForbidden,
            Problem::WatchError => Counter::KubeWatchError,
        });
        let changed = self.problems.get(watch).map(|(p, _)| *p) != Some(problem);
        if changed {
            tracing::warn!(source = %self.source, api = %self.api, %watch, problem = problem.as_str(), %error,
                "kubernetes watch failing; retrying with back-off");
        } else {
            tracing::debug!(source = %self.source, %watch, %error, "kubernetes watch still failing");
        }
        self.problems
            .insert(watch.clone(), (problem, error.clone()));
        self.up_reported = false;
        if problem == Problem::Unreachable && self.probe_at.is_none() {
            self.probe_at = self.probe_retry.next().map(|d| Instant::now() + d);
        }
        self.target_down(watch, problem, &error, out);
    }

    /// A `TargetDown` naming the API server and the error, at most every [`TARGET_DOWN_EVERY`].
    fn target_down(&mut self, what: &str, problem: Problem, error: &str, out: &mut Out) {
        let now = Instant::now();
        if self
            .last_target_down
            .is_some_and(|t| now.duration_since(t) < TARGET_DOWN_EVERY)
        {
            return;
        }
        self.last_target_down = Some(now);
        let error = format!("{}: {what} {}: {error}", self.api, problem.as_str());
        let ts = out.now;
        let api = self.api.clone();
        out.push(
            ts,
            API_SERVICE,
            Some(&api),
            SignalPayload::TargetDown { error },
        );
    }

    pub(crate) fn watch_error(
        &mut self,
        watch: &Arc<str>,
        e: &kube::runtime::watcher::Error,
        stats: &SourceStats,
        out: &mut Out,
    ) {
        self.failed(watch, classify(e), describe(e), stats, out);
    }

    /// `watch` delivered something: it works.
    pub(crate) fn ok(&mut self, watch: &Arc<str>, out: &mut Out) {
        if self.problems.remove(watch).is_some() {
            tracing::info!(source = %self.source, %watch, "kubernetes watch recovered");
        }
        self.maybe_up(out);
    }

    /// The probe reached the server: watches that failed to reach it are assumed to have
    /// resumed (their next failure would say otherwise).
    pub(crate) fn probe_ok(&mut self, out: &mut Out) {
        self.probe_at = None;
        self.probe_retry = Retry::new();
        let before = self.problems.len();
        self.problems.retain(|_, (p, _)| *p != Problem::Unreachable);
        if self.problems.len() != before {
            tracing::info!(source = %self.source, api = %self.api, "kubernetes API server reachable again");
        }
        self.maybe_up(out);
    }

    pub(crate) fn probe_failed(&mut self, error: String, stats: &SourceStats, out: &mut Out) {
        self.probe_at = self.probe_retry.next().map(|d| Instant::now() + d);
        stats.incr(Counter::KubeApiUnreachable);
        tracing::debug!(source = %self.source, %error, "kubernetes API server probe failed");
        self.target_down("probe", Problem::Unreachable, &error, out);
    }

    fn maybe_up(&mut self, out: &mut Out) {
        if self.problems.is_empty() && !self.up_reported {
            self.up_reported = true;
            self.probe_at = None;
            let sample = MetricSample {
                name: "up".into(),
                labels: [("job".to_string(), API_SERVICE.to_string())].into(),
                value: 1.0,
            };
            let ts = out.now;
            let api = self.api.clone();
            out.push(
                ts,
                API_SERVICE,
                Some(&api),
                SignalPayload::Metrics {
                    samples: vec![sample],
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::Ts;

    fn kinds(out: &Out) -> Vec<&'static str> {
        out.signals
            .iter()
            .map(|s| match &s.payload {
                SignalPayload::TargetDown { .. } => "down",
                SignalPayload::Metrics { .. } => "up",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn down_throttled_then_up_once() {
        let stats = SourceStats::new();
        let mut h = Health::new("k8s", "https://127.0.0.1:1");
        let mut out = Out::new("k8s", Ts(1));
        let pods: Arc<str> = "pods".into();
        let nodes: Arc<str> = "nodes".into();
        h.ok(&pods, &mut out);
        h.failed(
            &pods,
            Problem::Unreachable,
            "refused".into(),
            &stats,
            &mut out,
        );
        h.failed(
            &nodes,
            Problem::Unreachable,
            "refused".into(),
            &stats,
            &mut out,
        );
        assert!(h.is_failing() && h.probe_at.is_some());
        // As if TARGET_DOWN_EVERY had passed.
        h.last_target_down = None;
        h.failed(
            &pods,
            Problem::Unreachable,
            "refused".into(),
            &stats,
            &mut out,
        );
        // A watch that works again does not clear the others.
        h.ok(&nodes, &mut out);
        assert_eq!(kinds(&out), vec!["up", "down", "down"]);
        h.probe_ok(&mut out);
        h.probe_ok(&mut out);
        assert!(!h.is_failing());
        assert_eq!(kinds(&out), vec!["up", "down", "down", "up"]);
        assert_eq!(stats.get(Counter::KubeApiUnreachable), 3);
        let SignalPayload::TargetDown { error } = &out.signals[1].payload else {
            panic!("expected target down");
        };
        assert_eq!(error, "https://127.0.0.1:1: pods unreachable: refused");
        assert_eq!(out.signals[1].service.as_deref(), Some(API_SERVICE));
        // Forbidden is not cleared by the probe, only by the watch itself.
        h.failed(&pods, Problem::Forbidden, "403".into(), &stats, &mut out);
        h.probe_ok(&mut out);
        assert!(h.is_failing());
        h.ok(&pods, &mut out);
        assert!(!h.is_failing());
    }
}
