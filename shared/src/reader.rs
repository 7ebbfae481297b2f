//! Reads for the console: pages merged in exact order across streams, counts, single
//! events, and the action and actor catalogs. Queries and GetItems only, never a Scan.

use crate::cursor::{BadCursor, CursorKey, Position, StreamPos};
use crate::event::StoredEvent;
use crate::filter::{ActionMatch, Filter, Order, Parsed};
use crate::item::{self, Item};
use crate::keys::{self, Index};
use crate::planner::{self, Expr, Path, Resolved};
use crate::retry::retry;
use crate::store::{Store, StoreError};
use crate::tenant::{TenantId, TenantSettings};
use crate::timestamp::Timestamp;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};

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

/// Largest `Limit` of one page fetch (DynamoDB stops at 1 MB anyway).
const MAX_FETCH: i32 = 1_000;

/// What reading a page cost, for the benchmarks and the response headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub requests: u32,
    pub items_read: u32,
}

pub struct Page {
    pub items: Vec<StoredEvent>,
    pub next_cursor: Option<String>,
    pub stats: ReadStats,
}

/// The first instant that is surely still online: the archive moves whole UTC days once
/// they are older than the window.
#[must_use]
pub fn online_start(now: Timestamp, hot_days: u32) -> Timestamp {
    let day = now.plus_seconds(-i64::from(hot_days) * 86_400).day();
    Timestamp::parse(&format!("{day}T00:00:00Z")).unwrap_or(Timestamp::MIN)
}

/// A merged stream: one index partition read in order.
struct Stream {
    partition: String,
    after: Option<String>,
    buf: VecDeque<(String, Item)>,
    next_key: Option<HashMap<String, AttributeValue>>,
    started: bool,
    exhausted: bool,
    /// `Limit` of the next fetch: grows when a filter leaves fetches short, so a sparse
    /// unindexed filter costs a few large reads rather than many small ones.
    limit: usize,
}

pub struct Reader<'a> {
    pub store: &'a Store,
    pub key: &'a CursorKey,
    pub default_hot_days: u32,
}

