//! A new release followed by failures of the service it replaced.

use super::Rule;
use crate::facts::change_evidence;
use crate::{DiagnosisContext, Facts, RuleOutput};
use medic_core::{Cause, FindingKind as K};

pub const RULE: Rule = Rule {
    name: "bad_deployment",
    evaluate,
};

fn evaluate(facts: &Facts, _cx: &DiagnosisContext, out: &mut RuleOutput) {
    for (s, sf) in &facts.services {
        let Some(deploy) = sf.recent_deploys.last() else {
            continue;
        };
        let release = deploy.to.as_deref().unwrap_or("a new release");
        let errors = [K::ErrorRate, K::ErrorLogBurst, K::NewErrorMessage];
        if sf.has_any(&errors) {
            let mut evidence = vec![change_evidence(deploy)];
            evidence.extend(sf.evidence_of(&errors));
            out.support(
                Cause::BadDeployment,
                s,
                0.8,
                format!("{s} started failing requests after {release} was deployed"),
                evidence,
            );
        }
        if sf.has(K::Latency) {
            out.support(
                Cause::BadDeployment,
                s,
                0.4,
                format!("{s} slowed down after {release} was deployed"),
                vec![change_evidence(deploy)],
            );
        }
        if sf.has_any(&[K::CrashLoop, K::ProcessExit]) && !sf.has(K::OomKilled) {
            out.support(
                Cause::BadDeployment,
                s,
                0.5,
                format!("{s} exits since {release} was deployed"),
                vec![change_evidence(deploy)],
            );
        }
        // A deploy and a config change together: the newer one is the likelier culprit.
        if let Some(cfg) = sf.recent_config_changes.last()
            && cfg.start > deploy.start
        {
            out.penalise(
                Cause::BadDeployment,
                s,
                0.6,
                "a config change came after the deploy",
            );
        }
    }
}
