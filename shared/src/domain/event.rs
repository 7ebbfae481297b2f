//! The audit event and every validation rule of contract section 1.
//!
//! Parsing goes through `serde_json::Value` and hand-written checks rather than a serde
//! derive so that each broken rule becomes its own stable reason code with the field path,
//! and every violation in an event is reported at once.

use crate::domain::canonical::{normalize, sha256_hex, to_canonical_map};
use crate::domain::fields::{self, Source as FieldSource};
use crate::domain::incoming::Incoming;
use crate::domain::number::{self, MAX_DEPTH};
use crate::domain::own::{self, Origin};
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::net::IpAddr;

/// Most bytes one event may take, as received and as stored.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Most bytes of `metadata` in canonical form.
pub const MAX_METADATA_BYTES: usize = 32 * 1024;
/// Most entries in `changes`.
pub const MAX_CHANGES: usize = 100;
/// How far ahead of the receiver's clock `occurred_at` may lie.
pub const MAX_FUTURE_SECONDS: i64 = 300;

/// Why one field of an event was refused: a stable, machine-readable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The event is not a JSON object.
    NotAnObject,
    /// A field the contract does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// The JSON type is wrong (a number where a string belongs, say).
    InvalidType,
    /// Empty where at least one character is needed.
    TooShort,
    /// Longer than the field allows.
    TooLong,
    /// Characters or shape outside the field's pattern.
    InvalidFormat,
    /// Not one of the field's allowed values.
    InvalidValue,
    /// `occurred_at` more than five minutes ahead.
    FutureTimestamp,
    /// `source.ip` is not an IPv4 or IPv6 address.
    InvalidIp,
    /// A string holds U+0000.
    NulCharacter,
    /// Over a size limit: the bytes of the event or of `metadata`, or its nesting depth.
    TooLarge,
    /// Over a count limit (`changes`).
    TooMany,
    /// A number outside the numeric model ([`number`]): it would not read back, hash
    /// and export as the value written.
    NumberPrecision,
    /// A form only the service's own events may have ([`own`]): an action in the
    /// `audit_log.` namespace, or an id beginning `audit_log:`.
    Reserved,
}

/// One broken rule: where, which, and a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub field: String,
    pub reason: Reason,
    pub message: String,
}

impl Violation {
    fn new(field: &str, reason: Reason, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), reason, message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    Member,
    SystemUser,
    ApiKey,
    Service,
}

impl ActorType {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::Member => "member",
            ActorType::SystemUser => "system_user",
            ActorType::ApiKey => "api_key",
            ActorType::Service => "service",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "member" => ActorType::Member,
            "system_user" => ActorType::SystemUser,
            "api_key" => ActorType::ApiKey,
            "service" => ActorType::Service,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorType,
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A `type`/`id`/`name` triple, used for a resource's parent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ref {
    pub kind: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource {
    pub kind: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub parent: Option<Ref>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workspace {
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub platform: Option<String>,
    pub location: Option<String>,
}

/// One before/after entry; `None` is an absent `old`/`new`, `Some(Null)` an explicit null.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// A validated event, normalized (UTC microseconds, defaults applied).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub tenant_id: TenantId,
    pub id: String,
    pub occurred_at: Timestamp,
    pub action: String,
    pub outcome: Outcome,
    pub actor: Actor,
    pub resource: Option<Resource>,
    pub workspace: Option<Workspace>,
    pub source: Option<Source>,
    pub request_id: Option<String>,
    pub description: Option<String>,
    pub changes: Option<Vec<Change>>,
    pub metadata: Option<Map<String, Value>>,
}

/// An accepted event with what the server adds: when it arrived and its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: Event,
    pub received_at: Timestamp,
    /// SHA-256 of `doc`.
    pub hash: String,
    /// [`Event::canonical`]: the stored text the hash covers.
    pub doc: String,
}

