//! Symptoms during an event announced in the change calendar.

use super::Rule;
use crate::facts::change_evidence;
use crate::{DiagnosisContext, Facts, RuleOutput};
use medic_core::{Cause, FindingKind as K};

pub const RULE: Rule = Rule {
    name: "planned_event",
    evaluate,
};

fn evaluate(facts: &Facts, _cx: &DiagnosisContext, out: &mut RuleOutput) {
    for (s, sf) in &facts.services {
        let Some(event) = sf.planned.last() else {
            continue;
        };
        let load_symptoms = [K::TrafficSurge, K::Latency, K::ErrorRate, K::CpuSaturation];
        if !sf.has_any(&load_symptoms) {
            continue;
        }
        let mut evidence = vec![change_evidence(event)];
        evidence.extend(sf.evidence_of(&load_symptoms));
        let weight = if sf.has(K::TrafficSurge) { 0.9 } else { 0.6 };
        out.support(
            Cause::PlannedEvent,
            s,
            weight,
            format!(
                "{s}'s symptoms fall inside a planned event: {}",
                event.description
            ),
            evidence,
        );
    }
}
