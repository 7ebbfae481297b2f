//! The Lambda loops: an HTTP router behind API Gateway, a queue handler with partial
//! batch responses, a scheduled job. The local runner drives the same handlers without
//! them.

use crate::Error;
use aws_lambda_events::event::sqs::BatchItemFailure;
pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::time::{Instant, SystemTime};

/// Serves `router` as the Lambda function behind an API Gateway HTTP API, finished by
/// [`crate::edge::finish`].
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn http(router: axum::Router, edge: &crate::config::Edge) -> Result<(), Error> {
    lambda_http::run(crate::edge::finish(router, edge)).await
}

/// Handles each message of a delivery in turn; the response lists those `handle` did not
/// finish (it returned `false`), so only they are delivered again.
pub async fn partial_batch<F, Fut>(event: SqsEvent, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        if !handle(message).await {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Handles every message of a delivery at once (they are independent: one tenant's turn
/// each), so one slow message does not hold the others; the response lists those
/// `handle` did not finish.
pub async fn concurrent_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = bool>,
{
    let handle = &handle;
    let runs = event.records.into_iter().map(|message| async move {
        let id = message.message_id.clone().unwrap_or_default();
        (id, handle(message).await)
    });
    let mut response = SqsBatchResponse::default();
    for (id, done) in futures::future::join_all(runs).await {
        if !done {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Serves `handle` as the Lambda function of an SQS event source.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn queue<F, Fut>(handle: F) -> Result<(), Error>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let handle = &handle;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle(event.payload).await)
    }))
    .await
}

/// Serves `handle` as the Lambda function of an SQS event source whose work must stop in
/// time: it gets the instant the invocation must be done by.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn queue_until<F, Fut>(handle: F) -> Result<(), Error>
where
    F: Fn(SqsEvent, Instant) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let handle = &handle;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or_default();
        Ok::<_, Error>(handle(event.payload, Instant::now() + left).await)
    }))
    .await
}

/// Serves `handle` as a Lambda function with several event sources, which it tells
/// apart by their payloads; it gets the instant the invocation must be done by.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn events<F, Fut, R>(handle: F) -> Result<(), Error>
where
    F: Fn(Value, Instant) -> Fut,
    Fut: Future<Output = Result<R, Error>>,
    R: Serialize,
{
    let handle = &handle;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or_default();
        handle(event.payload, Instant::now() + left).await
    }))
    .await
}

/// Serves `handle` as a scheduled (or directly invoked) Lambda function: it gets the
/// invocation's payload and the instant the invocation must be done by.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn scheduled<F, Fut, R, E>(handle: F) -> Result<(), Error>
where
    F: Fn(Value, Instant) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: Serialize,
    E: Into<Error>,
{
    let handle = &handle;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or_default();
        handle(event.payload, Instant::now() + left).await.map_err(Into::into)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_unfinished_messages_are_reported() {
        let mut event = SqsEvent::default();
        for (id, body) in [("m1", "ok"), ("m2", "retry"), ("m3", "ok")] {
            let mut m = SqsMessage::default();
            m.message_id = Some(id.into());
            m.body = Some(body.into());
            event.records.push(m);
        }
        let response = partial_batch(event, |m| async move { m.body.as_deref() == Some("ok") }).await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, vec!["m2"]);
    }

    #[tokio::test]
    async fn a_concurrent_batch_runs_its_messages_side_by_side_and_reports_the_unfinished() {
        let mut event = SqsEvent::default();
        for (id, body) in [("slow", "ok"), ("m2", "retry"), ("m3", "ok")] {
            let mut m = SqsMessage::default();
            m.message_id = Some(id.into());
            m.body = Some(body.into());
            event.records.push(m);
        }
        let started = std::sync::atomic::AtomicUsize::new(0);
        let started = &started;
        let response = concurrent_batch(event, |m| async move {
            started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if m.message_id.as_deref() == Some("slow") {
                // Finishes only once every other message has started: side by side.
                while started.load(std::sync::atomic::Ordering::SeqCst) < 3 {
                    tokio::task::yield_now().await;
                }
            }
            m.body.as_deref() == Some("ok")
        })
        .await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, vec!["m2"]);
    }

    #[test]
    fn the_sample_queue_events_are_sqs_events() {
        for sample in [include_str!("../../events/sqs-ingest.json"), include_str!("../../events/sqs-export.json")] {
            let event: SqsEvent = serde_json::from_str(sample).unwrap_or_else(|e| panic!("not an SQS event: {e}"));
            assert!(!event.records.is_empty());
        }
    }
}
