//! Judging one arriving event against a tenant's alert rules: which rules it matches,
//! and whether a match notifies, counts towards a threshold, or falls in a quiet period.
//!
//! Pure functions over a small per-rule [`RuleState`], so the stream function's adapter
//! can keep the state in one item per rule and replace it with a conditional write (the
//! state it read, or retry): two concurrent batches then never both notify for one
//! burst. Windows and quiet periods run on arrival time (`received_at`), not
//! `occurred_at`: an imported history or a late batch is not a burst, and a client's
//! clock cannot hold a rule quiet.

use crate::domain::alert::Rule;
use crate::domain::event::StoredEvent;
use crate::domain::timestamp::Timestamp;
use crate::domain::webhook::delivery_id;
use serde_json::{Value, json};

const MINUTE_MICROS: i64 = 60_000_000;

/// What a rule remembers between events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleState {
    /// Matching arrivals per whole minute since the epoch, oldest first, only minutes
    /// still inside the threshold's window (empty for a rule without a threshold), so
    /// its size stays within the window's minutes however many events arrive.
    pub minutes: Vec<(i64, u32)>,
    /// When the rule last notified; its quiet period runs from then.
    pub last_notified: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send a notification, set off by this event; `count` matches are in the window
    /// (1 for a rule without a threshold).
    Notify { count: u32 },
    /// Below the threshold: counted, nothing sent.
    Counted { count: u32 },
    /// The rule notified less than its quiet period ago.
    Quiet,
}

/// The rules `event` matches: enabled ones of the event's own tenant only, whatever
/// list the caller passes, so a mixed-up cache still cannot cross tenants.
#[must_use]
pub fn matching<'a>(rules: &'a [Rule], event: &StoredEvent) -> Vec<&'a Rule> {
    rules
        .iter()
        .filter(|r| {
            r.tenant_id == event.event.tenant_id && r.settings.enabled && r.settings.matcher.matches(&event.event)
        })
        .collect()
}

/// What a match arriving at `at` does for `rule`, and the rule's next state.
///
/// A threshold counts matches in the whole minutes of arrival that make up its window
/// (the current one and the `window_minutes - 1` before it); on reaching `count` it
/// notifies and starts counting afresh, so one burst notifies once. Any match that
/// would notify within `quiet_minutes` of the last notification is held back, while a
/// threshold keeps counting; a burst that outlasts the quiet period notifies again
/// after it.
#[must_use]
pub fn decide(rule: &Rule, state: &RuleState, at: Timestamp) -> (RuleState, Decision) {
    let mut next = state.clone();
    let count = match rule.settings.threshold {
        None => 1,
        Some(t) => {
            let minute = at.micros().div_euclid(MINUTE_MICROS);
            match next.minutes.iter_mut().find(|(m, _)| *m == minute) {
                Some((_, n)) => *n = n.saturating_add(1),
                None => {
                    next.minutes.push((minute, 1));
                    next.minutes.sort_unstable();
                }
            }
            let newest = next.minutes.last().map_or(minute, |(m, _)| *m);
            next.minutes.retain(|(m, _)| *m > newest - i64::from(t.window_minutes));
            let count = next.minutes.iter().map(|(_, n)| *n).fold(0u32, u32::saturating_add);
            if count < t.count {
                return (next, Decision::Counted { count });
            }
            count
        }
    };
    let quiet_until = |t: Timestamp| t.plus_seconds(i64::from(rule.settings.quiet_minutes) * 60);
    if state.last_notified.is_some_and(|t| at < quiet_until(t)) {
        return (next, Decision::Quiet);
    }
    next.minutes.clear();
    next.last_notified = Some(at);
    (next, Decision::Notify { count })
}

/// One notification to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The `webhook-id`: the same for every attempt ([`delivery_id`]).
    pub id: String,
    pub rule_id: String,
    /// The body, by the Standard Webhooks payload shape `{type, timestamp, data}`.
    pub body: Value,
}

/// The notification `event` sets off for `rule`, with `count` matches in the window.
/// `data` holds the rule as the API shows it (no secret), the count, and the event as
/// `GET /v1/events/{id}` returns it; `timestamp` is the event's arrival, so every
/// attempt sends the same bytes.
#[must_use]
pub fn notification(rule: &Rule, event: &StoredEvent, count: u32) -> Notification {
    Notification {
        id: delivery_id(&rule.id, &event.event.id),
        rule_id: rule.id.clone(),
        body: json!({
            "type": "audit_log.alert",
            "timestamp": event.received_at.to_string(),
            "data": {"rule": rule.to_json(), "count": count, "events": [event.to_json()]},
        }),
    }
}

pub mod deliver;
pub mod evaluate;
pub mod rules;

pub use deliver::Deliverer;
pub use evaluate::Evaluator;
pub use rules::Rules;

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod tests;
