use super::*;
use crate::dynamodb::item::attr;
use crate::dynamodb::values::{b, s};
use audit::domain::event::Event;
use audit::domain::fixtures::with;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use serde_json::json;

fn stored(tenant: &str, id: &str) -> StoredEvent {
    let t = TenantId::parse(tenant).unwrap_or_else(|_| unreachable!());
    let value = with(json!({"id": id, "action": "auth.login", "outcome": "failure",
        "resource": {"type": "user", "id": "u-9"}, "metadata": {"n": 1.5}}));
    let now = Timestamp::now();
    Event::validate(value, &t, now).unwrap_or_else(|v| panic!("{v:?}")).stamp(now)
}

/// A record as Lambda delivers it, every field Lambda sets included.
fn record_json(name: &str, image: Option<&Item>, pk: &str) -> Value {
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": 1_763_640_000.0,
        "Keys": {"pk": {"S": pk}, "sk": {"S": "EV"}},
        "SequenceNumber": "4421584500000000017450439091",
        "SizeBytes": 1024,
        "StreamViewType": "NEW_IMAGE",
    });
    if let Some(item) = image {
        dynamodb["NewImage"] = Value::Object(item_to_image(item));
    }
    json!({
        "eventID": "c81e728d9d4c2f636f067f89cc14862c",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/audit/stream/2026-11-20T00:00:00.000",
    })
}

fn record(name: &str, image: Option<&Item>, pk: &str) -> StreamRecord {
    let batch = json!({"Records": [record_json(name, image, pk)]});
    let event: StreamEvent = serde_json::from_value(batch).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(event.records.len(), 1);
    event.records.into_iter().next().unwrap_or_default()
}

#[test]
fn an_inserted_event_item_is_read_back_with_its_hash_checked() {
    let e = stored("t-a", "e-1");
    let item = item::to_item(&e, 3, &e.hash);
    let pk = keys::event_pk(&e.event.tenant_id, "e-1");
    let r = record("INSERT", Some(&item), &pk);
    assert_eq!(r.dynamodb.sequence_number.as_deref(), Some("4421584500000000017450439091"));
    assert_eq!(r.event_source.as_deref(), Some("aws:dynamodb"));
    assert_eq!(inserted_event(&r).ok().flatten(), Some(e.clone()));

    // An altered doc is an error, never an alert.
    let mut altered = item.clone();
    altered.insert(attr::HASH.into(), b(vec![0; 32]));
    assert!(matches!(inserted_event(&record("INSERT", Some(&altered), &pk)), Err(StreamError::Item(_))));
    // An event filed under another tenant's key is an error.
    let mut moved = item.clone();
    let other = "EV#t-b#e-1";
    moved.insert(keys::PK.into(), s(other));
    assert!(matches!(inserted_event(&record("INSERT", Some(&moved), other)), Err(StreamError::KeyMismatch(_))));
    // So is an inserted event without its image.
    assert!(matches!(inserted_event(&record("INSERT", None, &pk)), Err(StreamError::NoImage)));
}

#[test]
fn every_other_record_brings_no_event() {
    let e = stored("t-a", "e-1");
    let item = item::to_item(&e, 0, &e.hash);
    let pk = keys::event_pk(&e.event.tenant_id, "e-1");
    // The archive's tombstone is a change; its delete a removal.
    assert!(matches!(inserted_event(&record("MODIFY", Some(&item), &pk)), Ok(None)));
    assert!(matches!(inserted_event(&record("REMOVE", None, &pk)), Ok(None)));
    // An image without a doc (a tombstone's shape) holds no event.
    let mut tombstone = item.clone();
    for a in item::TOMBSTONE_REMOVES {
        tombstone.remove(a);
    }
    assert!(matches!(inserted_event(&record("INSERT", Some(&tombstone), &pk)), Ok(None)));
    // Catalogs, rules, states, markers, deliveries, the registry.
    for other in ["CA#t-a", "AL#t-a", "AM#t-a#r", "AD#t-a#r", "TENANTS", "EXPORTS#t-a"] {
        let mut it = item.clone();
        it.insert(keys::PK.into(), s(other));
        assert!(matches!(inserted_event(&record("INSERT", Some(&it), other)), Ok(None)), "{other}");
    }
    // A record with no keys at all.
    assert!(matches!(inserted_event(&StreamRecord::default()), Ok(None)));
}

#[test]
fn every_kind_of_attribute_value_crosses_dynamodb_json() {
    let image = json!({
        "s": {"S": "text"}, "n": {"N": "-1.5e3"}, "b": {"B": "AAEC"},
        "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": ["AA==", "AQ=="]},
        "l": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": true}]},
        "m": {"M": {"inner": {"BOOL": false}, "deeper": {"M": {"k": {"S": "v"}}}}},
        "null": {"NULL": true}, "bool": {"BOOL": true},
    });
    let image = image.as_object().cloned().unwrap_or_default();
    let item = image_to_item(&image).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(item.get("b"), Some(&AttributeValue::B(Blob::new(vec![0, 1, 2]))));
    assert_eq!(item.get("n"), Some(&AttributeValue::N("-1.5e3".into())));
    assert_eq!(item_to_image(&item), image);

    for bad in [
        json!({"S": 1}),
        json!({"B": "not base64!"}),
        json!({"X": "y"}),
        json!({"S": "a", "N": "1"}),
        json!("bare"),
        json!({"L": [{"S": 1}]}),
        json!({"SS": ["a", 1]}),
    ] {
        let image = Map::from_iter([("a".to_owned(), bad.clone())]);
        assert!(matches!(image_to_item(&image), Err(StreamError::Attribute(a)) if a == "a"), "{bad}");
    }
}

#[test]
fn unknown_fields_are_ignored_and_failures_are_reported_by_sequence_number() {
    let batch: StreamEvent = serde_json::from_value(json!({"Records": [{"eventName": "REMOVE", "extra": 1,
        "dynamodb": {"Keys": {"pk": {"S": "EV#t#e"}}, "OldImage": {}, "SequenceNumber": "7"}}]}))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batch.records[0].dynamodb.sequence_number.as_deref(), Some("7"));
    assert_eq!(serde_json::from_value::<StreamEvent>(json!({})).ok(), Some(StreamEvent::default()));
    let answer = BatchResponse { batch_item_failures: vec![ItemFailure { item_identifier: "7".into() }] };
    assert_eq!(json!(answer), json!({"batchItemFailures": [{"itemIdentifier": "7"}]}));
    assert_eq!(json!(BatchResponse::default()), json!({"batchItemFailures": []}));
}
