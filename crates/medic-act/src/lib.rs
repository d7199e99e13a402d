//! Actuators: the only way medic changes the estate. The catalogue is closed: an actuator
//! receives a [`medic_core::Action`], never a command line.
//!
//! One actuator per platform, each in its own module, registered in [`registry`]:
//! [`local`] drives the demo estate's process supervisor over HTTP; `kubernetes` (feature
//! `kubernetes`) changes a cluster through its API server.

use medic_core::{Action, WorkloadRef};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod local;
pub mod registry;

pub use registry::Actuators;

/// A boxed future, so that [`Actuator`] stays object-safe (the agent holds `Arc<dyn Actuator>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that can carry out catalogue actions on an estate.
pub trait Actuator: Send + Sync {
    fn name(&self) -> &str;
    /// Execute at most once per idempotency key. A repeated key returns the first result with
    /// `applied = false`.
    fn execute<'a>(
        &'a self,
        key: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionReport, ActError>>;
    /// Current replica count of a workload (for scale planning); `None` if unknown.
    fn replicas<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<Option<u32>, ActError>>;
    /// The typed object a service name stands for on this actuator's platform; `None` when
    /// this actuator does not know the service.
    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadRef>, ActError>> {
        let _ = service;
        Box::pin(async { Ok(None) })
    }
    /// The workload's own labels (`metadata.labels`), for policies that select by label;
    /// `None` when this platform has no labels or does not know the service.
    fn labels<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Option<std::collections::BTreeMap<String, String>>, ActError>> {
        let _ = service;
        Box::pin(async { Ok(None) })
    }
    /// The memory limit of a workload's container (`None`: the first container), in bytes;
    /// `None` when unknown or unlimited.
    fn memory_limit<'a>(
        &'a self,
        service: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<u64>, ActError>> {
        let _ = (service, container);
        Box::pin(async { Ok(None) })
    }
    /// Whether the workload has settled after an action (its rollout complete, every replica
    /// ready); `None` when the platform has no such notion. Verification waits for it.
    fn health<'a>(
        &'a self,
        workload: &'a WorkloadRef,
    ) -> BoxFuture<'a, Result<Option<WorkloadHealth>, ActError>> {
        let _ = workload;
        Box::pin(async { Ok(None) })
    }
    /// What `execute` would do, changing nothing: a server-side dry run where the platform
    /// has one. The default says plainly that this actuator cannot check.
    fn dry_run<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<ActionReport, ActError>> {
        Box::pin(async move {
            Ok(ActionReport {
                applied: false,
                detail: format!(
                    "dry run: would run {action} ({} has no server-side dry run, so it was not checked)",
                    self.name()
                ),
            })
        })
    }
}

/// Whether a workload has settled, and the numbers that say so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadHealth {
    pub settled: bool,
    pub detail: String,
}

/// What an actuator reports about one execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReport {
    /// `false` when the idempotency key had already been executed: nothing was done this time.
    pub applied: bool,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The action is impossible in the current state (unknown service, nothing to roll back
    /// to, replica count out of range). Retrying will not help.
    #[error("action rejected: {0}")]
    Rejected(String),
    /// The request itself was malformed (bad key, bad body, bad spec).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The actuator's backend could not be reached.
    #[error("actuator unreachable: {0}")]
    Unreachable(String),
    /// The backend answered something we did not expect.
    #[error("unexpected answer from actuator: {0}")]
    Protocol(String),
    /// Processes did not come up in time.
    #[error("not ready: {0}")]
    NotReady(String),
    /// The supervisor has been shut down.
    #[error("supervisor is shut down")]
    ShutDown,
    /// The platform refused for lack of permission: the message names the verb and resource.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The object is not in the state the diagnosis saw: acting now would act on stale state.
    #[error("stale state: {0}")]
    Stale(String),
    /// The object is managed by something else that would undo the change (a GitOps
    /// controller): medic recommends instead.
    #[error("managed elsewhere: {0}")]
    ManagedElsewhere(String),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ActError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> ActError {
        ActError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
