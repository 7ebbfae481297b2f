//! The action and actor catalogs, and the email directory that turns an email into
//! every actor id that used it.

use crate::domain::catalog::{ActionCount, ActorEntry, CatalogUpdate};
use crate::domain::tenant::TenantId;
use crate::ports::StoreError;
use async_trait::async_trait;

#[async_trait]
pub trait Catalogs: Send + Sync {
    /// Counts a stored batch into catalog shard `shard` (spread so no counter runs hot):
    /// action counts added, each actor's entry replaced unless it holds a newer
    /// sighting, and each actor's email recorded in the directory.
    ///
    /// # Errors
    /// [`StoreError`] when an update fails.
    async fn record(&self, tenant: &TenantId, shard: u16, update: &CatalogUpdate<'_>) -> Result<(), StoreError>;

    /// One catalog shard's actions with their counts, those starting with `prefix` if given.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn actions(
        &self,
        tenant: &TenantId,
        shard: u16,
        prefix: Option<&str>,
    ) -> Result<Vec<ActionCount>, StoreError>;

    /// One catalog shard's actors as last seen there.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn actors(&self, tenant: &TenantId, shard: u16) -> Result<Vec<ActorEntry>, StoreError>;

    /// Every actor id that has used `email` (any case).
    ///
    /// # Errors
    /// [`StoreError`].
    async fn actor_ids(&self, tenant: &TenantId, email: &str) -> Result<Vec<String>, StoreError>;
}
