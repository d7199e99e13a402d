//! Edge triggering: an episode starts after `sustain` consecutive anomalous evaluations and
//! ends after a few consecutive clear ones. A finding is emitted once, when the episode starts.

use medic_core::SymptomState;

/// Consecutive clear evaluations that end an episode; a flapping series stays one episode.
pub(crate) const CLEAR_EVALS_TO_END: u32 = 3;

/// One evaluation's verdict.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub(crate) enum Judgement {
    Anomalous,
    Clear,
    #[default]
    Unknown,
}

impl Judgement {
    pub fn state(self) -> SymptomState {
        match self {
            Judgement::Anomalous => SymptomState::Anomalous,
            Judgement::Clear => SymptomState::Clear,
            Judgement::Unknown => SymptomState::Unknown,
        }
    }

    /// Combine instance verdicts into a service verdict: any anomalous instance makes the
    /// service anomalous; otherwise one clear instance is enough to call it clear.
    pub fn worst(self, other: Judgement) -> Judgement {
        match (self, other) {
            (Judgement::Anomalous, _) | (_, Judgement::Anomalous) => Judgement::Anomalous,
            (Judgement::Clear, _) | (_, Judgement::Clear) => Judgement::Clear,
            _ => Judgement::Unknown,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Episode {
    hits: u32,
    clears: u32,
    active: bool,
}

impl Episode {
    /// Record one evaluation; true when an episode starts with it.
    pub fn update(&mut self, j: Judgement, sustain: u32) -> bool {
        match j {
            Judgement::Anomalous => {
                self.clears = 0;
                self.hits = self.hits.saturating_add(1);
                if !self.active && self.hits >= sustain.max(1) {
                    self.active = true;
                    return true;
                }
            }
            Judgement::Clear => {
                self.hits = 0;
                if self.active {
                    self.clears += 1;
                    if self.clears >= CLEAR_EVALS_TO_END {
                        self.active = false;
                        self.clears = 0;
                    }
                }
            }
            // No data says nothing about the episode, but it does break a run towards one.
            Judgement::Unknown => {
                if !self.active {
                    self.hits = 0;
                }
            }
        }
        false
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Whether a baseline may learn from this evaluation: only clear values outside any
    /// episode, so neither a fault nor its tail is taken for normal.
    pub fn may_learn(&self, j: Judgement) -> bool {
        j == Judgement::Clear && !self.active && self.hits == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Judgement::*;

    #[test]
    fn starts_once_after_sustain_and_ends_after_clears() {
        let mut e = Episode::default();
        assert!(!e.update(Anomalous, 2));
        assert!(e.update(Anomalous, 2));
        assert!(!e.update(Anomalous, 2));
        assert!(!e.update(Clear, 2));
        assert!(!e.update(Anomalous, 2)); // flapping: same episode
        for _ in 0..CLEAR_EVALS_TO_END {
            assert!(e.is_active());
            e.update(Clear, 2);
        }
        assert!(!e.is_active());
        assert!(!e.update(Anomalous, 2));
        assert!(e.update(Anomalous, 2)); // a new episode
    }

    #[test]
    fn unknown_breaks_a_run_but_not_an_episode() {
        let mut e = Episode::default();
        e.update(Anomalous, 2);
        e.update(Unknown, 2);
        assert!(!e.update(Anomalous, 2));
        assert!(e.update(Anomalous, 2));
        for _ in 0..10 {
            e.update(Unknown, 2);
        }
        assert!(e.is_active());
    }

    #[test]
    fn learning_only_when_clear_and_idle() {
        let mut e = Episode::default();
        assert!(e.may_learn(Clear));
        assert!(!e.may_learn(Unknown));
        e.update(Anomalous, 3);
        assert!(!e.may_learn(Clear));
    }

    #[test]
    fn worst_of_instances() {
        assert_eq!(Clear.worst(Anomalous), Anomalous);
        assert_eq!(Unknown.worst(Clear), Clear);
        assert_eq!(Unknown.worst(Unknown), Unknown);
    }
}
