//! A service that is down, and the callers that fail because of it.

use super::Rule;
use crate::{DiagnosisContext, Facts, RuleOutput};
use medic_core::{Cause, Evidence, FindingKind as K};

pub const RULE: Rule = Rule {
    name: "dependency_failure",
    evaluate,
};

fn evaluate(facts: &Facts, cx: &DiagnosisContext, out: &mut RuleOutput) {
    // Candidates: every service that is down, plus every dependency a failing caller names as
    // refusing connections (its own findings may not have arrived yet).
    let mut candidates: Vec<String> = facts
        .services
        .iter()
        .filter(|(_, sf)| sf.is_down())
        .map(|(s, _)| s.clone())
        .collect();
    for (caller, sf) in &facts.services {
        if !sf.is_failing() {
            continue;
        }
        for dep in cx.topology.dependencies(caller) {
            if sf.names_service(dep) && !candidates.iter().any(|c| c == dep) {
                candidates.push(dep.to_string());
            }
        }
    }
    for d in candidates {
        let own = facts.get(&d);
        if let Some(sf) = own.filter(|sf| sf.is_down()) {
            out.support(
                Cause::DependencyFailure,
                &d,
                0.6,
                format!("{d} is not running or not answering"),
                sf.evidence_of(&[K::ProcessExit, K::TargetDown, K::CrashLoop]),
            );
        }
        let mut callers = 0;
        for caller in cx.topology.dependents(&d) {
            let Some(cf) = facts.get(caller) else {
                continue;
            };
            if !cf.is_failing() || callers >= 2 {
                continue;
            }
            let names_it = cf.names_service(&d);
            let refused = cf.mentions("connection refused") || cf.mentions("no endpoints");
            if names_it || refused {
                callers += 1;
                // Naming the dependency *and* being refused by it is the strongest sign.
                let weight = if names_it && refused { 0.6 } else { 0.4 };
                let mut evidence =
                    cf.evidence_of(&[K::NewErrorMessage, K::ErrorLogBurst, K::ErrorRate]);
                evidence.push(Evidence::Note {
                    text: format!("{caller} calls {d}"),
                });
                out.support(
                    Cause::DependencyFailure,
                    &d,
                    weight,
                    format!("{caller}, which calls {d}, fails with errors naming it or refused connections"),
                    evidence,
                );
            }
        }
        if let Some(sf) = own {
            if !sf.recent_config_changes.is_empty() || !sf.recent_deploys.is_empty() {
                out.penalise(
                    Cause::DependencyFailure,
                    &d,
                    0.5,
                    format!("{d} changed recently, which better explains why it is down"),
                );
            }
            if sf.has_any(&[K::OomKilled, K::MemoryGrowth]) {
                out.penalise(
                    Cause::DependencyFailure,
                    &d,
                    0.6,
                    format!("{d} ran out of memory, which better explains why it is down"),
                );
            }
        }
    }
}
