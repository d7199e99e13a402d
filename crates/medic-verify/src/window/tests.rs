use super::*;
use medic_core::{FindingKind, Symptom, SymptomState::*};

fn symptom(service: &str, kind: FindingKind) -> Symptom {
    Symptom {
        service: service.into(),
        kind,
    }
}

fn errors() -> Symptom {
    symptom("checkout", FindingKind::ErrorRate)
}

fn latency() -> Symptom {
    symptom("frontend", FindingKind::Latency)
}

const START: i64 = 1_000_000;

fn secs(s: i64) -> Ts {
    Ts(START + s * 1000)
}

/// Verification of both symptoms, 30 s window, deadline at 120 s.
fn verification() -> Verification {
    Verification::new(
        vec![errors(), latency()],
        Duration::from_secs(30),
        secs(0),
        secs(120),
    )
}

/// Feeds one observation per second from `from` to `to` (inclusive); returns the first
/// decided status and when, or the last pending one.
fn run(
    v: &mut Verification,
    from: i64,
    to: i64,
    states: impl Fn(i64) -> Vec<(Symptom, SymptomState)>,
) -> (i64, VerifyStatus) {
    run_rounds(v, from, to, |v, t| v.observe(secs(t), &states(t)))
}

/// [`run`] with each second's observation made by `round`.
fn run_rounds(
    v: &mut Verification,
    from: i64,
    to: i64,
    round: impl Fn(&mut Verification, i64) -> VerifyStatus,
) -> (i64, VerifyStatus) {
    let mut last = (from, VerifyStatus::Pending { clear_since: None });
    for t in from..=to {
        let status = round(v, t);
        let decided = !matches!(status, VerifyStatus::Pending { .. });
        last = (t, status);
        if decided {
            break;
        }
    }
    last
}

#[test]
fn late_recovery_heals_exactly_at_clear_since_plus_window() {
    let mut v = verification();
    let (at, status) = run(&mut v, 0, 200, |t| {
        let errors_state = if t < 17 { Anomalous } else { Clear };
        let latency_state = if t < 9 { Anomalous } else { Clear };
        vec![(errors(), errors_state), (latency(), latency_state)]
    });
    assert_eq!(at, 47);
    assert_eq!(
        status,
        VerifyStatus::Healed {
            healthy_since: secs(17),
            verified_at: secs(47)
        }
    );
    assert!(matches!(
        status.outcome(),
        Some(Outcome::Healed { healthy_since, .. }) if healthy_since == secs(17)
    ));
}

#[test]
fn pending_reports_when_the_clean_period_began() {
    let mut v = verification();
    v.observe(secs(0), &[(errors(), Anomalous), (latency(), Clear)]);
    let status = v.observe(secs(1), &[(errors(), Clear), (latency(), Clear)]);
    assert_eq!(
        status,
        VerifyStatus::Pending {
            clear_since: Some(secs(1))
        }
    );
    let status = v.observe(secs(2), &[(errors(), Clear), (latency(), Anomalous)]);
    assert_eq!(status, VerifyStatus::Pending { clear_since: None });
    assert_eq!(v.status(), &status);
}

#[test]
fn flapping_symptom_never_heals() {
    let mut v = verification();
    let (at, status) = run(&mut v, 0, 500, |t| {
        // Clear for 20 s, anomalous for 1 s, over and over: never 30 s clean.
        let flapping = if t % 21 == 20 { Anomalous } else { Clear };
        vec![(errors(), flapping), (latency(), Clear)]
    });
    assert_eq!(at, 120);
    let VerifyStatus::NotHealed { reason } = status else {
        panic!("{status:?}")
    };
    assert!(reason.contains("checkout/error_rate"), "{reason}");
    assert!(!reason.contains("frontend/latency"), "{reason}");
}

#[test]
fn all_unknown_is_not_healed_at_the_deadline() {
    let mut v = verification();
    let (at, status) = run(&mut v, 0, 500, |_| {
        vec![(errors(), Unknown), (latency(), Unknown)]
    });
    assert_eq!(at, 120);
    let VerifyStatus::NotHealed { reason } = status else {
        panic!("{status:?}")
    };
    assert!(reason.contains("no data (unknown)"), "{reason}");
    assert!(reason.contains("checkout/error_rate") && reason.contains("frontend/latency"));
}

