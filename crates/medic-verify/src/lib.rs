//! Verification: did the symptoms clear and stay clear (and the workload's rollout settle).
//! Pure logic, no IO: the caller feeds detector judgements and health readings in and reads a
//! [`VerifyStatus`] out.

mod stats;
mod window;

pub use stats::{BeforeAfter, before_after};
pub use window::{Rollout, Verification, VerifyStatus};
