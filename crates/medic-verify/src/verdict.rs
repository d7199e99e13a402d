//! The verdict: the window rule plus a before/after test of each symptom's metric.
//!
//! The rule (the README's verification section says the same):
//! 1. The window rule fails (a symptom anomalous or without data at the deadline, a rollout
//!    that never settled, a PromQL check that failed): **not healed**.
//! 2. The window holds, and a measured symptom is significantly *worse* after the action than
//!    before (one-sided Mann–Whitney, Holm's step-down across the symptoms at α, so that one
//!    noisy symptom among several does not call a good action bad): **not healed**.
//! 3. The window holds, and every symptom either improved significantly (one-sided p < α), or
//!    has no test (an event such as an exit, or fewer than [`MIN_SAMPLES`] effective samples
//!    on a side) and a strong window (Clear in every round, at least
//!    [`crate::MIN_STRONG_ROUNDS`] rounds): **healed**. "Every symptom improved" is an
//!    intersection–union test: its false-accept rate is at most α with no correction, so each
//!    symptom is tested at α (Bonferroni or Holm would only cost power here).
//! 4. Otherwise **inconclusive**: the symptoms cleared, but a metric shows no significant
//!    improvement (the fault may have passed on its own), or the data are too thin and the
//!    window too weak to say.
//!
//! Metrics sampled every tick are autocorrelated (a ratio over a 30 s window changes little
//! from one second to the next), which the Mann–Whitney test does not allow for: its p-values
//! come out far too small. So each comparison first estimates the lag-1 autocorrelation ρ
//! within each side, and tests only every k-th sample, k = ⌈(1+ρ)/(1−ρ)⌉ (the ratio of
//! nominal to effective sample size of an AR(1) series). `tests/false_accept.rs` measures
//! the false-accept rate with and without this.

use crate::stats::{before_after_inflated, median};
use crate::window::WindowEvidence;
use medic_core::{Comparison, Direction, FindingKind, SymptomCheck, SymptomResult, Verdict};

/// Fewest samples per side (after thinning) for the before/after test to be run.
pub const MIN_SAMPLES: usize = 5;

/// Largest thinning step: beyond it a series has too few independent points anyway.
const MAX_THIN: usize = 50;

/// A symptom's metric sampled before the action (its anomalous period) and after it (the
/// clean window).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    pub metric: String,
    pub better: Direction,
    pub before: Vec<f64>,
    pub after: Vec<f64>,
}

/// How a comparison allows for autocorrelation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Thinning {
    /// Every sample, as if independent (measured for comparison only).
    None,
    /// Every k-th sample, k = ⌈(1+ρ)/(1−ρ)⌉ from the estimated lag-1 autocorrelation ρ.
    Thin,
    /// Every sample, with the variance of U inflated by (1+ρ)/(1−ρ).
    Inflate,
}

/// Compares `before` with `after` (NaN and infinities dropped) in the direction `better`.
pub fn compare(before: &[f64], after: &[f64], better: Direction, thinning: Thinning) -> Comparison {
    let finite = |v: &[f64]| -> Vec<f64> { v.iter().copied().filter(|x| x.is_finite()).collect() };
    let (before, after) = (finite(before), finite(after));
    let rho = match thinning {
        Thinning::None => 0.0,
        Thinning::Thin | Thinning::Inflate => dependence(&[&before, &after]),
    };
    let factor = (1.0 + rho) / (1.0 - rho);
    let (thin, inflation) = match thinning {
        Thinning::Thin => ((factor.ceil() as usize).clamp(1, MAX_THIN), 1.0),
        _ => (1, factor),
    };
    // Lower is better after orienting: the test asks whether after is lower.
    let orient = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .step_by(thin)
            .map(|x| match better {
                Direction::LowerIsBetter => *x,
                Direction::HigherIsBetter => -*x,
            })
            .collect()
    };
    let (b, a) = (orient(&before), orient(&after));
    let mut c = Comparison {
        n_before: before.len(),
        n_after: after.len(),
        thin,
        inflation,
        before_median: median(&before),
        after_median: median(&after),
        p_better: None,
        p_worse: None,
        effect: None,
    };
    let (eff_before, eff_after) = c.effective();
    if eff_before < MIN_SAMPLES as f64 || eff_after < MIN_SAMPLES as f64 {
        return c;
    }
    let better_test = before_after_inflated(&b, &a, inflation);
    let worse_test = before_after_inflated(&a, &b, inflation);
    c.p_better = Some(better_test.p_value);
    c.p_worse = Some(worse_test.p_value);
    c.effect = Some(better_test.prob_lower);
    c
}

