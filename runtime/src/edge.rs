//! What every API function does around each request, on Lambda and in the local runner
//! alike ([`finish`]): the contract's 404 for unknown routes and methods, the request's
//! deadline, one JSON request line in the log, the edge's metrics, and CORS for the
//! allowed origins ([`crate::cors`]).

use crate::config::Edge;
use crate::metrics::{Unit, name};
use audit::domain::error::{Code, ErrorBody};
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
    let router = router
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(from_fn_with_state(Arc::new(edge.clone()), around));
    if edge.cors.enabled() {
        // Outermost: a preflight is answered before the router, which would 404 it.
        router.layer(from_fn_with_state(Arc::new(edge.cors.clone()), crate::cors::answer))
    } else {
        router
    }
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
    if let Some(failed) = response.extensions().get::<ErrorBody>().filter(|b| b.code == Code::DataIntegrity) {
        edge.metrics.integrity(note.tenant(), failed.event.as_deref());
    } else if status == 500 {
        edge.metrics.emit(&[&["Stack", "Function"]], &[], &[(name::HTTP_SERVER_ERRORS, Unit::Count, 1.0)], &[]);
    }
    if let (Some(items), Some(calls)) = (items_read, requests) {
        let props = [("tenant", json!(note.tenant()))];
        #[expect(clippy::cast_precision_loss, reason = "a page's item count is far below 2^53")]
        let values =
            [(name::QUERY_ITEMS_READ, Unit::Count, items as f64), (name::QUERY_REQUESTS, Unit::Count, calls as f64)];
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use serde_json::Value;
    use tower::ServiceExt;

    async fn call(router: &Router, method: &str, path: &str) -> (u16, Value) {
        let (status, body, _) = call_with(router, method, path, &[]).await;
        (status, body)
    }

    async fn call_with(
        router: &Router,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value, axum::http::HeaderMap) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty()).unwrap_or_default();
        let response = router.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or_default(), headers)
    }

    fn edge(deadline: Duration) -> Edge {
        Edge { deadline, metrics: crate::metrics::Metrics::default(), cors: crate::cors::Cors::default() }
    }

    #[tokio::test]
    async fn allowed_origins_get_their_preflight_and_their_answers_and_no_other_does() {
        let allowed = "https://app.example.com";
        let cors = crate::cors::Cors::from_list(&format!("{allowed},http://localhost:8080"));
        let edge = Edge { cors: cors.unwrap_or_default(), ..edge(Duration::from_secs(5)) };
        let router = finish(Router::new().route("/v1/events", get(|| async { "ok" })), &edge);
        let preflight = |origin| {
            [
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization,content-type"),
            ]
        };
        let allow_origin = |h: &axum::http::HeaderMap| h.get("access-control-allow-origin").cloned();

        // A preflight from an allowed origin, for any path (they all reach one function)
        let (status, _, h) = call_with(&router, "OPTIONS", "/v1/exports/x", &preflight(allowed)).await;
        assert_eq!((status, allow_origin(&h)), (204, Some(axum::http::HeaderValue::from_static(allowed))));
        assert_eq!(h["access-control-allow-methods"], "GET, POST, PATCH, DELETE");
        assert_eq!(h["access-control-allow-headers"], "authorization, content-type");
        assert!(h.get("access-control-allow-credentials").is_none());
        // Its calls are marked readable by it, and vary by origin
        let (status, _, h) = call_with(&router, "GET", "/v1/events", &[("origin", allowed)]).await;
        assert_eq!((status, allow_origin(&h)), (200, Some(axum::http::HeaderValue::from_static(allowed))));
        assert_eq!(h["vary"], "Origin");
        // Another origin: no preflight answer (the contract's 404) and nothing readable
        for other in ["https://evil.example.com", "https://app.example.com.evil.example.com", "null"] {
            let (status, body, h) = call_with(&router, "OPTIONS", "/v1/events", &preflight(other)).await;
            assert_eq!((status, &body["error"]["code"], allow_origin(&h)), (404, &json!("not_found"), None), "{other}");
            let (status, _, h) = call_with(&router, "GET", "/v1/events", &[("origin", other)]).await;
            assert_eq!((status, allow_origin(&h)), (200, None), "{other}");
        }
        // A plain OPTIONS without a preflight's headers is an unknown method, as before
        assert_eq!(call_with(&router, "OPTIONS", "/v1/events", &[("origin", allowed)]).await.0, 404);
    }

    #[tokio::test]
    async fn without_allowed_origins_nothing_changes() {
        let router = finish(Router::new().route("/v1/events", get(|| async { "ok" })), &edge(Duration::from_secs(5)));
        let (status, _, h) = call_with(
            &router,
            "OPTIONS",
            "/v1/events",
            &[("origin", "https://app.example.com"), ("access-control-request-method", "GET")],
        )
        .await;
        assert_eq!((status, h.get("access-control-allow-origin")), (404, None));
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_the_contracts_404() {
        let router = finish(Router::new().route("/v1/events", get(|| async { "ok" })), &edge(Duration::from_secs(5)));
        assert_eq!(call(&router, "GET", "/v1/events").await.0, 200);
        for (method, path) in [("GET", "/v1/nothing"), ("DELETE", "/v1/events"), ("GET", "/")] {
            let (status, body) = call(&router, method, path).await;
            assert_eq!(status, 404, "{method} {path}");
            assert_eq!(body["error"]["code"], "not_found", "{method} {path}: {body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains(path)), "{body}");
        }
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_answers_throttled_in_time() {
        // Given: a handler that would take far longer than the deadline
        let slow = get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        });
        let router = finish(Router::new().route("/slow", slow), &edge(Duration::from_millis(100)));
        // When: it is called
        let started = Instant::now();
        let (status, body) = call(&router, "GET", "/slow").await;
        // Then: the contract's 503 throttled, within the deadline and its grace
        assert_eq!((status, &body["error"]["code"]), (503, &json!("throttled")), "{body}");
        // (never before the grace, and long before the handler would answer: bounds the
        // machine's load cannot cross)
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100) + GRACE && took < Duration::from_secs(15), "{took:?}");
    }
}
