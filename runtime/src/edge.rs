//! What every API function does around each request, on Lambda and in the local runner
//! alike ([`finish`]): the contract's 404 for unknown routes and methods, the request's
//! deadline, one JSON request line in the log, and the edge's metrics.

use crate::config::Edge;
use crate::metrics::Unit;
use audit::domain::error::Code;
use audit::domain::ingest::Tally;
use audit_http::ApiError;
use audit_http::request::{Note, noting};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after its deadline a request that is still running is answered anyway.
const GRACE: Duration = Duration::from_secs(1);

/// The router as every API function serves it: `router`'s routes, the contract's 404 for
/// any other path or method, and [`around`] each request. Applied once, to the whole
/// router (the local runner merges three first: merged routers cannot each have a
/// fallback).
pub fn finish(router: Router, edge: &Edge) -> Router {
    router
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(from_fn_with_state(Arc::new(edge.clone()), around))
}

async fn no_route(request: Request) -> ApiError {
    ApiError::new(Code::NotFound, format!("no route {} {}", request.method(), request.uri().path()))
}

/// Runs one request within its deadline, then logs its line and emits its metrics.
async fn around(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = match request.extensions().get::<MatchedPath>() {
        Some(p) => format!("{} {}", request.method(), p.as_str()),
        None => "$default".to_owned(),
    };
    let request_id = api_gateway_request_id(&request);
    let note = Arc::new(Note::default());
    let deadline = started + edge.deadline;
    let handled = noting(note.clone(), audit_aws::retry::within(deadline, next.run(request)));
    let response = match tokio::time::timeout(edge.deadline + GRACE, handled).await {
        Ok(response) => response,
        Err(_) => ApiError::new(Code::Throttled, "the request ran out of time; retry").into_response(),
    };
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (items_read, requests) = (header("x-audit-items-read"), header("x-audit-requests"));
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        route = %route,
        status,
        latency_ms,
        tenant = note.tenant(),
        items_read,
        requests,
        request_id = request_id.as_deref(),
        "request"
    );
    if let Some(tally) = response.extensions().get::<Tally>() {
        edge.metrics.events("http", tally, note.tenant());
    }
    if status == 500 {
        edge.metrics.emit(&[&["Stack", "Function"]], &[], &[("HttpServerErrors", Unit::Count, 1.0)], &[]);
    }
    if let (Some(items), Some(calls)) = (items_read, requests) {
        let props = [("tenant", json!(note.tenant()))];
        #[expect(clippy::cast_precision_loss, reason = "a page's item count is far below 2^53")]
        let values = [("QueryItemsRead", Unit::Count, items as f64), ("QueryRequests", Unit::Count, calls as f64)];
        edge.metrics.emit(&[&["Stack"], &["Stack", "Route"]], &[("Route", &route)], &values, &props);
    }
    response
}

/// The API Gateway request id, which the access log also holds (absent locally).
fn api_gateway_request_id(request: &Request) -> Option<String> {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        _ => None,
    }
}
