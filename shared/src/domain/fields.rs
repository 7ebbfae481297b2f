//! The one description of an event's fields: for each, its archive column, its path in
//! the event's JSON, how it is written flat, and how it is read from an event.
//!
//! Every form of a stored event follows this table: the API's JSON ([`json`]), the flat
//! [`Row`](crate::domain::row::Row) that the archive's Parquet, the export files and the
//! filters use, and so the JSON-lines line, the CSV row and the Parquet schema. (The
//! DynamoDB item holds the canonical JSON, whose hand-written writer in `event.rs` is
//! held to [`json`] by a property test.) A new field is one line here, beside its place
//! in [`Event`] and its validation; `every_form_round_trips_every_field` checks the rest.

use crate::domain::event::{Change, Event};
use crate::domain::timestamp::Timestamp;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// How a field is written in flat forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// A time: a UTC microsecond TIMESTAMP column; RFC 3339 text in JSON and CSV.
    Time,
    /// Any JSON: compact JSON text in a column, the value itself in JSON.
    Json,
}

/// A field's value, borrowed from the event where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Text(Cow<'a, str>),
    Time(Timestamp),
    Changes(&'a [Change]),
    Object(&'a Map<String, Value>),
}

impl<'a> FieldValue<'a> {
    /// The value as the API's JSON holds it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(s) => Value::String(s.to_string()),
            Self::Time(t) => Value::String(t.to_string()),
            Self::Changes(c) => Value::Array(c.iter().map(Change::to_json).collect()),
            Self::Object(m) => Value::Object((*m).clone()),
        }
    }

    /// The value as a flat column holds it: text, an RFC 3339 time, or compact JSON text.
    #[must_use]
    pub fn into_text(self) -> Cow<'a, str> {
        match self {
            Self::Text(s) => s,
            Self::Time(t) => Cow::Owned(t.to_string()),
            Self::Changes(c) => Cow::Owned(Value::Array(c.iter().map(Change::to_json).collect()).to_string()),
            Self::Object(m) => Cow::Owned(serde_json::to_string(m).unwrap_or_default()),
        }
    }
}

/// What fields are read from: an event, with what the server adds once it is stored.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub event: &'a Event,
    pub received_at: Option<Timestamp>,
    pub hash: Option<&'a str>,
}

/// One field of an event.
#[derive(Clone, Copy)]
pub struct Field {
    /// The archive's column name (also the CSV column's, where it has one).
    pub column: &'static str,
    /// Where it sits in the event's JSON.
    pub path: &'static [&'static str],
    pub kind: Kind,
    /// Whether every stored event has it (a non-nullable column).
    pub required: bool,
    /// Added by the server (`received_at`, `hash`), not sent by clients.
    pub server: bool,
    pub read: for<'a> fn(&Source<'a>) -> Option<FieldValue<'a>>,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field").field("column", &self.column).field("path", &self.path).finish_non_exhaustive()
    }
}

fn text(v: &str) -> Option<FieldValue<'_>> {
    Some(FieldValue::Text(Cow::Borrowed(v)))
}

fn opt(v: Option<&String>) -> Option<FieldValue<'_>> {
    v.map(|s| FieldValue::Text(Cow::Borrowed(s.as_str())))
}

const fn field(
    column: &'static str,
    path: &'static [&'static str],
    kind: Kind,
    required: bool,
    read: for<'a> fn(&Source<'a>) -> Option<FieldValue<'a>>,
) -> Field {
    Field { column, path, kind, required, server: false, read }
}

const fn server(field: Field) -> Field {
    Field { server: true, ..field }
}

