//! The ingest queue consumer (contract section 3), shared by the Lambda entry point and
//! the local runner.
//!
//! Per message: every event is stored or refused. A transient failure returns the message
//! to the queue (redelivery is harmless since ingest is idempotent). Events that can never
//! be stored go to the dead-letter queue right away, as a message in the queue's own
//! format with the reasons attached, so they can be fixed and sent again.

use crate::domain::error::ErrorBody;
use crate::domain::ingest::{BadMessage, ItemResult, MessageEvents, Tally, parse_message, split_message};
use crate::ports::{MessageQueue, Outgoing};
use crate::usecases::ingest::Ingest;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;

/// Room kept for the reasons attribute on a dead letter.
const MAX_REASON_BYTES: usize = 16 * 1024;

/// Attribute of a dead letter holding why its events were refused (JSON).
pub const ERROR_ATTRIBUTE: &str = "audit_error";
/// Attribute of a dead letter naming the message it came from.
pub const SOURCE_ATTRIBUTE: &str = "audit_source_message_id";

/// The body of a dead letter for some events of a batch message: the queue's own format.
#[derive(serde::Serialize)]
struct DeadLetter<'a> {
    tenant_id: &'a str,
    events: Vec<&'a RawValue>,
}

#[derive(Clone)]
pub struct Consumer {
    pub ingest: Ingest,
    /// Where what can never be stored goes.
    pub dead_letters: Arc<dyn MessageQueue>,
}

/// What became of one message: whether it is done with, how its events ended, and how
/// many went to the dead-letter queue (what the queue metrics report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consumed {
    /// Stored, or dead-lettered; `false`: it should be delivered again.
    pub done: bool,
    pub tally: Tally,
    /// Events (or, for a message that is not one, the whole message) dead-lettered.
    pub dead_lettered: u32,
}

impl Consumer {
    /// Handles one message.
    pub async fn consume(&self, message_id: Option<&str>, body: &str) -> Consumed {
        let (tenant, events) = match parse_message(body) {
            Ok(parsed) => parsed,
            Err(BadMessage(reason)) => {
                let reasons = json!([{"code": "invalid_request", "message": reason}]);
                let done = self.dead_letter(body.to_owned(), &reasons, message_id).await;
                return Consumed { done, tally: Tally::default(), dead_lettered: u32::from(done) };
            }
        };
        let results = self.ingest.ingest(&tenant, events).await;
        let tally = Tally::of(&results);
        if results.iter().any(ItemResult::transient) {
            tracing::warn!(?message_id, "transient failure; the message goes back to the queue");
            return Consumed { done: false, tally, dead_lettered: 0 };
        }
        let refused: Vec<(usize, &ErrorBody)> =
            results.iter().filter_map(|r| r.error.as_ref().map(|e| (r.index, e))).collect();
        if refused.is_empty() {
            return Consumed { done: true, tally, dead_lettered: 0 };
        }
        // Ingest consumed the events; the rare rejection path takes them again from the body,
        // as their text: a dead letter carries each event exactly as it was sent.
        let reasons: Vec<Value> = refused.iter().map(|(i, e)| json!({"index": i, "error": e})).collect();
        let body = match split_message(body) {
            Ok((_, MessageEvents::Batch(events))) => {
                let events: Vec<&RawValue> = refused.iter().filter_map(|(i, _)| events.get(*i).copied()).collect();
                serde_json::to_string(&DeadLetter { tenant_id: tenant.as_str(), events }).unwrap_or_default()
            }
            _ => body.to_owned(),
        };
        let done = self.dead_letter(body, &Value::Array(reasons), message_id).await;
        let dead_lettered = if done { u32::try_from(refused.len()).unwrap_or(u32::MAX) } else { 0 };
        Consumed { done, tally, dead_lettered }
    }

    async fn dead_letter(&self, body: String, reasons: &Value, source: Option<&str>) -> bool {
        let mut reason = reasons.to_string();
        if reason.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        let attributes = vec![
            (ERROR_ATTRIBUTE.to_owned(), reason.clone()),
            (SOURCE_ATTRIBUTE.to_owned(), source.unwrap_or("-").to_owned()),
        ];
        match self.dead_letters.send(Outgoing { body, attributes, delay_seconds: 0 }).await {
            Ok(()) => {
                tracing::warn!(message_id = ?source, %reason, "sent to the dead-letter queue");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "dead-letter queue unavailable; the message goes back to the queue");
                false
            }
        }
    }
}
