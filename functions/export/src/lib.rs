//! The export function (contract section 2, `/v1/exports`, and section 5): the API
//! (`export-api`, which also publishes the signing keys at `GET /v1/keys`) and the queue
//! worker that writes the files (`export-worker`), which also reads the export
//! dead-letter queue to end the jobs whose runs all died. Requests, jobs and files live
//! in `audit::usecases::export`; this maps them to HTTP and SQS.

use audit::domain::cursor::CursorKey;
use audit::domain::error::Code;
use audit::domain::export::{Job, Status as JobStatus};
use audit::domain::export_dispatch::Limits;
use audit::domain::export_part::Sizes;
use audit::domain::ingest::Tally;
use audit::domain::signing::keys_view;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::KeyDirectory;
use audit::usecases::export::Exporter;
use audit::usecases::export::requests::Exports;
use audit_http::{ApiError, Scope, Verifier, caller};
use audit_runtime::config::{self, Auth, ConfigError, Edge, FromEnv, Secret, SigningKeys};
use audit_runtime::metrics::{Metrics, Unit, name};
use audit_runtime::run::{SqsBatchResponse, SqsEvent, SqsMessage, partial_batch};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// What `export-api` reads from the environment.
pub struct ApiConfig {
    pub table: String,
    pub auth: Auth,
    pub export_bucket: String,
    pub export_queue_url: String,
    /// Signs the cursors of `GET /v1/exports`.
    pub cursor_secret: Secret,
    pub limits: Limits,
    /// The keys `GET /v1/keys` publishes.
    pub signing: SigningKeys,
    pub edge: Edge,
}

impl FromEnv for ApiConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            auth: Auth::from_env()?,
            export_bucket: config::required(config::EXPORT_BUCKET)?,
            export_queue_url: config::required(config::EXPORT_QUEUE_URL)?,
            cursor_secret: config::cursor_secret()?,
            limits: config::export_limits()?,
            signing: SigningKeys::from_env()?,
            edge: Edge::from_env()?,
        })
    }

    fn secrets(&mut self) -> Vec<&mut Secret> {
        let mut all = self.auth.secrets();
        all.push(&mut self.cursor_secret);
        all
    }
}

impl ApiConfig {
    /// The key that signs the list's cursors.
    ///
    /// # Errors
    /// [`ConfigError::Secret`] when the cursor secret was not read at start-up.
    pub fn cursor_key(&self) -> Result<CursorKey, ConfigError> {
        Ok(CursorKey::derive(self.cursor_secret.value()?))
    }
}

/// What `export-worker` reads from the environment.
pub struct WorkerConfig {
    pub table: String,
    pub archive_bucket: String,
    pub export_bucket: String,
    /// The export queue's dead-letter queue, whose messages are jobs to mark failed.
    pub dead_letter_queue_url: String,
    /// The export queue, where a job waits again while its tenant's slots are taken.
    pub queue_url: String,
    pub limits: Limits,
    pub sizes: Sizes,
    /// `AUDIT_EXPORT_MAX_ROWS`, the operator's guard: 0 (the default) for none.
    pub max_rows: u64,
    pub hot_days: u32,
    /// The key that signs each export's manifest.
    pub signing: SigningKeys,
    pub metrics: Metrics,
}

impl FromEnv for WorkerConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            archive_bucket: config::required(config::ARCHIVE_BUCKET)?,
            export_bucket: config::required(config::EXPORT_BUCKET)?,
            dead_letter_queue_url: config::required(config::EXPORT_DLQ_URL)?,
            queue_url: config::required(config::EXPORT_QUEUE_URL)?,
            limits: config::export_limits()?,
            sizes: config::export_sizes()?,
            max_rows: config::number(config::EXPORT_MAX_ROWS, 0, 0)?,
            hot_days: config::hot_days()?,
            signing: SigningKeys::from_env()?,
            metrics: Metrics::from_env()?,
        })
    }
}

