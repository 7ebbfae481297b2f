use super::*;
use proptest::prelude::*;

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap_or_else(|_| unreachable!())
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-20T12:00:00Z").unwrap_or(Timestamp::MIN)
}

use crate::domain::fixtures::{arb_event, arb_full_event, bad_events, json_value, minimal, with};

#[test]
fn every_bad_event_is_refused_with_its_reason() {
    for (raw, field, reason) in bad_events() {
        let got = Event::validate(raw.clone(), &tenant(), now());
        let violations = got.err().unwrap_or_default();
        assert!(
            violations.iter().any(|v| v.field == field && v.reason == reason),
            "expected {field}/{reason:?} for {raw}, got {violations:?}"
        );
    }
}

#[test]
fn empty_objects_are_stored_as_absent() {
    let raw = with(json!({"resource": {"parent": {}}, "workspace": {}, "source": {}}));
    let accepted = Event::validate(raw, &tenant(), now()).unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!((accepted.event.resource, accepted.event.workspace, accepted.event.source), (None, None, None));
    assert!(!accepted.canonical.contains("resource"), "{}", accepted.canonical);
}

#[test]
fn reports_every_violation_at_once() {
    let raw = json!({"action": "X", "actor": {"type": "robot", "id": ""}, "extra": 1});
    let got = Event::validate(raw.clone(), &tenant(), now()).err().unwrap_or_default();
    assert_eq!(got.len(), 4, "{got:?}");
}

#[test]
fn applies_defaults_and_normalizes() {
    let raw =
        with(json!({"occurred_at": "2026-11-20T13:00:00.5+01:00", "source": {"ip": "::FFFF:10.0.0.1"}, "email": null}));
    let raw = match raw {
        Value::Object(mut m) => {
            m.remove("email");
            Value::Object(m)
        }
        other => other,
    };
    let got = Event::validate(raw.clone(), &tenant(), now()).map(|a| a.event);
    let Ok(e) = got else { panic!("{got:?}") };
    assert_eq!(e.occurred_at.to_string(), "2026-11-20T12:00:00.500000Z");
    assert_eq!(e.outcome, Outcome::Success);
    assert_eq!(e.source.and_then(|s| s.ip).map(|ip| ip.to_string()).as_deref(), Some("::ffff:10.0.0.1"));
}

#[test]
fn assigns_a_uuid_v7_and_receipt_time_when_absent() {
    let got = Event::validate(minimal(), &tenant(), now());
    let Ok(a) = got else { panic!("{got:?}") };
    assert!(!a.occurred_at_given);
    assert_eq!(a.event.occurred_at, now());
    assert_eq!(uuid::Uuid::parse_str(&a.event.id).map(|u| u.get_version_num()).ok(), Some(7));
}

#[test]
fn accepts_nulls_as_absent_and_five_minutes_ahead() {
    let raw = with(json!({"occurred_at": "2026-11-20T12:05:00Z", "resource": null, "description": null}));
    assert!(Event::validate(raw.clone(), &tenant(), now()).is_ok());
}

#[test]
fn hash_is_sha256_of_the_rfc8785_form() {
    let raw = with(json!({"id": "e1", "occurred_at": "2026-11-05T22:25:20.138832Z", "metadata": {"b": 1.0, "a": "é"}}));
    let Ok(a) = Event::validate(raw.clone(), &tenant(), now()) else { panic!() };
    let canonical = a.event.canonical();
    assert_eq!(
        canonical,
        r#"{"action":"channel.create","actor":{"id":"u-1","type":"member"},"id":"e1","metadata":{"a":"é","b":1},"occurred_at":"2026-11-05T22:25:20.138832Z","outcome":"success","tenant_id":"acme"}"#
    );
    let stored = a.event.stamp(now());
    assert_eq!(stored.hash, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(canonical.as_bytes())));
}

proptest! {
    #[test]
    fn the_direct_canonical_writer_agrees_with_the_generic_one(event in arb_event()) {
        prop_assert_eq!(event.canonical(), crate::domain::canonical::to_canonical(&event.to_json()));
    }

    #[test]
    fn canonical_form_validates_back_to_the_same_event(event in arb_event()) {
        let doc: Value = serde_json::from_str(&event.canonical()).unwrap_or_default();
        prop_assert_eq!(Event::from_stored(&doc), Ok(event));
    }

    #[test]
    fn a_full_event_round_trips_through_its_json_and_canonical_forms(event in arb_full_event()) {
        prop_assert_eq!(event.canonical(), crate::domain::canonical::to_canonical(&event.to_json()));
        prop_assert_eq!(Event::from_stored(&event.to_json()), Ok(event.clone()));
        let doc: Value = serde_json::from_str(&event.canonical()).unwrap_or_default();
        prop_assert_eq!(Event::from_stored(&doc), Ok(event));
    }

    #[test]
    fn validation_never_panics_on_arbitrary_json(raw in json_value()) {
        let _ = Event::validate(raw.clone(), &tenant(), now());
    }
}
