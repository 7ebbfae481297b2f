//! What one arriving event does to a tenant's alert rules: which rules it matches,
//! whether a match notifies, counts towards a threshold, falls in a quiet period, or is
//! held back by the notification rates and folded into the next notification; and the
//! notification itself.
//!
//! Pure functions over a small per-rule [`RuleState`] and a per-tenant [`TenantAlerts`],
//! so the adapters keep each in one item and replace it with a conditional write.
//! Thresholds and quiet periods run on arrival time (`received_at`), never
//! `occurred_at`: an imported history or a late batch is not a burst, and a client's
//! clock cannot hold a rule quiet. Rates run on the time a notification is decided,
//! since what they protect is the receiver.
//!
//! Nothing a rate holds back is lost: it is folded into the rule's next notification,
//! which says how many events it stands for and names the first of them; when no
//! further match comes, a flush sends the folded ones as soon as the rates allow.

use crate::domain::alert::Rule;
use crate::domain::breaker::Breaker;
use crate::domain::event::StoredEvent;
use crate::domain::rate::{Rate, take_both};
use crate::domain::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const MINUTE_MICROS: i64 = 60_000_000;
/// Most events a notification names besides counting them.
pub const MAX_NAMED: usize = 10;
/// Notifications one rule may send a minute (and at once), by default.
pub const DEFAULT_RULE_RATE: u32 = 60;
/// Notifications one tenant's rules may send a minute together, by default.
pub const DEFAULT_TENANT_RATE: u32 = 600;

/// The notification rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub rule: Rate,
    pub tenant: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Self { rule: Rate::per_minute(DEFAULT_RULE_RATE), tenant: Rate::per_minute(DEFAULT_TENANT_RATE) }
    }
}

/// What a rule remembers between events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleState {
    /// Matching arrivals per whole minute since the epoch, oldest first, only minutes
    /// still inside the threshold's window (empty for a rule without a threshold), so
    /// its size stays within the window's minutes however many events arrive.
    pub minutes: Vec<(i64, u32)>,
    /// When the rule last decided to notify; its quiet period runs from then.
    pub last_notified: Option<Timestamp>,
    /// The rule's rate bucket ([`Rate::take`]).
    pub bucket: Option<Timestamp>,
    /// Notifications the rates held back, to go out as one.
    pub folded: Option<Folded>,
}

/// Notifications held back by the rates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// Events they stand for.
    pub count: u64,
    /// The first of them, oldest first, at most [`MAX_NAMED`].
    pub named: Vec<String>,
    /// When the flush that sends them is due.
    pub flush_at: Timestamp,
}

/// A tenant's side of its alerts: the bucket all its rules share, and the breaker of
/// each destination that has failed lately.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantAlerts {
    /// The tenant's rate bucket (µs).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<i64>,
    /// By destination key ([`crate::domain::alert::Destination::key`]); idle breakers
    /// are not kept, so the map holds only destinations failing now.
    #[serde(rename = "b", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub breakers: BTreeMap<String, Breaker>,
}

impl TenantAlerts {
    /// # Errors
    /// Text that is not a stored state.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("tenant alert state: {e}"))
    }

    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("integers and strings always serialize"))
    }

    #[must_use]
    pub fn bucket(&self) -> Option<Timestamp> {
        self.bucket.and_then(|t| Timestamp::from_micros(t).ok())
    }

    pub fn set_bucket(&mut self, tat: Timestamp) {
        self.bucket = Some(tat.micros());
    }

    /// The breaker of `destination`.
    #[must_use]
    pub fn breaker(&self, destination: &str) -> Breaker {
        self.breakers.get(destination).cloned().unwrap_or_default()
    }

    /// Keeps `breaker` for `destination`, or forgets it once it is idle.
    pub fn set_breaker(&mut self, destination: &str, breaker: Breaker) {
        if breaker.is_idle() {
            self.breakers.remove(destination);
        } else {
            self.breakers.insert(destination.to_owned(), breaker);
        }
    }
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
    rules.iter().filter(|r| matches(r, event)).collect()
}

/// Whether `rule` fires on `event` (see [`matching`]).
#[must_use]
pub fn matches(rule: &Rule, event: &StoredEvent) -> bool {
    rule.tenant_id == event.event.tenant_id && rule.settings.enabled && rule.settings.matcher.matches(&event.event)
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

/// What a notification stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Events it stands for: the folded ones and the one that set it off (for a
    /// threshold, the matches in its window).
    pub count: u64,
    /// Of `count`, those the rates held back before.
    pub folded: u64,
    /// The first events it stands for, oldest first, at most [`MAX_NAMED`].
    pub named: Vec<String>,
    /// The event that set it off; none for a flush of folded events.
    pub trigger: Option<String>,
}

