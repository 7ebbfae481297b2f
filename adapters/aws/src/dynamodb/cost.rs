//! What an item costs in DynamoDB: its size by DynamoDB's item-size rules, the write
//! units of putting it (table and every index entry), and the bytes it occupies stored.
//!
//! The rules (DynamoDB developer guide, "Item sizes and formats", and "Storage
//! considerations" of global secondary indexes): an attribute is the UTF-8 bytes of its
//! name plus its value: a string's UTF-8 bytes, a binary's raw bytes, a number's
//! significant digits halved plus one, one byte for a boolean or null, a list or map 3
//! bytes plus its elements and one byte each, a set its elements. A write costs one unit
//! per KB of the item (rounded up); each index entry it creates, changes or removes costs
//! one unit per KB of the entry. An index entry holds the table's key, the index's key
//! and the projected attributes. Stored, every item and every index entry takes 100 bytes
//! more. `tests/tests/cost.rs` checks these write units against DynamoDB Local's
//! ConsumedCapacity, and `tests/bench/cost.sh` measures them on the running service.

use crate::dynamodb::item::{self, TOMBSTONE_REMOVES};
use crate::dynamodb::keys::{self, EVENT_INDEXES};
use crate::dynamodb::values::{Item, s};
use audit::domain::event::StoredEvent;
use aws_sdk_dynamodb::types::AttributeValue;

/// Bytes DynamoDB stores besides each item and each index entry.
pub const OVERHEAD: usize = 100;
/// Bytes one write unit covers.
pub const WRITE_UNIT: usize = 1024;

/// The size of a value, without its name.
#[must_use]
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(x) => x.len(),
        AttributeValue::N(x) => number_size(x),
        AttributeValue::B(x) => x.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(xs) => xs.iter().map(String::len).sum(),
        AttributeValue::Ns(xs) => xs.iter().map(|x| number_size(x)).sum(),
        AttributeValue::Bs(xs) => xs.iter().map(|x| x.as_ref().len()).sum(),
        AttributeValue::L(xs) => 3 + xs.iter().map(|x| value_size(x) + 1).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, x)| k.len() + value_size(x) + 1).sum::<usize>(),
        _ => 0,
    }
}

/// A number's size: one byte per two significant digits, plus one.
fn number_size(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1
}

/// The size of an item (or an index entry): its names and values.
#[must_use]
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, v)| name.len() + value_size(v)).sum()
}

/// Write units of writing (or deleting) something of `size` bytes.
#[must_use]
pub fn write_units(size: usize) -> u32 {
    u32::try_from(size.div_ceil(WRITE_UNIT).max(1)).unwrap_or(u32::MAX)
}

/// What an index keeps of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

/// An index as far as cost goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexShape {
    pub name: String,
    /// Its key attributes (partition, and sort if any).
    pub keys: Vec<String>,
    pub projection: Projection,
}

/// A table as far as cost goes: its key attributes and its indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    pub keys: Vec<String>,
    pub indexes: Vec<IndexShape>,
}

impl TableShape {
    /// The service's table as `keys` defines it.
    #[must_use]
    pub fn events() -> Self {
        let indexes = EVENT_INDEXES
            .iter()
            .map(|i| IndexShape {
                name: i.name.to_owned(),
                keys: vec![i.pk.to_owned(), keys::TS.to_owned()],
                projection: Projection::Include(i.projects.iter().map(|&a| a.to_owned()).collect()),
            })
            .collect();
        Self { keys: vec![keys::PK.to_owned(), keys::SK.to_owned()], indexes }
    }

