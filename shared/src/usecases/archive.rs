//! The archive job (contract section 4): every UTC day wholly older than a tenant's
//! online window moves from DynamoDB to Parquet in S3, and is deleted online only once
//! S3 verifiably holds it.
//!
//! One day, one step: stream the day's items (merged across write shards, in
//! `(occurred_at, id)` order) into Parquet parts in scratch files; upload each and check
//! what S3 then holds (size, SHA-256, footer row count); record the step in the tenant's
//! registry item; write the day's manifest revision (conditional on the revision it
//! replaces); make it the chain's head; delete exactly the ids the new parts hold; clear
//! the step. A run that stops anywhere leaves either no manifest (the next run starts the
//! day again, overwriting the same part names) or a manifest whose deletes the next run
//! finishes from the parts themselves. Late events find the day's manifest and become
//! the next part of a new revision.

use crate::domain::budget::Reserve;
use crate::domain::event::StoredEvent;
use crate::domain::filter::{Filter, Order};
use crate::domain::manifest::{self, ChainHead, Manifest, PartEntry, Pending, Phase};
use crate::domain::plan::{Partition, Path as ReadPath};
use crate::domain::retention::archive_cutoff;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::formats::parquet_read::{self, FooterError};
use crate::formats::parquet_write::PartWriter;
use crate::ports::{ArchiveRegistry, BlobError, BlobStore, Condition, EventDeleter, EventIndex, EventReader};
use crate::ports::{RegistryError, StoreError, TenantRegistry, Tenants};
use crate::usecases::files::{Scratch, hash_file};
use crate::usecases::merge::{Events, Fetch, IndexRead};
use serde::Serialize;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Ids read back from a part per delete round.
const DELETE_CHUNK: usize = 4_096;
/// Events checked against the base table at once when adding to an archived day.
const CONFIRM_CHUNK: usize = 100;
/// Items per read of a day, across all shards together: bounds the memory a merge holds
/// whatever the shard count.
const PAGE_ITEMS_TOTAL: usize = 2_000;

const PARQUET_TYPE: &str = "application/vnd.apache.parquet";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Footer(#[from] FooterError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
    /// What S3 holds is not what was written or recorded: nothing is deleted.
    #[error("verification failed: {0}")]
    Verification(String),
}

/// How the job runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// `AUDIT_HOT_DAYS`, for tenants without their own window.
    pub default_hot_days: u32,
    /// `AUDIT_ARCHIVE_PART_ROWS`: a larger day is split into parts, so each stays a size a
    /// small function uploads and verifies comfortably and Athena splits well.
    pub part_max_rows: u64,
}

/// One archived day (or one revision of it).
#[derive(Debug, Clone, Serialize)]
pub struct DayDone {
    pub tenant: String,
    pub date: String,
    pub seq: u64,
    pub rows: u64,
    pub parts: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantFailure {
    pub tenant: String,
    pub error: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub days: Vec<DayDone>,
    /// Steps a previous run left unfinished and this one completed.
    pub resumed: u32,
    pub failures: Vec<TenantFailure>,
    /// The deadline came first; the next run continues.
    pub unfinished: bool,
}

/// What the archive reads, writes and deletes.
#[derive(Clone)]
pub struct ArchiveStores {
    pub tenants: Arc<dyn Tenants>,
    pub tenant_registry: Arc<dyn TenantRegistry>,
    pub registry: Arc<dyn ArchiveRegistry>,
    pub index: Arc<dyn EventIndex>,
    pub events: Arc<dyn EventReader>,
    pub deleter: Arc<dyn EventDeleter>,
    pub bucket: Arc<dyn BlobStore>,
}

impl ArchiveStores {
    /// The archive of one store that holds events, tenants and the registry, into `bucket`.
    pub fn on<S, B>(store: &Arc<S>, bucket: &Arc<B>) -> Self
    where
        S: Tenants + TenantRegistry + ArchiveRegistry + EventIndex + EventReader + EventDeleter + 'static,
        B: BlobStore + 'static,
    {
        Self {
            tenants: store.clone(),
            tenant_registry: store.clone(),
            registry: store.clone(),
            index: store.clone(),
            events: store.clone(),
            deleter: store.clone(),
            bucket: bucket.clone(),
        }
    }
}

/// One archive run.
pub struct Archiver {
    stores: ArchiveStores,
    options: Options,
    /// Who holds the leases this run takes (unique per run).
    owner: String,
}

impl Archiver {
    #[must_use]
    pub fn new(stores: ArchiveStores, options: Options) -> Self {
        Self { stores, options, owner: format!("archive-{}", uuid::Uuid::now_v7()) }
    }

