//! The action and actor catalogs (`GET /v1/actions`, `GET /v1/actors`): what ingest
//! records of each stored batch, and what the catalogs answer.

use crate::domain::event::Event;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionCount {
    pub action: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorEntry {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub last_seen: String,
}

/// What one stored batch adds to the catalogs: a count per distinct action, and the
/// latest sighting of each actor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogUpdate<'a> {
    pub actions: Vec<(&'a str, u64)>,
    /// Per actor id, the event where it was last seen in the batch.
    pub actors: Vec<&'a Event>,
}

impl<'a> CatalogUpdate<'a> {
    #[must_use]
    pub fn of(created: &[&'a Event]) -> Self {
        let mut actions: BTreeMap<&str, u64> = BTreeMap::new();
        let mut actors: BTreeMap<&str, &Event> = BTreeMap::new();
        for e in created {
            *actions.entry(e.action.as_str()).or_default() += 1;
            let latest = actors.entry(e.actor.id.as_str()).or_insert(e);
            if e.occurred_at > latest.occurred_at {
                *latest = e;
            }
        }
        Self { actions: actions.into_iter().collect(), actors: actors.into_values().collect() }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.actors.is_empty()
    }
}

/// Sums the per-shard counts of each action, keeping those containing `q` (any case).
#[must_use]
pub fn merge_actions(shards: impl IntoIterator<Item = ActionCount>, q: Option<&str>) -> Vec<ActionCount> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for a in shards {
        *counts.entry(a.action).or_default() += a.count;
    }
    let q = q.map(str::to_lowercase);
    counts
        .into_iter()
        .filter(|(a, _)| q.as_ref().is_none_or(|q| a.contains(q.as_str())))
        .map(|(action, count)| ActionCount { action, count })
        .collect()
}

/// The latest sighting of each actor across shards, most recent first; `q` is a name or
/// email prefix (any case).
#[must_use]
pub fn merge_actors(shards: impl IntoIterator<Item = ActorEntry>, q: Option<&str>) -> Vec<ActorEntry> {
    let q = q.map(str::to_lowercase);
    let mut latest: BTreeMap<String, ActorEntry> = BTreeMap::new();
    for entry in shards {
        if let Some(q) = &q {
            let hit =
                [&entry.name, &entry.email].into_iter().flatten().any(|v| v.to_lowercase().starts_with(q.as_str()));
            if !hit {
                continue;
            }
        }
        match latest.get(&entry.id) {
            Some(old) if old.last_seen >= entry.last_seen => {}
            _ => {
                latest.insert(entry.id.clone(), entry);
            }
        }
    }
    let mut out: Vec<ActorEntry> = latest.into_values().collect();
    out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: &str, name: &str, last_seen: &str) -> ActorEntry {
        ActorEntry {
            id: id.into(),
            kind: "member".into(),
            name: Some(name.into()),
            email: None,
            last_seen: last_seen.into(),
        }
    }

    #[test]
    fn actions_sum_over_shards_and_filter_by_substring() {
        let a = |action: &str, count| ActionCount { action: action.into(), count };
        let got = merge_actions([a("api_key.create", 2), a("auth.login", 1), a("api_key.create", 3)], Some("KEY"));
        assert_eq!(got, vec![a("api_key.create", 5)]);
    }

    #[test]
    fn actors_keep_their_latest_sighting_newest_first() {
        let got = merge_actors(
            [actor("u1", "Bob", "2026-01-02"), actor("u1", "Bobby", "2026-01-03"), actor("u2", "Bo", "2026-01-01")],
            Some("bo"),
        );
        let got: Vec<(&str, Option<&str>)> = got.iter().map(|a| (a.id.as_str(), a.name.as_deref())).collect();
        assert_eq!(got, vec![("u1", Some("Bobby")), ("u2", Some("Bo"))]);
        assert!(merge_actors([actor("u3", "Cy", "x")], Some("bo")).is_empty());
    }
}
