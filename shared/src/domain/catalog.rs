//! The action and actor catalogs (`GET /v1/actions`, `GET /v1/actors`) and the email
//! directory: what ingest records of the events it stores, how often, and how a page of
//! a catalog is put together.
//!
//! Catalogs must not tax every event. Action counts are added by the consumer of the
//! table's stream, one write per (tenant, action) per batch
//! (`usecases::counts`). Ingest writes each (tenant, actor) entry at most once
//! per [`WINDOW`], carrying the latest sighting since ([`CatalogMemory`]). What a
//! category or an email filter relies on, that an action or an (email, actor) pair is
//! known at all, is written before the events that need it and remembered for the life
//! of the process, since such a fact never changes.

use crate::domain::event::Event;
use crate::domain::tenant::TenantId;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How often one process writes one catalog entry.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most entries a process remembers per kind; past it, entries are written without
/// being remembered (more writes, never lost ones).
const REMEMBERED_MAX: usize = 100_000;
/// Most due entries written after one batch; the rest wait for the next.
const DUE_PER_BATCH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionCount {
    pub action: String,
    /// Events recorded, as the table's stream counted them: approximate (a batch the
    /// stream delivers twice counts twice), never the exact number the time index holds.
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorEntry {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub last_seen: String,
}

impl ActorEntry {
    /// The actor as `e` shows it, last seen at `e`'s time.
    #[must_use]
    pub fn of(e: &Event) -> Self {
        Self {
            id: e.actor.id.clone(),
            kind: e.actor.kind.as_str().to_owned(),
            name: e.actor.name.clone(),
            email: e.actor.email.clone(),
            last_seen: e.occurred_at.to_string(),
        }
    }
}

/// Counts to add to action entries and sightings to record in actor entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogUpdate {
    pub actions: Vec<(String, u64)>,
    /// The latest sighting of each actor.
    pub actors: Vec<ActorEntry>,
}

/// Each actor's latest sighting in `created`.
fn latest_sightings(created: &[&Event]) -> Vec<ActorEntry> {
    let mut actors: BTreeMap<&str, &Event> = BTreeMap::new();
    for e in created {
        let latest = actors.entry(e.actor.id.as_str()).or_insert(e);
        if e.occurred_at > latest.occurred_at {
            *latest = e;
        }
    }
    actors.into_values().map(ActorEntry::of).collect()
}

impl CatalogUpdate {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.actors.is_empty()
    }
}

/// What the catalogs must know before events are stored: their actions (for category
/// filters) and each (lowercased email, actor id) pair (for email filters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub actions: Vec<String>,
    pub emails: Vec<(String, String)>,
}

impl Known {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.emails.is_empty()
    }

    /// Whether `e` needs something in here.
    #[must_use]
    pub fn needed_by(&self, e: &Event) -> bool {
        self.actions.contains(&e.action)
            || e.actor.email.as_ref().is_some_and(|m| self.emails.contains(&(m.to_lowercase(), e.actor.id.clone())))
    }
}

#[derive(Debug)]
struct Sighting {
    written: Instant,
    /// `last_seen` of the entry last written.
    written_seen: String,
    pending: Option<ActorEntry>,
}

/// What one process remembers of the catalog writes it made, so that each entry is
/// written at most once per `window` however many events mention it.
#[derive(Debug)]
pub struct CatalogMemory {
    window: Duration,
    known_actions: HashSet<(TenantId, String)>,
    known_emails: HashSet<(TenantId, String, String)>,
    actors: HashMap<(TenantId, String), Sighting>,
    /// Actors holding an unwritten sighting, in the order they fall due.
    due: VecDeque<(Instant, TenantId, String)>,
}

