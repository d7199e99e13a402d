//! One rule per cause. A new rule is a new file and one line in [`ALL`].

mod alert_cause;
mod bad_deployment;
mod dependency_failure;
mod load_surge;
mod memory_leak;
mod misconfiguration;
mod network_latency;
mod planned_event;

use crate::{DiagnosisContext, Facts, RuleOutput};

pub struct Rule {
    pub name: &'static str,
    pub evaluate: fn(&Facts, &DiagnosisContext, &mut RuleOutput),
}

pub const ALL: &[Rule] = &[
    memory_leak::RULE,
    misconfiguration::RULE,
    bad_deployment::RULE,
    dependency_failure::RULE,
    network_latency::RULE,
    load_surge::RULE,
    planned_event::RULE,
    alert_cause::RULE,
];
