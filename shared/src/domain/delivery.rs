//! One notification's delivery: what is sent, how each attempt went, when the next one
//! is due, and what a rule shows of its deliveries (`GET /v1/alerts/{id}`).
//!
//! A delivery is stored before its first attempt, in the same write that moves the
//! rule's state and puts its attempt on the tenant's agenda (the outbox), so a crash
//! between deciding and sending loses nothing: the agenda still holds the attempt.

use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

/// The waits between attempts when none are configured: the Standard Webhooks
/// reference schedule (after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 10 h), eight attempts over about 27.6 hours, after which the delivery is dead.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";
/// Longest one wait may be, and the most waits: a schedule stays within a few days.
const MAX_WAIT_SECONDS: u64 = 24 * 3600;
const MAX_WAITS: usize = 20;
/// Longest error text kept (a receiver's reason phrase, a resolver's message).
pub const MAX_ERROR_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored, not yet attempted (or its first attempt was cut short).
    Pending,
    /// At least one attempt failed; another is scheduled.
    Retrying,
    Delivered,
    /// Every attempt failed: the dead-letter record.
    Dead,
}

impl Status {
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Dead)
    }
}

/// One notification to one rule's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The `webhook-id`, the same for every attempt.
    pub id: String,
    pub tenant_id: TenantId,
    pub rule_id: String,
    /// The destination it was made for ([`crate::domain::alert::Destination::key`]): it
    /// goes there or nowhere.
    pub destination: String,
    /// The events it names.
    pub event_ids: Vec<String>,
    /// The exact bytes signed and sent, on every attempt.
    pub body: String,
    pub created_at: Timestamp,
    pub status: Status,
    /// Attempts made so far.
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// What became of one attempt, or of a delivery ended without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: Timestamp,
    /// Whether a request went out (a delivery ended because its rule changed, or because
    /// its destination stayed paused past its schedule, did not make one).
    pub sent: bool,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Where the delivery stands after it.
    pub status: Status,
    /// When the next attempt is due (`Retrying` only).
    pub next_at: Option<Timestamp>,
}

/// The waits between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

/// A schedule that is not a comma-separated list of waits such as `5s,5m,2h`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a retry schedule is up to 20 comma-separated waits of 1s to 24h, such as 5s,5m,30m,2h: {0}")]
pub struct BadSchedule(String);

impl RetrySchedule {
    /// Parses `5s,5m,30m,2h` (units `s`, `m`, `h`); an empty text means no retries.
    ///
    /// # Errors
    /// [`BadSchedule`] for any other text, a wait outside 1 s to 24 h, or over 20 waits.
    pub fn parse(text: &str) -> Result<Self, BadSchedule> {
        let bad = || BadSchedule(text.chars().take(64).collect());
        if text.trim().is_empty() {
            return Ok(Self(Vec::new()));
        }
        let waits = text
            .split(',')
            .map(|part| {
                let part = part.trim();
                let (digits, unit) = part.split_at(part.len().saturating_sub(1));
                let n: u64 = digits.parse().map_err(|_| bad())?;
                let seconds = match unit {
                    "s" => Some(n),
                    "m" => n.checked_mul(60),
                    "h" => n.checked_mul(3600),
                    _ => None,
                }
                .filter(|s| (1..=MAX_WAIT_SECONDS).contains(s))
                .ok_or_else(bad)?;
                Ok(Duration::from_secs(seconds))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if waits.len() > MAX_WAITS {
            return Err(bad());
        }
        Ok(Self(waits))
    }

    /// Attempts in all, the first included.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// When the attempt after attempt number `made` (1 for the first) is due, if any.
    #[must_use]
    pub fn next_after(&self, made: u32, at: Timestamp) -> Option<Timestamp> {
        let wait = self.0.get(usize::try_from(made).ok()?.checked_sub(1)?)?;
        Some(at.plus_seconds(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX)))
    }

    /// From the first attempt to the last.
    #[must_use]
    pub fn total(&self) -> Duration {
        self.0.iter().sum()
    }

    /// Whether a delivery created at `created` is past the time its schedule gives it:
    /// one whose destination stayed paused that long ends a dead letter unattempted.
    #[must_use]
    pub fn outlived(&self, created: Timestamp, now: Timestamp) -> bool {
        let total = i64::try_from(self.total().as_micros()).unwrap_or(i64::MAX);
        now.micros().saturating_sub(created.micros()) > total
    }
}

impl Delivery {
    /// The outcome of attempt number `self.attempts + 1` made at `at`, under `schedule`.
    #[must_use]
    pub fn attempt(&self, at: Timestamp, error: Option<String>, schedule: &RetrySchedule) -> Attempt {
        let made = self.attempts.saturating_add(1);
        match error {
            None => Attempt { at, sent: true, error: None, status: Status::Delivered, next_at: None },
            Some(e) => {
                let error = Some(e.chars().take(MAX_ERROR_CHARS).collect());
                match schedule.next_after(made, at) {
                    Some(next) => Attempt { at, sent: true, error, status: Status::Retrying, next_at: Some(next) },
                    None => Attempt { at, sent: true, error, status: Status::Dead, next_at: None },
                }
            }
        }
    }

