//! Shared test fixtures: the table of bad events that the unit tests, the HTTP tests and
//! the queue tests all run, so every transport is held to the same rules; and the
//! generators of valid events that every form's round-trip property draws from.

use crate::domain::canonical::normalize;
use crate::domain::event::{Actor, ActorType, Change, Event, Outcome, Reason, Ref, Resource, Source, Workspace};
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

/// The smallest valid event.
#[must_use]
pub fn minimal() -> Value {
    json!({"action": "channel.create", "actor": {"type": "member", "id": "u-1"}})
}

/// [`minimal`] with `patch`'s members set.
#[must_use]
pub fn with(patch: Value) -> Value {
    let mut base = minimal();
    if let (Value::Object(b), Value::Object(p)) = (&mut base, patch) {
        for (k, v) in p {
            b.insert(k, v);
        }
    }
    base
}

/// Every rule of contract section 1, as (event, field, reason). The HTTP and queue
/// tests run the same table through their transports.
#[must_use]
pub fn bad_events() -> Vec<(Value, &'static str, Reason)> {
    vec![
        (json!([1, 2]), "", Reason::NotAnObject),
        (json!("event"), "", Reason::NotAnObject),
        (with(json!({"colour": "red"})), "colour", Reason::UnknownField),
        (with(json!({"tenant_id": "other"})), "tenant_id", Reason::UnknownField),
        (json!({"actor": {"type": "member", "id": "u"}}), "action", Reason::MissingField),
        (json!({"action": "a.b"}), "actor", Reason::MissingField),
        (with(json!({"id": ""})), "id", Reason::TooShort),
        (with(json!({"id": "x".repeat(129)})), "id", Reason::TooLong),
        (with(json!({"id": "a b"})), "id", Reason::InvalidFormat),
        (with(json!({"id": "a#b"})), "id", Reason::InvalidFormat),
        (with(json!({"id": 42})), "id", Reason::InvalidType),
        (with(json!({"occurred_at": "yesterday"})), "occurred_at", Reason::InvalidFormat),
        (with(json!({"occurred_at": 1_700_000_000})), "occurred_at", Reason::InvalidType),
        (with(json!({"occurred_at": "2999-01-01T00:00:00Z"})), "occurred_at", Reason::FutureTimestamp),
        (with(json!({"action": "Channel.Create"})), "action", Reason::InvalidFormat),
        (with(json!({"action": "login"})), "action", Reason::InvalidFormat),
        (with(json!({"action": "a..b"})), "action", Reason::InvalidFormat),
        (with(json!({"action": format!("a.{}", "b".repeat(127))})), "action", Reason::TooLong),
        (with(json!({"outcome": "maybe"})), "outcome", Reason::InvalidValue),
        (with(json!({"actor": {"type": "robot", "id": "u"}})), "actor.type", Reason::InvalidValue),
        (with(json!({"actor": {"type": "member"}})), "actor.id", Reason::MissingField),
        (with(json!({"actor": {"type": "member", "id": "x".repeat(257)}})), "actor.id", Reason::TooLong),
        (with(json!({"actor": {"type": "member", "id": "u", "role": "x"}})), "actor.role", Reason::UnknownField),
        (with(json!({"actor": "u-1"})), "actor", Reason::InvalidType),
        (with(json!({"resource": {"type": "channel", "owner": "x"}})), "resource.owner", Reason::UnknownField),
        (with(json!({"resource": {"parent": {"id": 7}}})), "resource.parent.id", Reason::InvalidType),
        (with(json!({"workspace": {"id": ["w"]}})), "workspace.id", Reason::InvalidType),
        (with(json!({"source": {"ip": "999.1.1.1"}})), "source.ip", Reason::InvalidIp),
        (with(json!({"source": {"ip": "1.2.3.4; DROP TABLE"}})), "source.ip", Reason::InvalidIp),
        (with(json!({"request_id": "r".repeat(257)})), "request_id", Reason::TooLong),
        (with(json!({"description": "d".repeat(2049)})), "description", Reason::TooLong),
        (with(json!({"description": "a\u{0}b"})), "description", Reason::NulCharacter),
        (with(json!({"metadata": {"k\u{0}": 1}})), "metadata.k\u{0}", Reason::NulCharacter),
        (with(json!({"changes": {"field": "x"}})), "changes", Reason::InvalidType),
        (with(json!({"changes": [{"old": 1}]})), "changes[0].field", Reason::MissingField),
        (with(json!({"changes": vec![json!({"field": "f"}); 101]})), "changes", Reason::TooMany),
        (with(json!({"metadata": "text"})), "metadata", Reason::InvalidType),
        (with(json!({"metadata": {"blob": "m".repeat(33 * 1024)}})), "metadata", Reason::TooLarge),
        (with(json!({"metadata": {"n": 9_007_199_254_740_993_u64}})), "metadata", Reason::NumberPrecision),
        (
            with(json!({"description": "d".repeat(2000), "metadata": {"a": "m".repeat(30_000)},
                        "changes": vec![json!({"field": "f", "old": "o".repeat(300), "new": "n".repeat(300)}); 60]})),
            "",
            Reason::TooLarge,
        ),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[^\\x00]{{1,{max}}}")).unwrap_or_else(|_| unreachable!())
}

fn opt_text(max: usize) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text(max))
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

pub fn json_value() -> impl Strategy<Value = Value> {
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

/// Any valid event, for round-trip properties (boxed: the tree of a strategy this wide
/// overflows a test thread's stack unboxed).
pub fn arb_event() -> BoxedStrategy<Event> {
    arb_event_fields().boxed()
}

/// A valid event with every optional field present, so a form that drops one shows.
pub fn arb_full_event() -> BoxedStrategy<Event> {
    arb_full_event_fields().boxed()
}

prop_compose! {
    fn arb_event_fields()(
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
        platform in opt_text(20),
        location in opt_text(30),
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
            source: Some(Source { ip, user_agent, platform, location })
                .filter(|s| s.ip.is_some() || s.user_agent.is_some() || s.platform.is_some() || s.location.is_some()),
            request_id,
            description,
            changes: changes.map(|c| c.into_iter().map(|(field, old, new)| Change { field, old: old.map(normalize), new: new.map(normalize) }).collect()),
            metadata: metadata.map(|m| m.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        }
    }
}

prop_compose! {
    fn arb_full_event_fields()(
        base in arb_event(),
        names in proptest::collection::vec(text(30), 14),
        ip in any::<std::net::IpAddr>(),
        changes in proptest::collection::vec(("[^\\x00]{1,20}", json_value(), json_value()), 1..4),
        metadata in proptest::collection::btree_map("[^\\x00]{0,10}", json_value(), 1..4),
    ) -> Event {
        let n = |i: usize| Some(names[i].clone());
        Event {
            actor: Actor { name: n(0), email: n(1), ..base.actor },
            resource: Some(Resource {
                kind: n(2),
                id: n(3),
                name: n(4),
                parent: Some(Ref { kind: n(5), id: n(6), name: n(7) }),
            }),
            workspace: Some(Workspace { id: n(8), name: n(9) }),
            source: Some(Source { ip: Some(ip), user_agent: n(10), platform: n(11), location: n(12) }),
            request_id: n(13),
            description: n(0),
            changes: Some(changes.into_iter().map(|(field, old, new)| Change { field, old: Some(normalize(old)), new: Some(normalize(new)) }).collect()),
            metadata: Some(metadata.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
            ..base
        }
    }
}
