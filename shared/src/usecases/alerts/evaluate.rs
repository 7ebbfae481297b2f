//! The alerts function's stream side: each newly stored event, judged against its own
//! tenant's rules.
//!
//! An event that matches no rule costs no request at all: rules come from a per-tenant
//! cache refreshed after `ttl`. A match moves the rule's state and, when it notifies,
//! stores the delivery in the same all-or-nothing write, marked with the event's id, so
//! a stream record processed twice (a retried batch) neither counts twice nor notifies
//! twice, and a delivery whose first attempt was cut short is sent on the second pass.

use crate::domain::alert::Rule;
use crate::domain::delivery::{Delivery, Status};
use crate::domain::event::StoredEvent;
use crate::domain::tenant::TenantId;
use crate::domain::webhook::delivery_id;
use crate::ports::{AlertRules, AlertState, Commit, Deliveries};
use crate::usecases::alerts::deliver::{AlertError, Deliverer};
use crate::usecases::alerts::{Decision, decide, matching, notification};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a commit may meet a state another batch just moved before the record is
/// left to the stream's retry.
const MAX_CONFLICTS: usize = 8;
/// Tenants whose rules one process keeps; past it the cache starts afresh.
const MAX_CACHED_TENANTS: usize = 10_000;

/// A tenant's rules and when they were read.
type Cached = (Instant, Arc<Vec<Rule>>);

pub struct Evaluator {
    pub rules: Arc<dyn AlertRules>,
    pub state: Arc<dyn AlertState>,
    pub deliveries: Arc<dyn Deliveries>,
    pub deliver: Deliverer,
    /// How long cached rules are used: a change reaches the stream within it.
    pub ttl: Duration,
    cache: Mutex<HashMap<TenantId, Cached>>,
}

/// What one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluated {
    /// Rules it matched.
    pub matched: usize,
    /// Notifications it set off (each delivered, or scheduled for a retry).
    pub notified: usize,
    /// Rules that had already seen it.
    pub replayed: usize,
}

impl Evaluator {
    /// The rules and state in `store`, cached for `ttl`.
    pub fn on<S: AlertRules + AlertState + Deliveries + 'static>(
        store: &Arc<S>,
        deliver: Deliverer,
        ttl: Duration,
    ) -> Self {
        Self::new(store.clone(), store.clone(), store.clone(), deliver, ttl)
    }

    pub fn new(
        rules: Arc<dyn AlertRules>,
        state: Arc<dyn AlertState>,
        deliveries: Arc<dyn Deliveries>,
        deliver: Deliverer,
        ttl: Duration,
    ) -> Self {
        Self { rules, state, deliveries, deliver, ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// Judges one stored event. A notification's first attempt is made at once while
    /// one attempt still fits before `deadline` (the invocation's end), and otherwise
    /// handed to the retry queue, due now: a slow receiver never makes the stream's batch
    /// time out and count as failed.
    ///
    /// # Errors
    /// Storage or the retry queue unavailable: the record is to be processed again,
    /// which repeats nothing already done.
    pub async fn event(&self, event: &StoredEvent, deadline: Instant) -> Result<Evaluated, AlertError> {
        let rules = self.rules_of(&event.event.tenant_id).await?;
        let mut out = Evaluated::default();
        for rule in matching(&rules, event) {
            out.matched += 1;
            match self.apply(rule, event, deadline).await? {
                Applied::Notified => out.notified += 1,
                Applied::Replayed => out.replayed += 1,
                Applied::Counted => {}
            }
        }
        Ok(out)
    }

    async fn apply(&self, rule: &Rule, event: &StoredEvent, deadline: Instant) -> Result<Applied, AlertError> {
        let tenant = &rule.tenant_id;
        for _ in 0..MAX_CONFLICTS {
            let (state, version) = self.state.state(tenant, &rule.id).await?;
            let (next, decision) = decide(rule, &state, event.received_at);
            let delivery = match decision {
                Decision::Notify { count } => Some(new_delivery(rule, event, count)?),
                Decision::Counted { .. } | Decision::Quiet => None,
            };
            match self.state.commit(tenant, &rule.id, &event.event.id, version, &next, delivery.as_ref()).await? {
                Commit::Conflict => continue,
                Commit::Done => {
                    return match delivery {
                        Some(d) => {
                            self.deliver.first(rule, &d, deadline).await?;
                            Ok(Applied::Notified)
                        }
                        None => Ok(Applied::Counted),
                    };
                }
                Commit::Replayed => {
                    let id = delivery_id(&rule.id, &event.event.id);
                    if let Some(d) = self.deliveries.delivery(tenant, &rule.id, &id).await?
                        && d.status == Status::Pending
                    {
                        self.deliver.first(rule, &d, deadline).await?;
                    }
                    return Ok(Applied::Replayed);
                }
            }
        }
        Err(AlertError::Contended(rule.id.clone()))
    }

    /// The tenant's enabled and disabled rules, from the cache while it is fresh.
    async fn rules_of(&self, tenant: &TenantId) -> Result<Arc<Vec<Rule>>, AlertError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, rules)) = cache.get(tenant)
            && at.elapsed() < self.ttl
        {
            return Ok(rules.clone());
        }
        let rules: Arc<Vec<Rule>> = Arc::new(self.rules.list(tenant).await?.into_iter().map(|s| s.rule).collect());
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED_TENANTS {
                cache.clear();
            }
            cache.insert(tenant.clone(), (Instant::now(), rules.clone()));
        }
        Ok(rules)
    }
}

enum Applied {
    Notified,
    Counted,
    Replayed,
}

fn new_delivery(rule: &Rule, event: &StoredEvent, count: u32) -> Result<Delivery, AlertError> {
    let n = notification(rule, event, count);
    Ok(Delivery {
        id: n.id,
        tenant_id: rule.tenant_id.clone(),
        rule_id: rule.id.clone(),
        event_ids: vec![event.event.id.clone()],
        body: serde_json::to_string(&n.body).map_err(|e| AlertError::Internal(e.to_string()))?,
        created_at: event.received_at,
        status: Status::Pending,
        attempts: 0,
        last_error: None,
    })
}