#[test]
fn missing_symptoms_count_as_unknown() {
    let mut v = verification();
    let (at, status) = run(&mut v, 0, 500, |_| vec![(errors(), Clear)]);
    assert_eq!(at, 120);
    let VerifyStatus::NotHealed { reason } = status else {
        panic!("{status:?}")
    };
    assert!(
        reason.contains("no data (unknown): frontend/latency"),
        "{reason}"
    );
}

#[test]
fn unknown_neither_starts_nor_breaks_the_clean_period() {
    let mut v = verification();
    // Latency clear from 0, errors clear from 5; a gap of Unknown for errors in 10..20 does
    // not reset the clean period, so healing comes at 5 + 30.
    let (at, status) = run(&mut v, 0, 200, |t| {
        let e = match t {
            0..5 => Unknown,
            10..20 => Unknown,
            _ => Clear,
        };
        vec![(errors(), e), (latency(), Clear)]
    });
    assert_eq!(at, 35);
    assert_eq!(
        status,
        VerifyStatus::Healed {
            healthy_since: secs(5),
            verified_at: secs(35)
        }
    );
}

#[test]
fn a_symptom_unknown_for_the_whole_window_is_not_proof() {
    let mut v = verification();
    // Errors clear once at 0, then no data until 50; latency clear from 10. The clean period
    // starts at 10, but errors has no Clear in 10..=40, so 40 proves nothing.
    let (at, status) = run(&mut v, 0, 200, |t| {
        let e = match t {
            0 => Clear,
            1..50 => Unknown,
            _ => Clear,
        };
        let l = if t < 10 { Anomalous } else { Clear };
        vec![(errors(), e), (latency(), l)]
    });
    // Healed at the first fresh Clear, not at 40.
    assert_eq!(at, 50);
    assert_eq!(
        status,
        VerifyStatus::Healed {
            healthy_since: secs(10),
            verified_at: secs(50)
        }
    );
}

#[test]
fn anomalous_wins_over_duplicates_and_unrelated_symptoms_are_ignored() {
    let mut v = Verification::new(vec![errors()], Duration::ZERO, secs(0), secs(10));
    let cache = symptom("cache", FindingKind::TargetDown);
    let status = v.observe(
        secs(1),
        &[
            (errors(), Clear),
            (cache.clone(), Anomalous),
            (errors(), Anomalous),
        ],
    );
    assert_eq!(status, VerifyStatus::Pending { clear_since: None });
    // With a zero window, one clear observation of every symptom is enough.
    let status = v.observe(secs(2), &[(errors(), Clear), (cache, Anomalous)]);
    assert_eq!(
        status,
        VerifyStatus::Healed {
            healthy_since: secs(2),
            verified_at: secs(2)
        }
    );
}

#[test]
fn decided_status_is_final() {
    let mut v = Verification::new(vec![errors()], Duration::from_secs(5), secs(0), secs(3));
    let not_healed = v.observe(secs(3), &[(errors(), Clear)]);
    assert!(matches!(not_healed, VerifyStatus::NotHealed { .. }));
    let later = v.observe(secs(100), &[(errors(), Clear)]);
    assert_eq!(later, not_healed);
}

#[test]
fn stale_observations_are_ignored() {
    let mut v = verification();
    assert_eq!(
        v.observe(secs(-5), &[(errors(), Clear), (latency(), Clear)]),
        VerifyStatus::Pending { clear_since: None }
    );
    v.observe(secs(10), &[(errors(), Clear), (latency(), Clear)]);
    // Going back in time must not move the clean period or reset it.
    let status = v.observe(secs(4), &[(errors(), Anomalous), (latency(), Anomalous)]);
    assert_eq!(
        status,
        VerifyStatus::Pending {
            clear_since: Some(secs(10))
        }
    );
}

#[test]
fn clear_but_too_short_is_named_in_the_reason() {
    let mut v = verification();
    let (_, status) = run(&mut v, 0, 200, |t| {
        let e = if t < 100 { Anomalous } else { Clear };
        vec![(errors(), e), (latency(), Clear)]
    });
    let VerifyStatus::NotHealed { reason } = status else {
        panic!("{status:?}")
    };
    assert!(
        reason.contains("clear for less than the 30s window: checkout/error_rate"),
        "{reason}"
    );
    assert!(!reason.contains("frontend/latency"), "{reason}");
    assert!(!reason.contains("still anomalous"), "{reason}");
}

