//! Incidents and the plan/decision made for them.

use crate::action::{Action, Execution, Outcome};
use crate::diagnosis::{Cause, Diagnosis};
use crate::finding::{Finding, Symptom};
use crate::time::Ts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

pub type IncidentId = String;

/// Where an incident is in the loop. Persisted: a restarted medic resumes from here.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Findings are still arriving; diagnosis waits a short settle time for the full picture.
    Open,
    /// Diagnosed; a plan is being chosen and guarded.
    Diagnosed,
    /// Waiting for a person to approve the plan.
    AwaitingApproval,
    /// An execution is in flight (or pending after a restart).
    Acting,
    /// Action done; watching the symptoms for the verification window.
    Verifying,
    /// Verified healed.
    Resolved,
    /// Handed to people with the whole story.
    Escalated,
    /// Closed without action (shadow, recommend, no matching policy, planned event...).
    Closed,
}

impl IncidentState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            IncidentState::Resolved | IncidentState::Escalated | IncidentState::Closed
        )
    }
    pub const ALL: [IncidentState; 8] = [
        IncidentState::Open,
        IncidentState::Diagnosed,
        IncidentState::AwaitingApproval,
        IncidentState::Acting,
        IncidentState::Verifying,
        IncidentState::Resolved,
        IncidentState::Escalated,
        IncidentState::Closed,
    ];

    pub fn parse(s: &str) -> Option<IncidentState> {
        IncidentState::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Diagnosed => "diagnosed",
            IncidentState::AwaitingApproval => "awaiting_approval",
            IncidentState::Acting => "acting",
            IncidentState::Verifying => "verifying",
            IncidentState::Resolved => "resolved",
            IncidentState::Escalated => "escalated",
            IncidentState::Closed => "closed",
        }
    }
}

impl fmt::Display for IncidentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a policy lets medic go on its own.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Decide and record what would be done; do nothing, tell no one.
    Shadow,
    /// Tell people what to do; do nothing.
    Recommend,
    /// Do it once a person approves.
    Approve,
    /// Do it.
    Auto,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shadow => "shadow",
            Mode::Recommend => "recommend",
            Mode::Approve => "approve",
            Mode::Auto => "auto",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Shadow, Mode::Recommend, Mode::Approve, Mode::Auto]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// What medic intends to do about an incident, and how it will know it worked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The policy that produced it.
    pub policy: String,
    pub cause: Cause,
    pub action: Action,
    pub mode: Mode,
    pub confidence: f64,
    pub confidence_threshold: f64,
    pub max_attempts: u32,
    pub cooldown_s: f64,
    pub verification_window_s: f64,
    /// Symptoms that must stay clear for the verification window.
    pub verify: Vec<Symptom>,
    pub rollback_if_failed: bool,
    /// Replicas before a scale action, so that a failed scale can be undone exactly.
    #[serde(default)]
    pub previous_replicas: Option<u32>,
    /// Where to escalate (a named escalation target from config).
    pub escalation: Option<String>,
    /// The diagnosis rests only on an alert's cause hint from this sender (see
    /// `Hypothesis::only_hinted_by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_hinted_by: Option<String>,
    /// Senders whose hints the policy trusts enough to act on alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_hints_from: Vec<String>,
    /// The policy's own limits, checked by the guards besides the global ones.
    #[serde(default, skip_serializing_if = "Guardrails::is_empty")]
    pub guardrails: Guardrails,
    /// Who may approve, and what happens when nobody does in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRule>,
    /// Why this policy may run a never-auto action (security, identity, data loss) itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_override: Option<String>,
    /// The target's labels when the plan was made (what a `match.labels` selector read).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub target_labels: std::collections::BTreeMap<String, String>,
    /// How the policy's mode was earned or limited (earned autonomy), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
}

impl Plan {
    /// A plan with cautious defaults (recommend, one attempt, no cooldown, nothing to
    /// verify), for callers that set the rest with struct update syntax.
    pub fn new(policy: impl Into<String>, cause: Cause, action: Action) -> Plan {
        Plan {
            policy: policy.into(),
            cause,
            action,
            mode: Mode::Recommend,
            confidence: 0.0,
            confidence_threshold: 1.0,
            max_attempts: 1,
            cooldown_s: 0.0,
            verification_window_s: 30.0,
            verify: Vec::new(),
            rollback_if_failed: false,
            previous_replicas: None,
            escalation: None,
            only_hinted_by: None,
            trust_hints_from: Vec::new(),
            guardrails: Guardrails::default(),
            approval: None,
            auto_override: None,
            target_labels: Default::default(),
            mode_reason: None,
        }
    }
}