pub struct ExportState {
    pub exports: Exports,
    pub verifier: Verifier,
    /// The public keys that check manifests and checkpoints.
    pub keys: Arc<dyn KeyDirectory>,
}

/// How long clients may keep the list of keys: a rotation reaches them within it.
const KEYS_MAX_AGE: &str = "public, max-age=300";

/// The exports API, and the signing keys. The same router runs on Lambda and in the
/// local runner.
pub fn app(state: Arc<ExportState>) -> Router {
    Router::new()
        .route("/v1/exports", post(create).get(list))
        .route("/v1/exports/{id}", get(one))
        .route("/v1/keys", get(keys))
        .with_state(state)
}

/// `GET /v1/keys`, no token: the public keys, current and retired, that check every
/// export manifest and archive checkpoint.
async fn keys(State(s): State<Arc<ExportState>>) -> Result<Response, ApiError> {
    let keys = s.keys.keys().await.map_err(|e| {
        tracing::error!(error = %e, "signing keys unavailable");
        ApiError::new(Code::Throttled, "the signing keys are unavailable; retry")
    })?;
    let mut response = Json(keys_view(&keys)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(KEYS_MAX_AGE));
    Ok(response)
}

async fn create(
    State(s): State<Arc<ExportState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Export).await?;
    let job = s.exports.request(&caller.tenant, &caller.sub, &body).await?;
    let mut response =
        (StatusCode::ACCEPTED, Json(json!({"id": job.id, "status": job.status_at(Timestamp::now()).as_str()})))
            .into_response();
    // The export was logged as an event first: the edge counts it (`Source` = http).
    response.extensions_mut().insert(Tally { created: 1, ..Tally::default() });
    Ok(response)
}

async fn one(
    State(s): State<Arc<ExportState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Export).await?;
    match s.exports.get(&caller.tenant, &id).await? {
        Some(job) => Ok(Json(job).into_response()),
        None => Err(ApiError::new(Code::NotFound, "no such export")),
    }
}

async fn list(
    State(s): State<Arc<ExportState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Export).await?;
    let page = s.exports.list(&caller.tenant, q.as_deref().unwrap_or_default()).await?;
    Ok(Json(json!({ "items": page.items, "next_cursor": page.next_cursor })).into_response())
}

/// One delivery of the export queue (one job or part per message), within an
/// invocation that must end by `deadline`: each run to its end or paused before the
/// deadline, or reported for redelivery when its record is unavailable or the message is
/// not a job's.
pub async fn handle_jobs(
    exporter: &Exporter,
    metrics: &Metrics,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    partial_batch(event, |m| async move {
        run_job(exporter, metrics, m.body.as_deref().unwrap_or_default(), deadline).await
    })
    .await
}

/// One job message run; a job taken over from a run cut short, and the job's end, go to
/// the metrics.
async fn run_job(exporter: &Exporter, metrics: &Metrics, body: &str, deadline: Instant) -> bool {
    let before = job_before(exporter, body).await;
    let start = serde_json::from_str::<JobMessage>(body).is_ok_and(|m| m.part.is_none());
    if let Some(j) = before
        .as_ref()
        .filter(|j| start && j.plan.is_none() && j.status == JobStatus::Running && j.claimable(Timestamp::now()))
    {
        let props = [("tenant", json!(j.tenant.as_str())), ("id", json!(j.id))];
        metrics.emit(&[&["Stack"]], &[], &[(name::EXPORTS_RECLAIMED, Unit::Count, 1.0)], &props);
    }
    let done = exporter.consume(body, Some(deadline)).await;
    ended(exporter, metrics, before).await;
    done
}

/// A dead-lettered job marked failed; its failure goes to the metrics.
async fn end_dead_letter(exporter: &Exporter, metrics: &Metrics, body: &str) -> bool {
    let before = job_before(exporter, body).await;
    let done = exporter.dead_letter(body).await;
    ended(exporter, metrics, before).await;
    done
}