/// The result of validating one incoming event.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub event: Event,
    /// Whether the client sent `occurred_at`; when it did not, a retry of the same event
    /// is still a duplicate even though its default time differs.
    pub occurred_at_given: bool,
    /// [`Event::canonical`], computed once.
    pub canonical: String,
}

impl Accepted {
    /// The event as it is stored: arrival time and hash added.
    #[must_use]
    pub fn stamp(&self, received_at: Timestamp) -> StoredEvent {
        StoredEvent {
            event: self.event.clone(),
            received_at,
            hash: sha256_hex(&self.canonical),
            doc: self.canonical.clone(),
        }
    }
}

const TOP_FIELDS: &[&str] = &[
    "id",
    "occurred_at",
    "action",
    "outcome",
    "actor",
    "resource",
    "workspace",
    "source",
    "request_id",
    "description",
    "changes",
    "metadata",
];

impl Event {
    /// Validates an event a client sent for `tenant`, received at `now`: the forms
    /// reserved for the service's own events ([`own`]) are refused.
    ///
    /// It takes the value by ownership so that `metadata` and `changes`, the large parts,
    /// move into the event instead of being copied.
    ///
    /// # Errors
    /// Every violated rule.
    pub fn validate(raw: impl Into<Incoming>, tenant: &TenantId, now: Timestamp) -> Result<Accepted, Vec<Violation>> {
        Self::validate_as(raw, tenant, now, Origin::Client)
    }

