//! The table in memory: events with their index partitions, tenants, catalogs, the
//! archive registry and export jobs, behind one lock.

use crate::domain::catalog::{ActionCount, ActorEntry, CatalogUpdate, Known};
use crate::domain::event::StoredEvent;
use crate::domain::export::{DOWNLOAD_HOURS, Job, Produced, Status, id_lower_bound};
use crate::domain::export_dispatch::Dispatch;
use crate::domain::export_part::{Part, PartStatus, Range};
use crate::domain::filter::{Filter, Order};
use crate::domain::manifest::{ArchiveState, ChainHead, Pending, Phase};
use crate::domain::plan::{EventKey, Partition, Path};
use crate::domain::tenant::{TenantId, TenantSettings, shard_of};
use crate::domain::timestamp::Timestamp;
use crate::memory::{FaultKind, Faults};
use crate::ports::StoreError;
use crate::ports::registry::LEASE_SECONDS;
use crate::ports::{ArchiveRegistry, ArchivedAt, CatalogRead, Catalogs, CountPage, EventArchiver, EventIndex};
use crate::ports::{EventReader, EventWriter, ExportJobs, Health, IndexEntry, IndexPage, IndexQuery, Lookup, Moved};
use crate::ports::{PutOutcome, RegistryError, TenantRegistry, Tenants};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

struct Item {
    event: StoredEvent,
    shard: u16,
    dedup: String,
    /// `(date, part)` once the archive moved it: a tombstone, in no index.
    archived: Option<(String, String)>,
}

impl Item {
    fn online(&self) -> bool {
        self.archived.is_none()
    }
}

#[derive(Default)]
struct Lease {
    owner: Option<String>,
    until: u64,
}

#[derive(Default)]
struct Tables {
    events: BTreeMap<(TenantId, String), Item>,
    settings: HashMap<TenantId, TenantSettings>,
    registered: BTreeSet<TenantId>,
    actions: BTreeMap<(TenantId, String), u64>,
    actors: BTreeMap<(TenantId, u16, String), ActorEntry>,
    /// (tenant, lowercased email, actor id).
    emails: BTreeSet<(TenantId, String, String)>,
    archive: HashMap<TenantId, (ArchiveState, Lease)>,
    jobs: BTreeMap<(TenantId, String), Job>,
    parts: BTreeMap<(TenantId, String, u32), Part>,
    dispatch: HashMap<TenantId, Dispatch>,
}

/// Every table-backed port, in memory.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    pub faults: Faults,
    /// Whether index reads still list tombstoned events, as a DynamoDB GSI does for a
    /// moment after the base item changed.
    lagging: AtomicBool,
}

fn fault(kind: FaultKind, op: &str) -> StoreError {
    match kind {
        FaultKind::Unavailable => StoreError::Unavailable(format!("injected: {op}")),
        FaultKind::Refused | FaultKind::Slow(_) | FaultKind::Crash => StoreError::Refused(format!("injected: {op}")),
    }
}

fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl MemoryStore {
    fn open(&self, op: &str, detail: &str) -> Result<MutexGuard<'_, Tables>, StoreError> {
        self.faults.check(op, detail).map_err(|k| fault(k, op))?;
        self.tables.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))
    }

    /// Every online event of a tenant, in key order (what a test compares with).
    #[must_use]
    pub fn events(&self, tenant: &TenantId) -> Vec<StoredEvent> {
        let Ok(t) = self.tables.lock() else { return Vec::new() };
        let mut out: Vec<StoredEvent> =
            t.events.iter().filter(|((tn, _), i)| tn == tenant && i.online()).map(|(_, i)| i.event.clone()).collect();
        out.sort_by(|a, b| a.key().cmp(&b.key()));
        out
    }

    /// The ids of a tenant's tombstones, with the `(date, part)` each points to.
    #[must_use]
    pub fn tombstones(&self, tenant: &TenantId) -> BTreeMap<String, (String, String)> {
        let Ok(t) = self.tables.lock() else { return BTreeMap::new() };
        t.events
            .iter()
            .filter(|((tn, _), _)| tn == tenant)
            .filter_map(|((_, id), i)| i.archived.clone().map(|a| (id.clone(), a)))
            .collect()
    }

    /// Stores an event as ingest would have, without the checks (to set up a test); it
    /// replaces a tombstone of the same id.
    pub fn insert(&self, event: StoredEvent, shard: u16) {
        if let Ok(mut t) = self.tables.lock() {
            let key = (event.event.tenant_id.clone(), event.event.id.clone());
            t.registered.insert(event.event.tenant_id.clone());
            let dedup = event.hash.clone();
            t.events.insert(key, Item { event, shard, dedup, archived: None });
        }
    }

    /// Lets the tenant's archive lease lapse, as if its holder had stalled past it.
    pub fn lapse_lease(&self, tenant: &TenantId) {
        if let Ok(mut t) = self.tables.lock()
            && let Some((_, lease)) = t.archive.get_mut(tenant)
        {
            lease.until = 0;
        }
    }

    /// Sets the tenant's chain head, behind the archive's back: as whoever can write the
    /// table would, to make a rewritten chain consistent again.
    pub fn set_archive_head(&self, tenant: &TenantId, head: ChainHead) {
        if let Ok(mut t) = self.tables.lock()
            && let Some((state, _)) = t.archive.get_mut(tenant)
        {
            state.head = Some(head);
        }
    }

    /// From now on index reads list tombstoned events too (or stop), as a lagging GSI.
    pub fn lag_index(&self, lagging: bool) {
        self.lagging.store(lagging, Ordering::SeqCst);
    }

    fn indexed(&self, item: &Item) -> bool {
        item.online() || self.lagging.load(Ordering::SeqCst)
    }

    /// Stores an event under `tenant`'s key whatever tenant it names (to test that readers
    /// check what the event says).
    pub fn plant(&self, tenant: &TenantId, event: StoredEvent, shard: u16) {
        if let Ok(mut t) = self.tables.lock() {
            let key = (tenant.clone(), event.event.id.clone());
            let dedup = event.hash.clone();
            t.events.insert(key, Item { event, shard, dedup, archived: None });
        }
    }
    /// Sets a tenant's settings as if any raise were long past, so writes use every
    /// shard at once (to set up a test).
    pub fn configure(&self, tenant: &TenantId, settings: TenantSettings) {
        if let Ok(mut t) = self.tables.lock() {
            t.registered.insert(tenant.clone());
            t.settings.insert(tenant.clone(), TenantSettings { raised: None, ..settings });
        }
    }

    /// Replaces a stored job (to set up a test, say one past its expiry).
    pub fn put_job(&self, job: Job) {
        if let Ok(mut t) = self.tables.lock() {
            t.jobs.insert((job.tenant.clone(), job.id.clone()), job);
        }
    }

    /// Moves every export job's and part's start `seconds` back, as if that much time had
    /// passed since: a run killed mid-way becomes one cut short, which may be claimed again.
    pub fn age_exports(&self, seconds: i64) {
        if let Ok(mut t) = self.tables.lock() {
            let back = |at: &mut Option<Timestamp>| *at = at.map(|a| a.plus_seconds(-seconds));
            t.jobs.values_mut().for_each(|j| back(&mut j.started_at));
            t.parts.values_mut().for_each(|p| back(&mut p.started_at));
        }
    }
}

/// Whether `item` is in `partition` of `path`.
fn in_partition(item: &Item, path: Path, partition: &Partition) -> bool {
    let e = &item.event.event;
    let value = partition.value.as_deref();
    item.shard == partition.shard
        && match path {
            Path::Time => true,
            Path::Actor => value == Some(e.actor.id.as_str()),
            Path::Action => value == Some(e.action.as_str()),
            Path::Resource => value.is_some() && value == e.resource.as_ref().and_then(|r| r.id.as_deref()),
        }
}

