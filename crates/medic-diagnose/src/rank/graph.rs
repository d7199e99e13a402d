//! The call graph as the ranker sees it: who calls whom, by index, with reachability that
//! terminates on cycles.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A directed call graph: an edge `caller -> callee` means the caller depends on the callee,
/// so a fault in the callee can show up in the caller.
#[derive(Clone, Debug, Default)]
pub struct CallGraph {
    index: BTreeMap<String, usize>,
    names: Vec<String>,
    callees: Vec<BTreeSet<usize>>,
    callers: Vec<BTreeSet<usize>>,
}

impl CallGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node (idempotent) and returns its index.
    pub fn add_node(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len();
        self.index.insert(name.to_string(), i);
        self.names.push(name.to_string());
        self.callees.push(BTreeSet::new());
        self.callers.push(BTreeSet::new());
        i
    }

    /// Adds `caller -> callee`; self-loops are ignored (they say nothing about blame).
    pub fn add_edge(&mut self, caller: &str, callee: &str) {
        let a = self.add_node(caller);
        let b = self.add_node(callee);
        if a != b {
            self.callees[a].insert(b);
            self.callers[b].insert(a);
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn id(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub(crate) fn callees(&self, i: usize) -> &BTreeSet<usize> {
        &self.callees[i]
    }

    pub(crate) fn callers(&self, i: usize) -> &BTreeSet<usize> {
        &self.callers[i]
    }

    /// Builds the graph from medic's topology (service → the services it calls).
    pub fn from_topology(t: &medic_core::Topology) -> Self {
        let mut g = Self::new();
        for (caller, callees) in &t.depends_on {
            g.add_node(caller);
            for callee in callees {
                g.add_edge(caller, callee);
            }
        }
        g
    }

    /// Every node reachable from `from` along call edges, `from` included (breadth first, so
    /// cycles end).
    pub fn reachable(&self, from: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::from([from]);
        let mut q = VecDeque::from([from]);
        while let Some(u) = q.pop_front() {
            for &v in &self.callees[u] {
                if seen.insert(v) {
                    q.push_back(v);
                }
            }
        }
        seen
    }
}
