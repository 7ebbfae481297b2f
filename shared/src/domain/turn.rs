//! Turns: how tenants share a pool of workers fairly.
//!
//! Each tenant with work of a kind (alert deliveries, ...) holds at most one *turn*: a
//! token recorded in the store and carried by one message of the kind's queue. A worker
//! that receives the message holds the turn, does a bounded slice of that tenant's work,
//! and passes the turn on: a new message at the back of the queue when more work is due
//! now, a delayed one when the next piece is due later, none when nothing is left. So a
//! tenant never holds more than one worker, however much work it has, and a queue of W
//! workers serves the tenants with work in rounds of one slice each: one tenant's
//! backlog delays another's first slice by at most a round.
//!
//! A message whose token is no longer the tenant's (a turn replaced, or passed on) is
//! stale and dropped. New work for a tenant whose turn is asleep (due later) replaces it
//! with one due now; a turn due long ago that no worker holds is taken to be lost (its
//! message dead-lettered) and replaced too.

use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use serde::{Deserialize, Serialize};

/// Longest delay a queue message can carry (SQS: 900 s): a longer sleep is a chain of
/// hops, each a new message with the same token.
pub const MAX_QUEUE_DELAY_SECONDS: u32 = 900;
/// A turn due this long and held by no worker is taken to be lost.
pub const LOST_AFTER_SECONDS: i64 = 15 * 60;
/// How late a turn may be and still count as due now when work is noted (clocks of
/// two processes differ a little).
pub const DUE_SLACK_MICROS: i64 = 1_000_000;

/// The alerts' turns: evaluating matched events and attempting deliveries.
pub const ALERTS: &str = "alerts";

/// A turn's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnMessage {
    pub kind: String,
    pub tenant_id: String,
    pub token: String,
}

impl TurnMessage {
    #[must_use]
    pub fn new(kind: &str, tenant: &TenantId, token: &str) -> Self {
        Self { kind: kind.to_owned(), tenant_id: tenant.to_string(), token: token.to_owned() }
    }
}

/// A fresh token: unique, and ordered by creation (a UUIDv7).
#[must_use]
pub fn new_token() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// How long to hold a message due at `due`, in whole seconds rounded up (never early),
/// capped at what a queue can delay.
#[must_use]
pub fn delay_seconds(due: Timestamp, now: Timestamp) -> u32 {
    let left = (due.micros() - now.micros()).max(0);
    let seconds = left.div_euclid(1_000_000) + i64::from(left.rem_euclid(1_000_000) > 0);
    u32::try_from(seconds).unwrap_or(u32::MAX).min(MAX_QUEUE_DELAY_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::MIN.plus_seconds(1_700_000_000 + s)
    }

    #[test]
    fn a_long_sleep_is_held_in_hops_a_queue_can_delay() {
        assert_eq!(delay_seconds(at(3600), at(0)), MAX_QUEUE_DELAY_SECONDS);
        assert_eq!(delay_seconds(at(3600), at(3000)), 600);
        assert_eq!(delay_seconds(at(3600), at(3600).plus_micros(-1)), 1, "rounded up: never early");
        assert_eq!(delay_seconds(at(3600), at(3600)), 0);
        assert_eq!(delay_seconds(at(3600), at(4000)), 0);
    }

    #[test]
    fn messages_refuse_what_is_not_theirs() {
        let m = TurnMessage::new(ALERTS, &TenantId::parse("acme").expect("tenant"), "tok");
        let text = serde_json::to_string(&m).expect("json");
        assert_eq!(serde_json::from_str::<TurnMessage>(&text).expect("back"), m);
        assert!(serde_json::from_str::<TurnMessage>(r#"{"kind":"alerts","tenant_id":"a","token":"t","x":1}"#).is_err());
        assert_ne!(new_token(), new_token());
    }
}
