//! Deterministic, offline root-cause analysis. Each rule (one file per cause under `rules/`)
//! reads the facts gathered from an incident's findings, the dependency graph and the change
//! calendar, and proposes hypotheses with weighted evidence. Contributions to the same
//! (cause, target) combine by noisy-OR, so independent evidence raises confidence without
//! ever passing 1; ranking is by confidence, ties broken by cause then target so that the same
//! input always gives the same diagnosis.

mod facts;
pub mod rank;
pub mod rules;

pub use facts::{Facts, ServiceFacts};

use medic_core::{
    ChangeEvent, Diagnosis, Evidence, Hypothesis, Incident, Topology, Ts, diagnosis::Cause,
};
use std::collections::BTreeMap;

/// What a diagnosis may consult beyond the incident itself.
pub struct DiagnosisContext<'a> {
    pub topology: &'a Topology,
    /// The change calendar (deploys, config changes, planned events, remediations).
    pub changes: &'a [ChangeEvent],
    pub now: Ts,
    /// A deploy or config change this long before the incident counts as recent.
    pub change_lookback_s: f64,
}

/// One piece of support for a hypothesis, from one rule.
#[derive(Clone, Debug)]
pub struct Contribution {
    pub cause: Cause,
    pub target: String,
    /// In [0, 1]: how strongly this evidence alone points at the hypothesis.
    pub weight: f64,
    pub reason: String,
    pub evidence: Vec<Evidence>,
    /// Set when this support is someone else's claim (an alert's cause hint): its sender
    /// (`""` when unknown), rather than medic's own evidence.
    pub hint_from: Option<String>,
}

/// Evidence that argues against a hypothesis: multiplies its confidence by `factor`.
#[derive(Clone, Debug)]
pub struct Penalty {
    pub cause: Cause,
    pub target: String,
    pub factor: f64,
    pub reason: String,
}

#[derive(Default)]
pub struct RuleOutput {
    pub support: Vec<Contribution>,
    pub penalties: Vec<Penalty>,
}

impl RuleOutput {
    pub fn support(
        &mut self,
        cause: Cause,
        target: &str,
        weight: f64,
        reason: impl Into<String>,
        evidence: Vec<Evidence>,
    ) {
        self.support.push(Contribution {
            cause,
            target: target.to_string(),
            weight: weight.clamp(0.0, 1.0),
            reason: reason.into(),
            evidence,
            hint_from: None,
        });
    }

    /// Support from someone else's claim about the cause (`sender`: the token it came with).
    pub fn hint(
        &mut self,
        cause: Cause,
        target: &str,
        weight: f64,
        reason: impl Into<String>,
        evidence: Vec<Evidence>,
        sender: Option<&str>,
    ) {
        self.support(cause, target, weight, reason, evidence);
        if let Some(c) = self.support.last_mut() {
            c.hint_from = Some(sender.unwrap_or_default().to_string());
        }
    }
    pub fn penalise(&mut self, cause: Cause, target: &str, factor: f64, reason: impl Into<String>) {
        self.penalties.push(Penalty {
            cause,
            target: target.to_string(),
            factor: factor.clamp(0.0, 1.0),
            reason: reason.into(),
        });
    }
}

/// Diagnoses an incident. Never returns an empty list: `unknown` is always a candidate.
pub fn diagnose(incident: &Incident, cx: &DiagnosisContext) -> Diagnosis {
    let facts = Facts::gather(incident, cx);
    let mut out = RuleOutput::default();
    for rule in rules::ALL {
        (rule.evaluate)(&facts, cx, &mut out);
    }
    Diagnosis {
        made_at: cx.now,
        hypotheses: rank(out, &facts),
        engine: "rules".into(),
    }
}

fn rank(out: RuleOutput, facts: &Facts) -> Vec<Hypothesis> {
    struct Acc {
        keep_prob: f64,
        reasons: Vec<String>,
        evidence: Vec<Evidence>,
        /// Contributions, those that are hints, and the first hint's sender.
        supports: usize,
        hints: usize,
        hint_sender: Option<String>,
    }
    let mut acc: BTreeMap<(Cause, String), Acc> = BTreeMap::new();
    for c in out.support {
        let a = acc.entry((c.cause, c.target)).or_insert(Acc {
            keep_prob: 1.0,
            reasons: Vec::new(),
            evidence: Vec::new(),
            supports: 0,
            hints: 0,
            hint_sender: None,
        });
        a.supports += 1;
        if let Some(sender) = c.hint_from {
            a.hints += 1;
            a.hint_sender.get_or_insert(sender);
        }
        a.keep_prob *= 1.0 - c.weight;
        a.reasons.push(c.reason);
        for e in c.evidence {
            if !a.evidence.contains(&e) && a.evidence.len() < 12 {
                a.evidence.push(e);
            }
        }
    }
    let mut hyps: Vec<Hypothesis> = acc
        .into_iter()
        .map(|((cause, target), a)| {
            let mut confidence = 1.0 - a.keep_prob;
            let mut reasons = a.reasons;
            for p in out
                .penalties
                .iter()
                .filter(|p| p.cause == cause && p.target == target)
            {
                confidence *= p.factor;
                reasons.push(format!("but {}", p.reason));
            }
            Hypothesis {
                cause,
                target,
                confidence: (confidence * 1000.0).round() / 1000.0,
                rationale: reasons.join("; "),
                evidence: a.evidence,
                // Nothing but hints: no evidence of medic's own.
                only_hinted_by: (a.hints == a.supports).then_some(a.hint_sender).flatten(),
            }
        })
        .collect();
    // The fallback: the most affected service, with low confidence.
    if let Some(most) = facts.most_affected() {
        hyps.push(Hypothesis {
            cause: Cause::Unknown,
            target: most.to_string(),
            confidence: 0.2,
            rationale: format!(
                "no rule explains the symptoms better; {most} has the most findings"
            ),
            evidence: Vec::new(),
            only_hinted_by: None,
        });
    }
    hyps.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.cause.cmp(&b.cause))
            .then(a.target.cmp(&b.target))
    });
    hyps
}

#[cfg(test)]
mod tests;
