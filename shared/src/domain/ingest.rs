//! What ingest takes and gives back (contract sections 1 to 3): a request body or a queue
//! message split into its events, and the result of each event.

use crate::domain::canonical::{sha256_hex, to_canonical};
use crate::domain::error::{Code, ErrorBody};
use crate::domain::event::{Accepted, MAX_EVENT_BYTES};
use crate::domain::incoming::Incoming;
use crate::domain::tenant::TenantId;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Most events in one request or message.
pub const MAX_BATCH: usize = 500;
/// Most bytes of one HTTP request body.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// The SQS message size limit, which also bounds what the queue consumer reads.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

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
    #[must_use]
    pub fn rejected(index: usize, id: Option<String>, error: ErrorBody) -> Self {
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

/// How a batch's events ended, counted: what the ingest metrics report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub created: u32,
    pub duplicate: u32,
    /// Refused with `conflict`: the id is taken by other content.
    pub conflict: u32,
    /// Refused for good for any other reason (invalid).
    pub rejected: u32,
    /// Refused for now (`throttled`): answered 503, or the message goes back to the queue.
    pub throttled: u32,
}

impl Tally {
    #[must_use]
    pub fn of(results: &[ItemResult]) -> Self {
        let mut t = Self::default();
        for r in results {
            match (r.status, r.error.as_ref().map(|e| e.code)) {
                (Status::Created, _) => t.created += 1,
                (Status::Duplicate, _) => t.duplicate += 1,
                (Status::Rejected, Some(Code::Conflict)) => t.conflict += 1,
                (Status::Rejected, _) if r.transient() => t.throttled += 1,
                (Status::Rejected, _) => t.rejected += 1,
            }
        }
        t
    }
}

/// A request body that cannot be taken at all.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyError(pub ErrorBody);

/// A JSON object's members, each still as its text.
type Members<'a> = std::collections::HashMap<String, &'a RawValue>;

/// Splits a request body into its events: one event, or `{"events": [...]}`. Each event
/// is read from its own text ([`Incoming::parse`]), so a number one of them gets wrong
/// refuses that event only.
///
/// # Errors
/// `invalid_request` for a body that is not UTF-8 JSON of either shape, and
/// `payload_too_large` past 500 events, 5 MiB, or 64 KiB for a single event.
pub fn parse_body(body: &[u8]) -> Result<Vec<Incoming>, BodyError> {
    let bad = |reason: &str, message: String| {
        BodyError(ErrorBody::new(Code::InvalidRequest, message).with_details(&[serde_json::json!({"reason": reason})]))
    };
    let too_large = |message: &str| BodyError(ErrorBody::new(Code::PayloadTooLarge, message));
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large("a request body is at most 5 MiB"));
    }
    let text =
        std::str::from_utf8(body).map_err(|e| bad("invalid_utf8", format!("the body is not valid UTF-8: {e}")))?;
    let invalid_json = |e: serde_json::Error| bad("invalid_json", format!("the body is not valid JSON: {e}"));
    let top: &RawValue = serde_json::from_str(text).map_err(invalid_json)?;
    let not_an_object = || bad("not_an_object", "the body must be an event object or {\"events\": [...]}".into());
    if !top.get().starts_with('{') {
        return Err(not_an_object());
    }
    let members: Members<'_> = serde_json::from_str(top.get()).map_err(invalid_json)?;
    let Some(events) = members.get("events") else {
        if body.len() > MAX_EVENT_BYTES {
            return Err(too_large("one event is at most 64 KiB"));
        }
        return Incoming::parse(text).map(|e| vec![e]).map_err(invalid_json);
    };
    if members.len() > 1 {
        return Err(bad("unknown_field", "a batch holds only \"events\"".into()));
    }
    let events: Vec<&RawValue> =
        serde_json::from_str(events.get()).map_err(|_| bad("invalid_type", "\"events\" must be an array".into()))?;
    if events.is_empty() {
        return Err(bad("empty_batch", "\"events\" is empty".into()));
    }
    if events.len() > MAX_BATCH {
        return Err(too_large("a batch holds at most 500 events"));
    }
    events.into_iter().map(|e| Incoming::parse(e.get())).collect::<Result<_, _>>().map_err(invalid_json)
}

/// Why a whole message is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage(pub String);

