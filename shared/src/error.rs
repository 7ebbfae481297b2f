//! The contract's stable error codes and the error body every interface returns.

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
            Code::Internal => 500,
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
}

impl ErrorBody {
    #[must_use]
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: Vec::new() }
    }

    #[must_use]
    pub fn with_details<T: Serialize>(mut self, details: &[T]) -> Self {
        self.details = details.iter().filter_map(|d| serde_json::to_value(d).ok()).collect();
        self
    }
}
