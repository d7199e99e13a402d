//! The local process supervisor (runs the demo estate as real processes on 127.0.0.1) and the
//! `local` actuator that drives it over HTTP. The estate directory layout and the control API
//! follow the demo estate contract (see the crate README in the design notes).

mod api;
mod client;
mod files;
mod instance;
mod spec;
mod supervisor;

pub use client::LocalActuator;
pub use spec::{
    InstanceStatus, MAX_REPLICAS, ReleaseSpec, RestartPolicy, WorkloadSpec, WorkloadStatus,
};
pub use supervisor::Supervisor;
