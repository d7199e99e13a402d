//! The estate's service dependency graph: who calls whom — configured, and learned from what
//! the estate shows ([`LiveTopology`]).

use crate::signal::LearnedEdge;
use crate::time::Ts;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// service → the services it calls.
    pub depends_on: BTreeMap<String, BTreeSet<String>>,
}

impl Topology {
    pub fn add_service(&mut self, s: &str) {
        self.depends_on.entry(s.to_string()).or_default();
    }

    pub fn add_edge(&mut self, caller: &str, callee: &str) {
        self.add_service(callee);
        self.depends_on
            .entry(caller.to_string())
            .or_default()
            .insert(callee.to_string());
    }

    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.depends_on.keys().map(String::as_str)
    }

    pub fn contains(&self, s: &str) -> bool {
        self.depends_on.contains_key(s)
    }

    /// Direct dependencies of `s`.
    pub fn dependencies(&self, s: &str) -> impl Iterator<Item = &str> {
        self.depends_on
            .get(s)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Services that call `s` directly.
    pub fn dependents<'a>(&'a self, s: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.depends_on
            .iter()
            .filter(move |(_, deps)| deps.contains(s))
            .map(|(k, _)| k.as_str())
    }

    /// Whether `a` reaches `b` by following calls (a → ... → b). A service reaches itself.
    pub fn reaches(&self, a: &str, b: &str) -> bool {
        self.hops(a, b, true).is_some()
    }

    /// Undirected distance in hops between two services, if connected.
    pub fn distance(&self, a: &str, b: &str) -> Option<usize> {
        self.hops(a, b, false)
    }

    fn hops(&self, a: &str, b: &str, directed: bool) -> Option<usize> {
        if a == b {
            return Some(0);
        }
        let mut seen = BTreeSet::from([a.to_string()]);
        let mut queue = VecDeque::from([(a.to_string(), 0usize)]);
        while let Some((s, d)) = queue.pop_front() {
            let mut next: Vec<String> = self.dependencies(&s).map(str::to_string).collect();
            if !directed {
                next.extend(self.dependents(&s).map(str::to_string));
            }
            for n in next {
                if n == b {
                    return Some(d + 1);
                }
                if seen.insert(n.clone()) {
                    queue.push_back((n, d + 1));
                }
            }
        }
        None
    }
}

/// Where an edge of the live graph comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeOrigin {
    /// `config`, or the name of the source that learned it.
    pub source: String,
    /// How it was learned (empty for configured edges).
    pub evidence: String,
    /// When the source last said so (None for configured edges).
    pub seen: Option<Ts>,
}

/// One edge of the live graph with every origin that vouches for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeReport {
    pub caller: String,
    pub callee: String,
    pub origins: Vec<EdgeOrigin>,
}

/// The graph the agent reasons with: the configured edges, which always stay, plus each
/// source's latest view of who calls whom. A source's view replaces its previous one whole;
/// one that has not been repeated for `ttl` (the source stopped, or lost the cluster for that
/// long) is dropped.
#[derive(Clone, Debug)]
pub struct LiveTopology {
    configured: Topology,
    learned: BTreeMap<String, (Ts, Vec<LearnedEdge>)>,
    ttl_ms: i64,
    graph: Topology,
}

