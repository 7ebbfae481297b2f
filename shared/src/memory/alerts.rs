//! Alert rules, their state and deliveries in memory, with the table's semantics (the
//! rule limit and the commit are all or nothing), and a notifier that records what it
//! is asked to send.

use crate::domain::alert::{Destination, MAX_RULES_PER_TENANT, Rule};
use crate::domain::delivery::{Attempt, DeadLetter, Delivery, Status, Summary};
use crate::domain::egress::WebhookUrl;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::domain::webhook::Secrets;
use crate::memory::{FaultKind, Faults};
use crate::ports::{
    AlertRules, AlertState, Commit, Deliveries, Notifier, RuleWriteError, SendError, StoreError, StoredRule,
};
use crate::usecases::alerts::RuleState;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct Tables {
    rules: BTreeMap<(TenantId, String), StoredRule>,
    states: HashMap<(TenantId, String), (RuleState, u64)>,
    applied: BTreeSet<(TenantId, String, String)>,
    deliveries: BTreeMap<(TenantId, String, String), Delivery>,
}

#[derive(Default)]
pub struct MemoryAlerts {
    tables: Mutex<Tables>,
    /// Operations: `create`, `get`, `list`, `replace`, `delete`, `state`, `commit`,
    /// `delivery`, `record`; details: the rule id.
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

    /// Every stored delivery, oldest first by id.
    #[must_use]
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.tables.lock().map(|t| t.deliveries.values().cloned().collect()).unwrap_or_default()
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
impl AlertState for MemoryAlerts {
    async fn state(&self, tenant: &TenantId, rule_id: &str) -> Result<(RuleState, u64), StoreError> {
        self.check("state", rule_id)?;
        Ok(self.lock()?.states.get(&(tenant.clone(), rule_id.to_owned())).cloned().unwrap_or_default())
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        rule_id: &str,
        event_id: &str,
        version: u64,
        next: &RuleState,
        delivery: Option<&Delivery>,
    ) -> Result<Commit, StoreError> {
        self.check("commit", rule_id)?;
        let mut t = self.lock()?;
        let mark = (tenant.clone(), rule_id.to_owned(), event_id.to_owned());
        if t.applied.contains(&mark) {
            return Ok(Commit::Replayed);
        }
        let key = (tenant.clone(), rule_id.to_owned());
        if t.states.get(&key).map_or(0, |(_, v)| *v) != version {
            return Ok(Commit::Conflict);
        }
        t.applied.insert(mark);
        t.states.insert(key, (next.clone(), version + 1));
        if let Some(d) = delivery {
            t.deliveries.entry((tenant.clone(), rule_id.to_owned(), d.id.clone())).or_insert_with(|| d.clone());
        }
        Ok(Commit::Done)
    }
}

#[async_trait]
impl Deliveries for MemoryAlerts {
    async fn delivery(&self, tenant: &TenantId, rule_id: &str, id: &str) -> Result<Option<Delivery>, StoreError> {
        self.check("delivery", rule_id)?;
        Ok(self.lock()?.deliveries.get(&(tenant.clone(), rule_id.to_owned(), id.to_owned())).cloned())
    }

    async fn record(&self, delivery: &Delivery, attempt: &Attempt) -> Result<(), StoreError> {
        self.check("record", &delivery.rule_id)?;
        let mut t = self.lock()?;
        let key = (delivery.tenant_id.clone(), delivery.rule_id.clone(), delivery.id.clone());
        let Some(d) = t.deliveries.get_mut(&key) else { return Ok(()) };
        d.status = attempt.status;
        d.attempts = delivery.attempts.saturating_add(1);
        d.last_error.clone_from(&attempt.error);
        let d = d.clone();
        if let Some(rule) = t.rules.get_mut(&(delivery.tenant_id.clone(), delivery.rule_id.clone())) {
            apply(&mut rule.summary, &d, attempt);
        }
        Ok(())
    }
}

/// What an attempt changes in a rule's summary (the DynamoDB adapter's update does the
/// same with `SET` and `ADD`).
fn apply(s: &mut Summary, d: &Delivery, attempt: &Attempt) {
    s.last_attempt_at = Some(attempt.at);
    match &attempt.error {
        None => s.last_delivered_at = Some(attempt.at),
        Some(e) => {
            s.last_error = Some((attempt.at, e.clone()));
            s.failed_attempts += 1;
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