    /// Archives every due day of every tenant (or of `only`), as if the time were `now`,
    /// stopping between days once `deadline` has passed. A failing tenant is reported and
    /// the others still run.
    ///
    /// # Errors
    /// [`ArchiveError`] when the tenant registry cannot be read.
    pub async fn run(
        &self,
        now: Timestamp,
        only: Option<&TenantId>,
        deadline: Option<Instant>,
    ) -> Result<Report, ArchiveError> {
        let tenants = match only {
            Some(t) => vec![t.clone()],
            None => self.stores.tenant_registry.list().await?,
        };
        let mut report = Report::default();
        for tenant in tenants {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                report.unfinished = true;
                break;
            }
            if let Err(e) = self.tenant(&tenant, now, deadline, &mut report).await {
                tracing::error!(%tenant, error = %e, "archive of tenant failed");
                report.failures.push(TenantFailure { tenant: tenant.to_string(), error: e.to_string() });
            }
        }
        Ok(report)
    }

    async fn tenant(
        &self,
        tenant: &TenantId,
        now: Timestamp,
        deadline: Option<Instant>,
        report: &mut Report,
    ) -> Result<(), ArchiveError> {
        self.stores.registry.lease(tenant, &self.owner).await?;
        let result = self.tenant_leased(tenant, now, deadline, report).await;
        if let Err(e) = self.stores.registry.release(tenant, &self.owner).await {
            tracing::warn!(%tenant, error = %e, "could not release the archive lease; it expires by itself");
        }
        result
    }