impl Default for CatalogMemory {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl CatalogMemory {
    /// Writes each entry at most once per `window` (zero: after every batch).
    #[must_use]
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            known_actions: HashSet::new(),
            known_emails: HashSet::new(),
            actors: HashMap::new(),
            due: VecDeque::new(),
        }
    }

    /// What the catalogs must learn before `events` are stored.
    #[must_use]
    pub fn unknown(&self, tenant: &TenantId, events: &[&Event]) -> Known {
        let mut k = Known::default();
        for e in events {
            if !self.known_actions.contains(&(tenant.clone(), e.action.clone())) && !k.actions.contains(&e.action) {
                k.actions.push(e.action.clone());
            }
            if let Some(email) = &e.actor.email {
                let pair = (email.to_lowercase(), e.actor.id.clone());
                if !self.known_emails.contains(&(tenant.clone(), pair.0.clone(), pair.1.clone()))
                    && !k.emails.contains(&pair)
                {
                    k.emails.push(pair);
                }
            }
        }
        k
    }

    /// Remembers that the catalogs know `known`.
    pub fn learned(&mut self, tenant: &TenantId, known: &Known) {
        if self.known_actions.len() + known.actions.len() > REMEMBERED_MAX {
            self.known_actions.clear();
        }
        if self.known_emails.len() + known.emails.len() > REMEMBERED_MAX {
            self.known_emails.clear();
        }
        self.known_actions.extend(known.actions.iter().map(|a| (tenant.clone(), a.clone())));
        self.known_emails.extend(known.emails.iter().map(|(m, id)| (tenant.clone(), m.clone(), id.clone())));
    }

    /// Notes the actors of events that were stored, and returns the sightings due at
    /// `now`, per tenant: each actor not written within the window (with its latest
    /// sighting since), and earlier ones whose window has passed.
    pub fn add(&mut self, tenant: &TenantId, created: &[&Event], now: Instant) -> Vec<(TenantId, CatalogUpdate)> {
        let mut out: BTreeMap<TenantId, CatalogUpdate> = BTreeMap::new();
        for entry in latest_sightings(created) {
            let key = (tenant.clone(), entry.id.clone());
            match self.actors.get_mut(&key) {
                Some(s) if now.duration_since(s.written) < self.window => {
                    if entry.last_seen <= s.written_seen {
                        continue;
                    }
                    if s.pending.is_none() {
                        self.due.push_back((s.written + self.window, key.0.clone(), key.1.clone()));
                    }
                    if s.pending.as_ref().is_none_or(|p| p.last_seen <= entry.last_seen) {
                        s.pending = Some(entry);
                    }
                }
                Some(s) => {
                    let newest = match s.pending.take() {
                        Some(p) if p.last_seen > entry.last_seen => p,
                        _ => entry,
                    };
                    s.written = now;
                    s.written_seen.clone_from(&newest.last_seen);
                    out.entry(key.0).or_default().actors.push(newest);
                }
                None => {
                    if self.actors.len() < REMEMBERED_MAX {
                        let seen = entry.last_seen.clone();
                        self.actors.insert(key.clone(), Sighting { written: now, written_seen: seen, pending: None });
                    }
                    out.entry(key.0).or_default().actors.push(entry);
                }
            }
        }
        self.take_due(now, &mut out);
        out.into_iter().collect()
    }

    /// Moves entries whose window has passed into `out`.
    fn take_due(&mut self, now: Instant, out: &mut BTreeMap<TenantId, CatalogUpdate>) {
        let mut taken = 0;
        while taken < DUE_PER_BATCH && self.due.front().is_some_and(|(at, ..)| *at <= now) {
            let Some((_, t, id)) = self.due.pop_front() else { break };
            if let Some(s) = self.actors.get_mut(&(t.clone(), id))
                && let Some(entry) = s.pending.take()
            {
                s.written = now;
                s.written_seen.clone_from(&entry.last_seen);
                out.entry(t).or_default().actors.push(entry);
                taken += 1;
            }
        }
    }

    /// Takes back a due update whose write failed, to be written once its window passes.
    pub fn unwritten(&mut self, tenant: &TenantId, update: CatalogUpdate, now: Instant) {
        for entry in update.actors {
            let id = entry.id.clone();
            let s = self.actors.entry((tenant.clone(), id.clone())).or_insert(Sighting {
                written: now,
                written_seen: String::new(),
                pending: None,
            });
            s.written_seen.clear();
            if s.pending.is_none() {
                self.due.push_back((now + self.window, tenant.clone(), id));
            }
            if s.pending.as_ref().is_none_or(|p| p.last_seen <= entry.last_seen) {
                s.pending = Some(entry);
            }
        }
    }
}

/// Combines catalog entries read from several shards (the same key can be in more than
/// one after the tenant's shard count grew): counts add up, an actor keeps its latest
/// sighting. In key order.
#[must_use]
pub fn combine_actions(entries: impl IntoIterator<Item = ActionCount>) -> BTreeMap<String, ActionCount> {
    let mut out: BTreeMap<String, ActionCount> = BTreeMap::new();
    for a in entries {
        out.entry(a.action.clone()).and_modify(|c| c.count += a.count).or_insert(a);
    }
    out
}

/// As [`combine_actions`], for actors.
#[must_use]
pub fn combine_actors(entries: impl IntoIterator<Item = ActorEntry>) -> BTreeMap<String, ActorEntry> {
    let mut out: BTreeMap<String, ActorEntry> = BTreeMap::new();
    for e in entries {
        match out.get(&e.id) {
            Some(old) if old.last_seen >= e.last_seen => {}
            _ => {
                out.insert(e.id.clone(), e);
            }
        }
    }
    out
}

/// Whether an action matches the catalog's `q`: a substring, any case.
#[must_use]
pub fn action_matches(a: &ActionCount, q: Option<&str>) -> bool {
    q.is_none_or(|q| a.action.contains(q.to_lowercase().as_str()))
}

