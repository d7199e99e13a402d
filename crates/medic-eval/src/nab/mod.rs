//! The Numenta Anomaly Benchmark: load a folder in NAB's layout, score a detector's per-row
//! anomaly scores with NAB's rules, and normalise to 0 (null detector) – 100 (perfect).
//!
//! Layout: `data/<category>/<series>.csv` (`timestamp,value`), `labels/combined_windows.json`
//! (`"<category>/<series>.csv"` → `[[start, end], ...]`), `profiles.json` (cost weights).

mod load;
pub mod sweep;

pub use load::{Corpus, DataFile, load_corpus};
pub use sweep::Profile;

use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NabError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: no series found under data/<category>/*.csv")]
    Empty { path: PathBuf },
    #[error("detector returned {got} scores for {file}, expected one per row ({want})")]
    ScoreCount {
        file: String,
        got: usize,
        want: usize,
    },
}

/// One profile's result over the corpus.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileResult {
    pub profile: String,
    /// The threshold that maximises the corpus score (chosen once for the whole corpus).
    pub threshold: f64,
    pub raw_score: f64,
    pub null_score: f64,
    pub perfect_score: f64,
    /// `100 · (raw − null) / (perfect − null)`.
    pub normalized: f64,
    pub windows: usize,
    pub windows_detected: usize,
    pub false_alarms: usize,
    /// Per category, at the corpus threshold, normalised against that category's null and
    /// perfect scores.
    pub categories: Vec<CategoryResult>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CategoryResult {
    pub category: String,
    pub files: usize,
    pub windows: usize,
    pub windows_detected: usize,
    pub false_alarms: usize,
    pub raw_score: f64,
    pub normalized: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct NabReport {
    pub files: usize,
    pub rows: usize,
    pub windows: usize,
    pub profiles: Vec<ProfileResult>,
}

impl NabReport {
    pub fn normalized(&self, profile: &str) -> Option<f64> {
        self.profiles
            .iter()
            .find(|p| p.profile == profile)
            .map(|p| p.normalized)
    }
}

/// Score per-file anomaly scores (`scores[i]` for `corpus.files[i]`, one per row).
pub fn score(corpus: &Corpus, scores: &[Vec<f64>]) -> Result<NabReport, NabError> {
    let mut all_rows = Vec::new();
    let mut null_rows = Vec::new();
    // (category, first row, end row, first window id, windows) per file
    let mut spans = Vec::new();
    let mut window_id = 0u32;
    for (i, f) in corpus.files.iter().enumerate() {
        let s = scores.get(i).map(Vec::as_slice).unwrap_or(&[]);
        if s.len() != f.values.len() {
            return Err(NabError::ScoreCount {
                file: f.name.clone(),
                got: s.len(),
                want: f.values.len(),
            });
        }
        let start = all_rows.len();
        all_rows.extend(sweep::rows(s, &f.windows, window_id));
        null_rows.extend(sweep::rows(&vec![0.5; s.len()], &f.windows, window_id));
        spans.push((f.category.clone(), start, all_rows.len(), f.windows.len()));
        window_id += f.windows.len() as u32;
    }
    let windows = window_id as usize;
    let mut profiles = Vec::new();
    for p in &corpus.profiles {
        let best =
            sweep::best(&sweep::sweep(&all_rows, windows, p)).ok_or_else(|| NabError::Empty {
                path: corpus.root.clone(),
            })?;
        let null_best =
            sweep::best(&sweep::sweep(&null_rows, windows, p)).ok_or_else(|| NabError::Empty {
                path: corpus.root.clone(),
            })?;
        let perfect = p.tp_weight * windows as f64;
        let mut categories: Vec<CategoryResult> = Vec::new();
        let mut cats: Vec<&str> = spans.iter().map(|s| s.0.as_str()).collect();
        cats.dedup();
        cats.sort_unstable();
        cats.dedup();
        for cat in cats {
            let mut rows = Vec::new();
            let mut nrows = Vec::new();
            let (mut files, mut cwin) = (0, 0);
            for (c, a, b, w) in &spans {
                if c == cat {
                    rows.extend_from_slice(&all_rows[*a..*b]);
                    nrows.extend_from_slice(&null_rows[*a..*b]);
                    files += 1;
                    cwin += w;
                }
            }
            let at = sweep::score_at(&rows, windows, p, best.threshold);
            let null = sweep::score_at(&nrows, windows, p, null_best.threshold);
            let cperfect = p.tp_weight * cwin as f64;
            categories.push(CategoryResult {
                category: cat.to_string(),
                files,
                windows: cwin,
                windows_detected: at.windows_detected,
                false_alarms: at.false_alarms,
                raw_score: at.score,
                normalized: normalise(at.score, null.score, cperfect),
            });
        }
        profiles.push(ProfileResult {
            profile: p.name.clone(),
            threshold: best.threshold,
            raw_score: best.score,
            null_score: null_best.score,
            perfect_score: perfect,
            normalized: normalise(best.score, null_best.score, perfect),
            windows,
            windows_detected: best.windows_detected,
            false_alarms: best.false_alarms,
            categories,
        });
    }
    Ok(NabReport {
        files: corpus.files.len(),
        rows: all_rows.len(),
        windows,
        profiles,
    })
}

fn normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    if perfect - null <= 0.0 {
        return 0.0;
    }
    100.0 * (raw - null) / (perfect - null)
}

/// Load `dir`, run `detector` on every file (values and timestamps in ms, in order), score.
pub fn evaluate(
    dir: &std::path::Path,
    mut detector: impl FnMut(&DataFile) -> Vec<f64>,
) -> Result<NabReport, NabError> {
    let corpus = load_corpus(dir)?;
    let scores: Vec<Vec<f64>> = corpus.files.iter().map(&mut detector).collect();
    score(&corpus, &scores)
}

#[cfg(test)]
mod tests;
