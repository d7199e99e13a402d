//! Typed events: each step of the loop emits one, which becomes a log line, a timeline entry
//! and one record of the hash-chained audit log.

use crate::action::{Action, Outcome};
use crate::diagnosis::Diagnosis;
use crate::finding::Finding;
use crate::incident::{Decision, Plan};
use crate::time::Ts;
use crate::verification::VerificationRecord;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    AgentStarted {
        version: String,
        config_digest: String,
    },
    IncidentOpened {
        incident: String,
        finding: Finding,
    },
    FindingAdded {
        incident: String,
        finding: Finding,
    },
    DiagnosisMade {
        incident: String,
        diagnosis: Diagnosis,
    },
    PlanProposed {
        incident: String,
        /// Boxed: a plan is the largest event payload (serialized the same as unboxed).
        plan: Box<Plan>,
    },
    NoPlan {
        incident: String,
        reason: String,
    },
    DecisionMade {
        incident: String,
        decision: Decision,
        /// Every guard's verdict on the plan, in the order they are checked.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        guards: Vec<crate::GuardCheck>,
    },
    ActionStarted {
        incident: String,
        idempotency_key: String,
        attempt: u32,
        action: Action,
    },
    ActionExecuted {
        incident: String,
        idempotency_key: String,
        action: Action,
        detail: String,
    },
    ActionFailed {
        incident: String,
        idempotency_key: String,
        action: Action,
        error: String,
    },
    /// `agent.dry_run`: the action was checked by the actuator's dry run, nothing changed.
    DryRun {
        incident: String,
        action: Action,
        accepted: bool,
        detail: String,
    },
    VerificationStarted {
        incident: String,
        window_s: f64,
    },
    VerificationPassed {
        incident: String,
        outcome: Outcome,
        /// The acted-on workload's rollout health as last read, where the platform reports
        /// one (absent in records written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollout: Option<String>,
        /// The verification's typed record (per-symptom test, checks, verdict); absent in
        /// records written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verification: Option<Box<VerificationRecord>>,
    },
    VerificationFailed {
        incident: String,
        outcome: Outcome,
        /// As for `VerificationPassed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollout: Option<String>,
        /// As for `VerificationPassed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verification: Option<Box<VerificationRecord>>,
    },
    /// The symptoms cleared but the before/after test could not credit the action.
    VerificationInconclusive {
        incident: String,
        outcome: Outcome,
        verification: Box<VerificationRecord>,
    },
    RolledBack {
        incident: String,
        action: Action,
        detail: String,
    },
    Escalated {
        incident: String,
        reason: String,
        delivered_to: Vec<String>,
    },
    IncidentClosed {
        incident: String,
        reason: String,
    },
    IncidentResolved {
        incident: String,
        at: Ts,
    },
    /// A person answered an incident's approval request.
    ApprovalAnswered {
        incident: String,
        approved: bool,
        by: String,
        role: String,
        reason: String,
    },
    /// The kill switch: no action runs until resumed (approved actions queue).
    Paused {
        by: String,
        reason: String,
    },
    Resumed {
        by: String,
        reason: String,
    },
    /// One notification's delivery to one escalation target, once it is over: the target
    /// by name and kind (never its URL or secrets), how many attempts, and the final status.
    Notified {
        incident: String,
        target: String,
        kind: String,
        /// `approval_requested`, `approval_answered`, `escalated` or `resolved`.
        notice: String,
        attempts: u32,
        delivered: bool,
        status: String,
    },
    /// A reconcile step of this incident failed; the incident waits `retry_in_s`, the
    /// others go on.
    StepFailed {
        incident: String,
        state: String,
        error: String,
        retry_in_s: f64,
    },
}

