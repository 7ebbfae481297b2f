//! The mapping between a stored event and its DynamoDB item.
//!
//! The item holds the event's canonical JSON (`d`, compressed: [`doc`]), whose SHA-256 is
//! `h`, plus the keys of its indexes and the filter terms they need (`f`: [`terms`]).
//! Nothing else: every other attribute would be paid for in each write and, when an
//! index projects it, five times in storage (docs/design.md, "What an event costs").
//! Names are short for the same reason. Reading back decodes `d` and checks it against
//! `h`, so a corrupted item is reported, never served.
//!
//! Once archived, the item becomes a tombstone ([`TOMBSTONE_REMOVES`]): the key and the
//! digests stay, so the id stays taken, and it points to the part holding the row.

use crate::dynamodb::doc;
use crate::dynamodb::keys::{self, BY_ACTION, BY_ACTOR, BY_RESOURCE, BY_TIME};
use crate::dynamodb::terms;
use crate::dynamodb::values::{Item, b, get_n, n, s};
use audit::domain::event::{Event, StoredEvent};
use audit::domain::plan::EventKey;
use audit::domain::timestamp::Timestamp;
use audit::ports::{ArchivedAt, IndexEntry};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

/// Attribute names of an event item besides the keys (`pk`, `sk`, `ts` and the index
/// partition keys of [`keys::EVENT_INDEXES`]).
pub mod attr {
    /// The canonical text, in [`super::doc`]'s stored form (B).
    pub const DOC: &str = "d";
    /// SHA-256 of the canonical text: the event's `hash` (B, 32 bytes).
    pub const HASH: &str = "h";
    /// The digest that tells a resend from a conflict, only where it differs from `h`:
    /// an event sent without `occurred_at` is compared without it (B, 32 bytes).
    pub const DEDUP: &str = "dd";
    /// `received_at` in microseconds since the epoch (N).
    pub const RECEIVED_AT: &str = "ra";
    /// The filter terms' digests (BS).
    pub const TERMS: &str = "f";
    /// A tombstone's day and part (`YYYY-MM-DD`, `part-NNNNN.parquet`) (S).
    pub const ARCHIVED_DATE: &str = "ad";
    pub const ARCHIVED_PART: &str = "ap";
}

/// What the archive removes when it turns an event item into a tombstone: everything
/// but `pk`, `sk`, `ts`, `h` and `dd` (which keep the id taken and a resend comparable),
/// in particular every index key, so a tombstone is in no index. Whoever adds an
/// attribute to the item adds it here.
pub const TOMBSTONE_REMOVES: [&str; 7] =
    [BY_TIME.pk, BY_ACTOR.pk, BY_ACTION.pk, BY_RESOURCE.pk, attr::DOC, attr::RECEIVED_AT, attr::TERMS];

/// A stored item that is not a valid event.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// A required attribute is absent or of the wrong type.
    #[error("item attribute {0} is missing or malformed")]
    Attribute(&'static str),
    /// `d` is not a valid event.
    #[error("item doc is not a valid event: {0}")]
    Doc(String),
    /// `d` does not hash to `h`: the item was altered.
    #[error("item doc does not match its hash")]
    HashMismatch,
}

/// The 32 bytes of a hex SHA-256 (`hash`, `dedup`).
fn digest_bytes(hex_digest: &str) -> Vec<u8> {
    hex::decode(hex_digest).unwrap_or_else(|_| Sha256::digest(hex_digest.as_bytes()).to_vec())
}

/// The item for `event` in write shard `shard`; `dedup` is the digest that decides
/// duplicate or conflict on a repeated id.
#[must_use]
pub fn to_item(stored: &StoredEvent, shard: u16, dedup: &str) -> Item {
    let e = &stored.event;
    let t = &e.tenant_id;
    let mut item = Item::with_capacity(12);
    item.insert(keys::PK.into(), s(&keys::event_pk(t, &e.id)));
    item.insert(keys::SK.into(), s(keys::EVENT_SK));
    item.insert(keys::TS.into(), s(&keys::ts(&EventKey::new(e.occurred_at, &e.id))));
    item.insert(BY_TIME.pk.into(), s(&keys::time_pk(t, shard)));
    item.insert(BY_ACTOR.pk.into(), s(&keys::actor_pk(t, shard, &e.actor.id)));
    item.insert(BY_ACTION.pk.into(), s(&keys::action_pk(t, shard, &e.action)));
    if let Some(id) = e.resource.as_ref().and_then(|r| r.id.as_ref()) {
        item.insert(BY_RESOURCE.pk.into(), s(&keys::resource_pk(t, shard, id)));
    }
    item.insert(attr::DOC.into(), b(doc::encode(&stored.doc)));
    item.insert(attr::HASH.into(), b(digest_bytes(&stored.hash)));
    if dedup != stored.hash {
        item.insert(attr::DEDUP.into(), b(digest_bytes(dedup)));
    }
    item.insert(attr::RECEIVED_AT.into(), n(stored.received_at.micros()));
    item.insert(attr::TERMS.into(), AttributeValue::Bs(terms::of(e).into_iter().map(Blob::new).collect()));
    item
}

