//! Ingest: from raw JSON events to per-event results, the same for HTTP and the queue.

use crate::domain::catalog::{CatalogMemory, WINDOW};
use crate::domain::error::{Code, ErrorBody};
use crate::domain::event::{Accepted, Event};
use crate::domain::incoming::Incoming;
use crate::domain::ingest::{ItemResult, Status, dedup_digest};
use crate::domain::own::Origin;
use crate::domain::tenant::{TenantId, shard_of};
use crate::domain::timestamp::Timestamp;
use crate::ports::{Catalogs, EventWriter, PutOutcome, StoreError, TenantRegistry, Tenants};
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Conditional writes in flight per batch.
const WRITE_CONCURRENCY: usize = 64;

/// What ingest writes to.
#[derive(Clone)]
pub struct Ingest {
    pub events: Arc<dyn EventWriter>,
    pub tenants: Arc<dyn Tenants>,
    pub registry: Arc<dyn TenantRegistry>,
    pub catalogs: Arc<dyn Catalogs>,
    /// The catalog writes this process made, so each entry is written at most once a
    /// minute (shared by the clones of one `Ingest`).
    pub catalog_memory: Arc<Mutex<CatalogMemory>>,
}

type WriteFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (usize, &'a Accepted, Result<PutOutcome, StoreError>)> + Send + 'a>,
>;

impl Ingest {
    /// Ingest on one store that holds events, tenants and catalogs.
    pub fn on<S: EventWriter + Tenants + TenantRegistry + Catalogs + 'static>(store: &Arc<S>) -> Self {
        Self {
            events: store.clone(),
            tenants: store.clone(),
            registry: store.clone(),
            catalogs: store.clone(),
            catalog_memory: Arc::new(Mutex::new(CatalogMemory::new(WINDOW))),
        }
    }

    /// Writes each catalog entry at most once per `window` (zero: after every batch).
    #[must_use]
    pub fn with_catalog_window(mut self, window: Duration) -> Self {
        self.catalog_memory = Arc::new(Mutex::new(CatalogMemory::new(window)));
        self
    }

    /// Validates and stores a client's events for one tenant; the order of results is the
    /// order of `events`. Never fails as a whole: every event gets its own result.
    pub async fn ingest<E: Into<Incoming>>(&self, tenant: &TenantId, events: Vec<E>) -> Vec<ItemResult> {
        self.ingest_as(tenant, events, Origin::Client).await
    }

    /// [`Ingest::ingest`] for the service's own events (an export asked for, a rule
    /// changed), which alone may use the `audit_log.` namespace and `audit_log:` ids.
    pub async fn record_own(&self, tenant: &TenantId, events: Vec<serde_json::Value>) -> Vec<ItemResult> {
        self.ingest_as(tenant, events, Origin::Service).await
    }

    async fn ingest_as<E: Into<Incoming>>(&self, tenant: &TenantId, events: Vec<E>, origin: Origin) -> Vec<ItemResult> {
        let now = Timestamp::now();
        let mut results: Vec<Option<ItemResult>> = vec![None; events.len()];
        let mut valid: Vec<(usize, Accepted)> = Vec::with_capacity(events.len());
        for (index, raw) in events.into_iter().enumerate() {
            let raw: Incoming = raw.into();
            let id = raw.id();
            match Event::validate_as(raw, tenant, now, origin) {
                Ok(a) => valid.push((index, a)),
                Err(v) => {
                    results[index] =
                        Some(ItemResult::rejected(index, id, ErrorBody::invalid("the event is invalid", &v)));
                }
            }
        }
        if !valid.is_empty() {
            match self.tenants.settings(tenant).await {
                Ok(settings) => self.store(tenant, &valid, settings.write_shards(now), now, &mut results).await,
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
        // What category and email filters rely on is written before the events: an
        // event whose action or email the catalogs could not learn is not stored now
        // (transient: the client retries it).
        let events: Vec<&Event> = valid.iter().map(|(_, a)| &a.event).collect();
        let known = self.memory(|m| m.unknown(tenant, &events));
        let mut refused = None;
        if !known.is_empty() {
            match self.catalogs.ensure(tenant, &known).await {
                Ok(()) => {
                    self.memory(|m| m.learned(tenant, &known));
                }
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "catalogs could not learn a batch's actions or emails");
                    refused = Some(e.body());
                }
            }
        }
        // Boxed so the stream's item type names no closure lifetime (axum needs the
        // handler future to be provably Send).
        let mut pending: Vec<WriteFuture<'_>> = Vec::with_capacity(valid.len());
        for (index, a) in valid {
            if let Some(body) = refused.as_ref().filter(|_| known.needed_by(&a.event)) {
                results[*index] = Some(ItemResult::rejected(*index, Some(a.event.id.clone()), body.clone()));
                continue;
            }
            pending.push(Box::pin(async move {
                let stored = a.stamp(now);
                let dedup = dedup_digest(a, &stored.hash);
                (*index, a, self.events.put(&stored, shard_of(&a.event.id, shards), &dedup).await)
            }));
        }
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
        self.record_catalogs(tenant, shards, &created).await;
    }

    /// Counts and sightings of stored events: written when their entry's window has
    /// passed, with everything this process gathered since.
    async fn record_catalogs(&self, tenant: &TenantId, shards: u16, created: &[&Event]) {
        let now = Instant::now();
        let due = self.memory(|m| m.add(tenant, created, now));
        for (t, update) in due {
            let shards = if t == *tenant {
                Ok(shards)
            } else {
                self.tenants.settings(&t).await.map(|s| s.write_shards(Timestamp::now()))
            };
            let written = match shards {
                Ok(shards) => self.catalogs.record(&t, shards, &update).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::warn!(tenant = %t, error = %e, "catalog counts not written; kept for the next batch");
                self.memory(|m| m.unwritten(&t, update, now));
            }
        }
    }

    fn memory<T>(&self, f: impl FnOnce(&mut CatalogMemory) -> T) -> T {
        // Only a cache: a panic elsewhere while it was held leaves it usable.
        let mut m = self.catalog_memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut m)
    }
}
