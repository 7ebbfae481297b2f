//! Reads for the console (contract section 2): pages merged in exact order across
//! partitions, counts, single events (online, or from the archive through their
//! tombstone), and the action and actor catalogs. Index reads and gets only, never a
//! scan.

use crate::domain::budget::{Budget, Budgets, Reserve};
use crate::domain::catalog::{ActionCount, ActorEntry, action_matches, actor_matches, combine_actions, combine_actors};
use crate::domain::cursor::{BadCursor, CatalogPosition, CursorKey, Position, StreamPos};
use crate::domain::error::{Code, ErrorBody};
use crate::domain::event::StoredEvent;
use crate::domain::filter::{ActionMatch, CatalogQuery, Filter, Order, Parsed};
use crate::domain::manifest;
use crate::domain::plan::{self, EventKey, Partition, Path, Resolved};
use crate::domain::retention::online_start;
use crate::domain::tenant::{TenantId, TenantSettings};
use crate::domain::timestamp::Timestamp;
use crate::formats::parquet_read::{self, FooterError};
use crate::ports::{BlobError, BlobStore, Catalogs, EventIndex, EventReader, FETCH_MAX, IndexQuery, Lookup};
use crate::ports::{StoreError, Tenants};
use crate::usecases::merge::{Fetch, IndexRead, Merge, PartitionStream, owned_by, with_events};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

/// A read that cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The cursor is not valid for this tenant, these filters and this order.
    #[error(transparent)]
    Cursor(#[from] BadCursor),
    /// `from` lies before the tenant's online window.
    #[error("the range reaches past the online window, which starts at {0}")]
    Archived(Timestamp),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReadError {
    /// The contract's error body for this failure.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        match self {
            ReadError::Cursor(_) => {
                ErrorBody::new(Code::InvalidRequest, "the cursor is invalid, or was issued for other filters")
                    .with_details(&[json!({"field": "cursor", "reason": "invalid_cursor"})])
            }
            ReadError::Archived(start) => ErrorBody::new(
                Code::RangeArchived,
                format!("events before {start} may be archived; use an export for this range"),
            ),
            ReadError::Store(e) => e.body(),
        }
    }
}

/// Largest `limit` of one partition read (DynamoDB stops at 1 MB anyway).
const MAX_FETCH: usize = 1_000;
/// `limit` of one read of a count (DynamoDB stops at 1 MB: about 4,000 index entries).
const COUNT_FETCH: usize = 25_000;

/// What reading a page cost, for the benchmarks and the response headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub requests: u32,
    pub items_read: u32,
}

/// An event read by id, and whether it came from the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub event: StoredEvent,
    pub archived: bool,
}

#[derive(Debug)]
pub struct Page {
    pub items: Vec<StoredEvent>,
    pub next_cursor: Option<String>,
    pub stats: ReadStats,
    /// The page stopped early, at its read budget or its byte budget: it may hold fewer
    /// than `limit` items, even none, and `next_cursor` goes on.
    pub budget_exhausted: bool,
}

/// An answer of `GET /v1/events/count`, as the API writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count {
    pub count: u64,
    /// Every matching event was counted (`max` not reached, budget not spent).
    pub exact: bool,
    pub budget_exhausted: bool,
}

/// A page of a catalog, as the API writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogPage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    pub budget_exhausted: bool,
}

/// What the read API reads from.
#[derive(Clone)]
pub struct Query {
    pub events: Arc<dyn EventReader>,
    pub index: Arc<dyn EventIndex>,
    pub tenants: Arc<dyn Tenants>,
    pub catalogs: Arc<dyn Catalogs>,
    /// The archive bucket, where an archived event is read by id.
    pub archive: Arc<dyn BlobStore>,
    pub cursor_key: CursorKey,
    /// `AUDIT_HOT_DAYS`, for tenants without their own window.
    pub default_hot_days: u32,
    /// How much work one request may do.
    pub budgets: Budgets,
}

