//! Turning per-node anomaly and the call graph into a score per candidate.

use super::{CallGraph, MetricEvidence, MetricKind};

/// How candidates are scored. `Explained` is the default: it won on the synthetic benchmark
/// (`synthetic.rs`, chosen on development seeds and reported on others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The node's own anomaly alone (the naive ranker).
    Magnitude,
    /// The node's anomaly minus that of its most anomalous callee (in z units).
    Dominance,
    /// A root cause is anomalous itself, a caller only through its callee. A caller's extra
    /// latency (or error rate) is at most what its callee adds, in the same units, so each
    /// of a node's series is credited only with the share of its change (value − baseline
    /// median) that no callee's significant change of the same metric covers; its own
    /// resources are never explained by a callee. Score: per line of evidence (latency,
    /// errors, throughput, own resources) the largest unexplained z, combined as a root sum
    /// of squares.
    #[default]
    Explained,
    /// A personalized random walk from the symptom on the anomaly-weighted graph (the
    /// MicroRCA / CloudRanger family): the walker moves to anomalous callees, rarely back to
    /// callers, and stays on a node in proportion to the anomaly its callees do not explain.
    Walk,
}

/// Scores of `cands` (sorted node ids), in that order; higher is more likely the cause.
pub(crate) fn score(
    strategy: Strategy,
    g: &CallGraph,
    symptom: usize,
    cands: &[usize],
    anomaly: &[f64],
    evidence: &[Vec<MetricEvidence>],
    threshold: f64,
) -> Vec<f64> {
    let in_c = |k: &usize| cands.binary_search(k).is_ok();
    let child_max = |v: usize| {
        g.callees(v)
            .iter()
            .filter(|k| in_c(k))
            .map(|&k| anomaly[k])
            .fold(0.0, f64::max)
    };
    match strategy {
        Strategy::Magnitude => cands.iter().map(|&v| anomaly[v]).collect(),
        Strategy::Dominance => cands.iter().map(|&v| anomaly[v] - child_max(v)).collect(),
        Strategy::Explained => cands
            .iter()
            .map(|&v| unexplained(g, v, cands, evidence, threshold))
            .collect(),
        Strategy::Walk => walk(g, symptom, cands, anomaly, &child_max),
    }
}

/// Restart probability and the weight of a step back to a caller, as commonly used in
/// the random-walk RCA literature (not fitted here).
const RESTART: f64 = 0.15;
const BACKWARD: f64 = 0.1;
const EPS: f64 = 1e-3;

fn walk(
    g: &CallGraph,
    symptom: usize,
    cands: &[usize],
    anomaly: &[f64],
    child_max: &dyn Fn(usize) -> f64,
) -> Vec<f64> {
    let n = cands.len();
    let pos = |k: usize| cands.binary_search(&k).ok();
    let start = pos(symptom);
    // Row-normalised transitions over candidate positions.
    let mut out: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for (i, &v) in cands.iter().enumerate() {
        let mut row = Vec::new();
        for &c in g.callees(v) {
            if let Some(j) = pos(c) {
                row.push((j, anomaly[c] + EPS));
            }
        }
        for &p in g.callers(v) {
            if let Some(j) = pos(p) {
                row.push((j, BACKWARD * (anomaly[p] + EPS)));
            }
        }
        row.push((i, (anomaly[v] - child_max(v)).max(0.0) + EPS));
        let total: f64 = row.iter().map(|x| x.1).sum();
        out[i] = row.into_iter().map(|(j, w)| (j, w / total)).collect();
    }
    let reset: Vec<f64> = match start {
        Some(s) => (0..n).map(|i| if i == s { 1.0 } else { 0.0 }).collect(),
        None => vec![1.0 / n.max(1) as f64; n],
    };
    let mut p = reset.clone();
    for _ in 0..200 {
        let mut next: Vec<f64> = reset.iter().map(|r| RESTART * r).collect();
        for (i, row) in out.iter().enumerate() {
            for &(j, w) in row {
                next[j] += (1.0 - RESTART) * p[i] * w;
            }
        }
        let diff: f64 = next.iter().zip(&p).map(|(a, b)| (a - b).abs()).sum();
        p = next;
        if diff < 1e-10 {
            break;
        }
    }
    // The restart mass says where the walk starts, not where the fault is.
    p.iter().zip(&reset).map(|(x, r)| x - RESTART * r).collect()
}

/// The change of a series in its own units, positive when worse.
pub(crate) fn delta(e: &MetricEvidence) -> f64 {
    e.onset_z * e.baseline_scale
}

/// The largest z of `v`'s series after removing the share its callees' changes explain.
fn unexplained(
    g: &CallGraph,
    v: usize,
    cands: &[usize],
    evidence: &[Vec<MetricEvidence>],
    threshold: f64,
) -> f64 {
    let callees: Vec<usize> = g
        .callees(v)
        .iter()
        .copied()
        .filter(|k| cands.binary_search(k).is_ok())
        .collect();
    evidence[v]
        .iter()
        .filter(|e| e.relevant && e.onset_z > 0.0)
        .map(|e| {
            if e.kind == MetricKind::Resource {
                return (family(e.kind), e.onset_z);
            }
            let own = delta(e);
            // The same statistic of the same kind at a callee; failing that, the kind's
            // largest change there.
            // A callee's change explains only as far as it is itself significant: noise
            // at a callee with a wide spread must not excuse a real change here.
            let significant =
                |x: &MetricEvidence| delta(x) * (x.onset_z / threshold).clamp(0.0, 1.0);
            let covered = callees
                .iter()
                .filter_map(|&c| {
                    let same = evidence[c].iter().filter(|x| x.kind == e.kind);
                    let exact = same.clone().find(|x| x.name == e.name).map(significant);
                    exact.or_else(|| same.map(significant).reduce(f64::max))
                })
                .fold(0.0, f64::max);
            (
                family(e.kind),
                e.onset_z * (1.0 - (covered / own).clamp(0.0, 1.0)),
            )
        })
        .fold([0.0; 4], |mut acc, (f, z)| {
            acc[f] = f64::max(acc[f], z);
            acc
        })
        .iter()
        .map(|z| z * z)
        .sum::<f64>()
        .sqrt()
}

/// Independent lines of evidence: a cause seen both in its own resources and in what its
/// callers see is more certain than one seen in either alone.
fn family(k: MetricKind) -> usize {
    match k {
        MetricKind::Latency => 0,
        MetricKind::Errors | MetricKind::Availability => 1,
        MetricKind::Throughput => 2,
        MetricKind::Resource => 3,
    }
}
