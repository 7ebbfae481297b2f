//! The exports API's side of a job (`/v1/exports`): asking for an export, which takes a
//! place among the tenant's queued and running exports ([`Limits::active`]), logs it and
//! queues it; and seeing how it went, with a fresh download link while it lasts.

use crate::domain::cursor::{CursorKey, ExportsPosition};
use crate::domain::error::{Code, ErrorBody};
use crate::domain::event::{Reason, Violation};
use crate::domain::export::{Job, Message, Shown, Status};
use crate::domain::export_dispatch::{Limits, RETRY_AFTER_SECONDS};
use crate::domain::export_part::{self, Progress};
use crate::domain::export_request::{ExportRequest, parse_request, query_json};
use crate::domain::filter::query_pairs;
use crate::domain::ingest::Status as IngestStatus;
use crate::domain::own;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::ports::{BlobStore, Catalogs, EventWriter, ExportJobs, MessageQueue, Outgoing, TenantRegistry, Tenants};
use crate::usecases::export::dispatch;
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
/// Jobs on a page of the list when the request does not say (`limit`, 1-100).
pub const DEFAULT_PAGE: usize = 20;
/// Most jobs on a page of the list.
pub const MAX_PAGE: usize = 100;

/// One page of the tenant's exports, as the API shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

#[derive(Clone)]
pub struct Exports {
    pub jobs: Arc<dyn ExportJobs>,
    /// Logs each export as an event of the caller's tenant.
    pub ingest: Ingest,
    /// The export queue.
    pub queue: Arc<dyn MessageQueue>,
    /// The export bucket: links to finished files, and expired files deleted.
    pub files: Arc<dyn BlobStore>,
    /// Signs the list's cursors.
    pub cursors: CursorKey,
    pub limits: Limits,
}

impl Exports {
    /// The exports API on one store (jobs, and the events that log them), `queue` and the
    /// export bucket `files`, with the default [`Limits`].
    pub fn on<S, Q, F>(store: &Arc<S>, queue: &Arc<Q>, files: &Arc<F>, cursors: CursorKey) -> Self
    where
        S: ExportJobs + EventWriter + Tenants + TenantRegistry + Catalogs + 'static,
        Q: MessageQueue + 'static,
        F: BlobStore + 'static,
    {
        Self {
            jobs: store.clone(),
            ingest: Ingest::on(store),
            queue: queue.clone(),
            files: files.clone(),
            cursors,
            limits: Limits::default(),
        }
    }

    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Creates, logs and queues an export of `body` for `requested_by`; the job queued.
    ///
    /// # Errors
    /// The contract's error: the body's violations; `throttled` with a retry time when
    /// the tenant has its limit of exports queued or running (nothing logged or queued);
    /// storage or the queue unavailable.
    pub async fn request(&self, tenant: &TenantId, requested_by: &str, body: &[u8]) -> Result<Job, ErrorBody> {
        let now = Timestamp::now();
        let request = parse_request(body, now).map_err(|v| ErrorBody::invalid("invalid export request", &v))?;
        let job = Job::new(tenant.clone(), requested_by, request.format, request.query.clone(), now);
        self.admit(&job, now).await?;
        if let Err(e) = self.jobs.create(&job).await {
            dispatch::finish(&*self.jobs, tenant, &job.id).await;
            return Err(e.body());
        }
        // Logged before it is queued: no export ever runs unlogged.
        if let Err(e) = self.log(&job, &request).await {
            self.abandon(&job, "internal", "the export could not be logged", now).await;
            return Err(e);
        }
        let message = Message { tenant_id: tenant.to_string(), id: job.id.clone(), part: None };
        let body = serde_json::to_string(&message).map_err(|e| ErrorBody::internal(&e))?;
        if let Err(e) = self.queue.send(Outgoing::text(body)).await {
            tracing::error!(error = %e, "export queue unavailable");
            self.abandon(&job, "storage_unavailable", "the export could not be queued", now).await;
            return Err(ErrorBody::new(Code::Throttled, "the export queue is unavailable; retry"));
        }
        Ok(job)
    }

