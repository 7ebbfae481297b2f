//! Event items: the conditional put, reads by id, index pages, counts, and the archive's
//! batched existence checks and tombstones.

use crate::dynamodb::expr::{Expr, decides, expression, ts_bounds};
use crate::dynamodb::item::{self, attr};
use crate::dynamodb::keys;
use crate::dynamodb::values::{Item, key, s};
use crate::dynamodb::{Table, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::event::StoredEvent;
use audit::domain::filter::{Filter, Order};
use audit::domain::plan::{EventKey, Partition, Path};
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::{CountPage, EventArchiver, EventIndex, EventReader, EventWriter, IndexPage, IndexQuery};
use audit::ports::{FETCH_MAX, Lookup, Moved, PutOutcome, StoreError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, Select};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};

/// BatchGetItem's limit.
const GET_BATCH: usize = FETCH_MAX;
/// Tombstone writes in flight: one UpdateItem per event, since a batch cannot carry a
/// condition (and IAM cannot tell a batch's puts from its deletes).
const TOMBSTONE_CONCURRENCY: usize = 32;

type Tombstoning<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

fn event_key(tenant: &TenantId, id: &str) -> Item {
    key(&keys::event_pk(tenant, id), keys::EVENT_SK)
}

/// An event item that failed its check, named by its tenant and id (from its key).
fn altered(tenant: &TenantId, it: &Item, e: &item::ItemError) -> StoreError {
    let pk = item::string(it, keys::PK).map(String::as_str).unwrap_or_default();
    let prefix = keys::event_pk(tenant, "");
    StoreError::Altered {
        tenant: tenant.to_string(),
        event: pk.strip_prefix(prefix.as_str()).unwrap_or(pk).to_owned(),
        why: e.to_string(),
    }
}

impl Table {
    /// A Query of one index partition over the filter's time range, with its expression.
    fn index_query(
        &self,
        tenant: &TenantId,
        path: Path,
        partition: &Partition,
        filter: &Filter,
        expr: &Expr,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let index = keys::index(path);
        let (lo, hi) = ts_bounds(filter.from, filter.to);
        let mut names = expr.names.clone();
        names.insert("#ipk".into(), index.pk.into());
        names.insert("#ts".into(), keys::TS.into());
        let mut values = expr.values.clone();
        values.insert(":ipk".into(), s(&keys::partition_key(tenant, path, partition)));
        values.insert(":lo".into(), s(&lo));
        values.insert(":hi".into(), s(&hi));
        self.client
            .query()
            .table_name(&self.name)
            .index_name(index.name)
            .key_condition_expression("#ipk = :ipk AND #ts BETWEEN :lo AND :hi")
            .set_filter_expression(expr.text.clone())
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
    }

    /// The ExclusiveStartKey of a query resuming after `after`: what DynamoDB's own
    /// LastEvaluatedKey would have been there (the index keys and the table's).
    fn start_key(tenant: &TenantId, q: &IndexQuery<'_>) -> Option<Item> {
        q.after.map(|after| {
            let mut start = event_key(tenant, &after.id);
            start.insert(keys::index(q.path).pk.to_owned(), s(&keys::partition_key(tenant, q.path, q.partition)));
            start.insert(keys::TS.to_owned(), s(&keys::ts(after)));
            start
        })
    }

