//! The stream's side of alerts: each new event matched against its tenant's rules, and
//! the matches handed to the tenant's own work, so that what a stream batch costs does
//! not grow with any tenant's rules, matches or receivers.
//!
//! Per record: one match against cached rules (microseconds; an event that matches no
//! rule costs nothing more). Per batch: one write per 25 matched entries, and one note
//! per tenant with matches that gives it a turn ([`crate::usecases::turns`]). Judging the
//! matches, moving rule states and delivering are the tenant's worker's
//! ([`super::worker`]), which serves tenants in turns.

use crate::domain::alert::Rule;
use crate::domain::alerting::matching;
use crate::domain::event::StoredEvent;
use crate::domain::tenant::TenantId;
use crate::ports::{AlertInbox, AlertRules, Matched, RULES_PER_MATCHED, StoreError};
use crate::usecases::intake::{Record, in_order};
use crate::usecases::turns::{TurnError, Turns};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tenants whose rules one process keeps; past it the cache starts afresh.
const MAX_CACHED_TENANTS: usize = 10_000;
/// Matched entries written together (one BatchWriteItem).
const WRITE_BATCH: usize = 25;

/// A tenant's rules and when they were read.
type Cached = (Instant, Arc<Vec<Rule>>);

pub struct Intake {
    pub rules: Arc<dyn AlertRules>,
    pub inbox: Arc<dyn AlertInbox>,
    pub turns: Turns,
    /// How long cached rules are used: a change reaches the stream within it.
    pub ttl: Duration,
    cache: Mutex<HashMap<TenantId, Cached>>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Turn(#[from] TurnError),
}

impl Intake {
    pub fn new(rules: Arc<dyn AlertRules>, inbox: Arc<dyn AlertInbox>, turns: Turns, ttl: Duration) -> Self {
        Self { rules, inbox, turns, ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// Hands over a batch's records in order, stopping before `deadline` with time to
    /// hand over what it matched. Returns the sequence number of the first record not
    /// handed over (the stream reads the batch again from it), or `None` when all were.
    pub async fn batch(&self, records: Vec<Record>, deadline: Instant) -> Option<String> {
        in_order(
            records,
            deadline,
            WRITE_BATCH,
            async |event| self.matched(&event).await.map_err(IntakeError::from),
            async |matched| self.hand_over(&matched).await,
        )
        .await
    }

    /// The agenda entries of one event: the rules it matches, in entries of at most
    /// [`RULES_PER_MATCHED`].
    ///
    /// # Errors
    /// The tenant's rules could not be read.
    pub async fn matched(&self, event: &StoredEvent) -> Result<Vec<Matched>, StoreError> {
        let rules = self.rules_of(&event.event.tenant_id).await?;
        let ids: Vec<String> = matching(&rules, event).into_iter().map(|r| r.id.clone()).collect();
        Ok(ids
            .chunks(RULES_PER_MATCHED)
            .enumerate()
            .map(|(part, rules)| Matched {
                event: event.clone(),
                rules: rules.to_vec(),
                part: u8::try_from(part).unwrap_or(u8::MAX),
            })
            .collect())
    }

    /// Puts `matched` on the agendas, then gives each of their tenants a turn.
    async fn hand_over(&self, matched: &[Matched]) -> Result<(), IntakeError> {
        if matched.is_empty() {
            return Ok(());
        }
        for chunk in matched.chunks(WRITE_BATCH) {
            self.inbox.put(chunk).await?;
        }
        let tenants: BTreeSet<&TenantId> = matched.iter().map(|m| &m.event.event.tenant_id).collect();
        for tenant in tenants {
            self.turns.offer(tenant).await?;
        }
        Ok(())
    }

    /// The tenant's rules, from the cache while it is fresh.
    async fn rules_of(&self, tenant: &TenantId) -> Result<Arc<Vec<Rule>>, StoreError> {
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
