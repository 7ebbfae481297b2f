//! A job's end: once every part is done, its manifest (every file in order, the totals,
//! the archive chain's head) is signed and stored beside the files, and the job succeeds.
//! Whichever run sees the last part done does it; two that do write one manifest (the
//! second finds it written) and one success.

use super::{Exporter, dispatch};
use crate::domain::export::{Job, Produced};
use crate::domain::export_manifest;
use crate::domain::export_part::{self, FileEntry};
use crate::domain::timestamp::Timestamp;
use crate::ports::{BlobError, Condition, StoreError};

impl Exporter {
    /// Ends the job if all its parts are done (under the guard: up to a truncated one).
    pub(super) async fn finish_if_complete(&self, job: &Job) -> Result<Option<Produced>, StoreError> {
        let (tenant, id) = (&job.tenant, job.id.as_str());
        let Some(total) = job.plan.as_ref().and_then(|p| u32::try_from(p.len()).ok()) else { return Ok(None) };
        let mut parts = self.jobs.parts(tenant, id).await?;
        if !export_part::complete(total, &parts) {
            return Ok(None);
        }
        parts.sort_by_key(|p| p.index);
        let end = parts.iter().position(|p| p.truncated).map_or(parts.len(), |i| i + 1);
        let files: Vec<FileEntry> = parts[..end].iter().flat_map(|p| p.files.iter().cloned()).collect();
        let truncated = end < parts.len() || parts.get(end - 1).is_some_and(|p| p.truncated);
        let head = self.registry.state(tenant).await?.head;
        let now = Timestamp::now();
        let unsigned = export_manifest::unsigned(job, &files, truncated, head.as_ref(), now);
        let signature = self
            .signer
            .sign(&export_manifest::message(&unsigned))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let bytes = export_manifest::signed_bytes(unsigned, &signature);
        let key = export_part::manifest_key(tenant.as_str(), id);
        match self.exports.put_bytes(&key, bytes, "application/json", Condition::Absent).await {
            // Taken: another run that saw the last part done wrote it first.
            Ok(()) | Err(BlobError::Precondition(_)) => {}
            Err(e) => return Err(StoreError::Unavailable(e.to_string())),
        }
        let produced = Produced {
            rows: files.iter().map(|f| f.rows).sum(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            truncated,
            files: u32::try_from(files.len()).unwrap_or(u32::MAX),
        };
        let ended = self.jobs.succeed(tenant, id, produced, now).await?;
        dispatch::finish(&*self.jobs, tenant, id).await;
        if !ended {
            return Ok(None);
        }
        tracing::info!(%tenant, id, rows = produced.rows, files = produced.files, truncated, "export done");
        Ok(Some(produced))
    }
}