/// Whether an actor matches the catalog's `q`: a prefix of the name or email, any case.
#[must_use]
pub fn actor_matches(a: &ActorEntry, q: Option<&str>) -> bool {
    q.is_none_or(|q| {
        let q = q.to_lowercase();
        [&a.name, &a.email].into_iter().flatten().any(|v| v.to_lowercase().starts_with(q.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, action: &str, actor: &str, at: &str) -> Event {
        let raw = json!({"id": id, "occurred_at": at, "action": action,
            "actor": {"type": "member", "id": actor, "email": format!("{actor}@X.com")}});
        let t = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
        Event::validate(raw, &t, crate::domain::timestamp::Timestamp::MAX).unwrap_or_else(|v| panic!("{v:?}")).event
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_entry_is_written_at_most_once_a_window_and_nothing_is_lost() {
        let mut m = CatalogMemory::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = event("1", "auth.login", "u1", "2026-01-01T00:00:00Z");
        let b = event("2", "auth.login", "u1", "2026-01-01T00:00:30Z");
        let c = event("3", "auth.login", "u1", "2026-01-01T00:00:10Z");
        let first = m.add(&acme(), &[&a], t0);
        assert_eq!(first.len(), 1);
        assert!(first[0].1.actions.is_empty(), "counts are the stream's");
        assert_eq!(first[0].1.actors.len(), 1);
        // Within the window: nothing is written, the newer sighting waits.
        for (i, e) in [&b, &c, &b].into_iter().enumerate() {
            let at = t0 + Duration::from_secs(5 * (i as u64 + 1));
            assert!(m.add(&acme(), &[e], at).is_empty());
        }
        // Once the window passed, any batch (even of another action) writes what waited.
        let other = event("4", "api_key.create", "u2", "2026-01-01T00:00:00Z");
        let due = m.add(&acme(), &[&other], t0 + Duration::from_secs(61));
        let update = &due[0].1;
        let u1 = update.actors.iter().find(|x| x.id == "u1").map(|x| x.last_seen.as_str());
        assert_eq!(u1, Some("2026-01-01T00:00:30.000000Z"));
        assert!(m.add(&acme(), &[], t0 + Duration::from_secs(200)).is_empty());
    }

    #[test]
    fn a_failed_write_is_written_again_later() {
        let mut m = CatalogMemory::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = event("1", "auth.login", "u1", "2026-01-01T00:00:00Z");
        let due = m.add(&acme(), &[&a], t0);
        let (t, update) = due.into_iter().next().unwrap_or_else(|| panic!("nothing due"));
        m.unwritten(&t, update.clone(), t0);
        assert!(m.add(&acme(), &[], t0 + Duration::from_secs(30)).is_empty());
        let again = m.add(&acme(), &[], t0 + Duration::from_secs(60));
        assert_eq!(again, vec![(t, update)]);
    }

    #[test]
    fn what_must_be_known_is_asked_once() {
        let mut m = CatalogMemory::default();
        let a = event("1", "auth.login", "u1", "2026-01-01T00:00:00Z");
        let b = event("2", "auth.login", "u1", "2026-01-01T00:00:01Z");
        let k = m.unknown(&acme(), &[&a, &b]);
        assert_eq!(k.actions, vec!["auth.login".to_owned()]);
        assert_eq!(k.emails, vec![("u1@x.com".to_owned(), "u1".to_owned())]);
        assert!(k.needed_by(&a));
        m.learned(&acme(), &k);
        assert!(m.unknown(&acme(), &[&a]).is_empty());
        let other = TenantId::parse("other").unwrap_or_else(|e| panic!("{e}"));
        assert!(!m.unknown(&other, &[&a]).is_empty());
    }

    #[test]
    fn shards_combine_and_q_filters() {
        let a = |action: &str, count| ActionCount { action: action.into(), count };
        let got = combine_actions([a("api_key.create", 2), a("auth.login", 1), a("api_key.create", 3)]);
        assert_eq!(got.values().cloned().collect::<Vec<_>>(), vec![a("api_key.create", 5), a("auth.login", 1)]);
        assert!(action_matches(&a("api_key.create", 1), Some("KEY")));
        assert!(!action_matches(&a("auth.login", 1), Some("key")));
        let actor = |id: &str, name: &str, seen: &str| ActorEntry {
            id: id.into(),
            kind: "member".into(),
            name: Some(name.into()),
            email: None,
            last_seen: seen.into(),
        };
        let got = combine_actors([actor("u1", "Bob", "2026-01-02"), actor("u1", "Bobby", "2026-01-03")]);
        assert_eq!(got.get("u1").and_then(|a| a.name.as_deref()), Some("Bobby"));
        assert!(actor_matches(&actor("u1", "Bobby", "x"), Some("BO")));
        assert!(!actor_matches(&actor("u1", "Bobby", "x"), Some("ob")));
    }
}
