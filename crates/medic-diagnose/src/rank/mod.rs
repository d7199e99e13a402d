//! Root-cause ranking on the call graph from per-node metric series.
//!
//! Input: who calls whom, per-node series (latency, errors, availability, throughput,
//! resources), a baseline (a separate normal period or the part of the same series before
//! the incident) and the symptom (node, metric, time). Output: the nodes the symptom can
//! reach, best first, each with its score and the evidence it rests on (metric, value,
//! baseline, robust z, first anomalous time), plus notes on what was missing.
//!
//! Per series: robust z (median and a scale that stays finite on flat baselines) of its
//! second-largest sample in the window (a lasting change), less what was already there
//! before the onset (drift is not the incident); only kinds that can explain the symptom
//! count. Per node, the published principle that a root cause is anomalous itself while its
//! callers are anomalous only through it: a node is blamed for the part of its change its
//! callees' significant changes do not cover (see `score.rs`). Ties go to the earlier first
//! anomaly. Candidates are the nodes the symptom reaches (cycles are fine). Entry points:
//! [`rank`] from series, [`rank_evidence`] from evidence already measured. Nothing here
//! knows about a particular dataset, node or regime.

mod anomaly;
mod graph;
mod score;
pub mod synthetic;

pub use anomaly::{MIN_BASELINE_POINTS, Z_CAP};
pub use graph::CallGraph;
pub use score::Strategy;

use anomaly::spread;
use std::collections::BTreeMap;

/// What a series measures; sets which direction is "worse".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Higher is worse.
    Latency,
    /// Error count or rate: higher is worse.
    Errors,
    /// Share of successful requests: lower is worse.
    Availability,
    /// Request rate: a change either way is anomalous.
    Throughput,
    /// The node's own resources (CPU, memory, restarts, fds): higher is worse.
    Resource,
}

