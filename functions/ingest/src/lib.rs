//! The ingest function: `POST /v1/events` (`ingest-api`) and the ingest queue consumer
//! (`ingest-queue`). Parsing, rules and storage live in `audit::usecases::{ingest,
//! consume}`; this maps them to HTTP and to SQS deliveries.

use audit::domain::error::Code;
use audit::domain::ingest::{ItemResult, MAX_BODY_BYTES, Tally, parse_body};
use audit::usecases::consume::Consumer;
use audit::usecases::ingest::Ingest;
use audit_http::{ApiError, Scope, Verifier, caller, limits};
use audit_runtime::config::{self, Auth, ConfigError, Edge, FromEnv, Secret};
use audit_runtime::metrics::{Metrics, Unit, name};
use audit_runtime::run::{SqsBatchResponse, SqsEvent, partial_batch};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// What `ingest-api` reads from the environment.
pub struct ApiConfig {
    pub table: String,
    pub auth: Auth,
    pub edge: Edge,
}

impl FromEnv for ApiConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { table: config::table()?, auth: Auth::from_env()?, edge: Edge::from_env()? })
    }

    fn secrets(&mut self) -> Vec<&mut Secret> {
        self.auth.secrets()
    }
}

/// What `ingest-queue` reads from the environment.
pub struct QueueConfig {
    pub table: String,
    /// Where events that can never be stored go.
    pub dead_letter_url: String,
    pub metrics: Metrics,
}

impl FromEnv for QueueConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            dead_letter_url: config::required(config::INGEST_DLQ_URL)?,
            metrics: Metrics::from_env()?,
        })
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
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            "a request body is at most 5 MiB as it reaches the service: sent as application/json, each \", \\, tab and line break counts twice; any other content type counts as base64 (4 bytes for 3)",
        )
    };
    // 5 MiB counted as the body travels inside API Gateway's event to Lambda (a body never
    // takes fewer bytes there), so every body within the limit reaches the function, and
    // one over it reaches it too, for the contract's 413, until Lambda's 6 MB refuses the
    // whole event (http/src/limits.rs). The same count locally.
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| too_large())?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if limits::size_in_event(&bytes, content_type) > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let events = parse_body(&bytes).map_err(|e| ApiError(e.0))?;
    let results = s.ingest.ingest(&caller.tenant, events).await;
    let tally = Tally::of(&results);
    let status = if results.iter().any(ItemResult::stored) {
        StatusCode::ACCEPTED
    } else if results.iter().any(ItemResult::transient) {
        // Nothing stored because storage was busy: not the client's fault, so not a 400.
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut response = (status, Json(json!({ "results": results }))).into_response();
    // The edge counts it in the ingest metrics (`Source` = http).
    response.extensions_mut().insert(tally);
    Ok(response)
}

/// One delivery of the ingest queue: each message stored or dead-lettered, or reported
/// for redelivery after a transient failure; each counted in the metrics.
pub async fn handle_queue(consumer: &Consumer, metrics: &Metrics, event: SqsEvent) -> SqsBatchResponse {
    partial_batch(event, |m| async move {
        let consumed = consumer.consume(m.message_id.as_deref(), m.body.as_deref().unwrap_or_default()).await;
        metrics.events("queue", &consumed.tally, None);
        if consumed.dead_lettered > 0 {
            let values = [(name::EVENTS_DEAD_LETTERED, Unit::Count, f64::from(consumed.dead_lettered))];
            metrics.emit(&[&["Stack"]], &[], &values, &[]);
        }
        consumed.done
    })
    .await
}

#[cfg(test)]
mod tests;
