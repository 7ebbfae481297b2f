//! The export function (contract section 2, `/v1/exports`, and section 5): the API
//! (`export-api`) and the queue worker that writes the files (`export-worker`), which
//! also reads the export dead-letter queue to end the jobs whose runs all died.
//! Requests, jobs and files live in `audit::usecases::export`; this maps them to HTTP
//! and SQS.

use audit::domain::error::Code;
use audit::domain::timestamp::Timestamp;
use audit::usecases::export::Exporter;
use audit::usecases::export::requests::Exports;
use audit_http::{ApiError, Scope, Verifier, caller};
use audit_runtime::config::{self, Auth, ConfigError, FromEnv};
use audit_runtime::run::{SqsBatchResponse, SqsEvent, SqsMessage, partial_batch};
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
}

impl FromEnv for ApiConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            auth: Auth::from_env()?,
            export_bucket: config::required(config::EXPORT_BUCKET)?,
            export_queue_url: config::required(config::EXPORT_QUEUE_URL)?,
        })
    }
}

/// What `export-worker` reads from the environment.
pub struct WorkerConfig {
    pub table: String,
    pub archive_bucket: String,
    pub export_bucket: String,
    /// The export queue's dead-letter queue, whose messages are jobs to mark failed.
    pub dead_letter_queue_url: String,
    /// `AUDIT_EXPORT_MAX_ROWS` (contract: 1,000,000 by default).
    pub max_rows: u64,
    pub hot_days: u32,
}

impl FromEnv for WorkerConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            archive_bucket: config::required(config::ARCHIVE_BUCKET)?,
            export_bucket: config::required(config::EXPORT_BUCKET)?,
            dead_letter_queue_url: config::required(config::EXPORT_DLQ_URL)?,
            max_rows: config::number(config::EXPORT_MAX_ROWS, 1_000_000, 0)?,
            hot_days: config::hot_days()?,
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
    Ok((StatusCode::ACCEPTED, Json(json!({"id": job.id, "status": job.status_at(Timestamp::now()).as_str()})))
        .into_response())
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
pub async fn handle_jobs(exporter: &Exporter, event: SqsEvent) -> SqsBatchResponse {
    partial_batch(event, |m| async move { exporter.consume(m.body.as_deref().unwrap_or_default()).await }).await
}

/// One delivery of the export dead-letter queue: each job marked failed.
pub async fn handle_dead_letters(exporter: &Exporter, event: SqsEvent) -> SqsBatchResponse {
    partial_batch(event, |m| async move { exporter.dead_letter(m.body.as_deref().unwrap_or_default()).await }).await
}

/// One delivery of either queue the worker's Lambda function reads, told apart by the
/// queue each message comes from (the dead-letter queue named by its URL).
pub async fn handle_queue(exporter: &Exporter, dead_letter_queue_url: &str, event: SqsEvent) -> SqsBatchResponse {
    let dead = |m: &SqsMessage| {
        let queue = m.event_source_arn.as_deref().and_then(|arn| arn.rsplit(':').next());
        queue.is_some() && queue == dead_letter_queue_url.rsplit('/').next()
    };
    partial_batch(event, |m| async move {
        let body = m.body.as_deref().unwrap_or_default();
        if dead(&m) { exporter.dead_letter(body).await } else { exporter.consume(body).await }
    })
    .await
}

#[cfg(test)]
mod tests;
