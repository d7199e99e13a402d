//! Traffic far above its baseline, with the saturation it causes.

use super::Rule;
use crate::{DiagnosisContext, Facts, RuleOutput};
use medic_core::{Cause, FindingKind as K};

pub const RULE: Rule = Rule {
    name: "load_surge",
    evaluate,
};

fn evaluate(facts: &Facts, _cx: &DiagnosisContext, out: &mut RuleOutput) {
    for (s, sf) in &facts.services {
        if !sf.has(K::TrafficSurge) {
            continue;
        }
        out.support(
            Cause::LoadSurge,
            s,
            0.6,
            format!("{s} receives far more requests than its baseline"),
            sf.evidence_of(&[K::TrafficSurge]),
        );
        if sf.has_any(&[K::Latency, K::ErrorRate, K::CpuSaturation]) {
            out.support(
                Cause::LoadSurge,
                s,
                0.6,
                format!("{s} saturates under that load (latency or shed requests)"),
                sf.evidence_of(&[K::Latency, K::ErrorRate, K::CpuSaturation]),
            );
        }
        if !sf.planned.is_empty() {
            out.penalise(
                Cause::LoadSurge,
                s,
                0.3,
                "the surge was announced in the change calendar",
            );
        }
    }
}
