//! Policies, plans and guards: what medic may do, and when.
//!
//! [`plan`] turns a diagnosis into a [`Plan`](medic_core::Plan) using the first matching
//! policy; [`decide`] runs the [`guards`] over it and applies the policy's mode.

pub mod autonomy;
mod decide;
mod glob;
pub mod guards;
mod plan;
pub mod replay;
pub mod report;

pub use decide::{decide, explain};
pub use glob::glob_matches;
pub use guards::{History, Verdict};
pub use plan::{NoPlan, Observed, attempts_left, attempts_of, covers, plan, plan_observed};
