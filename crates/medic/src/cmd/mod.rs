//! Subcommands, one file each.

pub mod analyze_logs;
pub mod detect_series;
pub mod eval_loghub;
pub mod eval_nab;
pub mod eval_petshop;
pub mod policies;
#[cfg(feature = "kubernetes")]
pub mod rbac;
pub mod replay;
pub mod token;
pub mod topology;
