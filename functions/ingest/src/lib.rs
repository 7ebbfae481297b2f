//! The ingest function: `POST /v1/events` (`ingest-api`) and the ingest queue consumer
//! (`ingest-queue`). Parsing, rules and storage live in `audit::usecases::{ingest,
//! consume}`; this maps them to HTTP and to SQS deliveries.

use audit::domain::error::Code;
use audit::domain::ingest::{ItemResult, MAX_BODY_BYTES, parse_body};
use audit::usecases::consume::Consumer;
use audit::usecases::ingest::Ingest;
use audit_http::{ApiError, Scope, Verifier, caller};
use audit_runtime::config::{self, Auth, ConfigError, FromEnv};
use audit_runtime::run::{SqsBatchResponse, SqsEvent, partial_batch};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// What `ingest-api` reads from the environment.
pub struct ApiConfig {
    pub table: String,
    pub auth: Auth,
}

impl FromEnv for ApiConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { table: config::table()?, auth: Auth::from_env()? })
    }
}

/// What `ingest-queue` reads from the environment.
pub struct QueueConfig {
    pub table: String,
    /// Where events that can never be stored go.
    pub dead_letter_url: String,
}

impl FromEnv for QueueConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { table: config::table()?, dead_letter_url: config::required(config::INGEST_DLQ_URL)? })
    }
}

/// What every request handler shares, built once per process.
pub struct AppState {
    pub ingest: Ingest,
    pub verifier: Verifier,
}

/// The ingest API. The same router runs on Lambda and in the local runner.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new().route("/v1/events", post(post_events)).with_state(state)
}

async fn post_events(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Write).await?;
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::new(Code::PayloadTooLarge, "a request body is at most 5 MiB"))?;
    let events = parse_body(&bytes).map_err(|e| ApiError(e.0))?;
    let results = s.ingest.ingest(&caller.tenant, events).await;
    let status = if results.iter().any(ItemResult::stored) {
        StatusCode::ACCEPTED
    } else if results.iter().any(ItemResult::transient) {
        // Nothing stored because storage was busy: not the client's fault, so not a 400.
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(json!({ "results": results }))).into_response())
}

/// One delivery of the ingest queue: each message stored or dead-lettered, or reported
/// for redelivery after a transient failure.
pub async fn handle_queue(consumer: &Consumer, event: SqsEvent) -> SqsBatchResponse {
    partial_batch(event, |m| async move {
        consumer.consume(m.message_id.as_deref(), m.body.as_deref().unwrap_or_default()).await
    })
    .await
}

#[cfg(test)]
mod tests;
