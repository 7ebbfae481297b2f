//! The query function's HTTP edge (contract section 2, read endpoints). Filters, plans,
//! cursors and reads live in `audit::{filter, planner, cursor, reader}`; this maps them
//! to HTTP.

use audit::api::{ApiError, caller};
use audit::auth::{Scope, Verifier};
use audit::cursor::CursorKey;
use audit::error::{Code, ErrorBody};
use audit::filter::{Extra, parse_query};
use audit::reader::{ReadError, Reader};
use audit::store::Store;
use audit::timestamp::Timestamp;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

pub struct QueryState {
    pub store: Store,
    pub verifier: Verifier,
    pub cursor_key: CursorKey,
    /// `AUDIT_HOT_DAYS`, for tenants without their own window.
    pub hot_days: u32,
}

impl QueryState {
    fn reader(&self) -> Reader<'_> {
        Reader { store: &self.store, key: &self.cursor_key, default_hot_days: self.hot_days }
    }
}

/// The read API. The same router runs on Lambda and in the local runner.
pub fn app(state: Arc<QueryState>) -> Router {
    Router::new()
        .route("/v1/events", get(list))
        .route("/v1/events/count", get(count))
        .route("/v1/events/{id}", get(one))
        .route("/v1/actions", get(actions))
        .route("/v1/actors", get(actors))
        .route("/healthz", get(healthz))
        .with_state(state)
        .merge(audit_console::router())
}

fn invalid(violations: &[audit::event::Violation]) -> ApiError {
    let first = violations.first().map_or_else(String::new, |v| format!(": {} {}", v.field, v.message));
    ApiError(ErrorBody::new(Code::InvalidRequest, format!("invalid parameters{first}")).with_details(violations))
}

fn read_error(e: ReadError) -> ApiError {
    match e {
        ReadError::Cursor(_) => ApiError(
            ErrorBody::new(Code::InvalidRequest, "the cursor is invalid, or was issued for other filters")
                .with_details(&[json!({"field": "cursor", "reason": "invalid_cursor"})]),
        ),
        ReadError::Archived(start) => ApiError::new(
            Code::RangeArchived,
            format!("events before {start} may be archived; use an export for this range"),
        ),
        ReadError::Store(e) => store_error(&e),
    }
}

fn store_error(e: &audit::store::StoreError) -> ApiError {
    match e {
        audit::store::StoreError::Unavailable(_) => ApiError::new(Code::Throttled, "storage is busy; retry"),
        other => ApiError::internal(other),
    }
}

async fn list(
    State(s): State<Arc<QueryState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Read).await?;
    let now = Timestamp::now();
    let parsed = parse_query(q.as_deref().unwrap_or_default(), Extra::List, now).map_err(|v| invalid(&v))?;
    let page = s.reader().list(&caller.tenant, &parsed, now).await.map_err(read_error)?;
    let items: Vec<_> = page.items.iter().map(audit::event::StoredEvent::to_json).collect();
    let mut resp = Json(json!({"items": items, "next_cursor": page.next_cursor})).into_response();
    let h = resp.headers_mut();
    h.insert("x-audit-requests", HeaderValue::from(page.stats.requests));
    h.insert("x-audit-items-read", HeaderValue::from(page.stats.items_read));
    Ok(resp)
}

async fn count(
    State(s): State<Arc<QueryState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Read).await?;
    let now = Timestamp::now();
    let parsed = parse_query(q.as_deref().unwrap_or_default(), Extra::Count, now).map_err(|v| invalid(&v))?;
    let (count, exact) = s.reader().count(&caller.tenant, &parsed.filter, parsed.max, now).await.map_err(read_error)?;
    Ok(Json(json!({"count": count, "exact": exact})).into_response())
}

async fn one(
    State(s): State<Arc<QueryState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Read).await?;
    if !audit::event::is_event_id(&id) {
        return Err(ApiError::new(Code::InvalidRequest, "an event id is 1-128 characters of A-Z a-z 0-9 . _ : @ / -"));
    }
    match s.reader().get(&caller.tenant, &id).await.map_err(|e| store_error(&e))? {
        Some(e) => Ok(Json(e.to_json()).into_response()),
        None => Err(ApiError::new(Code::NotFound, "no such event online")),
    }
}

fn catalog_q(q: Option<&str>) -> Result<Option<String>, ApiError> {
    audit::filter::parse_catalog_query(q.unwrap_or_default()).map_err(|v| invalid(&v))
}

async fn actions(
    State(s): State<Arc<QueryState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Read).await?;
    let q = catalog_q(q.as_deref())?;
    let items = s.reader().actions(&caller.tenant, q.as_deref()).await.map_err(|e| store_error(&e))?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn actors(
    State(s): State<Arc<QueryState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Read).await?;
    let q = catalog_q(q.as_deref())?;
    let items = s.reader().actors(&caller.tenant, q.as_deref()).await.map_err(|e| store_error(&e))?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn healthz(State(s): State<Arc<QueryState>>) -> Response {
    match s.store.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}
