//! Alert authors may name the cause: an alert with the annotation `medic_cause` (or the label
//! `cause`) set to one of medic's causes (`memory_leak`, `bad_deployment`, ...) supports that
//! cause on the alert's service. It stays one piece of evidence among others: the noisy-OR
//! combination still lets the other rules confirm or outweigh it.

use super::Rule;
use crate::{DiagnosisContext, Facts, RuleOutput};
use medic_core::{Cause, Evidence, FindingKind as K};

pub const RULE: Rule = Rule {
    name: "alert_cause",
    evaluate,
};

/// How much an alert's own word counts.
const WEIGHT: f64 = 0.75;

fn evaluate(facts: &Facts, _cx: &DiagnosisContext, out: &mut RuleOutput) {
    for (s, sf) in &facts.services {
        for f in sf.findings.iter().filter(|f| f.kind == K::AlertFiring) {
            let Some(cause) = named_cause(&f.evidence) else {
                continue;
            };
            out.support(
                cause,
                s,
                WEIGHT,
                format!("the alert on {s} names the cause: {}", f.summary),
                f.evidence.clone(),
            );
        }
    }
}

/// The alert detector writes annotations as `alert NAME medic_cause: VALUE` notes and labels
/// as `k=v` in its event evidence.
fn named_cause(evidence: &[Evidence]) -> Option<Cause> {
    for e in evidence {
        match e {
            Evidence::Note { text } => {
                if let Some((_, v)) = text.split_once(" medic_cause: ")
                    && let Some(c) = Cause::parse(v.trim())
                {
                    return Some(c);
                }
            }
            Evidence::Event { description, .. } => {
                if let Some(c) = description
                    .split(['{', '}', ','])
                    .filter_map(|kv| kv.trim().strip_prefix("cause="))
                    .find_map(Cause::parse)
                {
                    return Some(c);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::Ts;

    #[test]
    fn annotation_or_label_names_a_cause() {
        let note = |t: &str| Evidence::Note { text: t.into() };
        assert_eq!(
            named_cause(&[note("alert X medic_cause: memory_leak")]),
            Some(Cause::MemoryLeak)
        );
        assert_eq!(named_cause(&[note("alert X medic_cause: nonsense")]), None);
        let ev = Evidence::Event {
            ts: Ts(0),
            service: "a".into(),
            description: "alert X firing since t {alertname=X, cause=bad_deployment}".into(),
        };
        assert_eq!(named_cause(&[ev]), Some(Cause::BadDeployment));
        assert_eq!(named_cause(&[note("alert X summary: memory_leak")]), None);
    }
}
