//! One reconcile step per active incident per tick: look at the persisted state, do the next
//! thing, persist the new state. Every step appends one audit record and one timeline line.

use crate::escalation::EscalationRecord;
use crate::notify::Event;
use crate::{Agent, AgentError, Stage, TaskResult, failpoint};
use medic_core::{
    Action, ActionKind, AuditEvent, CheckResult, Decision, Execution, ExecutionStatus, FindingKind,
    IncidentState, Outcome, Symptom, Ts, Verdict, VerificationRecord, stable_id,
};
use medic_diagnose::DiagnosisContext;
use medic_policy::History;
use medic_store::BeginOutcome;
use medic_verify::{Rollout, Samples, SymptomInput, Verification, VerifyStatus};
use std::time::Duration;

/// Longest wait for one rollout health read: a hung API server must not leave the read
/// "in flight" (and so never asked again) for the rest of the verification.
const ROLLOUT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How far before the action the verdict's before-sample reaches (never before detection):
/// the incident's anomalous period, bounded.
const BEFORE_MAX_S: f64 = 600.0;

/// How often an incident waiting for a person looks for the answer (the API and the CLI
/// write it to the store; nothing else announces it).
const APPROVAL_POLL: Duration = Duration::from_secs(1);

/// The longest an incident waiting for an action's result goes unlooked-at: the result
/// wakes it, and this bounds a result that was lost (a task that panicked).
pub(crate) const RESULT_WAIT: Duration = Duration::from_secs(5);

/// What a reconcile step says should happen next to its incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Look again at the next tick: the step watches something every round (diagnosis
    /// settling, verification rounds).
    Tick,
    /// Nothing to do before then (an approval is polled, not watched every tick).
    After(Duration),
    /// Waiting for something that announces itself (an action task's result); looked at
    /// again when it arrives, or after [`RESULT_WAIT`] at the latest.
    WaitForChange,
    /// Closed, resolved or escalated: no more steps.
    Done,
}

impl Agent {
    pub(crate) async fn reconcile(&mut self, id: &str) -> Result<Next, AgentError> {
        let Some(state) = self.incidents.get(id).map(|i| i.state) else {
            return Ok(Next::Done);
        };
        match state {
            IncidentState::Open => self.maybe_diagnose(id)?,
            IncidentState::Diagnosed => self.plan_and_decide(id).await?,
            IncidentState::AwaitingApproval => self.check_approval(id).await?,
            IncidentState::Acting => self.ensure_dispatched(id)?,
            IncidentState::Verifying => self.verify(id).await?,
            _ => {}
        }
        Ok(self.next_step(id))
    }

    /// What the incident's state after a step asks for next.
    fn next_step(&self, id: &str) -> Next {
        match self.incidents.get(id).map(|i| i.state) {
            None => Next::Done,
            Some(s) if s.is_terminal() => Next::Done,
            Some(IncidentState::AwaitingApproval) => Next::After(APPROVAL_POLL),
            Some(IncidentState::Acting) if self.in_flight.contains_key(id) => Next::WaitForChange,
            Some(_) => Next::Tick,
        }
    }

    fn maybe_diagnose(&mut self, id: &str) -> Result<(), AgentError> {
        let now = self.now();
        let settle = self.cfg.agent.diagnosis_settle.as_secs_f64();
        let changes: Vec<_> = self.changes.iter().cloned().collect();
        let Some(inc) = self.incidents.get_mut(id) else {
            return Ok(());
        };
        if now.secs_since(inc.opened) < settle {
            return Ok(());
        }
        // PromQL evidence first (in a task); wait for it at most the query timeout plus a
        // tick, then diagnose with whatever arrived.
        let mut prom_evidence = Vec::new();
        if let (Some(client), Some(pcfg)) = (&self.prom, &self.cfg.prometheus)
            && !pcfg.evidence_queries.is_empty()
        {
            match self.prom_evidence.get(id) {
                None => {
                    let services: Vec<String> = inc.services.iter().cloned().collect();
                    let (client, queries) = (client.clone(), pcfg.evidence_queries.clone());
                    let tx = self.results_tx.clone();
                    let incident = id.to_string();
                    tokio::spawn(async move {
                        let evidence =
                            crate::promql::evidence(&client, &queries, &services, now).await;
                        let _ = tx
                            .send(TaskResult::PromEvidence { incident, evidence })
                            .await;
                    });
                    self.prom_evidence
                        .insert(id.to_string(), crate::PromEvidence::Requested(now));
                    return Ok(());
                }
                Some(crate::PromEvidence::Requested(at))
                    if now.secs_since(*at)
                        < pcfg.timeout.as_secs_f64() * pcfg.evidence_queries.len() as f64
                            + self.cfg.agent.tick.as_secs_f64() =>
                {
                    return Ok(());
                }
                Some(crate::PromEvidence::Requested(_)) => {
                    prom_evidence.push(medic_core::Evidence::Note {
                        text: "promql evidence: no answer from Prometheus in time".into(),
                    });
                }
                Some(crate::PromEvidence::Ready(ev)) => prom_evidence = ev.clone(),
            }
        }
        let cx = DiagnosisContext {
            topology: self.topology.graph(),
            changes: &changes,
            now,
            change_lookback_s: self.cfg.agent.change_lookback.as_secs_f64(),
        };
        let mut diagnosis = medic_diagnose::diagnose(inc, &cx);
        let prom_count = prom_evidence
            .iter()
            .filter(|e| matches!(e, medic_core::Evidence::Metric { .. }))
            .count();
        attach_prom_evidence(&mut diagnosis, prom_evidence);
        // Used once: an incident is diagnosed once, so its entry would otherwise stay forever.
        self.prom_evidence.remove(id);
        let text = match diagnosis.top() {
            Some(h) => format!(
                "{} on {} (confidence {:.2}): {}",
                h.cause, h.target, h.confidence, h.rationale
            ),
            None => "no hypothesis".into(),
        };
        let text = if self.prom.is_some() && prom_count > 0 {
            format!("{text} [+{prom_count} PromQL evidence series]")
        } else {
            text
        };
        inc.diagnosis = Some(diagnosis.clone());
        inc.state = IncidentState::Diagnosed;
        self.audit(AuditEvent::DiagnosisMade {
            incident: id.to_string(),
            diagnosis,
        })?;
        self.save(id)?;
        self.emit(id, Stage::Diagnosed, text);
        Ok(())
    }

