//! The verification window: every symptom must stay clear for a while before medic calls an
//! incident healed, and the acted-on workload's rollout, where the platform reports one, must
//! stay settled for as long.

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
                self.clear_rounds = 0;
                self.unknown_rounds = 0;
            }
            SymptomState::Clear => {
                self.clear_since.get_or_insert(now);
                self.last_clear = Some(now);
                self.clear_rounds = self.clear_rounds.saturating_add(1);
            }
            // No data neither starts nor breaks a clean period, but it weakens it.
            SymptomState::Unknown => {
                if self.clear_since.is_some() {
                    self.unknown_rounds = self.unknown_rounds.saturating_add(1);
                }
            }
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
    /// Rounds judged Clear, and rounds without data, in the current clean period.
    clear_rounds: u32,
    unknown_rounds: u32,
}

/// Fewest Clear rounds (and no round without data) for a clean window to count as strong
/// evidence on its own, where the before/after test has too few samples.
pub const MIN_STRONG_ROUNDS: u32 = 3;

/// What the window saw of one symptom over its current clean period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowEvidence {
    pub symptom: Symptom,
    pub clear_rounds: u32,
    /// Clear in every round of the clean period (never without data), for at least
    /// [`MIN_STRONG_ROUNDS`] rounds.
    pub strong: bool,
}

/// What the platform said about the acted-on workload's rollout in one verification round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Rollout complete, replicas updated and available, restarts stopped, all ready.
    Settled { detail: String },
    /// Still rolling out, or replicas not ready or restarting.
    Unsettled { detail: String },
    /// The health could not be read: no news, so it neither starts nor breaks a settled
    /// period, and never blocks a pass by itself.
    Unreadable { error: String },
}

impl std::fmt::Display for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollout::Settled { detail } => write!(f, "rollout settled ({detail})"),
            Rollout::Unsettled { detail } => write!(f, "rollout not settled ({detail})"),
            Rollout::Unreadable { error } => write!(f, "rollout health unreadable ({error})"),
        }
    }
}

/// The rollout's record over the verification. It takes part only once the platform has
/// answered: a platform without the notion (no readings at all) verifies as before.
#[derive(Clone, Debug, Default)]
struct RolloutGate {
    /// First Settled since the last Unsettled: the rollout's steady period.
    settled_since: Option<Ts>,
    /// The latest readable answer (Settled or Unsettled); `None` until there is one.
    latest: Option<Rollout>,
    /// The first read error, kept so that the outcome can say health was not always known.
    error: Option<String>,
}

impl RolloutGate {
    fn update(&mut self, now: Ts, reading: &Rollout) {
        match reading {
            Rollout::Settled { .. } => {
                self.settled_since.get_or_insert(now);
                self.latest = Some(reading.clone());
            }
            Rollout::Unsettled { .. } => {
                self.settled_since = None;
                self.latest = Some(reading.clone());
            }
            Rollout::Unreadable { error } => {
                self.error.get_or_insert_with(|| error.clone());
            }
        }
    }

    /// The start of the steady period the window is measured from: `None` blocks (last
    /// reading unsettled); no constraint at all before the first readable answer.
    fn constraint(&self) -> Option<Option<Ts>> {
        self.latest.as_ref().map(|_| self.settled_since)
    }
}

#[derive(Clone, Debug)]
pub struct Verification {
    tracks: BTreeMap<Symptom, Track>,
    /// Named boolean checks (e.g. `verify_promql` expressions): true is Clear, false is
    /// Anomalous, no answer is Unknown. They must hold like the symptoms.
    checks: BTreeMap<String, Track>,
    rollout: RolloutGate,
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
            rollout: RolloutGate::default(),
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
        if !self.accepts(now) {
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

    /// [`Verification::observe_with_checks`] plus the rollout health read this round, if
    /// any (`None`: the platform cannot tell, or no answer arrived since the last round).
    /// Once read, the rollout must stay settled for the whole window like a symptom stays
    /// clear: an unsettled answer restarts the window and blocks a pass until the deadline.
    pub fn observe_round(
        &mut self,
        now: Ts,
        states: &[(Symptom, SymptomState)],
        checks: &[(String, Option<bool>)],
        rollout: Option<&Rollout>,
    ) -> VerifyStatus {
        if !self.accepts(now) {
            return self.status.clone();
        }
        if let Some(r) = rollout {
            self.rollout.update(now, r);
        }
        self.observe_with_checks(now, states, checks)
    }

    /// Each symptom's clean period as the window saw it, for the verdict.
    pub fn window_evidence(&self) -> Vec<WindowEvidence> {
        self.tracks
            .iter()
            .map(|(s, t)| WindowEvidence {
                symptom: s.clone(),
                clear_rounds: t.clear_rounds,
                strong: t.clear_since.is_some()
                    && t.unknown_rounds == 0
                    && t.clear_rounds >= MIN_STRONG_ROUNDS,
            })
            .collect()
    }

    /// When verification began: observations from before it do not count.
    pub fn started(&self) -> Ts {
        self.started
    }

    /// The latest readable rollout health (Settled or Unsettled), if the platform gave one.
    pub fn rollout(&self) -> Option<&Rollout> {
        self.rollout.latest.as_ref()
    }

    /// The first error reading the rollout health, if any.
    pub fn rollout_error(&self) -> Option<&str> {
        self.rollout.error.as_deref()
    }

    /// Whether an observation at `now` counts: only while pending, not before the start and
    /// not older than the last one.
    fn accepts(&self, now: Ts) -> bool {
        matches!(self.status, VerifyStatus::Pending { .. })
            && now >= self.started
            && self.last_observed.is_none_or(|t| now >= t)
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
        if !self.accepts(now) {
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

    /// When every symptom has been clear (and the rollout, once read, settled) since: the
    /// latest of their clean periods' starts.
    fn clear_since(&self) -> Option<Ts> {
        self.tracks
            .values()
            .chain(self.checks.values())
            .map(|t| t.clear_since)
            .chain(self.rollout.constraint())
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
        match &self.rollout.latest {
            Some(r @ Rollout::Unsettled { .. }) => parts.push(r.to_string()),
            Some(Rollout::Settled { detail })
                if self
                    .rollout
                    .settled_since
                    .is_none_or(|s| now.0.saturating_sub(s.0) < self.window_ms) =>
            {
                too_short.push(format!("rollout ({detail})"));
            }
            _ => {}
        }
        if !too_short.is_empty() {
            parts.push(format!(
                "clear for less than the {}s window: {}",
                self.window_ms as f64 / 1000.0,
                too_short.join(", ")
            ));
        }
        if let Some(error) = &self.rollout.error {
            parts.push(format!("rollout health could not always be read: {error}"));
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