impl Query {
    /// The read API on one store that holds events, tenants and catalogs, and the
    /// archive bucket.
    pub fn on<S: EventReader + EventIndex + Tenants + Catalogs + 'static, B: BlobStore + 'static>(
        store: &Arc<S>,
        archive: &Arc<B>,
        cursor_key: CursorKey,
        default_hot_days: u32,
    ) -> Self {
        let (events, index, tenants, catalogs) = (store.clone(), store.clone(), store.clone(), store.clone());
        Self {
            events,
            index,
            tenants,
            catalogs,
            archive: archive.clone(),
            cursor_key,
            default_hot_days,
            budgets: Budgets::default(),
        }
    }

    fn check_window(&self, filter: &Filter, settings: TenantSettings, now: Timestamp) -> Result<(), ReadError> {
        let start = online_start(now, settings.hot_days.unwrap_or(self.default_hot_days));
        if filter.from < start { Err(ReadError::Archived(start)) } else { Ok(()) }
    }

    /// One page of events, and the cursor of the next. The page's index entries are
    /// merged in order first; the events of the ones it takes are then fetched in one
    /// batch, and checked against every filter and the tenant. It stops at `limit`, at
    /// its read budget or before its JSON passes its byte budget ([`Budgets`]).
    ///
    /// # Errors
    /// [`ReadError`].
    pub async fn list(&self, tenant: &TenantId, parsed: &Parsed, now: Timestamp) -> Result<Page, ReadError> {
        let settings = self.tenants.settings(tenant).await?;
        let mut filter = parsed.filter.clone();
        let order = parsed.order;
        let mut stats = ReadStats::default();
        let (path, positions) = match &parsed.cursor {
            Some(c) => {
                let pos = self.cursor_key.decode(c, tenant.as_str(), &filter.digest())?;
                // The plan reads the time index when a key path would merge too many
                // partitions; the (signed) cursor says which it chose.
                if pos.order != order || (pos.path != plan::choose(&filter) && pos.path != Path::Time) {
                    return Err(BadCursor.into());
                }
                filter.from = Timestamp::from_micros(pos.range.0).map_err(|_| BadCursor)?;
                filter.to = Timestamp::from_micros(pos.range.1).map_err(|_| BadCursor)?;
                (pos.path, pos.streams)
            }
            None => {
                let (path, partitions) =
                    plan_partitions(&*self.catalogs, tenant, settings, &filter, &mut stats.requests).await?;
                let streams = partitions.into_iter().map(|partition| StreamPos { partition, after: None, done: false });
                (path, streams.collect())
            }
        };
        self.check_window(&filter, settings, now)?;
        let live = positions.iter().filter(|s| !s.done).count().max(1);
        let budget = Budget::new(self.budgets.list.for_streams(live, 1));
        // Enough per stream for its share of the page and the look-ahead that tells
        // whether a next page exists, without reading far past what the page returns.
        let first = (parsed.limit + 1).div_ceil(live) + usize::from(live > 1);
        let fetch = Fetch { first, most: MAX_FETCH };
        // Every stream leaves one request and a page of items for the fetch.
        let reserve = Reserve { requests: 1, items: parsed.limit };
        let read = IndexRead {
            index: &*self.index,
            tenant,
            path,
            filter: &filter,
            order,
            fetch,
            budget: Some(&budget),
            reserve,
        };
        let streams = positions.into_iter().map(|s| read.stream(s.partition, s.after, s.done)).collect();
        let mut merge = Merge::new(streams, order);
        let n = merge.streams().len();
        let mut taken: Vec<Option<EventKey>> = vec![None; n];
        // Streams whose entries this page took from the merge but did not use.
        let mut unused = vec![false; n];
        let mut items = Vec::with_capacity(parsed.limit);
        let mut bytes = 0usize;
        'page: while items.len() < parsed.limit {
            let mut round = Vec::new();
            while round.len() < parsed.limit - items.len() {
                match merge.next().await? {
                    Some(entry) => round.push(entry),
                    None => break,
                }
            }
            if round.is_empty() {
                break;
            }
            let missing = round.iter().filter(|(_, e)| e.event.is_none()).count();
            if missing > 0 {
                if !budget.take(1, missing) {
                    round.iter().for_each(|(i, _)| unused[*i] = true);
                    break;
                }
                stats.requests += 1;
                stats.items_read += u32::try_from(missing).unwrap_or(u32::MAX);
            }
            let mut round = with_events(&*self.events, tenant, round).await?.into_iter();
            while let Some((i, event)) = round.next() {
                let key = event.as_ref().map(|e| EventKey::new(e.event.occurred_at, &e.event.id));
                let keep = event.filter(|e| owned_by(tenant, e) && filter.matches(&e.event));
                if let Some(e) = keep {
                    let size = serde_json::to_vec(&e.to_json()).map_or(0, |v| v.len()) + 1;
                    if !items.is_empty() && bytes + size > self.budgets.page_bytes {
                        budget.exhaust();
                        unused[i] = true;
                        round.for_each(|(j, _)| unused[j] = true);
                        break 'page;
                    }
                    bytes += size;
                    items.push(e);
                }
                // An entry whose event is gone (archived a moment ago) is passed too.
                if let Some(k) = key.or_else(|| taken[i].clone()) {
                    taken[i] = Some(k);
                }
            }
        }
        let streams = merge.streams();
        for s in streams {
            stats.requests += s.requests;
            stats.items_read += s.items_read;
        }
        let positions: Vec<StreamPos> = streams
            .iter()
            .zip(taken)
            .zip(unused)
            .map(|((s, t), unused)| {
                // A stream whose taken entries were not all used resumes at the last one
                // used, before the rest.
                let after = if unused { t.or_else(|| s.started_after()) } else { s.resume_at(t) };
                StreamPos { partition: s.partition().clone(), after, done: s.done() && !unused }
            })
            .collect();
        let next_cursor = positions.iter().any(|s| !s.done).then(|| {
            let pos = Position {
                tenant: tenant.to_string(),
                filter: filter.digest(),
                order,
                path,
                range: (filter.from.micros(), filter.to.micros()),
                streams: positions,
            };
            self.cursor_key.encode(&pos)
        });
        let budget_exhausted = budget.exhausted() && next_cursor.is_some();
        Ok(Page { items, next_cursor, stats, budget_exhausted })
    }

    /// Counts matching events, stopping at `max` or at the budget ([`Budgets::count`]).
    /// The index counts by itself when it decides every filter; otherwise each entry's
    /// event is fetched and checked.
    ///
    /// # Errors
    /// [`ReadError`].
    pub async fn count(
        &self,
        tenant: &TenantId,
        filter: &Filter,
        max: u64,
        now: Timestamp,
    ) -> Result<Count, ReadError> {
        let settings = self.tenants.settings(tenant).await?;
        self.check_window(filter, settings, now)?;
        let (path, partitions) = plan_partitions(&*self.catalogs, tenant, settings, filter, &mut 0).await?;
        let budget = Budget::new(self.budgets.count.for_streams(partitions.len(), 0));
        let (n, stopped) = if self.index.decides(filter) {
            self.count_in_index(tenant, path, &partitions, filter, max, &budget).await?
        } else {
            self.count_fetched(tenant, path, partitions, filter, max, &budget).await?
        };
        Ok(if n >= max {
            Count { count: max, exact: false, budget_exhausted: false }
        } else {
            Count { count: n, exact: !stopped, budget_exhausted: stopped }
        })
    }

    /// Counts in the index alone: the count, and whether the budget stopped it.
    async fn count_in_index(
        &self,
        tenant: &TenantId,
        path: Path,
        partitions: &[Partition],
        filter: &Filter,
        max: u64,
        budget: &Budget,
    ) -> Result<(u64, bool), ReadError> {
        let mut total: u64 = 0;
        for partition in partitions {
            let mut after = None;
            loop {
                let Some(limit) = budget.grant(COUNT_FETCH, Reserve::default()) else {
                    return Ok((total, true));
                };
                let q = IndexQuery { tenant, path, partition, filter, order: Order::Asc, after: after.as_ref(), limit };
                let page = self.index.count(&q).await;
                budget.refund(limit, page.as_ref().map_or(0, |p| p.read as usize));
                let page = page?;
                total += page.count;
                if total >= max {
                    return Ok((total, false));
                }
                after = page.last_evaluated;
                if after.is_none() {
                    break;
                }
            }
        }
        Ok((total, false))
    }

    /// Counts by fetching each entry's event and checking it (for filters the index does
    /// not decide, such as `q`).
    async fn count_fetched(
        &self,
        tenant: &TenantId,
        path: Path,
        partitions: Vec<Partition>,
        filter: &Filter,
        max: u64,
        budget: &Budget,
    ) -> Result<(u64, bool), ReadError> {
        let fetch = Fetch { first: FETCH_MAX, most: FETCH_MAX };
        let reserve = Reserve { requests: 1, items: FETCH_MAX };
        let read = IndexRead {
            index: &*self.index,
            tenant,
            path,
            filter,
            order: Order::Asc,
            fetch,
            budget: Some(budget),
            reserve,
        };
        let mut merge = read.merge(partitions);
        let mut total: u64 = 0;
        loop {
            let mut batch = Vec::with_capacity(FETCH_MAX);
            while batch.len() < FETCH_MAX {
                match merge.next().await? {
                    Some(entry) => batch.push(entry),
                    None => break,
                }
            }
            let missing = batch.iter().filter(|(_, e)| e.event.is_none()).count();
            if missing > 0 && !budget.take(1, missing) {
                return Ok((total, true));
            }
            for (_, event) in with_events(&*self.events, tenant, batch).await? {
                if event.is_some_and(|e| owned_by(tenant, &e) && filter.matches(&e.event)) {
                    total += 1;
                }
            }
            if total >= max {
                return Ok((total, false));
            }
            if merge.blocked() {
                return Ok((total, true));
            }
            if merge.streams().iter().all(PartitionStream::done) {
                return Ok((total, false));
            }
        }
    }

    /// One event by id: online, or read from the part its tombstone names (the footer,
    /// then one ranged read of one row group), its hash recomputed from the row.
    ///
    /// # Errors
    /// [`StoreError`]; [`StoreError::Corrupt`] when the archive does not hold the row
    /// the tombstone promises, or the row does not match its hash.
    pub async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Found>, StoreError> {
        let at = match self.events.get(tenant, id).await? {
            Lookup::Absent => return Ok(None),
            Lookup::Online(event) => {
                return Ok(owned_by(tenant, &event).then_some(Found { event: *event, archived: false }));
            }
            Lookup::Archived(at) => at,
        };
        let key = format!("{}{}", manifest::day_prefix(tenant.as_str(), &at.date), at.part);
        let row = parquet_read::remote_row(&*self.archive, &key, &at.key).await.map_err(|e| match e {
            FooterError::Blob(BlobError::NotFound(_)) => {
                StoreError::Corrupt(format!("{key}, named by {id}'s tombstone, is absent"))
            }
            FooterError::Blob(b) => StoreError::Unavailable(b.to_string()),
            FooterError::NotParquet(why) => StoreError::Corrupt(why),
        })?;
        let row =
            row.ok_or_else(|| StoreError::Corrupt(format!("{key} has no row for {id}, which its tombstone names")))?;
        let event = row.to_stored().map_err(|e| StoreError::Corrupt(format!("{key}, row of {id}: {e}")))?;
        if event.event.id != id || event.event.tenant_id != *tenant {
            return Err(StoreError::Corrupt(format!("{key}: the row found for {id} is another event's")));
        }
        Ok(Some(Found { event, archived: true }))
    }

    /// A page of the tenant's actions in name order, with their counts; `q` keeps those
    /// containing it.
    ///
    /// # Errors
    /// [`ReadError`] (a cursor for another tenant, catalog or `q` included).
    pub async fn actions(&self, tenant: &TenantId, q: &CatalogQuery) -> Result<CatalogPage<ActionCount>, ReadError> {
        let after = self.catalog_after(tenant, "actions", q)?;
        let budget = Budget::new(self.budgets.catalog);
        let mut page = CatalogPager::new(q.limit, after);
        while page.wants_more() {
            let Some(limit) = budget.grant(page.read_size(), Reserve::default()) else { break };
            let read = self.catalogs.actions(tenant, page.after(), limit).await;
            budget.refund(limit, read.as_ref().map_or(0, |r| r.read as usize));
            let read = read?;
            let ends = vec![(read.more, read.items.last().map(|a| a.action.clone()))];
            let entries = combine_actions(read.items).into_iter().filter(|(_, a)| action_matches(a, q.q.as_deref()));
            page.add(&ends, entries.collect());
        }
        Ok(page.finish(&budget, |after| self.catalog_cursor(tenant, "actions", q, after)))
    }

    /// A page of the tenant's actors in id order, each as last seen; `q` is a name or
    /// email prefix.
    ///
    /// # Errors
    /// [`ReadError`] (a cursor for another tenant, catalog or `q` included).
    pub async fn actors(&self, tenant: &TenantId, q: &CatalogQuery) -> Result<CatalogPage<ActorEntry>, ReadError> {
        let settings = self.tenants.settings(tenant).await?;
        let after = self.catalog_after(tenant, "actors", q)?;
        let shards = settings.shards.max(1);
        let budget = Budget::new(self.budgets.catalog.for_streams(usize::from(shards), 0));
        let mut page = CatalogPager::new(q.limit, after);
        while page.wants_more() {
            let mut reads = Vec::new();
            // Each shard's share of the page, and one more to tell whether it goes on.
            let share = page.read_size().div_ceil(usize::from(shards)) + 1;
            for shard in 0..shards {
                let Some(limit) = budget.grant(share, Reserve::default()) else { break };
                let read = self.catalogs.actors(tenant, shard, page.after(), limit).await;
                budget.refund(limit, read.as_ref().map_or(0, |r| r.read as usize));
                reads.push(read?);
            }
            if reads.len() < usize::from(shards) {
                break;
            }
            let ends: Vec<_> = reads.iter().map(|r| (r.more, r.items.last().map(|a| a.id.clone()))).collect();
            let entries = combine_actors(reads.into_iter().flat_map(|r| r.items));
            page.add(&ends, entries.into_iter().filter(|(_, a)| actor_matches(a, q.q.as_deref())).collect());
        }
        Ok(page.finish(&budget, |after| self.catalog_cursor(tenant, "actors", q, after)))
    }

    fn catalog_after(&self, tenant: &TenantId, catalog: &str, q: &CatalogQuery) -> Result<Option<String>, ReadError> {
        let Some(c) = &q.cursor else { return Ok(None) };
        Ok(Some(self.cursor_key.decode_catalog(c, tenant.as_str(), catalog, q.q.as_deref())?.after))
    }

    fn catalog_cursor(&self, tenant: &TenantId, catalog: &str, q: &CatalogQuery, after: String) -> String {
        let pos = CatalogPosition { tenant: tenant.to_string(), catalog: catalog.to_owned(), q: q.q.clone(), after };
        self.cursor_key.encode_catalog(&pos)
    }
}