    async fn plan_and_decide(&mut self, id: &str) -> Result<(), AgentError> {
        let now = self.now();
        let Some(inc) = self.incidents.get(id).cloned() else {
            return Ok(());
        };
        let Some(diagnosis) = inc.diagnosis.clone() else {
            return self.set_state(id, IncidentState::Open);
        };
        let target = diagnosis
            .top()
            .map(|h| h.target.clone())
            .unwrap_or_default();
        let observed = observe(
            &self.actuator,
            &self.cfg.policies,
            &target,
            &inc,
            &diagnosis,
        )
        .await;
        let mut plan =
            match medic_policy::plan_observed(&inc, &diagnosis, &self.cfg.policies, &observed) {
                Ok(p) => p,
                Err(no) => {
                    self.audit(AuditEvent::NoPlan {
                        incident: id.to_string(),
                        reason: no.reason.clone(),
                    })?;
                    return self
                        .escalate(id, &format!("no plan: {}", no.reason), None)
                        .await;
                }
            };
        plan.verify = verifiable(&plan.verify, &plan.action.target);
        self.apply_earned_mode(&mut plan)?;
        let executions = self.store.executions_since(now.plus_secs(-3600.0))?;
        let in_flight_targets = self
            .in_flight
            .keys()
            .filter_map(|i| self.incidents.get(i)?.plan.as_ref())
            .map(|p| p.action.target.clone())
            .collect();
        let history = History {
            executions,
            in_flight: self.in_flight.len() as u32,
            attempts_this_incident: medic_policy::attempts_of(&inc, &plan.policy),
            incident: id.to_string(),
            planned_services: self.planned_services(now),
            in_flight_targets,
        };
        let kill_file = self
            .cfg
            .guards
            .kill_switch_file
            .as_ref()
            .is_some_and(|p| p.exists());
        // `medic pause` (or the API) is the kill switch people reach for at night: it stops
        // every action, whatever the policy says, until `medic resume`.
        let decision = match self.store.pause()? {
            Some(p) => Decision::Denied(format!(
                "kill_switch: paused by {} at {}: {}",
                p.by, p.at, p.reason
            )),
            None => medic_policy::decide(&plan, &history, &self.cfg.guards, kill_file, now),
        };
        self.audit(AuditEvent::PlanProposed {
            incident: id.to_string(),
            plan: Box::new(plan.clone()),
        })?;
        // Every guard's verdict, not only the first denial: "why not?" has one answer per
        // guard, and the dashboard and the API show them all.
        let guards = medic_policy::explain(&plan, &history, &self.cfg.guards, kill_file, now)
            .into_iter()
            .map(|(name, v)| medic_core::GuardCheck {
                guard: name.to_string(),
                allowed: v.is_allow(),
                reason: match v {
                    medic_policy::Verdict::Deny(r) => Some(r),
                    medic_policy::Verdict::Allow => None,
                },
            })
            .collect();
        self.audit(AuditEvent::DecisionMade {
            incident: id.to_string(),
            decision: decision.clone(),
            guards,
        })?;
        let text = format!(
            "{} → {:?} (policy {}, mode {})",
            plan.action,
            decision,
            plan.policy,
            plan.mode.as_str()
        );
        let escalation = plan.escalation.clone();
        let action = plan.action.clone();
        if let Some(i) = self.incidents.get_mut(id) {
            i.plan = Some(plan);
            i.decision = Some(decision.clone());
        }
        self.emit(id, Stage::Decided, text);
        match decision {
            Decision::Execute if action.kind == ActionKind::NoAction => {
                self.close(id, "policy says no action")
            }
            Decision::Execute | Decision::NeedsApproval if self.cfg.agent.dry_run => {
                self.dry_run(id, action, decision).await
            }
            Decision::Execute => self.dispatch(id, action),
            Decision::NeedsApproval => {
                self.set_state(id, IncidentState::AwaitingApproval)?;
                self.emit(
                    id,
                    Stage::Decided,
                    format!("awaiting approval: `medic approve {id}` or `medic reject {id}`"),
                );
                self.notify(
                    id,
                    Event::ApprovalRequested,
                    &format!("awaiting approval: {action}"),
                    escalation.as_deref(),
                    None,
                );
                Ok(())
            }
            Decision::Recommend => {
                self.escalate(
                    id,
                    &format!("recommendation (not executed): {action}"),
                    escalation.as_deref(),
                )
                .await
            }
            Decision::Shadow => self.close(id, &format!("shadow mode: would have run {action}")),
            Decision::Denied(reason) => {
                self.escalate(
                    id,
                    &format!("guard denied {action}: {reason}"),
                    escalation.as_deref(),
                )
                .await
            }
        }
    }