/// Pooled lag-1 autocorrelation within the sides (each centred on its own mean, so a level
/// shift between them is not mistaken for autocorrelation); 0 when it cannot be estimated.
pub fn lag1_autocorrelation(sides: &[&[f64]]) -> f64 {
    let (mut num, mut den, mut n) = (0.0, 0.0, 0usize);
    for side in sides {
        // A constant side has no autocorrelation to speak of (and its rounding residue
        // around the mean would look perfectly correlated).
        if side.len() < 2 || side.iter().all(|x| *x == side[0]) {
            continue;
        }
        let mean = side.iter().sum::<f64>() / side.len() as f64;
        for w in side.windows(2) {
            num += (w[0] - mean) * (w[1] - mean);
        }
        den += side.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>();
        n += side.len();
    }
    if den <= 0.0 || !num.is_finite() || !den.is_finite() || n < 3 {
        return 0.0;
    }
    (num / den).clamp(-1.0, 1.0)
}

/// The lag-1 autocorrelation of the samples' within-side ranks (robust to heavy tails),
/// corrected for its small-sample bias (E[ρ̂] ≈ ρ − (1+4ρ)/n) and clamped to [0, 0.98];
/// a value within two standard errors of 0 is taken as independence.
fn dependence(sides: &[&[f64]]) -> f64 {
    let n = sides.iter().map(|s| s.len()).sum::<usize>() as f64;
    if n < 8.0 {
        return 0.0;
    }
    let ranked: Vec<Vec<f64>> = sides.iter().map(|s| ranks(s)).collect();
    let refs: Vec<&[f64]> = ranked.iter().map(Vec::as_slice).collect();
    let raw = lag1_autocorrelation(&refs);
    let rho = ((raw * n + 1.0) / (n - 4.0)).clamp(0.0, 0.98);
    if rho <= THRESHOLD_SE / n.sqrt() {
        0.0
    } else {
        rho
    }
}

const THRESHOLD_SE: f64 = 0.0;

/// Mid-ranks of `v` in its own order.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && v[idx[j]] == v[idx[i]] {
            j += 1;
        }
        let mid = (i + j + 1) as f64 / 2.0;
        for k in &idx[i..j] {
            r[*k] = mid;
        }
        i = j;
    }
    r
}

/// Whether a symptom's metric is a level the action should move. Events (an exit, an OOM
/// kill, a crash loop) are counted over long windows that lag the state, and one-off log
/// findings and load are not damage: for those the window rule alone decides.
pub fn measured(kind: FindingKind) -> bool {
    match kind {
        FindingKind::ErrorRate
        | FindingKind::Latency
        | FindingKind::MemoryGrowth
        | FindingKind::ErrorLogBurst
        | FindingKind::TargetDown
        | FindingKind::CpuSaturation
        | FindingKind::AlertFiring
        | FindingKind::MetricAnomaly
        | FindingKind::PredictedBreach => true,
        FindingKind::ProcessExit
        | FindingKind::OomKilled
        | FindingKind::CrashLoop
        | FindingKind::NewErrorMessage
        | FindingKind::TrafficSurge
        | FindingKind::NewLogTemplate
        | FindingKind::LogTemplateRate
        | FindingKind::LogPattern => false,
    }
}

/// One symptom's input to the verdict.
#[derive(Clone, Debug)]
pub struct SymptomInput {
    pub window: WindowEvidence,
    /// `None` when no detector sampled a metric for it.
    pub samples: Option<Samples>,
}

/// The verdict, its reason in words, and each symptom's evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reason: String,
    pub symptoms: Vec<SymptomCheck>,
}

