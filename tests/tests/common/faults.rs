//! A loopback proxy in front of a local AWS server that, once a chosen request has passed
//! `pass` times, refuses it for good, as a crash at that point would leave things.
//!
//! Every header goes through unchanged (including `Host`, which SigV4 signs), so s3s-fs
//! still checks the signatures.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which requests fail.
#[derive(Clone)]
pub struct Rule {
    pub method: Method,
    /// A substring of the path (S3 keys) or of the body (DynamoDB requests).
    pub path_contains: Option<&'static str>,
    pub body_contains: Option<&'static str>,
    /// DynamoDB operation (`X-Amz-Target` suffix), if any.
    pub target: Option<&'static str>,
    /// Matching requests let through before the failures start.
    pub pass: usize,
}

impl Rule {
    fn matches(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
        let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
        *method == self.method
            && self.path_contains.is_none_or(|p| uri.path().contains(p))
            && self.target.is_none_or(|t| target.ends_with(&format!(".{t}")))
            && self.body_contains.is_none_or(|b| String::from_utf8_lossy(body).contains(b))
    }
}

struct State {
    upstream: String,
    rule: Rule,
    seen: AtomicUsize,
    failed: AtomicUsize,
    http: reqwest::Client,
}

/// A running proxy.
pub struct Proxy {
    pub url: String,
    state: Arc<State>,
}

impl Proxy {
    /// How many requests it refused.
    pub fn failed(&self) -> usize {
        self.state.failed.load(Ordering::SeqCst)
    }
}

pub async fn start(upstream: String, rule: Rule) -> Proxy {
    let http = reqwest::Client::builder().no_proxy().build().unwrap_or_else(|e| panic!("{e}"));
    let state = Arc::new(State { upstream, rule, seen: AtomicUsize::new(0), failed: AtomicUsize::new(0), http });
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

fn refusal(headers: &HeaderMap) -> Response {
    if headers.contains_key("x-amz-target") {
        let body = r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"injected crash"}"#;
        (StatusCode::BAD_REQUEST, [("content-type", "application/x-amz-json-1.0")], body).into_response()
    } else {
        let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>injected crash</Message></Error>";
        (StatusCode::FORBIDDEN, [("content-type", "application/xml")], body).into_response()
    }
}

async fn forward(state: &State, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if state.rule.matches(&method, &uri, &headers, &body)
        && state.seen.fetch_add(1, Ordering::SeqCst) >= state.rule.pass
    {
        state.failed.fetch_add(1, Ordering::SeqCst);
        return refusal(&headers);
    }
    let mut req = state.http.request(method, format!("{}{}", state.upstream, uri));
    for (name, value) in &headers {
        if name != "content-length" {
            req = req.header(name, value);
        }
    }
    let upstream = match req.body(body).send().await {
        Ok(r) => r,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out_headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if name != "content-length"
            && name != "transfer-encoding"
            && name != "connection"
            && let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_ref()), HeaderValue::from_bytes(value.as_bytes()))
        {
            out_headers.insert(n, v);
        }
    }
    let bytes = upstream.bytes().await.unwrap_or_default();
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().extend(out_headers);
    resp
}
