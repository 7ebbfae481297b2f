//! The query function's HTTP edge (contract section 2, read endpoints). Filters, plans,
//! cursors and reads live in `audit::usecases::query`; this maps them to HTTP.

use audit::domain::cursor::CursorKey;
use audit::domain::error::Code;
use audit::domain::event::{StoredEvent, is_event_id};
use audit::domain::filter::{Extra, parse_catalog_query, parse_query};
use audit::domain::timestamp::Timestamp;
use audit::ports::Health;
use audit::usecases::query::Query;
use audit_http::{ApiError, Scope, Verifier, caller, health};
use audit_runtime::config::{self, Auth, ConfigError, Edge, FromEnv, Secret};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

/// What the query function reads from the environment.
pub struct Config {
    pub table: String,
    /// Where an archived event is read by id.
    pub archive_bucket: String,
    pub auth: Auth,
    pub cursor_secret: Secret,
    pub hot_days: u32,
    pub edge: Edge,
}

impl FromEnv for Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            archive_bucket: config::required(config::ARCHIVE_BUCKET)?,
            auth: Auth::from_env()?,
            cursor_secret: config::cursor_secret()?,
            hot_days: config::hot_days()?,
            edge: Edge::from_env()?,
        })
    }

    fn secrets(&mut self) -> Vec<&mut Secret> {
        let mut all = self.auth.secrets();
        all.push(&mut self.cursor_secret);
        all
    }
}

impl Config {
    /// The key that signs cursors.
    ///
    /// # Errors
    /// [`ConfigError::Secret`] when the cursor secret was not read at start-up.
    pub fn cursor_key(&self) -> Result<CursorKey, ConfigError> {
        Ok(CursorKey::derive(self.cursor_secret.value()?))
    }
}

pub struct QueryState {
    pub query: Query,
    pub verifier: Verifier,
}

/// The read API and `/healthz`. The same router runs on Lambda and in the local runner.
pub fn app(state: Arc<QueryState>, store: Arc<dyn Health>) -> Router {
    Router::new()
        .route("/v1/events", get(list))
        .route("/v1/events/count", get(count))
        .route("/v1/events/{id}", get(one))
        .route("/v1/actions", get(|s, h, q| catalog(Catalog::Actions, s, h, q)))
        .route("/v1/actors", get(|s, h, q| catalog(Catalog::Actors, s, h, q)))
        .with_state(state)
        .merge(health::router(store))
        .merge(audit_console::router())
}

async fn list(
    State(s): State<Arc<QueryState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Read).await?;
    let now = Timestamp::now();
    let parsed = parse_query(q.as_deref().unwrap_or_default(), Extra::List, now)
        .map_err(|v| ApiError::invalid("invalid parameters", &v))?;
    let page = s.query.list(&caller.tenant, &parsed, now).await?;
    let items: Vec<Value> = page.items.iter().map(StoredEvent::to_json).collect();
    let body = json!({"items": items, "next_cursor": page.next_cursor, "budget_exhausted": page.budget_exhausted});
    let mut resp = Json(body).into_response();
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
    let parsed = parse_query(q.as_deref().unwrap_or_default(), Extra::Count, now)
        .map_err(|v| ApiError::invalid("invalid parameters", &v))?;
    let count = s.query.count(&caller.tenant, &parsed.filter, parsed.max, now).await?;
    Ok(Json(json!(count)).into_response())
}

async fn one(
    State(s): State<Arc<QueryState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Read).await?;
    if !is_event_id(&id) {
        return Err(ApiError::new(Code::InvalidRequest, "an event id is 1-128 characters of A-Z a-z 0-9 . _ : @ / -"));
    }
    match s.query.get(&caller.tenant, &id).await? {
        Some(found) => {
            let mut event = found.event.to_json();
            if found.archived {
                event["archived"] = Value::Bool(true);
            }
            Ok(Json(event).into_response())
        }
        None => Err(ApiError::new(Code::NotFound, "no such event")),
    }
}

/// The two catalogs, served by one handler.
#[derive(Debug, Clone, Copy)]
enum Catalog {
    Actions,
    Actors,
}

async fn catalog(
    kind: Catalog,
    State(s): State<Arc<QueryState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Read).await?;
    let q = parse_catalog_query(q.as_deref().unwrap_or_default())
        .map_err(|v| ApiError::invalid("invalid parameters", &v))?;
    let body = match kind {
        Catalog::Actions => json!(s.query.actions(&caller.tenant, &q).await?),
        Catalog::Actors => json!(s.query.actors(&caller.tenant, &q).await?),
    };
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests;