/// The digest an item compares a resend with: `dd`, or `h` where they are the same.
#[must_use]
pub fn dedup_of(item: &Item) -> Option<String> {
    let bytes = |name| item.get(name).and_then(|v| v.as_b().ok()).map(|b| hex::encode(b.as_ref()));
    bytes(attr::DEDUP).or_else(|| bytes(attr::HASH))
}

/// Whether an item holds an event (a tombstone left by the archive does not).
#[must_use]
pub fn holds_event(item: &Item) -> bool {
    item.contains_key(attr::DOC)
}

/// Reads a stored event back, verifying its hash.
///
/// # Errors
/// [`ItemError`] when the item is malformed or altered.
pub fn from_item(item: &Item) -> Result<StoredEvent, ItemError> {
    let stored = item.get(attr::DOC).and_then(|v| v.as_b().ok()).ok_or(ItemError::Attribute(attr::DOC))?;
    let hash = item.get(attr::HASH).and_then(|v| v.as_b().ok()).ok_or(ItemError::Attribute(attr::HASH))?;
    let text = doc::decode(stored.as_ref()).map_err(|e| ItemError::Doc(e.to_string()))?;
    if Sha256::digest(text.as_bytes()).as_slice() != hash.as_ref() {
        return Err(ItemError::HashMismatch);
    }
    let received_at = get_n::<i64>(item, attr::RECEIVED_AT)
        .and_then(|m| Timestamp::from_micros(m).ok())
        .ok_or(ItemError::Attribute(attr::RECEIVED_AT))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ItemError::Doc(e.to_string()))?;
    let event = Event::from_stored(&value).map_err(|v| ItemError::Doc(format!("{v:?}")))?;
    Ok(StoredEvent { event, received_at, hash: hex::encode(hash.as_ref()), doc: text })
}

/// One entry of an index page: its key, and its event when the index holds it.
///
/// # Errors
/// [`ItemError`] when the entry is malformed or its event altered.
pub fn entry(item: &Item, whole: bool) -> Result<IndexEntry, ItemError> {
    let key = event_key(item)?;
    let event = if whole { Some(from_item(item)?) } else { None };
    Ok(IndexEntry { key, event })
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn event_to_item_to_event_round_trips(event in arb_event(), shard in 0u16..64) {
            let stored = event.stamp(Timestamp::now());
            let item = to_item(&stored, shard, &stored.hash);
            let back = from_item(&item);
            prop_assert!(back.is_ok(), "{back:?}");
            prop_assert_eq!(back.ok(), Some(stored.clone()));
            prop_assert_eq!(dedup_of(&item), Some(stored.hash.clone()));
            prop_assert!(!item.contains_key(attr::DEDUP));
        }

        #[test]
        fn a_full_event_round_trips_through_its_item(event in arb_full_event()) {
            let stored = event.stamp(Timestamp::now());
            let item = to_item(&stored, 3, &stored.hash);
            prop_assert_eq!(from_item(&item).ok(), Some(stored));
        }

        #[test]
        fn an_altered_doc_is_refused(event in arb_event()) {
            let stored = event.stamp(Timestamp::now());
            let mut item = to_item(&stored, 0, &stored.hash);
            let altered = stored.doc.replacen("\"action\":\"", "\"action\":\"x", 1);
            item.insert(attr::DOC.into(), b(doc::encode(&altered)));
            prop_assert!(matches!(from_item(&item), Err(ItemError::HashMismatch)));
        }
    }

    #[test]
    fn a_different_dedup_is_kept_and_a_tombstone_keeps_only_what_it_must() {
        let tenant = audit::domain::tenant::TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
        let accepted = Event::validate(audit::domain::fixtures::minimal(), &tenant, Timestamp::now());
        let stored = accepted.unwrap_or_else(|v| panic!("{v:?}")).stamp(Timestamp::now());
        let dedup = "ab".repeat(32);
        let item = to_item(&stored, 0, &dedup);
        assert_eq!(dedup_of(&item), Some(dedup));
        let mut tomb = item.clone();
        for name in TOMBSTONE_REMOVES {
            tomb.remove(name);
        }
        let mut left: Vec<&str> = tomb.keys().map(String::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, vec![attr::DEDUP, attr::HASH, keys::PK, keys::SK, keys::TS]);
        assert!(holds_event(&item) && !holds_event(&tomb));
        assert!(archived_at(&tomb).ok().flatten().is_none());
        tomb.insert(attr::ARCHIVED_DATE.into(), s("2026-01-02"));
        tomb.insert(attr::ARCHIVED_PART.into(), s("part-00003.parquet"));
        let at = archived_at(&tomb).ok().flatten();
        let key = EventKey::new(stored.event.occurred_at, &stored.event.id);
        assert_eq!(at.map(|a| (a.part, a.key)), Some(("part-00003.parquet".to_owned(), key)));
    }
}
