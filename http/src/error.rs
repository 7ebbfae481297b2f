//! The contract's error responses, and who the caller is. Handlers stay thin by
//! returning `Result<_, ApiError>`: every error the use cases give converts here, once.

use crate::auth::{AuthError, Caller, Scope, Verifier};
use audit::domain::error::{Code, ErrorBody};
use audit::domain::event::Violation;
use audit::ports::StoreError;
use audit::usecases::query::ReadError;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error on its way to becoming a contract error response.
#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    #[must_use]
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self(ErrorBody::new(code, message))
    }

    /// A 500 whose cause is logged, never shown to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        Self(ErrorBody::internal(cause))
    }

    /// `invalid_request` naming every broken rule (see [`ErrorBody::invalid`]).
    #[must_use]
    pub fn invalid(what: &str, violations: &[Violation]) -> Self {
        Self(ErrorBody::invalid(what, violations))
    }
}

impl From<ErrorBody> for ApiError {
    fn from(body: ErrorBody) -> Self {
        Self(body)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self(e.body())
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        Self(e.body())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Forbidden(scope) => Self::new(Code::Forbidden, format!("this token lacks the {scope} scope")),
            AuthError::KeysUnavailable(cause) => {
                tracing::error!(%cause, "JWKS unavailable");
                Self::new(Code::Throttled, "signing keys temporarily unavailable")
            }
            AuthError::Missing => Self::new(Code::Unauthorized, "a bearer token is required"),
            AuthError::Invalid(why) => {
                tracing::info!(%why, "token refused");
                Self::new(Code::Unauthorized, "the bearer token is invalid or expired")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.0.retry_after;
        let mut resp = (status, axum::Json(json!({ "error": self.0 }))).into_response();
        if self.0.code == Code::DataIntegrity {
            // For the edge's metric, which names the event.
            resp.extensions_mut().insert(self.0);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        resp
    }
}

/// Authenticates the request's bearer token and checks `scope`.
///
/// # Errors
/// 401 or 403 as an [`ApiError`].
pub async fn caller(verifier: &Verifier, headers: &HeaderMap, scope: Scope) -> Result<Caller, ApiError> {
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = verifier.authorize(header, scope).await?;
    crate::request::tenant(caller.tenant.as_str());
    Ok(caller)
}
