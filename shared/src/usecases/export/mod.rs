//! Export jobs (contract sections 2 and 5): every event matching a job's filters, newest
//! first, from the online store and the archive together, streamed into one file.
//!
//! Two sources are merged in `(occurred_at, id)` order, newest first:
//! - online: the query API's own plan (path, partitions, filters), one stream per
//!   partition ([`online`]);
//! - archived: the days whose manifests fall in the range, newest first; per day, the
//!   parts whose first/last times overlap it, and per part only the row groups whose
//!   statistics do, each fetched with one ranged read and read from its end
//!   ([`archived`]).
//!
//! While an archive run is between its manifest and its deletes an event is in both
//! places; equal keys meet in the merge and the second is dropped. The file is uploaded
//! as it fills, so memory stays bounded whatever its size. [`requests`] is the API side:
//! asking for an export and seeing how it went.

pub mod archived;
pub mod online;
pub mod requests;

use crate::domain::export::{Job, Message, Produced};
use crate::domain::export_request::stored_filter;
use crate::domain::filter::{Filter, Order};
use crate::domain::row::Row;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::formats::ExportFile;
use crate::formats::parquet_read::FooterError;
use crate::ports::{BlobError, BlobStore, Catalogs, EventIndex, EventReader, ExportJobs, StoreError, Tenants, Upload};
use crate::usecases::merge::{Ahead, Merge, Sorted};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("reading archived parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The archive is not as its manifests say; `auditlog verify` tells more.
    #[error("the archive is inconsistent: {0}")]
    Archive(String),
    #[error("the job's stored filters are invalid: {0}")]
    BadJob(String),
}

impl From<FooterError> for ExportError {
    fn from(e: FooterError) -> Self {
        match e {
            FooterError::NotParquet(why) => Self::Archive(why),
            FooterError::Blob(b) => Self::Blob(b),
        }
    }
}

impl ExportError {
    /// The stable code a failed job reports.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(StoreError::Corrupt(_)) | Self::Archive(_) | Self::Parquet(_) => "data_integrity",
            Self::Store(_) | Self::Blob(_) => "storage_unavailable",
            Self::BadJob(_) => "internal",
        }
    }
}

/// What the export worker reads and writes.
#[derive(Clone)]
pub struct Exporter {
    pub jobs: Arc<dyn ExportJobs>,
    pub tenants: Arc<dyn Tenants>,
    pub catalogs: Arc<dyn Catalogs>,
    pub index: Arc<dyn EventIndex>,
    pub events: Arc<dyn EventReader>,
    pub archive: Arc<dyn BlobStore>,
    pub exports: Arc<dyn BlobStore>,
    /// `AUDIT_EXPORT_MAX_ROWS`: past it, the most recent rows are kept.
    pub max_rows: u64,
}

/// Rows of one side of an export, newest first.
type Side<'a> = Box<dyn Sorted<Item = Row<'static>, Error = ExportError> + 'a>;

impl Exporter {
    /// The worker on one store that holds jobs, tenants, catalogs and events.
    pub fn on<S, A, E>(store: &Arc<S>, archive: &Arc<A>, exports: &Arc<E>, max_rows: u64) -> Self
    where
        S: ExportJobs + Tenants + Catalogs + EventIndex + EventReader + 'static,
        A: BlobStore + 'static,
        E: BlobStore + 'static,
    {
        Self {
            jobs: store.clone(),
            tenants: store.clone(),
            catalogs: store.clone(),
            index: store.clone(),
            events: store.clone(),
            archive: archive.clone(),
            exports: exports.clone(),
            max_rows,
        }
    }

    /// Handles one export queue message; returns whether it is done with. A message that
    /// is not a job's is not done, so the queue's redrive policy moves it to the
    /// dead-letter queue rather than dropping it.
    pub async fn consume(&self, body: &str) -> bool {
        let message = serde_json::from_str::<Message>(body)
            .map_err(|e| e.to_string())
            .and_then(|m| TenantId::parse(&m.tenant_id).map(|t| (t, m.id)).map_err(|e| e.to_string()));
        match message {
            Ok((tenant, id)) => match self.run(&tenant, &id).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(%tenant, id, error = %e, "export job record unavailable; retrying");
                    false
                }
            },
            Err(e) => {
                tracing::error!(body, error = %e, "not an export job message");
                false
            }
        }
    }

    /// Runs one job to its end: `succeeded`, or `failed` with a reason. A job that is
    /// finished, or running under another delivery, is left alone.
    ///
    /// # Errors
    /// [`StoreError`] when the job's own record cannot be read or written; the queue
    /// delivers the message again.
    pub async fn run(&self, tenant: &TenantId, id: &str) -> Result<Option<Produced>, StoreError> {
        let Some(job) = self.jobs.get(tenant, id).await? else {
            tracing::warn!(%tenant, id, "export job not found");
            return Ok(None);
        };
        if !self.jobs.claim(tenant, id, Timestamp::now()).await? {
            tracing::info!(%tenant, id, status = job.status.as_str(), "export job already taken");
            return Ok(None);
        }
        let started = std::time::Instant::now();
        match self.produce(&job).await {
            Ok(p) => {
                tracing::info!(%tenant, id, rows = p.rows, bytes = p.bytes, seconds = started.elapsed().as_secs_f64(), "export done");
                self.jobs.succeed(tenant, id, p, Timestamp::now()).await?;
                Ok(Some(p))
            }
            Err(e) => {
                tracing::error!(%tenant, id, error = %e, "export failed");
                self.jobs.fail(tenant, id, e.code(), &e.to_string(), Timestamp::now()).await?;
                Ok(None)
            }
        }
    }

    async fn produce(&self, job: &Job) -> Result<Produced, ExportError> {
        let filter = stored_filter(&job.query).map_err(|v| ExportError::BadJob(format!("{v:?}")))?;
        let filename = format!("audit-export-{}.{}", job.id, job.format.as_str());
        let mut upload = self.exports.upload(&job.object_key(), job.format.content_type(), Some(&filename));
        let result = self.write(job, &filter, &mut *upload).await;
        if result.is_err() {
            upload.abort().await;
        }
        result
    }

    async fn write(&self, job: &Job, filter: &Filter, upload: &mut dyn Upload) -> Result<Produced, ExportError> {
        let settings = self.tenants.settings(&job.tenant).await?;
        let (catalogs, index, events) = (&*self.catalogs, &*self.index, &*self.events);
        let online = online::OnlineRows::open(catalogs, index, events, &job.tenant, settings, filter).await?;
        let archived = archived::ArchiveRows::open(&*self.archive, &job.tenant, filter, job.format.columns()).await?;
        let (online, archived): (Side<'_>, Side<'_>) = (Box::new(Ahead::new(online)), Box::new(Ahead::new(archived)));
        // Online first: on equal keys its copy is the one kept.
        let mut merged = Merge::new(vec![online, archived], Order::Desc);
        let mut buf = job.format.header();
        let mut rows = 0u64;
        let mut truncated = false;
        while let Some((_, row)) = merged.next().await? {
            if rows == self.max_rows {
                truncated = true;
                break;
            }
            job.format.write(&row, &mut buf);
            rows += 1;
            upload.offer(&mut buf).await?;
        }
        let bytes = upload.finish(buf).await?;
        Ok(Produced { rows, bytes, truncated })
    }
}
