//! A job's start: claimed, its range cut into parts by what the archive's manifests
//! count ([`crate::domain::export_part::plan`]), the plan recorded once, every further
//! part queued (without the guard; with it, each part queues the next when it ends), and
//! the first part produced in this same run.

use super::{ExportError, Exporter};
use crate::domain::export::{Job, Produced, Status};
use crate::domain::export_part::{self, ArchivedDay, Range};
use crate::domain::export_request::stored_filter;
use crate::domain::manifest::{self, Manifest, ManifestObject};
use crate::domain::timestamp::Timestamp;
use crate::ports::StoreError;
use futures::StreamExt;
use std::time::Instant;

/// Manifests read at once while planning.
const MANIFEST_READS: usize = 16;

impl Exporter {
    /// Starts a job: see the module's documentation. A job planned already (its start was
    /// delivered again after a crash) has the parts not yet done queued again.
    pub(super) async fn start(&self, job: Job, deadline: Option<Instant>) -> Result<Option<Produced>, StoreError> {
        let (tenant, id) = (&job.tenant, job.id.as_str());
        if let (Status::Running, Some(plan)) = (job.status, &job.plan) {
            let done = self.jobs.parts(tenant, id).await?;
            let waiting = (0..plan.len())
                .filter_map(|i| u32::try_from(i).ok())
                .filter(|i| !done.iter().any(|p| p.index == *i && p.status == export_part::PartStatus::Done));
            for index in waiting.take(if self.max_rows > 0 { 1 } else { usize::MAX }) {
                self.send(tenant, id, Some(index), 0).await?;
            }
            return Ok(None);
        }
        let now = Timestamp::now();
        if !job.claimable(now) {
            tracing::info!(%tenant, id, status = job.status.as_str(), "export job already taken");
            return Ok(None);
        }
        if !self.claim_slot(&job, id, None).await? {
            return Ok(None);
        }
        if !self.jobs.claim(tenant, id, now).await? {
            tracing::info!(%tenant, id, "export job taken meanwhile");
            self.release_slot(&job, id).await;
            return Ok(None);
        }
        let ranges = match self.plan(&job).await {
            Ok(r) => r,
            Err(e) => return self.fail(&job, &e).await,
        };
        if !self.jobs.set_plan(tenant, id, &ranges).await? {
            tracing::info!(%tenant, id, "export job planned by another run");
            self.release_slot(&job, id).await;
            return Ok(None);
        }
        tracing::info!(%tenant, id, parts = ranges.len(), "export planned");
        // Without the guard every part runs as soon as a slot allows; with it, in order.
        if self.max_rows == 0 {
            for index in (1..ranges.len()).filter_map(|i| u32::try_from(i).ok()) {
                self.send(tenant, id, Some(index), 0).await?;
            }
        }
        let job = Job { status: Status::Running, plan: Some(ranges), ..job };
        self.run_part(&job, 0, &job.id, deadline).await
    }

    /// The job's parts, newest first: its range cut where the archive's manifests say.
    async fn plan(&self, job: &Job) -> Result<Vec<Range>, ExportError> {
        let filter = stored_filter(&job.query).map_err(|v| ExportError::BadJob(format!("{v:?}")))?;
        let (first, last) =
            (filter.from.day(), Timestamp::from_micros(filter.to.micros() - 1).unwrap_or(filter.to).day());
        let t = job.tenant.as_str();
        let prefix = format!("{}date=", manifest::manifests_prefix(t));
        let days: Vec<String> = self
            .archive
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| match manifest::parse_key(t, &o.key) {
                Some(ManifestObject::Day(d)) if d >= first && d <= last => Some(d),
                _ => None,
            })
            .collect();
        let archive = &*self.archive;
        let read = futures::stream::iter(days)
            .map(|day| async move {
                let key = manifest::manifest_key(t, &day);
                let Some((bytes, _)) = archive.get_bytes(&key).await? else { return Ok(None) };
                let m: Manifest = serde_json::from_slice(&bytes)
                    .map_err(|e| ExportError::Archive(format!("{key} is unreadable: {e}")))?;
                archived_day(&key, &m).map(Some)
            })
            .buffer_unordered(MANIFEST_READS)
            .collect::<Vec<Result<Option<ArchivedDay>, ExportError>>>()
            .await;
        let mut counted = Vec::new();
        for day in read {
            counted.extend(day?);
        }
        Ok(export_part::plan(Range { from: filter.from, to: filter.to }, &counted, self.sizes.part_rows))
    }
}

/// What a day's manifest counts.
fn archived_day(key: &str, m: &Manifest) -> Result<ArchivedDay, ExportError> {
    let time = |t: &str| Timestamp::parse(t).map_err(|_| ExportError::Archive(format!("{key} lists an invalid time")));
    let parts =
        m.parts.iter().map(|p| Ok((time(&p.first)?, time(&p.last)?, p.rows))).collect::<Result<_, ExportError>>()?;
    Ok(ArchivedDay { day: time(&format!("{}T00:00:00Z", m.date))?, parts })
}
