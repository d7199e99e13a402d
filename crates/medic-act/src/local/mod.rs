//! The `local` actuator: an HTTP client of the demo estate's process supervisor (its `/v1`
//! control API). The supervisor itself is the demo's orchestrator and lives in `medic-demo`.

mod client;

pub use client::{LocalActuator, from_config};