/// A catalog page put together from reads of one or more shards in key order. A key is
/// certain once every shard that may hold more has read past it; the page takes certain
/// keys until it is full, and the next page starts after the last key it covered.
struct CatalogPager<T> {
    limit: usize,
    after: Option<String>,
    items: Vec<T>,
    read_size: usize,
    more: bool,
}

impl<T> CatalogPager<T> {
    fn new(limit: usize, after: Option<String>) -> Self {
        Self { limit, after, items: Vec::new(), read_size: limit + 1, more: true }
    }

    fn wants_more(&self) -> bool {
        self.more && self.items.len() < self.limit
    }

    fn after(&self) -> Option<&str> {
        self.after.as_deref()
    }

    fn read_size(&self) -> usize {
        self.read_size
    }

    /// Adds one round of reads: `ends` holds, per shard read, whether it may hold more
    /// and its last key; `entries` are the round's entries combined across shards, in
    /// key order, those matching the page's `q`.
    fn add(&mut self, ends: &[(bool, Option<String>)], entries: Vec<(String, T)>) {
        // Keys up to the smallest last key of a shard with more are certain.
        let bound: Option<String> = ends.iter().filter(|(more, _)| *more).filter_map(|(_, last)| last.clone()).min();
        let certain: Vec<(String, T)> =
            entries.into_iter().filter(|(k, _)| bound.as_ref().is_none_or(|b| k <= b)).collect();
        let room = self.limit - self.items.len();
        let found = certain.len();
        for (key, item) in certain.into_iter().take(room) {
            self.after = Some(key);
            self.items.push(item);
        }
        match bound {
            // More certain entries than room: the next page starts after the last taken.
            Some(_) | None if found > room => self.more = true,
            // Everything up to the bound is covered.
            Some(b) => {
                self.after = Some(b);
                self.more = true;
                if found == 0 {
                    // A sparse `q`: read on in larger steps.
                    self.read_size = (self.read_size * 8).min(1_000);
                }
            }
            None => self.more = false,
        }
    }

