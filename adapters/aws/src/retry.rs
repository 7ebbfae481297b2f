//! Retries with capped exponential backoff and full jitter for every AWS call.
//!
//! The SDK's own retry is turned off for DynamoDB (see [`crate::sdk`]) so that this one
//! loop decides, and so it can tell the caller whether an attempt may have been applied
//! before failing (a 5xx or a lost response), which idempotent writes need to report
//! "created" rather than "duplicate" after such a retry.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use std::future::Future;
use std::time::Duration;

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { attempts: 8, base: Duration::from_millis(25), cap: Duration::from_secs(2) }
    }
}

impl Backoff {
    /// The pause before retry number `attempt` (1-based): uniform in `[0, min(cap, base·2^attempt))`.
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1 << attempt.min(16)).min(self.cap);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Refused before being applied (throttling): safe and useful to retry.
    Throttled,
    /// May or may not have been applied (5xx, timeout, connection lost): retry.
    Ambiguous,
    /// Will fail the same way again.
    Permanent,
}

/// Error codes AWS uses for throttling across DynamoDB, SQS and S3.
const THROTTLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "RequestThrottled",
    "TransactionInProgressException",
];

/// Classifies an SDK error.
pub fn classify<E: ProvideErrorMetadata, R: HasStatus>(err: &SdkError<E, R>) -> Class {
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if THROTTLE_CODES.contains(&code) {
                Class::Throttled
            } else if service.raw().status() >= 500 {
                Class::Ambiguous
            } else {
                Class::Permanent
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Class::Ambiguous,
        _ => Class::Permanent,
    }
}

/// The HTTP status of a raw response, whatever the SDK's response type.
pub trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The outcome of [`retry`]: the last result and whether any failed attempt may have
/// been applied.
pub struct Retried<T, E> {
    pub result: Result<T, E>,
    pub ambiguous: bool,
}

/// Runs `op` until it succeeds, fails permanently, or `backoff.attempts` are spent.
pub async fn retry<T, E, R, F, Fut>(backoff: &Backoff, what: &str, mut op: F) -> Retried<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: HasStatus + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
{
    let mut ambiguous = false;
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => {
                return Retried { result: Ok(v), ambiguous };
            }
            Err(err) => {
                let class = classify(&err);
                ambiguous |= class == Class::Ambiguous;
                if class == Class::Permanent || attempt >= backoff.attempts {
                    tracing::warn!(what, attempt, ?class, error = ?err, "AWS call failed");
                    return Retried { result: Err(err), ambiguous };
                }
                tracing::debug!(what, attempt, ?class, "AWS call failed, retrying");
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let b = Backoff { attempts: 10, base: Duration::from_millis(10), cap: Duration::from_millis(300) };
        for attempt in 1..30 {
            assert!(b.delay(attempt) < Duration::from_millis(300));
        }
        assert!(b.delay(1) < Duration::from_millis(20));
    }
}