/// One guard's verdict on a plan, as recorded with the decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardCheck {
    pub guard: String,
    pub allowed: bool,
    /// Why it said no (the guard's name and the numbers behind it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A policy's own limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Guardrails {
    /// When the policy must not act (wall-clock windows in a time zone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_windows: Vec<crate::TimeWindow>,
    /// Actions of this policy per rolling hour, across targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_executions_per_hour: Option<u32>,
    /// Distinct targets this policy acts on per rolling hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_targets_per_hour: Option<u32>,
}

impl Guardrails {
    pub fn is_empty(&self) -> bool {
        self == &Guardrails::default()
    }
}

/// What happens to a plan nobody approved or rejected in time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Hand the incident to people with the whole story.
    Escalate,
    /// Close it as rejected: nothing is done.
    Reject,
}

impl OnTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Escalate => "escalate",
            OnTimeout::Reject => "reject",
        }
    }
}

/// A policy's approval rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRule {
    /// Only tokens in this group may answer over the API; none means any approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<String>,
    pub timeout_s: f64,
    pub on_timeout: OnTimeout,
}

impl Default for ApprovalRule {
    fn default() -> Self {
        ApprovalRule {
            approvers: None,
            timeout_s: 15.0 * 60.0,
            on_timeout: OnTimeout::Escalate,
        }
    }
}

/// What the guards said about a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", content = "reason", rename_all = "snake_case")]
pub enum Decision {
    Execute,
    NeedsApproval,
    Recommend,
    Shadow,
    /// A guard refused, with its name and why.
    Denied(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub opened: Ts,
    pub updated: Ts,
    pub state: IncidentState,
    /// Every service any finding is about.
    pub services: BTreeSet<String>,
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub diagnosis: Option<Diagnosis>,
    #[serde(default)]
    pub plan: Option<Plan>,
    #[serde(default)]
    pub decision: Option<Decision>,
    /// Every attempt, in order.
    #[serde(default)]
    pub executions: Vec<Execution>,
    /// When verification started (after the last execution finished).
    #[serde(default)]
    pub verify_started: Option<Ts>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Why it was escalated or closed, in words.
    #[serde(default)]
    pub closing_reason: Option<String>,
}

impl Incident {
    pub fn new(id: IncidentId, first: Finding) -> Incident {
        let mut services = BTreeSet::new();
        services.insert(first.service.clone());
        Incident {
            id,
            opened: first.ts,
            updated: first.ts,
            state: IncidentState::Open,
            services,
            findings: vec![first],
            diagnosis: None,
            plan: None,
            decision: None,
            executions: Vec::new(),
            verify_started: None,
            outcome: None,
            closing_reason: None,
        }
    }

    pub fn add_finding(&mut self, f: Finding) {
        self.updated = self.updated.max(f.ts);
        self.services.insert(f.service.clone());
        self.findings.push(f);
    }

    /// Distinct symptoms, in order of first appearance.
    pub fn symptoms(&self) -> Vec<Symptom> {
        let mut seen = BTreeSet::new();
        self.findings
            .iter()
            .map(Finding::symptom)
            .filter(|s| seen.insert(s.clone()))
            .collect()
    }

    /// When the problem was detected: its first strong finding (the kind that opens an
    /// incident). Weak findings (a log pattern, a new message) can predate the problem: a
    /// readiness failure at start-up joins the next incident within the correlation window.
    pub fn detected_at(&self) -> Ts {
        self.findings
            .iter()
            .filter(|f| !f.kind.is_weak())
            .map(|f| f.ts)
            .min()
            .unwrap_or_else(|| self.first_finding_at())
    }

    pub fn first_finding_at(&self) -> Ts {
        self.findings
            .iter()
            .map(|f| f.ts)
            .min()
            .unwrap_or(self.opened)
    }
}

/// A person's answer to an incident's approval request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub incident: String,
    pub approved: bool,
    /// Who answered (a token's name, or the user at the CLI).
    pub by: String,
    /// With what authority (`approver`, `admin`, `cli`).
    pub role: String,
    pub reason: String,
    pub at: crate::Ts,
}

/// The kill switch, when on: who paused medic, why, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub by: String,
    pub reason: String,
    pub at: crate::Ts,
}