impl MetricKind {
    /// Whether an anomaly of this kind can explain a symptom of `symptom`'s kind: latency
    /// propagates as latency, failures as failures (errors and availability are one
    /// family), and a node's own resources can cause anything.
    pub fn explains(self, symptom: MetricKind) -> bool {
        let family = |k: MetricKind| match k {
            MetricKind::Availability => MetricKind::Errors,
            k => k,
        };
        self == MetricKind::Resource || family(self) == family(symptom)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "latency" | "duration" => Self::Latency,
            "errors" | "error" | "error_rate" => Self::Errors,
            "availability" => Self::Availability,
            "requests" | "throughput" | "rate" => Self::Throughput,
            "cpu" | "memory" | "resource" | "restarts" => Self::Resource,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Seconds (any epoch, as long as the symptom's time uses the same).
    pub ts: f64,
    pub value: f64,
}

/// One metric series of one node. `name` tells series of the same kind apart (a statistic
/// such as `p99`, or a metric name).
#[derive(Clone, Debug)]
pub struct Series {
    pub node: String,
    pub kind: MetricKind,
    pub name: String,
    pub points: Vec<Point>,
}

/// Where the anomaly was seen first.
#[derive(Clone, Debug)]
pub struct Symptom {
    pub node: String,
    pub kind: MetricKind,
    pub ts: f64,
}

/// What "normal" is.
#[derive(Clone, Copy, Debug)]
pub enum Baseline<'a> {
    /// A separate normal period, matched to the incident series by (node, kind, name).
    Series(&'a [Series]),
    /// The points of the incident series before the incident window.
    Before,
}

#[derive(Clone, Debug)]
pub struct RankParams {
    /// A robust z at or above this is "anomalous" (used for first-anomaly times, the
    /// false-blame check and by the strategies that need a yes/no).
    pub threshold: f64,
    /// The incident window: points in [symptom − before, symptom + after] are scored.
    pub window_before_s: f64,
    pub window_after_s: f64,
    /// A cause shows no earlier than this before the symptom: window points before
    /// `symptom − onset` are the pre-incident reference, and a series already that anomalous
    /// there (a drifted or chronically bad metric) is credited only with what it adds since.
    pub onset_s: f64,
    /// A series' anomaly is its `sustained_points`-th largest z in the window, so that one
    /// odd sample weighs less than a change that lasts.
    pub sustained_points: usize,
    pub strategy: Strategy,
}

impl Default for RankParams {
    fn default() -> Self {
        Self {
            // Five robust standard deviations: a peak over a handful of points and several
            // series per node needs more than the usual 3 to stay quiet on normal data.
            threshold: 5.0,
            window_before_s: 900.0,
            window_after_s: 900.0,
            onset_s: 300.0,
            sustained_points: 2,
            strategy: Strategy::default(),
        }
    }
}

pub struct RankInput<'a> {
    pub graph: &'a CallGraph,
    pub series: &'a [Series],
    pub baseline: Baseline<'a>,
    pub symptom: &'a Symptom,
}

/// One series' contribution to a node's anomaly.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MetricEvidence {
    pub kind: MetricKind,
    pub name: String,
    /// The value at the peak of the window.
    pub value: f64,
    pub peak_ts: f64,
    pub baseline_median: f64,
    pub baseline_scale: f64,
    /// Robust z at the peak (from the onset on), signed so that positive is worse.
    pub z: f64,
    /// The largest z before the onset (None: no point there).
    pub pre_z: Option<f64>,
    /// `z` less any anomaly already there before the onset: what the ranking uses.
    pub onset_z: f64,
    /// Whether this kind can explain the symptom (see `MetricKind::explains`); only
    /// relevant series count toward the node's anomaly.
    pub relevant: bool,
    /// First time in the window the z reached the threshold.
    pub first_anomalous: Option<f64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Candidate {
    pub node: String,
    pub score: f64,
    /// The node's own anomaly: the largest onset z over its relevant series (0 without).
    pub anomaly: f64,
    pub first_anomalous: Option<f64>,
    /// The most anomalous callee, which may explain this node's anomaly.
    pub explained_by: Option<String>,
    /// Its series, most anomalous first.
    pub evidence: Vec<MetricEvidence>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Ranking {
    pub candidates: Vec<Candidate>,
    /// Whether the symptom's own metric is anomalous in the window.
    pub symptom_anomalous: bool,
    pub threshold: f64,
    /// What was missing or ignored (unknown nodes, series without baseline, empty windows).
    pub notes: Vec<String>,
}

impl Ranking {
    /// True when the top candidate is anomalous by the ranker's own threshold: it would
    /// blame a component.
    pub fn blames(&self) -> bool {
        self.candidates
            .first()
            .is_some_and(|c| c.anomaly >= self.threshold)
    }

    pub fn names(&self) -> Vec<&str> {
        self.candidates.iter().map(|c| c.node.as_str()).collect()
    }
}

/// Ranks the root-cause candidates for `input.symptom` from metric series. Always
/// completes: what it could not use is listed in `notes`.
pub fn rank(input: &RankInput, params: &RankParams) -> Ranking {
    let sym = input.symptom;
    let lo = sym.ts - params.window_before_s;
    let hi = sym.ts + params.window_after_s;
    let onset = sym.ts - params.onset_s;
    let baseline_index: BTreeMap<(&str, MetricKind, &str), &Series> = match input.baseline {
        Baseline::Series(b) => b
            .iter()
            .map(|s| ((s.node.as_str(), s.kind, s.name.as_str()), s))
            .collect(),
        Baseline::Before => BTreeMap::new(),
    };
    let mut evidence = Vec::new();
    let mut skipped_no_baseline = 0usize;
    let mut skipped_empty = 0usize;
    for s in input.series {
        let (window, pre): (Vec<Point>, Vec<Point>) = s
            .points
            .iter()
            .copied()
            .filter(|p| p.ts >= lo && p.ts <= hi)
            .partition(|p| p.ts >= onset);
        let base = match input.baseline {
            Baseline::Series(_) => baseline_index
                .get(&(s.node.as_str(), s.kind, s.name.as_str()))
                .and_then(|b| spread(b.points.iter().map(|p| p.value))),
            Baseline::Before => spread(s.points.iter().filter(|p| p.ts < lo).map(|p| p.value)),
        };
        let Some(base) = base else {
            skipped_no_baseline += 1;
            continue;
        };
        let k = params.sustained_points;
        let Some((z, value, peak_ts, first)) =
            anomaly::peak(s.kind, base, &window, params.threshold, k)
        else {
            skipped_empty += 1;
            continue;
        };
        let pre_z = anomaly::peak(s.kind, base, &pre, f64::INFINITY, k).map(|p| p.0);
        evidence.push((
            s.node.clone(),
            MetricEvidence {
                kind: s.kind,
                name: s.name.clone(),
                value,
                peak_ts,
                baseline_median: base.median,
                baseline_scale: base.scale,
                z,
                pre_z,
                onset_z: z - pre_z.unwrap_or(0.0).max(0.0),
                relevant: s.kind.explains(sym.kind),
                first_anomalous: first,
            },
        ));
    }
    // Unknown nodes whose series gave no evidence would otherwise go unmentioned.
    let unknown: std::collections::BTreeSet<&str> = input
        .series
        .iter()
        .map(|s| s.node.as_str())
        .filter(|n| input.graph.id(n).is_none() && !evidence.iter().any(|(e, _)| e == n))
        .collect();
    let mut ranking = rank_evidence(input.graph, sym, evidence, params);
    for n in unknown {
        ranking
            .notes
            .push(format!("node {n} has series but is not in the graph"));
    }
    if skipped_no_baseline > 0 {
        ranking.notes.push(format!(
            "{skipped_no_baseline} series had fewer than {MIN_BASELINE_POINTS} baseline points and were not scored"
        ));
    }
    if skipped_empty > 0 {
        ranking.notes.push(format!(
            "{skipped_empty} series had no finite point in the incident window"
        ));
    }
    ranking
}

/// Ranks the candidates from evidence already measured (per node: metric, value, baseline,
/// z), e.g. per-service anomaly magnitudes an agent holds. `relevant` is recomputed from
/// the symptom's kind; `onset_z` is what counts (set it to `z` when there is no
/// pre-incident reference).
pub fn rank_evidence(
    graph: &CallGraph,
    sym: &Symptom,
    measured: Vec<(String, MetricEvidence)>,
    params: &RankParams,
) -> Ranking {
    let mut notes = Vec::new();
    let mut g = graph.clone();
    if graph.id(&sym.node).is_none() {
        notes.push(format!(
            "symptom node {} is not in the graph: every node with evidence is a candidate",
            sym.node
        ));
    }
    for (node, _) in &measured {
        if g.id(node).is_none() {
            notes.push(format!("node {node} has evidence but is not in the graph"));
            g.add_node(node);
        }
    }
    let input_has_symptom = graph.id(&sym.node).is_some();
    let sym_id = g.add_node(&sym.node);
    let graph = g;
    let candidates: Vec<usize> = if input_has_symptom {
        graph.reachable(sym_id).into_iter().collect()
    } else {
        (0..graph.len()).collect()
    };

    let mut evidence: Vec<Vec<MetricEvidence>> = vec![Vec::new(); graph.len()];
    let mut symptom_anomalous = false;
    for (node, mut e) in measured {
        let Some(id) = graph.id(&node) else { continue };
        e.relevant = e.kind.explains(sym.kind);
        if node == sym.node && e.kind == sym.kind && e.onset_z >= params.threshold {
            symptom_anomalous = true;
        }
        evidence[id].push(e);
    }
    for &c in &candidates {
        if evidence[c].is_empty() {
            notes.push(format!("no usable series for {}", graph.name(c)));
        }
    }
    for e in &mut evidence {
        e.sort_by(|a, b| {
            (b.relevant, b.onset_z)
                .partial_cmp(&(a.relevant, a.onset_z))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.name.cmp(&b.name))
        });
    }
    let anomaly: Vec<f64> = evidence
        .iter()
        .map(|e| {
            e.iter()
                .filter(|m| m.relevant)
                .map(|m| m.onset_z)
                .fold(0.0, f64::max)
        })
        .collect();
    let scores = score::score(
        params.strategy,
        &graph,
        sym_id,
        &candidates,
        &anomaly,
        &evidence,
        params.threshold,
    );
    let mut out: Vec<Candidate> = candidates
        .iter()
        .zip(scores)
        .map(|(&c, score)| {
            let explained_by = graph
                .callees(c)
                .iter()
                .filter(|k| candidates.binary_search(k).is_ok())
                .max_by(|a, b| anomaly[**a].total_cmp(&anomaly[**b]))
                .filter(|k| anomaly[**k] > 0.0)
                .map(|k| graph.name(*k).to_string());
            Candidate {
                node: graph.name(c).to_string(),
                score,
                anomaly: anomaly[c],
                first_anomalous: evidence[c]
                    .iter()
                    .filter_map(|e| e.first_anomalous)
                    .min_by(f64::total_cmp),
                explained_by,
                evidence: std::mem::take(&mut evidence[c]),
            }
        })
        .collect();
    // Ties: the earlier first anomaly (a cause precedes its effects), then the name, so the
    // same input always ranks the same.
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| {
                a.first_anomalous
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.first_anomalous.unwrap_or(f64::INFINITY))
            })
            .then_with(|| a.node.cmp(&b.node))
    });
    Ranking {
        candidates: out,
        symptom_anomalous,
        threshold: params.threshold,
        notes,
    }
}

#[cfg(test)]
mod tests;
