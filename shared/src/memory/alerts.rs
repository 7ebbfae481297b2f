//! Alert rules, their states, the tenants' agendas and the deliveries in memory, with
//! the table's semantics (the rule limit and every change all or nothing, applied
//! markers), and a notifier that records what it is asked to send.

use crate::domain::alert::{Destination, MAX_RULES_PER_TENANT, Rule};
use crate::domain::alerting::RuleState;
use crate::domain::delivery::{Attempt, DeadLetter, Delivery, Status, Summary};
use crate::domain::egress::WebhookUrl;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::domain::webhook::Secrets;
use crate::memory::{FaultKind, Faults};
use crate::ports::{
    AlertAgenda, AlertInbox, AlertRules, AlertState, Applied, Bulk, Deliveries, Due, Matched, Notifier, RuleChange,
    RuleWriteError, SendError, StoreError, StoredRule,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

/// An agenda entry's key within its tenant: when it is due, then what it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    /// A matched event: its id and part.
    Matched(String, u8),
    /// An attempt: rule and delivery ids.
    Attempt(String, String),
    /// A flush: the rule id.
    Flush(String),
    /// A bulk entry: its first event's id.
    Bulk(String),
}

#[derive(Default)]
struct Tables {
    rules: BTreeMap<(TenantId, String), StoredRule>,
    states: HashMap<(TenantId, String), (RuleState, u64)>,
    /// Applied matched entries: (tenant, event id, part).
    applied: BTreeSet<(TenantId, String, u8)>,
    agenda: BTreeMap<(TenantId, i64, Entry), Option<Matched>>,
    /// What the agenda's bulk entries hold, by their keys.
    bulks: BTreeMap<(TenantId, i64, Entry), Bulk>,
    deliveries: BTreeMap<(TenantId, String, String), Delivery>,
}

#[derive(Default)]
pub struct MemoryAlerts {
    tables: Mutex<Tables>,
    /// Operations: `create`, `get`, `list`, `replace`, `delete`, `put`, `due`, `state`,
    /// `apply`, `flush`, `delivery`, `record`, `defer`; details: the rule or event id.
    pub faults: Faults,
}

impl MemoryAlerts {
    fn lock(&self) -> Result<MutexGuard<'_, Tables>, StoreError> {
        self.tables.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))
    }

    fn check(&self, op: &str, detail: &str) -> Result<(), StoreError> {
        self.faults.check(op, detail).map_err(|k| match k {
            FaultKind::Refused => StoreError::Refused(format!("injected: {op}")),
            _ => StoreError::Unavailable(format!("injected: {op}")),
        })
    }

    /// Every stored delivery, by tenant, rule and id.
    #[must_use]
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.tables.lock().map(|t| t.deliveries.values().cloned().collect()).unwrap_or_default()
    }

    /// How many entries the tenant's agenda holds.
    #[must_use]
    pub fn agenda_len(&self, tenant: &TenantId) -> usize {
        self.tables.lock().map(|t| t.agenda.keys().filter(|(x, _, _)| x == tenant).count()).unwrap_or_default()
    }
}

