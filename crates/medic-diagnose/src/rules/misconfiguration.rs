//! A configuration change followed by exits or errors of the service it changed.

use super::Rule;
use crate::facts::change_evidence;
use crate::{DiagnosisContext, Facts, RuleOutput};
use medic_core::{Cause, FindingKind as K};

pub const RULE: Rule = Rule {
    name: "misconfiguration",
    evaluate,
};

fn evaluate(facts: &Facts, _cx: &DiagnosisContext, out: &mut RuleOutput) {
    for (s, sf) in &facts.services {
        let mentions_config = sf.mentions("config");
        let exits = sf.has_any(&[K::CrashLoop, K::ProcessExit]);
        match sf.recent_config_changes.last() {
            Some(change) => {
                let mut evidence = vec![change_evidence(change)];
                if exits {
                    evidence.extend(sf.evidence_of(&[K::CrashLoop, K::ProcessExit]));
                    out.support(
                        Cause::Misconfiguration,
                        s,
                        0.85,
                        format!("{s} keeps exiting since its configuration changed"),
                        evidence,
                    );
                } else if sf.has_any(&[K::ErrorRate, K::ErrorLogBurst, K::NewErrorMessage]) {
                    evidence.extend(sf.evidence_of(&[
                        K::ErrorRate,
                        K::ErrorLogBurst,
                        K::NewErrorMessage,
                    ]));
                    out.support(
                        Cause::Misconfiguration,
                        s,
                        0.55,
                        format!("{s} fails requests since its configuration changed"),
                        evidence,
                    );
                }
                if mentions_config && (exits || sf.is_failing()) {
                    out.support(
                        Cause::Misconfiguration,
                        s,
                        0.5,
                        format!("{s}'s own errors name its configuration"),
                        sf.evidence_of(&[K::NewErrorMessage, K::ErrorLogBurst, K::ProcessExit]),
                    );
                }
            }
            None if exits && mentions_config => out.support(
                Cause::Misconfiguration,
                s,
                0.45,
                format!("{s} exits with errors that name its configuration (no recorded change)"),
                sf.evidence_of(&[K::CrashLoop, K::ProcessExit, K::NewErrorMessage]),
            ),
            None => {}
        }
    }
}
