//! A seeded synthetic benchmark for the ranker: random call graphs (with the odd cycle),
//! per-node latency, error and resource series, one faulty node at random whose latency or
//! errors propagate to its callers with attenuation and noise, and unrelated nodes with
//! spurious spikes or a level that drifted before the incident. Every seed is a different incident; the root cause is known, so top-1 /
//! top-3 over many seeds is an honest measure of the ranking logic (unlike a dataset whose
//! every incident has the same cause).

use super::{Baseline, CallGraph, MetricKind, Point, RankInput, RankParams, Series, Symptom, rank};

/// SplitMix64: small, seeded, good enough for test data, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Standard normal, with a 5% chance of a heavy-tailed (×3) draw, as real metrics have.
    pub fn noise(&mut self) -> f64 {
        let u1 = self.f().max(1e-12);
        let u2 = self.f();
        let n = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        if self.f() < 0.05 { 3.0 * n } else { n }
    }
}

/// One synthetic incident: everything the ranker needs plus the answer.
pub struct Case {
    pub graph: CallGraph,
    pub series: Vec<Series>,
    pub baseline: Vec<Series>,
    pub symptom: Symptom,
    pub root_cause: String,
}

/// Five-minute samples, as PetShop's (and many a dashboard's) are.
const STEP: f64 = 300.0;
const BASELINE_POINTS: usize = 120;
const INCIDENT_POINTS: usize = 8;
/// The fault starts at this incident point; the ones before are normal.
const FAULT_AT: usize = 2;

/// A case of 8–30 nodes.
pub fn case(seed: u64) -> Case {
    let mut r = Rng::new(seed);
    let n = 8 + r.below(23);
    build(r, n)
}

/// A case of `n` nodes (at least 2).
pub fn case_sized(seed: u64, n: usize) -> Case {
    build(Rng::new(seed), n.max(2))
}

