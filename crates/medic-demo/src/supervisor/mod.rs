//! The local process supervisor: the demo estate's orchestrator. It runs the demo services as
//! real processes on 127.0.0.1 and serves the `/v1` control API that medic's `local` actuator
//! drives. The estate directory layout (`logs/`, `pids/`, `targets.json`, `endpoints/`,
//! `events.jsonl`, `changes.jsonl`, `instances/`, `configs/`, `supervisor.addr`,
//! `actions.jsonl`) and the API follow the demo estate contract.

mod api;
mod core;
mod files;
mod instance;
mod spec;

pub use core::Supervisor;
pub use spec::{
    InstanceStatus, MAX_REPLICAS, ReleaseSpec, RestartPolicy, WorkloadSpec, WorkloadStatus,
};
