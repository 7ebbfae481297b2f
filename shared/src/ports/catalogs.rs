//! The action and actor catalogs, and the email directory that turns an email into
//! every actor id that used it.
//!
//! The action catalog is one partition per tenant (each entry is written at most once a
//! minute per process, so no entry runs hot); actor entries are spread over the tenant's
//! shards by actor id. Reads are pages in key order, resumed after the last key.

use crate::domain::catalog::{ActionCount, ActorEntry, CatalogUpdate, Known};
use crate::domain::tenant::TenantId;
use crate::ports::StoreError;
use async_trait::async_trait;

/// One page of a catalog partition, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRead<T> {
    pub items: Vec<T>,
    /// Whether the partition may hold more after the last item.
    pub more: bool,
    /// Items the store read (the page's cost).
    pub read: u32,
}

#[async_trait]
pub trait Catalogs: Send + Sync {
    /// Makes sure the catalogs know these actions and the directory these (lowercased
    /// email, actor id) pairs, before the events that carry them are stored, so a
    /// category or email filter finds every stored event. Idempotent.
    ///
    /// # Errors
    /// [`StoreError`] when a write fails.
    async fn ensure(&self, tenant: &TenantId, known: &Known) -> Result<(), StoreError>;

    /// Adds counts to action entries and records sightings in actor entries (actor
    /// entries in shard `shard_of(actor id, shards)`; a newer sighting is never replaced
    /// by an older one).
    ///
    /// # Errors
    /// [`StoreError`] when an update fails.
    async fn record(&self, tenant: &TenantId, shards: u16, update: &CatalogUpdate) -> Result<(), StoreError>;

    /// Up to `limit` actions after `after`, in name order.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn actions(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CatalogRead<ActionCount>, StoreError>;

    /// The actions of `category` (`api_key` for `api_key.*`), at most `most` of them.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn category(&self, tenant: &TenantId, category: &str, most: usize) -> Result<Vec<String>, StoreError>;

    /// Up to `limit` actors of shard `shard` after actor id `after`, in id order.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn actors(
        &self,
        tenant: &TenantId,
        shard: u16,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CatalogRead<ActorEntry>, StoreError>;

    /// The actor ids that have used `email` (any case), at most `most` of them.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn actor_ids(&self, tenant: &TenantId, email: &str, most: usize) -> Result<Vec<String>, StoreError>;
}
