//! The stream's side of alerts: each new event matched against its tenant's rules, and
//! the matches handed to the tenant's own work, so that what a stream batch costs does
//! not grow with any tenant's rules, matches or receivers.
//!
//! Per record: one match against cached rules (microseconds; an event that matches no
//! rule costs nothing more). Per batch: each tenant's matches written as entries of the
//! tenant's agenda, up to [`INLINE_ENTRIES`] of them, beyond that as bulk entries (a
//! write per [`BULK_BYTES`] of events, whatever their rules), and one note per tenant with matches
//! that gives it a turn ([`crate::usecases::turns`]). Unpacking bulk entries, judging the
//! matches, moving rule states and delivering are the tenant's worker's
//! ([`super::worker`]), which serves tenants in turns.

use crate::domain::alert::Rule;
use crate::domain::alerting::matching;
use crate::domain::event::StoredEvent;
use crate::domain::tenant::TenantId;
use crate::ports::{AlertInbox, AlertRules, BULK_BYTES, Bulk, Matched, RULES_PER_MATCHED, StoreError};
use crate::usecases::counts::ActionCounts;
use crate::usecases::intake::{Record, in_order};
use crate::usecases::turns::{TurnError, Turns};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tenants whose rules one process keeps; past it the cache starts afresh.
const MAX_CACHED_TENANTS: usize = 10_000;
/// Entries written together (one BatchWriteItem).
pub(super) const WRITE_BATCH: usize = 25;
/// Most entries one tenant's matches in one hand-over are written as; beyond them they
/// go as [`Bulk`] entries. A handful keeps a quiet tenant's path short (its worker reads
/// its events from the entries); the bound keeps a flood's cost to the stream small.
pub const INLINE_ENTRIES: usize = 10;
/// Matched events gathered before they are handed over: more than a batch holds, so
/// each tenant's matches in a batch are handed over together.
const HAND_OVER_EVERY: usize = 1_000;

