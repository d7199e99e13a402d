//! The live timeline: one line per step of each incident, for people to follow.

use medic_core::Ts;
use serde::{Deserialize, Serialize};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Detected,
    Correlated,
    Diagnosed,
    Decided,
    Acting,
    Acted,
    Verified,
    NotHealed,
    /// The symptoms cleared but the before/after test could not credit the action.
    Inconclusive,
    RolledBack,
    Escalated,
    Closed,
    Resumed,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Detected => "detected",
            Stage::Correlated => "correlated",
            Stage::Diagnosed => "diagnosed",
            Stage::Decided => "decided",
            Stage::Acting => "acting",
            Stage::Acted => "acted",
            Stage::Verified => "verified",
            Stage::NotHealed => "not healed",
            Stage::Inconclusive => "inconclusive",
            Stage::RolledBack => "rolled back",
            Stage::Escalated => "escalated",
            Stage::Closed => "closed",
            Stage::Resumed => "resumed",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub ts: Ts,
    pub incident: String,
    pub stage: Stage,
    pub text: String,
}

impl TimelineEvent {
    /// `12:00:01.234  inc-3f2a…  diagnosed    memory_leak on catalog (0.94)`
    pub fn line(&self) -> String {
        format!(
            "{}  {}  {:<11}  {}",
            self.ts.clock_time(),
            self.incident,
            self.stage.as_str(),
            self.text
        )
    }
}