impl AuditEvent {
    /// The event's name, as stored in the audit log's `kind` column.
    pub fn name(&self) -> &'static str {
        match self {
            AuditEvent::AgentStarted { .. } => "agent_started",
            AuditEvent::IncidentOpened { .. } => "incident_opened",
            AuditEvent::FindingAdded { .. } => "finding_added",
            AuditEvent::DiagnosisMade { .. } => "diagnosis_made",
            AuditEvent::PlanProposed { .. } => "plan_proposed",
            AuditEvent::NoPlan { .. } => "no_plan",
            AuditEvent::DecisionMade { .. } => "decision_made",
            AuditEvent::ActionStarted { .. } => "action_started",
            AuditEvent::ActionExecuted { .. } => "action_executed",
            AuditEvent::ActionFailed { .. } => "action_failed",
            AuditEvent::DryRun { .. } => "dry_run",
            AuditEvent::VerificationStarted { .. } => "verification_started",
            AuditEvent::VerificationPassed { .. } => "verification_passed",
            AuditEvent::VerificationFailed { .. } => "verification_failed",
            AuditEvent::VerificationInconclusive { .. } => "verification_inconclusive",
            AuditEvent::RolledBack { .. } => "rolled_back",
            AuditEvent::Escalated { .. } => "escalated",
            AuditEvent::IncidentClosed { .. } => "incident_closed",
            AuditEvent::IncidentResolved { .. } => "incident_resolved",
            AuditEvent::Notified { .. } => "notified",
            AuditEvent::StepFailed { .. } => "step_failed",
            AuditEvent::ApprovalAnswered { .. } => "approval_answered",
            AuditEvent::Paused { .. } => "paused",
            AuditEvent::Resumed { .. } => "resumed",
        }
    }

    /// The incident it belongs to, if any.
    pub fn incident(&self) -> Option<&str> {
        match self {
            AuditEvent::AgentStarted { .. }
            | AuditEvent::Paused { .. }
            | AuditEvent::Resumed { .. } => None,
            AuditEvent::IncidentOpened { incident, .. }
            | AuditEvent::FindingAdded { incident, .. }
            | AuditEvent::DiagnosisMade { incident, .. }
            | AuditEvent::PlanProposed { incident, .. }
            | AuditEvent::NoPlan { incident, .. }
            | AuditEvent::DecisionMade { incident, .. }
            | AuditEvent::ActionStarted { incident, .. }
            | AuditEvent::ActionExecuted { incident, .. }
            | AuditEvent::ActionFailed { incident, .. }
            | AuditEvent::DryRun { incident, .. }
            | AuditEvent::VerificationStarted { incident, .. }
            | AuditEvent::VerificationPassed { incident, .. }
            | AuditEvent::VerificationFailed { incident, .. }
            | AuditEvent::VerificationInconclusive { incident, .. }
            | AuditEvent::RolledBack { incident, .. }
            | AuditEvent::Escalated { incident, .. }
            | AuditEvent::IncidentClosed { incident, .. }
            | AuditEvent::IncidentResolved { incident, .. }
            | AuditEvent::Notified { incident, .. }
            | AuditEvent::StepFailed { incident, .. }
            | AuditEvent::ApprovalAnswered { incident, .. } => Some(incident),
        }
    }
}

/// One record of the audit log as stored: the event plus its place in the hash chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1, 2, 3, ... with no gaps.
    pub seq: u64,
    pub ts: Ts,
    /// The event name (`AuditEvent::name`).
    pub kind: String,
    pub incident: Option<String>,
    /// The event as canonical JSON.
    pub payload: String,
    /// Hash of the previous record (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over seq, ts, kind, incident, payload and prev_hash.
    pub hash: String,
}

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditRecord {
    /// Computes the hash a record with these fields must carry.
    pub fn compute_hash(
        seq: u64,
        ts: Ts,
        kind: &str,
        incident: Option<&str>,
        payload: &str,
        prev_hash: &str,
    ) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(seq.to_le_bytes());
        h.update(ts.0.to_le_bytes());
        for part in [kind, incident.unwrap_or("\u{0}none"), payload, prev_hash] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Builds the record that follows `prev` (or the first one).
    pub fn chain(prev: Option<&AuditRecord>, ts: Ts, event: &AuditEvent) -> AuditRecord {
        let seq = prev.map_or(1, |p| p.seq + 1);
        let prev_hash = prev.map_or(GENESIS_HASH.to_string(), |p| p.hash.clone());
        let payload = serde_json::to_string(event).unwrap_or_else(|e| {
            // Serialising our own enum cannot fail; keep a record of it if it ever does.
            format!(
                "{{\"event\":\"unserialisable\",\"error\":{:?}}}",
                e.to_string()
            )
        });
        let kind = event.name().to_string();
        let incident = event.incident().map(str::to_string);
        let hash = Self::compute_hash(seq, ts, &kind, incident.as_deref(), &payload, &prev_hash);
        AuditRecord {
            seq,
            ts,
            kind,
            incident,
            payload,
            prev_hash,
            hash,
        }
    }

    pub fn hash_is_valid(&self) -> bool {
        self.hash
            == Self::compute_hash(
                self.seq,
                self.ts,
                &self.kind,
                self.incident.as_deref(),
                &self.payload,
                &self.prev_hash,
            )
    }
}