    /// `agent.dry_run`: the action the guards allowed is checked by the actuator's dry run
    /// (server-side where it has one), recorded, and nothing is changed.
    async fn dry_run(
        &mut self,
        id: &str,
        action: Action,
        decision: Decision,
    ) -> Result<(), AgentError> {
        let result = self.actuator.dry_run(&action).await;
        let (detail, ok) = match &result {
            Ok(r) => (r.detail.clone(), true),
            Err(e) => (e.to_string(), false),
        };
        let waited = if decision == Decision::NeedsApproval {
            " (after approval)"
        } else {
            ""
        };
        self.audit(AuditEvent::DryRun {
            incident: id.to_string(),
            action: action.clone(),
            accepted: ok,
            detail: detail.clone(),
        })?;
        if ok {
            self.close(
                id,
                &format!("dry run: would run {action}{waited}: {detail}"),
            )
        } else {
            let escalation = self
                .incidents
                .get(id)
                .and_then(|i| i.plan.as_ref())
                .and_then(|p| p.escalation.clone());
            self.escalate(
                id,
                &format!("dry run: {action} would fail: {detail}"),
                escalation.as_deref(),
            )
            .await
        }
    }

    /// A policy with `autonomy` acts at its start mode until its record for this cause ×
    /// action × target earns its own mode; the plan says which, and why.
    fn apply_earned_mode(&mut self, plan: &mut medic_core::Plan) -> Result<(), AgentError> {
        let Some(policy) = self.cfg.policies.iter().find(|p| p.name == plan.policy) else {
            return Ok(());
        };
        if policy.autonomy.is_none() {
            return Ok(());
        }
        let incidents = self.store.incidents()?;
        let record = medic_policy::autonomy::record_of(
            &incidents,
            &plan.policy,
            plan.cause,
            plan.action.kind,
            &plan.action.target,
        );
        let (mode, why) = medic_policy::autonomy::effective_mode(policy, &record);
        plan.mode = mode;
        if mode == medic_core::Mode::Approve && plan.approval.is_none() {
            plan.approval = Some(medic_core::ApprovalRule::default());
        }
        plan.mode_reason = Some(why);
        Ok(())
    }

    async fn check_approval(&mut self, id: &str) -> Result<(), AgentError> {
        let now = self.now();
        // The typed record; stores written before it existed kept a word in the kv table.
        let answer = match self.store.approval(id)? {
            Some(a) => Some((a.approved, format!("{} ({}): {}", a.by, a.role, a.reason))),
            None => match self.store.kv_get(&format!("approval:{id}"))?.as_deref() {
                Some("approved") => Some((true, "medic approve".to_string())),
                Some("rejected") => Some((false, "medic reject".to_string())),
                _ => None,
            },
        };
        let Some(inc) = self.incidents.get(id) else {
            return Ok(());
        };
        let action = inc.plan.as_ref().map(|p| p.action.clone());
        let escalation = inc.plan.as_ref().and_then(|p| p.escalation.clone());
        let rule = inc
            .plan
            .as_ref()
            .and_then(|p| p.approval.clone())
            .unwrap_or_default();
        match (answer, action) {
            // Approved while paused: queued until `medic resume`, not dropped, not timed out.
            (Some((true, _)), Some(_)) if self.store.pause()?.is_some() => Ok(()),
            (Some((true, who)), Some(action)) => {
                self.emit(id, Stage::Decided, format!("approved by {who}: {action}"));
                let answered = Event::ApprovalAnswered {
                    approved: true,
                    by: who.clone(),
                };
                self.notify(
                    id,
                    answered,
                    &format!("approved by {who}: {action}"),
                    None,
                    None,
                );
                self.dispatch(id, action)
            }
            // Closing notifies `resolved` with who rejected and why; a separate answer
            // notice would race it (two deliveries in flight at once).
            (Some((false, who)), _) => {
                self.close(id, &format!("a person rejected the plan: {who}"))
            }
            _ if now.secs_since(inc.updated) > rule.timeout_s => {
                let waited = format!(
                    "approval timed out after {}s",
                    (rule.timeout_s * 10.0).round() / 10.0
                );
                match rule.on_timeout {
                    medic_core::OnTimeout::Escalate => {
                        self.escalate(id, &waited, escalation.as_deref()).await
                    }
                    medic_core::OnTimeout::Reject => {
                        self.close(id, &format!("{waited}: rejected, as the policy says"))
                    }
                }
            }
            _ => Ok(()),
        }
    }

    /// Records the execution as pending and hands it to a task. The idempotency key depends
    /// only on the incident, the attempt number and the action, so a restarted agent computes
    /// the same key and the actuator recognises a repeat.
    fn dispatch(&mut self, id: &str, action: Action) -> Result<(), AgentError> {
        let now = self.now();
        let Some(inc) = self.incidents.get_mut(id) else {
            return Ok(());
        };
        let attempt = inc.executions.len() as u32 + 1;
        let key = stable_id(&[id, &attempt.to_string(), &action.to_string()]);
        let exec = Execution {
            idempotency_key: key.clone(),
            incident: id.to_string(),
            attempt,
            policy: inc
                .plan
                .as_ref()
                .map(|p| p.policy.clone())
                .unwrap_or_default(),
            action: action.clone(),
            started: now,
            finished: None,
            status: ExecutionStatus::Pending,
            detail: String::new(),
        };
        inc.executions.push(exec.clone());
        inc.state = IncidentState::Acting;
        self.store.begin_execution(&exec)?;
        self.audit(AuditEvent::ActionStarted {
            incident: id.to_string(),
            idempotency_key: key,
            attempt,
            action: action.clone(),
        })?;
        self.save(id)?;
        self.emit(id, Stage::Acting, format!("{action} (attempt {attempt})"));
        self.spawn_action(id, exec);
        Ok(())
    }

