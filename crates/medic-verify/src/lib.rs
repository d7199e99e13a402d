//! Verification: did the symptoms clear and stay clear. Pure logic, no IO: the caller feeds
//! detector judgements in and reads a [`VerifyStatus`] out.

mod stats;
mod window;

pub use stats::{BeforeAfter, before_after};
pub use window::{Verification, VerifyStatus};
