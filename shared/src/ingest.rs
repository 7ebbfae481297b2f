//! Ingest: from raw JSON events to per-event results, the same for HTTP and the queue.

use crate::canonical::{sha256_hex, to_canonical};
use crate::error::{Code, ErrorBody};
use crate::event::{Accepted, Event, MAX_EVENT_BYTES, Violation};
use crate::keys::shard_of;
use crate::store::{PutOutcome, Store, StoreError};
use crate::tenant::TenantId;
use crate::timestamp::Timestamp;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

/// Most events in one request or message.
pub const MAX_BATCH: usize = 500;
/// Most bytes of one HTTP request body.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Conditional writes in flight per batch.
const WRITE_CONCURRENCY: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Duplicate,
    Rejected,
}

/// The result for one event of a batch, as the contract's `results[]` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl ItemResult {
    fn rejected(index: usize, id: Option<String>, error: ErrorBody) -> Self {
        Self { index, id, status: Status::Rejected, error: Some(error) }
    }

    /// Whether the event is now stored (by this write or an earlier one).
    #[must_use]
    pub fn stored(&self) -> bool {
        self.status != Status::Rejected
    }

    /// Whether the rejection may go away on a retry.
    #[must_use]
    pub fn transient(&self) -> bool {
        self.error.as_ref().is_some_and(|e| e.code.retryable())
    }
}

/// A request body that cannot be taken at all.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyError(pub ErrorBody);

/// Splits a request body into its events: one event, or `{"events": [...]}`.
///
/// # Errors
/// `invalid_request` for a body that is not UTF-8 JSON of either shape, and
/// `payload_too_large` past 500 events, 5 MiB, or 64 KiB for a single event.
pub fn parse_body(body: &[u8]) -> Result<Vec<Value>, BodyError> {
    let bad = |reason: &str, message: String| {
        BodyError(ErrorBody::new(Code::InvalidRequest, message).with_details(&[serde_json::json!({"reason": reason})]))
    };
    let too_large = |message: &str| BodyError(ErrorBody::new(Code::PayloadTooLarge, message));
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large("a request body is at most 5 MiB"));
    }
    let text =
        std::str::from_utf8(body).map_err(|e| bad("invalid_utf8", format!("the body is not valid UTF-8: {e}")))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad("invalid_json", format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Object(mut m) if m.contains_key("events") => {
            if m.len() > 1 {
                return Err(bad("unknown_field", "a batch holds only \"events\"".into()));
            }
            match m.remove("events") {
                Some(Value::Array(events)) if events.is_empty() => {
                    Err(bad("empty_batch", "\"events\" is empty".into()))
                }
                Some(Value::Array(events)) if events.len() > MAX_BATCH => {
                    Err(too_large("a batch holds at most 500 events"))
                }
                Some(Value::Array(events)) => Ok(events),
                _ => Err(bad("invalid_type", "\"events\" must be an array".into())),
            }
        }
        single @ Value::Object(_) => {
            if body.len() > MAX_EVENT_BYTES {
                return Err(too_large("one event is at most 64 KiB"));
            }
            Ok(vec![single])
        }
        _ => Err(bad("not_an_object", "the body must be an event object or {\"events\": [...]}".into())),
    }
}

/// Validates and stores events for one tenant; the order of results is the order of
/// `events`. Never fails as a whole: every event gets its own result.
pub async fn ingest(store: &Store, tenant: &TenantId, events: Vec<Value>) -> Vec<ItemResult> {
    let now = Timestamp::now();
    let mut results: Vec<Option<ItemResult>> = vec![None; events.len()];
    let mut valid: Vec<(usize, Accepted)> = Vec::with_capacity(events.len());
    for (index, raw) in events.into_iter().enumerate() {
        let id = raw_id(&raw);
        match Event::validate(raw, tenant, now) {
            Ok(a) => valid.push((index, a)),
            Err(v) => results[index] = Some(ItemResult::rejected(index, id, invalid(&v))),
        }
    }
    if !valid.is_empty() {
        let prepared = match store.tenant_settings(tenant).await {
            Ok(settings) => Ok(settings),
            Err(e) => Err(store_error(&e)),
        };
        match prepared {
            Ok(settings) => {
                if let Err(e) = store.register_tenant(tenant, &now.to_string()).await {
                    tracing::warn!(%tenant, error = %e, "tenant registry not updated; it will be retried on the next batch");
                }
                let mut created = Vec::new();
                // Boxed so the stream's item type names no closure lifetime (axum needs the
                // handler future to be provably Send).
                let pending: Vec<WriteFuture<'_>> = valid
                    .iter()
                    .map(|(index, a)| -> WriteFuture<'_> {
                        Box::pin(async move { (*index, a, write(store, a, now, settings.shards).await) })
                    })
                    .collect();
                let writes =
                    futures::stream::iter(pending).buffer_unordered(WRITE_CONCURRENCY).collect::<Vec<_>>().await;
                for (index, a, outcome) in writes {
                    let id = Some(a.event.id.clone());
                    results[index] = Some(match outcome {
                        Ok(PutOutcome::Created) => {
                            created.push(&a.event);
                            ItemResult { index, id, status: Status::Created, error: None }
                        }
                        Ok(PutOutcome::Duplicate) => ItemResult { index, id, status: Status::Duplicate, error: None },
                        Ok(PutOutcome::Conflict) => ItemResult::rejected(
                            index,
                            id,
                            ErrorBody::new(Code::Conflict, "this id is already stored with different content"),
                        ),
                        Err(e) => ItemResult::rejected(index, id, store_error(&e)),
                    });
                }
                if let Err(e) = store.record_catalog(tenant, settings.shards, &created).await {
                    tracing::error!(%tenant, error = %e, "catalog not updated for a stored batch");
                }
            }
            Err(body) => {
                for (index, a) in &valid {
                    results[*index] = Some(ItemResult::rejected(*index, Some(a.event.id.clone()), body.clone()));
                }
            }
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| ItemResult::rejected(i, None, ErrorBody::new(Code::Internal, "not processed")))
        })
        .collect()
}

type WriteFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (usize, &'a Accepted, Result<PutOutcome, StoreError>)> + Send + 'a>,
>;

async fn write(store: &Store, a: &Accepted, received_at: Timestamp, shards: u16) -> Result<PutOutcome, StoreError> {
    let stored = a.stamp(received_at);
    let dedup = dedup_digest(a, &stored.hash);
    store.put_event(&stored, shard_of(&a.event.id, shards), &dedup).await
}

/// The digest that decides duplicate or conflict: the hash, except that a defaulted
/// `occurred_at` is left out, so a client retry of an event without a time is a
/// duplicate rather than a conflict.
fn dedup_digest(a: &Accepted, hash: &str) -> String {
    if a.occurred_at_given {
        return hash.to_owned();
    }
    let mut v = a.event.to_json();
    if let Value::Object(m) = &mut v {
        m.remove("occurred_at");
    }
    sha256_hex(&to_canonical(&v))
}

fn raw_id(raw: &Value) -> Option<String> {
    raw.get("id").and_then(Value::as_str).map(str::to_owned)
}

fn invalid(violations: &[Violation]) -> ErrorBody {
    let first = violations.first().map_or_else(String::new, |v| format!(": {} {}", v.field, v.message));
    ErrorBody::new(Code::InvalidRequest, format!("the event is invalid{first}")).with_details(violations)
}

fn store_error(e: &StoreError) -> ErrorBody {
    match e {
        StoreError::Unavailable(_) => {
            tracing::warn!(error = %e, "store unavailable");
            ErrorBody::new(Code::Throttled, "storage is busy; retry this event")
        }
        _ => {
            tracing::error!(error = %e, "store error");
            ErrorBody::new(Code::Internal, "internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(e: &BodyError) -> (Code, Option<String>) {
        let r = e.0.details.first().and_then(|d| d.get("reason")).and_then(Value::as_str).map(str::to_owned);
        (e.0.code, r)
    }

    #[test]
    fn takes_one_event_or_a_batch() {
        assert_eq!(parse_body(br#"{"action":"a.b"}"#).map(|v| v.len()), Ok(1));
        assert_eq!(parse_body(br#"{"events":[{},{}]}"#).map(|v| v.len()), Ok(2));
    }

    #[test]
    fn refuses_bodies_it_cannot_take() {
        let cases: Vec<(Vec<u8>, Code, Option<&str>)> = vec![
            (b"{\"action\": \"\xff\"}".to_vec(), Code::InvalidRequest, Some("invalid_utf8")),
            (b"{not json".to_vec(), Code::InvalidRequest, Some("invalid_json")),
            (b"[1]".to_vec(), Code::InvalidRequest, Some("not_an_object")),
            (br#"{"events": {}}"#.to_vec(), Code::InvalidRequest, Some("invalid_type")),
            (br#"{"events": []}"#.to_vec(), Code::InvalidRequest, Some("empty_batch")),
            (br#"{"events": [], "x": 1}"#.to_vec(), Code::InvalidRequest, Some("unknown_field")),
            (format!("{{\"events\": [{}]}}", vec!["{}"; 501].join(",")).into_bytes(), Code::PayloadTooLarge, None),
            (format!("{{\"description\": \"{}\"}}", "x".repeat(70_000)).into_bytes(), Code::PayloadTooLarge, None),
            (vec![b' '; MAX_BODY_BYTES + 1], Code::PayloadTooLarge, None),
        ];
        for (body, code, why) in cases {
            let got = parse_body(&body).map(|v| v.len());
            let err = got.err();
            assert_eq!(
                err.as_ref().map(reason),
                Some((code, why.map(str::to_owned))),
                "{}",
                String::from_utf8_lossy(&body[..body.len().min(60)])
            );
        }
    }

    #[test]
    fn a_retry_without_occurred_at_is_a_duplicate_not_a_conflict() {
        let tenant = TenantId::parse("t").unwrap_or_else(|_| unreachable!());
        let raw = serde_json::json!({"id": "e1", "action": "a.b", "actor": {"type": "member", "id": "u"}});
        let first = Event::validate(raw.clone(), &tenant, Timestamp::now());
        let second = Event::validate(raw.clone(), &tenant, Timestamp::now().plus_seconds(3));
        let (Ok(first), Ok(second)) = (first, second) else { panic!() };
        let digest = |a: &Accepted| dedup_digest(a, &a.stamp(Timestamp::now()).hash);
        assert_eq!(digest(&first), digest(&second));
    }
}