impl Note {
    /// The event whose id, with the rule's, names the notification: the one that set it
    /// off, or for a flush the first folded one (which set off nothing else).
    #[must_use]
    pub fn key_event(&self) -> &str {
        self.trigger.as_deref().or_else(|| self.named.first().map(String::as_str)).unwrap_or_default()
    }
}

/// What a match does once the rates are judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A notification goes now. `unscheduled`: the flush of what it absorbs, to cancel.
    Notify {
        note: Note,
        unscheduled: Option<Timestamp>,
    },
    /// Held back by a rate, folded into the next. `scheduled`: a flush to schedule (the
    /// first one held back since the last notification).
    Fold {
        scheduled: Option<Timestamp>,
    },
    Counted,
    Quiet,
}

/// A match of `event_id`, which arrived at `arrived`, for `rule`, judged at `now` with
/// the tenant's bucket at `tenant_bucket`: the rule's next state, the tenant's bucket
/// after it (when a notification took from it), and the outcome.
#[must_use]
pub fn on_match(
    rule: &Rule,
    state: &RuleState,
    tenant_bucket: Option<Timestamp>,
    limits: Limits,
    event_id: &str,
    arrived: Timestamp,
    now: Timestamp,
) -> (RuleState, Option<Timestamp>, Outcome) {
    let (mut next, decision) = decide(rule, state, arrived);
    let count = match decision {
        Decision::Counted { .. } => return (next, None, Outcome::Counted),
        Decision::Quiet => return (next, None, Outcome::Quiet),
        Decision::Notify { count } => u64::from(count),
    };
    match take_both((limits.rule, state.bucket), (limits.tenant, tenant_bucket), now) {
        Ok((rule_bucket, tenant_bucket)) => {
            next.bucket = Some(rule_bucket);
            let folded = next.folded.take();
            let (before, mut named, unscheduled) = match folded {
                Some(f) => (f.count, f.named, Some(f.flush_at)),
                None => (0, Vec::new(), None),
            };
            if named.len() < MAX_NAMED {
                named.push(event_id.to_owned());
            }
            let note = Note { count: before + count, folded: before, named, trigger: Some(event_id.to_owned()) };
            (next, Some(tenant_bucket), Outcome::Notify { note, unscheduled })
        }
        Err(until) => match &mut next.folded {
            Some(f) => {
                f.count += count;
                if f.named.len() < MAX_NAMED {
                    f.named.push(event_id.to_owned());
                }
                (next, None, Outcome::Fold { scheduled: None })
            }
            None => {
                next.folded = Some(Folded { count, named: vec![event_id.to_owned()], flush_at: until });
                (next, None, Outcome::Fold { scheduled: Some(until) })
            }
        },
    }
}

/// What a due flush does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flush {
    /// The folded notifications go now, as one.
    Notify(Note),
    /// The rates still hold them back: flush again then.
    Later(Timestamp),
    /// Nothing is folded (a notification absorbed it meanwhile).
    Nothing,
}

/// A due flush of `state` at `now`: the rule's next state, the tenant's bucket after it
/// (when it took from it), and what to do.
#[must_use]
pub fn on_flush(
    state: &RuleState,
    tenant_bucket: Option<Timestamp>,
    limits: Limits,
    now: Timestamp,
) -> (RuleState, Option<Timestamp>, Flush) {
    let mut next = state.clone();
    let Some(folded) = next.folded.take() else { return (next, None, Flush::Nothing) };
    match take_both((limits.rule, state.bucket), (limits.tenant, tenant_bucket), now) {
        Ok((rule_bucket, tenant_bucket)) => {
            next.bucket = Some(rule_bucket);
            let note = Note { count: folded.count, folded: folded.count, named: folded.named, trigger: None };
            (next, Some(tenant_bucket), Flush::Notify(note))
        }
        Err(until) => {
            next.folded = Some(Folded { flush_at: until, ..folded });
            (next, None, Flush::Later(until))
        }
    }
}

/// The body of a notification, by the Standard Webhooks payload shape
/// `{type, timestamp, data}`: `data` holds the rule as the API shows it without its
/// destination (a webhook URL's path or query may hold the receiver's token, and the
/// body may travel elsewhere), what the notification stands for, and the event that set
/// it off as `GET /v1/events/{id}` returns it. `at` is the instant it was decided, so
/// every attempt sends the same bytes.
#[must_use]
pub fn notification_body(rule: &Rule, note: &Note, trigger: Option<&StoredEvent>, at: Timestamp) -> Value {
    let mut shown = rule.to_json();
    if let Value::Object(o) = &mut shown {
        o.remove("destination");
    }
    json!({
        "type": "audit_log.alert",
        "timestamp": at.to_string(),
        "data": {
            "rule": shown,
            "count": note.count,
            "folded": note.folded,
            "event_ids": note.named,
            "events": trigger.map(StoredEvent::to_json).into_iter().collect::<Vec<_>>(),
        },
    })
}

#[cfg(test)]
#[path = "alerting_tests.rs"]
mod tests;
