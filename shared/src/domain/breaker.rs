//! A circuit breaker per destination: after a run of failed attempts the destination is
//! paused, so a receiver that is down costs its tenant one probe per pause instead of
//! every retry of every delivery; a probe that succeeds resumes it.
//!
//! The pause doubles with each failed probe, from [`FIRST_PAUSE_SECONDS`] up to
//! [`MAX_PAUSE_SECONDS`]. Deliveries due while it is paused wait, their attempts not
//! spent, until the probe says the destination is back (or their schedule's time is up).

use crate::domain::timestamp::Timestamp;
use serde::{Deserialize, Serialize};

/// Failed attempts in a row (of any deliveries to the destination) that pause it.
pub const FAILURES_TO_PAUSE: u32 = 5;
pub const FIRST_PAUSE_SECONDS: i64 = 30;
pub const MAX_PAUSE_SECONDS: i64 = 15 * 60;

/// How long pauses last: the first, doubled by each failed probe up to the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pauses {
    pub first_seconds: i64,
    pub max_seconds: i64,
}

impl Default for Pauses {
    fn default() -> Self {
        Self { first_seconds: FIRST_PAUSE_SECONDS, max_seconds: MAX_PAUSE_SECONDS }
    }
}

/// One destination's breaker. The default is closed with no failures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    /// Failed attempts in a row while closed.
    #[serde(rename = "f", default)]
    pub failures: u32,
    /// Paused until then (µs); past it, the next attempt is a probe.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<i64>,
    /// Pauses in a row: the next pause is twice the last.
    #[serde(rename = "p", default)]
    pub pauses: u32,
    /// When the current run of pauses began (µs).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub paused_since: Option<i64>,
}

/// What the breaker lets through at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Attempts go as usual.
    Closed,
    /// Nothing goes before `until`.
    Paused { until: Timestamp },
    /// One attempt may go, to see whether the destination is back.
    Probe,
}

impl Breaker {
    #[must_use]
    pub fn gate(&self, now: Timestamp) -> Gate {
        match self.paused_until.and_then(|u| Timestamp::from_micros(u).ok()) {
            Some(until) if now < until => Gate::Paused { until },
            Some(_) => Gate::Probe,
            None => Gate::Closed,
        }
    }

    /// Whether there is anything to remember (a closed breaker with no failures is the
    /// default, and is not stored).
    #[must_use]
    pub fn is_idle(&self) -> bool {
        *self == Self::default()
    }

    /// Since when the destination has been paused, if it is.
    #[must_use]
    pub fn paused_since(&self) -> Option<Timestamp> {
        self.paused_since.and_then(|s| Timestamp::from_micros(s).ok())
    }

    /// An attempt got through: the destination is back.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// An attempt that ended at `now` failed: counts towards a pause, or (a probe) pauses
    /// again for longer. One that began before the pause and ends during it changes
    /// nothing: the destination is paused already.
    pub fn failed(&mut self, now: Timestamp, pauses: Pauses) {
        if let Some(until) = self.paused_until {
            if now.micros() >= until {
                self.pause(now, pauses);
            }
            return;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= FAILURES_TO_PAUSE {
            self.paused_since = Some(now.micros());
            self.pause(now, pauses);
        }
    }

    fn pause(&mut self, now: Timestamp, pauses: Pauses) {
        self.pauses = self.pauses.saturating_add(1);
        let doubling = 1_i64 << self.pauses.saturating_sub(1).min(20);
        let seconds = pauses.first_seconds.saturating_mul(doubling).min(pauses.max_seconds);
        self.paused_until = Some(now.plus_seconds(seconds).micros());
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::MIN.plus_seconds(1_700_000_000 + s)
    }

    #[test]
    fn a_run_of_failures_pauses_then_a_probe_decides() {
        let mut b = Breaker::default();
        for _ in 1..FAILURES_TO_PAUSE {
            b.failed(at(0), Pauses::default());
            assert_eq!(b.gate(at(0)), Gate::Closed);
        }
        b.failed(at(0), Pauses::default());
        assert_eq!(b.gate(at(1)), Gate::Paused { until: at(30) });
        assert_eq!(b.paused_since(), Some(at(0)));
        assert_eq!(b.gate(at(30)), Gate::Probe);
        // The probe fails: paused twice as long, still since the first pause.
        b.failed(at(30), Pauses::default());
        assert_eq!(b.gate(at(31)), Gate::Paused { until: at(90) });
        assert_eq!(b.paused_since(), Some(at(0)));
        b.succeeded();
        assert_eq!(b.gate(at(91)), Gate::Closed);
        assert!(b.is_idle());
    }

    #[test]
    fn a_failure_that_began_before_the_pause_does_not_lengthen_it() {
        let mut b = Breaker::default();
        for _ in 0..FAILURES_TO_PAUSE {
            b.failed(at(0), Pauses::default());
        }
        b.failed(at(2), Pauses::default());
        assert_eq!(b.gate(at(3)), Gate::Paused { until: at(30) });
    }

    #[test]
    fn a_success_between_failures_starts_the_count_again() {
        let mut b = Breaker::default();
        for _ in 0..FAILURES_TO_PAUSE - 1 {
            b.failed(at(0), Pauses::default());
        }
        b.succeeded();
        b.failed(at(0), Pauses::default());
        assert_eq!(b.gate(at(0)), Gate::Closed);
    }

    #[test]
    fn pauses_stop_growing_at_the_longest() {
        let mut b = Breaker::default();
        for _ in 0..FAILURES_TO_PAUSE {
            b.failed(at(0), Pauses::default());
        }
        let mut now = at(0);
        for _ in 0..40 {
            now = match b.gate(now) {
                Gate::Paused { until } => until,
                _ => now,
            };
            b.failed(now, Pauses::default());
        }
        assert_eq!(b.gate(now), Gate::Paused { until: now.plus_seconds(MAX_PAUSE_SECONDS) });
    }
}
