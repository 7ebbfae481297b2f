//! The ingest queue consumer (contract section 3), shared by the Lambda entry point and
//! the local runner.
//!
//! Per message: every event is stored or refused. A transient failure returns the message
//! to the queue (partial batch response; redelivery is harmless since ingest is
//! idempotent). Events that can never be stored go to the dead-letter queue right away,
//! as a message in the queue's own format with the reasons attached, so they can be
//! fixed and sent again.

use crate::error::ErrorBody;
use crate::ingest::{self, ItemResult, MAX_BATCH};
use crate::store::Store;
use crate::tenant::TenantId;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::{Value, json};

/// The SQS message size limit, which also bounds what this consumer reads.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Room kept for the reasons attribute on a dead letter.
const MAX_REASON_BYTES: usize = 16 * 1024;

/// Where the consumer sends what can never be stored.
pub struct DeadLetters<'a> {
    pub sqs: &'a aws_sdk_sqs::Client,
    pub url: &'a str,
}

/// Why a whole message is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage(pub String);

/// Reads a message body: one event with `tenant_id`, or `{"tenant_id", "events": [...]}`.
///
/// # Errors
/// [`BadMessage`] when the body is neither.
pub fn parse_message(body: &str) -> Result<(TenantId, Vec<Value>), BadMessage> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(BadMessage("message over 256 KiB".into()));
    }
    let value: Value = serde_json::from_str(body).map_err(|e| BadMessage(format!("invalid JSON: {e}")))?;
    let Value::Object(mut m) = value else {
        return Err(BadMessage("the body must be a JSON object".into()));
    };
    let tenant = match m.remove("tenant_id") {
        Some(Value::String(t)) => TenantId::parse(&t).map_err(|e| BadMessage(e.to_string()))?,
        Some(_) => return Err(BadMessage("tenant_id must be a string".into())),
        None => return Err(BadMessage("tenant_id is required".into())),
    };
    if !m.contains_key("events") {
        return Ok((tenant, vec![Value::Object(m)]));
    }
    if m.len() > 1 {
        return Err(BadMessage("a batch message holds only tenant_id and events".into()));
    }
    match m.remove("events") {
        Some(Value::Array(events)) if !events.is_empty() && events.len() <= MAX_BATCH => Ok((tenant, events)),
        Some(Value::Array(_)) => Err(BadMessage("events must hold 1 to 500 events".into())),
        _ => Err(BadMessage("events must be an array".into())),
    }
}

