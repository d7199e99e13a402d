//! Guards: plain functions of (plan, history, config, now), each named after the constraint it
//! enforces. A denial names the guard and the numbers behind it.
//!
//! A new guard is one section below plus one line in [`ACTION_GUARDS`].

use medic_config::GuardsConfig;
use medic_core::{ActionKind, Execution, Plan, Ts};
use std::collections::BTreeSet;

/// What medic has done recently, as the guards need it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Executions of any incident, covering at least the last hour and the longest policy
    /// cooldown (older ones are harmless; the hourly guards ignore them).
    pub executions: Vec<Execution>,
    /// Actions executing right now.
    pub in_flight: u32,
    /// Attempts the plan's policy already made for the incident this plan is for (another
    /// policy's attempts do not count: policies for one cause form a ladder).
    pub attempts_this_incident: u32,
    /// The incident this plan is for: its own earlier attempts are governed by
    /// `max_attempts`, not by the cooldown.
    pub incident: String,
    /// Services with a planned event in progress.
    pub planned_services: BTreeSet<String>,
    /// Targets with an action executing right now.
    pub in_flight_targets: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused; the reason names the guard and the numbers.
    Deny(String),
}

impl Verdict {
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow)
    }
}

pub type Guard = fn(&Plan, &History, &GuardsConfig, Ts) -> Verdict;

/// The guards [`crate::decide`] runs after the kill switch, in order; the first denial wins.
pub const ACTION_GUARDS: [(&str, Guard); 12] = [
    ("planned_event_freeze", planned_event_freeze),
    ("blocked_window", blocked_window),
    ("max_attempts", max_attempts),
    ("undo_once", undo_once),
    ("cooldown", cooldown),
    ("one_in_flight", one_in_flight),
    ("loop_breaker", loop_breaker),
    ("policy_rate_limit", policy_rate_limit),
    ("policy_blast_radius", policy_blast_radius),
    ("blast_radius", blast_radius),
    ("rate_limit", rate_limit),
    ("concurrency", concurrency),
];

const HOUR_MS: i64 = 3_600_000;

/// Executions that changed something, started within the rolling hour before `now`.
/// `no_action` changes nothing, so it neither counts nor is limited.
fn actions_last_hour(history: &History, now: Ts) -> impl Iterator<Item = &Execution> {
    history
        .executions
        .iter()
        .filter(|e| e.action.kind != ActionKind::NoAction)
        .filter(move |e| e.started.0 > now.0.saturating_sub(HOUR_MS))
}

fn changes_nothing(plan: &Plan) -> bool {
    plan.action.kind == ActionKind::NoAction
}

/// Seconds for messages: whole numbers plain, others to one decimal.
fn secs(s: f64) -> String {
    format!("{}", (s * 10.0).round() / 10.0)
}

// ── kill_switch: people can stop all action, from config or by touching a file ───────────

pub fn kill_switch(config: &GuardsConfig, kill_switch_file_present: bool) -> Verdict {
    if config.kill_switch {
        return Verdict::Deny("kill_switch: on in config (guards.kill_switch)".into());
    }
    if kill_switch_file_present {
        let file = config.kill_switch_file.as_ref().map_or_else(
            || "kill switch file".to_string(),
            |p| p.display().to_string(),
        );
        return Verdict::Deny(format!("kill_switch: {file} is present"));
    }
    Verdict::Allow
}

// ── confidence: act only on diagnoses the policy trusts (decide downgrades, not denies) ──

pub fn confidence(plan: &Plan) -> Verdict {
    // Written so that a NaN confidence or threshold counts as too low.
    if plan.confidence >= plan.confidence_threshold {
        Verdict::Allow
    } else {
        Verdict::Deny(format!(
            "confidence: {:.2} below policy {} threshold {:.2}",
            plan.confidence, plan.policy, plan.confidence_threshold
        ))
    }
}

// ── corroboration: an alert's cause hint is evidence, not a command ─────────────────────

/// A diagnosis that rests only on an alert's own cause hint may be recommended (or put to a
/// person for approval), never executed automatically — unless the policy trusts that
/// sender. `decide` downgrades `auto` to a recommendation on a denial, as for confidence.
pub fn corroboration(plan: &Plan) -> Verdict {
    match &plan.only_hinted_by {
        None => Verdict::Allow,
        Some(sender) if !sender.is_empty() && plan.trust_hints_from.iter().any(|t| t == sender) => {
            Verdict::Allow
        }
        Some(sender) => {
            let who = if sender.is_empty() {
                "an unknown sender".to_string()
            } else {
                format!("`{sender}`")
            };
            Verdict::Deny(format!(
                "corroboration: the only evidence for {} on {} is an alert's own cause hint (sent by {who}); medic's own signals do not confirm it, and policy {} does not list that sender in `trust_alert_hints_from`",
                plan.cause, plan.action.target, plan.policy
            ))
        }
    }
}

