//! Shared test fixtures: the table of bad events that the unit tests, the HTTP tests and
//! the queue tests all run, so every transport is held to the same rules.

use crate::event::Reason;
use serde_json::{Value, json};

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
