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

pub mod manifest;
pub mod online;
pub mod registry;
pub mod verify;

use crate::blob::{self, BlobError, Bucket, Condition};
use crate::event::StoredEvent;
use crate::parquet_writer::PartWriter;
use crate::reader::online_start;
use crate::scratch::Scratch;
use crate::store::{Store, StoreError};
use crate::tenant::TenantId;
use crate::timestamp::Timestamp;
use arrow_array::cast::AsArray;
use manifest::{ChainHead, Manifest, PartEntry};
use online::DayStream;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use registry::{Pending, Phase, Registry, RegistryError};
use serde::Serialize;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

/// Ids read back from a part per delete round.
const DELETE_CHUNK: usize = 4_096;
/// Events checked against the base table at once when adding to an archived day.
const CONFIRM_CHUNK: usize = 100;

const PARQUET_TYPE: &str = "application/vnd.apache.parquet";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
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

impl Options {
    #[must_use]
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self { default_hot_days: config.hot_days, part_max_rows: config.archive_part_rows }
    }
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

pub struct Archiver<'a> {
    pub store: &'a Store,
    pub bucket: &'a Bucket,
    pub options: Options,
    pub registry: Registry<'a>,
}

impl<'a> Archiver<'a> {
    #[must_use]
    pub fn new(store: &'a Store, bucket: &'a Bucket, options: Options) -> Self {
        let owner = format!("archive-{}", uuid::Uuid::now_v7());
        Self { store, bucket, options, registry: Registry { store, owner } }
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
            None => self.registry.tenants().await?,
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
        self.registry.lease(tenant).await?;
        let result = self.tenant_leased(tenant, now, deadline, report).await;
        if let Err(e) = self.registry.release(tenant).await {
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
        let settings = self.store.tenant_settings(tenant).await?;
        let cutoff = online_start(now, settings.hot_days.unwrap_or(self.options.default_hot_days)).day();
        let state = self.registry.state(tenant).await?;
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
            let Some(day) =
                online::earliest_day(self.store, tenant, settings.shards, after.as_deref(), &cutoff).await?
            else {
                return Ok(());
            };
            self.registry.lease(tenant).await?;
            if let Some(done) = self.day(tenant, settings.shards, &day, &mut head).await? {
                tracing::info!(%tenant, date = %done.date, rows = done.rows, seq = done.seq, "day archived");
                report.days.push(done);
            }
            after = Some(day);
        }
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
        let current = match self.bucket.get_bytes(&manifest_key).await? {
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
        let mut stream = DayStream::new(self.store, tenant, shards, date);
        let mut parts: Vec<(PartEntry, Scratch)> = Vec::new();
        loop {
            let scratch = Scratch::new(".parquet");
            let Some((rows, first, last)) = self.write_part(&mut stream, tenant, confirm, scratch.path()).await? else {
                break;
            };
            let name = manifest::part_name(first_part + parts.len());
            let key = format!("{}{name}", manifest::day_prefix(t, date));
            let (bytes, sha256) = blob::hash_file(scratch.path())?;
            self.bucket.put_file(&key, scratch.path(), PARQUET_TYPE).await?;
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
        self.registry.begin(tenant, &pending).await?;
        let condition = match &current {
            Some((_, _, etag)) => Condition::Matches(etag.clone()),
            None => Condition::Absent,
        };
        self.bucket.put_bytes(&manifest_key, bytes, "application/json", condition).await?;
        self.check_manifest(&manifest_key, &pending.manifest).await?;
        self.registry.advance(tenant, &pending).await?;
        *head = Some(ChainHead { seq: pending.seq, sha256: pending.manifest.clone() });
        for (_, scratch) in &parts {
            self.delete_ids_of(tenant, scratch.path()).await?;
        }
        self.registry.finish(tenant, &pending).await?;
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
        stream: &mut DayStream<'_>,
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
                    Some(e) => chunk.push(e),
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            let keep = if confirm {
                let ids: Vec<&str> = chunk.iter().map(|e| e.event.id.as_str()).collect();
                online::existing(self.store, tenant, &ids).await?
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
        match self.bucket.hash(key).await? {
            Some((b, sha)) if b == bytes && sha == sha256 => {}
            other => {
                return Err(ArchiveError::Verification(format!(
                    "{key}: S3 holds {other:?}, wrote {bytes} bytes with SHA-256 {sha256}"
                )));
            }
        }
        let footer_rows = self.bucket.parquet_rows(key).await?;
        if footer_rows != rows {
            return Err(ArchiveError::Verification(format!("{key}: footer says {footer_rows} rows, wrote {rows}")));
        }
        Ok(())
    }

    async fn check_manifest(&self, key: &str, sha256: &str) -> Result<(), ArchiveError> {
        match self.bucket.get_bytes(key).await? {
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
        let stored = self.bucket.get_bytes(&key).await?;
        let written = stored.as_ref().is_some_and(|(b, _)| manifest::hash(b) == p.manifest);
        if p.phase == Phase::Manifest && !written {
            // The manifest was never written: nothing was deleted; the day starts over.
            self.registry.finish(tenant, p).await?;
            return Ok(head);
        }
        let Some((bytes, _)) = stored.filter(|_| written) else {
            return Err(ArchiveError::Verification(format!(
                "{key} no longer holds the manifest whose deletes are pending; run auditlog verify"
            )));
        };
        if p.phase == Phase::Manifest {
            self.registry.advance(tenant, p).await?;
        }
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Verification(format!("{key}: {e}")))?;
        for name in &p.parts {
            let entry = m.parts.iter().find(|e| &e.name == name).ok_or_else(|| {
                ArchiveError::Verification(format!("{key} does not list {name}, whose deletes are pending"))
            })?;
            let part_key = format!("{}{name}", manifest::day_prefix(tenant.as_str(), &p.date));
            let scratch = Scratch::new(".parquet");
            self.bucket.download(&part_key, scratch.path()).await?;
            let (bytes, sha) = blob::hash_file(scratch.path())?;
            if bytes != entry.bytes || sha != entry.sha256 {
                return Err(ArchiveError::Verification(format!(
                    "{part_key} differs from its manifest; nothing deleted"
                )));
            }
            self.delete_ids_of(tenant, scratch.path()).await?;
        }
        self.registry.finish(tenant, p).await?;
        Ok(Some(ChainHead { seq: p.seq, sha256: p.manifest.clone() }))
    }

    /// Deletes online exactly the events a verified part holds, read from its id column.
    async fn delete_ids_of(&self, tenant: &TenantId, part: &Path) -> Result<(), ArchiveError> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(part)?)?;
        let id_column = builder.parquet_schema().columns().iter().position(|c| c.name() == "id");
        let id_column = id_column.ok_or_else(|| ArchiveError::Verification("a part without an id column".into()))?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [id_column]);
        let reader = builder.with_projection(mask).with_batch_size(DELETE_CHUNK).build()?;
        for batch in reader {
            let batch = batch?;
            let ids: Vec<String> = batch.column(0).as_string::<i32>().iter().flatten().map(str::to_owned).collect();
            online::delete(self.store, tenant, &ids).await?;
        }
        Ok(())
    }
}
