//! The local process supervisor (runs the demo estate as real processes on 127.0.0.1) and the
//! `local` actuator that drives it over HTTP. The estate directory layout (`logs/`, `pids/`,
//! `targets.json`, `endpoints/`, `events.jsonl`, `changes.jsonl`, `instances/`, `configs/`,
//! `supervisor.addr`, `actions.jsonl`) and the `/v1` control API follow the demo estate contract.

mod api;
mod client;
mod files;
mod instance;
mod spec;
mod supervisor;

pub use client::{LocalActuator, from_config};
pub use spec::{
    InstanceStatus, MAX_REPLICAS, ReleaseSpec, RestartPolicy, WorkloadSpec, WorkloadStatus,
};
pub use supervisor::Supervisor;
