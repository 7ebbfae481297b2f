//! Retries with capped exponential backoff and full jitter for every AWS call.
//!
//! The SDK's own retry is turned off for DynamoDB (see [`crate::sdk`]) so that this one
//! loop decides, and so it can tell the caller whether an attempt may have been applied
//! before failing (a 5xx or a lost response), which idempotent writes need to report
//! "created" rather than "duplicate" after such a retry.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use std::future::Future;
use std::time::{Duration, Instant};

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

tokio::task_local! {
    /// When the request being served must be answered: retries stop in time for it.
    static DEADLINE: Instant;
}

/// Runs `f` with `deadline` on every retry loop it reaches: no attempt starts, and no
/// attempt is waited for, past it, so a request answers `throttled` in time instead of
/// being cut off by its function's timeout.
pub async fn within<F: Future>(deadline: Instant, f: F) -> F::Output {
    DEADLINE.scope(deadline, f).await
}

/// Time left before the current request's deadline (`None`: no deadline).
fn time_left() -> Option<Duration> {
    DEADLINE.try_with(|d| d.saturating_duration_since(Instant::now())).ok()
}

/// Error codes that answer a conditional write (the caller reads them), not failures.
const ANSWERED_CONDITION: &str = "ConditionalCheckFailedException";
const ANSWERED_TRANSACTION: &str = "TransactionCanceledException";

/// Runs `op` until it succeeds, fails permanently, or `backoff.attempts` are spent, or
/// the request's deadline ([`within`]) comes.
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
        let outcome = match time_left() {
            None => op().await,
            Some(left) => match tokio::time::timeout(left, op()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(SdkError::timeout_error("the request's deadline came during the call")),
            },
        };
        match outcome {
            Ok(v) => {
                return Retried { result: Ok(v), ambiguous };
            }
            Err(err) => {
                let class = classify(&err);
                ambiguous |= class == Class::Ambiguous;
                let delay = backoff.delay(attempt);
                let out_of_time = time_left().is_some_and(|left| left <= delay);
                if class == Class::Permanent || attempt >= backoff.attempts || out_of_time {
                    // A service error by its code and message only: its Debug form can hold
                    // the item a failed condition returned (an alert rule's secrets).
                    match err.as_service_error() {
                        // A condition that failed is an answer the caller reads, not a failure.
                        Some(e) if matches!(e.code(), Some(ANSWERED_CONDITION | ANSWERED_TRANSACTION)) => {
                            tracing::debug!(what, code = e.code(), "condition not met");
                        }
                        Some(e) => tracing::warn!(
                            what,
                            attempt,
                            ?class,
                            out_of_time,
                            code = e.code(),
                            message = e.message(),
                            "AWS call failed"
                        ),
                        None => tracing::warn!(what, attempt, ?class, out_of_time, error = ?err, "AWS call failed"),
                    }
                    return Retried { result: Err(err), ambiguous };
                }
                tracing::debug!(what, attempt, ?class, "AWS call failed, retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An always-throttled call, counting its attempts and when each started.
    async fn throttled(
        starts: &std::sync::Mutex<Vec<Instant>>,
    ) -> Result<(), SdkError<GetItemError, aws_smithy_runtime_api::http::Response>> {
        starts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Instant::now());
        let err = GetItemError::ProvisionedThroughputExceededException(
            aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .build(),
        );
        let raw = aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap_or_else(|_| unreachable!()),
            aws_smithy_types::body::SdkBody::empty(),
        );
        Err(SdkError::service_error(err, raw))
    }

    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    // Bounds far from the figures on either side, so the machine's load decides nothing:
    // without the deadline the call would retry for about 10 s (100 attempts, 100 ms
    // apart on average), or hang for a minute.
    #[tokio::test]
    async fn retries_stop_at_the_request_deadline() {
        // Given: a call that is always throttled, and a generous backoff
        let backoff = Backoff { attempts: 100, base: Duration::from_millis(200), cap: Duration::from_millis(200) };
        let starts = std::sync::Mutex::new(Vec::new());
        // When: it runs within a deadline 300 ms away
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let out = within(deadline, retry(&backoff, "test", || throttled(&starts))).await;
        // Then: it gives up about the deadline, not after 100 attempts
        assert!(out.result.is_err());
        let starts = starts.into_inner().unwrap_or_default();
        assert!(!starts.is_empty() && starts.len() < 100, "{} attempts", starts.len());
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        // And a call still running at the deadline is cut off there, as an ambiguous failure.
        let hangs = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), SdkError<GetItemError, aws_smithy_runtime_api::http::Response>>(())
        };
        let started = Instant::now();
        let out = within(started + Duration::from_millis(200), retry(&backoff, "test", hangs)).await;
        assert!(out.result.is_err() && out.ambiguous);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let b = Backoff { attempts: 10, base: Duration::from_millis(10), cap: Duration::from_millis(300) };
        for attempt in 1..30 {
            assert!(b.delay(attempt) < Duration::from_millis(300));
        }
        assert!(b.delay(1) < Duration::from_millis(20));
    }
}
