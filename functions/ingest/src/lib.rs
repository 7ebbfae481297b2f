//! The ingest function's HTTP edge: `POST /v1/events`. Parsing, rules and
//! storage live in `audit::ingest`; this only maps them to HTTP.

use audit::api::{ApiError, caller};
use audit::auth::{Scope, Verifier};
use audit::error::Code;
use audit::ingest::{self, ItemResult, MAX_BODY_BYTES};
use audit::store::Store;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// What every request handler shares, built once per process.
pub struct AppState {
    pub store: Store,
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
    let events = ingest::parse_body(&bytes).map_err(|e| ApiError(e.0))?;
    let results = ingest::ingest(&s.store, &caller.tenant, events).await;
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
