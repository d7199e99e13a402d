//! The before/after test's false-accept rate and power, measured by simulation (seeded, so
//! the numbers are the same on every run). A "false accept" is calling a symptom improved
//! when before and after come from the same process. Metrics are modelled on a log scale,
//! value = exp(σ·e_t) with σ = 0.5, and e_t:
//! - `normal`: independent N(0, 1);
//! - `heavy`: independent Student t with 2 degrees of freedom (infinite variance);
//! - `ar1(ρ)`: e_t = ρ·e_{t−1} + √(1−ρ²)·N(0, 1), as a windowed metric sampled every tick.
//!
//! Three ways to test: plain Mann–Whitney (as if independent), thinned to every k-th
//! sample, and all samples with U's variance inflated by (1+ρ)/(1−ρ) — the last is what the
//! verdict uses. Power: the after side's level halved (a real 50 % drop). Printed with
//! `cargo test -p medic-verify --release --test false_accept -- --nocapture`.

use medic_core::Direction;
use medic_verify::{ALPHA, Thinning, compare};

/// Trials per cell: the published numbers come from a release build; a debug build (CI's
/// `cargo test`) runs fewer, and its bounds widen by the larger binomial error.
const TRIALS: usize = if cfg!(debug_assertions) { 500 } else { 2000 };
const SIGMA: f64 = 0.5;

/// xorshift64*: small, seeded, good enough for a simulation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// Student t with 2 degrees of freedom: N / √(χ²₂ / 2), χ²₂ = −2 ln U.
    fn t2(&mut self) -> f64 {
        let z = self.normal();
        let chi2 = -2.0 * self.unit().ln();
        z / (chi2 / 2.0).sqrt()
    }
}

#[derive(Copy, Clone, Debug)]
enum Noise {
    Normal,
    Heavy,
    Ar1(f64),
}

impl Noise {
    fn name(self) -> String {
        match self {
            Noise::Normal => "normal".into(),
            Noise::Heavy => "heavy (t2)".into(),
            Noise::Ar1(r) => format!("AR(1) ρ={r}"),
        }
    }

    /// `n` samples at `level`; the AR(1) series starts from its stationary distribution.
    fn series(self, rng: &mut Rng, n: usize, level: f64) -> Vec<f64> {
        let mut e = rng.normal();
        (0..n)
            .map(|_| {
                let x = match self {
                    Noise::Normal => rng.normal(),
                    Noise::Heavy => rng.t2(),
                    Noise::Ar1(r) => {
                        e = r * e + (1.0 - r * r).sqrt() * rng.normal();
                        e
                    }
                };
                level * (SIGMA * x).exp()
            })
            .collect()
    }
}

/// Share of trials called improved, with after's level `after_level` (1 = no change).
fn rate(noise: Noise, n: usize, after_level: f64, thinning: Thinning, seed: u64) -> f64 {
    let mut rng = Rng(seed);
    let mut yes = 0;
    for _ in 0..TRIALS {
        let before = noise.series(&mut rng, n, 1.0);
        let after = noise.series(&mut rng, n, after_level);
        if compare(&before, &after, Direction::LowerIsBetter, thinning).improved(ALPHA) {
            yes += 1;
        }
    }
    yes as f64 / TRIALS as f64
}

const NOISES: [Noise; 4] = [
    Noise::Normal,
    Noise::Heavy,
    Noise::Ar1(0.5),
    Noise::Ar1(0.9),
];

#[test]
fn false_accept_rate_and_power() {
    println!(
        "| noise | n per side | false accept: plain MW | thinned | inflated | power (50% drop): plain | thinned | inflated |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut worst = 0.0f64;
    let mut failures = Vec::new();
    for (i, noise) in NOISES.into_iter().enumerate() {
        for n in [10usize, 30, 120, 480] {
            let seed = 0x9e37_79b9_7f4a_7c15 ^ ((i as u64) << 32 | n as u64);
            let fa_plain = rate(noise, n, 1.0, Thinning::None, seed);
            let fa_thin = rate(noise, n, 1.0, Thinning::Thin, seed);
            let fa_infl = rate(noise, n, 1.0, Thinning::Inflate, seed);
            let pw_plain = rate(noise, n, 0.5, Thinning::None, seed ^ 1);
            let pw_thin = rate(noise, n, 0.5, Thinning::Thin, seed ^ 1);
            let pw_infl = rate(noise, n, 0.5, Thinning::Inflate, seed ^ 1);
            println!(
                "| {} | {n} | {fa_plain:.3} | {fa_thin:.3} | {fa_infl:.3} | {pw_plain:.3} | {pw_thin:.3} | {pw_infl:.3} |",
                noise.name()
            );
            worst = worst.max(fa_infl);
            // The verdict's test (inflated): the level holds where independence holds, and
            // stays near it under autocorrelation (within three binomial standard errors).
            let slack = 3.0 * (ALPHA * (1.0 - ALPHA) / TRIALS as f64).sqrt();
            let bound = match noise {
                Noise::Normal | Noise::Heavy => ALPHA + slack,
                Noise::Ar1(_) => 0.085 + slack,
            };
            if fa_infl > bound {
                failures.push(format!(
                    "{} n={n}: false accept {fa_infl} > {bound}",
                    noise.name()
                ));
            }
            // A real halving is found where there are enough effective samples.
            let enough = match noise {
                Noise::Ar1(r) if r >= 0.9 => n >= 480,
                Noise::Ar1(_) => n >= 120,
                _ => n >= 30,
            };
            if enough && pw_infl < 0.95 - slack {
                failures.push(format!("{} n={n}: power {pw_infl} < 0.95", noise.name()));
            }
            // Autocorrelation inflates the plain test's false accepts: the reason to thin.
            if matches!(noise, Noise::Ar1(r) if r >= 0.9) && n >= 30 && fa_plain <= 2.0 * ALPHA {
                failures.push(format!(
                    "{} n={n}: plain MW false accept {fa_plain} not inflated?",
                    noise.name()
                ));
            }
        }
    }
    println!("worst false-accept rate of the verdict's (inflated) test: {worst:.3}");
    assert!(failures.is_empty(), "{failures:#?}");
}
