//! Action counts (`GET /v1/actions`), kept off the ingest path: the consumer of the
//! table's stream adds each batch's new events to their (tenant, action) entries, one
//! write per pair per batch. Counts so converge within the stream's delay, whether or not
//! the tenant sends anything more, and one process stopping loses nothing it has not yet
//! written (the stream delivers what was not answered again).
//!
//! Approximate: a batch the stream delivers twice (after a partial answer or a bisection)
//! counts its answered records again, and a write DynamoDB still refuses after the
//! adapter's retries is lost (logged).

use crate::domain::catalog::CatalogUpdate;
use crate::domain::tenant::TenantId;
use crate::ports::{Catalogs, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tenants' counts written at once.
const IN_FLIGHT: usize = 8;

pub struct ActionCounts {
    catalogs: Arc<dyn Catalogs>,
}

impl ActionCounts {
    pub fn new(catalogs: Arc<dyn Catalogs>) -> Self {
        Self { catalogs }
    }

    /// Adds one to the count of each (tenant, action) named, one event each: one write
    /// per distinct pair.
    ///
    /// # Errors
    /// The first tenant whose counts could not be written, with its error; every other
    /// tenant's are written all the same.
    pub async fn add<'a>(
        &self,
        events: impl IntoIterator<Item = (&'a TenantId, &'a str)>,
    ) -> Result<(), (TenantId, StoreError)> {
        let mut tally: BTreeMap<&TenantId, BTreeMap<&str, u64>> = BTreeMap::new();
        for (tenant, action) in events {
            *tally.entry(tenant).or_default().entry(action).or_default() += 1;
        }
        let updates: Vec<(TenantId, CatalogUpdate)> = tally
            .into_iter()
            .map(|(tenant, actions)| {
                let actions = actions.into_iter().map(|(a, n)| (a.to_owned(), n)).collect();
                (tenant.clone(), CatalogUpdate { actions, actors: Vec::new() })
            })
            .collect();
        // Side by side: a batch of the shared stream holds up to 100 tenants.
        let mut failed = None;
        for chunk in updates.chunks(IN_FLIGHT) {
            let writes: Vec<_> = chunk.iter().map(|(tenant, update)| self.write(tenant, update)).collect();
            for result in futures::future::join_all(writes).await {
                if let Err(e) = result {
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

impl ActionCounts {
    async fn write(&self, tenant: &TenantId, update: &CatalogUpdate) -> Result<(), (TenantId, StoreError)> {
        // Actor entries alone depend on the shard count, and this update has none.
        self.catalogs.record(tenant, 1, update).await.map_err(|e| (tenant.clone(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn each_tenant_and_action_is_counted_with_one_write() {
        let store = Arc::new(MemoryStore::default());
        let counts = ActionCounts::new(store.clone());
        let (acme, beta) = (TenantId::parse("acme"), TenantId::parse("beta"));
        let (acme, beta) = (acme.unwrap_or_else(|e| panic!("{e}")), beta.unwrap_or_else(|e| panic!("{e}")));
        let events: Vec<(&TenantId, &str)> = (0..151)
            .map(|i| (if i % 3 == 0 { &beta } else { &acme }, "doc.edit"))
            .chain([(&acme, "auth.login")])
            .collect();
        counts.add(events.iter().copied()).await.unwrap_or_else(|(t, e)| panic!("{t}: {e}"));
        // A batch delivered again counts again.
        counts.add(events[..10].iter().copied()).await.unwrap_or_else(|(t, e)| panic!("{t}: {e}"));
        let store = &store;
        let count = async |tenant: &TenantId, action: &str| {
            let read = store.actions(tenant, None, 10).await.unwrap_or_else(|e| panic!("{e}"));
            read.items.into_iter().find(|a| a.action == action).map(|a| a.count)
        };
        assert_eq!(count(&acme, "doc.edit").await, Some(100 + 6));
        assert_eq!(count(&beta, "doc.edit").await, Some(51 + 4));
        assert_eq!(count(&acme, "auth.login").await, Some(1));
        assert_eq!(count(&beta, "auth.login").await, None);
    }
}