// ── never_auto: security, identity and data-loss actions wait for a person ──────────────

/// `decide` turns `auto` into a recommendation on a denial (approval by a person stays
/// possible); a policy lifts it only with a stated `auto_override` reason.
pub fn never_auto(plan: &Plan) -> Verdict {
    let class = plan.action.kind.class();
    if !class.never_auto() || plan.auto_override.is_some() {
        return Verdict::Allow;
    }
    Verdict::Deny(format!(
        "never_auto: {} is a {} action; policy {} has no `auto_override` reason, so a person decides",
        plan.action.kind,
        class.as_str(),
        plan.policy
    ))
}

// ── blocked_window: a policy's hours when it must not act ──────────────────────────────

pub fn blocked_window(plan: &Plan, _history: &History, _config: &GuardsConfig, now: Ts) -> Verdict {
    if changes_nothing(plan) {
        return Verdict::Allow;
    }
    match plan
        .guardrails
        .blocked_windows
        .iter()
        .find(|w| w.contains(now))
    {
        Some(w) => Verdict::Deny(format!(
            "blocked_window: policy {} does not act during {w} (now {})",
            plan.policy,
            now.to_rfc3339()
        )),
        None => Verdict::Allow,
    }
}

// ── one_in_flight: one action at a time on a target ─────────────────────────────────────

pub fn one_in_flight(plan: &Plan, history: &History, _config: &GuardsConfig, _now: Ts) -> Verdict {
    if changes_nothing(plan) || !history.in_flight_targets.contains(&plan.action.target) {
        return Verdict::Allow;
    }
    Verdict::Deny(format!(
        "one_in_flight: an action on {} is still executing",
        plan.action.target
    ))
}

// ── policy_rate_limit / policy_blast_radius: a policy's own hourly limits ───────────────

fn policy_actions_last_hour<'h>(
    plan: &'h Plan,
    history: &'h History,
    now: Ts,
) -> impl Iterator<Item = &'h Execution> {
    actions_last_hour(history, now).filter(move |e| e.policy == plan.policy)
}

pub fn policy_rate_limit(
    plan: &Plan,
    history: &History,
    _config: &GuardsConfig,
    now: Ts,
) -> Verdict {
    let Some(limit) = plan.guardrails.max_executions_per_hour else {
        return Verdict::Allow;
    };
    if changes_nothing(plan) {
        return Verdict::Allow;
    }
    let count = policy_actions_last_hour(plan, history, now).count();
    if count < limit as usize {
        return Verdict::Allow;
    }
    Verdict::Deny(format!(
        "policy_rate_limit: policy {} acted {count} times in the last hour, its limit is {limit}",
        plan.policy
    ))
}

pub fn policy_blast_radius(
    plan: &Plan,
    history: &History,
    _config: &GuardsConfig,
    now: Ts,
) -> Verdict {
    let Some(limit) = plan.guardrails.max_targets_per_hour else {
        return Verdict::Allow;
    };
    if changes_nothing(plan) {
        return Verdict::Allow;
    }
    let touched: BTreeSet<&str> = policy_actions_last_hour(plan, history, now)
        .map(|e| e.action.target.as_str())
        .collect();
    if touched.contains(plan.action.target.as_str()) || touched.len() < limit as usize {
        return Verdict::Allow;
    }
    let names: Vec<&str> = touched.into_iter().collect();
    Verdict::Deny(format!(
        "policy_blast_radius: policy {} acted on {} targets in the last hour ({}), its limit is {limit}",
        plan.policy,
        names.len(),
        names.join(", ")
    ))
}

// ── planned_event_freeze: never disrupt a service during its planned event ───────────────

pub fn planned_event_freeze(
    plan: &Plan,
    history: &History,
    _config: &GuardsConfig,
    _now: Ts,
) -> Verdict {
    let target = &plan.action.target;
    if plan.action.kind.is_disruptive() && history.planned_services.contains(target) {
        return Verdict::Deny(format!(
            "planned_event_freeze: {} is disruptive and {target} has a planned event in progress",
            plan.action.kind
        ));
    }
    Verdict::Allow
}

// ── undo_once: a rollback or config revert is not repeated within one incident ───────────

/// Rolling back (or reverting a config) swaps the current and the previous version, as
/// `kubectl rollout undo` does: a second one in the same incident would reinstate the very
/// version the first one removed. If the first did not heal, people decide what is next.
pub fn undo_once(plan: &Plan, history: &History, _config: &GuardsConfig, _now: Ts) -> Verdict {
    if !matches!(
        plan.action.kind,
        ActionKind::RollbackRelease | ActionKind::RevertConfig
    ) || history.incident.is_empty()
    {
        return Verdict::Allow;
    }
    let done = history.executions.iter().any(|e| {
        e.incident == history.incident
            && e.action.kind == plan.action.kind
            && e.action.target == plan.action.target
            && e.status == medic_core::ExecutionStatus::Succeeded
    });
    if done {
        return Verdict::Deny(format!(
            "undo_once: {} on {} already ran for this incident; running it again would reinstate what it removed",
            plan.action.kind, plan.action.target
        ));
    }
    Verdict::Allow
}