/// Every field, in the archive's column order (contract section 4).
pub const FIELDS: [Field; 27] = [
    field("tenant_id", &["tenant_id"], Kind::Text, true, |s| text(s.event.tenant_id.as_str())),
    field("id", &["id"], Kind::Text, true, |s| text(&s.event.id)),
    field("occurred_at", &["occurred_at"], Kind::Time, true, |s| Some(FieldValue::Time(s.event.occurred_at))),
    server(field("received_at", &["received_at"], Kind::Time, true, |s| s.received_at.map(FieldValue::Time))),
    field("action", &["action"], Kind::Text, true, |s| text(&s.event.action)),
    field("outcome", &["outcome"], Kind::Text, true, |s| text(s.event.outcome.as_str())),
    field("actor_type", &["actor", "type"], Kind::Text, true, |s| text(s.event.actor.kind.as_str())),
    field("actor_id", &["actor", "id"], Kind::Text, true, |s| text(&s.event.actor.id)),
    field("actor_name", &["actor", "name"], Kind::Text, false, |s| opt(s.event.actor.name.as_ref())),
    field("actor_email", &["actor", "email"], Kind::Text, false, |s| opt(s.event.actor.email.as_ref())),
    field("resource_type", &["resource", "type"], Kind::Text, false, |s| {
        opt(s.event.resource.as_ref().and_then(|r| r.kind.as_ref()))
    }),
    field("resource_id", &["resource", "id"], Kind::Text, false, |s| {
        opt(s.event.resource.as_ref().and_then(|r| r.id.as_ref()))
    }),
    field("resource_name", &["resource", "name"], Kind::Text, false, |s| {
        opt(s.event.resource.as_ref().and_then(|r| r.name.as_ref()))
    }),
    field("resource_parent_type", &["resource", "parent", "type"], Kind::Text, false, |s| {
        opt(s.event.resource.as_ref().and_then(|r| r.parent.as_ref()).and_then(|p| p.kind.as_ref()))
    }),
    field("resource_parent_id", &["resource", "parent", "id"], Kind::Text, false, |s| {
        opt(s.event.resource.as_ref().and_then(|r| r.parent.as_ref()).and_then(|p| p.id.as_ref()))
    }),
    field("resource_parent_name", &["resource", "parent", "name"], Kind::Text, false, |s| {
        opt(s.event.resource.as_ref().and_then(|r| r.parent.as_ref()).and_then(|p| p.name.as_ref()))
    }),
    field("workspace_id", &["workspace", "id"], Kind::Text, false, |s| {
        opt(s.event.workspace.as_ref().and_then(|w| w.id.as_ref()))
    }),
    field("workspace_name", &["workspace", "name"], Kind::Text, false, |s| {
        opt(s.event.workspace.as_ref().and_then(|w| w.name.as_ref()))
    }),
    field("source_ip", &["source", "ip"], Kind::Text, false, |s| {
        s.event.source.as_ref().and_then(|src| src.ip).map(|ip| FieldValue::Text(Cow::Owned(ip.to_string())))
    }),
    field("user_agent", &["source", "user_agent"], Kind::Text, false, |s| {
        opt(s.event.source.as_ref().and_then(|src| src.user_agent.as_ref()))
    }),
    field("source_platform", &["source", "platform"], Kind::Text, false, |s| {
        opt(s.event.source.as_ref().and_then(|src| src.platform.as_ref()))
    }),
    field("source_location", &["source", "location"], Kind::Text, false, |s| {
        opt(s.event.source.as_ref().and_then(|src| src.location.as_ref()))
    }),
    field("request_id", &["request_id"], Kind::Text, false, |s| opt(s.event.request_id.as_ref())),
    field("description", &["description"], Kind::Text, false, |s| opt(s.event.description.as_ref())),
    field("changes", &["changes"], Kind::Json, false, |s| s.event.changes.as_deref().map(FieldValue::Changes)),
    field("metadata", &["metadata"], Kind::Json, false, |s| s.event.metadata.as_ref().map(FieldValue::Object)),
    server(field("hash", &["hash"], Kind::Text, true, |s| s.hash.map(|h| FieldValue::Text(Cow::Borrowed(h))))),
];

/// How many fields are not times: the flat row's string columns.
pub const TEXT_FIELDS: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < FIELDS.len() {
        if !matches!(FIELDS[i].kind, Kind::Time) {
            n += 1;
        }
        i += 1;
    }
    n
};

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The position of `column` in [`FIELDS`]; a compile error when there is none.
#[must_use]
pub const fn index(column: &str) -> usize {
    let mut i = 0;
    while i < FIELDS.len() {
        if same(FIELDS[i].column, column) {
            return i;
        }
        i += 1;
    }
    panic!("no such field")
}

/// The position of a non-time `column` among the string columns; a compile error when
/// there is none.
#[must_use]
pub const fn text_slot(column: &str) -> usize {
    let mut i = 0;
    let mut slot = 0;
    while i < FIELDS.len() {
        let text = !matches!(FIELDS[i].kind, Kind::Time);
        if same(FIELDS[i].column, column) {
            assert!(text, "a time field has no string column");
            return slot;
        }
        if text {
            slot += 1;
        }
        i += 1;
    }
    panic!("no such field")
}

