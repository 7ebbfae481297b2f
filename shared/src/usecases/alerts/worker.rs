//! A tenant's alert work, a slice per turn ([`crate::usecases::turns`]): the matched
//! events on its agenda judged against its rules (thresholds, quiet periods, rates,
//! folding), folded notifications flushed, and due attempts made, each destination at
//! most [`Worker::per_destination`] at a time and behind its circuit breaker.
//!
//! Everything a slice does is the tenant's own: its rules, its agenda, its destinations.
//! A slow receiver or a flood of matches lengthens the tenant's own slices and its own
//! backlog; other tenants are served by other turns meanwhile.
//!
//! Rules are read afresh for each page of a slice, so a change reaches the work at once: a match
//! for a rule since disabled, deleted or re-scoped is not applied, and an attempt for a
//! rule since disabled or deleted, or now pointed elsewhere, ends the delivery as a dead
//! letter saying so (a delivery made for one destination never goes to another).

use crate::domain::alert::Rule;
use crate::domain::alerting::{
    Flush, Limits, Note, Outcome, RuleState, TenantAlerts, matches, notification_body, on_flush, on_match,
};
use crate::domain::breaker::{Breaker, Gate, Pauses};
use crate::domain::delivery::{Delivery, RetrySchedule, Status};
use crate::domain::event::StoredEvent;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::domain::webhook::delivery_id;
use crate::ports::{
    AlertAgenda, AlertInbox, AlertRules, AlertState, Applied, Bulk, Deliveries, Due, Matched, Notifier, RuleChange,
    StoreError,
};
use crate::usecases::alerts::intake::{WRITE_BATCH, entries};
use crate::usecases::turns::TenantWork;
use async_trait::async_trait;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Agenda entries read at a time.
const PAGE: usize = 25;
/// How often a change may meet a state that moved (another worker, after a hold
/// lapsed) before the slice gives up for now.
const MAX_CONFLICTS: usize = 8;
/// Time kept after the last attempt for recording it.
const RECORD_TIME: Duration = Duration::from_secs(2);
/// Longest SNS subject.
const MAX_SUBJECT_CHARS: usize = 100;

/// The alerts' work of one tenant.
pub struct Worker {
    pub rules: Arc<dyn AlertRules>,
    pub agenda: Arc<dyn AlertAgenda>,
    /// Where a bulk entry's events' entries go.
    pub inbox: Arc<dyn AlertInbox>,
    pub state: Arc<dyn AlertState>,
    pub deliveries: Arc<dyn Deliveries>,
    pub notifier: Arc<dyn Notifier>,
    pub schedule: RetrySchedule,
    pub limits: Limits,
    /// Longest one attempt takes (the notifier's timeout).
    pub attempt_time: Duration,
    /// How long a slice starts new work for.
    pub budget: Duration,
    /// Attempts in flight to one destination at once.
    pub per_destination: usize,
    /// How long a failing destination is paused.
    pub pauses: Pauses,
}

impl Worker {
    /// The worker on one store (rules, agenda, states, deliveries) and `notifier`.
    pub fn on<S, N>(store: &Arc<S>, notifier: &Arc<N>, schedule: RetrySchedule, attempt_time: Duration) -> Self
    where
        S: AlertRules + AlertAgenda + AlertInbox + AlertState + Deliveries + 'static,
        N: Notifier + 'static,
    {
        Self {
            rules: store.clone(),
            agenda: store.clone(),
            inbox: store.clone(),
            state: store.clone(),
            deliveries: store.clone(),
            notifier: notifier.clone(),
            schedule,
            limits: Limits::default(),
            attempt_time,
            budget: Duration::from_secs(20),
            per_destination: 4,
            pauses: Pauses::default(),
        }
    }
}

/// What one slice works with.
struct Slice<'a> {
    tenant: &'a TenantId,
    rules: HashMap<String, Rule>,
    /// States read this slice, with their versions: the slice is the tenant's only
    /// writer while it holds the turn, so they stay true until it changes them.
    states: HashMap<String, (RuleState, u64)>,
    tenant_state: TenantAlerts,
}

