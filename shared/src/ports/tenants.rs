//! Tenants: their settings, and the registry of tenants the archive walks.

use crate::domain::tenant::{TenantId, TenantSettings};
use crate::domain::timestamp::Timestamp;
use crate::ports::StoreError;
use async_trait::async_trait;

#[async_trait]
pub trait Tenants: Send + Sync {
    /// The tenant's settings (the defaults when it has none); an adapter may cache them
    /// for a minute.
    ///
    /// # Errors
    /// [`StoreError`] when they cannot be read.
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError>;

    /// Sets a tenant's settings. Shards can only grow: readers read shards `0..shards`,
    /// so shrinking would hide what was written to the higher ones.
    ///
    /// # Errors
    /// [`StoreError::Refused`] when `shards` is below the current count.
    async fn set_settings(&self, tenant: &TenantId, settings: TenantSettings) -> Result<(), StoreError>;
}

#[async_trait]
pub trait TenantRegistry: Send + Sync {
    /// Adds the tenant to the registry (idempotent; an adapter may skip tenants it has
    /// registered already).
    ///
    /// # Errors
    /// [`StoreError`] when the registry cannot be written.
    async fn register(&self, tenant: &TenantId, now: Timestamp) -> Result<(), StoreError>;

    /// Every registered tenant, in id order.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn list(&self) -> Result<Vec<TenantId>, StoreError>;
}