    /// The entry `item` has in `index`, if it has every key of the index.
    #[must_use]
    pub fn entry(&self, item: &Item, index: &IndexShape) -> Option<Item> {
        if !index.keys.iter().all(|k| item.contains_key(k)) {
            return None;
        }
        let kept = |name: &str| {
            self.keys.iter().chain(&index.keys).any(|k| k == name)
                || match &index.projection {
                    Projection::All => true,
                    Projection::KeysOnly => false,
                    Projection::Include(names) => names.iter().any(|n| n == name),
                }
        };
        Some(item.iter().filter(|(name, _)| kept(name)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// The cost of one entry: in the table or in an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The table's name for itself (`table`), or the index's.
    pub name: String,
    /// By the item-size rules, without the storage overhead.
    pub size: usize,
    /// Of the write that creates (or removes) it.
    pub write_units: u32,
}

impl Part {
    /// Bytes stored, with the overhead.
    #[must_use]
    pub fn stored(&self) -> usize {
        self.size + OVERHEAD
    }
}

/// What writing one item costs and what it occupies: the item, then each index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    pub parts: Vec<Part>,
}

impl Cost {
    /// Of putting `item` into a table of `shape`.
    #[must_use]
    pub fn of(item: &Item, shape: &TableShape) -> Self {
        let size = item_size(item);
        let mut parts = vec![Part { name: "table".into(), size, write_units: write_units(size) }];
        for index in &shape.indexes {
            if let Some(entry) = shape.entry(item, index) {
                let size = item_size(&entry);
                parts.push(Part { name: index.name.clone(), size, write_units: write_units(size) });
            }
        }
        Self { parts }
    }

    #[must_use]
    pub fn write_units(&self) -> u32 {
        self.parts.iter().map(|p| p.write_units).sum()
    }

    /// Bytes stored across the table and its indexes.
    #[must_use]
    pub fn stored(&self) -> usize {
        self.parts.iter().map(Part::stored).sum()
    }

    /// The part for the table or index `name`.
    #[must_use]
    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }
}

/// What storing `stored` costs: its item and its index entries.
#[must_use]
pub fn event(stored: &StoredEvent, shard: u16, dedup: &str) -> Cost {
    Cost::of(&item::to_item(stored, shard, dedup), &TableShape::events())
}

/// What archiving `stored` costs online: the write that turns its item into a tombstone
/// (DynamoDB counts the larger of the item before and after, plus removing each of its
/// index entries) and the tombstone that stays, `(write units, bytes stored)`. `date`
/// and `part` are what the tombstone records of where the event went.
#[must_use]
pub fn tombstone(stored: &StoredEvent, shard: u16, dedup: &str, date: &str, part: &str) -> (u32, usize) {
    let before = Cost::of(&item::to_item(stored, shard, dedup), &TableShape::events());
    let mut tomb = item::to_item(stored, shard, dedup);
    for name in TOMBSTONE_REMOVES {
        tomb.remove(name);
    }
    tomb.insert(item::attr::ARCHIVED_DATE.into(), s(date));
    tomb.insert(item::attr::ARCHIVED_PART.into(), s(part));
    let after = item_size(&tomb);
    let table = before.parts[0].size.max(after);
    let removed: u32 = before.parts[1..].iter().map(|p| p.write_units).sum();
    (write_units(table) + removed, after + OVERHEAD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::domain::event::Event;
    use audit::domain::tenant::TenantId;
    use audit::domain::timestamp::Timestamp;
    use aws_sdk_dynamodb::primitives::Blob;
    use serde_json::json;

    fn stored(raw: serde_json::Value) -> StoredEvent {
        let t = TenantId::parse("tenant-0").unwrap_or_else(|e| panic!("{e}"));
        Event::validate(raw, &t, Timestamp::MAX).unwrap_or_else(|v| panic!("{v:?}")).stamp(Timestamp::now())
    }

    /// An event as `../shared/bench/gen_events.py` writes them (about 740 bytes
    /// canonical).
    fn benchmark_event() -> StoredEvent {
        stored(json!({
            "id": "73fb29d8-a7f4-4cb4-ba02-753152aafbb9", "occurred_at": "2026-09-08T15:08:42.750161Z",
            "action": "knowledge.create", "outcome": "success",
            "actor": {"type": "member", "id": "u-0-33", "name": "Member 33", "email": "member33@tenant0.example"},
            "resource": {"type": "escalation_rule", "id": "escalation_rule-641502", "name": "escalation_rule 1502"},
            "workspace": {"id": "ws-0-2", "name": "Workspace 1"},
            "source": {"ip": "88.191.217.197", "user_agent": "curl/8.5.0"},
            "request_id": "req-7f19f38b95be14e1",
            "description": "Member 33 performed knowledge.create on escalation_rule escalation_rule-641502",
            "changes": [{"field": "field_0", "old": 603, "new": 298}, {"field": "field_1", "old": 669, "new": 34},
                        {"field": "field_2", "old": 287, "new": 906}],
            "metadata": {"changes": {}, "client": "api"}
        }))
    }

    #[test]
    fn sizes_follow_the_rules() {
        let item: Item = [
            ("s".to_owned(), s("abc")),
            ("nn".to_owned(), AttributeValue::N("12300".into())),
            ("b".to_owned(), AttributeValue::B(Blob::new(vec![1, 2]))),
            ("t".to_owned(), AttributeValue::Bool(true)),
            ("l".to_owned(), AttributeValue::L(vec![s("ab"), s("c")])),
            ("bs".to_owned(), AttributeValue::Bs(vec![Blob::new(vec![0; 4]), Blob::new(vec![1; 4])])),
        ]
        .into_iter()
        .collect();
        // s 1+3, nn 2+(3 digits: 2+1), b 1+2, t 1+1, l 1+3+(2+1)+(1+1), bs 2+8
        assert_eq!(item_size(&item), 4 + 5 + 3 + 2 + 9 + 10);
        assert_eq!(number_size("1782000000000000"), 3);
        assert_eq!(number_size("0.0012"), 2);
        assert_eq!((write_units(1), write_units(1024), write_units(1025)), (1, 1, 2));
    }

    #[test]
    fn a_benchmark_event_costs_five_write_units_and_under_three_times_its_size() {
        let e = benchmark_event();
        assert!((700..800).contains(&e.doc.len()), "{}", e.doc.len());
        let cost = event(&e, 0, &e.hash);
        assert_eq!(cost.parts.len(), 5, "the item and four index entries");
        assert!(cost.parts.iter().all(|p| p.write_units == 1), "{cost:?}");
        assert_eq!(cost.write_units(), 5);
        let ratio = cost.stored() as f64 / e.doc.len() as f64;
        assert!(ratio < 3.0, "{} bytes stored for {} ({ratio:.2}x): {cost:?}", cost.stored(), e.doc.len());
        let whole = cost.part("by_time").map_or(0, |p| p.size);
        let keys = cost.part("by_actor").map_or(0, |p| p.size);
        assert!(whole > 2 * keys, "by_time holds the doc, by_actor only keys and terms");
    }

    #[test]
    fn an_event_without_a_resource_is_in_three_indexes() {
        let e = stored(json!({"action": "auth.login", "actor": {"type": "member", "id": "u-1"}}));
        let cost = event(&e, 0, &e.hash);
        assert_eq!(
            cost.parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["table", "by_time", "by_actor", "by_action"]
        );
        assert_eq!(cost.write_units(), 4);
    }

    #[test]
    fn a_tombstone_leaves_no_index_entry_and_a_small_item() {
        let e = benchmark_event();
        let (units, bytes) = tombstone(&e, 0, &e.hash, "2026-09-08", "part-00000.parquet");
        assert_eq!(units, 5, "the item and the removal of its four index entries");
        assert!(bytes < 320, "{bytes}");
    }

    #[test]
    fn an_index_entry_holds_the_keys_and_what_it_projects() {
        let shape = TableShape {
            keys: vec!["pk".into(), "sk".into()],
            indexes: vec![IndexShape { name: "i".into(), keys: vec!["g".into()], projection: Projection::KeysOnly }],
        };
        let item: Item =
            [("pk", "a"), ("sk", "b"), ("g", "c"), ("x", "d")].iter().map(|(k, v)| ((*k).to_owned(), s(v))).collect();
        let entry = shape.entry(&item, &shape.indexes[0]).unwrap_or_default();
        assert_eq!(entry.len(), 3);
        let mut no_key = item.clone();
        no_key.remove("g");
        assert!(shape.entry(&no_key, &shape.indexes[0]).is_none());
    }
}
