//! The query plan: which read path a filter takes, and which ordered streams (one per
//! key value and write shard) it merges.
//!
//! The most selective path wins: resource id, then operator, then action, then time.
//! Every filter is still applied to what the path reads (a key-exact one filters nothing
//! away), so what a path returns never depends on which path was chosen. How a path and
//! a partition become keys is the store's business (the DynamoDB adapter's `keys`).

use crate::domain::filter::Filter;
use crate::domain::timestamp::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A read path: an index of events ordered by [`EventKey`] within each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Path {
    /// Events on one resource id (only events with one).
    #[serde(rename = "by_resource")]
    Resource,
    /// Events of one operator.
    #[serde(rename = "by_actor")]
    Actor,
    /// Events of one action.
    #[serde(rename = "by_action")]
    Action,
    /// Every event of a tenant: the archive's and the unfiltered console's path.
    #[serde(rename = "by_time")]
    Time,
}

/// Picks the path for a filter.
#[must_use]
pub fn choose(filter: &Filter) -> Path {
    if filter.resource_id.is_some() {
        Path::Resource
    } else if !filter.actors.is_empty() {
        Path::Actor
    } else if !filter.actions.is_empty() {
        Path::Action
    } else {
        Path::Time
    }
}

/// One ordered stream of a path: the events of one key value (an actor id, an action, a
/// resource id; none for [`Path::Time`]) in one write shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    pub shard: u16,
    pub value: Option<String>,
}

impl Partition {
    #[must_use]
    pub fn new(shard: u16, value: Option<&str>) -> Self {
        Self { shard, value: value.map(str::to_owned) }
    }
}

/// On the wire (in cursors) `{shard}` or `{shard}#{value}`.
impl Serialize for Partition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.value {
            Some(v) => s.serialize_str(&format!("{}#{v}", self.shard)),
            None => s.serialize_str(&self.shard.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Partition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let (shard, value) = match text.split_once('#') {
            Some((s, v)) => (s, Some(v.to_owned())),
            None => (text.as_str(), None),
        };
        let shard = shard.parse().map_err(serde::de::Error::custom)?;
        Ok(Self { shard, value })
    }
}

/// The values a path's partitions are built from: actor ids (the raw values plus the ids
/// their emails resolve to) or actions (exact ones plus the catalog's members of each
/// category).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub actor_ids: Vec<String>,
    pub actions: Vec<String>,
}

/// Most partitions a read merges through a key index: a filter that would read more (20
/// actors on a tenant of 32 shards) reads the time index instead, whose entries carry
/// what every filter needs, so a page never needs hundreds of first reads.
pub const MAX_STREAMS: usize = 64;

/// The partitions to read, one stream each, every shard included.
#[must_use]
pub fn partitions(path: Path, shards: u16, filter: &Filter, resolved: &Resolved) -> Vec<Partition> {
    let shards = 0..shards.max(1);
    let every_shard = |values: &[String]| -> Vec<Partition> {
        let mut values = values.to_vec();
        values.sort();
        values.dedup();
        values.iter().flat_map(|v| shards.clone().map(move |s| Partition::new(s, Some(v)))).collect()
    };
    match path {
        Path::Time => shards.map(|s| Partition::new(s, None)).collect(),
        Path::Resource => every_shard(&[filter.resource_id.clone().unwrap_or_default()]),
        Path::Actor => every_shard(&resolved.actor_ids),
        Path::Action => every_shard(&resolved.actions),
    }
}

/// Where an event sorts in every index: `(occurred_at, id)`. Its text form,
/// `{occurred_at}#{id}`, sorts the same way (the time has a fixed width and no `#`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    pub occurred_at: Timestamp,
    pub id: String,
}

impl EventKey {
    #[must_use]
    pub fn new(occurred_at: Timestamp, id: &str) -> Self {
        Self { occurred_at, id: id.to_owned() }
    }

    /// As a merge compares keys.
    #[must_use]
    pub fn key(&self) -> (i64, &str) {
        (self.occurred_at.micros(), &self.id)
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.occurred_at, self.id)
    }
}

/// Not an `{occurred_at}#{id}` key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an event key")]
pub struct BadKey;

impl FromStr for EventKey {
    type Err = BadKey;

    fn from_str(s: &str) -> Result<Self, BadKey> {
        let (t, id) = s.split_once('#').ok_or(BadKey)?;
        Ok(Self { occurred_at: Timestamp::parse(t).map_err(|_| BadKey)?, id: id.to_owned() })
    }
}

impl Serialize for EventKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::filter::{Extra, parse_query};
    use proptest::prelude::*;

    fn filter(q: &str) -> Filter {
        parse_query(q, Extra::List, Timestamp::now()).map(|p| p.filter).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn picks_the_most_selective_path() {
        assert_eq!(choose(&filter("")), Path::Time);
        assert_eq!(choose(&filter("outcome=failure&q=x")), Path::Time);
        assert_eq!(choose(&filter("action=a.b")), Path::Action);
        assert_eq!(choose(&filter("action=a.b&actor=u")), Path::Actor);
        assert_eq!(choose(&filter("action=a.b&actor=u&resource_id=r")), Path::Resource);
    }

    #[test]
    fn reads_every_shard_of_every_value() {
        let f = filter("actor=u1&actor=u2");
        let r = Resolved { actor_ids: vec!["u2".into(), "u1".into(), "u1".into()], actions: vec![] };
        let p = partitions(Path::Actor, 2, &f, &r);
        let p: Vec<(u16, Option<&str>)> = p.iter().map(|p| (p.shard, p.value.as_deref())).collect();
        assert_eq!(p, vec![(0, Some("u1")), (1, Some("u1")), (0, Some("u2")), (1, Some("u2"))]);
        assert_eq!(partitions(Path::Time, 1, &f, &r), vec![Partition::new(0, None)]);
    }

    #[test]
    fn partitions_keep_a_hash_in_their_value() {
        let p = Partition::new(3, Some("svc#1"));
        let text = serde_json::to_string(&p).unwrap_or_default();
        assert_eq!(text, r##""3#svc#1""##);
        assert_eq!(serde_json::from_str::<Partition>(&text).ok(), Some(p));
        assert!(serde_json::from_str::<Partition>(r#""x#1""#).is_err());
    }

    proptest! {
        #[test]
        fn keys_sort_as_their_text(a in 0i64..1 << 50, b in 0i64..1 << 50, x in "[ -~]{1,8}", y in "[ -~]{1,8}") {
            let ka = EventKey::new(Timestamp::from_micros(a).unwrap_or(Timestamp::MIN), &x);
            let kb = EventKey::new(Timestamp::from_micros(b).unwrap_or(Timestamp::MIN), &y);
            prop_assert_eq!(ka.cmp(&kb), ka.to_string().cmp(&kb.to_string()));
            prop_assert_eq!(ka.to_string().parse::<EventKey>(), Ok(ka));
        }
    }
}