    /// [`Event::validate`] for an event written by `origin`: only [`Origin::Service`] may
    /// use the reserved forms.
    ///
    /// # Errors
    /// Every violated rule.
    pub fn validate_as(
        raw: impl Into<Incoming>,
        tenant: &TenantId,
        now: Timestamp,
        origin: Origin,
    ) -> Result<Accepted, Vec<Violation>> {
        let Incoming { value, findings } = raw.into();
        let mut v = Vec::new();
        if let Some(found) = &findings {
            if let Some(path) = &found.too_deep {
                // The member that holds it: the path itself can be as long as the nesting.
                let member = path.split(['.', '[']).next().unwrap_or_default();
                v.push(Violation::new(member, Reason::TooLarge, format!("nested deeper than {MAX_DEPTH} levels")));
            }
            for (path, literal, why) in &found.numbers {
                v.push(Violation::new(path, Reason::NumberPrecision, why.message(literal)));
            }
        }
        let obj = match value {
            Some(Value::Object(obj)) => obj,
            Some(_) => {
                v.push(Violation::new("", Reason::NotAnObject, "an event must be a JSON object"));
                return Err(v);
            }
            None => return Err(v),
        };
        // A value built in code had no text to scan: check what a value still shows.
        if findings.is_none() {
            check_value_numbers(&obj, &mut v);
        }
        let mut obj = obj;
        let mut f = Fields { obj: &obj, path: "", out: &mut v };
        f.reject_unknown(TOP_FIELDS);
        let id = f.string("id", 1, 128).filter(|id| f.pattern_ok("id", id, is_id_char));
        let occurred_text = f.string("occurred_at", 1, 64);
        let action = f.required_string("action", 1, 128);
        let outcome = f.string("outcome", 1, 16).and_then(|o| match o.as_str() {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => {
                f.push("outcome", Reason::InvalidValue, "must be \"success\" or \"failure\"");
                None
            }
        });
        let actor = f.object("actor", true).and_then(|o| parse_actor(o, f.out));
        // An object with no members is stored as absent: the archive's flat columns could
        // not tell the two apart, and the hash must be recomputable from the archive.
        let resource = f
            .object("resource", false)
            .map(|o| parse_resource(o, f.out))
            .filter(|r| r.kind.is_some() || r.id.is_some() || r.name.is_some() || r.parent.is_some());
        let workspace = f
            .object("workspace", false)
            .map(|o| {
                let mut w = Fields { obj: o, path: "workspace", out: f.out };
                w.reject_unknown(&["id", "name"]);
                Workspace { id: w.string("id", 1, 256), name: w.string("name", 1, 256) }
            })
            .filter(|w| w.id.is_some() || w.name.is_some());
        let source = f
            .object("source", false)
            .map(|o| parse_source(o, f.out))
            .filter(|s| s.ip.is_some() || s.user_agent.is_some() || s.platform.is_some() || s.location.is_some());
        let request_id = f.string("request_id", 1, 256);
        let description = f.string("description", 1, 2048);
        let change_fields = f.array("changes").map(|items| check_changes(items, f.out));
        // Only its type here; its numbers are the numeric model's (see above).
        let _ = f.object("metadata", false);

        if origin == Origin::Client {
            if id.as_deref().is_some_and(own::is_reserved_id) {
                v.push(Violation::new(
                    "id",
                    Reason::Reserved,
                    format!("ids beginning {} are the service's own; choose another id", own::ID_PREFIX),
                ));
            }
            if action.as_deref().is_some_and(own::is_reserved_action) {
                v.push(Violation::new(
                    "action",
                    Reason::Reserved,
                    format!("the {}. namespace is the service's own; choose another category", own::ACTION_CATEGORY),
                ));
            }
        }
        if action.as_deref().is_some_and(|a| !is_action(a)) {
            v.push(Violation::new(
                "action",
                Reason::InvalidFormat,
                "lowercase a-z 0-9 _ - segments separated by dots, such as channel.create",
            ));
        }
        let occurred_at = match &occurred_text {
            None => None,
            Some(text) => match Timestamp::parse(text) {
                Err(_) => {
                    v.push(Violation::new(
                        "occurred_at",
                        Reason::InvalidFormat,
                        "an RFC 3339 time between 1970 and 9999",
                    ));
                    None
                }
                Ok(t) if t > now.plus_seconds(MAX_FUTURE_SECONDS) => {
                    v.push(Violation::new("occurred_at", Reason::FutureTimestamp, "more than 5 minutes in the future"));
                    None
                }
                Ok(t) => Some(t),
            },
        };
        check_nul(&obj, &mut v);
        if !v.is_empty() {
            return Err(v);
        }
        // Valid: the large parts move out of the request.
        let metadata = match obj.remove("metadata").map(normalize) {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        let changes = match (change_fields, obj.remove("changes")) {
            (Some(fields), Some(Value::Array(items))) => Some(
                fields
                    .into_iter()
                    .zip(items)
                    .map(|(field, item)| {
                        let mut o = match item {
                            Value::Object(o) => o,
                            _ => Map::new(),
                        };
                        Change { field, old: o.remove("old").map(normalize), new: o.remove("new").map(normalize) }
                    })
                    .collect(),
            ),
            _ => None,
        };
        let (Some(action), Some(actor)) = (action, actor) else {
            return Err(vec![Violation::new("", Reason::MissingField, "action and actor are required")]);
        };
        let event = Event {
            tenant_id: tenant.clone(),
            id: id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            occurred_at: occurred_at.unwrap_or(now),
            action,
            outcome: outcome.unwrap_or(Outcome::Success),
            actor,
            resource,
            workspace,
            source,
            request_id,
            description,
            changes,
            metadata,
        };
        let canonical = event.canonical();
        if canonical.len() > MAX_EVENT_BYTES {
            return Err(vec![Violation::new("", Reason::TooLarge, "one event is at most 64 KiB serialized")]);
        }
        // Only an event over 32 KiB can hold metadata over 32 KiB.
        if canonical.len() > MAX_METADATA_BYTES
            && event.metadata.as_ref().is_some_and(|m| to_canonical_map(m).len() > MAX_METADATA_BYTES)
        {
            return Err(vec![Violation::new("metadata", Reason::TooLarge, "at most 32 KiB serialized")]);
        }
        Ok(Accepted { event, occurred_at_given: occurred_at.is_some(), canonical })
    }

    /// The event as the contract's JSON object, without `received_at` and `hash`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        fields::json(&FieldSource { event: self, received_at: None, hash: None })
    }

