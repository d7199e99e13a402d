//! A small deterministic PRNG (SplitMix64): the demo needs reproducible jitter and arrivals,
//! not cryptographic quality, and a seed must give the same run twice.

/// SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct Prng {
    state: u64,
}

impl Prng {
    pub fn new(seed: u64) -> Self {
        Prng { state: seed }
    }

    /// A generator for one named stream (an instance, the load generator) of one seed, so
    /// that two replicas with the same seed do not jitter in lockstep.
    pub fn for_stream(seed: u64, stream: &str) -> Self {
        // FNV-1a of the stream name, mixed into the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in stream.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Prng::new(seed ^ h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (clamped to [0, 1]).
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p.clamp(0.0, 1.0)
    }

    /// Uniform integer in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Exponentially distributed interval (seconds) for a Poisson process of `rate` per
    /// second; infinite when the rate is not positive.
    pub fn exp_interval(&mut self, rate: f64) -> f64 {
        if rate <= 0.0 || !rate.is_finite() {
            return f64::INFINITY;
        }
        // 1 - u is in (0, 1], so the log is finite.
        -(1.0 - self.next_f64()).ln() / rate
    }

    /// `base` scaled by a uniform factor in [1 - spread, 1 + spread].
    pub fn jitter(&mut self, base: f64, spread: f64) -> f64 {
        let s = spread.clamp(0.0, 1.0);
        base * (1.0 - s + 2.0 * s * self.next_f64())
    }

    /// A 16-hex-digit id (trace ids).
    pub fn hex_id(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let mut a = Prng::for_stream(7, "checkout-0");
        let mut b = Prng::for_stream(7, "checkout-0");
        let mut c = Prng::for_stream(7, "checkout-1");
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..5).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn floats_in_range_and_roughly_uniform() {
        let mut p = Prng::new(1);
        let n = 20_000;
        let mut sum = 0.0;
        for _ in 0..n {
            let x = p.next_f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
        }
        let mean = sum / n as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn chance_matches_probability() {
        let mut p = Prng::new(3);
        let hits = (0..20_000).filter(|_| p.chance(0.3)).count();
        let ratio = hits as f64 / 20_000.0;
        assert!((ratio - 0.3).abs() < 0.02, "ratio {ratio}");
        assert!(!p.chance(-1.0));
        assert!(p.chance(2.0));
    }

    #[test]
    fn exponential_mean_is_inverse_rate() {
        let mut p = Prng::new(5);
        let n = 20_000;
        let mean: f64 = (0..n).map(|_| p.exp_interval(50.0)).sum::<f64>() / n as f64;
        assert!((mean - 0.02).abs() < 0.002, "mean {mean}");
        assert!(p.exp_interval(0.0).is_infinite());
        assert!(p.exp_interval(f64::NAN).is_infinite());
    }

    #[test]
    fn below_and_jitter_bounds() {
        let mut p = Prng::new(9);
        assert_eq!(p.below(0), 0);
        for _ in 0..1000 {
            assert!(p.below(3) < 3);
            let j = p.jitter(100.0, 0.25);
            assert!((75.0..=125.0).contains(&j));
        }
        assert_eq!(p.hex_id().len(), 16);
    }
}
