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
    /// Take no action (record only): used by policies that only observe.
    NoAction,
}

impl ActionKind {
    pub const ALL: [ActionKind; 5] = [
        ActionKind::RestartWorkload,
        ActionKind::ScaleWorkload,
        ActionKind::RollbackRelease,
        ActionKind::RevertConfig,
        ActionKind::NoAction,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::RestartWorkload => "restart_workload",
            ActionKind::ScaleWorkload => "scale_workload",
            ActionKind::RollbackRelease => "rollback_release",
            ActionKind::RevertConfig => "revert_config",
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
            ActionKind::RestartWorkload | ActionKind::RollbackRelease | ActionKind::RevertConfig
        )
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One concrete action: kind, target, typed parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Action {
    pub kind: ActionKind,
    /// The service (workload) to act on.
    pub target: String,
    /// For `scale_workload`: the desired replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.replicas {
            Some(r) => write!(f, "{} {} replicas={r}", self.kind, self.target),
            None => write!(f, "{} {}", self.kind, self.target),
        }
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
    /// Symptoms persisted or came back.
    NotHealed { reason: String },
}
