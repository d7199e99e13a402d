//! Subcommands, one file each.

pub mod analyze_logs;
pub mod detect_series;
pub mod eval_loghub;
pub mod eval_nab;
#[cfg(feature = "kubernetes")]
pub mod rbac;
pub mod token;
pub mod topology;