    /// Takes a place for `job` among the tenant's queued and running exports. At the
    /// limit, the places of jobs that ended without giving theirs back are freed first.
    async fn admit(&self, job: &Job, now: Timestamp) -> Result<(), ErrorBody> {
        let (jobs, tenant, limits) = (&*self.jobs, &job.tenant, self.limits);
        if dispatch::apply(jobs, tenant, |d| d.admit(&job.id, now, limits)).await.map_err(|e| e.body())? {
            return Ok(());
        }
        let mut ended = Vec::new();
        for id in jobs.dispatch(tenant).await.map_err(|e| e.body())?.settled(now) {
            let found = jobs.get(tenant, &id).await.map_err(|e| e.body())?;
            if found.is_none_or(|j| !matches!(j.status, Status::Queued | Status::Running)) {
                ended.push(id);
            }
        }
        let admitted = !ended.is_empty()
            && dispatch::apply(jobs, tenant, |d| {
                let freed = ended.iter().fold(d.clone(), |d, id| d.finish(id).unwrap_or(d));
                freed.admit(&job.id, now, limits)
            })
            .await
            .map_err(|e| e.body())?;
        if admitted {
            return Ok(());
        }
        Err(ErrorBody::new(
            Code::Throttled,
            format!("a tenant has at most {} exports queued or running; retry when one has finished", limits.active),
        )
        .retry_after(RETRY_AFTER_SECONDS))
    }

    /// A job that could not be logged or queued: failed, and its place given back.
    async fn abandon(&self, job: &Job, code: &str, message: &str, now: Timestamp) {
        let _ = self.jobs.fail(&job.tenant, &job.id, code, message, now).await;
        dispatch::finish(&*self.jobs, &job.tenant, &job.id).await;
    }

