//! Diagnosis: ranked hypotheses about why an incident happened.

use crate::finding::Evidence;
use crate::time::Ts;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    MemoryLeak,
    BadDeployment,
    Misconfiguration,
    DependencyFailure,
    NetworkLatency,
    LoadSurge,
    PlannedEvent,
    Unknown,
}

impl Cause {
    pub const ALL: [Cause; 8] = [
        Cause::MemoryLeak,
        Cause::BadDeployment,
        Cause::Misconfiguration,
        Cause::DependencyFailure,
        Cause::NetworkLatency,
        Cause::LoadSurge,
        Cause::PlannedEvent,
        Cause::Unknown,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::MemoryLeak => "memory_leak",
            Cause::BadDeployment => "bad_deployment",
            Cause::Misconfiguration => "misconfiguration",
            Cause::DependencyFailure => "dependency_failure",
            Cause::NetworkLatency => "network_latency",
            Cause::LoadSurge => "load_surge",
            Cause::PlannedEvent => "planned_event",
            Cause::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    pub cause: Cause,
    /// The service the cause lives in (not necessarily where symptoms show).
    pub target: String,
    /// In [0, 1].
    pub confidence: f64,
    /// Why, in one sentence.
    pub rationale: String,
    pub evidence: Vec<Evidence>,
    /// Set when the only support is an alert's own cause hint: the sender of that hint
    /// (`""` when unknown). Such a hypothesis never reaches an automatic action unless the
    /// policy trusts that sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_hinted_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub made_at: Ts,
    /// Best first. Never empty: the last resort is `unknown`.
    pub hypotheses: Vec<Hypothesis>,
    /// Which engine produced it (`rules`, later `llm`).
    pub engine: String,
}

impl Diagnosis {
    pub fn top(&self) -> Option<&Hypothesis> {
        self.hypotheses.first()
    }
}