    /// After a restart, an incident in `Acting` has a pending execution nobody is running.
    fn ensure_dispatched(&mut self, id: &str) -> Result<(), AgentError> {
        if self.in_flight.contains_key(id) {
            return Ok(());
        }
        let Some(exec) = self
            .incidents
            .get(id)
            .and_then(|i| i.executions.last().cloned())
        else {
            return self.set_state(id, IncidentState::Diagnosed);
        };
        match self.store.begin_execution(&exec)? {
            BeginOutcome::Existing(e) if e.status != ExecutionStatus::Pending => {
                // Finished before the crash, but the incident was not updated: use the record.
                let result = match e.status {
                    ExecutionStatus::Succeeded => Ok(medic_act::ActionReport {
                        applied: false,
                        detail: e.detail.clone(),
                    }),
                    _ => Err(e.detail.clone()),
                };
                let r = TaskResult::Action {
                    incident: id.to_string(),
                    key: e.idempotency_key,
                    result,
                };
                let tx = self.results_tx.clone();
                tokio::spawn(async move { tx.send(r).await });
                self.in_flight.insert(id.to_string(), exec.idempotency_key);
            }
            _ => {
                self.emit(
                    id,
                    Stage::Resumed,
                    format!("re-sending {} with the same idempotency key", exec.action),
                );
                self.spawn_action(id, exec);
            }
        }
        Ok(())
    }

    fn spawn_action(&mut self, id: &str, exec: Execution) {
        self.in_flight
            .insert(id.to_string(), exec.idempotency_key.clone());
        let actuator = self.actuator.clone();
        let tx = self.results_tx.clone();
        let incident = id.to_string();
        tokio::spawn(async move {
            failpoint::hit(failpoint::BEFORE_ACTION);
            let result = actuator
                .execute(&exec.idempotency_key, &exec.action)
                .await
                .map_err(|e| e.to_string());
            if result.is_ok() {
                failpoint::hit(failpoint::AFTER_ACTION_BEFORE_RECORD);
            }
            let _ = tx
                .send(TaskResult::Action {
                    incident,
                    key: exec.idempotency_key,
                    result,
                })
                .await;
        });
    }

    pub(crate) async fn on_task_result(&mut self, r: TaskResult) -> Result<(), AgentError> {
        match r {
            TaskResult::Action {
                incident,
                key,
                result,
            } => {
                // The change it waited for: its next step is due now.
                self.wake_at.remove(&incident);
                self.on_action_result(&incident, &key, result).await
            }
            TaskResult::PromEvidence { incident, evidence } => {
                self.prom_evidence
                    .insert(incident, crate::PromEvidence::Ready(evidence));
                Ok(())
            }
            TaskResult::PromChecks {
                incident,
                at,
                results,
            } => {
                self.prom_checks_in_flight.remove(&incident);
                self.prom_checks.insert(incident, (at, results));
                Ok(())
            }
            TaskResult::Rollout {
                incident,
                asked,
                reading,
            } => {
                self.rollout_in_flight.remove(&incident);
                // A read asked before this verification began (a previous attempt's) could
                // report the workload settled before the new action touched it.
                let current = self
                    .verifications
                    .get(&incident)
                    .is_some_and(|v| asked >= v.started());
                if let Some(r) = reading.filter(|_| current) {
                    self.rollout_reads.insert(incident, r);
                }
                Ok(())
            }
            TaskResult::Notified {
                incident,
                escalated,
                reports,
            } => self.on_notified(incident, escalated, reports),
        }
    }

    async fn on_action_result(
        &mut self,
        id: &str,
        key: &str,
        result: Result<medic_act::ActionReport, String>,
    ) -> Result<(), AgentError> {
        self.in_flight.remove(id);
        let now = self.now();
        let (status, detail) = match &result {
            Ok(r) if r.applied => (ExecutionStatus::Succeeded, r.detail.clone()),
            Ok(r) => (
                ExecutionStatus::Succeeded,
                format!("(already executed) {}", r.detail),
            ),
            Err(e) => (ExecutionStatus::Failed, e.clone()),
        };
        self.store.finish_execution(key, status, &detail, now)?;
        let Some(inc) = self.incidents.get_mut(id) else {
            return Ok(());
        };
        let Some(exec) = inc.executions.iter_mut().find(|e| e.idempotency_key == key) else {
            return Ok(());
        };
        exec.status = status;
        exec.finished = Some(now);
        exec.detail = detail.clone();
        let action = exec.action.clone();
        let is_rollback = inc.state == IncidentState::Escalated;
        if is_rollback {
            self.audit(AuditEvent::RolledBack {
                incident: id.to_string(),
                action,
                detail: detail.clone(),
            })?;
            self.save(id)?;
            self.emit(id, Stage::RolledBack, detail);
            return Ok(());
        }
        let window = inc.plan.as_ref().map_or(30.0, |p| p.verification_window_s);
        let escalation = inc.plan.as_ref().and_then(|p| p.escalation.clone());
        if status == ExecutionStatus::Succeeded {
            inc.state = IncidentState::Verifying;
            inc.verify_started = Some(now);
        }
        match status {
            ExecutionStatus::Succeeded => {
                self.audit(AuditEvent::ActionExecuted {
                    incident: id.to_string(),
                    idempotency_key: key.to_string(),
                    action: action.clone(),
                    detail: detail.clone(),
                })?;
                self.audit(AuditEvent::VerificationStarted {
                    incident: id.to_string(),
                    window_s: window,
                })?;
                self.save(id)?;
                self.emit(id, Stage::Acted, format!("{action}: {detail}"));
                self.restart_verification(id);
                Ok(())
            }
            _ => {
                self.audit(AuditEvent::ActionFailed {
                    incident: id.to_string(),
                    idempotency_key: key.to_string(),
                    action: action.clone(),
                    error: detail.clone(),
                })?;
                self.save(id)?;
                self.escalate(
                    id,
                    &format!("action {action} failed: {detail}"),
                    escalation.as_deref(),
                )
                .await
            }
        }
    }

