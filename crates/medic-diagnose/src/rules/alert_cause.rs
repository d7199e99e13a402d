//! Alert authors may name the cause: an alert with the annotation `medic_cause` (or the label
//! `cause`) set to one of medic's causes (`memory_leak`, `bad_deployment`, ...) supports that
//! cause on the alert's service. It stays one piece of evidence among others: the noisy-OR
//! combination still lets the other rules confirm or outweigh it, and a hypothesis that only
//! hints support is marked so (`only_hinted_by`): the `corroboration` guard keeps it from
//! acting automatically. The alert detector turns those annotations into typed
//! `Evidence::Hint`s; nothing here reads words.

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
            for (cause, sender) in hints(&f.evidence) {
                out.hint(
                    cause,
                    s,
                    WEIGHT,
                    format!("the alert on {s} names the cause: {}", f.summary),
                    f.evidence.clone(),
                    sender,
                );
            }
        }
    }
}

/// The known causes an alert's typed hints name, with their senders.
fn hints(evidence: &[Evidence]) -> Vec<(Cause, Option<&str>)> {
    let mut out: Vec<(Cause, Option<&str>)> = Vec::new();
    for e in evidence {
        if let Evidence::Hint { cause, sender, .. } = e
            && let Some(c) = Cause::parse(cause.trim())
            && !out.iter().any(|(k, _)| *k == c)
        {
            out.push((c, sender.as_deref()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(cause: &str, sender: Option<&str>) -> Evidence {
        Evidence::Hint {
            service: "a".into(),
            cause: cause.into(),
            alert: "X".into(),
            sender: sender.map(str::to_string),
        }
    }

    #[test]
    fn typed_hints_name_known_causes_once() {
        assert_eq!(
            hints(&[hint("memory_leak", Some("am")), hint("memory_leak", None)]),
            vec![(Cause::MemoryLeak, Some("am"))]
        );
        assert!(hints(&[hint("nonsense", None)]).is_empty());
        // Words in notes are no longer read as causes.
        let note = Evidence::Note {
            text: "alert X medic_cause: memory_leak".into(),
        };
        assert!(hints(&[note]).is_empty());
    }
}