    /// The RFC 8785 text the `hash` covers: [`Event::to_json`] in canonical form, written
    /// straight from the fields (keys in their canonical order) because this runs for
    /// every event ingested.
    #[must_use]
    pub fn canonical(&self) -> String {
        let mut w = crate::domain::canonical::ObjectWriter::new(512);
        w.str("action", &self.action);
        w.open("actor");
        w.opt("email", self.actor.email.as_deref());
        w.str("id", &self.actor.id);
        w.opt("name", self.actor.name.as_deref());
        w.str("type", self.actor.kind.as_str());
        w.close();
        if let Some(changes) = &self.changes {
            w.open_array("changes");
            for c in changes {
                w.open_element();
                w.str("field", &c.field);
                w.value_opt("new", c.new.as_ref());
                w.value_opt("old", c.old.as_ref());
                w.close();
            }
            w.close_array();
        }
        w.opt("description", self.description.as_deref());
        w.str("id", &self.id);
        if let Some(m) = &self.metadata {
            w.map("metadata", m);
        }
        w.str("occurred_at", &self.occurred_at.to_string());
        w.str("outcome", self.outcome.as_str());
        w.opt("request_id", self.request_id.as_deref());
        if let Some(r) = &self.resource {
            w.open("resource");
            w.opt("id", r.id.as_deref());
            w.opt("name", r.name.as_deref());
            if let Some(p) = &r.parent {
                w.open("parent");
                w.opt("id", p.id.as_deref());
                w.opt("name", p.name.as_deref());
                w.opt("type", p.kind.as_deref());
                w.close();
            }
            w.opt("type", r.kind.as_deref());
            w.close();
        }
        if let Some(src) = &self.source {
            w.open("source");
            w.opt("ip", src.ip.map(|ip| ip.to_string()).as_deref());
            w.opt("location", src.location.as_deref());
            w.opt("platform", src.platform.as_deref());
            w.opt("user_agent", src.user_agent.as_deref());
            w.close();
        }
        w.str("tenant_id", self.tenant_id.as_str());
        if let Some(ws) = &self.workspace {
            w.open("workspace");
            w.opt("id", ws.id.as_deref());
            w.opt("name", ws.name.as_deref());
            w.close();
        }
        w.finish()
    }

    /// Reads back an event from its stored canonical JSON, the service's own events
    /// among them.
    ///
    /// # Errors
    /// The violations, if the stored text is not a valid event (a corrupt item).
    pub fn from_stored(doc: &Value) -> Result<Event, Vec<Violation>> {
        let mut body = doc.as_object().cloned().unwrap_or_default();
        let tenant = body
            .remove("tenant_id")
            .and_then(|t| t.as_str().and_then(|t| TenantId::parse(t).ok()))
            .ok_or_else(|| vec![Violation::new("tenant_id", Reason::MissingField, "stored event without tenant")])?;
        Event::validate_as(Value::Object(body), &tenant, Timestamp::MAX, Origin::Service).map(|a| a.event)
    }

    /// Stamps the event with its arrival time and hash.
    #[must_use]
    pub fn stamp(self, received_at: Timestamp) -> StoredEvent {
        let doc = self.canonical();
        StoredEvent { hash: sha256_hex(&doc), event: self, received_at, doc }
    }

    /// The category: the action up to its first dot.
    #[must_use]
    pub fn category(&self) -> &str {
        self.action.split('.').next().unwrap_or(&self.action)
    }
}

impl StoredEvent {
    /// The event as returned by the API: the contract's fields plus `received_at` and `hash`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        fields::json(&self.fields())
    }

    /// What the field table reads from this event.
    #[must_use]
    pub fn fields(&self) -> FieldSource<'_> {
        FieldSource { event: &self.event, received_at: Some(self.received_at), hash: Some(&self.hash) }
    }

    /// `(occurred_at, id)`: the order of every index and archive, and every merge's key.
    #[must_use]
    pub fn key(&self) -> (i64, &str) {
        (self.event.occurred_at.micros(), &self.event.id)
    }
}

