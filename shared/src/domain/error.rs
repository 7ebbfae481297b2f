//! The contract's stable error codes and the error body every interface returns.

use crate::domain::event::Violation;
use serde::Serialize;
use serde_json::Value;

/// A stable error code (contract section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RangeArchived,
    Gone,
    Throttled,
    Internal,
    /// Stored data no longer matches its hash or its form: it is not served, and the
    /// operators are alerted. Retrying does not help.
    DataIntegrity,
}

impl Code {
    /// The HTTP status that goes with the code.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Code::InvalidRequest | Code::RangeArchived => 400,
            Code::Unauthorized => 401,
            Code::Forbidden => 403,
            Code::NotFound => 404,
            Code::Conflict => 409,
            Code::Gone => 410,
            Code::PayloadTooLarge => 413,
            Code::Throttled => 503,
            Code::Internal | Code::DataIntegrity => 500,
        }
    }

    /// Whether the same request may succeed later unchanged.
    #[must_use]
    pub fn retryable(self) -> bool {
        matches!(self, Code::Throttled | Code::Internal)
    }
}

/// `{"code", "message", "details"}`: the `error` member of every error response, and of
/// each rejected item in a batch result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    pub code: Code,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
    /// Seconds to wait, for a `throttled` that is a per-tenant limit rather than a
    /// passing overload: answered 429 with `Retry-After`, not in the body.
    #[serde(skip)]
    pub retry_after: Option<u32>,
    /// The stored event a `data_integrity` failure concerns, for the edge's metric (the
    /// message names it too).
    #[serde(skip)]
    pub event: Option<String>,
}

impl ErrorBody {
    #[must_use]
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: Vec::new(), retry_after: None, event: None }
    }

    /// The same error, a per-tenant limit that frees up in about `seconds`.
    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The HTTP status: the code's, except 429 for a limit ([`ErrorBody::retry_after`]).
    #[must_use]
    pub fn status(&self) -> u16 {
        match (self.code, self.retry_after) {
            (Code::Throttled, Some(_)) => 429,
            (code, _) => code.status(),
        }
    }

    #[must_use]
    pub fn with_details<T: Serialize>(mut self, details: &[T]) -> Self {
        self.details = details.iter().filter_map(|d| serde_json::to_value(d).ok()).collect();
        self
    }

    /// A 500 whose cause is logged, never shown to the client.
    #[must_use]
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(Code::Internal, "internal error")
    }

    /// `invalid_request` for `violations`: `what` and the first one in the message, every
    /// one in `details`. The one form every interface reports broken rules in.
    #[must_use]
    pub fn invalid(what: &str, violations: &[Violation]) -> Self {
        let first = violations.first().map_or_else(String::new, |v| format!(": {} {}", v.field, v.message));
        Self::new(Code::InvalidRequest, format!("{what}{first}")).with_details(violations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Reason;

    #[test]
    fn invalid_names_the_first_violation_and_details_them_all() {
        let v = |field: &str| Violation { field: field.into(), reason: Reason::TooLong, message: "too long".into() };
        let body = ErrorBody::invalid("invalid parameters", &[v("q"), v("actor")]);
        assert_eq!((body.code, body.message.as_str()), (Code::InvalidRequest, "invalid parameters: q too long"));
        assert_eq!(body.details.len(), 2);
        assert_eq!(ErrorBody::invalid("nothing", &[]).message, "nothing");
    }

    #[test]
    fn a_limit_is_a_429_and_a_passing_overload_a_503() {
        let busy = ErrorBody::new(Code::Throttled, "busy");
        assert_eq!((busy.status(), busy.clone().retry_after(30).status()), (503, 429));
        assert_eq!(
            serde_json::to_value(busy.retry_after(30)).ok(),
            Some(serde_json::json!({"code": "throttled", "message": "busy"}))
        );
    }
}
