//! Export jobs (contract sections 2 and 5): every event matching a job's filters, newest
//! first, from the online store and the archive together, in files of any total size,
//! with a signed manifest.
//!
//! A job runs in parts ([`crate::domain::export_part`]). The job's first message plans it
//! ([`plan`]: its range cut by time into parts as the archive's manifests count them),
//! sends one message per further part to the export queue, and produces the first part
//! itself; a small export is one part and one file, written in that one invocation. Each
//! part runs in one of its tenant's running slots (`{job}/{part}`), so one tenant's large
//! export takes at most its running limit of the shared workers, and another tenant's
//! export still starts. A part writes one or more files ([`part`]), each recorded once it
//! is in S3 with where the next one carries on; before its invocation's deadline a part
//! stops after its current file and queues itself again. The part that finds every part
//! done writes the signed manifest and ends the job ([`finish`]).
//!
//! Within a part, two sources are merged in `(occurred_at, id)` order, newest first:
//! - online: the query API's own plan (path, partitions, filters), one stream per
//!   partition ([`online`]);
//! - archived: the days with a manifest in the range, opened as the export reaches
//!   them; per day, the parts whose first/last times overlap it, and per part only the
//!   row groups whose statistics do, each fetched with one ranged read and read from its
//!   end in bounded slices ([`archived`]).
//!
//! An archive run may move days while the export runs. After every online read that
//! could have missed events the archive just tombstoned (in a day the archive may be
//! moving), the archived side lists the days again and re-reads the open days'
//! manifests before anything below is written, so an event is found in one place or the
//! other. While an archive run is between a manifest and its tombstones an event is in
//! both; equal keys meet in the merge and the second is dropped. Parts cover disjoint
//! ranges, so what holds for one holds for all. [`requests`] is the API side: asking for
//! an export and seeing how it went, and the dead letters of jobs that never finished.

pub mod archived;
pub mod dispatch;
mod finish;
pub mod online;
mod part;
mod plan;
pub mod requests;