fn build(mut r: Rng, n: usize) -> Case {
    let name = |i: usize| format!("svc{i}");
    let mut graph = CallGraph::new();
    let mut callees: Vec<Vec<usize>> = vec![Vec::new(); n];
    graph.add_node(&name(0));
    for i in 1..n {
        let p = r.below(i);
        graph.add_edge(&name(p), &name(i));
        callees[p].push(i);
        if r.f() < 0.3 {
            let q = r.below(i);
            if q != p {
                graph.add_edge(&name(q), &name(i));
                callees[q].push(i);
            }
        }
    }
    // Now and then a call back up the graph, so cycles are part of the test.
    if r.f() < 0.2 && n > 3 {
        let a = 1 + r.below(n - 1);
        let b = r.below(a);
        graph.add_edge(&name(a), &name(b));
    }
    let root = r.below(n);
    // Added latency (in seconds) and error rate per node from the fault, propagated to
    // callers (the reverse of `callees`) with attenuation; a node keeps the largest.
    let mean_lat: Vec<f64> = (0..n).map(|_| r.range(0.01, 0.5)).collect();
    let sd_lat: Vec<f64> = mean_lat.iter().map(|m| m * r.range(0.03, 0.3)).collect();
    let mean_err: Vec<f64> = (0..n).map(|_| r.range(0.0, 0.02)).collect();
    let sd_err: Vec<f64> = mean_err.iter().map(|m| m * 0.3 + 1e-3).collect();
    let latency_fault = r.f() < 0.6;
    let mut add_lat = vec![0.0; n];
    let mut add_err = vec![0.0; n];
    if latency_fault {
        add_lat[root] = sd_lat[root] * r.range(5.0, 20.0);
    } else {
        add_err[root] = sd_err[root] * r.range(5.0, 20.0);
    }
    // Callers in index order are upstream of callees (edges go low -> high), so one pass
    // from high to low propagates along every path.
    for v in (0..n).rev() {
        for &c in &callees[v] {
            let f = r.range(0.4, 1.0);
            add_lat[v] = f64::max(add_lat[v], add_lat[c] * f);
            add_err[v] = f64::max(add_err[v], add_err[c] * f);
        }
    }
    let own_resource = r.f() < 0.5;
    let distractors: Vec<usize> = (0..r.below(4)).map(|_| r.below(n)).collect();
    let distractor_latency = r.f() < 0.5;
    // Sometimes a node whose metrics moved before the incident and stayed there (drift, a
    // chronic problem): anomalous against the baseline, but not what changed now.
    let drifted = (r.f() < 0.5).then(|| r.below(n)).filter(|&d| d != root);
    let drift = r.range(5.0, 15.0);
    let t0 = 1_000_000.0;
    let t_inc = t0 + BASELINE_POINTS as f64 * STEP;
    let mut series = Vec::new();
    let mut baseline = Vec::new();
    for v in 0..n {
        // A distractor lasts one to three samples, so a sustained-anomaly rule cannot simply
        // ignore it.
        let spike_at = r.below(INCIDENT_POINTS);
        let spike_len = 1 + r.below(3);
        let spike = if distractors.contains(&v) && v != root {
            r.range(4.0, 12.0)
        } else {
            0.0
        };
        let mut mk = |kind: MetricKind, mean: f64, sd: f64, add: f64, spike: f64, r: &mut Rng| {
            let base: Vec<Point> = (0..BASELINE_POINTS)
                .map(|k| Point {
                    ts: t0 + k as f64 * STEP,
                    value: mean + sd * r.noise(),
                })
                .collect();
            let inc: Vec<Point> = (0..INCIDENT_POINTS)
                .map(|k| {
                    let fault = if k >= FAULT_AT { add } else { 0.0 };
                    let s = if (spike_at..spike_at + spike_len).contains(&k) {
                        spike * sd
                    } else {
                        0.0
                    } + if drifted == Some(v) { drift * sd } else { 0.0 };
                    Point {
                        ts: t_inc + k as f64 * STEP,
                        value: mean + fault + s + sd * r.noise(),
                    }
                })
                .collect();
            let node = name(v);
            let nm = format!("{kind:?}");
            baseline.push(Series {
                node: node.clone(),
                kind,
                name: nm.clone(),
                points: base,
            });
            series.push(Series {
                node,
                kind,
                name: nm,
                points: inc,
            });
        };
        let (spike_lat, spike_err) = if distractor_latency {
            (spike, 0.0)
        } else {
            (0.0, spike)
        };
        let (lat, err) = (MetricKind::Latency, MetricKind::Errors);
        mk(lat, mean_lat[v], sd_lat[v], add_lat[v], spike_lat, &mut r);
        mk(err, mean_err[v], sd_err[v], add_err[v], spike_err, &mut r);
        let res = if v == root && own_resource { 8.0 } else { 0.0 };
        mk(MetricKind::Resource, 50.0, 5.0, res * 5.0, 0.0, &mut r);
    }
    Case {
        graph,
        series,
        baseline,
        symptom: Symptom {
            node: name(0),
            kind: if latency_fault {
                MetricKind::Latency
            } else {
                MetricKind::Errors
            },
            ts: t_inc + FAULT_AT as f64 * STEP,
        },
        root_cause: name(root),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Score {
    pub cases: usize,
    pub top1: f64,
    pub top3: f64,
}

/// Top-1 and top-3 accuracy of the ranker with `params` over the cases of `seeds`.
pub fn benchmark(params: &RankParams, seeds: std::ops::Range<u64>) -> Score {
    let (mut n, mut t1, mut t3) = (0usize, 0usize, 0usize);
    for seed in seeds {
        let c = case(seed);
        let ranking = rank(
            &RankInput {
                graph: &c.graph,
                series: &c.series,
                baseline: Baseline::Series(&c.baseline),
                symptom: &c.symptom,
            },
            params,
        );
        let pos = ranking
            .candidates
            .iter()
            .position(|x| x.node == c.root_cause);
        n += 1;
        t1 += usize::from(pos == Some(0));
        t3 += usize::from(pos.is_some_and(|p| p < 3));
    }
    Score {
        cases: n,
        top1: t1 as f64 / n.max(1) as f64,
        top3: t3 as f64 / n.max(1) as f64,
    }
}