/// The job a message names, as it was before this run.
async fn job_before(exporter: &Exporter, body: &str) -> Option<Job> {
    let j = serde_json::from_str::<JobMessage>(body).ok()?;
    exporter.jobs.get(&TenantId::parse(&j.tenant_id).ok()?, &j.id).await.ok().flatten()
}

/// The metrics of a job this run ended (a job that had ended already counts no more).
async fn ended(exporter: &Exporter, metrics: &Metrics, before: Option<Job>) {
    let Some(before) = before.filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running)) else { return };
    if let Ok(Some(job)) = exporter.jobs.get(&before.tenant, &before.id).await {
        job_metrics(metrics, &job);
    }
}

/// An export queue message: which job to run, and which part.
#[derive(serde::Deserialize)]
struct JobMessage {
    tenant_id: String,
    id: String,
    #[serde(default)]
    part: Option<u32>,
}

/// A finished job's datapoints (docs/operations.md, "Metrics").
fn job_metrics(metrics: &Metrics, job: &Job) {
    let props = [("tenant", json!(job.tenant.as_str())), ("id", json!(job.id))];
    match job.status {
        JobStatus::Succeeded => {
            let micros = match (job.started_at, job.completed_at) {
                (Some(s), Some(c)) => c.micros() - s.micros(),
                _ => 0,
            };
            #[expect(
                clippy::cast_precision_loss,
                reason = "rows, bytes and microseconds of one export stay far below 2^53"
            )]
            let values = [
                (name::EXPORT_ROWS, Unit::Count, job.rows.unwrap_or_default() as f64),
                (name::EXPORT_BYTES, Unit::Bytes, job.bytes.unwrap_or_default() as f64),
                (name::EXPORT_DURATION_SECONDS, Unit::Seconds, micros as f64 / 1e6),
            ];
            metrics.emit(&[&["Stack"], &["Stack", "Format"]], &[("Format", job.format.as_str())], &values, &props);
        }
        JobStatus::Failed => {
            let code = job.error.as_ref().map_or("internal", |(c, _)| c.as_str());
            metrics.emit(
                &[&["Stack"], &["Stack", "Code"]],
                &[("Code", code)],
                &[(name::EXPORT_FAILURES, Unit::Count, 1.0)],
                &props,
            );
            if code == "data_integrity" {
                // The job's message names the event or the archived object that failed.
                let why = job.error.as_ref().map(|(_, m)| m.as_str());
                let props = [("tenant", json!(job.tenant.as_str())), ("export", json!(job.id)), ("error", json!(why))];
                metrics.emit(&[&["Stack"]], &[], &[(name::DATA_INTEGRITY_ERRORS, Unit::Count, 1.0)], &props);
            }
        }
        _ => {}
    }
}

/// One delivery of the export dead-letter queue: each job marked failed.
pub async fn handle_dead_letters(exporter: &Exporter, metrics: &Metrics, event: SqsEvent) -> SqsBatchResponse {
    partial_batch(
        event,
        |m| async move { end_dead_letter(exporter, metrics, m.body.as_deref().unwrap_or_default()).await },
    )
    .await
}

/// One delivery of either queue the worker's Lambda function reads, told apart by the
/// queue each message comes from (the dead-letter queue named by its URL).
pub async fn handle_queue(
    exporter: &Exporter,
    dead_letter_queue_url: &str,
    metrics: &Metrics,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    let dead = |m: &SqsMessage| {
        let queue = m.event_source_arn.as_deref().and_then(|arn| arn.rsplit(':').next());
        queue.is_some() && queue == dead_letter_queue_url.rsplit('/').next()
    };
    partial_batch(event, |m| async move {
        let body = m.body.as_deref().unwrap_or_default();
        if dead(&m) {
            end_dead_letter(exporter, metrics, body).await
        } else {
            run_job(exporter, metrics, body, deadline).await
        }
    })
    .await
}

#[cfg(test)]
mod tests;