    pub(crate) fn restart_verification(&mut self, id: &str) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        let Some(plan) = inc.plan.as_ref() else {
            return;
        };
        let started = inc.verify_started.unwrap_or_else(|| self.now());
        let window = Duration::from_secs_f64(plan.verification_window_s.max(0.0));
        // Long enough for a rolling restart to settle and a full clean window to follow.
        let deadline = started.plus_secs(plan.verification_window_s * 3.0 + 30.0);
        let policy = self.cfg.policies.iter().find(|p| p.name == plan.policy);
        let checks = crate::promql::checks_for(policy, &plan.action.target);
        self.prom_checks.remove(id);
        self.rollout_reads.remove(id);
        // Sampled for the verdict from now on, also those verified without a finding of
        // their own (a surge's golden signals); the others are sampled since their finding.
        let now = self.now();
        for s in &plan.verify {
            self.detectors.watch(s, now);
        }
        self.verifications.insert(
            id.to_string(),
            Verification::new(plan.verify.clone(), window, started, deadline).with_checks(checks),
        );
    }

    async fn verify(&mut self, id: &str) -> Result<(), AgentError> {
        let now = self.now();
        if !self.verifications.contains_key(id) {
            self.restart_verification(id);
        }
        let symptoms = self
            .incidents
            .get(id)
            .and_then(|i| i.plan.as_ref())
            .map(|p| p.verify.clone())
            .unwrap_or_default();
        let states: Vec<_> = symptoms
            .iter()
            .map(|s| (s.clone(), self.detectors.status(s, now)))
            .collect();
        let checks: Vec<String> = self
            .verifications
            .get(id)
            .map(|v| v.check_names().map(str::to_string).collect())
            .unwrap_or_default();
        // Results count only while fresh: an old answer is no proof of now.
        let fresh_s = 2.0 * self.cfg.agent.tick.as_secs_f64()
            + self
                .cfg
                .prometheus
                .as_ref()
                .map_or(0.0, |p| p.timeout.as_secs_f64());
        let check_results: Vec<(String, Option<bool>)> = match self.prom_checks.get(id) {
            Some((at, r)) if now.secs_since(*at) <= fresh_s => r.clone(),
            _ => Vec::new(),
        };
        if let Some(client) = &self.prom
            && !checks.is_empty()
            && self.prom_checks_in_flight.insert(id.to_string())
        {
            let client = client.clone();
            let tx = self.results_tx.clone();
            let incident = id.to_string();
            let clock = self.clock.clone();
            let to_run = checks.clone();
            tokio::spawn(async move {
                let results = crate::promql::run_checks(&to_run, |expr| {
                    let c = client.clone();
                    async move { c.query(&expr, None).await }
                })
                .await;
                let at = clock.now();
                let _ = tx
                    .send(TaskResult::PromChecks {
                        incident,
                        at,
                        results,
                    })
                    .await;
            });
        }
        self.ask_rollout_health(id);
        let reading = self.rollout_reads.remove(id);
        let Some(v) = self.verifications.get_mut(id) else {
            return Ok(());
        };
        if let Some(Rollout::Unreadable { error }) = &reading
            && v.rollout_error().is_none()
        {
            // Once per verification: the error is kept for the outcome, and verification
            // goes on with the symptoms alone until the health can be read again.
            tracing::warn!(incident = %id, "could not read the rollout health: {error}");
        }
        let status = v.observe_round(now, &states, &check_results, reading.as_ref());
        let rollout = rollout_note(v);
        let (window, after) = match &status {
            VerifyStatus::Pending { .. } => return Ok(()),
            VerifyStatus::Healed {
                healthy_since,
                verified_at,
            } => (Ok(()), (*healthy_since, *verified_at)),
            VerifyStatus::NotHealed { reason } => (Err(reason.clone()), (v.started(), now)),
        };
        let record =
            self.verification_record(id, window, after, now, rollout.clone(), &check_results);
        self.verifications.remove(id);
        self.prom_checks.remove(id);
        self.rollout_reads.remove(id);
        self.store.record_verification(&record)?;
        let reason = record.reason.clone();
        match (record.verdict, status) {
            (
                Verdict::Healed,
                VerifyStatus::Healed {
                    healthy_since,
                    verified_at,
                },
            ) => {
                let outcome = Outcome::Healed {
                    healthy_since,
                    verified_at,
                };
                if let Some(i) = self.incidents.get_mut(id) {
                    i.outcome = Some(outcome.clone());
                    i.state = IncidentState::Resolved;
                    i.closing_reason = Some("verified healed".into());
                }
                self.audit(AuditEvent::VerificationPassed {
                    incident: id.to_string(),
                    outcome,
                    rollout: rollout.clone(),
                    verification: Some(Box::new(record)),
                })?;
                self.audit(AuditEvent::IncidentResolved {
                    incident: id.to_string(),
                    at: now,
                })?;
                self.save(id)?;
                self.notify(id, Event::Resolved, "verified healed", None, None);
                let since = self
                    .incidents
                    .get(id)
                    .map(|i| healthy_since.secs_since(i.detected_at()))
                    .unwrap_or(0.0);
                let promql = if checks.is_empty() {
                    String::new()
                } else {
                    format!("; PromQL checks held: {}", checks.join(", "))
                };
                let rollout = rollout.map(|r| format!("; {r}")).unwrap_or_default();
                self.emit(id, Stage::Verified, format!("symptoms clear since {} ({since:.1}s after detection), held for the whole window{promql}{rollout}; {}", healthy_since.clock_time(), reason.trim_start_matches("clear for the window; ")));
                Ok(())
            }
            (Verdict::Inconclusive, _) => {
                // The symptoms cleared, so neither a retry nor a rollback of what may have
                // been a good action: people get the evidence and decide.
                let outcome = Outcome::Inconclusive {
                    reason: reason.clone(),
                };
                self.audit(AuditEvent::VerificationInconclusive {
                    incident: id.to_string(),
                    outcome: outcome.clone(),
                    verification: Box::new(record),
                })?;
                self.emit(id, Stage::Inconclusive, reason.clone());
                let Some(inc) = self.incidents.get_mut(id) else {
                    return Ok(());
                };
                inc.outcome = Some(outcome);
                let escalation = inc.plan.as_ref().and_then(|p| p.escalation.clone());
                self.escalate(
                    id,
                    &format!("verification inconclusive (not rolled back, not retried): {reason}"),
                    escalation.as_deref(),
                )
                .await
            }
            (_, _) => {
                let outcome = Outcome::NotHealed {
                    reason: reason.clone(),
                };
                self.audit(AuditEvent::VerificationFailed {
                    incident: id.to_string(),
                    outcome: outcome.clone(),
                    rollout,
                    verification: Some(Box::new(record)),
                })?;
                self.emit(id, Stage::NotHealed, reason.clone());
                let Some(inc) = self.incidents.get_mut(id) else {
                    return Ok(());
                };
                inc.outcome = Some(outcome);
                let plan = inc.plan.clone();
                let attempts = inc.executions.len() as u32;
                let observed = medic_policy::Observed {
                    workload: plan.as_ref().and_then(|p| p.action.workload.clone()),
                    labels: plan.as_ref().map(|p| p.target_labels.clone()),
                    ..Default::default()
                };
                let more = inc.diagnosis.as_ref().is_some_and(|d| {
                    medic_policy::attempts_left(inc, d, &self.cfg.policies, &observed)
                });
                if plan.is_some() && more {
                    // Try again (the same policy, or the next rung of the ladder): the
                    // guards decide whether another attempt is allowed now.
                    inc.state = IncidentState::Diagnosed;
                    self.save(id)?;
                    return Ok(());
                }
                let escalation = plan.as_ref().and_then(|p| p.escalation.clone());
                let rollback = plan
                    .as_ref()
                    .filter(|p| p.rollback_if_failed)
                    .and_then(|_| undo(inc));
                self.escalate(
                    id,
                    &format!("not healed after {attempts} attempt(s): {reason}"),
                    escalation.as_deref(),
                )
                .await?;
                if let Some(action) = rollback {
                    self.emit(id, Stage::RolledBack, format!("undoing: {action}"));
                    self.spawn_undo(id, action)?;
                } else if plan.as_ref().is_some_and(|p| p.rollback_if_failed) {
                    self.emit(id, Stage::RolledBack, "nothing to undo: the action cannot be reversed safely (only scale changes are undone automatically)");
                }
                Ok(())
            }
        }
    }

    /// The verdict and its evidence: the window's result, each verified symptom's metric
    /// before the action (its anomalous period, at most [`BEFORE_MAX_S`] back, not before
    /// detection) against `after` (the clean window, or the whole verification when the
    /// window failed), the rollout and the PromQL checks.
    fn verification_record(
        &self,
        id: &str,
        window: Result<(), String>,
        after: (Ts, Ts),
        now: Ts,
        rollout: Option<String>,
        checks: &[(String, Option<bool>)],
    ) -> VerificationRecord {
        let inc = self.incidents.get(id);
        let v = self.verifications.get(id);
        let started = v.map(|v| v.started()).unwrap_or(now);
        let acted = inc
            .and_then(|i| {
                i.executions
                    .iter()
                    .rev()
                    .find(|e| e.status == ExecutionStatus::Succeeded)
            })
            .map_or(started, |e| e.started);
        let detected = inc.map_or(acted, |i| i.detected_at());
        let since = acted.plus_secs(-BEFORE_MAX_S).max(detected);
        let values = |s: Option<medic_detect::SymptomSamples>| {
            s.map(|s| {
                (
                    s.metric,
                    s.better,
                    s.samples.into_iter().map(|(_, v)| v).collect::<Vec<f64>>(),
                )
            })
        };
        let inputs: Vec<SymptomInput> = v
            .map(|v| v.window_evidence())
            .unwrap_or_default()
            .into_iter()
            .map(|w| {
                let before = values(self.detectors.symptom_samples(&w.symptom, since, acted));
                let after = values(self.detectors.symptom_samples(&w.symptom, after.0, after.1));
                let samples = match (before, after) {
                    (Some((_, better, before)), Some((metric, _, after))) => Some(Samples {
                        metric,
                        better,
                        before,
                        after,
                    }),
                    _ => None,
                };
                SymptomInput { window: w, samples }
            })
            .collect();
        let alpha = self.cfg.agent.verification_alpha;
        let judgement = medic_verify::judge(
            window.as_ref().map(|_| ()).map_err(String::as_str),
            &inputs,
            alpha,
        );
        VerificationRecord {
            incident: id.to_string(),
            attempt: inc.map_or(0, |i| i.executions.len() as u32),
            started,
            decided_at: now,
            window_s: inc
                .and_then(|i| i.plan.as_ref())
                .map_or(0.0, |p| p.verification_window_s),
            alpha,
            verdict: judgement.verdict,
            reason: judgement.reason,
            symptoms: judgement.symptoms,
            rollout,
            checks: checks
                .iter()
                .map(|(expr, held)| CheckResult {
                    expr: expr.clone(),
                    held: *held,
                })
                .collect(),
        }
    }

    /// Starts one read of the acted-on workload's rollout health in a task, unless one is
    /// running: at most one per verification round (one round per tick), and a slow API
    /// server never holds up the loop. Nothing to read when the action names no workload.
    fn ask_rollout_health(&mut self, id: &str) {
        let Some(workload) = self.incidents.get(id).and_then(|i| {
            i.executions
                .iter()
                .rev()
                .find(|e| e.status == ExecutionStatus::Succeeded)
                .map(|e| &e.action)
                .or(i.plan.as_ref().map(|p| &p.action))
                .and_then(|a| a.workload.clone())
        }) else {
            return;
        };
        if !self.rollout_in_flight.insert(id.to_string()) {
            return;
        }
        let actuator = self.actuator.clone();
        let tx = self.results_tx.clone();
        let incident = id.to_string();
        let asked = self.now();
        tokio::spawn(async move {
            let reading = match tokio::time::timeout(
                ROLLOUT_READ_TIMEOUT,
                actuator.health(&workload),
            )
            .await
            {
                Ok(Ok(Some(h))) if h.settled => Some(Rollout::Settled { detail: h.detail }),
                Ok(Ok(Some(h))) => Some(Rollout::Unsettled { detail: h.detail }),
                Ok(Ok(None)) => None,
                Ok(Err(e)) => Some(Rollout::Unreadable {
                    error: format!("{workload}: {e}"),
                }),
                Err(_) => Some(Rollout::Unreadable {
                    error: format!(
                        "{workload}: no answer within {}s",
                        ROLLOUT_READ_TIMEOUT.as_secs()
                    ),
                }),
            };
            let _ = tx
                .send(TaskResult::Rollout {
                    incident,
                    asked,
                    reading,
                })
                .await;
        });
    }

    fn spawn_undo(&mut self, id: &str, action: Action) -> Result<(), AgentError> {
        let now = self.now();
        let Some(inc) = self.incidents.get_mut(id) else {
            return Ok(());
        };
        let attempt = inc.executions.len() as u32 + 1;
        let key = stable_id(&[id, "undo", &attempt.to_string(), &action.to_string()]);
        let exec = Execution {
            idempotency_key: key,
            incident: id.to_string(),
            attempt,
            policy: String::new(),
            action,
            started: now,
            finished: None,
            status: ExecutionStatus::Pending,
            detail: String::new(),
        };
        inc.executions.push(exec.clone());
        self.store.begin_execution(&exec)?;
        self.save(id)?;
        self.spawn_action(id, exec);
        Ok(())
    }

    fn set_state(&mut self, id: &str, state: IncidentState) -> Result<(), AgentError> {
        if let Some(i) = self.incidents.get_mut(id) {
            i.state = state;
        }
        self.save(id)
    }

    fn close(&mut self, id: &str, reason: &str) -> Result<(), AgentError> {
        if let Some(i) = self.incidents.get_mut(id) {
            i.state = IncidentState::Closed;
            i.closing_reason = Some(reason.to_string());
        }
        self.audit(AuditEvent::IncidentClosed {
            incident: id.to_string(),
            reason: reason.to_string(),
        })?;
        self.save(id)?;
        self.emit(id, Stage::Closed, reason.to_string());
        self.notify(id, Event::Resolved, reason, None, None);
        Ok(())
    }

    /// Hands the incident to people: printed now, delivered to the escalation target in the
    /// background, audited once delivery has been tried.
    pub(crate) async fn escalate(
        &mut self,
        id: &str,
        reason: &str,
        target: Option<&str>,
    ) -> Result<(), AgentError> {
        let now = self.now();
        let audit = self.store.audit_records_for(id)?;
        let Some(inc) = self.incidents.get_mut(id) else {
            return Ok(());
        };
        inc.state = IncidentState::Escalated;
        inc.closing_reason = Some(reason.to_string());
        let record = EscalationRecord::build(inc, reason, now, &audit);
        self.save(id)?;
        self.emit(id, Stage::Escalated, record.render());
        self.notify(
            id,
            Event::Escalated,
            reason,
            target,
            Some(reason.to_string()),
        );
        Ok(())
    }
}

