//! `GET /healthz` (contract section 2): 200 while the store answers.

use audit::ports::Health;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// The health route's handler, for any router whose state can lend its store.
pub async fn healthz(State(store): State<Arc<dyn Health>>) -> Response {
    match store.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}

/// The `/healthz` route on its own, to merge into a function's router.
pub fn router(store: Arc<dyn Health>) -> axum::Router {
    axum::Router::new().route("/healthz", axum::routing::get(healthz)).with_state(store)
}