impl LiveTopology {
    pub fn new(configured: Topology, ttl: std::time::Duration) -> LiveTopology {
        LiveTopology {
            graph: configured.clone(),
            configured,
            learned: BTreeMap::new(),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The merged graph.
    pub fn graph(&self) -> &Topology {
        &self.graph
    }

    /// `source` now sees `edges` (its whole view). True when the graph changed.
    pub fn observe(&mut self, source: &str, at: Ts, edges: Vec<LearnedEdge>) -> bool {
        self.learned.insert(source.to_string(), (at, edges));
        self.rebuild()
    }

    /// Drops views not repeated within the ttl. True when the graph changed.
    pub fn expire(&mut self, now: Ts) -> bool {
        let before = self.learned.len();
        let ttl = self.ttl_ms;
        self.learned
            .retain(|_, (at, _)| now.0.saturating_sub(at.0) <= ttl);
        before != self.learned.len() && self.rebuild()
    }

    fn rebuild(&mut self) -> bool {
        let mut g = self.configured.clone();
        for (_, edges) in self.learned.values() {
            for e in edges {
                // A self-call says nothing about dependencies between services.
                if e.caller != e.callee && !e.caller.is_empty() && !e.callee.is_empty() {
                    g.add_edge(&e.caller, &e.callee);
                }
            }
        }
        let changed = g != self.graph;
        self.graph = g;
        changed
    }

    /// Every edge with where it comes from: configured ones first among its origins.
    pub fn report(&self) -> Vec<EdgeReport> {
        let mut out: BTreeMap<(String, String), Vec<EdgeOrigin>> = BTreeMap::new();
        for (caller, callees) in &self.configured.depends_on {
            for callee in callees {
                out.entry((caller.clone(), callee.clone()))
                    .or_default()
                    .push(EdgeOrigin {
                        source: "config".into(),
                        evidence: String::new(),
                        seen: None,
                    });
            }
        }
        for (source, (at, edges)) in &self.learned {
            for e in edges {
                if self.graph.dependencies(&e.caller).any(|c| c == e.callee) {
                    out.entry((e.caller.clone(), e.callee.clone()))
                        .or_default()
                        .push(EdgeOrigin {
                            source: source.clone(),
                            evidence: e.evidence.clone(),
                            seen: Some(*at),
                        });
                }
            }
        }
        out.into_iter()
            .map(|((caller, callee), origins)| EdgeReport {
                caller,
                callee,
                origins,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(a: &str, b: &str) -> LearnedEdge {
        LearnedEdge {
            caller: a.into(),
            callee: b.into(),
            evidence: format!("{a} names {b}"),
        }
    }

    #[test]
    fn learned_views_replace_merge_and_expire_while_configured_edges_stay() {
        let mut configured = Topology::default();
        configured.add_edge("web", "api");
        let mut t = LiveTopology::new(configured, std::time::Duration::from_secs(600));
        assert!(t.observe("k8s", Ts(0), vec![edge("web", "api"), edge("api", "db")]));
        assert!(t.graph().reaches("web", "db"));
        let r = t.report();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].origins.len(), 2, "configured and learned: {r:?}");
        assert_eq!(r[1].origins[0].source, "config");
        // The same view again changes nothing; a new view replaces the old whole.
        assert!(!t.observe("k8s", Ts(1000), vec![edge("web", "api"), edge("api", "db")]));
        assert!(t.observe("k8s", Ts(2000), vec![edge("api", "cache"), edge("x", "x")]));
        assert!(!t.graph().reaches("api", "db"));
        assert!(t.graph().reaches("web", "cache"));
        assert!(
            !t.graph().depends_on.contains_key("x"),
            "self-calls are dropped"
        );
        // Not repeated within the ttl: gone; the configured edge stays.
        assert!(!t.expire(Ts(2000 + 600_000)));
        assert!(t.expire(Ts(2001 + 600_000)));
        assert!(!t.graph().reaches("web", "cache"));
        assert!(t.graph().reaches("web", "api"));
    }

    fn demo() -> Topology {
        let mut t = Topology::default();
        t.add_edge("frontend", "checkout");
        t.add_edge("checkout", "payment");
        t.add_edge("frontend", "catalog");
        t.add_edge("catalog", "cache");
        t
    }

    #[test]
    fn reachability_follows_calls() {
        let t = demo();
        assert!(t.reaches("frontend", "cache"));
        assert!(!t.reaches("cache", "frontend"));
        assert_eq!(t.distance("cache", "payment"), Some(4));
        assert_eq!(t.distance("cache", "nowhere"), None);
        assert_eq!(t.dependents("cache").collect::<Vec<_>>(), vec!["catalog"]);
    }
}
