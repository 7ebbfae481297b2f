//! The action and actor catalogs and the email directory, sharded like the events so a
//! tenant at 10,000 events/s does not hammer one counter item.

use crate::dynamodb::values::{Item, get_n, get_s, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::catalog::{ActionCount, ActorEntry, CatalogUpdate};
use audit::domain::event::Event;
use audit::domain::tenant::TenantId;
use audit::ports::{Catalogs, StoreError};
use futures::StreamExt;
use std::collections::HashMap;

/// Most email directory entries a process remembers having written.
const EMAILS_KNOWN_MAX: usize = 100_000;
/// Catalog updates in flight per batch.
const CATALOG_CONCURRENCY: usize = 16;

type CatalogFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

impl Table {
    async fn add_action(&self, tenant: &TenantId, shard: u16, action: &str, count: u64) -> Result<(), StoreError> {
        let run = retry(&self.backoff, "UpdateItem action catalog", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .key(keys::PK, s(&keys::action_catalog_pk(tenant, shard)))
                .key(keys::SK, s(action))
                .update_expression("ADD #c :n")
                .expression_attribute_names("#c", "count")
                .expression_attribute_values(":n", n(count))
                .send()
        })
        .await;
        run.result.map(|_| ()).map_err(|e| store_error(&e))
    }

    async fn record_actor(&self, tenant: &TenantId, shard: u16, e: &Event) -> Result<(), StoreError> {
        let id = e.actor.id.as_str();
        let mut values: Item =
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
                .table_name(&self.name)
                .key(keys::PK, s(&keys::actor_catalog_pk(tenant, shard)))
                .key(keys::SK, s(id))
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
            Err(e) => return Err(store_error(&e)),
        }
        let email_pk = e.actor.email.as_deref().map(|email| keys::email_pk(tenant, email));
        let known = email_pk
            .as_ref()
            .is_some_and(|pk| self.emails_known.lock().is_ok_and(|known| known.contains(&(pk.clone(), id.to_owned()))));
        if let (Some(pk), false) = (email_pk, known) {
            let run = retry(&self.backoff, "PutItem email directory", || {
                self.client.put_item().table_name(&self.name).item(keys::PK, s(&pk)).item(keys::SK, s(id)).send()
            })
            .await;
            run.result.map_err(|e| store_error(&e))?;
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
}

#[async_trait]
impl Catalogs for Table {
    async fn record(&self, tenant: &TenantId, shard: u16, update: &CatalogUpdate<'_>) -> Result<(), StoreError> {
        let actions = update
            .actions
            .iter()
            .map(|(action, count)| -> CatalogFuture<'_> { Box::pin(self.add_action(tenant, shard, action, *count)) });
        let actors =
            update.actors.iter().map(|e| -> CatalogFuture<'_> { Box::pin(self.record_actor(tenant, shard, e)) });
        // Collected first so the stream's item type names no closure lifetime (the handler
        // future must be provably Send).
        let updates: Vec<CatalogFuture<'_>> = actions.chain(actors).collect();
        let results: Vec<Result<(), StoreError>> =
            futures::stream::iter(updates).buffer_unordered(CATALOG_CONCURRENCY).collect().await;
        results.into_iter().collect()
    }

    async fn actions(
        &self,
        tenant: &TenantId,
        shard: u16,
        prefix: Option<&str>,
    ) -> Result<Vec<ActionCount>, StoreError> {
        let items = self.query_partition(&keys::action_catalog_pk(tenant, shard), prefix).await?;
        Ok(items
            .iter()
            .filter_map(|it| {
                let action = get_s(it, keys::SK)?.clone();
                Some(ActionCount { action, count: get_n(it, "count").unwrap_or(0) })
            })
            .collect())
    }

    async fn actors(&self, tenant: &TenantId, shard: u16) -> Result<Vec<ActorEntry>, StoreError> {
        let items = self.query_partition(&keys::actor_catalog_pk(tenant, shard), None).await?;
        Ok(items
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
            .collect())
    }

    async fn actor_ids(&self, tenant: &TenantId, email: &str) -> Result<Vec<String>, StoreError> {
        let items = self.query_partition(&keys::email_pk(tenant, email), None).await?;
        Ok(items.iter().filter_map(|it| get_s(it, keys::SK).cloned()).collect())
    }
}