/// A queue message's events, each still as its text.
pub enum MessageEvents<'a> {
    /// The message is one event (with `tenant_id` among its members).
    One(&'a str),
    /// `{"tenant_id", "events": [...]}`.
    Batch(Vec<&'a RawValue>),
}

/// Splits a message body: one event with `tenant_id`, or `{"tenant_id", "events": [...]}`.
///
/// # Errors
/// [`BadMessage`] when the body is neither.
pub fn split_message(body: &str) -> Result<(TenantId, MessageEvents<'_>), BadMessage> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(BadMessage("message over 256 KiB".into()));
    }
    let invalid = |e: serde_json::Error| BadMessage(format!("invalid JSON: {e}"));
    let top: &RawValue = serde_json::from_str(body).map_err(invalid)?;
    if !top.get().starts_with('{') {
        return Err(BadMessage("the body must be a JSON object".into()));
    }
    let members: Members<'_> = serde_json::from_str(top.get()).map_err(invalid)?;
    let tenant = match members.get("tenant_id").map(|t| serde_json::from_str::<Value>(t.get())) {
        Some(Ok(Value::String(t))) => TenantId::parse(&t).map_err(|e| BadMessage(e.to_string()))?,
        Some(_) => return Err(BadMessage("tenant_id must be a string".into())),
        None => return Err(BadMessage("tenant_id is required".into())),
    };
    let Some(events) = members.get("events") else {
        return Ok((tenant, MessageEvents::One(body)));
    };
    if members.len() > 2 {
        return Err(BadMessage("a batch message holds only tenant_id and events".into()));
    }
    match serde_json::from_str::<Vec<&RawValue>>(events.get()) {
        Ok(events) if !events.is_empty() && events.len() <= MAX_BATCH => Ok((tenant, MessageEvents::Batch(events))),
        Ok(_) => Err(BadMessage("events must hold 1 to 500 events".into())),
        Err(_) => Err(BadMessage("events must be an array".into())),
    }
}

/// Reads a message body into its tenant and events (see [`split_message`]).
///
/// # Errors
/// [`BadMessage`] when the body is neither shape.
pub fn parse_message(body: &str) -> Result<(TenantId, Vec<Incoming>), BadMessage> {
    let (tenant, events) = split_message(body)?;
    let invalid = |e: serde_json::Error| BadMessage(format!("invalid JSON: {e}"));
    let events = match events {
        MessageEvents::One(text) => {
            let mut event = Incoming::parse(text).map_err(invalid)?;
            event.remove("tenant_id");
            vec![event]
        }
        MessageEvents::Batch(raw) => {
            raw.into_iter().map(|e| Incoming::parse(e.get())).collect::<Result<_, _>>().map_err(invalid)?
        }
    };
    Ok((tenant, events))
}

/// The digest that decides duplicate or conflict: the hash, except that a defaulted
/// `occurred_at` is left out, so a client retry of an event without a time is a
/// duplicate rather than a conflict.
pub fn dedup_digest(a: &Accepted, hash: &str) -> String {
    if a.occurred_at_given {
        return hash.to_owned();
    }
    let mut v = a.event.to_json();
    if let Value::Object(m) = &mut v {
        m.remove("occurred_at");
    }
    sha256_hex(&to_canonical(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Event;
    use crate::domain::timestamp::Timestamp;

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

    #[test]
    fn reads_single_and_batch_messages() {
        let one = parse_message(r#"{"tenant_id": "t1", "action": "a.b"}"#);
        assert_eq!(
            one.map(|(t, e)| (t.to_string(), e)),
            Ok(("t1".into(), vec![Incoming::parse(r#"{"action": "a.b"}"#).unwrap_or_else(|e| panic!("{e}"))]))
        );
        let many = parse_message(r#"{"tenant_id": "t1", "events": [{}, {}]}"#);
        assert_eq!(many.map(|(_, e)| e.len()), Ok(2));
    }

    #[test]
    fn the_sample_sqs_payload_parses() {
        let event: Value = serde_json::from_str(include_str!("../../../events/sqs-ingest.json")).unwrap_or_default();
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        assert_eq!(records.len(), 2);
        for r in records {
            assert!(parse_message(r["body"].as_str().unwrap_or_default()).is_ok());
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