impl Reader<'_> {
    fn check_window(&self, filter: &Filter, settings: TenantSettings, now: Timestamp) -> Result<(), ReadError> {
        let start = online_start(now, settings.hot_days.unwrap_or(self.default_hot_days));
        if filter.from < start { Err(ReadError::Archived(start)) } else { Ok(()) }
    }

    /// One page of events.
    ///
    /// # Errors
    /// [`ReadError`].
    pub async fn list(&self, tenant: &TenantId, parsed: &Parsed, now: Timestamp) -> Result<Page, ReadError> {
        let settings = self.store.tenant_settings(tenant).await?;
        let mut filter = parsed.filter.clone();
        let asc = parsed.order == Order::Asc;
        let path = planner::choose(&filter);
        let mut stats = ReadStats::default();
        let positions = match &parsed.cursor {
            Some(c) => {
                let pos = self.key.decode(c, tenant.as_str(), &filter.digest())?;
                if pos.asc != asc || pos.i != path.index().name {
                    return Err(BadCursor.into());
                }
                filter.from = Timestamp::from_micros(pos.r.0).map_err(|_| BadCursor)?;
                filter.to = Timestamp::from_micros(pos.r.1).map_err(|_| BadCursor)?;
                pos.s
            }
            None => {
                let resolved = resolve(self.store, tenant, settings, path, &filter, &mut stats).await?;
                planner::partitions(path, tenant, settings.shards, &filter, &resolved)
                    .into_iter()
                    .map(|p| StreamPos { p, a: None, d: false })
                    .collect()
            }
        };
        self.check_window(&filter, settings, now)?;
        let expr = planner::expression(&filter);
        let live = positions.iter().filter(|s| !s.d).count().max(1);
        // Enough per stream for its share of the page and the look-ahead that tells
        // whether a next page exists, without reading far past what the page returns.
        let per_fetch = (parsed.limit + 1).div_ceil(live) + usize::from(live > 1);
        let mut streams: Vec<Stream> = positions
            .into_iter()
            .map(|s| Stream {
                partition: s.p,
                after: s.a,
                buf: VecDeque::new(),
                next_key: None,
                started: false,
                exhausted: s.d,
                limit: per_fetch,
            })
            .collect();
        let index = path.index();
        let mut items = Vec::with_capacity(parsed.limit);
        let mut taken: Vec<Option<String>> = vec![None; streams.len()];
        while items.len() < parsed.limit {
            let needs: Vec<usize> =
                (0..streams.len()).filter(|&i| streams[i].buf.is_empty() && !streams[i].exhausted).collect();
            if !needs.is_empty() {
                let fetches = needs.iter().map(|&i| {
                    let s = &streams[i];
                    self.fetch(tenant, index, &filter, &expr, asc, s, i32::try_from(s.limit).unwrap_or(MAX_FETCH))
                });
                let results = futures::future::join_all(fetches).await;
                for (&i, r) in needs.iter().zip(results) {
                    let (got, next, read) = r?;
                    stats.requests += 1;
                    stats.items_read += read;
                    let s = &mut streams[i];
                    if got.len() < s.limit && next.is_some() {
                        s.limit = (s.limit * 8).min(MAX_FETCH as usize);
                    }
                    s.started = true;
                    s.buf.extend(got);
                    s.exhausted = next.is_none();
                    s.next_key = next;
                }
                continue;
            }
            let best = (0..streams.len()).filter(|&i| !streams[i].buf.is_empty()).reduce(|a, b| {
                let (ta, tb) = (&streams[a].buf[0].0, &streams[b].buf[0].0);
                if (ta <= tb) == asc { a } else { b }
            });
            let Some(i) = best else { break };
            if let Some((ts, it)) = streams[i].buf.pop_front() {
                items.push(item::from_item(&it).map_err(StoreError::from)?);
                taken[i] = Some(ts);
            }
        }
        let more = streams.iter().any(|s| !s.buf.is_empty() || !s.exhausted);
        let next_cursor = more.then(|| {
            let s = streams
                .iter()
                .zip(taken)
                .map(|(s, t)| {
                    // Past the last item taken; or, with nothing left buffered, past the
                    // last item DynamoDB evaluated (filtered-out items are not read again).
                    let evaluated =
                        s.next_key.as_ref().and_then(|k| k.get(keys::TS)).and_then(|v| v.as_s().ok()).cloned();
                    let a =
                        if s.buf.is_empty() && evaluated.is_some() { evaluated } else { t.or_else(|| s.after.clone()) };
                    StreamPos { p: s.partition.clone(), a, d: s.buf.is_empty() && s.exhausted }
                })
                .collect();
            let pos = Position {
                t: tenant.to_string(),
                f: filter.digest(),
                asc,
                i: index.name.to_owned(),
                r: (filter.from.micros(), filter.to.micros()),
                s,
            };
            self.key.encode(&pos)
        });
        Ok(Page { items, next_cursor, stats })
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        tenant: &TenantId,
        index: Index,
        filter: &Filter,
        expr: &Expr,
        asc: bool,
        s: &Stream,
        limit: i32,
    ) -> Result<(Vec<(String, Item)>, Option<HashMap<String, AttributeValue>>, u32), StoreError> {
        let start = if s.started {
            s.next_key.clone()
        } else {
            s.after.as_ref().map(|after| {
                let id = after.split_once('#').map_or("", |(_, id)| id);
                HashMap::from([
                    (index.pk.to_owned(), AttributeValue::S(s.partition.clone())),
                    (keys::TS.to_owned(), AttributeValue::S(after.clone())),
                    (keys::PK.to_owned(), AttributeValue::S(keys::event_pk(tenant, id))),
                    (keys::SK.to_owned(), AttributeValue::S(keys::EVENT_SK.to_owned())),
                ])
            })
        };
        let run = retry(self.store.backoff(), "Query page", || {
            index_query(self.store, index, &s.partition, filter, expr)
                .scan_index_forward(asc)
                .limit(limit)
                .set_exclusive_start_key(start.clone())
                .send()
        })
        .await;
        let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
        let read = u32::try_from(out.scanned_count()).unwrap_or(0);
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|it| (item::string(&it, keys::TS).cloned().unwrap_or_default(), it))
            .collect();
        Ok((items, out.last_evaluated_key, read))
    }

    /// Counts matching events, stopping at `max`.
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
        let settings = self.store.tenant_settings(tenant).await?;
        self.check_window(filter, settings, now)?;
        let path = planner::choose(filter);
        let mut stats = ReadStats::default();
        let resolved = resolve(self.store, tenant, settings, path, filter, &mut stats).await?;
        let expr = planner::expression(filter);
        let index = path.index();
        let mut total: u64 = 0;
        for partition in planner::partitions(path, tenant, settings.shards, filter, &resolved) {
            let mut start = None;
            loop {
                let run = retry(self.store.backoff(), "Query count", || {
                    index_query(self.store, index, &partition, filter, &expr)
                        .select(Select::Count)
                        .set_exclusive_start_key(start.clone())
                        .send()
                })
                .await;
                let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
                total += u64::try_from(out.count()).unwrap_or(0);
                if total >= max {
                    return Ok((max, false));
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok((total, true))
    }

    /// One event by id, if online.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        self.store.get_event(tenant, id).await
    }

    /// The tenant's actions with their counts, optionally those containing `q`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn actions(&self, tenant: &TenantId, q: Option<&str>) -> Result<Vec<ActionCount>, StoreError> {
        let settings = self.store.tenant_settings(tenant).await?;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for shard in 0..settings.shards.max(1) {
            for it in self.store.query_partition(&keys::action_catalog_pk(tenant, shard), None).await? {
                let Ok(action) = item::string(&it, keys::SK) else { continue };
                let n = it.get("count").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
                *counts.entry(action.clone()).or_default() += n;
            }
        }
        let q = q.map(str::to_lowercase);
        Ok(counts
            .into_iter()
            .filter(|(a, _)| q.as_ref().is_none_or(|q| a.contains(q.as_str())))
            .map(|(action, count)| ActionCount { action, count })
            .collect())
    }

    /// The tenant's actors as last seen, most recent first; `q` is a name or email prefix.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn actors(&self, tenant: &TenantId, q: Option<&str>) -> Result<Vec<ActorEntry>, StoreError> {
        let settings = self.store.tenant_settings(tenant).await?;
        let mut latest: HashMap<String, ActorEntry> = HashMap::new();
        let q = q.map(str::to_lowercase);
        for shard in 0..settings.shards.max(1) {
            for it in self.store.query_partition(&keys::actor_catalog_pk(tenant, shard), None).await? {
                let s = |n: &str| it.get(n).and_then(|v| v.as_s().ok()).cloned();
                let (Some(id), Some(last_seen)) = (s(keys::SK), s("last_seen")) else { continue };
                if let Some(q) = &q {
                    let hit = [s("name_lc"), s("email_lc")].iter().flatten().any(|v| v.starts_with(q.as_str()));
                    if !hit {
                        continue;
                    }
                }
                let entry = ActorEntry {
                    id: id.clone(),
                    kind: s("type").unwrap_or_default(),
                    name: s("name"),
                    email: s("email"),
                    last_seen,
                };
                match latest.get(&id) {
                    Some(old) if old.last_seen >= entry.last_seen => {}
                    _ => {
                        latest.insert(id, entry);
                    }
                }
            }
        }
        let mut out: Vec<ActorEntry> = latest.into_values().collect();
        out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}