    async fn tenant_leased(
        &self,
        tenant: &TenantId,
        now: Timestamp,
        deadline: Option<Instant>,
        report: &mut Report,
    ) -> Result<(), ArchiveError> {
        let settings = self.stores.tenants.settings(tenant).await?;
        let cutoff = archive_cutoff(now, settings.hot_days.unwrap_or(self.options.default_hot_days));
        let state = self.stores.registry.state(tenant).await?;
        let mut head = state.head;
        if let Some(p) = state.pending {
            head = self.resume(tenant, &p, head).await?;
            report.resumed += 1;
        }
        // Days done in this run are not visited again: an index can still list items this
        // run deleted a moment ago. Later late events wait for the next run.
        let mut after: Option<String> = None;
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                report.unfinished = true;
                return Ok(());
            }
            let Some(day) = self.earliest_day(tenant, settings.shards, after.as_deref(), &cutoff).await? else {
                return Ok(());
            };
            self.stores.registry.lease(tenant, &self.owner).await?;
            if let Some(done) = self.day(tenant, settings.shards, &day, &mut head).await? {
                tracing::info!(%tenant, date = %done.date, rows = done.rows, seq = done.seq, "day archived");
                report.days.push(done);
            }
            after = Some(day);
        }
    }

    /// The earliest UTC day with online events before day `before`, after day `after` if
    /// given.
    async fn earliest_day(
        &self,
        tenant: &TenantId,
        shards: u16,
        after: Option<&str>,
        before: &str,
    ) -> Result<Option<String>, StoreError> {
        let from = after.map_or(Timestamp::MIN, |d| day_start(d).plus_seconds(86_400));
        let to = day_start(before);
        let mut earliest: Option<String> = None;
        for shard in 0..shards.max(1) {
            let partition = Partition::new(shard, None);
            let first = self.stores.index.earliest(tenant, ReadPath::Time, &partition, from, to).await?;
            if let Some(day) = first.map(|k| k.occurred_at.day())
                && earliest.as_ref().is_none_or(|e| day < *e)
            {
                earliest = Some(day);
            }
        }
        Ok(earliest)
    }

    /// Archives what is online of one day: a new manifest revision, or nothing.
    async fn day(
        &self,
        tenant: &TenantId,
        shards: u16,
        date: &str,
        head: &mut Option<ChainHead>,
    ) -> Result<Option<DayDone>, ArchiveError> {
        let t = tenant.as_str();
        let manifest_key = manifest::manifest_key(t, date);
        let current = match self.stores.bucket.get_bytes(&manifest_key).await? {
            Some((bytes, etag)) => {
                let m: Manifest = serde_json::from_slice(&bytes)
                    .map_err(|e| ArchiveError::Verification(format!("{manifest_key} is not a manifest: {e}")))?;
                if head.as_ref().is_none_or(|h| m.seq > h.seq) {
                    return Err(ArchiveError::Verification(format!(
                        "{manifest_key} is seq {} but the chain's head is {:?}; run auditlog verify",
                        m.seq,
                        head.as_ref().map(|h| h.seq)
                    )));
                }
                Some((m, manifest::hash(&bytes), etag))
            }
            None => None,
        };
        let first_part = current.as_ref().map_or(0, |(m, _, _)| m.parts.len());
        // Items of a day already archived could be index ghosts of deleted ones: check
        // each against the base table before it goes into a late part.
        let confirm = current.is_some();
        let from = day_start(date);
        let filter = Filter::range(from, from.plus_seconds(86_400));
        let per_read = (PAGE_ITEMS_TOTAL / usize::from(shards.max(1))).max(50);
        let fetch = Fetch { first: per_read, most: per_read };
        let path = ReadPath::Time;
        let index = &*self.stores.index;
        let reserve = Reserve::default();
        let read = IndexRead { index, tenant, path, filter: &filter, order: Order::Asc, fetch, budget: None, reserve };
        let mut stream = read.events((0..shards.max(1)).map(|shard| Partition::new(shard, None)), &*self.stores.events);
        let mut parts: Vec<(PartEntry, Scratch)> = Vec::new();
        loop {
            let scratch = Scratch::new(".parquet");
            let Some((rows, first, last)) = self.write_part(&mut stream, tenant, confirm, scratch.path()).await? else {
                break;
            };
            let name = manifest::part_name(first_part + parts.len());
            let key = format!("{}{name}", manifest::day_prefix(t, date));
            let (bytes, sha256) = hash_file(scratch.path())?;
            self.stores.bucket.put_file(&key, scratch.path(), PARQUET_TYPE).await?;
            self.check_part(&key, bytes, &sha256, rows).await?;
            parts.push((PartEntry { name, rows, bytes, sha256, first, last }, scratch));
            if rows < self.options.part_max_rows {
                break;
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let revision = Manifest::revise(
            current.as_ref().map(|(m, sha, _)| (m, sha.as_str())),
            t,
            date,
            head.as_ref(),
            Timestamp::now().to_string(),
            parts.iter().map(|(p, _)| p.clone()).collect(),
        );
        let bytes = revision.to_bytes().map_err(|e| ArchiveError::Verification(e.to_string()))?;
        let pending = Pending {
            date: date.to_owned(),
            parts: parts.iter().map(|(p, _)| p.name.clone()).collect(),
            manifest: manifest::hash(&bytes),
            seq: revision.seq,
            phase: Phase::Manifest,
        };
        self.stores.registry.begin(tenant, &self.owner, &pending).await?;
        let condition = match &current {
            Some((_, _, etag)) => Condition::Matches(etag.clone()),
            None => Condition::Absent,
        };
        self.stores.bucket.put_bytes(&manifest_key, bytes, "application/json", condition).await?;
        self.check_manifest(&manifest_key, &pending.manifest).await?;
        self.stores.registry.advance(tenant, &self.owner, &pending).await?;
        *head = Some(ChainHead { seq: pending.seq, sha256: pending.manifest.clone() });
        for (_, scratch) in &parts {
            self.delete_ids_of(tenant, scratch.path()).await?;
        }
        self.stores.registry.finish(tenant, &self.owner, &pending).await?;
        Ok(Some(DayDone {
            tenant: t.to_owned(),
            date: date.to_owned(),
            seq: pending.seq,
            rows: parts.iter().map(|(p, _)| p.rows).sum(),
            parts: pending.parts,
        }))
    }

    /// Writes up to `part_max_rows` of the stream into a Parquet file at `path`: the row
    /// count and first and last `occurred_at`, or `None` when the stream had nothing left.
    async fn write_part(
        &self,
        stream: &mut Events<'_>,
        tenant: &TenantId,
        confirm: bool,
        path: &Path,
    ) -> Result<Option<(u64, String, String)>, ArchiveError> {
        let mut writer = PartWriter::new(BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?))?;
        let mut first = None;
        let mut last = None;
        let mut chunk: Vec<StoredEvent> = Vec::with_capacity(CONFIRM_CHUNK);
        let mut ended = false;
        while !ended && writer.rows() < self.options.part_max_rows {
            let room = usize::try_from(self.options.part_max_rows - writer.rows()).unwrap_or(usize::MAX);
            let want = if confirm { CONFIRM_CHUNK.min(room) } else { 1 };
            chunk.clear();
            while chunk.len() < want {
                match stream.next().await? {
                    Some((_, e)) => chunk.push(e),
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            let keep = if confirm {
                let ids: Vec<&str> = chunk.iter().map(|e| e.event.id.as_str()).collect();
                self.stores.events.exist(tenant, &ids).await?
            } else {
                vec![true; chunk.len()]
            };
            for (event, keep) in chunk.iter().zip(keep) {
                if keep {
                    writer.push(event)?;
                    let at = event.event.occurred_at.to_string();
                    first.get_or_insert_with(|| at.clone());
                    last = Some(at);
                }
            }
        }
        let rows = writer.rows();
        let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(match (rows, first, last) {
            (1.., Some(first), Some(last)) => Some((rows, first, last)),
            _ => None,
        })
    }

    /// Checks that S3 holds exactly the part written: size, SHA-256 and footer row count.
    async fn check_part(&self, key: &str, bytes: u64, sha256: &str, rows: u64) -> Result<(), ArchiveError> {
        match self.stores.bucket.hash(key).await? {
            Some((b, sha)) if b == bytes && sha == sha256 => {}
            other => {
                return Err(ArchiveError::Verification(format!(
                    "{key}: S3 holds {other:?}, wrote {bytes} bytes with SHA-256 {sha256}"
                )));
            }
        }
        let footer_rows = parquet_read::remote_rows(&*self.stores.bucket, key).await?;
        if footer_rows != rows {
            return Err(ArchiveError::Verification(format!("{key}: footer says {footer_rows} rows, wrote {rows}")));
        }
        Ok(())
    }

    async fn check_manifest(&self, key: &str, sha256: &str) -> Result<(), ArchiveError> {
        match self.stores.bucket.get_bytes(key).await? {
            Some((bytes, _)) if manifest::hash(&bytes) == sha256 => Ok(()),
            _ => Err(ArchiveError::Verification(format!("{key} does not hold the manifest just written"))),
        }
    }

    /// Finishes the step a previous run left, and returns the chain's head.
    async fn resume(
        &self,
        tenant: &TenantId,
        p: &Pending,
        head: Option<ChainHead>,
    ) -> Result<Option<ChainHead>, ArchiveError> {
        tracing::info!(%tenant, date = %p.date, phase = ?p.phase, "finishing the step a previous run left");
        let key = manifest::manifest_key(tenant.as_str(), &p.date);
        let stored = self.stores.bucket.get_bytes(&key).await?;
        let written = stored.as_ref().is_some_and(|(b, _)| manifest::hash(b) == p.manifest);
        if p.phase == Phase::Manifest && !written {
            // The manifest was never written: nothing was deleted; the day starts over.
            self.stores.registry.finish(tenant, &self.owner, p).await?;
            return Ok(head);
        }
        let Some((bytes, _)) = stored.filter(|_| written) else {
            return Err(ArchiveError::Verification(format!(
                "{key} no longer holds the manifest whose deletes are pending; run auditlog verify"
            )));
        };
        if p.phase == Phase::Manifest {
            self.stores.registry.advance(tenant, &self.owner, p).await?;
        }
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Verification(format!("{key}: {e}")))?;
        for name in &p.parts {
            let entry = m.parts.iter().find(|e| &e.name == name).ok_or_else(|| {
                ArchiveError::Verification(format!("{key} does not list {name}, whose deletes are pending"))
            })?;
            let part_key = format!("{}{name}", manifest::day_prefix(tenant.as_str(), &p.date));
            let scratch = Scratch::new(".parquet");
            self.stores.bucket.download(&part_key, scratch.path()).await?;
            let (bytes, sha) = hash_file(scratch.path())?;
            if bytes != entry.bytes || sha != entry.sha256 {
                return Err(ArchiveError::Verification(format!(
                    "{part_key} differs from its manifest; nothing deleted"
                )));
            }
            self.delete_ids_of(tenant, scratch.path()).await?;
        }
        self.stores.registry.finish(tenant, &self.owner, p).await?;
        Ok(Some(ChainHead { seq: p.seq, sha256: p.manifest.clone() }))
    }

    /// Deletes online exactly the events a verified part holds, read from its id column.
    async fn delete_ids_of(&self, tenant: &TenantId, part: &Path) -> Result<(), ArchiveError> {
        for ids in parquet_read::ids(std::fs::File::open(part)?, DELETE_CHUNK)? {
            self.stores.deleter.delete(tenant, &ids?).await?;
        }
        Ok(())
    }
}

fn day_start(day: &str) -> Timestamp {
    Timestamp::parse(&format!("{day}T00:00:00Z")).unwrap_or(Timestamp::MIN)
}