/// A new event and the ids of the rules it matched, in the rules' order.
pub type Match = (StoredEvent, Vec<String>);

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
            HAND_OVER_EVERY,
            async |event| self.matched(&event).await.map_err(IntakeError::from),
            async |matches| self.hand_over(matches).await,
        )
        .await
    }

    /// [`Intake::batch`], then the action counts of what it handed over: the records
    /// before the first one not handed over, which the stream will not deliver again.
    /// A count that could not be written is logged: counts are approximate.
    pub async fn batch_and_count(
        &self,
        counts: &ActionCounts,
        records: Vec<Record>,
        deadline: Instant,
    ) -> Option<String> {
        let events: Vec<(usize, TenantId, String)> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.event.as_ref().map(|e| (i, e.event.tenant_id.clone(), e.event.action.clone())))
            .collect();
        let sequences: Vec<String> = records.iter().map(|r| r.sequence.clone()).collect();
        let unhanded = self.batch(records, deadline).await;
        let end = unhanded.as_ref().and_then(|u| sequences.iter().position(|s| s == u)).unwrap_or(sequences.len());
        let handed = events.iter().take_while(|(i, ..)| *i < end).map(|(_, tenant, action)| (tenant, action.as_str()));
        if let Err((tenant, e)) = counts.add(handed).await {
            tracing::warn!(%tenant, error = %e, "action counts not written; GET /v1/actions stays short by this batch");
        }
        unhanded
    }

    /// The rules `event` matches, as at most one [`Match`].
    ///
    /// # Errors
    /// The tenant's rules could not be read.
    pub async fn matched(&self, event: &StoredEvent) -> Result<Vec<Match>, StoreError> {
        let rules = self.rules_of(&event.event.tenant_id).await?;
        let ids: Vec<String> = matching(&rules, event).into_iter().map(|r| r.id.clone()).collect();
        Ok(if ids.is_empty() { Vec::new() } else { vec![(event.clone(), ids)] })
    }

    /// Puts `matches` on their tenants' agendas, then gives each of their tenants a turn.
    async fn hand_over(&self, matches: Vec<Match>) -> Result<(), IntakeError> {
        let (matched, bulks) = pack(matches);
        for chunk in matched.chunks(WRITE_BATCH) {
            self.inbox.put(chunk).await?;
        }
        for chunk in bulks.chunks(WRITE_BATCH) {
            self.inbox.put_bulks(chunk).await?;
        }
        let tenants: BTreeSet<&TenantId> =
            matched.iter().map(|m| &m.event.event.tenant_id).chain(bulks.iter().map(|b| &b.tenant)).collect();
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

/// The agenda entries of one event's matches: at most [`RULES_PER_MATCHED`] rules each,
/// numbered in order, so the same matches always make the same entries (the stream's and
/// a bulk's unpacking alike, and the applied markers know them).
#[must_use]
pub fn entries(event: &StoredEvent, rules: &[String]) -> Vec<Matched> {
    rules
        .chunks(RULES_PER_MATCHED)
        .enumerate()
        .map(|(part, rules)| Matched {
            event: event.clone(),
            rules: rules.to_vec(),
            part: u8::try_from(part).unwrap_or(u8::MAX),
        })
        .collect()
}

/// Each tenant's matches as entries, or, when they would make more than
/// [`INLINE_ENTRIES`], as bulk entries of at most [`BULK_BYTES`] of events each.
fn pack(matches: Vec<Match>) -> (Vec<Matched>, Vec<Bulk>) {
    let mut by_tenant: BTreeMap<TenantId, Vec<Match>> = BTreeMap::new();
    for m in matches {
        by_tenant.entry(m.0.event.tenant_id.clone()).or_default().push(m);
    }
    let (mut matched, mut bulks) = (Vec::new(), Vec::new());
    for (tenant, matches) in by_tenant {
        let count: usize = matches.iter().map(|(_, rules)| rules.len().div_ceil(RULES_PER_MATCHED)).sum();
        if count <= INLINE_ENTRIES {
            matched.extend(matches.iter().flat_map(|(event, rules)| entries(event, rules)));
            continue;
        }
        let mut part: Vec<Match> = Vec::new();
        let mut bytes = 0;
        for m in matches {
            // An event's text, its rules' indexes and its id and hash, as stored at most.
            let size = m.0.doc.len() + 2 * m.1.len() + m.0.event.id.len() + 64;
            if !part.is_empty() && bytes + size > BULK_BYTES {
                bulks.push(bulk(&tenant, std::mem::take(&mut part)));
                bytes = 0;
            }
            bytes += size;
            part.push(m);
        }
        if !part.is_empty() {
            bulks.push(bulk(&tenant, part));
        }
    }
    (matched, bulks)
}

/// One bulk entry of `matches` (not empty): each rule named once.
fn bulk(tenant: &TenantId, matches: Vec<Match>) -> Bulk {
    let mut rules: Vec<String> = Vec::new();
    let mut index: HashMap<String, u16> = HashMap::new();
    let due = matches.iter().map(|(e, _)| e.received_at).min().unwrap_or_else(crate::domain::timestamp::Timestamp::now);
    let events = matches
        .into_iter()
        .map(|(event, ids)| {
            let at = ids
                .into_iter()
                .map(|id| {
                    *index.entry(id).or_insert_with_key(|id| {
                        rules.push(id.clone());
                        // A tenant has at most MAX_RULES_PER_TENANT rules.
                        u16::try_from(rules.len() - 1).unwrap_or(u16::MAX)
                    })
                })
                .collect();
            (event, at)
        })
        .collect();
    Bulk { tenant: tenant.clone(), due, rules, events }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Event;
    use crate::domain::fixtures::with;
    use crate::domain::timestamp::Timestamp;
    use serde_json::json;

    fn event(tenant: &str, id: &str) -> StoredEvent {
        let tenant = TenantId::parse(tenant).unwrap_or_else(|_| unreachable!());
        let at = Timestamp::now();
        let value = with(json!({"id": id, "action": "a.b", "occurred_at": at.to_string()}));
        Event::validate(value, &tenant, at).unwrap_or_else(|v| panic!("{v:?}")).stamp(at)
    }

    fn rules(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}")).collect()
    }

    #[test]
    fn a_few_matches_go_as_entries_and_a_flood_as_bulks_naming_the_same_matches() {
        let quiet = [(event("quiet", "q1"), rules(1)), (event("quiet", "q2"), rules(30))];
        let flood: Vec<Match> = (0..150).map(|i| (event("flood", &format!("f{i}")), rules(100))).collect();
        let (matched, bulks) = pack(quiet.iter().cloned().chain(flood.iter().cloned()).collect());
        // The quiet tenant's 3 entries (1 + 30 rules in parts of 24) go as they are.
        assert_eq!(matched.len(), 3);
        assert!(matched.iter().all(|m| m.event.event.tenant_id.as_str() == "quiet"));
        assert_eq!(
            matched.iter().map(|m| (m.event.event.id.as_str(), m.part)).collect::<Vec<_>>(),
            [("q1", 0), ("q2", 0), ("q2", 1)]
        );
        // The flood's 750 entries are one write, and read back they are the same matches.
        assert_eq!(bulks.len(), 1);
        let back: Vec<Match> = bulks
            .iter()
            .flat_map(|b| {
                b.events
                    .iter()
                    .map(|(event, at)| (event.clone(), at.iter().map(|i| b.rules[usize::from(*i)].clone()).collect()))
            })
            .collect();
        assert_eq!(back, flood);
        assert_eq!(bulks[0].rules.len(), 100, "each rule is named once");
        assert_eq!(bulks[0].due, flood[0].0.received_at);
        // Events of the most bytes an event may have fill bulks of BULK_BYTES at most.
        let big = |i: usize| {
            let mut e = event("flood", &format!("b{i}"));
            e.doc = "x".repeat(crate::domain::event::MAX_EVENT_BYTES);
            (e, rules(100))
        };
        let (_, bulks) = pack((0..20).map(big).collect());
        assert_eq!(bulks.iter().map(|b| b.events.len()).collect::<Vec<_>>(), [3, 3, 3, 3, 3, 3, 2]);
    }

    #[test]
    fn entries_hold_at_most_a_transactions_worth_of_rules_numbered_in_order() {
        let e = event("acme", "e1");
        let parts = entries(&e, &rules(49));
        assert_eq!(parts.iter().map(|m| (m.part, m.rules.len())).collect::<Vec<_>>(), [(0, 24), (1, 24), (2, 1)]);
        assert_eq!(parts[2].rules, ["r48"]);
    }
}