#[test]
fn empty_symptom_list_is_not_healed_at_once() {
    let mut v = Verification::new(vec![], Duration::from_secs(30), secs(0), secs(60));
    assert!(matches!(v.status(), VerifyStatus::NotHealed { .. }));
    let status = v.observe(secs(1), &[]);
    let VerifyStatus::NotHealed { reason } = status else {
        panic!("{status:?}")
    };
    assert!(reason.contains("no symptoms"), "{reason}");
}

#[test]
fn huge_window_and_extreme_times_do_not_overflow() {
    let mut v = Verification::new(
        vec![errors()],
        Duration::from_secs(u64::MAX),
        secs(0),
        secs(100),
    );
    assert!(matches!(
        v.observe(secs(0), &[(errors(), Clear)]),
        VerifyStatus::Pending { .. }
    ));
    let status = v.observe(secs(100), &[(errors(), Clear)]);
    assert!(
        matches!(status, VerifyStatus::NotHealed { .. }),
        "{status:?}"
    );

    let mut v = Verification::new(
        vec![errors()],
        Duration::from_secs(1),
        Ts(i64::MIN),
        Ts(i64::MAX),
    );
    v.observe(Ts(i64::MIN), &[(errors(), Clear)]);
    let status = v.observe(Ts(i64::MAX), &[(errors(), Clear)]);
    assert_eq!(
        status,
        VerifyStatus::Healed {
            healthy_since: Ts(i64::MIN),
            verified_at: Ts(i64::MAX)
        }
    );
}

/// `verify_promql` semantics: checks hold like symptoms; an unanswered query is Unknown,
/// never a pass; a failing one resets the clean period.
mod named_checks {
    use super::*;

    const Q: &str = "ratio < 0.05";

    fn checked() -> Verification {
        Verification::new(vec![errors()], Duration::from_secs(10), secs(0), secs(60))
            .with_checks([Q.to_string()])
    }

    fn step(v: &mut Verification, t: i64, check: Option<bool>) -> VerifyStatus {
        v.observe_with_checks(secs(t), &[(errors(), Clear)], &[(Q.to_string(), check)])
    }

    #[test]
    fn checks_must_hold_for_the_whole_window() {
        let mut v = checked();
        assert_eq!(v.check_names().collect::<Vec<_>>(), vec![Q]);
        for t in 0..=9 {
            assert!(matches!(
                step(&mut v, t, Some(true)),
                VerifyStatus::Pending { .. }
            ));
        }
        assert_eq!(
            step(&mut v, 10, Some(true)),
            VerifyStatus::Healed {
                healthy_since: secs(0),
                verified_at: secs(10)
            }
        );
    }

    #[test]
    fn a_false_check_resets_and_unknown_is_never_a_pass() {
        let mut v = checked();
        for t in 0..=5 {
            step(&mut v, t, Some(true));
        }
        step(&mut v, 6, Some(false));
        for t in 7..=15 {
            assert!(matches!(
                step(&mut v, t, Some(true)),
                VerifyStatus::Pending { .. }
            ));
        }
        assert!(matches!(
            step(&mut v, 16, Some(true)),
            VerifyStatus::Pending { .. }
        ));
        assert!(matches!(
            step(&mut v, 17, Some(true)),
            VerifyStatus::Healed { .. }
        ));

        // Query errors throughout: symptoms clear, yet not healed, and the reason says why.
        let mut v = checked();
        let mut last = VerifyStatus::Pending { clear_since: None };
        for t in 0..=60 {
            last = step(&mut v, t, None);
        }
        let VerifyStatus::NotHealed { reason } = last.clone() else {
            panic!("expected not healed, got {last:?}");
        };
        assert!(
            reason.contains("no data (unknown): check `ratio < 0.05`"),
            "{reason}"
        );

        // Plain `observe` gives the checks no answer either.
        let mut v = checked();
        for t in 0..=60 {
            last = v.observe(secs(t), &[(errors(), Clear)]);
        }
        assert!(matches!(last, VerifyStatus::NotHealed { .. }));
    }

    #[test]
    fn checks_alone_are_something_to_verify() {
        let mut v = Verification::new(vec![], Duration::from_secs(2), secs(0), secs(60))
            .with_checks([Q.to_string()]);
        let mut last = VerifyStatus::Pending { clear_since: None };
        for t in 0..=2 {
            last = v.observe_with_checks(secs(t), &[], &[(Q.to_string(), Some(true))]);
        }
        assert!(matches!(last, VerifyStatus::Healed { .. }), "{last:?}");
    }
}

