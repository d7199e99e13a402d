//! The PetShop root-cause dataset (Amazon Science, CC-BY-4.0): for each `issue_N/` folder,
//! rank the candidates for the symptom in `target.json` with the graph ranker
//! (`medic_diagnose::rank`), using the regime's normal-operation metrics as the baseline;
//! `root_cause` is read only to score. Also runs the ranker on windows of the normal period
//! to measure how often it would blame a component when nothing is wrong.

pub mod load;

pub use load::LoadError;

use medic_diagnose::rank::{
    Baseline, CallGraph, MetricKind, Point, RankInput, RankParams, Ranking, Series, Symptom, rank,
};
use std::path::{Path, PathBuf};

/// Points per normal window in the false-blame check: as many as an issue file holds.
pub const NORMAL_WINDOW_POINTS: usize = 5;

#[derive(Debug, serde::Serialize)]
pub struct IssueResult {
    pub issue: String,
    /// Candidate node names, best first.
    pub ranking: Vec<String>,
    pub symptom: String,
    pub root_cause: Option<String>,
    /// 1-based position of the root cause in the ranking (None: not ranked or unknown).
    pub rank_of_root_cause: Option<usize>,
    pub symptom_anomalous: bool,
    /// The top candidates with their evidence.
    pub top: Vec<medic_diagnose::rank::Candidate>,
    pub notes: Vec<String>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct FalseBlame {
    /// Normal windows × distinct symptoms of the issues.
    pub runs: usize,
    /// Runs whose top candidate was anomalous by the ranker's threshold.
    pub blamed: usize,
    pub rate: f64,
    /// Runs where the symptom itself crossed the threshold (for context).
    pub symptom_anomalous: usize,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub issues: Vec<IssueResult>,
    /// Issues that could not be read, with the reason.
    pub errors: Vec<String>,
    pub scored: usize,
    pub top1: f64,
    pub top3: f64,
    pub false_blame: FalseBlame,
}

/// Evaluates every `issue_*` folder of `dir`.
pub fn evaluate(
    dir: &Path,
    graph: &CallGraph,
    normal: &[Series],
    params: &RankParams,
) -> Result<Report, LoadError> {
    let mut issues: Vec<(u64, String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|err| LoadError::Io {
            path: dir.to_path_buf(),
            err,
        })?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("issue_")?.parse().ok()?;
            Some((n, name, e.path()))
        })
        .collect();
    issues.sort();
    let mut report = Report::default();
    let mut symptoms: Vec<(String, MetricKind)> = Vec::new();
    for (_, name, path) in issues {
        match issue(&name, &path, graph, normal, params) {
            Ok((r, sym)) => {
                if !symptoms.contains(&(sym.node.clone(), sym.kind)) {
                    symptoms.push((sym.node, sym.kind));
                }
                report.issues.push(r);
            }
            Err(e) => report.errors.push(format!("{name}: {e}")),
        }
    }
    let scored: Vec<usize> = report
        .issues
        .iter()
        .filter(|i| i.root_cause.is_some())
        .map(|i| i.rank_of_root_cause.unwrap_or(usize::MAX))
        .collect();
    report.scored = scored.len();
    let share =
        |k: usize| scored.iter().filter(|&&p| p <= k).count() as f64 / scored.len().max(1) as f64;
    report.top1 = share(1);
    report.top3 = share(3);
    report.false_blame = false_blame(graph, normal, &symptoms, params);
    Ok(report)
}

fn issue(
    name: &str,
    path: &Path,
    graph: &CallGraph,
    normal: &[Series],
    params: &RankParams,
) -> Result<(IssueResult, Symptom), LoadError> {
    let metrics = load::metrics(&path.join("metrics.csv"))?;
    let target_path = path.join("target.json");
    let target = load::target(&target_path)?;
    let kind = MetricKind::parse(&target.target.metric).ok_or_else(|| LoadError::Malformed {
        path: target_path.clone(),
        line: 1,
        msg: format!("unknown target metric {:?}", target.target.metric),
    })?;
    let symptom = Symptom {
        node: target.target.node.clone(),
        kind,
        ts: target.target.timestamp,
    };
    // The issue file is the incident period: the window covers all of it.
    let p = window_over(&metrics.series, symptom.ts, params);
    let ranking = rank(
        &RankInput {
            graph,
            series: &metrics.series,
            baseline: Baseline::Series(normal),
            symptom: &symptom,
        },
        &p,
    );
    let mut notes = ranking.notes.clone();
    if !metrics.skipped_columns.is_empty() {
        notes.push(format!(
            "{} columns with unknown metrics skipped",
            metrics.skipped_columns.len()
        ));
    }
    let names: Vec<String> = ranking.names().iter().map(|s| s.to_string()).collect();
    let root_cause = target.root_cause.map(|r| r.node);
    let rank_of_root_cause = root_cause
        .as_ref()
        .and_then(|rc| names.iter().position(|n| n == rc))
        .map(|p| p + 1);
    Ok((
        IssueResult {
            issue: name.to_string(),
            ranking: names,
            symptom: format!("{} {:?}", symptom.node, symptom.kind),
            root_cause,
            rank_of_root_cause,
            symptom_anomalous: ranking.symptom_anomalous,
            top: ranking.candidates.into_iter().take(3).collect(),
            notes,
        },
        symptom,
    ))
}

/// `params` with the window widened to cover every point of `series` around `ts`.
fn window_over(series: &[Series], ts: f64, params: &RankParams) -> RankParams {
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.ts.is_finite())
        .fold((ts, ts), |(lo, hi), p| (lo.min(p.ts), hi.max(p.ts)));
    RankParams {
        window_before_s: params.window_before_s.max(ts - lo),
        window_after_s: params.window_after_s.max(hi - ts),
        ..params.clone()
    }
}

/// Runs the ranker on consecutive windows of the normal period (each against the rest of
/// the period as baseline), once per distinct symptom, and counts how often the top
/// candidate is anomalous by the ranker's own threshold.
pub fn false_blame(
    graph: &CallGraph,
    normal: &[Series],
    symptoms: &[(String, MetricKind)],
    params: &RankParams,
) -> FalseBlame {
    let mut times: Vec<f64> = normal
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.ts))
        .filter(|t| t.is_finite())
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let mut fb = FalseBlame::default();
    for w in times.chunks_exact(NORMAL_WINDOW_POINTS) {
        let (lo, hi) = (w[0], w[w.len() - 1]);
        let inside = |p: &Point| p.ts >= lo && p.ts <= hi;
        let split = |keep_inside: bool| -> Vec<Series> {
            normal
                .iter()
                .map(|s| Series {
                    points: s
                        .points
                        .iter()
                        .copied()
                        .filter(|p| inside(p) == keep_inside)
                        .collect(),
                    ..s.clone()
                })
                .collect()
        };
        let (window, rest) = (split(true), split(false));
        for (node, kind) in symptoms {
            let symptom = Symptom {
                node: node.clone(),
                kind: *kind,
                ts: w[w.len() / 2],
            };
            let p = window_over(&window, symptom.ts, params);
            let r: Ranking = rank(
                &RankInput {
                    graph,
                    series: &window,
                    baseline: Baseline::Series(&rest),
                    symptom: &symptom,
                },
                &p,
            );
            fb.runs += 1;
            fb.blamed += usize::from(r.blames());
            fb.symptom_anomalous += usize::from(r.symptom_anomalous);
        }
    }
    fb.rate = fb.blamed as f64 / fb.runs.max(1) as f64;
    fb
}

#[cfg(test)]
mod tests;
