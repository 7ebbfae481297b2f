//! A loopback HTTP proxy in front of DynamoDB Local that fails chosen requests the way
//! DynamoDB does under load: throttled before applying, or a 500 after applying.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which of the calls to one operation fail, and how.
#[derive(Clone, Copy)]
pub struct Faults {
    /// Operation name as in `X-Amz-Target` (`PutItem`, `UpdateItem`, ...).
    pub operation: &'static str,
    /// Every n-th call is throttled (not applied).
    pub throttle_every: usize,
    /// Every n-th call is applied, then answered with a 500.
    pub fail_after_every: usize,
}

struct State {
    upstream: String,
    faults: Faults,
    calls: AtomicUsize,
    http: reqwest::Client,
}

/// Starts the proxy; returns its URL.
pub async fn start(upstream: String, faults: Faults) -> String {
    let state = Arc::new(State { upstream, faults, calls: AtomicUsize::new(0), http: reqwest::Client::new() });
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let state = Arc::clone(&state);
        async move { forward(&state, method, uri, headers, body).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn dynamo_error(status: StatusCode, kind: &str) -> Response {
    let body =
        format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected by the test proxy"}}"#);
    (status, [("content-type", "application/x-amz-json-1.0")], body).into_response()
}

async fn forward(state: &State, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let matched = target.ends_with(&format!(".{}", state.faults.operation));
    let n = if matched { state.calls.fetch_add(1, Ordering::SeqCst) + 1 } else { 0 };
    if matched && n % state.faults.throttle_every == 0 {
        return dynamo_error(StatusCode::BAD_REQUEST, "ProvisionedThroughputExceededException");
    }
    let mut req = state.http.request(method, format!("{}{}", state.upstream, uri));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let upstream = match req.body(body).send().await {
        Ok(r) => r,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    if matched && n % state.faults.fail_after_every == 0 {
        return dynamo_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError");
    }
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = upstream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-amz-json-1.0")
        .to_owned();
    let bytes = upstream.bytes().await.unwrap_or_default();
    (status, [("content-type", content_type)], bytes).into_response()
}
