//! What a verification found, as a typed record: the window rule's result, the before/after
//! test of each symptom's metric, the rollout and the PromQL checks, and the verdict.

use crate::finding::Symptom;
use crate::time::Ts;
use serde::{Deserialize, Serialize};

/// Healed, not healed, or inconclusive: the three answers a verification can give.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Healed,
    NotHealed,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healed => "healed",
            Verdict::NotHealed => "not_healed",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        [Verdict::Healed, Verdict::NotHealed, Verdict::Inconclusive]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Which way a symptom's metric moves when things get better.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Error ratio, latency, memory, restarts, targets down, alerts firing.
    #[default]
    LowerIsBetter,
    /// Throughput, availability: a metric whose anomaly was a drop.
    HigherIsBetter,
}

/// The before/after test's answer for one symptom.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymptomResult {
    /// Significantly better after the action (one-sided p < α).
    Improved,
    /// Significantly worse after the action (one-sided p below the Holm threshold).
    Worse,
    /// Enough samples, no significant change either way.
    NoChange,
    /// Fewer than the minimum (effective) samples on one side.
    TooFewSamples,
    /// The symptom is an event (an exit, a crash loop), not a level a metric can compare:
    /// the window rule alone decides.
    NotMeasured,
}

impl SymptomResult {
    pub fn as_str(self) -> &'static str {
        match self {
            SymptomResult::Improved => "improved",
            SymptomResult::Worse => "worse",
            SymptomResult::NoChange => "no_change",
            SymptomResult::TooFewSamples => "too_few_samples",
            SymptomResult::NotMeasured => "not_measured",
        }
    }
}

/// One symptom's evidence: the window rule's view and the before/after test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SymptomCheck {
    pub symptom: Symptom,
    /// The metric behind the symptom (`error_ratio`, `latency_p99` ...), when one was sampled.
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub better: Direction,
    /// The before/after comparison of that metric.
    #[serde(flatten)]
    pub test: Comparison,
    pub result: SymptomResult,
    /// Rounds of the clean window in which the detector judged the symptom Clear, and
    /// whether the window alone is strong evidence (Clear in every round, enough rounds).
    pub clear_rounds: u32,
    pub window_strong: bool,
}

/// A before/after comparison of one metric: sizes, medians, one-sided p-values and effect.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Finite samples before the action and in the clean window after it.
    pub n_before: usize,
    pub n_after: usize,
    /// Every `thin`-th sample was tested, and U's variance multiplied by `inflation`: the
    /// allowance for autocorrelated samples (1 and 1: treated as independent).
    pub thin: usize,
    pub inflation: f64,
    pub before_median: Option<f64>,
    pub after_median: Option<f64>,
    /// One-sided p-values of "better after" and "worse after"; `None`: too few samples.
    pub p_better: Option<f64>,
    pub p_worse: Option<f64>,
    /// Probability that a random after-sample is better than a random before-sample (ties
    /// half): 0.5 is no effect, 1 every one better.
    pub effect: Option<f64>,
}

impl Comparison {
    /// Samples worth as much as this many independent ones, before and after.
    pub fn effective(&self) -> (f64, f64) {
        let per = self.thin.max(1) as f64 * self.inflation.max(1.0);
        (self.n_before as f64 / per, self.n_after as f64 / per)
    }

    /// Significantly better at `alpha`.
    pub fn improved(&self, alpha: f64) -> bool {
        self.p_better.is_some_and(|p| p < alpha)
    }
}

/// A PromQL check's last answer: held, failed, or could not be run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub expr: String,
    pub held: Option<bool>,
}

/// The stored result of one verification (one per attempt).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerificationRecord {
    pub incident: String,
    /// The execution attempt verified.
    pub attempt: u32,
    pub started: Ts,
    pub decided_at: Ts,
    pub window_s: f64,
    /// Significance level of the before/after test.
    pub alpha: f64,
    pub verdict: Verdict,
    pub reason: String,
    pub symptoms: Vec<SymptomCheck>,
    #[serde(default)]
    pub rollout: Option<String>,
    #[serde(default)]
    pub checks: Vec<CheckResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_words_round_trip() {
        for v in [Verdict::Healed, Verdict::NotHealed, Verdict::Inconclusive] {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
            let json = serde_json::to_string(&v).expect("json");
            assert_eq!(json, format!("\"{}\"", v.as_str()));
        }
        assert_eq!(Verdict::parse("maybe"), None);
    }

    #[test]
    fn outcomes_stored_before_inconclusive_existed_still_read() {
        use crate::Outcome;
        let old: Outcome =
            serde_json::from_str(r#"{"outcome":"not_healed","reason":"r"}"#).expect("old");
        assert_eq!(old, Outcome::NotHealed { reason: "r".into() });
        let new = Outcome::Inconclusive { reason: "x".into() };
        let json = serde_json::to_string(&new).expect("json");
        assert_eq!(json, r#"{"outcome":"inconclusive","reason":"x"}"#);
        assert_eq!(serde_json::from_str::<Outcome>(&json).expect("back"), new);
    }
}
