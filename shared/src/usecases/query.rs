//! Reads for the console (contract section 2): pages merged in exact order across
//! partitions, counts, single events (online, or from the archive through their
//! tombstone), and the action and actor catalogs. Index reads and gets only, never a
//! scan.

use crate::domain::catalog::{ActionCount, ActorEntry, merge_actions, merge_actors};
use crate::domain::cursor::{BadCursor, CursorKey, Position, StreamPos};
use crate::domain::error::{Code, ErrorBody};
use crate::domain::event::StoredEvent;
use crate::domain::filter::{ActionMatch, Filter, Order, Parsed};
use crate::domain::manifest;
use crate::domain::plan::{self, EventKey, Partition, Path, Resolved};
use crate::domain::retention::online_start;
use crate::domain::tenant::{TenantId, TenantSettings};
use crate::domain::timestamp::Timestamp;
use crate::formats::parquet_read::{self, FooterError};
use crate::ports::{BlobError, BlobStore, Catalogs, EventIndex, EventReader, IndexQuery, Lookup, StoreError, Tenants};
use crate::usecases::merge::{Fetch, IndexRead, Merge};
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
        Self { events, index, tenants, catalogs, archive: archive.clone(), cursor_key, default_hot_days }
    }

    fn check_window(&self, filter: &Filter, settings: TenantSettings, now: Timestamp) -> Result<(), ReadError> {
        let start = online_start(now, settings.hot_days.unwrap_or(self.default_hot_days));
        if filter.from < start { Err(ReadError::Archived(start)) } else { Ok(()) }
    }

    /// One page of events, and the cursor of the next.
    ///
    /// # Errors
    /// [`ReadError`].
    pub async fn list(&self, tenant: &TenantId, parsed: &Parsed, now: Timestamp) -> Result<Page, ReadError> {
        let settings = self.tenants.settings(tenant).await?;
        let mut filter = parsed.filter.clone();
        let order = parsed.order;
        let path = plan::choose(&filter);
        let mut stats = ReadStats::default();
        let positions = match &parsed.cursor {
            Some(c) => {
                let pos = self.cursor_key.decode(c, tenant.as_str(), &filter.digest())?;
                if pos.order != order || pos.path != path {
                    return Err(BadCursor.into());
                }
                filter.from = Timestamp::from_micros(pos.range.0).map_err(|_| BadCursor)?;
                filter.to = Timestamp::from_micros(pos.range.1).map_err(|_| BadCursor)?;
                pos.streams
            }
            None => {
                let (_, partitions) =
                    plan_partitions(&*self.catalogs, tenant, settings, &filter, &mut stats.requests).await?;
                partitions.into_iter().map(|partition| StreamPos { partition, after: None, done: false }).collect()
            }
        };
        self.check_window(&filter, settings, now)?;
        let live = positions.iter().filter(|s| !s.done).count().max(1);
        // Enough per stream for its share of the page and the look-ahead that tells
        // whether a next page exists, without reading far past what the page returns.
        let first = (parsed.limit + 1).div_ceil(live) + usize::from(live > 1);
        let fetch = Fetch { first, most: MAX_FETCH };
        let read = IndexRead { index: &*self.index, tenant, path, filter: &filter, order, fetch };
        let streams = positions.into_iter().map(|s| read.stream(s.partition, s.after, s.done)).collect();
        let mut merge = Merge::new(streams, order);
        let mut items = Vec::with_capacity(parsed.limit);
        let mut taken: Vec<Option<EventKey>> = vec![None; merge.streams().len()];
        while items.len() < parsed.limit {
            let Some((i, event)) = merge.next().await? else { break };
            taken[i] = Some(EventKey::new(event.event.occurred_at, &event.event.id));
            items.push(event);
        }
        let streams = merge.streams();
        for s in streams {
            stats.requests += s.requests;
            stats.items_read += s.items_read;
        }
        let next_cursor = streams.iter().any(|s| !s.done()).then(|| {
            let streams = streams
                .iter()
                .zip(taken)
                .map(|(s, t)| StreamPos { partition: s.partition().clone(), after: s.resume_at(t), done: s.done() })
                .collect();
            let pos = Position {
                tenant: tenant.to_string(),
                filter: filter.digest(),
                order,
                path,
                range: (filter.from.micros(), filter.to.micros()),
                streams,
            };
            self.cursor_key.encode(&pos)
        });
        Ok(Page { items, next_cursor, stats })
    }

    /// Counts matching events, stopping at `max`: `(count, exact)`.
    ///
    /// # Errors
    /// [`ReadError`].
    pub async fn count(
        &self,
        tenant: &TenantId,
        filter: &Filter,
        max: u64,
        now: Timestamp,
    ) -> Result<(u64, bool), ReadError> {
        let settings = self.tenants.settings(tenant).await?;
        self.check_window(filter, settings, now)?;
        let (path, partitions) = plan_partitions(&*self.catalogs, tenant, settings, filter, &mut 0).await?;
        let mut total: u64 = 0;
        for partition in &partitions {
            let mut after = None;
            loop {
                let q = IndexQuery {
                    tenant,
                    path,
                    partition,
                    filter,
                    order: Order::Asc,
                    after: after.as_ref(),
                    limit: MAX_FETCH,
                };
                let page = self.index.count(&q).await?;
                total += page.count;
                if total >= max {
                    return Ok((max, false));
                }
                after = page.last_evaluated;
                if after.is_none() {
                    break;
                }
            }
        }
        Ok((total, true))
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
            Lookup::Online(event) => return Ok(Some(Found { event: *event, archived: false })),
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

    /// The tenant's actions with their counts, optionally those containing `q`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn actions(&self, tenant: &TenantId, q: Option<&str>) -> Result<Vec<ActionCount>, StoreError> {
        let settings = self.tenants.settings(tenant).await?;
        let mut all = Vec::new();
        for shard in 0..settings.shards.max(1) {
            all.extend(self.catalogs.actions(tenant, shard, None).await?);
        }
        Ok(merge_actions(all, q))
    }

    /// The tenant's actors as last seen, most recent first; `q` is a name or email prefix.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn actors(&self, tenant: &TenantId, q: Option<&str>) -> Result<Vec<ActorEntry>, StoreError> {
        let settings = self.tenants.settings(tenant).await?;
        let mut all = Vec::new();
        for shard in 0..settings.shards.max(1) {
            all.extend(self.catalogs.actors(tenant, shard).await?);
        }
        Ok(merge_actors(all, q))
    }
}

/// The path a filter takes and every partition it reads: actor emails resolved to the
/// actor ids that used them and action categories to the catalog's actions, counting the
/// catalog reads in `requests`.
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
                r.actor_ids.extend(catalogs.actor_ids(tenant, a).await?);
                *requests += 1;
            }
        }
        Path::Action => {
            for a in &filter.actions {
                match a {
                    ActionMatch::Exact(x) => r.actions.push(x.clone()),
                    ActionMatch::Category(c) => {
                        for shard in 0..settings.shards.max(1) {
                            let found = catalogs.actions(tenant, shard, Some(&format!("{c}."))).await?;
                            r.actions.extend(found.into_iter().map(|a| a.action));
                            *requests += 1;
                        }
                    }
                }
            }
        }
        Path::Resource | Path::Time => {}
    }
    Ok((path, plan::partitions(path, settings.shards, filter, &r)))
}
