//! The tenant registry: one item per tenant in the `TENANTS` partition, holding its
//! settings (and the archive's state, see `archive_registry`).

use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::tenant::{TenantId, TenantSettings};
use audit::domain::timestamp::Timestamp;
use audit::ports::{StoreError, TenantRegistry, Tenants};
use std::time::{Duration, Instant};

/// How long a process trusts its copy of a tenant's settings.
const SETTINGS_TTL: Duration = Duration::from_secs(60);

fn settings_from_item(item: &Item) -> TenantSettings {
    TenantSettings {
        shards: get_n::<u32>(item, "shards").and_then(|n| u16::try_from(n).ok()).unwrap_or(1).max(1),
        hot_days: get_n(item, "hot_days"),
    }
}

#[async_trait]
impl Tenants for Table {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let cached = self.settings.lock().ok().and_then(|m| m.get(tenant).copied());
        if let Some((_, s)) = cached.filter(|(at, _)| at.elapsed() < SETTINGS_TTL) {
            return Ok(s);
        }
        let run = retry(&self.backoff, "GetItem tenant", || {
            self.client.get_item().table_name(&self.name).set_key(Some(key(keys::TENANTS_PK, tenant.as_str()))).send()
        })
        .await;
        let out = run.result.map_err(|e| store_error(&e))?;
        let settings = out.item().map(settings_from_item).unwrap_or_default();
        if let Ok(mut m) = self.settings.lock() {
            m.insert(tenant.clone(), (Instant::now(), settings));
        }
        Ok(settings)
    }

    async fn set_settings(&self, tenant: &TenantId, settings: TenantSettings) -> Result<(), StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key(keys::TENANTS_PK, tenant.as_str())))
            .condition_expression("attribute_not_exists(shards) OR shards <= :s")
            .expression_attribute_values(":s", n(settings.shards));
        req = match settings.hot_days {
            Some(days) => {
                req.update_expression("SET shards = :s, hot_days = :d").expression_attribute_values(":d", n(days))
            }
            None => req.update_expression("SET shards = :s REMOVE hot_days"),
        };
        req.send().await.map_err(|e| store_error(&e))?;
        if let Ok(mut m) = self.settings.lock() {
            m.remove(tenant);
        }
        Ok(())
    }
}

#[async_trait]
impl TenantRegistry for Table {
    /// Once per process per tenant: a tenant once registered stays so.
    async fn register(&self, tenant: &TenantId, now: Timestamp) -> Result<(), StoreError> {
        if self.registered.lock().is_ok_and(|s| s.contains(tenant)) {
            return Ok(());
        }
        let now = now.to_string();
        let run = retry(&self.backoff, "UpdateItem tenant", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(key(keys::TENANTS_PK, tenant.as_str())))
                .update_expression("SET created_at = if_not_exists(created_at, :now)")
                .expression_attribute_values(":now", s(&now))
                .send()
        })
        .await;
        run.result.map_err(|e| store_error(&e))?;
        if let Ok(mut s) = self.registered.lock() {
            s.insert(tenant.clone());
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<TenantId>, StoreError> {
        let items = self.query_partition(keys::TENANTS_PK, None).await?;
        Ok(items.iter().filter_map(|it| get_s(it, keys::SK)).filter_map(|t| TenantId::parse(t).ok()).collect())
    }
}
