//! The exports API's side of a job (`/v1/exports`): asking for an export, which logs it
//! and queues it, and seeing how it went, with a fresh download link while it lasts.

use crate::domain::error::{Code, ErrorBody};
use crate::domain::export::{Job, Message, Status};
use crate::domain::export_request::{ExportRequest, parse_request};
use crate::domain::filter::query_pairs;
use crate::domain::ingest::Status as IngestStatus;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::ports::{BlobStore, Catalogs, EventWriter, ExportJobs, MessageQueue, Outgoing, TenantRegistry, Tenants};
use crate::usecases::ingest::Ingest;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Longest a download link lives. Each view signs a fresh one, never valid past the
/// job's `expires_at`; on Lambda it is signed with the role's temporary credentials and
/// so also dies with them.
pub const LINK_TTL: Duration = Duration::from_secs(3600);
/// How far back the list of exports goes.
const LIST_DAYS: i64 = 7;

#[derive(Clone)]
pub struct Exports {
    pub jobs: Arc<dyn ExportJobs>,
    /// Logs each export as an event of the caller's tenant.
    pub ingest: Ingest,
    /// The export queue.
    pub queue: Arc<dyn MessageQueue>,
    /// The export bucket: links to finished files, and expired files deleted.
    pub files: Arc<dyn BlobStore>,
}

impl Exports {
    /// The exports API on one store (jobs, and the events that log them), `queue` and the
    /// export bucket `files`.
    pub fn on<S, Q, F>(store: &Arc<S>, queue: &Arc<Q>, files: &Arc<F>) -> Self
    where
        S: ExportJobs + EventWriter + Tenants + TenantRegistry + Catalogs + 'static,
        Q: MessageQueue + 'static,
        F: BlobStore + 'static,
    {
        Self { jobs: store.clone(), ingest: Ingest::on(store), queue: queue.clone(), files: files.clone() }
    }

    /// Creates, logs and queues an export of `body` for `requested_by`; the job queued.
    ///
    /// # Errors
    /// The contract's error: the body's violations, or storage or the queue unavailable.
    pub async fn request(&self, tenant: &TenantId, requested_by: &str, body: &[u8]) -> Result<Job, ErrorBody> {
        let now = Timestamp::now();
        let request = parse_request(body, now).map_err(|v| ErrorBody::invalid("invalid export request", &v))?;
        let job = Job::new(tenant.clone(), requested_by, request.format, request.query.clone(), now);
        self.jobs.create(&job).await.map_err(|e| e.body())?;
        // Logged before it is queued: no export ever runs unlogged.
        if let Err(e) = self.log(&job, &request).await {
            let _ = self.jobs.fail(tenant, &job.id, "internal", "the export could not be logged", now).await;
            return Err(e);
        }
        let message = Message { tenant_id: tenant.to_string(), id: job.id.clone() };
        let body = serde_json::to_string(&message).map_err(|e| ErrorBody::internal(&e))?;
        if let Err(e) = self.queue.send(Outgoing::text(body)).await {
            tracing::error!(error = %e, "export queue unavailable");
            let _ = self.jobs.fail(tenant, &job.id, "storage_unavailable", "the export could not be queued", now).await;
            return Err(ErrorBody::new(Code::Throttled, "the export queue is unavailable; retry"));
        }
        Ok(job)
    }

    /// Records `audit_log.export` in the caller's tenant, as any other event.
    async fn log(&self, job: &Job, request: &ExportRequest) -> Result<(), ErrorBody> {
        let filters: serde_json::Map<String, Value> =
            query_pairs(&request.query).into_iter().fold(serde_json::Map::new(), |mut m, (k, v)| {
                match m.get_mut(&k) {
                    Some(Value::Array(list)) => list.push(Value::String(v)),
                    Some(old) => *old = json!([old.clone(), v]),
                    None => {
                        m.insert(k, Value::String(v));
                    }
                }
                m
            });
        let actor_id: String = job.requested_by.chars().take(256).collect();
        let event = json!({
            "id": format!("export:{}", job.id),
            "action": "audit_log.export",
            "actor": {"type": "member", "id": if actor_id.is_empty() { "unknown".to_owned() } else { actor_id }},
            "resource": {"type": "export", "id": job.id},
            "description": format!("Requested an export of audit log events as {}", request.format.as_str()),
            "metadata": {"format": request.format.as_str(), "filters": filters},
        });
        let results = self.ingest.ingest(&job.tenant, vec![event]).await;
        let result = results.first();
        match result.map(|r| r.status) {
            Some(IngestStatus::Created | IngestStatus::Duplicate) => Ok(()),
            // Storage busy: the client's retry can succeed.
            _ if result.and_then(|r| r.error.as_ref()).is_some_and(|e| e.code == Code::Throttled) => {
                Err(ErrorBody::new(Code::Throttled, "the export could not be logged; retry"))
            }
            // Refused for good (the request parser let through what an event may not hold):
            // a bug of ours, which a retry would only repeat.
            _ => {
                tracing::error!(?results, "export event refused");
                Err(ErrorBody::new(Code::Internal, "the export could not be logged"))
            }
        }
    }

    /// The tenant's job `id` as the API shows it, if there is one.
    ///
    /// # Errors
    /// Storage unavailable, or a link that cannot be signed.
    pub async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Value>, ErrorBody> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        match self.jobs.get(tenant, id).await.map_err(|e| e.body())? {
            Some(job) => Ok(Some(self.view(&job, Timestamp::now()).await?)),
            None => Ok(None),
        }
    }

    /// The tenant's jobs of the last seven days, newest first, as the API shows them.
    ///
    /// # Errors
    /// As [`Exports::get`].
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Value>, ErrorBody> {
        let now = Timestamp::now();
        let jobs = self.jobs.list(tenant, now.plus_seconds(-LIST_DAYS * 86_400)).await.map_err(|e| e.body())?;
        let mut items = Vec::with_capacity(jobs.len());
        for job in &jobs {
            items.push(self.view(job, now).await?);
        }
        Ok(items)
    }

    /// The job as the API shows it: a fresh link while the file is downloadable; past its
    /// time, `expired` and the file deleted.
    async fn view(&self, job: &Job, now: Timestamp) -> Result<Value, ErrorBody> {
        let url = match (job.status_at(now), job.expires_at) {
            (Status::Succeeded, Some(expires_at)) => {
                // Never a moment past expires_at: in its last second there is no link.
                let until = expires_at.min(now.plus_seconds(i64::try_from(LINK_TTL.as_secs()).unwrap_or(i64::MAX)));
                self.files.presign_get(&job.object_key(), until).await.map_err(|e| ErrorBody::internal(&e))?
            }
            (Status::Expired, _) if job.status == Status::Succeeded => {
                // The bucket's lifecycle rule is the backstop; the file goes as soon as
                // anyone sees it has expired.
                if let Err(e) = self.files.delete(&job.object_key()).await {
                    tracing::warn!(error = %e, "could not delete an expired export");
                } else if let Err(e) = self.jobs.expire(&job.tenant, &job.id).await {
                    tracing::warn!(error = %e, "could not mark an export expired");
                }
                None
            }
            _ => None,
        };
        Ok(job.view(now, url))
    }
}