/// Whether the index's filters keep an item: every filter but `q`, which (as on
/// DynamoDB, whose indexes hold no text) the reader applies to the fetched event.
fn index_keeps(filter: &Filter, item: &Item) -> bool {
    let without_q = Filter { q: None, ..filter.clone() };
    without_q.matches(&item.event.event)
}

/// The keys of a partition in `[from, to)` after `after`, in `order`.
fn partition_keys<'t>(t: &'t Tables, q: &IndexQuery<'_>, indexed: impl Fn(&Item) -> bool) -> Vec<&'t Item> {
    let (from, to) = (q.filter.from, q.filter.to);
    let mut items: Vec<&Item> = t
        .events
        .iter()
        .filter(|((tenant, _), _)| tenant == q.tenant)
        .map(|(_, i)| i)
        .filter(|i| indexed(i) && in_partition(i, q.path, q.partition))
        .filter(|i| (from..to).contains(&i.event.event.occurred_at))
        .filter(|i| {
            let key = i.event.key();
            q.after.is_none_or(|a| match q.order {
                Order::Asc => key > a.key(),
                Order::Desc => key < a.key(),
            })
        })
        .collect();
    items.sort_by(|a, b| a.event.key().cmp(&b.event.key()));
    if q.order == Order::Desc {
        items.reverse();
    }
    items
}

fn key_of(item: &Item) -> EventKey {
    key_of_event(&item.event)
}

fn key_of_event(e: &StoredEvent) -> EventKey {
    EventKey::new(e.event.occurred_at, &e.event.id)
}

#[async_trait]
impl EventWriter for MemoryStore {
    async fn put(&self, event: &StoredEvent, shard: u16, dedup: &str) -> Result<PutOutcome, StoreError> {
        let mut t = self.open("put", &event.event.id)?;
        let key = (event.event.tenant_id.clone(), event.event.id.clone());
        if let Some(existing) = t.events.get(&key) {
            return Ok(if existing.dedup == dedup { PutOutcome::Duplicate } else { PutOutcome::Conflict });
        }
        t.events.insert(key, Item { event: event.clone(), shard, dedup: dedup.to_owned(), archived: None });
        Ok(PutOutcome::Created)
    }
}

#[async_trait]
impl EventReader for MemoryStore {
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Lookup, StoreError> {
        let t = self.open("get", id)?;
        Ok(match t.events.get(&(tenant.clone(), id.to_owned())) {
            None => Lookup::Absent,
            Some(Item { archived: Some((date, part)), event, .. }) => {
                Lookup::Archived(ArchivedAt { date: date.clone(), part: part.clone(), key: key_of_event(event) })
            }
            Some(i) => Lookup::Online(Box::new(i.event.clone())),
        })
    }

