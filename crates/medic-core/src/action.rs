//! The closed catalogue of actions, their executions, and the outcome of a remediation.

use crate::time::Ts;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Every action medic can take. Nothing outside this list can run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Replace the workload's processes with fresh ones (same release, same config).
    RestartWorkload,
    /// Set the number of replicas.
    ScaleWorkload,
    /// Go back to the release that ran before the current one.
    RollbackRelease,
    /// Go back to the configuration that was in force before the current one.
    RevertConfig,
    /// Delete one pod (the named one, or the workload's least healthy) so its controller
    /// replaces it.
    DeletePod,
    /// Raise a container's memory limit, within the policy's bound.
    SetResources,
    /// Mark a node unschedulable.
    CordonNode,
    /// Cordon a node and evict its pods through the Eviction API (never forced).
    DrainNode,
    /// Cut a workload off the network (a deny-all NetworkPolicy).
    IsolateWorkload,
    /// Take no action (record only): used by policies that only observe.
    NoAction,
}

impl ActionKind {
    pub const ALL: [ActionKind; 10] = [
        ActionKind::RestartWorkload,
        ActionKind::ScaleWorkload,
        ActionKind::RollbackRelease,
        ActionKind::RevertConfig,
        ActionKind::DeletePod,
        ActionKind::SetResources,
        ActionKind::CordonNode,
        ActionKind::DrainNode,
        ActionKind::IsolateWorkload,
        ActionKind::NoAction,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::RestartWorkload => "restart_workload",
            ActionKind::ScaleWorkload => "scale_workload",
            ActionKind::RollbackRelease => "rollback_release",
            ActionKind::RevertConfig => "revert_config",
            ActionKind::DeletePod => "delete_pod",
            ActionKind::SetResources => "set_resources",
            ActionKind::CordonNode => "cordon_node",
            ActionKind::DrainNode => "drain_node",
            ActionKind::IsolateWorkload => "isolate_workload",
            ActionKind::NoAction => "no_action",
        }
    }
    pub fn parse(s: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|a| a.as_str() == s)
    }
    /// Whether the action replaces running processes (restart, rollback, config revert):
    /// what must never happen for a planned event.
    pub fn is_disruptive(self) -> bool {
        matches!(
            self,
            ActionKind::RestartWorkload
                | ActionKind::RollbackRelease
                | ActionKind::RevertConfig
                | ActionKind::DeletePod
                | ActionKind::SetResources
                | ActionKind::DrainNode
                | ActionKind::IsolateWorkload
        )
    }
    /// Whether the action swaps the current version for the previous one (so a second run
    /// in the same incident would bring back what the first removed).
    pub fn is_undo(self) -> bool {
        matches!(self, ActionKind::RollbackRelease | ActionKind::RevertConfig)
    }
    /// The action's class, which decides whether a policy may run it unattended.
    pub fn class(self) -> ActionClass {
        match self {
            ActionKind::RestartWorkload
            | ActionKind::RollbackRelease
            | ActionKind::RevertConfig
            | ActionKind::DeletePod => ActionClass::Workload,
            ActionKind::ScaleWorkload | ActionKind::SetResources => ActionClass::Capacity,
            ActionKind::CordonNode => ActionClass::Node,
            ActionKind::DrainNode => ActionClass::DataLoss,
            ActionKind::IsolateWorkload => ActionClass::Security,
            ActionKind::NoAction => ActionClass::Record,
        }
    }
}

/// What an action puts at stake. Security, identity and data-loss actions are never run
/// unattended unless a policy overrides that with a stated reason: their damage is not
/// undone by the next restart.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionClass {
    /// Replaces or reverts a workload's processes.
    Workload,
    /// Changes how much a workload gets (replicas, limits).
    Capacity,
    /// Keeps new work off a node.
    Node,
    /// Cuts a workload off the network: it also cuts off whoever is investigating it.
    Security,
    /// Changes who can do what (credentials, roles). No action in today's catalogue is of
    /// this class; it is named so that one added later is never-auto from its first day.
    Identity,
    /// May destroy data: draining a node deletes its pods' `emptyDir` volumes.
    DataLoss,
    /// Changes nothing.
    Record,
}

