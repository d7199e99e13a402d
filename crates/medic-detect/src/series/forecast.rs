//! Growth forecasting: a Theil–Sen line (median of pairwise slopes, robust to outliers) over a
//! bounded window of recent points, with an interval from the spread of the pairwise slopes and
//! of the residuals; time to threshold with that interval.

use std::collections::VecDeque;

/// Time to threshold, in seconds from the last point.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Eta {
    /// Best estimate.
    pub secs: f64,
    /// Earliest plausible (steepest slope, highest level).
    pub lower_secs: f64,
    /// Latest plausible; `f64::INFINITY` when the slowest plausible slope is not growth.
    pub upper_secs: f64,
    /// Growth per second of the central fit.
    pub slope_per_sec: f64,
    /// Fitted level at the last point.
    pub level: f64,
}

/// A robust line fit over the window.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Fit {
    pub slope: f64,
    pub slope_lo: f64,
    pub slope_hi: f64,
    /// Fitted value at the last point.
    pub level: f64,
    /// Robust spread of the residuals (MAD · 1.4826).
    pub resid_sigma: f64,
    pub last_ts: i64,
}

#[derive(Clone, Debug)]
pub struct Forecaster {
    pts: VecDeque<(i64, f64)>,
    cap: usize,
}

impl Forecaster {
    /// Keep at most `cap` points (≥ 4). Fitting is O(cap²); 64 is a few microseconds.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(4);
        Forecaster {
            pts: VecDeque::with_capacity(cap),
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.pts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pts.is_empty()
    }

    /// Forget the history (after a restart or counter reset: the old trend no longer applies).
    pub fn reset(&mut self) {
        self.pts.clear();
    }

    /// Add a point; non-finite values and non-increasing timestamps are ignored (returns false).
    pub fn push(&mut self, ts_ms: i64, x: f64) -> bool {
        if !x.is_finite() || self.pts.back().is_some_and(|&(t, _)| ts_ms <= t) {
            return false;
        }
        if self.pts.len() == self.cap {
            self.pts.pop_front();
        }
        self.pts.push_back((ts_ms, x));
        true
    }

    /// Theil–Sen fit; `None` with fewer than 4 points.
    pub fn fit(&self) -> Option<Fit> {
        let n = self.pts.len();
        if n < 4 {
            return None;
        }
        let &(t0, _) = self.pts.front()?;
        let &(last_ts, _) = self.pts.back()?;
        let pts: Vec<(f64, f64)> = self
            .pts
            .iter()
            .map(|&(t, v)| ((t - t0) as f64 / 1000.0, v))
            .collect();
        let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
        for i in 0..n {
            for j in i + 1..n {
                let dt = pts[j].0 - pts[i].0;
                if dt > 0.0 {
                    slopes.push((pts[j].1 - pts[i].1) / dt);
                }
            }
        }
        if slopes.is_empty() {
            return None;
        }
        slopes.sort_by(f64::total_cmp);
        let q = |p: f64| slopes[((slopes.len() - 1) as f64 * p).round() as usize];
        let slope = q(0.5);
        let mut icpt: Vec<f64> = pts.iter().map(|(t, v)| v - slope * t).collect();
        icpt.sort_by(f64::total_cmp);
        let b = icpt[icpt.len() / 2];
        let mut res: Vec<f64> = icpt.iter().map(|c| (c - b).abs()).collect();
        res.sort_by(f64::total_cmp);
        let resid_sigma = 1.4826 * res[res.len() / 2];
        let t_last = pts[n - 1].0;
        Some(Fit {
            slope,
            slope_lo: q(0.1),
            slope_hi: q(0.9),
            level: b + slope * t_last,
            resid_sigma,
            last_ts,
        })
    }

    /// When the series reaches `threshold` (from below), with an interval; `None` when it is
    /// not growing or there are too few points. Zero when already at or above it.
    pub fn eta(&self, threshold: f64) -> Option<Eta> {
        let f = self.fit()?;
        if !threshold.is_finite() {
            return None;
        }
        if f.level >= threshold {
            return Some(Eta {
                secs: 0.0,
                lower_secs: 0.0,
                upper_secs: 0.0,
                slope_per_sec: f.slope,
                level: f.level,
            });
        }
        if f.slope <= 0.0 {
            return None;
        }
        let secs = (threshold - f.level) / f.slope;
        let high_level = f.level + 2.0 * f.resid_sigma;
        let lower_secs = if high_level >= threshold {
            0.0
        } else {
            (threshold - high_level) / f.slope_hi.max(f.slope)
        };
        let upper_secs = if f.slope_lo > 0.0 {
            (threshold - (f.level - 2.0 * f.resid_sigma)) / f.slope_lo
        } else {
            f64::INFINITY
        };
        Some(Eta {
            secs,
            lower_secs: lower_secs.min(secs),
            upper_secs: upper_secs.max(secs),
            slope_per_sec: f.slope,
            level: f.level,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator: tests must not depend on a crate's RNG stream.
    fn noise(i: u64) -> f64 {
        let x = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    #[test]
    fn eta_of_noisy_linear_growth_is_accurate_and_brackets_the_truth() {
        // 100 MB + 1 MB/s with ±2 MB noise, sampled every 10 s; limit at 4 GB.
        let mut f = Forecaster::new(64);
        let mb = 1e6;
        for i in 0..200u64 {
            let t = i as f64 * 10.0;
            f.push(
                (t * 1000.0) as i64,
                100.0 * mb + mb * t + 4.0 * mb * noise(i),
            );
        }
        let now = 1990.0;
        let truth = (4000.0 * mb - (100.0 * mb + mb * now)) / mb;
        let e = f.eta(4000.0 * mb).unwrap();
        assert!((e.secs - truth).abs() / truth < 0.05, "{e:?} vs {truth}");
        assert!(
            e.lower_secs <= truth && truth <= e.upper_secs,
            "{e:?} vs {truth}"
        );
        assert!((e.slope_per_sec - mb).abs() / mb < 0.05);
    }

    #[test]
    fn flat_or_shrinking_series_has_no_eta_and_bad_points_are_ignored() {
        let mut f = Forecaster::new(16);
        for i in 0..20 {
            f.push(i * 1000, 50.0 - i as f64);
        }
        assert!(f.eta(100.0).is_none());
        assert!(!f.push(5, f64::NAN));
        assert!(!f.push(0, 1.0));
        assert!(f.eta(0.0).is_some_and(|e| e.secs == 0.0));
        f.reset();
        assert!(f.fit().is_none());
    }
}
