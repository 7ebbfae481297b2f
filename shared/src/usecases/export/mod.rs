//! Export jobs (contract sections 2 and 5): every event matching a job's filters, newest
//! first, from the online store and the archive together, streamed into one file.
//!
//! Two sources are merged in `(occurred_at, id)` order, newest first:
//! - online: the query API's own plan (path, partitions, filters), one stream per
//!   partition ([`online`]);
//! - archived: the days with a manifest in the range, opened as the export reaches
//!   them; per day, the parts whose first/last times overlap it, and per part only the
//!   row groups whose statistics do, each fetched with one ranged read and read from its
//!   end ([`archived`]).
//!
//! An archive run may move days while the export runs. After every online read that
//! could have missed events the archive just tombstoned (in a day the archive may be
//! moving), the archived side lists the days again and re-reads the open days'
//! manifests before anything below is written, so an event is found in one place or the
//! other. While an archive run is between a manifest and its tombstones an event is in
//! both; equal keys meet in the merge and the second is dropped. The file is uploaded
//! as it fills, so memory stays bounded whatever its size. [`requests`] is the API side:
//! asking for an export and seeing how it went, and the dead letters of jobs that never
//! finished.
//!
//! Tenants take the workers in turn ([`crate::domain::export_dispatch`]): a job runs only
//! in one of its tenant's running slots; a job whose tenant has none free goes back on the
//! queue for [`REQUEUE_SECONDS`] and the worker takes the next message, so one tenant's
//! backlog never holds another tenant's export behind it.

pub mod archived;
pub mod dispatch;
pub mod online;
pub mod requests;

use crate::domain::export::{INCOMPLETE, Job, Message, Produced};
use crate::domain::export_dispatch::{Limits, REQUEUE_SECONDS};
use crate::domain::export_request::stored_filter;
use crate::domain::filter::Filter;
use crate::domain::retention::online_start;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::formats::ExportFile;
use crate::formats::parquet_read::FooterError;
use crate::ports::{
    BlobError, BlobStore, Catalogs, EventIndex, EventReader, ExportJobs, MessageQueue, Outgoing, StoreError, Tenants,
    Upload,
};
use crate::usecases::merge::{Ahead, Keyed, Sorted};
use std::sync::Arc;

/// Days this close to the online window's start may be moving when the export runs (an
/// archive run's clock and the tenant's settings may differ a little from the export's).
const MOVING_MARGIN_DAYS: i64 = 2;

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
            Self::Store(StoreError::Corrupt(_) | StoreError::Altered { .. }) | Self::Archive(_) | Self::Parquet(_) => {
                "data_integrity"
            }
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
    /// The export queue, where a job waits again while its tenant's slots are taken.
    pub queue: Arc<dyn MessageQueue>,
    pub limits: Limits,
    /// `AUDIT_EXPORT_MAX_ROWS`: past it, the most recent rows are kept.
    pub max_rows: u64,
    /// `AUDIT_HOT_DAYS`, for tenants without their own window: which days an archive run
    /// may be moving while an export reads them.
    pub default_hot_days: u32,
}

impl Exporter {
    /// The worker on one store that holds jobs, tenants, catalogs and events, with the
    /// default [`Limits`].
    pub fn on<S, A, E, Q>(
        store: &Arc<S>,
        archive: &Arc<A>,
        exports: &Arc<E>,
        queue: &Arc<Q>,
        max_rows: u64,
        default_hot_days: u32,
    ) -> Self
    where
        S: ExportJobs + Tenants + Catalogs + EventIndex + EventReader + 'static,
        A: BlobStore + 'static,
        E: BlobStore + 'static,
        Q: MessageQueue + 'static,
    {
        Self {
            jobs: store.clone(),
            tenants: store.clone(),
            catalogs: store.clone(),
            index: store.clone(),
            events: store.clone(),
            archive: archive.clone(),
            exports: exports.clone(),
            queue: queue.clone(),
            limits: Limits::default(),
            max_rows,
            default_hot_days,
        }
    }

    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
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

