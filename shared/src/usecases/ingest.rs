//! Ingest: from raw JSON events to per-event results, the same for HTTP and the queue.

use crate::domain::catalog::CatalogUpdate;
use crate::domain::error::{Code, ErrorBody};
use crate::domain::event::{Accepted, Event};
use crate::domain::incoming::Incoming;
use crate::domain::ingest::{ItemResult, Status, dedup_digest};
use crate::domain::tenant::{TenantId, shard_of};
use crate::domain::timestamp::Timestamp;
use crate::ports::{Catalogs, EventWriter, PutOutcome, StoreError, TenantRegistry, Tenants};
use futures::StreamExt;
use std::sync::Arc;

/// Conditional writes in flight per batch.
const WRITE_CONCURRENCY: usize = 64;

/// What ingest writes to.
#[derive(Clone)]
pub struct Ingest {
    pub events: Arc<dyn EventWriter>,
    pub tenants: Arc<dyn Tenants>,
    pub registry: Arc<dyn TenantRegistry>,
    pub catalogs: Arc<dyn Catalogs>,
}

type WriteFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (usize, &'a Accepted, Result<PutOutcome, StoreError>)> + Send + 'a>,
>;

impl Ingest {
    /// Ingest on one store that holds events, tenants and catalogs.
    pub fn on<S: EventWriter + Tenants + TenantRegistry + Catalogs + 'static>(store: &Arc<S>) -> Self {
        Self { events: store.clone(), tenants: store.clone(), registry: store.clone(), catalogs: store.clone() }
    }

    /// Validates and stores events for one tenant; the order of results is the order of
    /// `events`. Never fails as a whole: every event gets its own result.
    pub async fn ingest<E: Into<Incoming>>(&self, tenant: &TenantId, events: Vec<E>) -> Vec<ItemResult> {
        let now = Timestamp::now();
        let mut results: Vec<Option<ItemResult>> = vec![None; events.len()];
        let mut valid: Vec<(usize, Accepted)> = Vec::with_capacity(events.len());
        for (index, raw) in events.into_iter().enumerate() {
            let raw: Incoming = raw.into();
            let id = raw.id();
            match Event::validate(raw, tenant, now) {
                Ok(a) => valid.push((index, a)),
                Err(v) => {
                    results[index] =
                        Some(ItemResult::rejected(index, id, ErrorBody::invalid("the event is invalid", &v)));
                }
            }
        }
        if !valid.is_empty() {
            match self.tenants.settings(tenant).await {
                Ok(settings) => self.store(tenant, &valid, settings.shards, now, &mut results).await,
                Err(e) => {
                    let body = e.body();
                    for (index, a) in &valid {
                        results[*index] = Some(ItemResult::rejected(*index, Some(a.event.id.clone()), body.clone()));
                    }
                }
            }
        }
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| ItemResult::rejected(i, None, ErrorBody::new(Code::Internal, "not processed")))
            })
            .collect()
    }

    async fn store(
        &self,
        tenant: &TenantId,
        valid: &[(usize, Accepted)],
        shards: u16,
        now: Timestamp,
        results: &mut [Option<ItemResult>],
    ) {
        if let Err(e) = self.registry.register(tenant, now).await {
            tracing::warn!(%tenant, error = %e, "tenant registry not updated; it will be retried on the next batch");
        }
        // Boxed so the stream's item type names no closure lifetime (axum needs the
        // handler future to be provably Send).
        let pending: Vec<WriteFuture<'_>> = valid
            .iter()
            .map(|(index, a)| -> WriteFuture<'_> {
                Box::pin(async move {
                    let stored = a.stamp(now);
                    let dedup = dedup_digest(a, &stored.hash);
                    (*index, a, self.events.put(&stored, shard_of(&a.event.id, shards), &dedup).await)
                })
            })
            .collect();
        let writes = futures::stream::iter(pending).buffer_unordered(WRITE_CONCURRENCY).collect::<Vec<_>>().await;
        let mut created = Vec::new();
        for (index, a, outcome) in writes {
            let id = Some(a.event.id.clone());
            results[index] = Some(match outcome {
                Ok(PutOutcome::Created) => {
                    created.push(&a.event);
                    ItemResult { index, id, status: Status::Created, error: None }
                }
                Ok(PutOutcome::Duplicate) => ItemResult { index, id, status: Status::Duplicate, error: None },
                Ok(PutOutcome::Conflict) => ItemResult::rejected(
                    index,
                    id,
                    ErrorBody::new(Code::Conflict, "this id is already stored with different content"),
                ),
                Err(e) => ItemResult::rejected(index, id, e.body()),
            });
        }
        let update = CatalogUpdate::of(&created);
        if !update.is_empty() {
            // A random catalog shard, so no counter item runs hot.
            let shard = rand::random_range(0..shards.max(1));
            if let Err(e) = self.catalogs.record(tenant, shard, &update).await {
                tracing::error!(%tenant, error = %e, "catalog not updated for a stored batch");
            }
        }
    }
}