#[async_trait]
impl AlertRules for MemoryAlerts {
    async fn create(&self, rule: &Rule) -> Result<(), RuleWriteError> {
        self.check("create", &rule.id)?;
        let mut t = self.lock()?;
        let count = t.rules.keys().filter(|(tenant, _)| *tenant == rule.tenant_id).count();
        if count >= MAX_RULES_PER_TENANT {
            return Err(RuleWriteError::Limit);
        }
        t.rules
            .entry((rule.tenant_id.clone(), rule.id.clone()))
            .or_insert_with(|| StoredRule { rule: rule.clone(), summary: Summary::default() });
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<StoredRule>, StoreError> {
        self.check("get", id)?;
        Ok(self.lock()?.rules.get(&(tenant.clone(), id.to_owned())).cloned())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<StoredRule>, StoreError> {
        self.check("list", tenant.as_str())?;
        Ok(self.lock()?.rules.iter().filter(|((t, _), _)| t == tenant).map(|(_, r)| r.clone()).collect())
    }

    async fn replace(&self, rule: &Rule, expected: Timestamp) -> Result<bool, StoreError> {
        self.check("replace", &rule.id)?;
        let mut t = self.lock()?;
        match t.rules.get_mut(&(rule.tenant_id.clone(), rule.id.clone())) {
            Some(stored) if stored.rule.updated_at == expected => {
                stored.rule = rule.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        self.check("delete", id)?;
        let mut t = self.lock()?;
        t.states.remove(&(tenant.clone(), id.to_owned()));
        Ok(t.rules.remove(&(tenant.clone(), id.to_owned())).is_some())
    }
}

#[async_trait]
impl AlertInbox for MemoryAlerts {
    async fn put(&self, matched: &[Matched]) -> Result<(), StoreError> {
        for m in matched {
            self.check("put", &m.event.event.id)?;
        }
        let mut t = self.lock()?;
        for m in matched {
            let e = &m.event;
            let key = (e.event.tenant_id.clone(), e.received_at.micros(), Entry::Matched(e.event.id.clone(), m.part));
            t.agenda.insert(key, Some(m.clone()));
        }
        Ok(())
    }

    async fn put_bulks(&self, bulks: &[Bulk]) -> Result<(), StoreError> {
        for b in bulks {
            self.check("put", b.tenant.as_str())?;
        }
        let mut t = self.lock()?;
        for b in bulks {
            let key = bulk_key(b);
            t.agenda.insert(key.clone(), None);
            t.bulks.insert(key, b.clone());
        }
        Ok(())
    }

    async fn unpacked(&self, bulk: &Bulk) -> Result<(), StoreError> {
        self.check("unpacked", bulk.tenant.as_str())?;
        let mut t = self.lock()?;
        let key = bulk_key(bulk);
        t.agenda.remove(&key);
        t.bulks.remove(&key);
        Ok(())
    }
}

fn bulk_key(b: &Bulk) -> (TenantId, i64, Entry) {
    (
        b.tenant.clone(),
        b.due.micros(),
        Entry::Bulk(b.events.first().map(|(e, _)| e.event.id.clone()).unwrap_or_default()),
    )
}

#[async_trait]
impl AlertAgenda for MemoryAlerts {
    async fn due(&self, tenant: &TenantId, now: Timestamp, limit: usize) -> Result<Vec<Due>, StoreError> {
        self.check("due", tenant.as_str())?;
        let t = self.lock()?;
        let entries = t.agenda.iter().filter(|((x, at, _), _)| x == tenant && *at <= now.micros()).take(limit);
        entries
            .map(|(key, matched)| {
                let (_, at, entry) = key;
                let due = Timestamp::from_micros(*at).map_err(|_| StoreError::Corrupt("agenda time".into()))?;
                Ok(match (entry, matched) {
                    (Entry::Matched(..), Some(m)) => Due::Matched(Box::new(m.clone())),
                    (Entry::Matched(..), None) => {
                        return Err(StoreError::Corrupt("a matched entry without its event".into()));
                    }
                    (Entry::Attempt(rule, id), _) => {
                        Due::Attempt { rule_id: rule.clone(), delivery_id: id.clone(), due }
                    }
                    (Entry::Flush(rule), _) => Due::Flush { rule_id: rule.clone(), due },
                    (Entry::Bulk(_), _) => match t.bulks.get(key) {
                        Some(b) => Due::Bulk(Box::new(b.clone())),
                        None => return Err(StoreError::Corrupt("a bulk entry without its events".into())),
                    },
                })
            })
            .collect()
    }

    async fn next_due(&self, tenant: &TenantId) -> Result<Option<Timestamp>, StoreError> {
        self.check("due", tenant.as_str())?;
        let t = self.lock()?;
        let first = t.agenda.keys().find(|(x, _, _)| x == tenant).map(|(_, at, _)| *at);
        Ok(first.and_then(|m| Timestamp::from_micros(m).ok()))
    }
}

impl Tables {
    /// Whether each change's state is still at the version it was decided from.
    fn conflicts(&self, tenant: &TenantId, changes: &[RuleChange]) -> Vec<String> {
        changes
            .iter()
            .filter(|c| self.states.get(&(tenant.clone(), c.rule_id.clone())).map_or(0, |(_, v)| *v) != c.version)
            .map(|c| c.rule_id.clone())
            .collect()
    }

    fn make(&mut self, tenant: &TenantId, changes: &[RuleChange]) {
        for c in changes {
            self.states.insert((tenant.clone(), c.rule_id.clone()), (c.next.clone(), c.version + 1));
            if let Some(at) = c.cancel_flush {
                self.agenda.remove(&(tenant.clone(), at.micros(), Entry::Flush(c.rule_id.clone())));
            }
            if let Some(at) = c.schedule_flush {
                self.agenda.insert((tenant.clone(), at.micros(), Entry::Flush(c.rule_id.clone())), None);
            }
            if let Some(d) = &c.delivery {
                let due = (tenant.clone(), d.created_at.micros(), Entry::Attempt(d.rule_id.clone(), d.id.clone()));
                self.agenda.insert(due, None);
                self.deliveries.entry((tenant.clone(), d.rule_id.clone(), d.id.clone())).or_insert_with(|| d.clone());
            }
        }
    }
}

#[async_trait]
impl AlertState for MemoryAlerts {
    async fn state(&self, tenant: &TenantId, rule_id: &str) -> Result<(RuleState, u64), StoreError> {
        self.check("state", rule_id)?;
        Ok(self.lock()?.states.get(&(tenant.clone(), rule_id.to_owned())).cloned().unwrap_or_default())
    }

    async fn apply(&self, matched: &Matched, changes: &[RuleChange]) -> Result<Applied, StoreError> {
        self.check("apply", &matched.event.event.id)?;
        let mut t = self.lock()?;
        let e = &matched.event;
        let tenant = &e.event.tenant_id;
        let key = (tenant.clone(), e.received_at.micros(), Entry::Matched(e.event.id.clone(), matched.part));
        if !t.agenda.contains_key(&key) {
            return Ok(Applied::Gone);
        }
        let mark = (tenant.clone(), e.event.id.clone(), matched.part);
        if t.applied.contains(&mark) {
            t.agenda.remove(&key);
            return Ok(Applied::Replayed);
        }
        let conflicts = t.conflicts(tenant, changes);
        if !conflicts.is_empty() {
            return Ok(Applied::Conflict(conflicts));
        }
        t.agenda.remove(&key);
        t.applied.insert(mark);
        t.make(tenant, changes);
        Ok(Applied::Done)
    }

    async fn flush(
        &self,
        tenant: &TenantId,
        rule_id: &str,
        due: Timestamp,
        change: Option<&RuleChange>,
    ) -> Result<Applied, StoreError> {
        self.check("flush", rule_id)?;
        let mut t = self.lock()?;
        let key = (tenant.clone(), due.micros(), Entry::Flush(rule_id.to_owned()));
        if !t.agenda.contains_key(&key) {
            return Ok(Applied::Gone);
        }
        let changes: Vec<RuleChange> = change.into_iter().cloned().collect();
        let conflicts = t.conflicts(tenant, &changes);
        if !conflicts.is_empty() {
            return Ok(Applied::Conflict(conflicts));
        }
        t.agenda.remove(&key);
        t.make(tenant, &changes);
        Ok(Applied::Done)
    }
}

#[async_trait]
impl Deliveries for MemoryAlerts {
    async fn delivery(&self, tenant: &TenantId, rule_id: &str, id: &str) -> Result<Option<Delivery>, StoreError> {
        self.check("delivery", rule_id)?;
        Ok(self.lock()?.deliveries.get(&(tenant.clone(), rule_id.to_owned(), id.to_owned())).cloned())
    }

    async fn record(&self, delivery: &Delivery, due: Timestamp, attempt: &Attempt) -> Result<(), StoreError> {
        self.check("record", &delivery.rule_id)?;
        let mut t = self.lock()?;
        let tenant = delivery.tenant_id.clone();
        let entry = |at: i64| (tenant.clone(), at, Entry::Attempt(delivery.rule_id.clone(), delivery.id.clone()));
        let key = (tenant.clone(), delivery.rule_id.clone(), delivery.id.clone());
        // Only from where this attempt started, and never past a final status.
        let Some(d) = t.deliveries.get_mut(&key).filter(|d| d.attempts == delivery.attempts && !d.status.is_final())
        else {
            t.agenda.remove(&entry(due.micros()));
            return Ok(());
        };
        d.status = attempt.status;
        if attempt.sent {
            d.attempts = delivery.attempts.saturating_add(1);
        }
        d.last_error.clone_from(&attempt.error);
        let d = d.clone();
        t.agenda.remove(&entry(due.micros()));
        if let Some(next) = attempt.next_at {
            t.agenda.insert(entry(next.micros()), None);
        }
        if let Some(rule) = t.rules.get_mut(&(tenant, delivery.rule_id.clone())) {
            apply(&mut rule.summary, &d, attempt);
        }
        Ok(())
    }

    async fn forget(
        &self,
        tenant: &TenantId,
        rule_id: &str,
        delivery_id: &str,
        due: Timestamp,
    ) -> Result<(), StoreError> {
        self.check("record", rule_id)?;
        let mut t = self.lock()?;
        t.agenda.remove(&(tenant.clone(), due.micros(), Entry::Attempt(rule_id.to_owned(), delivery_id.to_owned())));
        Ok(())
    }

    async fn defer(&self, delivery: &Delivery, due: Timestamp, to: Timestamp) -> Result<(), StoreError> {
        self.check("defer", &delivery.rule_id)?;
        let mut t = self.lock()?;
        let entry =
            |at: i64| (delivery.tenant_id.clone(), at, Entry::Attempt(delivery.rule_id.clone(), delivery.id.clone()));
        if t.agenda.remove(&entry(due.micros())).is_some() {
            t.agenda.insert(entry(to.micros()), None);
        }
        Ok(())
    }
}

/// What an attempt changes in a rule's summary (the DynamoDB adapter's update does the
/// same with `SET` and `ADD`).
fn apply(s: &mut Summary, d: &Delivery, attempt: &Attempt) {
    if attempt.sent {
        s.last_attempt_at = Some(attempt.at);
    }
    match &attempt.error {
        None => s.last_delivered_at = Some(attempt.at),
        Some(e) => {
            s.last_error = Some((attempt.at, e.clone()));
            if attempt.sent {
                s.failed_attempts += 1;
            }
        }
    }
    if attempt.status == Status::Dead {
        s.dead_letters += 1;
        s.last_dead_letter = Some(DeadLetter {
            id: d.id.clone(),
            at: attempt.at,
            attempts: d.attempts,
            event_ids: d.event_ids.clone(),
            error: attempt.error.clone().unwrap_or_default(),
        });
    }
}

/// Records each send; fails the ones its faults say (op `send`, detail: the delivery id).
#[derive(Default)]
pub struct MemoryNotifier {
    sent: Mutex<Vec<(Destination, Delivery, Timestamp)>>,
    /// Hosts `check` refuses.
    pub refused_hosts: Mutex<Vec<String>>,
    pub faults: Faults,
}

impl MemoryNotifier {
    /// Every attempt so far: where, what, when.
    #[must_use]
    pub fn sent(&self) -> Vec<(Destination, Delivery, Timestamp)> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn check(&self, url: &WebhookUrl) -> Result<(), SendError> {
        let refused = self.refused_hosts.lock().map(|h| h.iter().any(|h| url.text.contains(h.as_str())));
        if refused.unwrap_or(false) { Err(SendError("resolves to a private address".into())) } else { Ok(()) }
    }

    async fn send(
        &self,
        destination: &Destination,
        _secrets: &Secrets,
        delivery: &Delivery,
        _subject: &str,
        now: Timestamp,
    ) -> Result<(), SendError> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push((destination.clone(), delivery.clone(), now));
        }
        self.faults.check("send", &delivery.id).map_err(|_| SendError("HTTP 500".into()))
    }
}
