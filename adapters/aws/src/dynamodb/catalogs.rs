//! The action and actor catalogs and the email directory. Ingest writes each entry at
//! most once a minute per process (`audit::domain::catalog::CatalogMemory`), so these
//! are a few writes a minute, not a few per event.

use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::catalog::{ActionCount, ActorEntry, CatalogUpdate, Known};
use audit::domain::tenant::{TenantId, shard_of};
use audit::ports::{CatalogRead, Catalogs, StoreError};
use futures::StreamExt;
use std::collections::HashMap;

/// Catalog writes in flight.
const CATALOG_CONCURRENCY: usize = 16;

type CatalogFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

impl Table {
    /// Adds `count` to an action's entry, creating it (with 0, to make it known) if absent.
    async fn add_action(&self, tenant: &TenantId, action: &str, count: u64) -> Result<(), StoreError> {
        let run = retry(&self.backoff, "UpdateItem action catalog", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .key(keys::PK, s(&keys::action_catalog_pk(tenant)))
                .key(keys::SK, s(action))
                .update_expression("ADD #c :n")
                .expression_attribute_names("#c", "count")
                .expression_attribute_values(":n", n(count))
                .send()
        })
        .await;
        run.result.map(|_| ()).map_err(|e| store_error(&e))
    }

    async fn add_email(&self, tenant: &TenantId, email: &str, actor_id: &str) -> Result<(), StoreError> {
        let pk = keys::email_pk(tenant, email);
        let run = retry(&self.backoff, "PutItem email directory", || {
            self.client.put_item().table_name(&self.name).item(keys::PK, s(&pk)).item(keys::SK, s(actor_id)).send()
        })
        .await;
        run.result.map(|_| ()).map_err(|e| store_error(&e))
    }

    /// Replaces an actor's entry unless it holds a newer sighting.
    async fn record_actor(&self, tenant: &TenantId, shards: u16, a: &ActorEntry) -> Result<(), StoreError> {
        let mut values: Item = HashMap::from([(":t".into(), s(&a.kind)), (":seen".into(), s(&a.last_seen))]);
        let mut sets = vec!["#type = :t", "last_seen = :seen"];
        let mut removes = Vec::new();
        for (field, value, set, remove) in
            [(":name", &a.name, "#name = :name", "#name"), (":email", &a.email, "email = :email", "email")]
        {
            match value {
                Some(v) => {
                    values.insert(field.into(), s(v));
                    sets.push(set);
                }
                None => removes.push(remove),
            }
        }
        let mut expr = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let pk = keys::actor_catalog_pk(tenant, shard_of(&a.id, shards));
        let run = retry(&self.backoff, "UpdateItem actor catalog", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .key(keys::PK, s(&pk))
                .key(keys::SK, s(&a.id))
                .update_expression(&expr)
                .condition_expression("attribute_not_exists(last_seen) OR last_seen <= :seen")
                .expression_attribute_names("#type", "type")
                .expression_attribute_names("#name", "name")
                .set_expression_attribute_values(Some(values.clone()))
                .send()
        })
        .await;
        match run.result {
            Ok(_) => Ok(()),
            // The catalog already holds a newer sighting of this actor.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// Up to `limit` items of a catalog partition after sort key `after` (and starting
    /// with `prefix`), with whether it may hold more.
    async fn catalog_page(
        &self,
        pk: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Item>, bool, u32), StoreError> {
        let start = after.map(|a| key(pk, a));
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let run = retry(&self.backoff, "Query catalog", || {
            let q = self
                .client
                .query()
                .table_name(&self.name)
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.clone())
                .limit(limit);
            match prefix {
                Some(p) => q
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":p", s(p)),
                None => q.key_condition_expression("#pk = :pk"),
            }
            .send()
        })
        .await;
        let out = run.result.map_err(|e| store_error(&e))?;
        let read = u32::try_from(out.scanned_count()).unwrap_or(0);
        let more = out.last_evaluated_key.is_some();
        Ok((out.items.unwrap_or_default(), more, read))
    }
}

#[async_trait]
impl Catalogs for Table {
    async fn ensure(&self, tenant: &TenantId, known: &Known) -> Result<(), StoreError> {
        let actions = known.actions.iter().map(|a| -> CatalogFuture<'_> { Box::pin(self.add_action(tenant, a, 0)) });
        let emails =
            known.emails.iter().map(|(m, id)| -> CatalogFuture<'_> { Box::pin(self.add_email(tenant, m, id)) });
        // Collected first so the stream's item type names no closure lifetime (the handler
        // future must be provably Send).
        let writes: Vec<CatalogFuture<'_>> = actions.chain(emails).collect();
        let results: Vec<Result<(), StoreError>> =
            futures::stream::iter(writes).buffer_unordered(CATALOG_CONCURRENCY).collect().await;
        results.into_iter().collect()
    }

    async fn record(&self, tenant: &TenantId, shards: u16, update: &CatalogUpdate) -> Result<(), StoreError> {
        let actions =
            update.actions.iter().map(|(a, c)| -> CatalogFuture<'_> { Box::pin(self.add_action(tenant, a, *c)) });
        let actors =
            update.actors.iter().map(|a| -> CatalogFuture<'_> { Box::pin(self.record_actor(tenant, shards, a)) });
        let writes: Vec<CatalogFuture<'_>> = actions.chain(actors).collect();
        let results: Vec<Result<(), StoreError>> =
            futures::stream::iter(writes).buffer_unordered(CATALOG_CONCURRENCY).collect().await;
        results.into_iter().collect()
    }

    async fn actions(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CatalogRead<ActionCount>, StoreError> {
        let (items, more, read) = self.catalog_page(&keys::action_catalog_pk(tenant), None, after, limit).await?;
        let items = items
            .iter()
            .filter_map(|it| {
                let action = get_s(it, keys::SK)?.clone();
                Some(ActionCount { action, count: get_n(it, "count").unwrap_or(0) })
            })
            .collect();
        Ok(CatalogRead { items, more, read })
    }

    async fn category(&self, tenant: &TenantId, category: &str, most: usize) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{category}.");
        let (items, _, _) = self.catalog_page(&keys::action_catalog_pk(tenant), Some(&prefix), None, most).await?;
        Ok(items.iter().filter_map(|it| get_s(it, keys::SK).cloned()).collect())
    }

    async fn actors(
        &self,
        tenant: &TenantId,
        shard: u16,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CatalogRead<ActorEntry>, StoreError> {
        let pk = keys::actor_catalog_pk(tenant, shard);
        let (items, more, read) = self.catalog_page(&pk, None, after, limit).await?;
        let items = items
            .iter()
            .filter_map(|it| {
                let text = |n: &str| get_s(it, n).cloned();
                Some(ActorEntry {
                    id: text(keys::SK)?,
                    kind: text("type").unwrap_or_default(),
                    name: text("name"),
                    email: text("email"),
                    last_seen: text("last_seen")?,
                })
            })
            .collect();
        Ok(CatalogRead { items, more, read })
    }

    async fn actor_ids(&self, tenant: &TenantId, email: &str, most: usize) -> Result<Vec<String>, StoreError> {
        let (items, _, _) = self.catalog_page(&keys::email_pk(tenant, email), None, None, most).await?;
        Ok(items.iter().filter_map(|it| get_s(it, keys::SK).cloned()).collect())
    }
}