/// The field indexes in the JSON's key order: sorted by path, so each object's members
/// are adjacent and in the order serde_json and RFC 8785 give ASCII keys.
#[must_use]
pub fn json_order() -> &'static [usize] {
    static ORDER: std::sync::LazyLock<Vec<usize>> = std::sync::LazyLock::new(|| {
        let mut order: Vec<usize> = (0..FIELDS.len()).collect();
        order.sort_by_key(|&i| FIELDS[i].path);
        order
    });
    &ORDER
}

/// The event as the API returns it: every present field at its path; `received_at` and
/// `hash` when `source` has them.
#[must_use]
pub fn json(source: &Source<'_>) -> Value {
    object(|i| (FIELDS[i].read)(source).map(|v| v.to_json()))
}

/// A JSON object of the fields (by index into [`FIELDS`]) that `value` gives, each at its
/// path.
#[must_use]
pub fn object(mut value: impl FnMut(usize) -> Option<Value>) -> Value {
    let mut root = Map::new();
    for (i, f) in FIELDS.iter().enumerate() {
        if let Some(value) = value(i) {
            let (leaf, parents) = f.path.split_last().unwrap_or((&"", &[]));
            let mut at = &mut root;
            for p in parents {
                let next = at.entry((*p).to_owned()).or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(m) = next else { unreachable!("paths only nest objects") };
                at = m;
            }
            at.insert((*leaf).to_owned(), value);
        }
    }
    Value::Object(root)
}

/// Writes one JSON object of the fields (by index into [`FIELDS`]) that `present` says
/// are, in [`json_order`], opening and closing the nested objects their paths need;
/// `value` writes a field's value after its key.
pub fn write_object(out: &mut Vec<u8>, present: impl Fn(usize) -> bool, mut value: impl FnMut(&mut Vec<u8>, usize)) {
    use std::io::Write;
    // The open objects below the root, and per open level whether it has a member yet.
    let mut open: Vec<&str> = Vec::new();
    let mut first = vec![true];
    out.push(b'{');
    for &i in json_order() {
        if !present(i) {
            continue;
        }
        let f = &FIELDS[i];
        let (leaf, parents) = f.path.split_last().unwrap_or((&"", &[]));
        let shared = open.iter().zip(parents.iter()).take_while(|(a, b)| a == b).count();
        while open.len() > shared {
            open.pop();
            first.pop();
            out.push(b'}');
        }
        for p in &parents[shared..] {
            comma(out, &mut first);
            let _ = write!(out, "\"{p}\":{{");
            open.push(p);
            first.push(true);
        }
        comma(out, &mut first);
        let _ = write!(out, "\"{leaf}\":");
        value(out, i);
    }
    for _ in open {
        out.push(b'}');
    }
    out.push(b'}');
}

fn comma(out: &mut Vec<u8>, first: &mut [bool]) {
    if let Some(f) = first.last_mut() {
        if !*f {
            out.push(b',');
        }
        *f = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::arb_full_event;
    use proptest::prelude::*;

    #[test]
    fn columns_are_unique_and_slots_count_the_strings() {
        let mut names: Vec<&str> = FIELDS.iter().map(|f| f.column).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
        assert_eq!(TEXT_FIELDS, 25);
        assert_eq!(text_slot("tenant_id"), 0);
        assert_eq!(text_slot("action"), 2);
        assert_eq!(text_slot("hash"), 24);
        assert_eq!(index("received_at"), 3);
    }

    proptest! {
        #[test]
        fn a_full_event_has_every_field(event in arb_full_event()) {
            let stored = event.stamp(Timestamp::now());
            let source = Source { event: &stored.event, received_at: Some(stored.received_at), hash: Some(&stored.hash) };
            for f in &FIELDS {
                prop_assert!((f.read)(&source).is_some(), "{} absent", f.column);
            }
        }

        #[test]
        fn the_streamed_object_is_the_json_text(event in arb_full_event()) {
            let stored = event.stamp(Timestamp::now());
            let source = Source { event: &stored.event, received_at: Some(stored.received_at), hash: Some(&stored.hash) };
            let mut out = Vec::new();
            let read = |i: usize| (FIELDS[i].read)(&source);
            write_object(&mut out, |i| read(i).is_some(), |out, i| {
                let _ = serde_json::to_writer(out, &read(i).map(|v| v.to_json()));
            });
            prop_assert_eq!(String::from_utf8(out).unwrap_or_default(), json(&source).to_string());
        }
    }
}