/// What the verification learned of the rollout, for the outcome's records: the latest
/// health read, and the read error if there was one; `None` when the platform said nothing.
fn rollout_note(v: &Verification) -> Option<String> {
    match (v.rollout(), v.rollout_error()) {
        (Some(r), None) => Some(r.to_string()),
        (Some(r), Some(e)) => Some(format!("{r}; health read failed at times: {e}")),
        (None, Some(e)) => Some(format!("rollout health unreadable ({e})")),
        (None, None) => None,
    }
}

/// PromQL evidence goes to the hypotheses about the services it was queried for (the top
/// one when none matches), so people see it next to the cause it supports.
fn attach_prom_evidence(d: &mut medic_core::Diagnosis, evidence: Vec<medic_core::Evidence>) {
    for e in evidence {
        let service = match &e {
            medic_core::Evidence::Metric { service, .. } => Some(service.clone()),
            _ => None,
        };
        let mut placed = false;
        for h in d.hypotheses.iter_mut() {
            if service.as_deref() == Some(h.target.as_str()) {
                h.evidence.push(e.clone());
                placed = true;
            }
        }
        if !placed && let Some(h) = d.hypotheses.first_mut() {
            h.evidence.push(e);
        }
    }
}

/// Symptoms that describe the *state* of a service and so can be watched for clearance.
/// A traffic surge is load, not damage (scaling out does not lower it); a new error message or
/// log template, a log pattern hit and a template's rate moving are events whose episodes
/// outlast the fault by a window (and can be set off by the remediation's own restart logs),
/// so they are evidence for the diagnosis, not proof of health. When nothing else is left (an announced
/// surge with no damage yet), verify the target's golden signals instead: its latency and
/// error rate must stay healthy under the load.
fn verifiable(symptoms: &[Symptom], target: &str) -> Vec<Symptom> {
    let v: Vec<Symptom> = symptoms
        .iter()
        .filter(|s| {
            !matches!(
                s.kind,
                FindingKind::TrafficSurge
                    | FindingKind::NewErrorMessage
                    | FindingKind::NewLogTemplate
                    | FindingKind::LogPattern
                    | FindingKind::LogTemplateRate
            )
        })
        .cloned()
        .collect();
    if !v.is_empty() {
        return v;
    }
    [FindingKind::Latency, FindingKind::ErrorRate]
        .into_iter()
        .map(|kind| Symptom {
            service: target.to_string(),
            kind,
        })
        .collect()
}