    /// Records `audit_log.export` in the caller's tenant, as the service's own event.
    async fn log(&self, job: &Job, request: &ExportRequest) -> Result<(), ErrorBody> {
        let filters = query_json(&request.query);
        let actor_id: String = job.requested_by.chars().take(256).collect();
        let event = json!({
            "id": own::event_id(&format!("export:{}", job.id)),
            "action": "audit_log.export",
            "actor": {"type": "member", "id": if actor_id.is_empty() { "unknown".to_owned() } else { actor_id }},
            "resource": {"type": "export", "id": job.id},
            "description": format!("Requested an export of audit log events as {}", request.format.as_str()),
            "metadata": {"format": request.format.as_str(), "filters": filters},
        });
        let results = self.ingest.record_own(&job.tenant, vec![event]).await;
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

    /// A page of the tenant's jobs of the last seven days, newest first, as the API
    /// shows them. `query` may hold `limit` (1-100, default [`DEFAULT_PAGE`]) and the
    /// `cursor` of the page before, each once.
    ///
    /// # Errors
    /// `invalid_request` for any other parameter, a `limit` out of range or a cursor this
    /// service did not sign for this tenant; as [`Exports::get`].
    pub async fn list(&self, tenant: &TenantId, query: &str) -> Result<Page, ErrorBody> {
        let (mut limit, mut cursor, mut v) = (DEFAULT_PAGE, None, Vec::new());
        let mut seen = Vec::new();
        for (k, value) in query_pairs(query) {
            let bad = |reason, message: &str| Violation { field: k.clone(), reason, message: message.into() };
            if seen.contains(&k) {
                v.push(bad(Reason::InvalidValue, "given more than once"));
                continue;
            }
            seen.push(k.clone());
            match k.as_str() {
                "limit" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_PAGE).contains(&n) => limit = n,
                    _ => v.push(bad(Reason::InvalidValue, "1 to 100")),
                },
                "cursor" => cursor = Some(value),
                _ => v.push(bad(Reason::UnknownField, "unknown parameter")),
            }
        }
        if !v.is_empty() {
            return Err(ErrorBody::invalid("invalid parameters", &v));
        }
        let after = match cursor.map(|c| self.cursors.decode_exports(&c, tenant.as_str())) {
            None => None,
            Some(Ok(pos)) => Some(pos.after),
            Some(Err(_)) => {
                return Err(ErrorBody::new(
                    Code::InvalidRequest,
                    "the cursor is invalid, or was issued to another tenant",
                )
                .with_details(&[json!({"field": "cursor", "reason": "invalid_cursor"})]));
            }
        };
        let now = Timestamp::now();
        let since = now.plus_seconds(-LIST_DAYS * 86_400);
        // One more than the page shows: whether there is a next page.
        let mut jobs = self.jobs.list(tenant, since, after.as_deref(), limit + 1).await.map_err(|e| e.body())?;
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        let next_cursor = jobs.last().filter(|_| more).map(|last| {
            self.cursors.encode_exports(&ExportsPosition { tenant: tenant.to_string(), after: last.id.clone() })
        });
        let mut items = Vec::with_capacity(jobs.len());
        for job in &jobs {
            items.push(self.view(job, now).await?);
        }
        Ok(Page { items, next_cursor })
    }

    /// The job as the API shows it: how far it has come; fresh links while its files are
    /// downloadable (each file, the manifest, and the file of a one-file export); past its
    /// time, `expired` and the files deleted.
    async fn view(&self, job: &Job, now: Timestamp) -> Result<Value, ErrorBody> {
        let parts = match job.plan {
            Some(_) => self.jobs.parts(&job.tenant, &job.id).await.map_err(|e| e.body())?,
            None => Vec::new(),
        };
        let total = job.plan.as_ref().and_then(|p| u32::try_from(p.len()).ok());
        let mut shown = Shown { progress: Progress::of(total, &parts), ..Shown::default() };
        match (job.status_at(now), job.expires_at) {
            (Status::Succeeded, Some(expires_at)) => {
                // Never a moment past expires_at: in its last second there is no link.
                let until = expires_at.min(now.plus_seconds(i64::try_from(LINK_TTL.as_secs()).unwrap_or(i64::MAX)));
                let sign = |key: String| async move {
                    self.files.presign_get(&key, until).await.map_err(|e| ErrorBody::internal(&e))
                };
                if job.files.is_none() {
                    shown.download_url = sign(job.object_key()).await?;
                } else {
                    let mut parts = parts;
                    parts.sort_by_key(|p| p.index);
                    let end = parts.iter().position(|p| p.truncated).map_or(parts.len(), |i| i + 1);
                    let manifest = export_part::manifest_key(job.tenant.as_str(), &job.id);
                    // All links or none: a list missing the files whose link came a moment
                    // too late would look like a smaller export.
                    let mut links = Vec::new();
                    for file in parts.into_iter().take(end).flat_map(|p| p.files) {
                        let url = sign(file.key.clone()).await?;
                        links.push(url.map(|u| (file, u)));
                    }
                    if let (Some(manifest_url), Some(files)) =
                        (sign(manifest).await?, links.into_iter().collect::<Option<Vec<_>>>())
                    {
                        if let [(_, url)] = files.as_slice() {
                            shown.download_url = Some(url.clone());
                        }
                        shown.manifest_url = Some(manifest_url);
                        shown.files = files;
                    }
                }
            }
            (Status::Expired, _) if job.status == Status::Succeeded => {
                // The bucket's lifecycle rule is the backstop; the files go as soon as
                // anyone sees they have expired.
                if let Err(e) = self.delete_files(job, &parts).await {
                    tracing::warn!(error = %e, "could not delete an expired export");
                } else if let Err(e) = self.jobs.expire(&job.tenant, &job.id).await {
                    tracing::warn!(error = %e, "could not mark an export expired");
                }
            }
            _ => {}
        }
        Ok(job.view(now, shown))
    }

    /// Deletes an expired job's files and manifest.
    async fn delete_files(&self, job: &Job, parts: &[export_part::Part]) -> Result<(), crate::ports::BlobError> {
        if job.files.is_none() {
            return self.files.delete(&job.object_key()).await;
        }
        for file in parts.iter().flat_map(|p| &p.files) {
            self.files.delete(&file.key).await?;
        }
        self.files.delete(&export_part::manifest_key(job.tenant.as_str(), &job.id)).await
    }
}
