//! medic.yaml and policy files: parsed with positions, validated with every error reported.
//!
//! ```no_run
//! use medic_config::{load, process_env};
//! match load(std::path::Path::new("medic.yaml"), &process_env) {
//!     Ok(config) => println!("{} sources", config.sources.len()),
//!     Err(errors) => errors.iter().for_each(|e| eprintln!("{e}")),
//! }
//! ```

mod duration;
mod env;
mod error;
mod glob;
mod load;
mod node;
mod reader;
mod sections;
mod types;

pub use duration::parse_duration;
pub use env::{EnvLookup, process_env};
pub use error::ConfigError;
pub use load::{MAX_FILE_BYTES, load, load_policy_file, load_policy_set, load_str, validate_files};
pub use node::MAX_DEPTH;
pub use types::*;

/// The config `medic demo` runs with (`examples/demo/medic.yaml`): it expects `ESTATE_DIR`,
/// `SUPERVISOR_URL` and `MEDIC_STORE` to be set, and `MEDIC_ESCALATION_WEBHOOK` optionally.
pub const DEMO_CONFIG_YAML: &str = include_str!("../../../examples/demo/medic.yaml");

/// The default policy set (`examples/policies/default.yaml`).
pub const DEFAULT_POLICIES_YAML: &str = include_str!("../../../examples/policies/default.yaml");