/// The action that undoes a failed one, where that is safe to do automatically: a scale
/// change goes back to the replica count the plan started from. Restarts cannot be undone,
/// and reversing a rollback or a config revert would reinstate what was just judged bad.
fn undo(inc: &medic_core::Incident) -> Option<Action> {
    let plan = inc.plan.as_ref()?;
    let acted = inc
        .executions
        .iter()
        .any(|e| e.status == ExecutionStatus::Succeeded);
    match (plan.action.kind, plan.previous_replicas) {
        (ActionKind::ScaleWorkload, Some(before)) if acted => Some(Action {
            kind: ActionKind::ScaleWorkload,
            target: plan.action.target.clone(),
            replicas: Some(before),
            workload: None,
            memory_limit_bytes: None,
        }),
        _ => None,
    }
}

/// What the actuator reports about the target before planning: its typed object, its
/// replicas, and the memory limit a `set_resources` policy would raise. A failure to
/// read is logged and leaves the value unknown (the planner then says what it lacks).
async fn observe(
    actuator: &std::sync::Arc<dyn medic_act::Actuator>,
    policies: &[medic_config::Policy],
    target: &str,
    inc: &medic_core::Incident,
    diagnosis: &medic_core::Diagnosis,
) -> medic_policy::Observed {
    let workload = match actuator.resolve(target).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("could not resolve {target} to a workload: {e}");
            None
        }
    };
    let replicas = match actuator.replicas(target).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("could not read replicas of {target}: {e}");
            None
        }
    };
    // Only when a set_resources policy could be chosen: one more API read otherwise.
    let resources = diagnosis.top().and_then(|top| {
        policies.iter().find(|p| {
            p.action == ActionKind::SetResources
                && p.causes.contains(&top.cause)
                && medic_policy::attempts_of(inc, &p.name) < p.max_attempts
        })
    });
    let memory_limit_bytes = match resources {
        Some(p) => match actuator
            .memory_limit(target, p.resources.container.as_deref())
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("could not read the memory limit of {target}: {e}");
                None
            }
        },
        None => None,
    };
    // Only when a policy selects by label: one more API read otherwise.
    let labels = if policies.iter().any(|p| !p.labels.is_empty()) {
        match actuator.labels(target).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("could not read the labels of {target}: {e}");
                None
            }
        }
    } else {
        None
    };
    medic_policy::Observed {
        workload,
        replicas,
        memory_limit_bytes,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(service: &str, kind: FindingKind) -> Symptom {
        Symptom {
            service: service.into(),
            kind,
        }
    }

    #[test]
    fn load_and_one_off_events_are_not_verified() {
        let v = verifiable(
            &[
                sym("a", FindingKind::TrafficSurge),
                sym("a", FindingKind::Latency),
                sym("b", FindingKind::NewErrorMessage),
                sym("a", FindingKind::LogPattern),
                sym("a", FindingKind::NewLogTemplate),
                sym("a", FindingKind::LogTemplateRate),
            ],
            "a",
        );
        assert_eq!(v, vec![sym("a", FindingKind::Latency)]);
    }

    #[test]
    fn a_bare_surge_is_verified_by_the_targets_golden_signals() {
        let v = verifiable(&[sym("a", FindingKind::TrafficSurge)], "a");
        assert_eq!(
            v,
            vec![
                sym("a", FindingKind::Latency),
                sym("a", FindingKind::ErrorRate)
            ]
        );
    }
}
