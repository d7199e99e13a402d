//! How anomalous one series is during the incident compared with its baseline, in robust
//! units: (value − median) / scale, signed so that "worse" is positive.

use super::{MetricKind, Point};

/// The baseline's centre and spread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub scale: f64,
}

/// Fewer baseline points than this and a series is not scored (its spread means nothing).
pub const MIN_BASELINE_POINTS: usize = 5;

/// A z beyond this is reported as this: a series that was flat at zero and now moves is
/// "very anomalous", not infinitely so, and a cap keeps one such series from dwarfing
/// everything else in sums.
pub const Z_CAP: f64 = 1000.0;

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Median and scale of the finite values, or None with too few of them. The scale is the
/// largest of three estimators that all equal σ for Gaussian data (MAD, IQR, the 1–99%
/// range): MAD alone is 0 for series that are mostly one value (availability at 100,
/// request counts of 0) and would make any wobble look infinite; a small floor relative to
/// the level keeps a perfectly flat baseline finite too.
pub fn spread(values: impl Iterator<Item = f64>) -> Option<Spread> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.len() < MIN_BASELINE_POINTS {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let median = quantile(&v, 0.5);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = 1.4826 * quantile(&dev, 0.5);
    let iqr = (quantile(&v, 0.75) - quantile(&v, 0.25)) / 1.349;
    let wide = (quantile(&v, 0.99) - quantile(&v, 0.01)) / 4.653;
    let level = median.abs().max(v[v.len() - 1].abs());
    let floor = (1e-3 * level).max(1e-9);
    Some(Spread {
        median,
        scale: mad.max(iqr).max(wide).max(floor),
    })
}

/// Signed robust z of one value: positive means worse for this kind of metric.
pub fn z(kind: MetricKind, s: Spread, x: f64) -> f64 {
    let d = (x - s.median) / s.scale;
    let signed = match kind {
        MetricKind::Latency | MetricKind::Errors | MetricKind::Resource => d,
        MetricKind::Availability => -d,
        MetricKind::Throughput => d.abs(),
    };
    signed.clamp(-Z_CAP, Z_CAP)
}

/// The sustained peak over the incident points: the `k`-th largest z (the largest when
/// fewer points), the value and time there, and the first time z reached `threshold`.
/// With `k` > 1 a single-sample blip does not count as much as a change that lasts.
pub fn peak(
    kind: MetricKind,
    s: Spread,
    points: &[Point],
    threshold: f64,
    k: usize,
) -> Option<(f64, f64, f64, Option<f64>)> {
    let mut all: Vec<(f64, f64, f64)> = points
        .iter()
        .filter(|p| p.value.is_finite() && p.ts.is_finite())
        .map(|p| (z(kind, s, p.value), p.value, p.ts))
        .collect();
    let first = all
        .iter()
        .filter(|x| x.0 >= threshold)
        .map(|x| x.2)
        .min_by(f64::total_cmp);
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.total_cmp(&b.2)));
    let i = k.clamp(1, all.len().max(1)) - 1;
    all.get(i).map(|&(zz, v, t)| (zz, v, t, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_baseline_has_a_finite_scale() {
        let s = spread([100.0; 20].into_iter()).unwrap();
        assert!(s.scale > 0.0 && s.scale < 1.0);
        assert!(z(MetricKind::Availability, s, 99.0) > 3.0);
        let zero = spread([0.0; 20].into_iter()).unwrap();
        assert_eq!(z(MetricKind::Throughput, zero, 5.0), Z_CAP);
    }

    #[test]
    fn too_few_or_nan_points_have_no_spread() {
        assert!(spread([1.0, f64::NAN, 2.0, f64::INFINITY].into_iter()).is_none());
    }

    #[test]
    fn direction_follows_the_kind() {
        let s = Spread {
            median: 10.0,
            scale: 1.0,
        };
        assert_eq!(z(MetricKind::Latency, s, 13.0), 3.0);
        assert_eq!(z(MetricKind::Availability, s, 13.0), -3.0);
        assert_eq!(z(MetricKind::Throughput, s, 7.0), 3.0);
    }
}
