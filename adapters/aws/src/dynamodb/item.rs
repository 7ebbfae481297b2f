//! The mapping between a stored event and its DynamoDB item.
//!
//! The item holds the event's canonical JSON (`doc`, exactly the bytes the hash covers)
//! plus the few attributes that keys and filters need. Reading back parses `doc` and
//! checks it against `hash`, so a corrupted item is reported, never served.
//!
//! Once archived, the item becomes a tombstone ([`TOMBSTONE_REMOVES`]): the identity
//! and `dedup` stay, so the id stays taken, and it points to the part holding the row.

use crate::dynamodb::keys::{self, BY_ACTION, BY_ACTOR, BY_RESOURCE, BY_TIME};
use crate::dynamodb::values::{Item, n, s};
use audit::domain::canonical::sha256_hex;
use audit::domain::event::{Event, StoredEvent};
use audit::domain::filter::search_text;
use audit::domain::plan::EventKey;
use audit::domain::timestamp::Timestamp;
use audit::ports::ArchivedAt;

/// Attribute names of an event item besides the keys.
pub mod attr {
    pub const DOC: &str = "doc";
    pub const HASH: &str = "hash";
    pub const DEDUP: &str = "dedup";
    pub const RECEIVED_AT: &str = "received_at";
    pub const TENANT: &str = "tenant_id";
    pub const ID: &str = "id";
    pub const SHARD: &str = "shard";
    pub const ACTION: &str = "action";
    pub const OUTCOME: &str = "outcome";
    pub const ACTOR_ID: &str = "actor_id";
    pub const ACTOR_EMAIL: &str = "actor_email_lc";
    pub const RESOURCE_TYPE: &str = "resource_type";
    pub const RESOURCE_ID: &str = "resource_id";
    pub const WORKSPACE_ID: &str = "workspace_id";
    /// Lowercased description, action, actor name and email, resource id and name,
    /// joined by newlines: what the `q` keyword filter matches.
    pub const SEARCH: &str = "search";
    /// A tombstone's day and part (`YYYY-MM-DD`, `part-NNNNN.parquet`).
    pub const ARCHIVED_DATE: &str = "archived_date";
    pub const ARCHIVED_PART: &str = "archived_part";
}

/// What a tombstone drops of an event item: everything but `pk`, `sk`, `tenant_id`,
/// `id`, `dedup`, `hash` and `ts`, in particular every index partition key, so a
/// tombstone is in no index. A new item attribute belongs here unless a tombstone must
/// keep it (a test fails until it is one or the other).
pub const TOMBSTONE_REMOVES: [&str; 15] = [
    attr::DOC,
    attr::RECEIVED_AT,
    attr::SHARD,
    attr::ACTION,
    attr::OUTCOME,
    attr::ACTOR_ID,
    attr::ACTOR_EMAIL,
    attr::RESOURCE_TYPE,
    attr::RESOURCE_ID,
    attr::WORKSPACE_ID,
    attr::SEARCH,
    BY_TIME.pk,
    BY_ACTOR.pk,
    BY_ACTION.pk,
    BY_RESOURCE.pk,
];

/// A stored item that is not a valid event.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// A required attribute is absent or of the wrong type.
    #[error("item attribute {0} is missing or malformed")]
    Attribute(&'static str),
    /// `doc` is not a valid event.
    #[error("item doc is not a valid event: {0}")]
    Doc(String),
    /// `doc` does not hash to `hash`: the item was altered.
    #[error("item doc does not match its hash")]
    HashMismatch,
}

/// The item for `event` in write shard `shard`; `dedup` is the digest that decides
/// duplicate or conflict on a repeated id.
#[must_use]
pub fn to_item(stored: &StoredEvent, shard: u16, dedup: &str) -> Item {
    let e = &stored.event;
    let t = &e.tenant_id;
    let mut item = Item::with_capacity(24);
    item.insert(keys::PK.into(), s(&keys::event_pk(t, &e.id)));
    item.insert(keys::SK.into(), s(keys::EVENT_SK));
    item.insert(keys::TS.into(), s(&keys::ts(&EventKey::new(e.occurred_at, &e.id))));
    item.insert(BY_TIME.pk.into(), s(&keys::time_pk(t, shard)));
    item.insert(BY_ACTOR.pk.into(), s(&keys::actor_pk(t, shard, &e.actor.id)));
    item.insert(BY_ACTION.pk.into(), s(&keys::action_pk(t, shard, &e.action)));
    item.insert(attr::DOC.into(), s(&stored.doc));
    item.insert(attr::HASH.into(), s(&stored.hash));
    item.insert(attr::DEDUP.into(), s(dedup));
    item.insert(attr::RECEIVED_AT.into(), s(&stored.received_at.to_string()));
    item.insert(attr::TENANT.into(), s(t.as_str()));
    item.insert(attr::ID.into(), s(&e.id));
    item.insert(attr::SHARD.into(), n(shard));
    item.insert(attr::ACTION.into(), s(&e.action));
    item.insert(attr::OUTCOME.into(), s(e.outcome.as_str()));
    item.insert(attr::ACTOR_ID.into(), s(&e.actor.id));
    if let Some(email) = &e.actor.email {
        item.insert(attr::ACTOR_EMAIL.into(), s(&email.to_lowercase()));
    }
    if let Some(r) = &e.resource {
        if let Some(id) = &r.id {
            item.insert(BY_RESOURCE.pk.into(), s(&keys::resource_pk(t, shard, id)));
            item.insert(attr::RESOURCE_ID.into(), s(id));
        }
        if let Some(kind) = &r.kind {
            item.insert(attr::RESOURCE_TYPE.into(), s(kind));
        }
    }
    if let Some(id) = e.workspace.as_ref().and_then(|w| w.id.as_ref()) {
        item.insert(attr::WORKSPACE_ID.into(), s(id));
    }
    item.insert(attr::SEARCH.into(), s(&search_text(e)));
    item
}

