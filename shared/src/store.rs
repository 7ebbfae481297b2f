//! The DynamoDB adapter for events, tenants and catalogs.

use crate::event::{Event, StoredEvent};
use crate::item::{self, Item, attr};
use crate::keys;
use crate::retry::{Backoff, Class, classify, retry};
use crate::tenant::{TenantId, TenantSettings};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most email directory entries a process remembers having written.
const EMAILS_KNOWN_MAX: usize = 100_000;
/// Catalog updates in flight per batch.
const CATALOG_CONCURRENCY: usize = 16;

type CatalogFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// How long a process trusts its copy of a tenant's settings.
const SETTINGS_TTL: Duration = Duration::from_secs(60);

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttled or unavailable after every retry: the caller may try again later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A request DynamoDB refused for good (a bug or a misconfiguration).
    #[error("store request refused: {0}")]
    Refused(String),
    /// A stored item that is not a valid event.
    #[error(transparent)]
    Corrupt(#[from] item::ItemError),
}

impl StoreError {
    pub(crate) fn from_sdk<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> Self
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::fmt::Debug,
        R: crate::retry::HasStatus + std::fmt::Debug,
    {
        let text = match err {
            aws_sdk_dynamodb::error::SdkError::ServiceError(s) => {
                format!("{}: {}", s.err().code().unwrap_or("?"), s.err().message().unwrap_or(""))
            }
            other => format!("{other:?}"),
        };
        if classify(err) == Class::Permanent { StoreError::Refused(text) } else { StoreError::Unavailable(text) }
    }
}

/// What became of one conditional event write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// The same (tenant, id) with the same content was already stored.
    Duplicate,
    /// The same (tenant, id) is stored with different content; it was left untouched.
    Conflict,
}

/// The table: events, the tenant registry and the catalogs.
pub struct Store {
    client: Client,
    table: String,
    backoff: Backoff,
    settings: Mutex<HashMap<TenantId, (Instant, TenantSettings)>>,
    registered: Mutex<HashSet<TenantId>>,
    /// (email directory key, actor id) pairs this process has written.
    emails_known: Mutex<HashSet<(String, String)>>,
}