    /// Ends the delivery at `at` without an attempt, a dead letter for `reason`.
    #[must_use]
    pub fn end(at: Timestamp, reason: &str) -> Attempt {
        Attempt {
            at,
            sent: false,
            error: Some(reason.chars().take(MAX_ERROR_CHARS).collect()),
            status: Status::Dead,
            next_at: None,
        }
    }
}

/// What `GET /v1/alerts/{id}` shows of a rule's deliveries, kept on the rule's item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub last_attempt_at: Option<Timestamp>,
    pub last_delivered_at: Option<Timestamp>,
    /// The last failed attempt's error and time.
    pub last_error: Option<(Timestamp, String)>,
    /// Failed attempts, retries included.
    pub failed_attempts: u64,
    /// Deliveries that failed every attempt.
    pub dead_letters: u64,
    pub last_dead_letter: Option<DeadLetter>,
}

/// The last delivery that failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    pub at: Timestamp,
    pub attempts: u32,
    pub event_ids: Vec<String>,
    pub error: String,
}

impl Summary {
    #[must_use]
    pub fn to_json(&self) -> Value {
        let time = |t: Option<Timestamp>| t.map(|t| t.to_string());
        json!({
            "last_attempt_at": time(self.last_attempt_at),
            "last_delivered_at": time(self.last_delivered_at),
            "last_error": self.last_error.as_ref().map(|(_, e)| e),
            "last_error_at": time(self.last_error.as_ref().map(|(t, _)| *t)),
            "failed_attempts": self.failed_attempts,
            "dead_letters": self.dead_letters,
            "last_dead_letter": self.last_dead_letter.as_ref().map(|d| json!({
                "webhook_id": d.id,
                "at": d.at.to_string(),
                "attempts": d.attempts,
                "event_ids": d.event_ids,
                "error": d.error,
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::MIN.plus_seconds(1_700_000_000 + s)
    }

    #[test]
    fn the_default_schedule_is_eight_attempts_over_about_27_hours() {
        let s = RetrySchedule::parse(DEFAULT_RETRY_SCHEDULE).expect("default");
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.total(), Duration::from_secs(5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000));
        assert_eq!(s.next_after(1, at(0)), Some(at(5)));
        assert_eq!(s.next_after(7, at(0)), Some(at(36000)));
        assert_eq!(s.next_after(8, at(0)), None);
        assert_eq!(s.next_after(0, at(0)), None);
    }

    #[test]
    fn schedules_refuse_what_is_not_a_short_list_of_waits() {
        for bad in ["5", "5x", "s", "-5s", "0s", "25h", "1s,,2s", "1.5s", "99999999999999999999h"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
        assert!(RetrySchedule::parse(&["1s"; 21].join(",")).is_err());
        assert_eq!(RetrySchedule::parse("").expect("none").attempts(), 1);
        assert_eq!(RetrySchedule::parse(" 1s, 2m ,3h").expect("spaces").total(), Duration::from_secs(1 + 120 + 10800));
    }

    fn delivery(attempts: u32) -> Delivery {
        Delivery {
            id: "msg_1".into(),
            tenant_id: TenantId::parse("t").expect("tenant"),
            rule_id: "r".into(),
            destination: "webhook:d".into(),
            event_ids: vec!["e".into()],
            body: "{}".into(),
            created_at: at(0),
            status: Status::Pending,
            attempts,
            last_error: None,
        }
    }

    #[test]
    fn a_failed_attempt_is_retried_until_the_schedule_ends_then_dead() {
        let s = RetrySchedule::parse("1s,2s").expect("schedule");
        let a = delivery(0).attempt(at(10), Some("HTTP 500".into()), &s);
        assert_eq!((a.status, a.next_at), (Status::Retrying, Some(at(11))));
        let a = delivery(1).attempt(at(11), Some("HTTP 500".into()), &s);
        assert_eq!((a.status, a.next_at), (Status::Retrying, Some(at(13))));
        let a = delivery(2).attempt(at(13), Some("x".repeat(1000)), &s);
        assert_eq!((a.status, a.next_at), (Status::Dead, None));
        assert_eq!(a.error.map(|e| e.len()), Some(MAX_ERROR_CHARS));
        let a = delivery(2).attempt(at(13), None, &s);
        assert_eq!(a.status, Status::Delivered);
    }
}
