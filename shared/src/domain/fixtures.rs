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
        (with(json!({"action": "audit_log.export"})), "action", Reason::Reserved),
        (with(json!({"action": "audit_log.alert_delete"})), "action", Reason::Reserved),
        (with(json!({"id": "audit_log:export:0190"})), "id", Reason::Reserved),
        (with(json!({"id": "AUDIT_LOG:alert:r:deleted"})), "id", Reason::Reserved),
        (with(json!({"metadata": {"n": 9_007_199_254_740_993_u64}})), "metadata.n", Reason::NumberPrecision),
        (with(json!({"metadata": {"n": 72_057_594_037_927_940.0}})), "metadata.n", Reason::NumberPrecision),
        (
            with(json!({"changes": [{"field": "x", "old": -4.021_445_880_002_169e16}]})),
            "changes[0].old",
            Reason::NumberPrecision,
        ),
        (with(json!({"metadata": {"n": 1e18}})), "metadata.n", Reason::NumberPrecision),
        (with(json!({"metadata": nested(crate::domain::number::MAX_DEPTH)})), "metadata", Reason::TooLarge),
        (
            with(json!({"description": "d".repeat(2000), "metadata": {"a": "m".repeat(30_000)},
                        "changes": vec![json!({"field": "f", "old": "o".repeat(300), "new": "n".repeat(300)}); 60]})),
            "",
            Reason::TooLarge,
        ),
    ]
}

/// An object nested `levels` deep: `{"a": {"a": ... 1}}`.
#[must_use]
pub fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
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

