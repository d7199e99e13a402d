//! The verification window: every symptom must stay clear for a while before medic calls an
//! incident healed.

use medic_core::{Outcome, Symptom, SymptomState, Ts};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub enum VerifyStatus {
    /// Not decided yet; `clear_since` is when the current clean period began, if one has.
    Pending {
        clear_since: Option<Ts>,
    },
    Healed {
        healthy_since: Ts,
        verified_at: Ts,
    },
    NotHealed {
        reason: String,
    },
}

impl VerifyStatus {
    /// The outcome to record, once decided.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            VerifyStatus::Pending { .. } => None,
            VerifyStatus::Healed {
                healthy_since,
                verified_at,
            } => Some(Outcome::Healed {
                healthy_since: *healthy_since,
                verified_at: *verified_at,
            }),
            VerifyStatus::NotHealed { reason } => Some(Outcome::NotHealed {
                reason: reason.clone(),
            }),
        }
    }
}

/// What is known about one symptom since the last time it was anomalous.
impl Track {
    fn update(&mut self, now: Ts, state: SymptomState) {
        self.latest = Some(state);
        match state {
            SymptomState::Anomalous => {
                self.clear_since = None;
                self.last_clear = None;
            }
            SymptomState::Clear => {
                self.clear_since.get_or_insert(now);
                self.last_clear = Some(now);
            }
            // No data neither starts nor breaks a clean period.
            SymptomState::Unknown => {}
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Track {
    /// First Clear since the last Anomalous (or since the start): this symptom's clean period.
    clear_since: Option<Ts>,
    /// The most recent Clear.
    last_clear: Option<Ts>,
    /// The most recent judgement; `None` until the first observation.
    latest: Option<SymptomState>,
}

#[derive(Clone, Debug)]
pub struct Verification {
    tracks: BTreeMap<Symptom, Track>,
    /// Named boolean checks (e.g. `verify_promql` expressions): true is Clear, false is
    /// Anomalous, no answer is Unknown. They must hold like the symptoms.
    checks: BTreeMap<String, Track>,
    window_ms: i64,
    started: Ts,
    deadline: Ts,
    last_observed: Option<Ts>,
    status: VerifyStatus,
}

impl Verification {
    /// `window`: how long every symptom must stay Clear; `deadline`: give up if not healed by
    /// then.
    pub fn new(symptoms: Vec<Symptom>, window: Duration, started: Ts, deadline: Ts) -> Self {
        let status = if symptoms.is_empty() {
            // Watching nothing proves nothing: let people look at it.
            VerifyStatus::NotHealed {
                reason: "nothing to verify: the plan names no symptoms".into(),
            }
        } else {
            VerifyStatus::Pending { clear_since: None }
        };
        Verification {
            tracks: symptoms
                .into_iter()
                .map(|s| (s, Track::default()))
                .collect(),
            checks: BTreeMap::new(),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            deadline,
            started,
            last_observed: None,
            status,
        }
    }

    /// The same verification with named boolean checks that must also hold for the whole
    /// window (fed through [`Verification::observe_with_checks`]).
    pub fn with_checks(mut self, checks: impl IntoIterator<Item = String>) -> Self {
        self.checks = checks.into_iter().map(|c| (c, Track::default())).collect();
        if !self.checks.is_empty()
            && matches!(&self.status, VerifyStatus::NotHealed { reason } if reason.starts_with("nothing to verify"))
        {
            self.status = VerifyStatus::Pending { clear_since: None };
        }
        self
    }

    /// Names of the checks being verified.
    pub fn check_names(&self) -> impl Iterator<Item = &str> {
        self.checks.keys().map(String::as_str)
    }

    /// [`Verification::observe`] plus the checks' results at `now`: `Some(true)` holds,
    /// `Some(false)` fails, `None` (the check could not be run) is Unknown, never a pass.
    /// Checks not listed count as Unknown.
    pub fn observe_with_checks(
        &mut self,
        now: Ts,
        states: &[(Symptom, SymptomState)],
        checks: &[(String, Option<bool>)],
    ) -> VerifyStatus {
        if !matches!(self.status, VerifyStatus::Pending { .. })
            || now < self.started
            || self.last_observed.is_some_and(|t| now < t)
        {
            return self.status.clone();
        }
        for (name, track) in &mut self.checks {
            let state = checks
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, r)| match r {
                    Some(true) => SymptomState::Clear,
                    Some(false) => SymptomState::Anomalous,
                    None => SymptomState::Unknown,
                })
                .fold(SymptomState::Unknown, |acc, s| match (acc, s) {
                    (SymptomState::Anomalous, _) | (_, SymptomState::Anomalous) => {
                        SymptomState::Anomalous
                    }
                    (SymptomState::Clear, _) | (_, SymptomState::Clear) => SymptomState::Clear,
                    _ => SymptomState::Unknown,
                });
            track.update(now, state);
        }
        self.observe(now, states)
    }

    /// The current status without a new observation.
    pub fn status(&self) -> &VerifyStatus {
        &self.status
    }

    /// Feed the current state of each symptom (from the detectors) at `now`. Symptoms not
    /// listed count as Unknown; symptoms not being verified are ignored. Once decided, the
    /// status no longer changes; observations from before the start or older than the last
    /// one are stale and ignored.
    pub fn observe(&mut self, now: Ts, states: &[(Symptom, SymptomState)]) -> VerifyStatus {
        if !matches!(self.status, VerifyStatus::Pending { .. })
            || now < self.started
            || self.last_observed.is_some_and(|t| now < t)
        {
            return self.status.clone();
        }
        self.last_observed = Some(now);
        for (symptom, track) in &mut self.tracks {
            track.update(now, combined_state(symptom, states));
        }
        self.status = self.judge(now);
        self.status.clone()
    }

    fn judge(&self, now: Ts) -> VerifyStatus {
        let clear_since = self.clear_since();
        if let Some(since) = clear_since {
            let long_enough = now.0.saturating_sub(since.0) >= self.window_ms;
            // Unknown throughout the window is not proof: each symptom needs a fresh Clear.
            let window_start = now.0.saturating_sub(self.window_ms);
            let all_seen_clear = self
                .tracks
                .values()
                .chain(self.checks.values())
                .all(|t| t.last_clear.is_some_and(|c| c.0 >= window_start));
            if long_enough && all_seen_clear {
                return VerifyStatus::Healed {
                    healthy_since: since,
                    verified_at: now,
                };
            }
        }
        if now >= self.deadline {
            return VerifyStatus::NotHealed {
                reason: self.not_healed_reason(now),
            };
        }
        VerifyStatus::Pending { clear_since }
    }

    /// When every symptom has been clear since (the latest of their clean periods' starts).
    fn clear_since(&self) -> Option<Ts> {
        self.tracks
            .values()
            .chain(self.checks.values())
            .map(|t| t.clear_since)
            .try_fold(Ts(i64::MIN), |acc, s| s.map(|s| acc.max(s)))
    }

    /// Names every symptom that stands in the way: anomalous now, without fresh data, or
    /// clear for less than the window.
    fn not_healed_reason(&self, now: Ts) -> String {
        let mut anomalous = Vec::new();
        let mut unknown = Vec::new();
        let mut too_short = Vec::new();
        let window_start = now.0.saturating_sub(self.window_ms);
        let named = self
            .tracks
            .iter()
            .map(|(s, t)| (s.to_string(), t))
            .chain(self.checks.iter().map(|(c, t)| (format!("check `{c}`"), t)));
        for (symptom, track) in named {
            let fresh_clear = track.last_clear.is_some_and(|c| c.0 >= window_start);
            let clear_long_enough = track
                .clear_since
                .is_some_and(|s| now.0.saturating_sub(s.0) >= self.window_ms);
            if track.latest == Some(SymptomState::Anomalous) {
                anomalous.push(symptom.clone());
            } else if !fresh_clear {
                unknown.push(symptom.clone());
            } else if !clear_long_enough {
                too_short.push(symptom.clone());
            }
        }
        let mut parts = Vec::new();
        if !anomalous.is_empty() {
            parts.push(format!("still anomalous: {}", anomalous.join(", ")));
        }
        if !unknown.is_empty() {
            parts.push(format!("no data (unknown): {}", unknown.join(", ")));
        }
        if !too_short.is_empty() {
            parts.push(format!(
                "clear for less than the {}s window: {}",
                self.window_ms as f64 / 1000.0,
                too_short.join(", ")
            ));
        }
        format!(
            "not healed by the deadline {}: {}",
            self.deadline,
            parts.join("; ")
        )
    }
}

/// One judgement per symptom: any Anomalous wins, then any Clear, else Unknown (also when
/// the symptom is missing).
fn combined_state(symptom: &Symptom, states: &[(Symptom, SymptomState)]) -> SymptomState {
    let mut result = SymptomState::Unknown;
    for (_, state) in states.iter().filter(|(s, _)| s == symptom) {
        match state {
            SymptomState::Anomalous => return SymptomState::Anomalous,
            SymptomState::Clear => result = SymptomState::Clear,
            SymptomState::Unknown => {}
        }
    }
    result
}

#[cfg(test)]
mod tests;
