//! The tenant registry: one item per tenant in the `TENANTS` partition, holding its
//! settings (and the archive's state, see `archive_registry`).

use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::tenant::{Raise, TenantId, TenantSettings};
use audit::domain::timestamp::Timestamp;
use audit::ports::{StoreError, TenantRegistry, Tenants};
use std::time::{Duration, Instant};

/// How long a process trusts its copy of a tenant's settings.
const SETTINGS_TTL: Duration = Duration::from_secs(60);

/// The tenant item's attributes of its latest raise of shards (docs/design.md, "Capacity").
const SHARDS_FROM: &str = "shards_from";
const SHARDS_RAISED_AT: &str = "shards_raised_at";

fn settings_from_item(item: &Item) -> TenantSettings {
    let raised = match (get_n::<u16>(item, SHARDS_FROM), get_n::<i64>(item, SHARDS_RAISED_AT)) {
        (Some(from), Some(at)) => Timestamp::from_micros(at).ok().map(|at| Raise { from, at }),
        _ => None,
    };
    TenantSettings {
        shards: get_n::<u32>(item, "shards").and_then(|n| u16::try_from(n).ok()).unwrap_or(1).max(1),
        hot_days: get_n(item, "hot_days"),
        raised,
    }
}

#[async_trait]
impl Tenants for Table {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let cached = self.settings.lock().ok().and_then(|m| m.get(tenant).copied());
        if let Some((_, s)) = cached.filter(|(at, _)| at.elapsed() < SETTINGS_TTL) {
            return Ok(s);
        }
        let settings = self.stored_settings(tenant, false).await?.map(|(s, _)| s).unwrap_or_default();
        if let Ok(mut m) = self.settings.lock() {
            m.insert(tenant.clone(), (Instant::now(), settings));
        }
        Ok(settings)
    }

    /// Read, then written on the condition that `shards` is still what was read, so two
    /// changes at once cannot undo each other's raise.
    async fn set_settings(&self, tenant: &TenantId, settings: TenantSettings) -> Result<(), StoreError> {
        let (current, stored_shards) = self.stored_settings(tenant, true).await?.unwrap_or_default();
        let next = current.replaced_by(settings, Timestamp::now()).map_err(|e| StoreError::Refused(e.to_string()))?;
        let mut set = vec!["shards = :s"];
        let mut remove = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key(keys::TENANTS_PK, tenant.as_str())))
            .expression_attribute_values(":s", n(next.shards));
        req = match stored_shards {
            Some(was) => req.condition_expression("shards = :was").expression_attribute_values(":was", n(was)),
            None => req.condition_expression("attribute_not_exists(shards)"),
        };
        match next.hot_days {
            Some(days) => {
                set.push("hot_days = :d");
                req = req.expression_attribute_values(":d", n(days));
            }
            None => remove.push("hot_days"),
        }
        match next.raised {
            Some(r) => {
                set.extend(["shards_from = :f", "shards_raised_at = :r"]);
                req = req
                    .expression_attribute_values(":f", n(r.from))
                    .expression_attribute_values(":r", n(r.at.micros()));
            }
            None => remove.extend([SHARDS_FROM, SHARDS_RAISED_AT]),
        }
        let mut update = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            update.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        req.update_expression(update).send().await.map_err(|e| store_error(&e))?;
        if let Ok(mut m) = self.settings.lock() {
            m.remove(tenant);
        }
        Ok(())
    }
}

impl Table {
    /// The tenant's settings as stored, with the `shards` attribute as it stands (`None`
    /// when never set); `None` when the tenant has no item.
    async fn stored_settings(
        &self,
        tenant: &TenantId,
        consistent: bool,
    ) -> Result<Option<(TenantSettings, Option<u32>)>, StoreError> {
        let run = retry(&self.backoff, "GetItem tenant", || {
            self.client
                .get_item()
                .table_name(&self.name)
                .set_key(Some(key(keys::TENANTS_PK, tenant.as_str())))
                .consistent_read(consistent)
                .send()
        })
        .await;
        let out = run.result.map_err(|e| store_error(&e))?;
        Ok(out.item().map(|item| (settings_from_item(item), get_n::<u32>(item, "shards"))))
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
