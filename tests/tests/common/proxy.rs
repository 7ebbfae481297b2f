//! A loopback HTTP proxy in front of DynamoDB Local that makes happen what DynamoDB does
//! under load and what DynamoDB Local never does by itself: a write throttled before
//! applying, or applied and then answered with a 500 ([`Faults`]); a BatchGetItem that
//! leaves keys unprocessed, or an eventually consistent read that does not see an item
//! yet ([`BatchGets`]). It can also report the capacity each write consumed
//! ([`Mode::Capacity`]): DynamoDB Local does not check signatures, so the proxy may add
//! `ReturnConsumedCapacity` to a request.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Which of the calls to one write operation fail, and how.
#[derive(Clone, Copy)]
pub struct Faults {
    /// Operation name as in `X-Amz-Target` (`PutItem`, `UpdateItem`, ...).
    pub operation: &'static str,
    /// Every n-th call is throttled (not applied).
    pub throttle_every: usize,
    /// Every n-th call is applied, then answered with a 500.
    pub fail_after_every: usize,
}

/// What BatchGetItem answers.
#[derive(Clone, Copy)]
pub struct BatchGets {
    /// A call asking for more than one key gets only the first half read; the rest come
    /// back as `UnprocessedKeys`.
    pub leave_unprocessed: bool,
    /// An eventually consistent call finds nothing: an index listed the items a moment
    /// before such a read of the table would see them.
    pub hide_from_eventual: bool,
}

#[derive(Clone, Copy)]
pub enum Mode {
    Faults(Faults),
    BatchGets(BatchGets),
    /// Writes are asked for their consumed capacity, which [`Proxy::consumed`] gives.
    Capacity,
}

struct State {
    upstream: String,
    mode: Mode,
    calls: AtomicUsize,
    /// Keys left unprocessed, items hidden.
    unprocessed: AtomicUsize,
    hidden: AtomicUsize,
    consumed: Mutex<Vec<Value>>,
    http: reqwest::Client,
}

/// A running proxy.
#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    state: Arc<State>,
}

impl Proxy {
    /// Keys answered as unprocessed so far.
    pub fn unprocessed(&self) -> usize {
        self.state.unprocessed.load(Ordering::SeqCst)
    }

    /// Items an eventually consistent read was made to miss so far.
    pub fn hidden(&self) -> usize {
        self.state.hidden.load(Ordering::SeqCst)
    }

    /// The `ConsumedCapacity` of each write answered since the last call.
    pub fn consumed(&self) -> Vec<Value> {
        std::mem::take(&mut *self.state.consumed.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Starts a proxy that injects `faults`; returns its URL.
pub async fn start(upstream: String, faults: Faults) -> String {
    start_with(upstream, Mode::Faults(faults)).await.url
}

pub async fn start_with(upstream: String, mode: Mode) -> Proxy {
    let state = Arc::new(State {
        upstream,
        mode,
        calls: AtomicUsize::new(0),
        unprocessed: AtomicUsize::new(0),
        hidden: AtomicUsize::new(0),
        consumed: Mutex::new(Vec::new()),
        http: reqwest::Client::new(),
    });
    let shared = Arc::clone(&state);
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let state = Arc::clone(&shared);
        async move { forward(&state, method, uri, headers, body).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Proxy { url: format!("http://{addr}"), state }
}

fn dynamo_error(status: StatusCode, kind: &str) -> Response {
    let body =
        format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected by the test proxy"}}"#);
    (status, [("content-type", "application/x-amz-json-1.0")], body).into_response()
}

/// Sends `body` upstream; the status, content type and answer.
async fn send(
    state: &State,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Option<(u16, String, Bytes)> {
    let mut req = state.http.request(method, format!("{}{}", state.upstream, uri));
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let upstream = req.body(body).send().await.ok()?;
    let status = upstream.status().as_u16();
    let content_type = upstream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-amz-json-1.0")
        .to_owned();
    Some((status, content_type, upstream.bytes().await.unwrap_or_default()))
}

fn answer(status: u16, content_type: String, bytes: impl Into<Bytes>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [("content-type", content_type)], bytes.into()).into_response()
}

async fn forward(state: &State, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let operation = target.rsplit('.').next().unwrap_or_default();
    match state.mode {
        Mode::Faults(faults) => {
            let matched = operation == faults.operation;
            let n = if matched { state.calls.fetch_add(1, Ordering::SeqCst) + 1 } else { 0 };
            if matched && n % faults.throttle_every == 0 {
                return dynamo_error(StatusCode::BAD_REQUEST, "ProvisionedThroughputExceededException");
            }
            let Some((status, content_type, bytes)) = send(state, method, &uri, &headers, body).await else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            if matched && n % faults.fail_after_every == 0 {
                return dynamo_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError");
            }
            answer(status, content_type, bytes)
        }
        Mode::BatchGets(how) if operation == "BatchGetItem" => batch_get(state, how, method, uri, headers, body).await,
        Mode::Capacity if ["PutItem", "UpdateItem", "DeleteItem"].contains(&operation) => {
            let mut request: Value = serde_json::from_slice(&body).unwrap_or_default();
            request["ReturnConsumedCapacity"] = json!("INDEXES");
            let body = Bytes::from(request.to_string());
            let Some((status, content_type, bytes)) = send(state, method, &uri, &headers, body).await else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            let out: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if let Some(c) = out.get("ConsumedCapacity") {
                state.consumed.lock().unwrap_or_else(PoisonError::into_inner).push(c.clone());
            }
            answer(status, content_type, bytes)
        }
        _ => match send(state, method, &uri, &headers, body).await {
            Some((status, content_type, bytes)) => answer(status, content_type, bytes),
            None => StatusCode::BAD_GATEWAY.into_response(),
        },
    }
}

/// A BatchGetItem as [`BatchGets`] says: half its keys read, or its items unseen.
async fn batch_get(
    state: &State,
    how: BatchGets,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut unprocessed = serde_json::Map::new();
    let mut eventual = false;
    if let Some(tables) = request["RequestItems"].as_object_mut() {
        for (table, ask) in tables.iter_mut() {
            eventual |= !ask["ConsistentRead"].as_bool().unwrap_or(false);
            let keys = ask["Keys"].as_array().cloned().unwrap_or_default();
            if how.leave_unprocessed && keys.len() > 1 {
                let (read, left) = keys.split_at(keys.len() / 2);
                state.unprocessed.fetch_add(left.len(), Ordering::SeqCst);
                let mut rest = ask.clone();
                rest["Keys"] = json!(left);
                unprocessed.insert(table.clone(), rest);
                ask["Keys"] = json!(read);
            }
        }
    }
    let body = Bytes::from(request.to_string());
    let Some((status, content_type, bytes)) = send(state, method, &uri, &headers, body).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if status != 200 {
        return answer(status, content_type, bytes);
    }
    let mut out: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if how.hide_from_eventual && eventual {
        for items in out["Responses"].as_object_mut().into_iter().flat_map(|t| t.values_mut()) {
            if let Some(items) = items.as_array_mut() {
                state.hidden.fetch_add(items.len(), Ordering::SeqCst);
                items.clear();
            }
        }
    }
    if !unprocessed.is_empty() {
        out["UnprocessedKeys"] = Value::Object(unprocessed);
    }
    answer(status, content_type, out.to_string())
}
