//! Memory that keeps growing, and processes killed for exceeding their limit.

use super::Rule;
use crate::{DiagnosisContext, Facts, RuleOutput};
use medic_core::{Cause, FindingKind as K};

pub const RULE: Rule = Rule {
    name: "memory_leak",
    evaluate,
};

fn evaluate(facts: &Facts, _cx: &DiagnosisContext, out: &mut RuleOutput) {
    for (s, sf) in &facts.services {
        if sf.has(K::MemoryGrowth) {
            out.support(
                Cause::MemoryLeak,
                s,
                0.75,
                format!("resident memory of {s} grows steadily above its baseline"),
                sf.evidence_of(&[K::MemoryGrowth]),
            );
        }
        if sf.has(K::OomKilled) {
            out.support(
                Cause::MemoryLeak,
                s,
                0.6,
                format!("{s} was killed for exceeding its memory limit"),
                sf.evidence_of(&[K::OomKilled]),
            );
        }
    }
}
