//! Serves the console: the `<audit-log-viewer>` web component (`web/*.js`, ES modules a
//! product can import from this origin) and the `/console` page that wraps it for
//! operators. The files are compiled into the binary so one deploy carries API and console
//! together and they never disagree.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The `/console` page's policy: scripts and styles only from this origin (no inline
/// script, no `eval`), API calls only to this origin, no framing, and Trusted Types
/// enforced so that no code path can hand a string to an HTML sink.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
    require-trusted-types-for 'script'; trusted-types 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_str!(concat!("../web/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `web/`; a test checks that none is left out.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("console.js", JS),
    asset!("audit-log-viewer.js", JS),
    asset!("api.js", JS),
    asset!("detail.js", JS),
    asset!("dom.js", JS),
    asset!("export-panel.js", JS),
    asset!("filter-bar.js", JS),
    asset!("format.js", JS),
    asset!("results.js", JS),
    asset!("styles.js", JS),
    asset!("view-state.js", JS),
];

/// FNV-1a: a content fingerprint for the `ETag`, computed at compile time.
const fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// `GET /console` (the page) and `GET /console/{file}` (its stylesheet and the
/// component's modules).
pub fn router() -> Router {
    Router::new().route("/console", get(page)).route("/console/{file}", get(file))
}

async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if name == "index.html" {
        return not_found();
    }
    serve(&name, &headers)
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return not_found();
    };
    let etag = format!("\"{:016x}\"", fingerprint(asset.body.as_bytes()));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag));
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { Response::new(Body::from(asset.body)) };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load (a cheap 304): the modules of one page never come from
    // two different deploys.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if name == "index.html" {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
        h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    } else {
        // A product's own page imports the component from here: module scripts are
        // fetched with CORS. The files hold no secret and take no credentials.
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert("cross-origin-resource-policy", HeaderValue::from_static("cross-origin"));
    }
    resp
}

fn not_found() -> Response {
    let body = r#"{"error":{"code":"not_found","message":"no such console file"}}"#;
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests;
