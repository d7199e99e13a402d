//! medic's shared vocabulary. Data flows
//! `Signal → Finding → Incident → Diagnosis → Plan → Decision → Execution → Outcome`,
//! and every step becomes one [`AuditEvent`]. No IO and no async runtime here: every stage
//! crate depends on this one and on nothing else of medic's but the config.

pub mod action;
pub mod audit;
pub mod diagnosis;
pub mod finding;
pub mod incident;
pub mod quantity;
pub mod signal;
pub mod time;
pub mod topology;
pub mod verification;
pub mod window;

pub use action::{
    Action, ActionClass, ActionKind, Execution, ExecutionStatus, Outcome, WorkloadKind, WorkloadRef,
};
pub use audit::{AuditEvent, AuditRecord, verify_chain};
pub use diagnosis::{Cause, Diagnosis, Hypothesis};
pub use finding::{Evidence, Finding, FindingKind, Symptom, SymptomState};
pub use incident::{
    Approval, ApprovalRule, Decision, GuardCheck, Guardrails, Incident, IncidentId, IncidentState,
    Mode, OnTimeout, Pause, Plan,
};
pub use signal::{
    AlertSignal, ChangeEvent, ChangeKind, LearnedEdge, Level, LogLine, MetricSample, ProcessEvent,
    ProcessEventKind, ProcessEventRecord, Signal, SignalPayload,
};
pub use time::{Clock, ManualClock, SystemClock, Ts};
pub use topology::{EdgeOrigin, EdgeReport, LiveTopology, Topology};
pub use verification::{
    CheckResult, Comparison, Direction, SymptomCheck, SymptomResult, Verdict, VerificationRecord,
};
pub use window::TimeWindow;

/// A stable short hash (first 16 hex chars of SHA-256) used for ids and idempotency keys, so
/// that the same inputs give the same id after a restart.
pub fn stable_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// An error with its causes (`error sending request: connection refused`): HTTP and
/// Kubernetes clients' Display stops at the outermost layer. A cause already in the text is
/// not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_id_separates_parts() {
        assert_ne!(stable_id(&["ab", "c"]), stable_id(&["a", "bc"]));
        assert_eq!(stable_id(&["x"]), stable_id(&["x"]));
        assert_eq!(stable_id(&["x"]).len(), 16);
    }
}