/// A JSON number literal as a client might write it, and whether the numeric model
/// (`domain::number`) accepts it. Accepted ones are doubles within ±(2^53 − 1) in any
/// equivalent spelling; refused ones change value as a double, overflow, underflow or lie
/// beyond the safe range in whatever form.
pub fn number_literal() -> BoxedStrategy<(String, bool)> {
    const SAFE: f64 = 9_007_199_254_740_991.0;
    let safe_double = prop_oneof![
        prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        -1e6f64..1e6,
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(|i| i as f64),
    ]
    .prop_filter("within the safe range", |f| f.abs() <= SAFE);
    let beyond = prop_oneof![
        prop::num::f64::NORMAL.prop_filter("beyond 2^53 - 1", |f| f.abs() > SAFE),
        ((1u64 << 53)..u64::MAX).prop_map(|u| u as f64),
    ];
    prop_oneof![
        14 => (safe_double.clone(), spelling()).prop_map(|(f, s)| (respell(&shortest(f), s), true)),
        4 => (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(|i| (i.to_string(), true)),
        1 => (beyond, spelling()).prop_map(|(f, s)| (respell(&shortest(f), s), false)),
        1 => ((1u64 << 53)..u64::MAX, any::<bool>()).prop_map(|(u, neg)| (format!("{}{u}", if neg { "-" } else { "" }), false)),
        // A digit past what a double keeps: reads back as another number.
        1 => (safe_double.prop_filter("not zero", |f| *f != 0.0), spelling(), 1u32..9).prop_map(|(f, s, d)| {
            let (neg, digits, exp) = decimal_parts(&shortest(f));
            let tail = format!("{}{d}", "0".repeat(20));
            let (digits, exp) = (format!("{digits}{tail}"), exp - i64::try_from(tail.len()).unwrap_or(0));
            (respell(&format!("{}{digits}e{exp}", if neg { "-" } else { "" }), s), false)
        }),
        1 => (309u32..2000, 1u32..10, any::<bool>()).prop_map(|(e, d, neg)| (format!("{}{d}e{e}", if neg { "-" } else { "" }), false)),
        1 => (326u32..2000, 1u32..10).prop_map(|(e, d)| (format!("{d}e-{e}"), false)),
        2 => prop_oneof![Just("0"), Just("-0"), Just("0.0"), Just("-0.000"), Just("0e99999"), Just("-0E-12")]
            .prop_map(|z| (z.to_owned(), true)),
    ]
    .boxed()
}

/// How to write a decimal: where the point goes, trailing zeros, the exponent's letter
/// and sign, and whether a zero exponent is written.
#[derive(Debug, Clone, Copy)]
pub struct Spelling {
    point: usize,
    zeros: usize,
    upper: bool,
    plus: bool,
    exponent: bool,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (0usize..40, 0usize..3, any::<bool>(), any::<bool>(), any::<bool>())
        .prop_map(|(point, zeros, upper, plus, exponent)| Spelling { point, zeros, upper, plus, exponent })
}

/// The shortest round-trip decimal of `f` (written independently of the service's).
fn shortest(f: f64) -> String {
    let text = format!("{f:e}");
    // Rust's `{:e}` is the shortest round-trip form: `1.5e-7`, `-0e0`.
    text
}

/// `literal` as `(negative, digits without leading zeros, exponent)`: value = digits × 10^exponent.
fn decimal_parts(literal: &str) -> (bool, String, i64) {
    let (neg, rest) = literal.strip_prefix('-').map_or((false, literal), |r| (true, r));
    let (mantissa, exp) = rest.split_once(['e', 'E']).map_or((rest, 0), |(m, e)| (m, e.parse::<i64>().unwrap_or(0)));
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let trimmed = digits.trim_start_matches('0').to_owned();
    (neg, trimmed, exp - i64::try_from(frac.len()).unwrap_or(0))
}

/// The same value as `literal`, written as `spelling` says.
fn respell(literal: &str, s: Spelling) -> String {
    let (neg, digits, exp) = decimal_parts(literal);
    let sign = if neg { "-" } else { "" };
    if digits.is_empty() {
        return format!("{sign}0");
    }
    let len = digits.len();
    let point = 1 + s.point % len;
    let (int, frac) = digits.split_at(point);
    let frac = format!("{frac}{}", "0".repeat(s.zeros));
    let exponent = exp + i64::try_from(len - point).unwrap_or(0);
    let mut out = format!("{sign}{int}");
    if !frac.is_empty() {
        out.push('.');
        out.push_str(&frac);
    }
    if exponent != 0 || s.exponent {
        out.push(if s.upper { 'E' } else { 'e' });
        if s.plus && exponent >= 0 {
            out.push('+');
        }
        out.push_str(&exponent.to_string());
    }
    out
}

/// A JSON string's text for `s`, escaped minimally, or every non-ASCII character as
/// `\uXXXX` (surrogate pairs beyond the BMP), as other writers do.
fn string_text(s: &str, escape_all: bool) -> String {
    if !escape_all {
        return serde_json::to_string(s).unwrap_or_default();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Any JSON value as text, numbers in every form: `(text, whether every number in it is
/// accepted, nesting depth)`.
pub fn json_text() -> BoxedStrategy<(String, bool, usize)> {
    let leaf = prop_oneof![
        3 => number_literal().prop_map(|(n, ok)| (n, ok, 0)),
        2 => ("[^\\x00]{0,12}", any::<bool>()).prop_map(|(s, e)| (string_text(&s, e), true, 0)),
        1 => prop_oneof![Just("true"), Just("false"), Just("null")].prop_map(|t| (t.to_owned(), true, 0)),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                let ok = items.iter().all(|i| i.1);
                let depth = 1 + items.iter().map(|i| i.2).max().unwrap_or(0);
                (format!("[{}]", items.into_iter().map(|i| i.0).collect::<Vec<_>>().join(",")), ok, depth)
            }),
            (proptest::collection::btree_map("[^\\x00]{0,8}", inner, 0..4), any::<bool>()).prop_map(|(m, e)| {
                let ok = m.values().all(|i| i.1);
                let depth = 1 + m.values().map(|i| i.2).max().unwrap_or(0);
                let members: Vec<String> =
                    m.into_iter().map(|(k, v)| format!("{}:{}", string_text(&k, e), v.0)).collect();
                (format!("{{{}}}", members.join(",")), ok, depth)
            }),
        ]
    })
    .boxed()
}

/// An event's JSON text with arbitrary `metadata` and `changes` (numbers in every form,
/// unicode keys, nesting up to past the limit), and whether the service must accept it.
pub fn arb_event_text() -> BoxedStrategy<(String, bool)> {
    (json_text(), json_text(), 0usize..70, any::<bool>(), "[a-z0-9]{1,12}").prop_map(|(meta, change, wrap, arrays, id)| {
        // `metadata` is an object: wrap the value in `wrap` levels (arrays or objects).
        let mut value = meta.0;
        for _ in 0..wrap {
            value = if arrays { format!("[{value}]") } else { format!("{{\"\u{e9}\\u00e9\":{value}}}") };
        }
        let metadata = format!("{{\"\u{1F600}k\":{value}}}");
        // The event, metadata, the wrapping and the value: 2 + wrap + depth levels.
        let depth_ok = 2 + wrap + meta.2 <= crate::domain::number::MAX_DEPTH && 3 + change.2 <= crate::domain::number::MAX_DEPTH;
        let text = format!(
            "{{\"id\":\"p-{id}\",\"occurred_at\":\"2026-01-02T03:04:05.123456Z\",\"action\":\"prop.test\",\"outcome\":\"success\",\
             \"actor\":{{\"type\":\"member\",\"id\":\"u\"}},\"metadata\":{metadata},\"changes\":[{{\"field\":\"f\",\"new\":{}}}]}}",
            change.0
        );
        (text, meta.1 && change.1 && depth_ok)
    })
    .boxed()
}