    /// The key DynamoDB stopped at, where the next page starts.
    fn last_evaluated(last: Option<&Item>) -> Result<Option<EventKey>, StoreError> {
        last.map(item::event_key).transpose().map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// One event's tombstone: every attribute but the identity, `dedup`, `hash` and `ts`
    /// removed, the day and part set. The condition lets a repeat through and stops an
    /// id already archived elsewhere; an absent item is left absent.
    async fn tombstone_one(&self, tenant: &TenantId, m: &Moved) -> Result<(), StoreError> {
        let removes: Vec<String> = (0..item::TOMBSTONE_REMOVES.len()).map(|i| format!("#r{i}")).collect();
        let mut names: HashMap<String, String> =
            removes.iter().zip(item::TOMBSTONE_REMOVES).map(|(k, v)| (k.clone(), v.to_owned())).collect();
        names.extend([
            ("#pk".to_owned(), keys::PK.to_owned()),
            ("#ad".to_owned(), attr::ARCHIVED_DATE.to_owned()),
            ("#ap".to_owned(), attr::ARCHIVED_PART.to_owned()),
        ]);
        let update = format!("SET #ad = :d, #ap = :p REMOVE {}", removes.join(", "));
        let run = retry(&self.backoff, "UpdateItem tombstone", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(event_key(tenant, &m.id)))
                .update_expression(&update)
                .condition_expression(
                    "attribute_exists(#pk) AND (attribute_not_exists(#ad) OR (#ad = :d AND #ap = :p))",
                )
                .set_expression_attribute_names(Some(names.clone()))
                .expression_attribute_values(":d", s(&m.date))
                .expression_attribute_values(":p", s(&m.part))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
        })
        .await;
        match run.result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => match c.item() {
                    // Gone already (deleted by an archive from before tombstones).
                    None => Ok(()),
                    Some(old) => {
                        let at = item::archived_at(old).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        let at = at.map(|a| format!("{}/{}", a.date, a.part)).unwrap_or_default();
                        Err(StoreError::Corrupt(format!("{} is archived in {at} already", m.id)))
                    }
                },
                _ => Err(store_error(&err)),
            },
        }
    }

    /// Reads `keys` by BatchGetItem into `found` (by `pk`), retrying what it leaves
    /// unprocessed; returns the keys of items it did not find. A tombstone is not found.
    async fn batch_get(
        &self,
        tenant: &TenantId,
        keys_left: Vec<Item>,
        consistent: bool,
        found: &mut HashMap<String, StoredEvent>,
    ) -> Result<Vec<Item>, StoreError> {
        let asked: Vec<String> = keys_left.iter().filter_map(|k| item::string(k, keys::PK).ok().cloned()).collect();
        let fields = [keys::PK, keys::TS, attr::DOC, attr::HASH, attr::RECEIVED_AT];
        for it in self.batch_read("BatchGetItem events", keys_left, consistent, &fields).await? {
            let Ok(pk) = item::string(&it, keys::PK) else { continue };
            if item::holds_event(&it) {
                let event = item::from_item(&it).map_err(|e| altered(tenant, &it, &e))?;
                found.insert(pk.clone(), event);
            }
        }
        let tenant_keys = asked.into_iter().filter(|pk| !found.contains_key(pk));
        Ok(tenant_keys.map(|pk| key(&pk, keys::EVENT_SK)).collect())
    }
}

#[async_trait]
impl EventWriter for Table {
    async fn put(&self, stored: &StoredEvent, shard: u16, dedup: &str) -> Result<PutOutcome, StoreError> {
        let item = item::to_item(stored, shard, dedup);
        let run = retry(&self.backoff, "PutItem event", || {
            self.client
                .put_item()
                .table_name(&self.name)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
        })
        .await;
        match run.result {
            Ok(_) => Ok(PutOutcome::Created),
            Err(err) => {
                let existing = match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(c)) => c.item(),
                    _ => return Err(store_error(&err)),
                };
                let same = existing.and_then(item::dedup_of).as_deref() == Some(dedup);
                Ok(match (same, run.ambiguous) {
                    // An earlier attempt of ours went through before its answer was lost.
                    (true, true) => PutOutcome::Created,
                    (true, false) => PutOutcome::Duplicate,
                    (false, _) => PutOutcome::Conflict,
                })
            }
        }
    }
}

#[async_trait]
impl EventReader for Table {
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Lookup, StoreError> {
        let item = self.get_one("GetItem event", event_key(tenant, id)).await?;
        let Some(found) = item.as_ref() else { return Ok(Lookup::Absent) };
        let corrupt = |e: item::ItemError| altered(tenant, found, &e);
        match item::archived_at(found).map_err(corrupt)? {
            Some(at) => Ok(Lookup::Archived(at)),
            None => item::from_item(found).map(|e| Lookup::Online(Box::new(e))).map_err(corrupt),
        }
    }

