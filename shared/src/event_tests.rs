use super::*;
use proptest::prelude::*;

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap_or_else(|_| unreachable!())
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-20T12:00:00Z").unwrap_or(Timestamp::MIN)
}

fn minimal() -> Value {
    json!({"action": "channel.create", "actor": {"type": "member", "id": "u-1"}})
}

fn with(patch: Value) -> Value {
    let mut base = minimal();
    if let (Value::Object(b), Value::Object(p)) = (&mut base, patch) {
        for (k, v) in p {
            b.insert(k, v);
        }
    }
    base
}

use crate::fixtures::bad_events;

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

fn opt_text(max: usize) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        proptest::string::string_regex(&format!("[^\\x00]{{1,{max}}}")).unwrap_or_else(|_| unreachable!()),
    )
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53)..(1i64 << 53)).prop_map(|n| json!(n)),
        (-1e15f64..1e15).prop_map(|f| normalize(json!(f))),
        "[^\\x00]{0,20}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[^\\x00]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

prop_compose! {
    fn arb_ref()(kind in opt_text(20), id in opt_text(40), name in opt_text(40)) -> Ref {
        Ref { kind, id, name }
    }
}

prop_compose! {
    /// Any valid event, for round-trip properties.
    pub fn arb_event()(
        id in "[A-Za-z0-9._:@/-]{1,128}",
        micros in 0i64..Timestamp::parse("2026-11-20T00:00:00Z").map(Timestamp::micros).unwrap_or(0),
        action in "[a-z0-9_-]{1,10}(\\.[a-z0-9_-]{1,10}){1,3}",
        failure in any::<bool>(),
        kind in prop_oneof![Just(ActorType::Member), Just(ActorType::SystemUser), Just(ActorType::ApiKey), Just(ActorType::Service)],
        actor_id in "[^\\x00]{1,64}",
        actor_name in opt_text(30),
        actor_email in opt_text(30),
        resource in proptest::option::of((arb_ref(), proptest::option::of(arb_ref()))),
        workspace in proptest::option::of((opt_text(20), opt_text(20))),
        ip in proptest::option::of(any::<std::net::IpAddr>()),
        user_agent in opt_text(60),
        request_id in opt_text(30),
        description in opt_text(200),
        changes in proptest::option::of(proptest::collection::vec(("[^\\x00]{1,20}", proptest::option::of(json_value()), proptest::option::of(json_value())), 0..5)),
        metadata in proptest::option::of(proptest::collection::btree_map("[^\\x00]{0,10}", json_value(), 0..5)),
    ) -> Event {
        Event {
            tenant_id: TenantId::parse("t-1").unwrap_or_else(|_| unreachable!()),
            id,
            occurred_at: Timestamp::from_micros(micros).unwrap_or(Timestamp::MIN),
            action,
            outcome: if failure { Outcome::Failure } else { Outcome::Success },
            actor: Actor { kind, id: actor_id, name: actor_name, email: actor_email },
            // Empty objects are stored as absent (see validate).
            resource: resource
                .map(|(r, parent)| Resource {
                    kind: r.kind,
                    id: r.id,
                    name: r.name,
                    parent: parent.filter(|p| p.kind.is_some() || p.id.is_some() || p.name.is_some()),
                })
                .filter(|r| r.kind.is_some() || r.id.is_some() || r.name.is_some() || r.parent.is_some()),
            workspace: workspace.map(|(id, name)| Workspace { id, name }).filter(|w| w.id.is_some() || w.name.is_some()),
            source: ip.map(|ip| Source { ip: Some(ip), user_agent, platform: None, location: None }),
            request_id,
            description,
            changes: changes.map(|c| c.into_iter().map(|(field, old, new)| Change { field, old: old.map(normalize), new: new.map(normalize) }).collect()),
            metadata: metadata.map(|m| m.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        }
    }
}

proptest! {
    #[test]
    fn the_direct_canonical_writer_agrees_with_the_generic_one(event in arb_event()) {
        prop_assert_eq!(event.canonical(), crate::canonical::to_canonical(&event.to_json()));
    }

    #[test]
    fn canonical_form_validates_back_to_the_same_event(event in arb_event()) {
        let doc: Value = serde_json::from_str(&event.canonical()).unwrap_or_default();
        prop_assert_eq!(Event::from_stored(&doc), Ok(event));
    }

    #[test]
    fn validation_never_panics_on_arbitrary_json(raw in json_value()) {
        let _ = Event::validate(raw.clone(), &tenant(), now());
    }
}