    /// Handles one message of the export dead-letter queue: a job whose every delivery
    /// ended without finishing it (the worker timed out or crashed each time) is marked
    /// `failed` with code `incomplete`, so it ends. Returns whether it is done with: not
    /// when the job's record cannot be written (the message comes back). A body that is
    /// no job's names nothing to mark; it is logged and dropped.
    pub async fn dead_letter(&self, body: &str) -> bool {
        let message = serde_json::from_str::<Message>(body)
            .map_err(|e| e.to_string())
            .and_then(|m| TenantId::parse(&m.tenant_id).map(|t| (t, m.id)).map_err(|e| e.to_string()));
        let (tenant, id) = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(body, error = %e, "dead letter that is not an export job message; dropped");
                return true;
            }
        };
        let why = "the export did not finish in any of its attempts (each was stopped by the time limit or a crash); ask for a smaller range";
        match self.jobs.fail(&tenant, &id, INCOMPLETE, why, Timestamp::now()).await {
            Ok(marked) => {
                tracing::warn!(%tenant, id, marked, "export job dead-lettered");
                dispatch::finish(&*self.jobs, &tenant, &id).await;
                true
            }
            Err(e) => {
                tracing::warn!(%tenant, id, error = %e, "could not mark a dead-lettered export job failed; retrying");
                false
            }
        }
    }

    /// Runs one job to its end: `succeeded`, or `failed` with a reason. A job that is
    /// finished, or running under another delivery, is left alone; one whose tenant has
    /// no running slot free goes back on the queue for [`REQUEUE_SECONDS`].
    ///
    /// # Errors
    /// [`StoreError`] when the job's own record, or its tenant's dispatch record, cannot be
    /// read or written, or it cannot be queued again; the queue delivers the message again.
    pub async fn run(&self, tenant: &TenantId, id: &str) -> Result<Option<Produced>, StoreError> {
        let Some(job) = self.jobs.get(tenant, id).await? else {
            tracing::warn!(%tenant, id, "export job not found");
            dispatch::finish(&*self.jobs, tenant, id).await;
            return Ok(None);
        };
        let now = Timestamp::now();
        if !job.claimable(now) {
            tracing::info!(%tenant, id, status = job.status.as_str(), "export job already taken");
            return Ok(None);
        }
        let limits = self.limits;
        if !dispatch::apply(&*self.jobs, tenant, |d| d.claim(id, now, limits)).await? {
            self.requeue(tenant, id).await?;
            return Ok(None);
        }
        if !self.jobs.claim(tenant, id, now).await? {
            tracing::info!(%tenant, id, "export job taken meanwhile");
            if let Err(e) = dispatch::apply(&*self.jobs, tenant, |d| d.release(id)).await {
                tracing::warn!(%tenant, id, error = %e, "running slot not released; its lease ends it");
            }
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let ran = match self.produce(&job).await {
            Ok(p) => {
                tracing::info!(%tenant, id, rows = p.rows, bytes = p.bytes, seconds = started.elapsed().as_secs_f64(), "export done");
                self.jobs.succeed(tenant, id, p, Timestamp::now()).await.map(|_| Some(p))
            }
            Err(e) => {
                tracing::error!(%tenant, id, error = %e, "export failed");
                self.jobs.fail(tenant, id, e.code(), &e.to_string(), Timestamp::now()).await.map(|_| None)
            }
        };
        if ran.is_ok() {
            dispatch::finish(&*self.jobs, tenant, id).await;
        }
        ran
    }

    /// Puts a job back on the queue for a while: its tenant's running slots are taken.
    async fn requeue(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        tracing::info!(%tenant, id, delay = REQUEUE_SECONDS, "tenant at its running limit; export job requeued");
        let body = serde_json::to_string(&Message { tenant_id: tenant.to_string(), id: id.to_owned() })
            .map_err(|e| StoreError::Refused(e.to_string()))?;
        let message = Outgoing { body, attributes: Vec::new(), delay_seconds: REQUEUE_SECONDS };
        self.queue.send(message).await.map_err(|e| StoreError::Unavailable(e.to_string()))
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
        // Whether the range reaches days an archive run may be moving while the export
        // reads them; if not, no online read can miss what the archive moved.
        let moving = filter.from
            < online_start(Timestamp::now(), settings.hot_days.unwrap_or(self.default_hot_days))
                .plus_seconds(MOVING_MARGIN_DAYS * 86_400);
        let (catalogs, index, events) = (&*self.catalogs, &*self.index, &*self.events);
        let online = online::OnlineRows::open(catalogs, index, events, &job.tenant, settings, filter).await?;
        let mut online = Ahead::new(online);
        let mut archived =
            archived::ArchiveSide::open(&*self.archive, &job.tenant, filter, job.format.columns()).await?;
        let mut synced = 0;
        let mut last: Option<archived::Position> = None;
        let mut buf = job.format.header();
        let mut rows = 0u64;
        let mut truncated = false;
        loop {
            while online.head().is_none() && !online.exhausted() {
                online.fill().await?;
            }
            let reads = online.inner().reads();
            if reads != synced && moving {
                archived.sync(last.as_ref()).await?;
            }
            synced = reads;
            archived.fill().await?;
            let frontier = match (online.head().map(|r| r.key().0), archived.head().map(|r| r.key().0)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if archived.open_due(frontier, last.as_ref()).await? {
                continue;
            }
            // On equal keys the online copy is taken; the archived one is dropped below.
            let from_online = match (online.head().map(Keyed::key), archived.head().map(Keyed::key)) {
                (Some(a), Some(b)) => a >= b,
                (a, _) => a.is_some(),
            };
            let row = if from_online { online.pop() } else { archived.pop() };
            let Some(row) = row else { break };
            let (t, id) = row.key();
            if last.as_ref().is_some_and(|(lt, lid)| *lt == t && lid == id) {
                continue;
            }
            last = Some((t, id.to_owned()));
            // The online side is filtered already; this is the definition it follows.
            if !from_online && !filter.matches(&row) {
                continue;
            }
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
