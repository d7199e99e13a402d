//! CrashLoopBackOff: the first restart is immediate, then 10 s doubling up to a cap (300 s);
//! a container that ran long enough (10 min) starts over.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    current: Option<Duration>,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            current: None,
        }
    }

    /// The delay before restarting a container that exited after running for `ran_for`.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.config.reset_after {
            self.current = None;
        }
        match self.current {
            None => {
                self.current = Some(self.config.initial.min(self.config.max));
                Duration::ZERO
            }
            Some(d) => {
                self.current = Some(d.saturating_mul(2).min(self.config.max));
                d
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = Backoff::new(BackoffConfig::default());
        let short = Duration::from_secs(1);
        let seq: Vec<u64> = (0..8).map(|_| b.next_delay(short).as_secs()).collect();
        assert_eq!(seq, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.next_delay(Duration::from_secs(600)), Duration::ZERO);
        assert_eq!(b.next_delay(short), Duration::from_secs(10));
    }

    #[test]
    fn huge_caps_do_not_overflow() {
        let mut b = Backoff::new(BackoffConfig {
            initial: Duration::MAX / 2,
            max: Duration::MAX,
            reset_after: Duration::MAX,
        });
        for _ in 0..4 {
            b.next_delay(Duration::ZERO);
        }
    }

    #[test]
    fn cap_below_initial() {
        let mut b = Backoff::new(BackoffConfig {
            max: Duration::from_secs(2),
            ..BackoffConfig::default()
        });
        let seq: Vec<u64> = (0..4)
            .map(|_| b.next_delay(Duration::ZERO).as_secs())
            .collect();
        assert_eq!(seq, vec![0, 2, 2, 2]);
    }
}