    async fn fetch(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<Option<StoredEvent>>, StoreError> {
        let t = self.open("fetch", ids.first().copied().unwrap_or_default())?;
        let online = |id: &&str| t.events.get(&(tenant.clone(), (*id).to_owned())).filter(|i| i.online());
        Ok(ids.iter().map(|id| online(id).map(|i| i.event.clone())).collect())
    }

    async fn exist(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<bool>, StoreError> {
        let t = self.open("exist", ids.first().copied().unwrap_or_default())?;
        Ok(ids.iter().map(|id| t.events.get(&(tenant.clone(), (*id).to_owned())).is_some_and(Item::online)).collect())
    }
}

#[async_trait]
impl EventIndex for MemoryStore {
    fn decides(&self, filter: &Filter) -> bool {
        filter.q.is_none()
    }

    async fn page(&self, q: &IndexQuery<'_>) -> Result<IndexPage, StoreError> {
        let t = self.open("page", q.partition.value.as_deref().unwrap_or_default())?;
        let candidates = partition_keys(&t, q, |i| self.indexed(i));
        // As DynamoDB: `limit` items are evaluated, then filtered; a page that stopped at
        // the limit says where it stopped, even when nothing follows.
        let evaluated: Vec<&Item> = candidates.into_iter().take(q.limit.max(1)).collect();
        let last_evaluated = (evaluated.len() == q.limit.max(1)).then(|| evaluated.last().map(|i| key_of(i))).flatten();
        let read = u32::try_from(evaluated.len()).unwrap_or(u32::MAX);
        // The time index holds whole events; the others keys only, as in DynamoDB.
        let whole = q.path == Path::Time;
        let entries = evaluated
            .into_iter()
            .filter(|i| index_keeps(q.filter, i))
            .map(|i| IndexEntry { key: key_of(i), event: whole.then(|| i.event.clone()) });
        Ok(IndexPage { entries: entries.collect(), last_evaluated, read })
    }

    async fn count(&self, q: &IndexQuery<'_>) -> Result<CountPage, StoreError> {
        let t = self.open("count", q.partition.value.as_deref().unwrap_or_default())?;
        let keys = partition_keys(&t, q, |i| self.indexed(i));
        let read = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        let count = keys.into_iter().filter(|i| index_keeps(q.filter, i)).count();
        Ok(CountPage { count: count as u64, last_evaluated: None, read })
    }

    async fn earliest(
        &self,
        tenant: &TenantId,
        path: Path,
        partition: &Partition,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<EventKey>, StoreError> {
        let t = self.open("earliest", tenant.as_str())?;
        let first = t
            .events
            .iter()
            .filter(|((tn, _), i)| tn == tenant && self.indexed(i) && in_partition(i, path, partition))
            .map(|(_, i)| i)
            .filter(|i| (from..to).contains(&i.event.event.occurred_at))
            .min_by(|a, b| a.event.key().cmp(&b.event.key()));
        Ok(first.map(key_of))
    }
}

#[async_trait]
impl EventArchiver for MemoryStore {
    /// All or nothing per call, checked before anything changes.
    async fn tombstone(&self, tenant: &TenantId, moved: &[Moved]) -> Result<(), StoreError> {
        let mut t = self.open("tombstone", moved.first().map(|m| m.id.as_str()).unwrap_or_default())?;
        for m in moved {
            if let Some((date, part)) = t.events.get(&(tenant.clone(), m.id.clone())).and_then(|i| i.archived.as_ref())
                && (date != &m.date || part != &m.part)
            {
                return Err(StoreError::Corrupt(format!("{} is archived in {date}/{part} already", m.id)));
            }
        }
        for m in moved {
            if let Some(item) = t.events.get_mut(&(tenant.clone(), m.id.clone())) {
                item.archived = Some((m.date.clone(), m.part.clone()));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Health for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.open("ping", "").map(|_| ())
    }
}

#[async_trait]
impl Tenants for MemoryStore {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let t = self.open("settings", tenant.as_str())?;
        Ok(t.settings.get(tenant).copied().unwrap_or_default())
    }

    async fn set_settings(&self, tenant: &TenantId, settings: TenantSettings) -> Result<(), StoreError> {
        let mut t = self.open("set_settings", tenant.as_str())?;
        let current = t.settings.get(tenant).copied().unwrap_or_default();
        let next = current.replaced_by(settings, Timestamp::now()).map_err(|e| StoreError::Refused(e.to_string()))?;
        t.registered.insert(tenant.clone());
        t.settings.insert(tenant.clone(), next);
        Ok(())
    }
}

#[async_trait]
impl TenantRegistry for MemoryStore {
    async fn register(&self, tenant: &TenantId, _now: Timestamp) -> Result<(), StoreError> {
        self.open("register", tenant.as_str())?.registered.insert(tenant.clone());
        Ok(())
    }

    async fn list(&self) -> Result<Vec<TenantId>, StoreError> {
        Ok(self.open("tenants", "")?.registered.iter().cloned().collect())
    }
}

#[async_trait]
impl Catalogs for MemoryStore {
    async fn ensure(&self, tenant: &TenantId, known: &Known) -> Result<(), StoreError> {
        let mut t = self.open("catalog.ensure", tenant.as_str())?;
        for action in &known.actions {
            t.actions.entry((tenant.clone(), action.clone())).or_default();
        }
        for (email, id) in &known.emails {
            t.emails.insert((tenant.clone(), email.clone(), id.clone()));
        }
        Ok(())
    }

    async fn record(&self, tenant: &TenantId, shards: u16, update: &CatalogUpdate) -> Result<(), StoreError> {
        let mut t = self.open("catalog", tenant.as_str())?;
        for (action, n) in &update.actions {
            *t.actions.entry((tenant.clone(), action.clone())).or_default() += n;
        }
        for entry in &update.actors {
            let key = (tenant.clone(), shard_of(&entry.id, shards), entry.id.clone());
            if t.actors.get(&key).is_none_or(|old| old.last_seen <= entry.last_seen) {
                t.actors.insert(key, entry.clone());
            }
        }
        Ok(())
    }

    async fn actions(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CatalogRead<ActionCount>, StoreError> {
        let t = self.open("actions", tenant.as_str())?;
        let all: Vec<ActionCount> = t
            .actions
            .iter()
            .filter(|((tn, a), _)| tn == tenant && after.is_none_or(|x| a.as_str() > x))
            .map(|((_, action), count)| ActionCount { action: action.clone(), count: *count })
            .collect();
        Ok(catalog_read(all, limit))
    }

    async fn category(&self, tenant: &TenantId, category: &str, most: usize) -> Result<Vec<String>, StoreError> {
        let t = self.open("actions", tenant.as_str())?;
        let prefix = format!("{category}.");
        Ok(t.actions
            .keys()
            .filter(|(tn, a)| tn == tenant && a.starts_with(&prefix))
            .map(|(_, a)| a.clone())
            .take(most)
            .collect())
    }

    async fn actors(
        &self,
        tenant: &TenantId,
        shard: u16,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CatalogRead<ActorEntry>, StoreError> {
        let t = self.open("actors", tenant.as_str())?;
        let all: Vec<ActorEntry> = t
            .actors
            .iter()
            .filter(|((tn, s, id), _)| tn == tenant && *s == shard && after.is_none_or(|x| id.as_str() > x))
            .map(|(_, a)| a.clone())
            .collect();
        Ok(catalog_read(all, limit))
    }

    async fn actor_ids(&self, tenant: &TenantId, email: &str, most: usize) -> Result<Vec<String>, StoreError> {
        let t = self.open("actor_ids", email)?;
        let email = email.to_lowercase();
        Ok(t.emails
            .iter()
            .filter(|(tn, e, _)| tn == tenant && *e == email)
            .map(|(_, _, id)| id.clone())
            .take(most)
            .collect())
    }
}

/// The first `limit` of a partition's entries (already in key order), as a store's page.
fn catalog_read<T>(mut all: Vec<T>, limit: usize) -> CatalogRead<T> {
    let more = all.len() > limit;
    all.truncate(limit);
    let read = u32::try_from(all.len()).unwrap_or(u32::MAX);
    CatalogRead { items: all, more, read }
}

impl MemoryStore {
    /// One conditional change of a tenant's archive record, as `owner`.
    fn archive_change(
        &self,
        op: &str,
        tenant: &TenantId,
        owner: &str,
        change: impl FnOnce(&mut ArchiveState) -> bool,
    ) -> Result<(), RegistryError> {
        let mut t = self.open(op, tenant.as_str())?;
        let (state, lease) = t.archive.entry(tenant.clone()).or_default();
        if lease.owner.as_deref() != Some(owner) || !change(state) {
            return Err(RegistryError::Busy(tenant.to_string()));
        }
        Ok(())
    }
}

#[async_trait]
impl ArchiveRegistry for MemoryStore {
    async fn lease(&self, tenant: &TenantId, owner: &str) -> Result<(), RegistryError> {
        let mut t = self.open("lease", tenant.as_str())?;
        // The lease lives on the tenant's registry item, as in DynamoDB.
        t.registered.insert(tenant.clone());
        let (_, lease) = t.archive.entry(tenant.clone()).or_default();
        let now = now_seconds();
        if lease.owner.as_deref().is_some_and(|o| o != owner) && lease.until >= now {
            return Err(RegistryError::Busy(tenant.to_string()));
        }
        *lease = Lease { owner: Some(owner.to_owned()), until: now + LEASE_SECONDS };
        Ok(())
    }

    async fn release(&self, tenant: &TenantId, owner: &str) -> Result<(), StoreError> {
        let mut t = self.open("release", tenant.as_str())?;
        if let Some((_, lease)) = t.archive.get_mut(tenant)
            && lease.owner.as_deref() == Some(owner)
        {
            *lease = Lease::default();
        }
        Ok(())
    }

    async fn state(&self, tenant: &TenantId) -> Result<ArchiveState, StoreError> {
        let t = self.open("state", tenant.as_str())?;
        Ok(t.archive.get(tenant).map(|(s, _)| s.clone()).unwrap_or_default())
    }

    async fn begin(&self, tenant: &TenantId, owner: &str, step: &Pending) -> Result<(), RegistryError> {
        self.archive_change("begin", tenant, owner, |s| {
            let free = s.pending.is_none();
            if free {
                s.pending = Some(Pending { phase: Phase::Manifest, ..step.clone() });
            }
            free
        })
    }

    async fn advance(&self, tenant: &TenantId, owner: &str, step: &Pending) -> Result<(), RegistryError> {
        self.archive_change("advance", tenant, owner, |s| match &mut s.pending {
            Some(p) if p.manifest == step.manifest => {
                p.phase = Phase::Tombstone;
                s.head = Some(ChainHead { seq: step.seq, sha256: step.manifest.clone() });
                true
            }
            _ => false,
        })
    }

    async fn finish(
        &self,
        tenant: &TenantId,
        owner: &str,
        step: &Pending,
        commit_micros_per_row: Option<u64>,
    ) -> Result<(), RegistryError> {
        self.archive_change("finish", tenant, owner, |s| {
            let ours = s.pending.as_ref().is_some_and(|p| p.manifest == step.manifest);
            if ours {
                s.pending = None;
                s.commit_micros_per_row = commit_micros_per_row.or(s.commit_micros_per_row);
            }
            ours
        })
    }
}

impl MemoryStore {
    /// One conditional change of a job: `allowed` says whether its current state allows
    /// it; an absent job allows nothing.
    fn job_change(
        &self,
        op: &str,
        tenant: &TenantId,
        id: &str,
        allowed: impl FnOnce(&Job) -> bool,
        change: impl FnOnce(&mut Job),
    ) -> Result<bool, StoreError> {
        let mut t = self.open(op, id)?;
        match t.jobs.get_mut(&(tenant.clone(), id.to_owned())) {
            Some(job) if allowed(job) => {
                change(job);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl ExportJobs for MemoryStore {
    async fn create(&self, job: &Job) -> Result<(), StoreError> {
        let mut t = self.open("jobs.create", &job.id)?;
        let key = (job.tenant.clone(), job.id.clone());
        if t.jobs.contains_key(&key) {
            return Err(StoreError::Refused("the job exists".into()));
        }
        t.jobs.insert(key, job.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Job>, StoreError> {
        Ok(self.open("jobs.get", id)?.jobs.get(&(tenant.clone(), id.to_owned())).cloned())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        since: Timestamp,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let t = self.open("jobs.list", tenant.as_str())?;
        let lower = id_lower_bound(since);
        let jobs = t
            .jobs
            .iter()
            .rev()
            .filter(|((tn, id), _)| {
                tn == tenant && id.as_str() >= lower.as_str() && before.is_none_or(|b| id.as_str() < b)
            })
            .map(|(_, j)| j.clone())
            .take(limit)
            .collect();
        Ok(jobs)
    }

    async fn dispatch(&self, tenant: &TenantId) -> Result<Dispatch, StoreError> {
        Ok(self.open("jobs.dispatch", tenant.as_str())?.dispatch.get(tenant).cloned().unwrap_or_default())
    }

    async fn put_dispatch(&self, tenant: &TenantId, next: &Dispatch, expected: u64) -> Result<bool, StoreError> {
        let mut t = self.open("jobs.put_dispatch", tenant.as_str())?;
        if t.dispatch.get(tenant).map_or(0, |d| d.version) != expected {
            return Ok(false);
        }
        t.dispatch.insert(tenant.clone(), next.clone());
        Ok(true)
    }

    async fn claim(&self, tenant: &TenantId, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.job_change(
            "jobs.claim",
            tenant,
            id,
            |j| j.claimable(now),
            |j| {
                j.status = Status::Running;
                j.started_at = Some(now);
            },
        )
    }

    async fn succeed(
        &self,
        tenant: &TenantId,
        id: &str,
        produced: Produced,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.job_change("jobs.succeed", tenant, id, Job::can_succeed, |j| {
            j.status = Status::Succeeded;
            j.rows = Some(produced.rows);
            j.bytes = Some(produced.bytes);
            j.truncated = Some(produced.truncated);
            j.files = Some(produced.files);
            j.completed_at = Some(now);
            j.expires_at = Some(now.plus_seconds(DOWNLOAD_HOURS * 3600));
        })
    }

    async fn fail(
        &self,
        tenant: &TenantId,
        id: &str,
        code: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.job_change("jobs.fail", tenant, id, Job::can_fail, |j| {
            j.status = Status::Failed;
            j.error = Some((code.to_owned(), message.to_owned()));
            j.completed_at = Some(now);
        })
    }

    async fn expire(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        self.job_change("jobs.expire", tenant, id, Job::can_expire, |j| j.status = Status::Expired)
    }

    async fn set_plan(&self, tenant: &TenantId, id: &str, parts: &[Range]) -> Result<bool, StoreError> {
        self.job_change(
            "jobs.set_plan",
            tenant,
            id,
            |j| j.status == Status::Running && j.plan.is_none(),
            |j| j.plan = Some(parts.to_vec()),
        )
    }

    async fn parts(&self, tenant: &TenantId, id: &str) -> Result<Vec<Part>, StoreError> {
        let t = self.open("jobs.parts", id)?;
        Ok(t.parts.iter().filter(|((tn, j, _), _)| tn == tenant && j == id).map(|(_, p)| p.clone()).collect())
    }

    async fn claim_part(
        &self,
        tenant: &TenantId,
        id: &str,
        index: u32,
        range: Range,
        now: Timestamp,
    ) -> Result<Option<Part>, StoreError> {
        let mut t = self.open("jobs.claim_part", &format!("{id}/{index}"))?;
        let part = t.parts.entry((tenant.clone(), id.to_owned(), index)).or_insert_with(|| Part::new(index, range));
        if !part.claimable(now) {
            return Ok(None);
        }
        part.status = PartStatus::Running;
        part.attempt += 1;
        part.started_at = Some(now);
        part.writing = 0;
        Ok(Some(part.clone()))
    }

    async fn save_part(&self, tenant: &TenantId, id: &str, part: &Part) -> Result<bool, StoreError> {
        let mut t = self.open("jobs.save_part", &format!("{id}/{}", part.index))?;
        match t.parts.get_mut(&(tenant.clone(), id.to_owned(), part.index)) {
            Some(p) if p.attempt == part.attempt && p.status == PartStatus::Running => {
                let (attempt, started_at) = (p.attempt, p.started_at);
                *p = Part { attempt, started_at, ..part.clone() };
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