use crate::domain::export::{INCOMPLETE, Job, Message, Produced, Status};
use crate::domain::export_dispatch::{Limits, REQUEUE_SECONDS};
use crate::domain::export_part::Sizes;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::formats::parquet_read::FooterError;
use crate::ports::{
    ArchiveRegistry, BlobError, BlobStore, Catalogs, EventIndex, EventReader, ExportJobs, MessageQueue, Outgoing,
    SignError, Signer, StoreError, Tenants,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time kept back from an invocation's deadline: a part stops writing this long before
/// it, ends its file (the last upload part, the completion, the record) and queues itself
/// again.
pub const PAUSE_MARGIN: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("reading or writing parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The archive is not as its manifests say; `auditlog verify` tells more.
    #[error("the archive is inconsistent: {0}")]
    Archive(String),
    #[error("the job's stored filters are invalid: {0}")]
    BadJob(String),
    #[error(transparent)]
    Sign(#[from] SignError),
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
            Self::Store(_) | Self::Blob(_) | Self::Sign(_) => "storage_unavailable",
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
    /// The archive's chain head, which a manifest names.
    pub registry: Arc<dyn ArchiveRegistry>,
    pub archive: Arc<dyn BlobStore>,
    pub exports: Arc<dyn BlobStore>,
    /// The export queue: a job's parts, and a job waiting again while its tenant's slots
    /// are taken.
    pub queue: Arc<dyn MessageQueue>,
    /// Signs each job's manifest.
    pub signer: Arc<dyn Signer>,
    pub limits: Limits,
    pub sizes: Sizes,
    /// `AUDIT_EXPORT_MAX_ROWS`, the operator's guard (0: none). With it, a job's parts
    /// run one after another, newest first, and past it the export keeps the most recent
    /// rows and says `truncated`.
    pub max_rows: u64,
    /// `AUDIT_HOT_DAYS`, for tenants without their own window: which days an archive run
    /// may be moving while an export reads them.
    pub default_hot_days: u32,
}

impl Exporter {
    /// The worker on one store that holds jobs, tenants, catalogs, events and the archive
    /// registry, with the default [`Limits`] and [`Sizes`].
    #[allow(clippy::too_many_arguments)]
    pub fn on<S, A, E, Q, K>(
        store: &Arc<S>,
        archive: &Arc<A>,
        exports: &Arc<E>,
        queue: &Arc<Q>,
        signer: &Arc<K>,
        max_rows: u64,
        default_hot_days: u32,
    ) -> Self
    where
        S: ExportJobs + Tenants + Catalogs + EventIndex + EventReader + ArchiveRegistry + 'static,
        A: BlobStore + 'static,
        E: BlobStore + 'static,
        Q: MessageQueue + 'static,
        K: Signer + 'static,
    {
        Self {
            jobs: store.clone(),
            tenants: store.clone(),
            catalogs: store.clone(),
            index: store.clone(),
            events: store.clone(),
            registry: store.clone(),
            archive: archive.clone(),
            exports: exports.clone(),
            queue: queue.clone(),
            signer: signer.clone(),
            limits: Limits::default(),
            sizes: Sizes::default(),
            max_rows,
            default_hot_days,
        }
    }

    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    #[must_use]
    pub fn with_sizes(mut self, sizes: Sizes) -> Self {
        self.sizes = sizes;
        self
    }

    /// Handles one export queue message within an invocation that must end by
    /// `deadline`; returns whether it is done with. A message that is not a job's is not
    /// done, so the queue's redrive policy moves it to the dead-letter queue rather than
    /// dropping it.
    pub async fn consume(&self, body: &str, deadline: Option<Instant>) -> bool {
        match parse(body) {
            Ok((tenant, id, part)) => match self.run(&tenant, &id, part, deadline).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(%tenant, id, part, error = %e, "export job record unavailable; retrying");
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
    /// (of the job, or of one of its parts) ended without finishing it (the worker timed
    /// out or crashed each time) is marked `failed` with code `incomplete`, so it ends.
    /// Returns whether it is done with: not when the job's record cannot be written (the
    /// message comes back). A body that is no job's names nothing to mark; it is logged
    /// and dropped.
    pub async fn dead_letter(&self, body: &str) -> bool {
        let (tenant, id) = match parse(body) {
            Ok((t, id, _)) => (t, id),
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

    /// Runs what one message names: a job's start (`part` none: plan it, queue its other
    /// parts, produce its first), or one of its parts; returns what the job produced
    /// when this run ended it. A job that is finished, or a part another run holds, is
    /// left alone; a unit whose tenant has no running slot free goes back on the queue
    /// for [`REQUEUE_SECONDS`].
    ///
    /// # Errors
    /// [`StoreError`] when the job's own records, or its tenant's dispatch record, cannot
    /// be read or written, or a message cannot be sent; the queue delivers the message
    /// again.
    pub async fn run(
        &self,
        tenant: &TenantId,
        id: &str,
        part: Option<u32>,
        deadline: Option<Instant>,
    ) -> Result<Option<Produced>, StoreError> {
        let Some(job) = self.jobs.get(tenant, id).await? else {
            tracing::warn!(%tenant, id, "export job not found");
            dispatch::finish(&*self.jobs, tenant, id).await;
            return Ok(None);
        };
        match part {
            None => self.start(job, deadline).await,
            Some(index)
                if job.status == Status::Running && job.plan.as_ref().is_some_and(|p| (index as usize) < p.len()) =>
            {
                let holder = format!("{id}/{index}");
                if !self.claim_slot(&job, &holder, Some(index)).await? {
                    return Ok(None);
                }
                self.run_part(&job, index, &holder, deadline).await
            }
            Some(index) => {
                tracing::info!(%tenant, id, index, status = job.status.as_str(), "export part not runnable; dropped");
                Ok(None)
            }
        }
    }

    /// A running slot for `holder`; when the tenant has none free, the message goes back
    /// on the queue for a while and `false`.
    async fn claim_slot(&self, job: &Job, holder: &str, part: Option<u32>) -> Result<bool, StoreError> {
        let (now, limits) = (Timestamp::now(), self.limits);
        if dispatch::apply(&*self.jobs, &job.tenant, |d| d.claim(holder, now, limits)).await? {
            return Ok(true);
        }
        tracing::info!(tenant = %job.tenant, id = job.id, part, delay = REQUEUE_SECONDS, "tenant at its running limit; export requeued");
        self.send(&job.tenant, &job.id, part, REQUEUE_SECONDS).await?;
        Ok(false)
    }

    /// Gives a running slot back; a failure is only logged (its lease ends it).
    async fn release_slot(&self, job: &Job, holder: &str) {
        if let Err(e) = dispatch::apply(&*self.jobs, &job.tenant, |d| d.release(holder)).await {
            tracing::warn!(tenant = %job.tenant, id = job.id, holder, error = %e, "running slot not released; its lease ends it");
        }
    }

    /// Queues a message for the job (one of its parts, if `part`), after `delay` seconds.
    async fn send(&self, tenant: &TenantId, id: &str, part: Option<u32>, delay: u32) -> Result<(), StoreError> {
        let body = serde_json::to_string(&Message { tenant_id: tenant.to_string(), id: id.to_owned(), part })
            .map_err(|e| StoreError::Refused(e.to_string()))?;
        let message = Outgoing { body, attributes: Vec::new(), delay_seconds: delay };
        self.queue.send(message).await.map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Ends a job as failed with the error's code, and gives its places back.
    async fn fail(&self, job: &Job, e: &ExportError) -> Result<Option<Produced>, StoreError> {
        tracing::error!(tenant = %job.tenant, id = job.id, error = %e, "export failed");
        self.jobs.fail(&job.tenant, &job.id, e.code(), &e.to_string(), Timestamp::now()).await?;
        dispatch::finish(&*self.jobs, &job.tenant, &job.id).await;
        Ok(None)
    }
}

/// A message's tenant, job and part.
fn parse(body: &str) -> Result<(TenantId, String, Option<u32>), String> {
    let m = serde_json::from_str::<Message>(body).map_err(|e| e.to_string())?;
    let tenant = TenantId::parse(&m.tenant_id).map_err(|e| e.to_string())?;
    Ok((tenant, m.id, m.part))
}
