//! The estate's service dependency graph: who calls whom.

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

#[cfg(test)]
mod tests {
    use super::*;

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
