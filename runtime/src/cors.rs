//! CORS for the pages that embed the console on their own origin
//! (`AUDIT_CORS_ORIGINS`, the template's `CorsAllowedOrigins`): a preflight from an
//! allowed origin is answered here, and an allowed origin's calls are marked readable by
//! it. Everything else passes untouched, so another origin's browser refuses the answers
//! to its page, and a stray `OPTIONS` still gets the contract's 404.
//!
//! API Gateway has no CORS configuration of its own: preflights reach the query function
//! through the `$default` route, and every function answers the same way (the same code
//! locally, [`crate::edge::finish`]).

use crate::config::{CORS_ORIGINS, ConfigError, optional};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// What a preflight allows: the API's methods and the headers the console sends (the token
/// travels in `Authorization`, never in a cookie: no credentials mode).
const METHODS: &str = "GET, POST, PATCH, DELETE";
const HEADERS: &str = "authorization, content-type";
/// How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours).
const MAX_AGE_SECONDS: &str = "600";

/// The allowed origins; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// `AUDIT_CORS_ORIGINS`: origins separated by commas; unset or empty: none.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for anything but `http(s)://host[:port]` (no path, no
    /// trailing slash, no wildcard), which a browser's `Origin` could never equal.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_list(&optional(CORS_ORIGINS).unwrap_or_default())
    }

    /// Origins separated by commas, as [`Cors::from_env`] reads them.
    ///
    /// # Errors
    /// As [`Cors::from_env`].
    pub fn from_list(list: &str) -> Result<Self, ConfigError> {
        let origins = list.split(',').map(str::trim).filter(|o| !o.is_empty()).map(origin).collect::<Result<_, _>>()?;
        Ok(Self { origins })
    }

    /// Whether any origin is allowed.
    #[must_use]
    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    fn allows(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        self.origins.iter().any(|o| o.as_bytes() == origin.as_bytes()).then(|| origin.clone())
    }
}

fn origin(o: &str) -> Result<String, ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid(CORS_ORIGINS, format!("{o:?}: {why}"));
    let lower = o.to_ascii_lowercase();
    let host = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| invalid("an origin starts with https:// or http://"))?;
    let (name, port) = host.split_once(':').unwrap_or((host, "1"));
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !name_ok || port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("an origin is scheme://host[:port], without a path or a wildcard"));
    }
    Ok(lower)
}

/// The middleware [`crate::edge::finish`] puts around every route.
pub async fn answer(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    let Some(origin) = cors.allows(request.headers()) else {
        return next.run(request).await;
    };
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(HEADERS));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE_SECONDS));
        r
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    // The answer differs by origin: a cache must not hand one origin's to another.
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        let parsed = Cors::from_list(" https://App.Example.com , http://127.0.0.1:8080,");
        let want = Cors { origins: vec!["https://app.example.com".into(), "http://127.0.0.1:8080".into()] };
        assert_eq!(parsed, Ok(want));
        assert_eq!(Cors::from_list(""), Ok(Cors::default()));
        assert!(!Cors::default().enabled());
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://a.example.com/console",
            "*",
            "https://*",
            "https://a.example.com:",
            "https://a.example.com:123456",
            "ftp://a.example.com",
        ] {
            assert!(matches!(Cors::from_list(bad), Err(ConfigError::Invalid(CORS_ORIGINS, _))), "{bad}");
        }
    }
}