/// Handles one delivery of up to ten messages; the response lists the messages to retry.
pub async fn handle(store: &Store, dead: &DeadLetters<'_>, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        if !handle_message(store, dead, &message).await {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Returns whether the message is done with (stored, or dead-lettered).
async fn handle_message(store: &Store, dead: &DeadLetters<'_>, message: &SqsMessage) -> bool {
    let body = message.body.as_deref().unwrap_or_default();
    let (tenant, events) = match parse_message(body) {
        Ok(parsed) => parsed,
        Err(BadMessage(reason)) => {
            let reasons = json!([{"code": "invalid_request", "message": reason}]);
            return dead_letter(dead, body.to_owned(), &reasons, message).await;
        }
    };
    let results = ingest::ingest(store, &tenant, events).await;
    if results.iter().any(ItemResult::transient) {
        tracing::warn!(message_id = ?message.message_id, "transient failure; the message goes back to the queue");
        return false;
    }
    let refused: Vec<(usize, &ErrorBody)> =
        results.iter().filter_map(|r| r.error.as_ref().map(|e| (r.index, e))).collect();
    if refused.is_empty() {
        return true;
    }
    // Ingest consumed the events; the rare rejection path reads them again from the body
    // rather than every message paying for a copy.
    let (_, events) = parse_message(body).unwrap_or_else(|_| (tenant.clone(), Vec::new()));
    let events: Vec<&Value> = refused.iter().filter_map(|(i, _)| events.get(*i)).collect();
    let reasons: Vec<Value> = refused.iter().map(|(i, e)| json!({"index": i, "error": e})).collect();
    let body = json!({"tenant_id": tenant.as_str(), "events": events}).to_string();
    dead_letter(dead, body, &Value::Array(reasons), message).await
}

async fn dead_letter(dead: &DeadLetters<'_>, body: String, reasons: &Value, original: &SqsMessage) -> bool {
    let mut reason = reasons.to_string();
    if reason.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    let attr = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build();
    let (Ok(reason_attr), Ok(source_attr)) = (attr(&reason), attr(original.message_id.as_deref().unwrap_or("-")))
    else {
        return false;
    };
    let sent = dead
        .sqs
        .send_message()
        .queue_url(dead.url)
        .message_body(body)
        .message_attributes("audit_error", reason_attr)
        .message_attributes("audit_source_message_id", source_attr)
        .send()
        .await;
    match sent {
        Ok(_) => {
            tracing::warn!(message_id = ?original.message_id, %reason, "sent to the dead-letter queue");
            true
        }
        Err(e) => {
            tracing::error!(error = ?e, "dead-letter queue unavailable; the message goes back to the queue");
            false
        }
    }
}

/// Does once what Lambda's event source mapping does: receives up to ten messages,
/// hands them to [`handle`], and deletes the ones it finished. The local runner loops on
/// it; on AWS the mapping calls the function instead.
///
/// # Errors
/// When the queue cannot be read.
pub async fn poll_once(
    store: &Store,
    dead: &DeadLetters<'_>,
    queue_url: &str,
    wait_seconds: i32,
) -> Result<usize, aws_sdk_sqs::Error> {
    let received = dead
        .sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_seconds)
        .send()
        .await?;
    let messages = received.messages.unwrap_or_default();
    let count = messages.len();
    if count == 0 {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    let mut handles = Vec::with_capacity(count);
    for m in messages {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        record.event_source = Some("aws:sqs".into());
        handles.push((m.message_id, m.receipt_handle));
        event.records.push(record);
    }
    let response = handle(store, dead, event).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    for (id, receipt) in handles {
        if failed.contains(&id.as_deref().unwrap_or_default()) {
            continue;
        }
        if let Some(receipt) = receipt {
            dead.sqs.delete_message().queue_url(queue_url).receipt_handle(receipt).send().await?;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_single_and_batch_messages() {
        let one = parse_message(r#"{"tenant_id": "t1", "action": "a.b"}"#);
        assert_eq!(one.map(|(t, e)| (t.to_string(), e)), Ok(("t1".into(), vec![json!({"action": "a.b"})])));
        let many = parse_message(r#"{"tenant_id": "t1", "events": [{}, {}]}"#);
        assert_eq!(many.map(|(_, e)| e.len()), Ok(2));
    }

    #[test]
    fn the_sample_sqs_payload_parses() {
        let event: Result<SqsEvent, _> = serde_json::from_str(include_str!("../../events/sqs-ingest.json"));
        let records = event.map(|e| e.records).unwrap_or_default();
        assert_eq!(records.len(), 2);
        for r in records {
            assert!(parse_message(r.body.as_deref().unwrap_or_default()).is_ok());
        }
    }

    #[test]
    fn refuses_messages_that_can_never_be_valid() {
        for body in [
            "not json",
            "[]",
            r#"{"action": "a.b"}"#,
            r#"{"tenant_id": "bad tenant", "action": "a.b"}"#,
            r#"{"tenant_id": 7}"#,
            r#"{"tenant_id": "t", "events": []}"#,
            r#"{"tenant_id": "t", "events": {}}"#,
            r#"{"tenant_id": "t", "events": [{}], "more": 1}"#,
        ] {
            assert!(parse_message(body).is_err(), "{body}");
        }
        assert!(
            parse_message(&format!("{{\"tenant_id\":\"t\",\"x\":\"{}\"}}", "a".repeat(MAX_MESSAGE_BYTES))).is_err()
        );
    }
}