    fn finish(self, budget: &Budget, cursor: impl FnOnce(String) -> String) -> CatalogPage<T> {
        let next_cursor = if self.more { self.after.map(cursor) } else { None };
        let budget_exhausted = budget.exhausted() && next_cursor.is_some();
        CatalogPage { items: self.items, next_cursor, budget_exhausted }
    }
}

/// The path a filter takes and every partition it reads: actor emails resolved to the
/// actor ids that used them and action categories to the catalog's actions, counting the
/// catalog reads in `requests`. A key path that would merge more than
/// [`plan::MAX_STREAMS`] partitions reads the time index instead.
///
/// # Errors
/// [`StoreError`] when a catalog cannot be read.
pub async fn plan_partitions(
    catalogs: &dyn Catalogs,
    tenant: &TenantId,
    settings: TenantSettings,
    filter: &Filter,
    requests: &mut u32,
) -> Result<(Path, Vec<Partition>), StoreError> {
    let path = plan::choose(filter);
    let mut r = Resolved::default();
    match path {
        Path::Actor => {
            for a in &filter.actors {
                r.actor_ids.push(a.clone());
                r.actor_ids.extend(catalogs.actor_ids(tenant, a, plan::MAX_STREAMS + 1).await?);
                *requests += 1;
            }
        }
        Path::Action => {
            for a in &filter.actions {
                match a {
                    ActionMatch::Exact(x) => r.actions.push(x.clone()),
                    ActionMatch::Category(c) => {
                        r.actions.extend(catalogs.category(tenant, c, plan::MAX_STREAMS + 1).await?);
                        *requests += 1;
                    }
                }
            }
        }
        Path::Resource | Path::Time => {}
    }
    let partitions = plan::partitions(path, settings.shards, filter, &r);
    if partitions.len() > plan::MAX_STREAMS && path != Path::Time {
        return Ok((Path::Time, plan::partitions(Path::Time, settings.shards, filter, &r)));
    }
    Ok((path, partitions))
}
