//! An online baseline: exponentially weighted mean and mean absolute deviation.
//!
//! It refuses to judge before `warmup_samples` observations, and the detectors only feed it
//! values they judged normal, so a long fault is never absorbed into "normal".

use medic_config::BaselineConfig;

#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    alpha: f64,
    warmup: u32,
    samples: u32,
    mean: f64,
    dev: f64,
}

impl Baseline {
    pub fn new(cfg: &BaselineConfig) -> Self {
        // A nonsense alpha (NaN, <= 0, > 1) would freeze or explode the mean; fall back to
        // the documented default rather than panic on bad config.
        let alpha = if cfg.alpha.is_finite() && cfg.alpha > 0.0 && cfg.alpha <= 1.0 {
            cfg.alpha
        } else {
            BaselineConfig::default().alpha
        };
        Baseline {
            alpha,
            warmup: cfg.warmup_samples.max(1),
            samples: 0,
            mean: 0.0,
            dev: 0.0,
        }
    }

    /// Learn one normal observation. Non-finite values are ignored.
    pub fn learn(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.samples = self.samples.saturating_add(1);
        // Plain running average until alpha takes over, so the first samples are not
        // dominated by the zero the mean starts from.
        let w = (1.0 / f64::from(self.samples)).max(self.alpha);
        let deviation = (v - self.mean).abs();
        if self.samples == 1 {
            self.mean = v;
            self.dev = 0.0;
        } else {
            self.dev += w * (deviation - self.dev);
            self.mean += w * (v - self.mean);
        }
    }

    pub fn is_warm(&self) -> bool {
        self.samples >= self.warmup
    }

    /// The learned mean, once warm.
    pub fn mean(&self) -> Option<f64> {
        self.is_warm().then_some(self.mean)
    }

    /// The learned mean absolute deviation, once warm.
    pub fn deviation(&self) -> Option<f64> {
        self.is_warm().then_some(self.dev)
    }

    pub fn samples(&self) -> u32 {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(warmup: u32, alpha: f64) -> BaselineConfig {
        BaselineConfig {
            warmup_samples: warmup,
            alpha,
        }
    }

    #[test]
    fn no_judgement_before_warmup() {
        let mut b = Baseline::new(&cfg(3, 0.1));
        b.learn(1.0);
        b.learn(1.0);
        assert_eq!(b.mean(), None);
        assert_eq!(b.deviation(), None);
        b.learn(1.0);
        assert_eq!(b.mean(), Some(1.0));
        assert_eq!(b.deviation(), Some(0.0));
    }

    #[test]
    fn warmup_mean_is_the_average() {
        let mut b = Baseline::new(&cfg(4, 0.01));
        for v in [1.0, 2.0, 3.0, 4.0] {
            b.learn(v);
        }
        let m = b.mean().unwrap_or(f64::NAN);
        assert!((m - 2.5).abs() < 1e-9, "mean {m}");
        assert!(b.deviation().unwrap_or(0.0) > 0.5);
    }

    #[test]
    fn tracks_a_level_change_slowly() {
        let mut b = Baseline::new(&cfg(2, 0.1));
        for _ in 0..50 {
            b.learn(10.0);
        }
        b.learn(20.0);
        let m = b.mean().unwrap_or(f64::NAN);
        assert!(m > 10.0 && m < 12.0, "mean {m}");
    }

    #[test]
    fn ignores_non_finite() {
        let mut b = Baseline::new(&cfg(1, 0.5));
        b.learn(f64::NAN);
        b.learn(f64::INFINITY);
        assert_eq!(b.samples(), 0);
        b.learn(3.0);
        assert_eq!(b.mean(), Some(3.0));
    }

    #[test]
    fn bad_alpha_falls_back() {
        for alpha in [f64::NAN, 0.0, -1.0, 7.0] {
            let mut b = Baseline::new(&cfg(1, alpha));
            for _ in 0..100 {
                b.learn(5.0);
            }
            b.learn(6.0);
            let m = b.mean().unwrap_or(f64::NAN);
            assert!(
                m.is_finite() && m > 5.0 && m < 5.5,
                "alpha {alpha}: mean {m}"
            );
        }
    }
}