/// Turns actor values into actor ids and categories into actions, for the key path.
pub(crate) async fn resolve(
    store: &Store,
    tenant: &TenantId,
    settings: TenantSettings,
    path: Path,
    filter: &Filter,
    stats: &mut ReadStats,
) -> Result<Resolved, StoreError> {
    let mut r = Resolved::default();
    match path {
        Path::Actor => {
            for a in &filter.actors {
                r.actor_ids.push(a.clone());
                let pk = keys::email_pk(tenant, a);
                for it in store.query_partition(&pk, None).await? {
                    stats.requests += 1;
                    r.actor_ids.extend(item::string(&it, keys::SK).ok().cloned());
                }
            }
        }
        Path::Action => {
            for a in &filter.actions {
                match a {
                    ActionMatch::Exact(x) => r.actions.push(x.clone()),
                    ActionMatch::Category(c) => {
                        for shard in 0..settings.shards.max(1) {
                            let pk = keys::action_catalog_pk(tenant, shard);
                            let found = store.query_partition(&pk, Some(&format!("{c}."))).await?;
                            r.actions.extend(found.iter().filter_map(|it| item::string(it, keys::SK).ok().cloned()));
                        }
                    }
                }
            }
        }
        Path::Resource | Path::Time => {}
    }
    Ok(r)
}

/// A Query of one index partition over the filter's time range, with its expression.
pub(crate) fn index_query(
    store: &Store,
    index: Index,
    partition: &str,
    filter: &Filter,
    expr: &Expr,
) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
    let (lo, hi) = ts_bounds(filter);
    let mut names = expr.names.clone();
    names.insert("#ipk".into(), index.pk.into());
    names.insert("#ts".into(), keys::TS.into());
    let mut values = expr.values.clone();
    values.insert(":ipk".into(), AttributeValue::S(partition.to_owned()));
    values.insert(":lo".into(), AttributeValue::S(lo));
    values.insert(":hi".into(), AttributeValue::S(hi));
    store
        .client()
        .query()
        .table_name(store.table())
        .index_name(index.name)
        .key_condition_expression("#ipk = :ipk AND #ts BETWEEN :lo AND :hi")
        .set_filter_expression(expr.text.clone())
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
}

fn ts_bounds(filter: &Filter) -> (String, String) {
    // `ts` is `{occurred_at}#{id}`: every ts of `from` sorts after the bare time, and the
    // last microsecond before `to` followed by U+10FFFF sorts after every id.
    let last = Timestamp::from_micros(filter.to.micros() - 1).unwrap_or(filter.to);
    (filter.from.to_string(), format!("{last}#\u{10FFFF}"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionCount {
    pub action: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_online_window_starts_at_a_utc_midnight() {
        let now = Timestamp::parse("2026-11-20T12:34:56Z").unwrap_or(Timestamp::MIN);
        assert_eq!(online_start(now, 90).to_string(), "2026-08-22T00:00:00.000000Z");
    }
}
