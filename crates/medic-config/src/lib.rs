//! medic.yaml and policy files: parsed with positions, validated with every error reported.

mod types;
pub use types::*;