/// Rollout health (Kubernetes: generation observed, replicas updated and available, no
/// restarts): once read, it must stay settled for the whole window; no reading never blocks.
mod rollout {
    use super::*;

    fn verification() -> Verification {
        Verification::new(vec![errors()], Duration::from_secs(10), secs(0), secs(60))
    }

    fn settled() -> Rollout {
        Rollout::Settled {
            detail: "2/2 updated, 2/2 available".into(),
        }
    }

    fn unsettled() -> Rollout {
        Rollout::Unsettled {
            detail: "1/2 updated, 1/2 available".into(),
        }
    }

    /// Symptom clear throughout; `rollout(t)` is the round's reading. Returns the first
    /// decided status and when, or the last pending one.
    fn run(v: &mut Verification, rollout: impl Fn(i64) -> Option<Rollout>) -> (i64, VerifyStatus) {
        run_rounds(v, 0, 60, |v, t| {
            v.observe_round(secs(t), &[(errors(), Clear)], &[], rollout(t).as_ref())
        })
    }

    #[test]
    fn an_unsettled_rollout_blocks_a_pass_and_is_named_at_the_deadline() {
        let mut v = verification();
        let (at, status) = run(&mut v, |_| Some(unsettled()));
        assert_eq!(at, 60);
        let VerifyStatus::NotHealed { reason } = status else {
            panic!("expected not healed, got {status:?}");
        };
        assert!(
            reason.contains("rollout not settled (1/2 updated, 1/2 available)"),
            "{reason}"
        );
        assert_eq!(v.rollout(), Some(&unsettled()));
    }

    #[test]
    fn settling_late_heals_a_window_after_it_settled() {
        let mut v = verification();
        let (at, status) = run(&mut v, |t| {
            Some(if t < 7 { unsettled() } else { settled() })
        });
        assert_eq!((at, status), (17, healed(7, 17)));
        assert_eq!(v.rollout(), Some(&settled()));
    }

    #[test]
    fn a_flip_to_unsettled_restarts_the_window() {
        let mut v = verification();
        let (at, status) = run(&mut v, |t| {
            Some(if t == 8 { unsettled() } else { settled() })
        });
        assert_eq!((at, status), (19, healed(9, 19)));
    }

    #[test]
    fn no_reading_does_not_block() {
        let mut v = verification();
        assert_eq!(run(&mut v, |_| None), (10, healed(0, 10)));
        assert_eq!(v.rollout(), None);
        assert_eq!(v.rollout_error(), None);
    }

    #[test]
    fn read_errors_do_not_block_and_are_kept() {
        let mut v = verification();
        let error = |_| {
            Some(Rollout::Unreadable {
                error: "forbidden: get deployments".into(),
            })
        };
        assert_eq!(run(&mut v, error), (10, healed(0, 10)));
        assert_eq!(v.rollout(), None);
        assert_eq!(v.rollout_error(), Some("forbidden: get deployments"));
    }

    #[test]
    fn an_error_is_no_news_after_an_unsettled_reading() {
        // The last thing the platform said stands: unsettled, then unreadable, never passes.
        let mut v = verification();
        let (at, status) = run(&mut v, |t| {
            Some(if t == 0 {
                unsettled()
            } else {
                Rollout::Unreadable {
                    error: "timed out".into(),
                }
            })
        });
        assert_eq!(at, 60);
        let VerifyStatus::NotHealed { reason } = status else {
            panic!("expected not healed, got {status:?}");
        };
        assert!(reason.contains("rollout not settled"), "{reason}");
        assert!(
            reason.contains("rollout health could not always be read: timed out"),
            "{reason}"
        );
    }

    #[test]
    fn settled_too_briefly_at_the_deadline_is_named() {
        let mut v = verification();
        let (at, status) = run(&mut v, |t| {
            Some(if t < 55 { unsettled() } else { settled() })
        });
        assert_eq!(at, 60);
        let VerifyStatus::NotHealed { reason } = status else {
            panic!("expected not healed, got {status:?}");
        };
        assert!(
            reason.contains("clear for less than the 10s window: rollout (2/2 updated"),
            "{reason}"
        );
    }

    fn healed(since: i64, at: i64) -> VerifyStatus {
        VerifyStatus::Healed {
            healthy_since: secs(since),
            verified_at: secs(at),
        }
    }
}