/// Checks a sequence of records read in `seq` order. Returns the first broken record's seq
/// (or the position where one is missing) and why.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<u64, (u64, String)> {
    let mut prev: Option<&AuditRecord> = None;
    let mut count = 0;
    for r in records {
        let expected_seq = prev.map_or(1, |p| p.seq + 1);
        if r.seq != expected_seq {
            return Err((
                r.seq,
                format!(
                    "record {} found where record {expected_seq} was expected (deleted, inserted or reordered)",
                    r.seq
                ),
            ));
        }
        let expected_prev = prev.map_or(GENESIS_HASH, |p| p.hash.as_str());
        if r.prev_hash != expected_prev {
            return Err((
                r.seq,
                format!("record {} does not link to the record before it", r.seq),
            ));
        }
        if !r.hash_is_valid() {
            return Err((
                r.seq,
                format!(
                    "record {} was edited: its hash does not match its contents",
                    r.seq
                ),
            ));
        }
        prev = Some(r);
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditRecord> {
        let mut v: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let ev = AuditEvent::IncidentClosed {
                incident: format!("i{i}"),
                reason: "x".into(),
            };
            let r = AuditRecord::chain(v.last(), Ts(i as i64), &ev);
            v.push(r);
        }
        v
    }

    #[test]
    fn verification_records_without_rollout_keep_their_shape() {
        let old = r#"{"event":"verification_failed","incident":"i","outcome":{"outcome":"not_healed","reason":"r"}}"#;
        let ev: AuditEvent = serde_json::from_str(old).expect("old record");
        assert!(matches!(
            &ev,
            AuditEvent::VerificationFailed { rollout: None, .. }
        ));
        // Absent stays absent: payloads written before the field are byte-identical.
        assert_eq!(serde_json::to_string(&ev).expect("json"), old);
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(5));
        assert_eq!(verify_chain(&[]), Ok(0));
    }

    #[test]
    fn edit_delete_insert_reorder_are_caught() {
        let c = chain(5);
        let mut edited = c.clone();
        edited[2].payload = edited[2].payload.replace('x', "y");
        assert_eq!(verify_chain(&edited).unwrap_err().0, 3);

        let mut deleted = c.clone();
        deleted.remove(1);
        assert_eq!(verify_chain(&deleted).unwrap_err().0, 3);

        let mut reordered = c.clone();
        reordered.swap(1, 2);
        assert!(verify_chain(&reordered).is_err());

        let mut inserted = c.clone();
        let mut fake = c[1].clone();
        fake.payload = "{}".into();
        inserted.insert(2, fake);
        assert!(verify_chain(&inserted).is_err());

        // Re-hashing an edited record still breaks the link to the next one.
        let mut rehashed = c.clone();
        rehashed[2].payload = "{}".into();
        rehashed[2].hash = AuditRecord::compute_hash(
            rehashed[2].seq,
            rehashed[2].ts,
            &rehashed[2].kind,
            rehashed[2].incident.as_deref(),
            &rehashed[2].payload,
            &rehashed[2].prev_hash,
        );
        assert_eq!(verify_chain(&rehashed).unwrap_err().0, 4);
    }
}