#[async_trait]
impl TenantWork for Worker {
    async fn slice(
        &self,
        tenant: &TenantId,
        state: Option<String>,
        deadline: Instant,
    ) -> Result<Option<String>, StoreError> {
        let tenant_state = match state.as_deref().map(TenantAlerts::from_json) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::error!(%tenant, error = %e, "tenant alert state unreadable: starting afresh");
                TenantAlerts::default()
            }
            None => TenantAlerts::default(),
        };
        let mut slice = Slice { tenant, rules: HashMap::new(), states: HashMap::new(), tenant_state };
        let latest_start = deadline.checked_sub(self.attempt_time + RECORD_TIME).unwrap_or(deadline);
        let stop = latest_start.min(Instant::now() + self.budget);
        let mut seen: HashSet<String> = HashSet::new();
        'pages: while Instant::now() < stop {
            // Rules as they are now, for each page: a change reaches the next attempt.
            slice.rules = self.rules.list(tenant).await?.into_iter().map(|s| (s.rule.id.clone(), s.rule)).collect();
            let due = self.agenda.due(tenant, Timestamp::now(), PAGE).await?;
            let fresh: Vec<Due> = due.into_iter().filter(|d| seen.insert(entry_key(d))).collect();
            if fresh.is_empty() {
                break;
            }
            let mut attempts = Vec::new();
            for d in fresh {
                if Instant::now() >= stop {
                    self.attempt_all(&mut slice, attempts).await?;
                    break 'pages;
                }
                match d {
                    Due::Matched(m) => self.apply(&mut slice, &m).await?,
                    Due::Bulk(b) => self.unpack(&b).await?,
                    Due::Flush { rule_id, due } => self.flush(&mut slice, &rule_id, due).await?,
                    Due::Attempt { rule_id, delivery_id, due } => attempts.push((rule_id, delivery_id, due)),
                }
            }
            self.attempt_all(&mut slice, attempts).await?;
        }
        Ok(Some(slice.tenant_state.to_json()))
    }

    async fn next_due(&self, tenant: &TenantId) -> Result<Option<Timestamp>, StoreError> {
        self.agenda.next_due(tenant).await
    }
}

/// What identifies an agenda entry within a slice.
fn entry_key(d: &Due) -> String {
    match d {
        Due::Matched(m) => format!("m\0{}\0{}", m.event.event.id, m.part),
        Due::Bulk(b) => format!("b\0{}\0{}", b.events.first().map_or("", |(e, _)| e.event.id.as_str()), b.due.micros()),
        Due::Attempt { delivery_id, due, .. } => format!("a\0{delivery_id}\0{}", due.micros()),
        Due::Flush { rule_id, due } => format!("f\0{rule_id}\0{}", due.micros()),
    }
}

impl Worker {
    async fn state_of(&self, slice: &mut Slice<'_>, rule_id: &str) -> Result<(RuleState, u64), StoreError> {
        if let Some(s) = slice.states.get(rule_id) {
            return Ok(s.clone());
        }
        let s = self.state.state(slice.tenant, rule_id).await?;
        slice.states.insert(rule_id.to_owned(), s.clone());
        Ok(s)
    }

    /// Puts a bulk entry's events' own entries on the agenda (due at once: the slice's
    /// next page reads them), then takes the bulk entry off.
    async fn unpack(&self, bulk: &Bulk) -> Result<(), StoreError> {
        let matched: Vec<Matched> = bulk
            .events
            .iter()
            .flat_map(|(event, at)| {
                let rules: Vec<String> = at.iter().filter_map(|i| bulk.rules.get(usize::from(*i)).cloned()).collect();
                entries(event, &rules)
            })
            .collect();
        for chunk in matched.chunks(WRITE_BATCH) {
            self.inbox.put(chunk).await?;
        }
        self.inbox.unpacked(bulk).await
    }