/// Reads a stored event back, verifying its hash.
///
/// # Errors
/// [`ItemError`] when the item is malformed or altered.
pub fn from_item(item: &Item) -> Result<StoredEvent, ItemError> {
    let doc = string(item, attr::DOC)?;
    let hash = string(item, attr::HASH)?;
    if sha256_hex(doc) != *hash {
        return Err(ItemError::HashMismatch);
    }
    let received_at =
        Timestamp::parse(string(item, attr::RECEIVED_AT)?).map_err(|_| ItemError::Attribute(attr::RECEIVED_AT))?;
    let value: serde_json::Value = serde_json::from_str(doc).map_err(|e| ItemError::Doc(e.to_string()))?;
    let event = Event::from_stored(&value).map_err(|v| ItemError::Doc(format!("{v:?}")))?;
    Ok(StoredEvent { event, received_at, hash: hash.clone(), doc: doc.clone() })
}

/// Where a tombstone says its event went; `None` for an online item.
///
/// # Errors
/// [`ItemError::Attribute`] when a tombstone lacks its part or key.
pub fn archived_at(item: &Item) -> Result<Option<ArchivedAt>, ItemError> {
    let Some(date) = crate::dynamodb::values::get_s(item, attr::ARCHIVED_DATE) else { return Ok(None) };
    let part = string(item, attr::ARCHIVED_PART)?;
    Ok(Some(ArchivedAt { date: date.clone(), part: part.clone(), key: event_key(item)? }))
}

/// Reads a string attribute.
///
/// # Errors
/// [`ItemError::Attribute`] when it is absent or not a string.
pub fn string<'a>(item: &'a Item, name: &'static str) -> Result<&'a String, ItemError> {
    crate::dynamodb::values::get_s(item, name).ok_or(ItemError::Attribute(name))
}

/// The key in every index of the item (its `ts`).
///
/// # Errors
/// [`ItemError::Attribute`] when `ts` is absent or malformed.
pub fn event_key(item: &Item) -> Result<EventKey, ItemError> {
    string(item, keys::TS)?.parse().map_err(|_| ItemError::Attribute(keys::TS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::domain::fixtures::{arb_event, arb_full_event};
    use aws_sdk_dynamodb::types::AttributeValue;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn event_to_item_to_event_round_trips(event in arb_event(), shard in 0u16..64) {
            let stored = event.stamp(Timestamp::now());
            let item = to_item(&stored, shard, &stored.hash);
            let back = from_item(&item);
            prop_assert!(back.is_ok(), "{back:?}");
            prop_assert_eq!(back.ok(), Some(stored));
        }

        #[test]
        fn a_full_event_round_trips_through_its_item(event in arb_full_event()) {
            let stored = event.stamp(Timestamp::now());
            let item = to_item(&stored, 3, &stored.hash);
            prop_assert_eq!(from_item(&item).ok(), Some(stored));
        }

        #[test]
        fn a_tombstone_keeps_exactly_the_identity_dedup_hash_and_key(event in arb_full_event()) {
            let stored = event.stamp(Timestamp::now());
            let mut item = to_item(&stored, 3, "digest");
            for name in TOMBSTONE_REMOVES {
                item.remove(name);
            }
            let mut kept: Vec<&str> = item.keys().map(String::as_str).collect();
            kept.sort_unstable();
            prop_assert_eq!(kept, vec!["dedup", "hash", "id", "pk", "sk", "tenant_id", "ts"]);
            prop_assert!(archived_at(&item).ok().flatten().is_none());
            item.insert(attr::ARCHIVED_DATE.into(), AttributeValue::S("2026-01-02".into()));
            item.insert(attr::ARCHIVED_PART.into(), AttributeValue::S("part-00003.parquet".into()));
            let at = archived_at(&item).ok().flatten();
            prop_assert_eq!(at.map(|a| (a.part, a.key)), Some(("part-00003.parquet".to_owned(), EventKey::new(stored.event.occurred_at, &stored.event.id))));
        }

        #[test]
        fn an_altered_doc_is_refused(event in arb_event()) {
            let stored = event.stamp(Timestamp::now());
            let mut item = to_item(&stored, 0, &stored.hash);
            let doc = string(&item, attr::DOC).cloned().unwrap_or_default().replacen("\"action\":\"", "\"action\":\"x", 1);
            item.insert(attr::DOC.into(), AttributeValue::S(doc));
            prop_assert!(matches!(from_item(&item), Err(ItemError::HashMismatch)));
        }
    }
}
