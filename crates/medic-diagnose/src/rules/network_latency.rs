//! The deepest slow service in a chain of slow or timing-out callers.

use super::Rule;
use crate::{DiagnosisContext, Facts, RuleOutput};
use medic_core::{Cause, FindingKind as K};

pub const RULE: Rule = Rule {
    name: "network_latency",
    evaluate,
};

fn evaluate(facts: &Facts, cx: &DiagnosisContext, out: &mut RuleOutput) {
    for (s, sf) in &facts.services {
        if !sf.has(K::Latency) {
            continue;
        }
        // If something this service calls is itself slow or down, the slowness is inherited.
        let inherited = facts.services.iter().any(|(d, df)| {
            d != s && cx.topology.reaches(s, d) && (df.has(K::Latency) || df.is_down())
        });
        if inherited {
            continue;
        }
        out.support(
            Cause::NetworkLatency,
            s,
            0.7,
            format!("{s} is slow while nothing it calls is"),
            sf.evidence_of(&[K::Latency]),
        );
        for caller in cx.topology.dependents(s) {
            let Some(cf) = facts.get(caller) else {
                continue;
            };
            if cf.mentions("timed out") || cf.mentions("timeout") {
                out.support(
                    Cause::NetworkLatency,
                    s,
                    0.3,
                    format!("{caller} times out calling {s}"),
                    cf.evidence_of(&[K::NewErrorMessage, K::ErrorLogBurst, K::ErrorRate]),
                );
            }
        }
        if sf.has(K::TrafficSurge) {
            out.penalise(
                Cause::NetworkLatency,
                s,
                0.3,
                format!("{s} also receives a traffic surge"),
            );
        }
        if !sf.recent_deploys.is_empty() || !sf.recent_config_changes.is_empty() {
            out.penalise(
                Cause::NetworkLatency,
                s,
                0.6,
                format!("{s} changed recently"),
            );
        }
        if sf.has_any(&[K::MemoryGrowth, K::OomKilled]) {
            out.penalise(
                Cause::NetworkLatency,
                s,
                0.5,
                format!("{s} is short of memory"),
            );
        }
    }
}
