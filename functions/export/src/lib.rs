//! The export function's HTTP edge (contract section 2, `/v1/exports`). Requests, jobs
//! and files live in `audit::export`; this maps them to HTTP.

use audit::api::{ApiError, caller};
use audit::auth::{Caller, Scope, Verifier};
use audit::blob::Bucket;
use audit::error::{Code, ErrorBody};
use audit::export::Message;
use audit::export::job::{Job, Jobs, Status};
use audit::export::request::{ExportRequest, parse_request};
use audit::ingest::{Status as IngestStatus, ingest};
use audit::store::{Store, StoreError};
use audit::timestamp::Timestamp;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Longest a download link lives. Each `GET` signs a fresh one, never valid past the
/// job's `expires_at`; on Lambda it is signed with the role's temporary credentials and
/// so also dies with them (README, "Download links").
pub const LINK_TTL: Duration = Duration::from_secs(3600);
/// How far back `GET /v1/exports` lists.
const LIST_DAYS: i64 = 7;

pub struct ExportState {
    pub store: Store,
    pub verifier: Verifier,
    pub exports: Bucket,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

/// The exports API. The same router runs on Lambda and in the local runner.
pub fn app(state: Arc<ExportState>) -> Router {
    Router::new().route("/v1/exports", post(create).get(list)).route("/v1/exports/{id}", get(one)).with_state(state)
}

fn store_error(e: &StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) => ApiError::new(Code::Throttled, "storage is busy; retry"),
        other => ApiError::internal(other),
    }
}

async fn create(
    State(s): State<Arc<ExportState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Export).await?;
    let now = Timestamp::now();
    let request = parse_request(&body, now).map_err(|v| {
        let first = v.first().map_or_else(String::new, |v| format!(": {} {}", v.field, v.message));
        ApiError(ErrorBody::new(Code::InvalidRequest, format!("invalid export request{first}")).with_details(&v))
    })?;
    let job = Job::new(caller.tenant.clone(), &caller.sub, request.format, request.query.clone(), now);
    let jobs = Jobs { store: &s.store };
    jobs.create(&job).await.map_err(|e| store_error(&e))?;
    // Logged before it is queued: no export ever runs unlogged.
    if let Err(e) = log_export(&s.store, &caller, &job, &request).await {
        let _ = jobs.fail(&caller.tenant, &job.id, "internal", "the export could not be logged").await;
        return Err(e);
    }
    let message = serde_json::to_string(&Message { tenant_id: caller.tenant.to_string(), id: job.id.clone() })
        .map_err(|e| ApiError::internal(&e))?;
    if let Err(e) = s.sqs.send_message().queue_url(&s.queue_url).message_body(message).send().await {
        tracing::error!(error = ?e, "export queue unavailable");
        let _ = jobs.fail(&caller.tenant, &job.id, "storage_unavailable", "the export could not be queued").await;
        return Err(ApiError::new(Code::Throttled, "the export queue is unavailable; retry"));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"id": job.id, "status": "queued"}))).into_response())
}

/// Records `audit_log.export` in the caller's tenant, as any other event.
async fn log_export(store: &Store, caller: &Caller, job: &Job, request: &ExportRequest) -> Result<(), ApiError> {
    let filters: serde_json::Map<String, Value> =
        audit::filter::query_pairs(&request.query).into_iter().fold(serde_json::Map::new(), |mut m, (k, v)| {
            match m.get_mut(&k) {
                Some(Value::Array(list)) => list.push(Value::String(v)),
                Some(old) => *old = json!([old.clone(), v]),
                None => {
                    m.insert(k, Value::String(v));
                }
            }
            m
        });
    let actor_id: String = caller.sub.chars().take(256).collect();
    let event = json!({
        "id": format!("export:{}", job.id),
        "action": "audit_log.export",
        "actor": {"type": "member", "id": if actor_id.is_empty() { "unknown".to_owned() } else { actor_id }},
        "resource": {"type": "export", "id": job.id},
        "description": format!("Requested an export of audit log events as {}", request.format.as_str()),
        "metadata": {"format": request.format.as_str(), "filters": filters},
    });
    let results = ingest(store, &caller.tenant, vec![event]).await;
    match results.first().map(|r| r.status) {
        Some(IngestStatus::Created | IngestStatus::Duplicate) => Ok(()),
        _ => {
            tracing::error!(?results, "export event refused");
            Err(ApiError::new(Code::Throttled, "the export could not be logged; retry"))
        }
    }
}

/// The job as the API shows it: a fresh link while the file is downloadable; past its
/// time, `expired` and the file deleted.
async fn present(s: &ExportState, job: &Job, now: Timestamp) -> Result<Value, ApiError> {
    let url = match (job.status_at(now), job.expires_at) {
        (Status::Succeeded, Some(expires_at)) => {
            let left = Duration::from_micros(u64::try_from(expires_at.micros() - now.micros()).unwrap_or(0));
            let ttl = left.min(LINK_TTL).max(Duration::from_secs(1));
            Some(s.exports.presign_get(&job.object_key(), ttl).await.map_err(|e| ApiError::internal(&e))?)
        }
        (Status::Expired, _) if job.status == Status::Succeeded => {
            // The bucket's lifecycle rule is the backstop; the file goes as soon as
            // anyone sees it has expired.
            if let Err(e) = s.exports.delete(&job.object_key()).await {
                tracing::warn!(error = %e, "could not delete an expired export");
            } else if let Err(e) = (Jobs { store: &s.store }).expire(&job.tenant, &job.id).await {
                tracing::warn!(error = %e, "could not mark an export expired");
            }
            None
        }
        _ => None,
    };
    Ok(job.view(now, url))
}

async fn one(
    State(s): State<Arc<ExportState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Export).await?;
    let not_found = || ApiError::new(Code::NotFound, "no such export");
    if id.is_empty() || id.len() > 64 {
        return Err(not_found());
    }
    let job = (Jobs { store: &s.store })
        .get(&caller.tenant, &id)
        .await
        .map_err(|e| store_error(&e))?
        .ok_or_else(not_found)?;
    Ok(Json(present(&s, &job, Timestamp::now()).await?).into_response())
}

async fn list(State(s): State<Arc<ExportState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Export).await?;
    let now = Timestamp::now();
    let jobs = (Jobs { store: &s.store }).list(&caller.tenant, now.plus_seconds(-LIST_DAYS * 86_400)).await;
    let mut items = Vec::new();
    for job in jobs.map_err(|e| store_error(&e))? {
        items.push(present(&s, &job, now).await?);
    }
    Ok(Json(json!({ "items": items })).into_response())
}