// ── max_attempts: a policy gets so many tries per incident, then people take over ────────

pub fn max_attempts(plan: &Plan, history: &History, _config: &GuardsConfig, _now: Ts) -> Verdict {
    if changes_nothing(plan) || history.attempts_this_incident < plan.max_attempts {
        return Verdict::Allow;
    }
    Verdict::Deny(format!(
        "max_attempts: {} attempts made for this incident, policy {} allows {}",
        history.attempts_this_incident, plan.policy, plan.max_attempts
    ))
}

// ── cooldown: time between two actions of a policy on one target ─────────────────────────

/// Per (policy, target), across incidents: a retry within one incident is `max_attempts`'
/// business. Executions recorded without a policy name fall back to matching the action
/// kind, which is at least as strict (each policy has one action kind).
pub fn cooldown(plan: &Plan, history: &History, _config: &GuardsConfig, now: Ts) -> Verdict {
    if changes_nothing(plan) {
        return Verdict::Allow;
    }
    let same_policy = |e: &&Execution| {
        if e.policy.is_empty() {
            e.action.kind == plan.action.kind
        } else {
            e.policy == plan.policy
        }
    };
    let last = history
        .executions
        .iter()
        .filter(|e| e.incident != history.incident || history.incident.is_empty())
        .filter(|e| e.action.target == plan.action.target)
        .filter(same_policy)
        .map(|e| e.started)
        .max();
    let Some(last) = last else {
        return Verdict::Allow;
    };
    let elapsed = now.secs_since(last);
    // Also denies when the last action is in the future (clock moved back) or cooldown is NaN.
    if elapsed >= plan.cooldown_s && elapsed >= 0.0 {
        return Verdict::Allow;
    }
    Verdict::Deny(format!(
        "cooldown: last {} on {} {}s ago, policy {} cooldown {}s",
        plan.action.kind,
        plan.action.target,
        secs(elapsed),
        plan.policy,
        secs(plan.cooldown_s)
    ))
}

// ── loop_breaker: at most so many actions on one target per rolling hour ─────────────────

pub fn loop_breaker(plan: &Plan, history: &History, config: &GuardsConfig, now: Ts) -> Verdict {
    if changes_nothing(plan) {
        return Verdict::Allow;
    }
    let target = &plan.action.target;
    let on_target = actions_last_hour(history, now)
        .filter(|e| &e.action.target == target)
        .count();
    let limit = config.max_actions_per_target_per_hour as usize;
    if on_target < limit {
        return Verdict::Allow;
    }
    Verdict::Deny(format!(
        "loop_breaker: {on_target} actions on {target} in the last hour, limit {limit} per target per hour"
    ))
}

// ── blast_radius: at most so many distinct services touched per rolling hour ─────────────

pub fn blast_radius(plan: &Plan, history: &History, config: &GuardsConfig, now: Ts) -> Verdict {
    if changes_nothing(plan) {
        return Verdict::Allow;
    }
    let touched: BTreeSet<&str> = actions_last_hour(history, now)
        .map(|e| e.action.target.as_str())
        .collect();
    let limit = config.max_services_per_hour as usize;
    if touched.contains(plan.action.target.as_str()) || touched.len() < limit {
        return Verdict::Allow;
    }
    let names: Vec<&str> = touched.into_iter().collect();
    Verdict::Deny(format!(
        "blast_radius: {} services acted on in the last hour ({}), limit {limit}; {} would be one more",
        names.len(),
        names.join(", "),
        plan.action.target
    ))
}

// ── rate_limit: at most so many actions across the estate per rolling hour ───────────────

pub fn rate_limit(plan: &Plan, history: &History, config: &GuardsConfig, now: Ts) -> Verdict {
    if changes_nothing(plan) {
        return Verdict::Allow;
    }
    let count = actions_last_hour(history, now).count();
    let limit = config.max_actions_per_hour as usize;
    if count < limit {
        return Verdict::Allow;
    }
    Verdict::Deny(format!(
        "rate_limit: {count} actions in the last hour, limit {limit} per hour"
    ))
}

// ── concurrency: at most so many actions in flight at once ───────────────────────────────

pub fn concurrency(plan: &Plan, history: &History, config: &GuardsConfig, _now: Ts) -> Verdict {
    if changes_nothing(plan) || history.in_flight < config.max_concurrent_actions {
        return Verdict::Allow;
    }
    Verdict::Deny(format!(
        "concurrency: {} actions in flight, limit {}",
        history.in_flight, config.max_concurrent_actions
    ))
}

#[cfg(test)]
mod tests;