impl Change {
    /// `{"field", "old", "new"}`, absent `old`/`new` left out.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("field".into(), json!(self.field));
        if let Some(old) = &self.old {
            o.insert("old".into(), old.clone());
        }
        if let Some(new) = &self.new {
            o.insert("new".into(), new.clone());
        }
        Value::Object(o)
    }
}

fn parse_actor(o: &Map<String, Value>, out: &mut Vec<Violation>) -> Option<Actor> {
    let mut f = Fields { obj: o, path: "actor", out };
    f.reject_unknown(&["type", "id", "name", "email"]);
    let kind = f.required_string("type", 1, 32).and_then(|t| {
        let parsed = ActorType::parse(&t);
        if parsed.is_none() {
            f.push("type", Reason::InvalidValue, "one of member, system_user, api_key, service");
        }
        parsed
    });
    let id = f.required_string("id", 1, 256);
    let name = f.string("name", 1, 256);
    let email = f.string("email", 1, 320);
    Some(Actor { kind: kind?, id: id?, name, email })
}

fn parse_ref(f: &mut Fields<'_, '_>) -> (Option<String>, Option<String>, Option<String>) {
    (f.string("type", 1, 128), f.string("id", 1, 256), f.string("name", 1, 512))
}

fn parse_resource(o: &Map<String, Value>, out: &mut Vec<Violation>) -> Resource {
    let mut f = Fields { obj: o, path: "resource", out };
    f.reject_unknown(&["type", "id", "name", "parent"]);
    let (kind, id, name) = parse_ref(&mut f);
    let parent = f
        .object("parent", false)
        .map(|p| {
            let mut pf = Fields { obj: p, path: "resource.parent", out: f.out };
            pf.reject_unknown(&["type", "id", "name"]);
            let (kind, id, name) = parse_ref(&mut pf);
            Ref { kind, id, name }
        })
        .filter(|p| p.kind.is_some() || p.id.is_some() || p.name.is_some());
    Resource { kind, id, name, parent }
}

fn parse_source(o: &Map<String, Value>, out: &mut Vec<Violation>) -> Source {
    let mut f = Fields { obj: o, path: "source", out };
    f.reject_unknown(&["ip", "user_agent", "platform", "location"]);
    let ip = f.string("ip", 1, 64).and_then(|text| match text.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            f.push("ip", Reason::InvalidIp, "an IPv4 or IPv6 address");
            None
        }
    });
    Source {
        ip,
        user_agent: f.string("user_agent", 1, 1024),
        platform: f.string("platform", 1, 128),
        location: f.string("location", 1, 256),
    }
}

/// Checks `changes`; returns each entry's `field` (the values move in once all is valid).
fn check_changes(items: &[Value], out: &mut Vec<Violation>) -> Vec<String> {
    if items.len() > MAX_CHANGES {
        out.push(Violation::new("changes", Reason::TooMany, "at most 100 entries"));
        return Vec::new();
    }
    let mut fields = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("changes[{i}]");
        let Some(o) = item.as_object() else {
            out.push(Violation::new(&path, Reason::InvalidType, "an object {field, old, new}"));
            continue;
        };
        let mut f = Fields { obj: o, path: &path, out };
        f.reject_unknown(&["field", "old", "new"]);
        fields.extend(f.required_string("field", 1, 256));
    }
    fields
}

/// Whether `id` could be an event id (for lookups by id).
#[must_use]
pub fn is_event_id(id: &str) -> bool {
    (1..=128).contains(&id.chars().count()) && id.chars().all(is_id_char)
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '/' | '-')
}

fn is_action(a: &str) -> bool {
    let mut segments = 0;
    for seg in a.split('.') {
        if seg.is_empty()
            || !seg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return false;
        }
        segments += 1;
    }
    segments >= 2
}