    /// One BatchGetItem of the doc, hash and receipt time, eventually consistent; the ids
    /// it did not find are read again consistently, since an index can list an event a
    /// moment before an eventually consistent read of the table sees it.
    async fn fetch(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<Option<StoredEvent>>, StoreError> {
        let mut found: HashMap<String, StoredEvent> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(GET_BATCH) {
            let keys: Vec<Item> = chunk.iter().map(|id| event_key(tenant, id)).collect();
            let missing = self.batch_get(tenant, keys, false, &mut found).await?;
            if !missing.is_empty() {
                // What is still missing is archived, or was never stored.
                self.batch_get(tenant, missing, true, &mut found).await?;
            }
        }
        Ok(ids.iter().map(|id| found.remove(&keys::event_pk(tenant, id))).collect())
    }

    async fn exist(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<bool>, StoreError> {
        // Whether an event is online: a tombstone the archive left is not.
        let mut found = HashSet::new();
        let keys: Vec<Item> = ids.iter().map(|id| event_key(tenant, id)).collect();
        let fields = [keys::PK, attr::ARCHIVED_DATE];
        for it in self.batch_read("BatchGetItem archive check", keys, true, &fields).await? {
            if !it.contains_key(attr::ARCHIVED_DATE)
                && let Ok(pk) = item::string(&it, keys::PK)
            {
                found.insert(pk.clone());
            }
        }
        Ok(ids.iter().map(|id| found.contains(&keys::event_pk(tenant, id))).collect())
    }
}

#[async_trait]
impl EventIndex for Table {
    fn decides(&self, filter: &Filter) -> bool {
        decides(filter)
    }

    async fn page(&self, q: &IndexQuery<'_>) -> Result<IndexPage, StoreError> {
        let expr = expression(q.filter);
        let start = Self::start_key(q.tenant, q);
        let limit = i32::try_from(q.limit.max(1)).unwrap_or(i32::MAX);
        let run = retry(&self.backoff, "Query page", || {
            self.index_query(q.tenant, q.path, q.partition, q.filter, &expr)
                .scan_index_forward(q.order == Order::Asc)
                .limit(limit)
                .set_exclusive_start_key(start.clone())
                .send()
        })
        .await;
        let out = run.result.map_err(|e| store_error(&e))?;
        let read = u32::try_from(out.scanned_count()).unwrap_or(0);
        let last_evaluated = Self::last_evaluated(out.last_evaluated_key.as_ref())?;
        let whole = keys::index(q.path).whole();
        let entries = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|i| item::entry(i, whole).map_err(|e| altered(q.tenant, i, &e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IndexPage { entries, last_evaluated, read })
    }

    async fn count(&self, q: &IndexQuery<'_>) -> Result<CountPage, StoreError> {
        let expr = expression(q.filter);
        let start = Self::start_key(q.tenant, q);
        let limit = i32::try_from(q.limit.max(1)).unwrap_or(i32::MAX);
        let run = retry(&self.backoff, "Query count", || {
            self.index_query(q.tenant, q.path, q.partition, q.filter, &expr)
                .select(Select::Count)
                .limit(limit)
                .set_exclusive_start_key(start.clone())
                .send()
        })
        .await;
        let out = run.result.map_err(|e| store_error(&e))?;
        let count = u64::try_from(out.count()).unwrap_or(0);
        let read = u32::try_from(out.scanned_count()).unwrap_or(0);
        Ok(CountPage { count, last_evaluated: Self::last_evaluated(out.last_evaluated_key.as_ref())?, read })
    }

    async fn earliest(
        &self,
        tenant: &TenantId,
        path: Path,
        partition: &Partition,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<EventKey>, StoreError> {
        // An empty range holds nothing, and DynamoDB refuses the BETWEEN it would make (its
        // upper bound below its lower): the archive asks about the days after the last one
        // it moved, up to its cutoff, and there are none once it has reached the cutoff.
        if from >= to {
            return Ok(None);
        }
        let filter = Filter::range(from, to);
        let run = retry(&self.backoff, "Query earliest", || {
            self.index_query(tenant, path, partition, &filter, &Expr::default())
                .projection_expression("#ts")
                .limit(1)
                .send()
        })
        .await;
        let out = run.result.map_err(|e| store_error(&e))?;
        Self::last_evaluated(out.items().first())
    }
}

#[async_trait]
impl EventArchiver for Table {
    /// One conditional UpdateItem per event, several in flight.
    async fn tombstone(&self, tenant: &TenantId, moved: &[Moved]) -> Result<(), StoreError> {
        // Boxed and collected first so the stream's type names no closure lifetime (a
        // caller's future must be provably Send, e.g. under tokio::spawn).
        let writes: Vec<Tombstoning<'_>> =
            moved.iter().map(|m| -> Tombstoning<'_> { Box::pin(self.tombstone_one(tenant, m)) }).collect();
        let results: Vec<Result<(), StoreError>> =
            futures::stream::iter(writes).buffer_unordered(TOMBSTONE_CONCURRENCY).collect().await;
        results.into_iter().collect()
    }
}