impl Store {
    #[must_use]
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            backoff: Backoff::default(),
            settings: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashSet::new()),
            emails_known: Mutex::new(HashSet::new()),
        }
    }

    /// Replaces the retry policy (the default suits Lambda's 30 s budget).
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    #[must_use]
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes an event unless its (tenant, id) exists; never overwrites.
    ///
    /// # Errors
    /// [`StoreError`] when the write could not be made after retries.
    pub async fn put_event(&self, stored: &StoredEvent, shard: u16, dedup: &str) -> Result<PutOutcome, StoreError> {
        let item = item::to_item(stored, shard, dedup);
        let run = retry(&self.backoff, "PutItem event", || {
            self.client
                .put_item()
                .table_name(&self.table)
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
                    _ => return Err(StoreError::from_sdk(&err)),
                };
                let same =
                    existing.and_then(|i| i.get(attr::DEDUP)).and_then(|v| v.as_s().ok()) == Some(&dedup.to_owned());
                Ok(match (same, run.ambiguous) {
                    // An earlier attempt of ours went through before its answer was lost.
                    (true, true) => PutOutcome::Created,
                    (true, false) => PutOutcome::Duplicate,
                    (false, _) => PutOutcome::Conflict,
                })
            }
        }
    }

    /// The event with `id`, if it is online.
    ///
    /// # Errors
    /// [`StoreError`] on failure or a corrupt item.
    pub async fn get_event(&self, tenant: &TenantId, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let run = retry(&self.backoff, "GetItem event", || {
            self.client
                .get_item()
                .table_name(&self.table)
                .key(keys::PK, AttributeValue::S(keys::event_pk(tenant, id)))
                .key(keys::SK, AttributeValue::S(keys::EVENT_SK.into()))
                .consistent_read(true)
                .send()
        })
        .await;
        let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
        out.item().map(item::from_item).transpose().map_err(StoreError::from)
    }

    /// The tenant's settings, cached for a minute.
    ///
    /// # Errors
    /// [`StoreError`] when the registry cannot be read.
    pub async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let cached = self.settings.lock().ok().and_then(|m| m.get(tenant).copied());
        if let Some((_, s)) = cached.filter(|(at, _)| at.elapsed() < SETTINGS_TTL) {
            return Ok(s);
        }
        let run = retry(&self.backoff, "GetItem tenant", || {
            self.client
                .get_item()
                .table_name(&self.table)
                .key(keys::PK, AttributeValue::S(keys::TENANTS_PK.into()))
                .key(keys::SK, AttributeValue::S(tenant.to_string()))
                .send()
        })
        .await;
        let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
        let settings = out.item().map(settings_from_item).unwrap_or_default();
        if let Ok(mut m) = self.settings.lock() {
            m.insert(tenant.clone(), (Instant::now(), settings));
        }
        Ok(settings)
    }

    /// Adds the tenant to the registry the archive walks, once per process.
    ///
    /// # Errors
    /// [`StoreError`] when the registry cannot be written.
    pub async fn register_tenant(&self, tenant: &TenantId, now: &str) -> Result<(), StoreError> {
        if self.registered.lock().is_ok_and(|s| s.contains(tenant)) {
            return Ok(());
        }
        let run = retry(&self.backoff, "UpdateItem tenant", || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key(keys::PK, AttributeValue::S(keys::TENANTS_PK.into()))
                .key(keys::SK, AttributeValue::S(tenant.to_string()))
                .update_expression("SET created_at = if_not_exists(created_at, :now)")
                .expression_attribute_values(":now", AttributeValue::S(now.to_owned()))
                .send()
        })
        .await;
        run.result.map_err(|e| StoreError::from_sdk(&e))?;
        if let Ok(mut s) = self.registered.lock() {
            s.insert(tenant.clone());
        }
        Ok(())
    }

    /// Sets a tenant's settings. Shards can only grow: readers query shards
    /// `0..shards`, so shrinking would hide the items written to the higher ones.
    ///
    /// # Errors
    /// [`StoreError::Refused`] when `shards` is below the current count.
    pub async fn set_tenant_settings(&self, tenant: &TenantId, settings: TenantSettings) -> Result<(), StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S(keys::TENANTS_PK.into()))
            .key(keys::SK, AttributeValue::S(tenant.to_string()))
            .condition_expression("attribute_not_exists(shards) OR shards <= :s")
            .expression_attribute_values(":s", AttributeValue::N(settings.shards.to_string()));
        req = match settings.hot_days {
            Some(days) => req
                .update_expression("SET shards = :s, hot_days = :d")
                .expression_attribute_values(":d", AttributeValue::N(days.to_string())),
            None => req.update_expression("SET shards = :s REMOVE hot_days"),
        };
        req.send().await.map_err(|e| StoreError::from_sdk(&e))?;
        if let Ok(mut m) = self.settings.lock() {
            m.remove(tenant);
        }
        Ok(())
    }

    /// Counts newly created events into the action and actor catalogs.
    ///
    /// One update per distinct action and actor of the batch, on a random shard of the
    /// tenant's catalog partitions so no counter item runs hot.
    ///
    /// # Errors
    /// [`StoreError`] when an update fails after retries.
    pub async fn record_catalog(&self, tenant: &TenantId, shards: u16, created: &[&Event]) -> Result<(), StoreError> {
        let mut actions: BTreeMap<&str, u64> = BTreeMap::new();
        let mut actors: BTreeMap<&str, &Event> = BTreeMap::new();
        for e in created {
            *actions.entry(e.action.as_str()).or_default() += 1;
            let latest = actors.entry(e.actor.id.as_str()).or_insert(e);
            if e.occurred_at > latest.occurred_at {
                *latest = e;
            }
        }
        let shard = rand::random_range(0..shards.max(1));
        let action_updates = actions.into_iter().map(|(action, n)| -> CatalogFuture<'_> {
            Box::pin(async move {
                let run = retry(&self.backoff, "UpdateItem action catalog", || {
                    self.client
                        .update_item()
                        .table_name(&self.table)
                        .key(keys::PK, AttributeValue::S(keys::action_catalog_pk(tenant, shard)))
                        .key(keys::SK, AttributeValue::S(action.to_owned()))
                        .update_expression("ADD #c :n")
                        .expression_attribute_names("#c", "count")
                        .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
                        .send()
                })
                .await;
                run.result.map(|_| ()).map_err(|e| StoreError::from_sdk(&e))
            })
        });
        let actor_updates = actors
            .into_iter()
            .map(|(id, e)| -> CatalogFuture<'_> { Box::pin(self.record_actor(tenant, shard, id, e)) });
        // Collected first so the stream's item type names no closure lifetime (the handler
        // future must be provably Send).
        let updates: Vec<CatalogFuture<'_>> = action_updates.chain(actor_updates).collect();
        let results: Vec<Result<(), StoreError>> =
            futures::stream::iter(updates).buffer_unordered(CATALOG_CONCURRENCY).collect().await;
        results.into_iter().collect()
    }

    async fn record_actor(&self, tenant: &TenantId, shard: u16, id: &str, e: &Event) -> Result<(), StoreError> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let mut values: HashMap<String, AttributeValue> =
            HashMap::from([(":t".into(), s(e.actor.kind.as_str())), (":seen".into(), s(&e.occurred_at.to_string()))]);
        let mut sets = vec!["#type = :t", "last_seen = :seen"];
        let mut removes = Vec::new();
        for (field, value) in [("name", &e.actor.name), ("email", &e.actor.email)] {
            match value {
                Some(v) => {
                    values.insert(format!(":{field}"), s(v));
                    values.insert(format!(":{field}_lc"), s(&v.to_lowercase()));
                }
                None => removes.push(field),
            }
        }
        if values.contains_key(":name") {
            sets.extend(["#name = :name", "name_lc = :name_lc"]);
        } else {
            removes.push("name_lc");
        }
        if values.contains_key(":email") {
            sets.extend(["email = :email", "email_lc = :email_lc"]);
        } else {
            removes.push("email_lc");
        }
        let removes: Vec<&str> = removes.into_iter().map(|r| if r == "name" { "#name" } else { r }).collect();
        let mut expr = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let run = retry(&self.backoff, "UpdateItem actor catalog", || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key(keys::PK, AttributeValue::S(keys::actor_catalog_pk(tenant, shard)))
                .key(keys::SK, AttributeValue::S(id.to_owned()))
                .update_expression(&expr)
                .condition_expression("attribute_not_exists(last_seen) OR last_seen <= :seen")
                .expression_attribute_names("#type", "type")
                .expression_attribute_names("#name", "name")
                .set_expression_attribute_values(Some(values.clone()))
                .send()
        })
        .await;
        match run.result {
            Ok(_) => {}
            // The catalog already holds a newer sighting of this actor.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(StoreError::from_sdk(&e)),
        }
        let email_pk = e.actor.email.as_deref().map(|email| keys::email_pk(tenant, email));
        let known = email_pk
            .as_ref()
            .is_some_and(|pk| self.emails_known.lock().is_ok_and(|known| known.contains(&(pk.clone(), id.to_owned()))));
        if let (Some(pk), false) = (email_pk, known) {
            let run = retry(&self.backoff, "PutItem email directory", || {
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .item(keys::PK, AttributeValue::S(pk.clone()))
                    .item(keys::SK, AttributeValue::S(id.to_owned()))
                    .send()
            })
            .await;
            run.result.map_err(|e| StoreError::from_sdk(&e))?;
            if let Ok(mut known) = self.emails_known.lock() {
                // A fact never changes once written; the bound only caps memory.
                if known.len() >= EMAILS_KNOWN_MAX {
                    known.clear();
                }
                known.insert((pk, id.to_owned()));
            }
        }
        Ok(())
    }

    /// Every item of one partition (a catalog or directory), optionally those whose sort
    /// key starts with `prefix`.
    ///
    /// # Errors
    /// [`StoreError`] when the query fails after retries.
    pub async fn query_partition(&self, pk: &str, prefix: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let run = retry(&self.backoff, "Query partition", || {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                    .set_exclusive_start_key(start.clone());
                q = match prefix {
                    Some(p) => q
                        .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
                        .expression_attribute_names("#sk", keys::SK)
                        .expression_attribute_values(":p", AttributeValue::S(p.to_owned())),
                    None => q.key_condition_expression("#pk = :pk"),
                };
                q.send()
            })
            .await;
            let page = run.result.map_err(|e| StoreError::from_sdk(&e))?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// Checks the table answers (for `/healthz`).
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S(keys::TENANTS_PK.into()))
            .key(keys::SK, AttributeValue::S("-".into()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_sdk(&e))
    }
}

fn settings_from_item(item: &Item) -> TenantSettings {
    let num = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u32>().ok());
    TenantSettings {
        shards: num("shards").and_then(|n| u16::try_from(n).ok()).unwrap_or(1).max(1),
        hot_days: num("hot_days"),
    }
}
