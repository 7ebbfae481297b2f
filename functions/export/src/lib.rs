//! The export function (contract section 2, `/v1/exports`, and section 5): the API
//! (`export-api`) and the queue worker that writes the files (`export-worker`). Requests,
//! jobs and files live in `audit::usecases::export`; this maps them to HTTP and SQS.

use audit::domain::error::Code;
use audit::domain::export::{Job, Status as JobStatus};
use audit::domain::ingest::Tally;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::usecases::export::Exporter;
use audit::usecases::export::requests::Exports;
use audit_http::{ApiError, Scope, Verifier, caller};
use audit_runtime::config::{self, Auth, ConfigError, Edge, FromEnv, Secret};
use audit_runtime::metrics::{Metrics, Unit, name};
use audit_runtime::run::{SqsBatchResponse, SqsEvent, partial_batch};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// What `export-api` reads from the environment.
pub struct ApiConfig {
    pub table: String,
    pub auth: Auth,
    pub export_bucket: String,
    pub export_queue_url: String,
    pub edge: Edge,
}

impl FromEnv for ApiConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            auth: Auth::from_env()?,
            export_bucket: config::required(config::EXPORT_BUCKET)?,
            export_queue_url: config::required(config::EXPORT_QUEUE_URL)?,
            edge: Edge::from_env()?,
        })
    }

    fn secrets(&mut self) -> Vec<&mut Secret> {
        self.auth.secrets()
    }
}

/// What `export-worker` reads from the environment.
pub struct WorkerConfig {
    pub table: String,
    pub archive_bucket: String,
    pub export_bucket: String,
    /// `AUDIT_EXPORT_MAX_ROWS` (contract: 1,000,000 by default).
    pub max_rows: u64,
    pub metrics: Metrics,
}

impl FromEnv for WorkerConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            archive_bucket: config::required(config::ARCHIVE_BUCKET)?,
            export_bucket: config::required(config::EXPORT_BUCKET)?,
            max_rows: config::number(config::EXPORT_MAX_ROWS, 1_000_000, 0)?,
            metrics: Metrics::from_env()?,
        })
    }
}

pub struct ExportState {
    pub exports: Exports,
    pub verifier: Verifier,
}

/// The exports API. The same router runs on Lambda and in the local runner.
pub fn app(state: Arc<ExportState>) -> Router {
    Router::new().route("/v1/exports", post(create).get(list)).route("/v1/exports/{id}", get(one)).with_state(state)
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

async fn list(State(s): State<Arc<ExportState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Export).await?;
    let items = s.exports.list(&caller.tenant).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// One delivery of the export queue (one job per message): each job run to its end, or
/// reported for redelivery when its record is unavailable or the message is not a job's.
/// Each job's end goes to the metrics.
pub async fn handle_queue(exporter: &Exporter, metrics: &Metrics, event: SqsEvent) -> SqsBatchResponse {
    partial_batch(event, |m| async move {
        let body = m.body.as_deref().unwrap_or_default();
        let job = serde_json::from_str::<JobMessage>(body)
            .ok()
            .and_then(|j| Some((TenantId::parse(&j.tenant_id).ok()?, j.id)));
        // The job as it was before this run: one taken over from a run cut short counts.
        let before = match &job {
            Some((tenant, id)) => exporter.jobs.get(tenant, id).await.ok().flatten(),
            None => None,
        };
        if before.as_ref().is_some_and(|j| j.status == JobStatus::Running && j.claimable(Timestamp::now())) {
            let props = before.as_ref().map(|j| [("tenant", json!(j.tenant.as_str())), ("id", json!(j.id))]);
            metrics.emit(
                &[&["Stack"]],
                &[],
                &[(name::EXPORTS_RECLAIMED, Unit::Count, 1.0)],
                props.as_ref().map_or(&[][..], |p| &p[..]),
            );
        }
        let done = exporter.consume(body).await;
        let after = match (&job, before.as_ref().map(|j| j.status)) {
            (Some((tenant, id)), Some(JobStatus::Queued | JobStatus::Running)) => {
                exporter.jobs.get(tenant, id).await.ok().flatten()
            }
            _ => None,
        };
        if let Some(job) = after {
            job_metrics(metrics, &job);
        }
        done
    })
    .await
}

/// An export queue message: which job to run.
#[derive(serde::Deserialize)]
struct JobMessage {
    tenant_id: String,
    id: String,
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
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
