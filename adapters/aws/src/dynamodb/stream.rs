//! The table's stream records as Lambda delivers them (DynamoDB Streams, view
//! `NEW_IMAGE`), and the new events among them.
//!
//! Lambda hands the records over as JSON whose attribute values are in DynamoDB's JSON
//! form (`{"S": "..."}`, `{"N": "1"}`, `{"B": "<base64>"}`, ...); [`image_to_item`] turns
//! an image back into the SDK's item, so the one mapping in [`crate::dynamodb::item`]
//! reads it, hash verified. Only an `INSERT` of an event item is an arrival: a
//! duplicate at ingest writes nothing (so no record), a tombstone is a `MODIFY`, the
//! archive's deletes are `REMOVE`s, and catalogs, rules and deliveries are other keys.

use crate::dynamodb::item::{self, ItemError};
use crate::dynamodb::keys;
use crate::dynamodb::values::Item;
use audit::domain::event::StoredEvent;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One invocation's batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

/// One record. Fields Lambda adds besides these (`awsRegion`, `eventVersion`,
/// `eventSourceARN`, ...) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventID", default)]
    pub event_id: Option<String>,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    #[serde(rename = "eventSource", default)]
    pub event_source: Option<String>,
    #[serde(default)]
    pub dynamodb: StreamData,
}

/// The change a record carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamData {
    #[serde(default)]
    pub keys: Option<Map<String, Value>>,
    #[serde(default)]
    pub new_image: Option<Map<String, Value>>,
    /// What a batch item failure names: Lambda retries from the first one reported.
    #[serde(default)]
    pub sequence_number: Option<String>,
}

/// The handler's answer with `ReportBatchItemFailures`: the records to process again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    /// The failed record's sequence number.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// A record that should hold a new event and does not hold a readable one.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// An attribute value not in DynamoDB's JSON form.
    #[error("stream image attribute {0} is not a DynamoDB JSON value")]
    Attribute(String),
    /// An inserted event item without its image (the stream's view type lacks it).
    #[error("an inserted event's record has no new image")]
    NoImage,
    /// The image is not a valid event, or does not match its hash.
    #[error(transparent)]
    Item(#[from] ItemError),
    /// The event inside is not the one the item's key names.
    #[error("the event in {0} is not the one its key names")]
    KeyMismatch(String),
}

/// An image (or a key) in DynamoDB's JSON form as the SDK's item.
///
/// # Errors
/// [`StreamError::Attribute`] naming the first value that is not in that form.
pub fn image_to_item(image: &Map<String, Value>) -> Result<Item, StreamError> {
    image.iter().map(|(k, v)| Ok((k.clone(), value(v).ok_or_else(|| StreamError::Attribute(k.clone()))?))).collect()
}

fn value(v: &Value) -> Option<AttributeValue> {
    let obj = v.as_object().filter(|o| o.len() == 1)?;
    let (kind, inner) = obj.iter().next()?;
    let strings = |v: &Value| v.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>();
    let blob = |v: &Value| v.as_str().and_then(|t| STANDARD.decode(t).ok()).map(Blob::new);
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_owned()),
        "N" => AttributeValue::N(inner.as_str()?.to_owned()),
        "B" => AttributeValue::B(blob(inner)?),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "BS" => AttributeValue::Bs(inner.as_array()?.iter().map(blob).collect::<Option<_>>()?),
        "L" => AttributeValue::L(inner.as_array()?.iter().map(value).collect::<Option<_>>()?),
        "M" => AttributeValue::M(
            inner.as_object()?.iter().map(|(k, v)| Some((k.clone(), value(v)?))).collect::<Option<_>>()?,
        ),
        "NULL" => AttributeValue::Null(inner.as_bool()?),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        _ => return None,
    })
}

/// The SDK's item in DynamoDB's JSON form: what a stream record carries (the local
/// runner builds its records with it).
#[must_use]
pub fn item_to_image(item: &Item) -> Map<String, Value> {
    item.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

fn to_json(v: &AttributeValue) -> Value {
    let b64 = |b: &Blob| Value::String(STANDARD.encode(b.as_ref()));
    let (kind, inner) = match v {
        AttributeValue::S(s) => ("S", Value::String(s.clone())),
        AttributeValue::N(n) => ("N", Value::String(n.clone())),
        AttributeValue::B(b) => ("B", b64(b)),
        AttributeValue::Ss(ss) => ("SS", ss.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(ns) => ("NS", ns.iter().cloned().map(Value::String).collect()),
        AttributeValue::Bs(bs) => ("BS", bs.iter().map(b64).collect()),
        AttributeValue::L(l) => ("L", l.iter().map(to_json).collect()),
        AttributeValue::M(m) => ("M", Value::Object(item_to_image(m))),
        AttributeValue::Bool(b) => ("BOOL", Value::Bool(*b)),
        // `Null`, and any kind a newer SDK adds, which no item of ours holds.
        _ => ("NULL", Value::Bool(true)),
    };
    Value::Object(Map::from_iter([(kind.to_owned(), inner)]))
}

/// The record's partition key, from its keys or else its image.
fn partition_key(record: &StreamRecord) -> Option<&str> {
    fn pk(m: &Map<String, Value>) -> Option<&str> {
        m.get(keys::PK).and_then(|v| v.get("S")).and_then(Value::as_str)
    }
    let data = &record.dynamodb;
    data.keys.as_ref().and_then(pk).or_else(|| data.new_image.as_ref().and_then(pk))
}

/// The event a record brings in: `Some` only for an `INSERT` of an event item that
/// holds an event; `None` for every other record (changes, removals, tombstones,
/// catalogs, rules, deliveries).
///
/// # Errors
/// [`StreamError`] for an inserted event item that cannot be read, or whose event is not
/// the one its key names: never skipped, so it is retried and then reported.
pub fn inserted_event(record: &StreamRecord) -> Result<Option<StoredEvent>, StreamError> {
    let Some(pk) = partition_key(record) else { return Ok(None) };
    if record.event_name != "INSERT" || !pk.starts_with("EV#") {
        return Ok(None);
    }
    let image = record.dynamodb.new_image.as_ref().ok_or(StreamError::NoImage)?;
    let item = image_to_item(image)?;
    if !item::holds_event(&item) {
        return Ok(None);
    }
    let stored = item::from_item(&item)?;
    let e = &stored.event;
    let sk = item.get(keys::SK).and_then(|v| v.as_s().ok());
    if keys::event_pk(&e.tenant_id, &e.id) != pk || sk.map(String::as_str) != Some(keys::EVENT_SK) {
        return Err(StreamError::KeyMismatch(pk.to_owned()));
    }
    Ok(Some(stored))
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
