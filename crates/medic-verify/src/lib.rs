//! Verification: did the symptoms clear and stay clear (and the workload's rollout settle),
//! and did their metrics really improve. Pure logic, no IO: the caller feeds detector
//! judgements, health readings and metric samples in and reads a [`VerifyStatus`] and a
//! [`Judgement`] out.

mod stats;
mod verdict;
mod window;

pub use stats::{ALPHA, BeforeAfter, before_after};
pub use verdict::{
    Judgement, MIN_SAMPLES, Samples, SymptomInput, Thinning, compare, judge, lag1_autocorrelation,
    measured,
};
pub use window::{MIN_STRONG_ROUNDS, Rollout, Verification, VerifyStatus, WindowEvidence};