/// Applies the rule in this module's documentation. `window`: `Ok` when the window rule
/// held, `Err(reason)` when it failed.
pub fn judge(window: Result<(), &str>, inputs: &[SymptomInput], alpha: f64) -> Judgement {
    let alpha = if alpha.is_finite() && alpha > 0.0 && alpha < 1.0 {
        alpha
    } else {
        crate::stats::ALPHA
    };
    let mut checks: Vec<SymptomCheck> = inputs.iter().map(check_of).collect();

    // Holm's step-down over the worse-tests: the i-th smallest p (0-based) of m is compared
    // with α/(m−i), stopping at the first that fails.
    let mut worse: Vec<(usize, f64)> = checks
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.test.p_worse.map(|p| (i, p)))
        .collect();
    worse.sort_by(|a, b| a.1.total_cmp(&b.1));
    let m = worse.len();
    for (rank, (i, p)) in worse.iter().enumerate() {
        if *p < alpha / (m - rank) as f64 {
            checks[*i].result = SymptomResult::Worse;
        } else {
            break;
        }
    }
    for c in &mut checks {
        if c.result == SymptomResult::NoChange && c.test.improved(alpha) {
            c.result = SymptomResult::Improved;
        }
    }

    let names = |f: &dyn Fn(&SymptomCheck) -> bool| -> Vec<String> {
        checks.iter().filter(|c| f(c)).map(describe).collect()
    };
    let (verdict, reason) = if let Err(reason) = window {
        (Verdict::NotHealed, reason.to_string())
    } else if checks.is_empty() {
        (
            Verdict::Inconclusive,
            "nothing to test: the plan names no symptoms".to_string(),
        )
    } else {
        let worse = names(&|c| c.result == SymptomResult::Worse);
        let unproven = names(&|c| {
            c.result == SymptomResult::NoChange
                || (matches!(
                    c.result,
                    SymptomResult::TooFewSamples | SymptomResult::NotMeasured
                ) && !c.window_strong)
        });
        if !worse.is_empty() {
            (
                Verdict::NotHealed,
                format!(
                    "clear by the window, but worse after the action: {}",
                    worse.join("; ")
                ),
            )
        } else if !unproven.is_empty() {
            (
                Verdict::Inconclusive,
                format!(
                    "clear by the window, but the action is not shown to have helped: {}",
                    unproven.join("; ")
                ),
            )
        } else {
            let all = names(&|_| true);
            (
                Verdict::Healed,
                format!("clear for the window; {}", all.join("; ")),
            )
        }
    };
    Judgement {
        verdict,
        reason,
        symptoms: checks,
    }
}

fn check_of(input: &SymptomInput) -> SymptomCheck {
    let symptom = input.window.symptom.clone();
    let samples = input.samples.as_ref().filter(|_| measured(symptom.kind));
    let test = samples.map(|s| compare(&s.before, &s.after, s.better, Thinning::Inflate));
    let result = match &test {
        None => SymptomResult::NotMeasured,
        Some(t) if t.p_better.is_none() => SymptomResult::TooFewSamples,
        Some(_) => SymptomResult::NoChange, // refined by `judge`
    };
    SymptomCheck {
        metric: input.samples.as_ref().map(|s| s.metric.clone()),
        better: input.samples.as_ref().map(|s| s.better).unwrap_or_default(),
        symptom,
        test: test.unwrap_or(Comparison {
            thin: 1,
            inflation: 1.0,
            ..Comparison::default()
        }),
        result,
        clear_rounds: input.window.clear_rounds,
        window_strong: input.window.strong,
    }
}

/// One symptom's evidence in a line.
fn describe(c: &SymptomCheck) -> String {
    let window = if c.window_strong {
        format!("clear in all {} rounds", c.clear_rounds)
    } else {
        format!("clear in {} rounds, not all", c.clear_rounds)
    };
    let t = &c.test;
    let medians = match (t.before_median, t.after_median) {
        (Some(b), Some(a)) => format!(
            " {} median {} → {}",
            c.metric.as_deref().unwrap_or("value"),
            fmt_num(b),
            fmt_num(a)
        ),
        _ => String::new(),
    };
    let (eb, ea) = t.effective();
    let n = format!(
        "n {}/{}, worth {eb:.0}/{ea:.0} independent",
        t.n_before, t.n_after
    );
    match c.result {
        SymptomResult::Improved | SymptomResult::NoChange | SymptomResult::Worse => format!(
            "{} {}:{medians}, p(better) {}, p(worse) {}, {n}",
            c.symptom,
            c.result.as_str().replace('_', " "),
            fmt_p(t.p_better),
            fmt_p(t.p_worse)
        ),
        SymptomResult::TooFewSamples => {
            format!("{} too few samples ({n};{medians}), {window}", c.symptom)
        }
        SymptomResult::NotMeasured => {
            format!(
                "{} not measured (an event, not a level), {window}",
                c.symptom
            )
        }
    }
}

fn fmt_p(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.0001 => "<0.0001".into(),
        Some(p) => format!("{p:.4}"),
        None => "-".into(),
    }
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 0.01 && v.abs() < 100_000.0) {
        format!("{v:.3}")
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests;
