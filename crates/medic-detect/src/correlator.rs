//! The correlator: which incident a finding belongs to, by time and by distance in the
//! service dependency graph.

use medic_config::CorrelationConfig;
use medic_core::{Finding, Topology, Ts};
use std::collections::BTreeSet;
use std::time::Duration;

/// What the correlator needs to know of an incident, borrowed (built for every finding).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IncidentView<'a> {
    pub id: &'a str,
    pub services: &'a BTreeSet<String>,
    pub last_finding: Ts,
    /// `None` while active.
    pub closed_at: Option<Ts>,
    /// Its findings: a closed incident's aftermath is more of the same (service and kind),
    /// while a new kind of symptom is a new problem.
    pub findings: &'a [Finding],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assignment {
    /// Add the finding to this incident.
    Join(String),
    /// Open a new incident for it.
    Open,
}

pub struct Correlator {
    window_ms: i64,
    max_hops: usize,
    quiet_ms: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Correlator {
    pub fn new(cfg: &CorrelationConfig) -> Self {
        Correlator {
            window_ms: millis(cfg.window),
            max_hops: cfg.max_hops,
            quiet_ms: millis(cfg.quiet_after_close),
        }
    }

    /// Which incident a finding belongs to: an active incident with a service within
    /// `max_hops` whose last finding is at most `window` earlier, or a recently closed
    /// incident that had this kind of finding on this service (aftermath). The nearest, then most recent, wins; an
    /// active incident wins over a closed one at equal distance.
    pub fn assign(
        &self,
        finding: &Finding,
        incidents: &[IncidentView<'_>],
        topology: &Topology,
    ) -> Assignment {
        // (distance, closed, -recency, id): the smallest key wins.
        let mut best: Option<(usize, bool, i64, &str)> = None;
        for inc in incidents {
            let candidate = match inc.closed_at {
                None => {
                    if finding.ts.0.saturating_sub(inc.last_finding.0) > self.window_ms {
                        continue;
                    }
                    let Some(d) = self.distance(&finding.service, inc.services, topology) else {
                        continue;
                    };
                    (d, false, inc.last_finding.0.saturating_neg(), inc.id)
                }
                Some(closed) => {
                    // Detectors report a lasting anomaly once: a new problem whose first
                    // findings were swallowed as aftermath would never open an incident.
                    if finding.ts.0.saturating_sub(closed.0) >= self.quiet_ms
                        || !inc
                            .findings
                            .iter()
                            .any(|f| f.kind == finding.kind && f.service == finding.service)
                    {
                        continue;
                    }
                    (0, true, closed.0.saturating_neg(), inc.id)
                }
            };
            if best.is_none_or(|b| candidate < b) {
                best = Some(candidate);
            }
        }
        match best {
            Some((_, _, _, id)) => Assignment::Join(id.to_string()),
            None => Assignment::Open,
        }
    }

    /// Hops from `service` to the nearest of `services`, if within `max_hops`. Services not in
    /// the topology are only near themselves.
    fn distance(
        &self,
        service: &str,
        services: &BTreeSet<String>,
        topology: &Topology,
    ) -> Option<usize> {
        if services.contains(service) {
            return Some(0);
        }
        if !topology.contains(service) {
            return None;
        }
        services
            .iter()
            .filter(|s| topology.contains(s))
            .filter_map(|s| topology.distance(service, s))
            .filter(|d| *d <= self.max_hops)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::FindingKind;

    fn topo() -> Topology {
        let mut t = Topology::default();
        t.add_edge("web", "orders");
        t.add_edge("orders", "billing");
        t.add_edge("web", "search");
        t.add_edge("search", "index");
        t
    }

    fn finding(service: &str, ts: i64) -> Finding {
        Finding {
            id: "f".into(),
            ts: Ts(ts),
            service: service.into(),
            instance: None,
            kind: FindingKind::ErrorRate,
            detector: "test".into(),
            score: 0.5,
            summary: String::new(),
            evidence: vec![],
        }
    }

    /// An incident's parts, owned (the views borrow them); one error-rate finding per service.
    struct Inc {
        id: String,
        services: BTreeSet<String>,
        last: i64,
        closed: Option<i64>,
        findings: Vec<Finding>,
    }

    fn incident(id: &str, services: &[&str], last: i64, closed: Option<i64>) -> Inc {
        Inc {
            id: id.into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            last,
            closed,
            findings: services.iter().map(|s| finding(s, last)).collect(),
        }
    }

    fn views(incs: &[Inc]) -> Vec<IncidentView<'_>> {
        incs.iter()
            .map(|i| IncidentView {
                id: &i.id,
                services: &i.services,
                last_finding: Ts(i.last),
                closed_at: i.closed.map(Ts),
                findings: &i.findings,
            })
            .collect()
    }

    fn c() -> Correlator {
        // window 60 s, max_hops 2, quiet 15 s
        Correlator::new(&CorrelationConfig::default())
    }

    fn join(id: &str) -> Assignment {
        Assignment::Join(id.into())
    }

    #[test]
    fn same_service_joins() {
        let incs = [incident("a", &["billing"], 10_000, None)];
        assert_eq!(
            c().assign(&finding("billing", 20_000), &views(&incs), &topo()),
            join("a")
        );
    }

    #[test]
    fn neighbour_joins_far_service_opens() {
        let incs = [incident("a", &["billing"], 10_000, None)];
        assert_eq!(
            c().assign(&finding("web", 20_000), &views(&incs), &topo()),
            join("a")
        );
        // index → search → web → orders → billing: 4 hops.
        assert_eq!(
            c().assign(&finding("index", 20_000), &views(&incs), &topo()),
            Assignment::Open
        );
    }

    #[test]
    fn outside_window_opens() {
        let incs = [incident("a", &["billing"], 10_000, None)];
        assert_eq!(
            c().assign(&finding("billing", 70_000), &views(&incs), &topo()),
            join("a")
        );
        assert_eq!(
            c().assign(&finding("billing", 70_001), &views(&incs), &topo()),
            Assignment::Open
        );
    }

    #[test]
    fn aftermath_joins_closed_incident_on_same_service_only() {
        let incs = [incident("old", &["billing"], 10_000, Some(30_000))];
        assert_eq!(
            c().assign(&finding("billing", 40_000), &views(&incs), &topo()),
            join("old")
        );
        assert_eq!(
            c().assign(&finding("orders", 40_000), &views(&incs), &topo()),
            Assignment::Open
        );
        assert_eq!(
            c().assign(&finding("billing", 45_000), &views(&incs), &topo()),
            Assignment::Open
        );
        // A new kind of symptom on the same service, right after the close: a new problem.
        let mut surge = finding("billing", 40_000);
        surge.kind = FindingKind::TrafficSurge;
        assert_eq!(c().assign(&surge, &views(&incs), &topo()), Assignment::Open);
    }

    #[test]
    fn nearest_then_most_recent_wins() {
        let incs = [
            incident("near-old", &["orders"], 10_000, None),
            incident("far", &["web"], 50_000, None),
            incident("near-new", &["orders", "index"], 40_000, None),
        ];
        assert_eq!(
            c().assign(&finding("billing", 55_000), &views(&incs), &topo()),
            join("near-new")
        );
        let incs = [
            incident("closed", &["billing"], 10_000, Some(50_000)),
            incident("active", &["billing"], 20_000, None),
        ];
        assert_eq!(
            c().assign(&finding("billing", 55_000), &views(&incs), &topo()),
            join("active")
        );
    }

    #[test]
    fn services_outside_topology_join_only_themselves() {
        let incs = [
            incident("a", &["batch"], 10_000, None),
            incident("b", &["web"], 10_000, None),
        ];
        assert_eq!(
            c().assign(&finding("batch", 20_000), &views(&incs), &topo()),
            join("a")
        );
        assert_eq!(
            c().assign(&finding("cron", 20_000), &views(&incs), &topo()),
            Assignment::Open
        );
        assert_eq!(
            c().assign(&finding("web", 20_000), &views(&incs[..1]), &topo()),
            Assignment::Open
        );
        assert_eq!(
            c().assign(&finding("web", 20_000), &[], &topo()),
            Assignment::Open
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let incs = [
            incident("a", &["web"], i64::MIN, None),
            incident("b", &["web"], 0, Some(i64::MIN)),
        ];
        assert_eq!(
            c().assign(&finding("web", i64::MAX), &views(&incs), &topo()),
            Assignment::Open
        );
    }
}
