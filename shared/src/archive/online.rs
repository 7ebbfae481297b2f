//! The archive's reads and deletes of online items: which days are due, one day's events
//! in (occurred_at, id) order merged across write shards, and batched deletes.

use crate::event::StoredEvent;
use crate::filter::Filter;
use crate::index_stream::IndexStream;
use crate::item;
use crate::keys::{self, BY_TIME};
use crate::planner::Expr;
use crate::retry::retry;
use crate::store::{Store, StoreError};
use crate::tenant::TenantId;
use crate::timestamp::Timestamp;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, KeysAndAttributes, WriteRequest};
use futures::StreamExt;
use std::collections::HashMap;

/// Items per Query page of a day read, across all shards together: bounds the memory a
/// merge holds whatever the shard count.
const PAGE_ITEMS_TOTAL: usize = 2_000;
/// BatchWriteItem's limit.
const DELETE_BATCH: usize = 25;
/// BatchGetItem's limit.
const GET_BATCH: usize = 100;
/// Delete batches in flight.
const DELETE_CONCURRENCY: usize = 8;

type BatchFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// The earliest UTC day with online events before `before` (a `YYYY-MM-DD`), after day
/// `after` if given.
///
/// # Errors
/// [`StoreError`].
pub async fn earliest_day(
    store: &Store,
    tenant: &TenantId,
    shards: u16,
    after: Option<&str>,
    before: &str,
) -> Result<Option<String>, StoreError> {
    // `ts` = `{occurred_at}#{id}`: a bare day sorts before every ts of that day, and the
    // day followed by U+10FFFF after every one.
    let lo = after.map_or_else(|| "0".to_owned(), |d| format!("{d}\u{10FFFF}"));
    let mut earliest: Option<String> = None;
    for shard in 0..shards.max(1) {
        let run = retry(store.backoff(), "Query earliest day", || {
            store
                .client()
                .query()
                .table_name(store.table())
                .index_name(BY_TIME.name)
                .key_condition_expression("#pk = :pk AND #ts BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", BY_TIME.pk)
                .expression_attribute_names("#ts", keys::TS)
                .expression_attribute_values(":pk", s(&keys::time_pk(tenant, shard)))
                .expression_attribute_values(":lo", s(&lo))
                .expression_attribute_values(":hi", s(before))
                .projection_expression("#ts")
                .limit(1)
                .send()
        })
        .await;
        let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
        if let Some(ts) = out.items().first().and_then(|it| item::string(it, keys::TS).ok()) {
            let day = ts.get(..10).unwrap_or_default().to_owned();
            if earliest.as_ref().is_none_or(|e| day < *e) {
                earliest = Some(day);
            }
        }
    }
    Ok(earliest)
}

/// One tenant-day's online events in (occurred_at, id) order, merged across shards.
pub struct DayStream<'a> {
    inner: IndexStream<'a>,
}

impl<'a> DayStream<'a> {
    #[must_use]
    pub fn new(store: &'a Store, tenant: &TenantId, shards: u16, day: &str) -> Self {
        let from = Timestamp::parse(&format!("{day}T00:00:00Z")).unwrap_or(Timestamp::MIN);
        let filter = Filter::range(from, from.plus_seconds(86_400));
        let partitions = (0..shards.max(1)).map(|s| keys::time_pk(tenant, s)).collect();
        Self { inner: IndexStream::new(store, BY_TIME, partitions, &filter, Expr::default(), true, PAGE_ITEMS_TOTAL) }
    }

    /// The next event, or `None` at the end of the day.
    ///
    /// # Errors
    /// [`StoreError`], including an item whose content does not match its hash.
    pub async fn next(&mut self) -> Result<Option<StoredEvent>, StoreError> {
        match self.inner.next().await? {
            Some(it) => Ok(Some(item::from_item(&it)?)),
            None => Ok(None),
        }
    }
}