impl ActionClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionClass::Workload => "workload",
            ActionClass::Capacity => "capacity",
            ActionClass::Node => "node",
            ActionClass::Security => "security",
            ActionClass::Identity => "identity",
            ActionClass::DataLoss => "data_loss",
            ActionClass::Record => "record",
        }
    }
    /// Classes whose actions need a person unless a policy states why not.
    pub fn never_auto(self) -> bool {
        matches!(
            self,
            ActionClass::Security | ActionClass::Identity | ActionClass::DataLoss
        )
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of object a [`WorkloadRef`] names; the kind decides which actuator acts on it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// A service of the local process supervisor (the demo estate).
    LocalService,
    Deployment,
    StatefulSet,
    DaemonSet,
    Pod,
    Node,
}

impl WorkloadKind {
    /// The actuator (platform) that acts on this kind: `local` or `kubernetes`.
    pub fn platform(self) -> &'static str {
        match self {
            WorkloadKind::LocalService => "local",
            _ => "kubernetes",
        }
    }
    /// The Kubernetes `kind` (empty for local services).
    pub fn api_kind(self) -> &'static str {
        match self {
            WorkloadKind::LocalService => "",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Node => "Node",
        }
    }
    pub fn from_api_kind(kind: &str) -> Option<WorkloadKind> {
        Some(match kind {
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "Pod" => WorkloadKind::Pod,
            "Node" => WorkloadKind::Node,
            _ => return None,
        })
    }
}

/// The typed target of an action: which object, on which platform, and the container where
/// it matters (`set_resources`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    /// Kubernetes namespace (none for nodes and local services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

impl WorkloadRef {
    pub fn local(service: &str) -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::LocalService,
            namespace: None,
            name: service.to_string(),
            container: None,
        }
    }
    pub fn kube(kind: WorkloadKind, namespace: Option<&str>, name: &str) -> WorkloadRef {
        WorkloadRef {
            kind,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            container: None,
        }
    }
    /// The service name medic uses for this object in incidents, topology and policies:
    /// `namespace/name` for namespaced Kubernetes objects, the bare name otherwise.
    pub fn service_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            WorkloadKind::LocalService => write!(f, "local/{}", self.name)?,
            k => {
                write!(f, "{}/", k.api_kind())?;
                if let Some(ns) = &self.namespace {
                    write!(f, "{ns}/")?;
                }
                f.write_str(&self.name)?;
            }
        }
        if let Some(c) = &self.container {
            write!(f, "[{c}]")?;
        }
        Ok(())
    }
}

/// One concrete action: kind, target, typed parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Action {
    pub kind: ActionKind,
    /// The service (workload) to act on, as incidents and policies name it.
    pub target: String,
    /// For `scale_workload`: the desired replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// The typed object the target resolved to (kind, namespace, name, container), set
    /// before the actuator is called; the actuator registry routes on its kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,
    /// For `set_resources`: the new memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
}

impl Action {
    /// An action with no parameters.
    pub fn new(kind: ActionKind, target: impl Into<String>) -> Action {
        Action {
            kind,
            target: target.into(),
            replicas: None,
            workload: None,
            memory_limit_bytes: None,
        }
    }
    pub fn with_replicas(mut self, replicas: Option<u32>) -> Action {
        self.replicas = replicas;
        self
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.target)?;
        if let Some(w) = &self.workload {
            write!(f, " ({w})")?;
        }
        if let Some(r) = self.replicas {
            write!(f, " replicas={r}")?;
        }
        if let Some(m) = self.memory_limit_bytes {
            write!(f, " memory_limit={}Mi", m / (1024 * 1024))?;
        }
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Recorded before the actuator is called: after a crash, this is what tells medic to
    /// ask the actuator (with the same idempotency key) instead of acting again.
    Pending,
    Succeeded,
    Failed,
}

/// One attempt at an action, keyed so that it happens at most once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub idempotency_key: String,
    pub incident: String,
    pub attempt: u32,
    /// The policy that asked for it (empty for undo actions and records from before).
    #[serde(default)]
    pub policy: String,
    pub action: Action,
    pub started: Ts,
    #[serde(default)]
    pub finished: Option<Ts>,
    pub status: ExecutionStatus,
    /// What the actuator reported.
    #[serde(default)]
    pub detail: String,
}

/// The result of a remediation, established by verification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Symptoms back within baseline for the whole verification window.
    Healed { healthy_since: Ts, verified_at: Ts },
    /// Symptoms persisted or came back, or a symptom's metric got significantly worse.
    NotHealed { reason: String },
    /// The symptoms cleared, but the before/after test could not attribute the clearance to
    /// the action (no significant improvement, or too little data with a weak window).
    Inconclusive { reason: String },
}
