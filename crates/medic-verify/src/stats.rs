//! Before/after comparison of a metric (lower is better: error ratio, latency, memory):
//! one-sided Mann–Whitney U test with the normal approximation, tie correction and
//! continuity correction.

use serde::{Deserialize, Serialize};

/// Significance level below which `improved` is true.
pub const ALPHA: f64 = 0.05;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BeforeAfter {
    /// The after-values are significantly lower than the before-values (p < [`ALPHA`]).
    pub improved: bool,
    /// One-sided p-value of "after is lower than before"; 1 when there is nothing to compare.
    pub p_value: f64,
    /// U statistic of the after sample (0 = every after-value below every before-value).
    pub u_after: f64,
    /// Probability that a random after-value is below a random before-value (ties count
    /// half): the effect size, 0.5 = no difference.
    pub prob_lower: f64,
    pub before_median: Option<f64>,
    pub after_median: Option<f64>,
    /// Finite values used (NaN and infinities are dropped).
    pub n_before: usize,
    pub n_after: usize,
}

pub fn before_after(before: &[f64], after: &[f64]) -> BeforeAfter {
    before_after_inflated(before, after, 1.0)
}

/// [`before_after`] with the variance of U multiplied by `inflation` (≥ 1): the allowance
/// for autocorrelated samples, whose rank sums vary more than independent ones' do.
pub(crate) fn before_after_inflated(before: &[f64], after: &[f64], inflation: f64) -> BeforeAfter {
    let inflation = if inflation.is_finite() {
        inflation.max(1.0)
    } else {
        1.0
    };
    let before: Vec<f64> = before.iter().copied().filter(|v| v.is_finite()).collect();
    let after: Vec<f64> = after.iter().copied().filter(|v| v.is_finite()).collect();
    let (n1, n2) = (before.len(), after.len());
    let mut result = BeforeAfter {
        improved: false,
        p_value: 1.0,
        u_after: 0.0,
        prob_lower: 0.5,
        before_median: median(&before),
        after_median: median(&after),
        n_before: n1,
        n_after: n2,
    };
    if n1 == 0 || n2 == 0 {
        return result;
    }

    // Rank the pooled sample; tied values share the mean of their ranks.
    let mut pooled: Vec<(f64, bool)> = before
        .iter()
        .map(|v| (*v, false))
        .chain(after.iter().map(|v| (*v, true)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pooled.len();
    let mut rank_sum_after = 0.0;
    let mut tie_term = 0.0; // Σ (t³ − t) over tie groups
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        let mid_rank = (i + j + 1) as f64 / 2.0; // ranks i+1 ..= j
        let in_after = pooled[i..j].iter().filter(|(_, a)| *a).count();
        rank_sum_after += mid_rank * in_after as f64;
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }

    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u_after = rank_sum_after - n2f * (n2f + 1.0) / 2.0;
    let mean = n1f * n2f / 2.0;
    let variance = inflation * n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    result.u_after = u_after;
    result.prob_lower = 1.0 - u_after / (n1f * n2f);
    if variance <= 0.0 {
        // Every value equal: no evidence either way.
        return result;
    }
    // Lower tail, with the continuity correction pulling towards the mean.
    let z = (u_after - mean + 0.5) / variance.sqrt();
    result.p_value = normal_cdf(z).clamp(0.0, 1.0);
    result.improved = result.p_value < ALPHA;
    result
}

pub(crate) fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Standard normal CDF via the complementary error function.
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function, Chebyshev approximation (Numerical Recipes `erfcc`),
/// fractional error below 1.2e-7 everywhere: ample for a p-value.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() < tol
    }

    #[test]
    fn normal_cdf_matches_table_values() {
        // Standard normal table.
        assert!(close(normal_cdf(0.0), 0.5, 1e-7));
        assert!(close(normal_cdf(1.96), 0.975_002, 1e-5));
        assert!(close(normal_cdf(-1.645), 0.049_985, 1e-5));
        assert!(close(normal_cdf(-3.0), 0.001_350, 1e-5));
        assert!(close(normal_cdf(8.0), 1.0, 1e-9));
    }

    #[test]
    fn textbook_example_without_ties() {
        // After all below before, n1 = n2 = 3: U = 0, mean 4.5, σ² = 5.25,
        // z = (0 − 4.5 + 0.5)/√5.25 = −1.7457, Φ(z) = 0.04043.
        let r = before_after(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]);
        assert_eq!(r.u_after, 0.0);
        assert_eq!(r.prob_lower, 1.0);
        assert!(close(r.p_value, 0.040_43, 1e-4), "{r:?}");
        assert!(r.improved);
    }

    #[test]
    fn ties_use_mid_ranks_and_corrected_variance() {
        // Pooled 1a 2a 2a 2b 3b 4b: ranks 1, 3, 3, 3, 5, 6 → R_after = 7, U = 1.
        // σ² = 9/12 × (7 − 24/30) = 4.65, z = (1 − 4.5 + 0.5)/√4.65 = −1.3912, Φ = 0.08208.
        let r = before_after(&[2.0, 3.0, 4.0], &[1.0, 2.0, 2.0]);
        assert_eq!(r.u_after, 1.0);
        assert!(close(r.p_value, 0.082_08, 1e-4), "{r:?}");
        assert!(!r.improved);
    }

    #[test]
    fn clear_improvement_and_clear_worsening() {
        let before: Vec<f64> = (0..30).map(|i| 0.30 + f64::from(i % 7) * 0.01).collect();
        let after: Vec<f64> = (0..30).map(|i| 0.01 + f64::from(i % 5) * 0.002).collect();
        let better = before_after(&before, &after);
        assert!(better.improved && better.p_value < 1e-6, "{better:?}");
        let worse = before_after(&after, &before);
        assert!(!worse.improved && worse.p_value > 0.999, "{worse:?}");
        assert_eq!(worse.prob_lower, 0.0);
    }

    #[test]
    fn same_distribution_is_not_improved() {
        let a: Vec<f64> = (0..40).map(|i| f64::from((i * 7) % 11)).collect();
        let b: Vec<f64> = (0..40).map(|i| f64::from((i * 3) % 11)).collect();
        let r = before_after(&a, &b);
        assert!(!r.improved && r.p_value > 0.2, "{r:?}");
    }

    #[test]
    fn degenerate_inputs() {
        let empty = before_after(&[], &[1.0]);
        assert_eq!(
            (empty.improved, empty.p_value, empty.n_before),
            (false, 1.0, 0)
        );
        let constant = before_after(&[2.0; 10], &[2.0; 10]);
        assert_eq!((constant.improved, constant.p_value), (false, 1.0));
        let hostile = before_after(
            &[f64::NAN, f64::INFINITY, 5.0, 6.0, 7.0],
            &[f64::NEG_INFINITY, 1.0, 2.0, 3.0, f64::NAN],
        );
        assert_eq!((hostile.n_before, hostile.n_after), (3, 3));
        assert!(close(hostile.p_value, 0.040_43, 1e-4));
        assert_eq!(hostile.before_median, Some(6.0));
        assert_eq!(hostile.after_median, Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn large_samples_are_fine() {
        let before: Vec<f64> = (0..100_000).map(|i| f64::from(i % 1000)).collect();
        let after: Vec<f64> = (0..100_000).map(|i| f64::from(i % 1000) - 1.0).collect();
        let r = before_after(&before, &after);
        assert!(r.p_value.is_finite() && (0.0..=1.0).contains(&r.p_value));
    }
}