/// Which of `ids` still exist in the table, read consistently from the base table (an
/// index can briefly still list an item the archive just deleted).
///
/// # Errors
/// [`StoreError`].
pub async fn existing(store: &Store, tenant: &TenantId, ids: &[&str]) -> Result<Vec<bool>, StoreError> {
    let mut found = std::collections::HashSet::new();
    for chunk in ids.chunks(GET_BATCH) {
        let mut keys_left: Vec<HashMap<String, AttributeValue>> =
            chunk.iter().map(|id| event_key(tenant, id)).collect();
        let mut attempt = 0;
        while !keys_left.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys_left.clone()))
                .consistent_read(true)
                .projection_expression("#pk")
                .expression_attribute_names("#pk", keys::PK)
                .build()
                .map_err(|e| StoreError::Refused(e.to_string()))?;
            let run = retry(store.backoff(), "BatchGetItem archive check", || {
                store.client().batch_get_item().request_items(store.table(), request.clone()).send()
            })
            .await;
            let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
            for it in out.responses().and_then(|r| r.get(store.table())).into_iter().flatten() {
                if let Ok(pk) = item::string(it, keys::PK) {
                    found.insert(pk.clone());
                }
            }
            keys_left = out
                .unprocessed_keys()
                .and_then(|u| u.get(store.table()))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if !keys_left.is_empty() {
                attempt += 1;
                if attempt >= store.backoff().attempts {
                    return Err(StoreError::Unavailable("BatchGetItem kept returning unprocessed keys".into()));
                }
                tokio::time::sleep(store.backoff().delay(attempt)).await;
            }
        }
    }
    Ok(ids.iter().map(|id| found.contains(&keys::event_pk(tenant, id))).collect())
}

fn event_key(tenant: &TenantId, id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(keys::PK.into(), s(&keys::event_pk(tenant, id))), (keys::SK.into(), s(keys::EVENT_SK))])
}

/// Deletes the events with `ids`, 25 per BatchWriteItem with several in flight, retrying
/// unprocessed items until each is gone. Deleting an absent item is a no-op, so a rerun
/// may repeat this freely.
///
/// # Errors
/// [`StoreError`] when a batch cannot be completed after retries.
pub async fn delete(store: &Store, tenant: &TenantId, ids: &[String]) -> Result<u64, StoreError> {
    // Boxed and collected first so the stream's type names no closure lifetime (a caller's
    // future must be provably Send, e.g. under tokio::spawn).
    let batches: Vec<BatchFuture<'_>> = ids
        .chunks(DELETE_BATCH)
        .map(|chunk| -> BatchFuture<'_> { Box::pin(delete_batch(store, tenant, chunk)) })
        .collect();
    let results: Vec<Result<(), StoreError>> =
        futures::stream::iter(batches).buffer_unordered(DELETE_CONCURRENCY).collect().await;
    results.into_iter().collect::<Result<Vec<()>, StoreError>>()?;
    Ok(ids.len() as u64)
}

async fn delete_batch(store: &Store, tenant: &TenantId, ids: &[String]) -> Result<(), StoreError> {
    let mut requests: Vec<WriteRequest> = ids
        .iter()
        .map(|id| {
            let del = DeleteRequest::builder().set_key(Some(event_key(tenant, id))).build();
            del.map(|d| WriteRequest::builder().delete_request(d).build())
                .map_err(|e| StoreError::Refused(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let mut attempt = 0;
    while !requests.is_empty() {
        let run = retry(store.backoff(), "BatchWriteItem archive delete", || {
            store.client().batch_write_item().request_items(store.table(), requests.clone()).send()
        })
        .await;
        let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
        requests = out.unprocessed_items().and_then(|u| u.get(store.table())).cloned().unwrap_or_default();
        if !requests.is_empty() {
            attempt += 1;
            if attempt >= store.backoff().attempts {
                return Err(StoreError::Unavailable(format!("{} deletes left unprocessed", requests.len())));
            }
            tokio::time::sleep(store.backoff().delay(attempt)).await;
        }
    }
    Ok(())
}