/// The numeric model and the depth bound for an event given as a value (see [`number`]).
fn check_value_numbers(obj: &Map<String, Value>, out: &mut Vec<Violation>) {
    if let Some((path, literal, why)) = number::check_members(obj) {
        out.push(Violation::new(&path, Reason::NumberPrecision, why.message(&literal)));
    }
    if let Some((member, _)) = obj.iter().find(|(_, v)| 1 + number::depth(v) > MAX_DEPTH) {
        out.push(Violation::new(member, Reason::TooLarge, format!("nested deeper than {MAX_DEPTH} levels")));
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// NUL is refused anywhere, keys included: downstream tools (CSV, C libraries) truncate at it.
/// The paths are only built when there is one to report.
pub(crate) fn check_nul(obj: &Map<String, Value>, out: &mut Vec<Violation>) {
    if obj.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
        report_nul(&Value::Object(obj.clone()), "", out);
    }
}

fn report_nul(value: &Value, path: &str, out: &mut Vec<Violation>) {
    match value {
        Value::String(s) if s.contains('\0') => {
            out.push(Violation::new(path, Reason::NulCharacter, "strings must not contain U+0000"));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                report_nul(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if k.contains('\0') {
                    out.push(Violation::new(&child, Reason::NulCharacter, "keys must not contain U+0000"));
                }
                report_nul(v, &child, out);
            }
        }
        _ => {}
    }
}

/// Field access on one JSON object that records violations under a path prefix.
struct Fields<'a, 'o> {
    obj: &'a Map<String, Value>,
    path: &'a str,
    out: &'o mut Vec<Violation>,
}

impl<'a> Fields<'a, '_> {
    fn full(&self, name: &str) -> String {
        if self.path.is_empty() { name.to_owned() } else { format!("{}.{name}", self.path) }
    }

    fn push(&mut self, name: &str, reason: Reason, message: impl Into<String>) {
        let field = self.full(name);
        self.out.push(Violation::new(&field, reason, message));
    }

    fn reject_unknown(&mut self, known: &[&str]) {
        let unknown: Vec<String> = self.obj.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        for k in unknown {
            self.push(&k, Reason::UnknownField, "not a field of the event");
        }
    }

    /// An optional string; JSON null counts as absent.
    fn string(&mut self, name: &str, min: usize, max: usize) -> Option<String> {
        match self.obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let len = s.chars().count();
                if len < min {
                    self.push(name, Reason::TooShort, format!("at least {min} character(s)"));
                    None
                } else if len > max {
                    self.push(name, Reason::TooLong, format!("at most {max} characters"));
                    None
                } else {
                    Some(s.clone())
                }
            }
            Some(_) => {
                self.push(name, Reason::InvalidType, "must be a string");
                None
            }
        }
    }

    fn required_string(&mut self, name: &str, min: usize, max: usize) -> Option<String> {
        if matches!(self.obj.get(name), None | Some(Value::Null)) {
            self.push(name, Reason::MissingField, "required");
            return None;
        }
        self.string(name, min, max)
    }

    fn pattern_ok(&mut self, name: &str, value: &str, allowed: fn(char) -> bool) -> bool {
        let ok = value.chars().all(allowed);
        if !ok {
            self.push(name, Reason::InvalidFormat, "only A-Z a-z 0-9 . _ : @ / -");
        }
        ok
    }

    fn object(&mut self, name: &str, required: bool) -> Option<&'a Map<String, Value>> {
        let obj = self.obj;
        match obj.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.push(name, Reason::MissingField, "required");
                }
                None
            }
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.push(name, Reason::InvalidType, "must be an object");
                None
            }
        }
    }

    fn array(&mut self, name: &str) -> Option<&'a [Value]> {
        let obj = self.obj;
        match obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items),
            Some(_) => {
                self.push(name, Reason::InvalidType, "must be an array");
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
pub(crate) mod tests;
