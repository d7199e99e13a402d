//! Streaming metric-series analysis, pure code: a per-point anomaly scorer
//! ([`scorer::SeriesScorer`]) and a growth forecaster with time-to-threshold
//! ([`forecast::Forecaster`]). Used by the `metric_series` detector, `medic detect series` and
//! `medic eval nab`.

pub mod forecast;
pub mod rolling;
pub mod scorer;
pub mod time;

pub use forecast::{Eta, Forecaster};
pub use scorer::{DropReason, Drops, Scored, ScorerParams, SeriesScorer};

/// Score a whole in-order series with default parameters: one score per input point, 0 for
/// points that were dropped (non-finite, out of order, duplicate timestamp).
pub fn score_series(p: &ScorerParams, ts_ms: &[i64], values: &[f64]) -> (Vec<f64>, Drops) {
    let mut s = SeriesScorer::new(p.clone());
    let out = ts_ms
        .iter()
        .zip(values)
        .map(|(&t, &v)| s.push(t, v).map_or(0.0, |x| x.score))
        .collect();
    (out, s.drops())
}

#[cfg(test)]
mod tests;