    /// Judges one matched event against the rules it matched (as they are now), and
    /// commits what it changes with the entry's removal, all or nothing.
    async fn apply(&self, slice: &mut Slice<'_>, m: &Matched) -> Result<(), StoreError> {
        for _ in 0..MAX_CONFLICTS {
            let now = Timestamp::now();
            let mut bucket = slice.tenant_state.bucket();
            let mut changes = Vec::new();
            for rule_id in &m.rules {
                let Some(rule) = slice.rules.get(rule_id).filter(|r| matches(r, &m.event)).cloned() else { continue };
                let (state, version) = self.state_of(slice, rule_id).await?;
                let (next, taken, outcome) =
                    on_match(&rule, &state, bucket, self.limits, &m.event.event.id, m.event.received_at, now);
                bucket = taken.or(bucket);
                let mut change = RuleChange {
                    rule_id: rule_id.clone(),
                    version,
                    next,
                    delivery: None,
                    schedule_flush: None,
                    cancel_flush: None,
                };
                match outcome {
                    Outcome::Notify { note, unscheduled } => {
                        change.delivery = Some(self.delivery(&rule, &note, Some(&m.event), now));
                        change.cancel_flush = unscheduled;
                    }
                    Outcome::Fold { scheduled } => change.schedule_flush = scheduled,
                    Outcome::Counted | Outcome::Quiet if change.next == state => continue,
                    Outcome::Counted | Outcome::Quiet => {}
                }
                changes.push(change);
            }
            match self.state.apply(m, &changes).await? {
                Applied::Done => {
                    for c in changes {
                        slice.states.insert(c.rule_id, (c.next, c.version + 1));
                    }
                    if let Some(b) = bucket {
                        slice.tenant_state.set_bucket(b);
                    }
                    return Ok(());
                }
                Applied::Replayed | Applied::Gone => return Ok(()),
                Applied::Conflict(ids) => {
                    for id in ids {
                        slice.states.remove(&id);
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!("matched event {}: rule states kept moving", m.event.event.id)))
    }

    /// A rule's folded notifications, due to go: sent as one if the rates allow, else
    /// flushed again when they will. A rule deleted or disabled meanwhile sends nothing.
    async fn flush(&self, slice: &mut Slice<'_>, rule_id: &str, due: Timestamp) -> Result<(), StoreError> {
        for _ in 0..MAX_CONFLICTS {
            let now = Timestamp::now();
            let rule = slice.rules.get(rule_id).cloned();
            let change = match &rule {
                None => None,
                Some(rule) => {
                    let (state, version) = self.state_of(slice, rule_id).await?;
                    let mut change = RuleChange {
                        rule_id: rule_id.to_owned(),
                        version,
                        next: state.clone(),
                        delivery: None,
                        schedule_flush: None,
                        cancel_flush: None,
                    };
                    if rule.settings.enabled {
                        let (next, taken, flush) = on_flush(&state, slice.tenant_state.bucket(), self.limits, now);
                        change.next = next;
                        match flush {
                            Flush::Notify(note) => change.delivery = Some(self.delivery(rule, &note, None, now)),
                            Flush::Later(at) => change.schedule_flush = Some(at),
                            Flush::Nothing => {}
                        }
                        if let Some(b) = taken {
                            slice.tenant_state.set_bucket(b);
                        }
                    } else {
                        change.next.folded = None;
                    }
                    (change.next != state || change.delivery.is_some()).then_some(change)
                }
            };
            match self.state.flush(slice.tenant, rule_id, due, change.as_ref()).await? {
                Applied::Done => {
                    if let Some(c) = change {
                        slice.states.insert(c.rule_id, (c.next, c.version + 1));
                    }
                    return Ok(());
                }
                Applied::Replayed | Applied::Gone => return Ok(()),
                Applied::Conflict(_) => {
                    slice.states.remove(rule_id);
                }
            }
        }
        Err(StoreError::Unavailable(format!("rule {rule_id}: its state kept moving")))
    }

    /// The delivery of a notification decided at `now`.
    fn delivery(&self, rule: &Rule, note: &Note, trigger: Option<&StoredEvent>, now: Timestamp) -> Delivery {
        let at = trigger.map_or(now, |e| e.received_at);
        Delivery {
            id: delivery_id(&rule.id, note.key_event()),
            tenant_id: rule.tenant_id.clone(),
            rule_id: rule.id.clone(),
            destination: rule.settings.destination.key(),
            event_ids: note.named.clone(),
            body: notification_body(rule, note, trigger, at).to_string(),
            created_at: now,
            status: Status::Pending,
            attempts: 0,
            last_error: None,
        }
    }

    /// Makes the due attempts, each destination's at most `per_destination` at a time
    /// and behind its breaker, all destinations at once.
    async fn attempt_all(
        &self,
        slice: &mut Slice<'_>,
        due: Vec<(String, String, Timestamp)>,
    ) -> Result<(), StoreError> {
        if due.is_empty() {
            return Ok(());
        }
        // By the destination each rule has now; a rule that is gone has none.
        let mut by_destination: BTreeMap<String, Vec<(String, String, Timestamp)>> = BTreeMap::new();
        for (rule_id, delivery_id, at) in due {
            let key = slice.rules.get(&rule_id).map(|r| r.settings.destination.key()).unwrap_or_default();
            by_destination.entry(key).or_default().push((rule_id, delivery_id, at));
        }
        let rules = &slice.rules;
        let tenant = slice.tenant;
        let runs = by_destination.into_iter().map(|(key, list)| {
            let breaker = Mutex::new(slice.tenant_state.breaker(&key));
            async move {
                let result = self.attempt_destination(tenant, rules, &breaker, list).await;
                (key, breaker.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner), result)
            }
        });
        let done = futures::future::join_all(runs).await;
        let mut failed = None;
        for (key, breaker, result) in done {
            if !key.is_empty() {
                slice.tenant_state.set_breaker(&key, breaker);
            }
            if let Err(e) = result {
                failed = Some(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// One destination's due attempts: a probe alone first when its breaker asks for
    /// one, then the rest `per_destination` at a time while the breaker lets them.
    async fn attempt_destination(
        &self,
        tenant: &TenantId,
        rules: &HashMap<String, Rule>,
        breaker: &Mutex<Breaker>,
        mut list: Vec<(String, String, Timestamp)>,
    ) -> Result<(), StoreError> {
        let gate = breaker.lock().map(|b| b.gate(Timestamp::now())).unwrap_or(Gate::Closed);
        if gate == Gate::Probe && !list.is_empty() {
            let (rule_id, delivery_id, due) = list.remove(0);
            self.attempt(tenant, rules, breaker, &rule_id, &delivery_id, due).await?;
        }
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(list)
            .map(|(rule_id, delivery_id, due)| async move {
                self.attempt(tenant, rules, breaker, &rule_id, &delivery_id, due).await
            })
            .buffer_unordered(self.per_destination.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// One due attempt, unless its rule changed (then the delivery ends) or its
    /// destination is paused (then it waits, unspent, till the probe).
    async fn attempt(
        &self,
        tenant: &TenantId,
        rules: &HashMap<String, Rule>,
        breaker: &Mutex<Breaker>,
        rule_id: &str,
        delivery_id: &str,
        due: Timestamp,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let delivery = match self.deliveries.delivery(tenant, rule_id, delivery_id).await? {
            Some(d) if !d.status.is_final() => d,
            // Expired, or ended already (its entry outlived a record): nothing to attempt.
            _ => return self.deliveries.forget(tenant, rule_id, delivery_id, due).await,
        };
        let rule = match rules.get(rule_id) {
            None => return self.end(&delivery, due, now, "the rule was deleted").await,
            Some(r) if !r.settings.enabled => return self.end(&delivery, due, now, "the rule was disabled").await,
            Some(r) if r.settings.destination.key() != delivery.destination => {
                return self.end(&delivery, due, now, "the rule's destination changed").await;
            }
            Some(r) => r,
        };
        let gate = breaker.lock().map(|b| b.gate(now)).unwrap_or(Gate::Closed);
        if let Gate::Paused { until } = gate {
            if self.schedule.outlived(delivery.created_at, until) {
                let since = breaker.lock().ok().and_then(|b| b.paused_since()).unwrap_or(now);
                let why = format!("the destination kept failing and was paused from {since} past the retry schedule");
                return self.end(&delivery, due, now, &why).await;
            }
            return self.deliveries.defer(&delivery, due, until).await;
        }
        let sent = self
            .notifier
            .send(&rule.settings.destination, &rule.secrets, &delivery, &subject(&rule.settings.name), now)
            .await;
        if let Ok(mut b) = breaker.lock() {
            match &sent {
                Ok(()) => b.succeeded(),
                Err(_) => b.failed(Timestamp::now(), self.pauses),
            }
        }
        let attempt = delivery.attempt(now, sent.err().map(|e| e.0), &self.schedule);
        if let Some(e) = &attempt.error {
            tracing::info!(%tenant, rule = %rule_id, delivery = %delivery.id, status = ?attempt.status, error = %e, "delivery attempt failed");
        }
        self.deliveries.record(&delivery, due, &attempt).await
    }

    async fn end(&self, delivery: &Delivery, due: Timestamp, now: Timestamp, why: &str) -> Result<(), StoreError> {
        tracing::info!(tenant = %delivery.tenant_id, rule = %delivery.rule_id, delivery = %delivery.id, why, "delivery ended unsent");
        self.deliveries.record(delivery, due, &Delivery::end(now, why)).await
    }
}

/// `Audit log alert: {name}`, printable ASCII only (what SNS takes for email subjects).
fn subject(name: &str) -> String {
    let text: String = format!("Audit log alert: {name}")
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .take(MAX_SUBJECT_CHARS)
        .collect();
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::subject;

    #[test]
    fn subjects_are_short_printable_ascii() {
        assert_eq!(subject("Failed logins"), "Audit log alert: Failed logins");
        assert_eq!(subject("Zugänge\n"), "Audit log alert: Zug?nge?");
        assert_eq!(subject(&"x".repeat(300)).len(), 100);
    }
}
