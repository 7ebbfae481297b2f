//! The query planner: which index partitions a filter reads, and the filter expression
//! that the rest of the filters become.
//!
//! The most selective key path wins: resource id, then operator, then action, then time.
//! Every filter is also written into the FilterExpression (a key-exact one filters
//! nothing away, so it costs no reads), which keeps the expression the same whatever
//! path is chosen and makes a cursor's expression independent of catalog lookups. Values
//! are always bound as expression attribute values, never spliced into the text.

use crate::filter::{ActionMatch, Filter};
use crate::keys::{self, BY_ACTION, BY_ACTOR, BY_RESOURCE, BY_TIME, Index};
use crate::tenant::TenantId;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Resource,
    Actor,
    Action,
    Time,
}

impl Path {
    #[must_use]
    pub fn index(self) -> Index {
        match self {
            Path::Resource => BY_RESOURCE,
            Path::Actor => BY_ACTOR,
            Path::Action => BY_ACTION,
            Path::Time => BY_TIME,
        }
    }
}

/// Picks the key path for a filter.
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

/// The values a path's partitions are built from: actor ids (the raw values plus the ids
/// their emails resolve to) or actions (exact ones plus the catalog's members of each
/// category).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub actor_ids: Vec<String>,
    pub actions: Vec<String>,
}

/// The partition key values to read, one stream each, every shard included.
#[must_use]
pub fn partitions(path: Path, tenant: &TenantId, shards: u16, filter: &Filter, resolved: &Resolved) -> Vec<String> {
    let shards = 0..shards.max(1);
    match path {
        Path::Time => shards.map(|s| keys::time_pk(tenant, s)).collect(),
        Path::Resource => {
            let rid = filter.resource_id.clone().unwrap_or_default();
            shards.map(|s| keys::resource_pk(tenant, s, &rid)).collect()
        }
        Path::Actor => {
            let mut ids = resolved.actor_ids.clone();
            ids.sort();
            ids.dedup();
            ids.iter().flat_map(|id| shards.clone().map(move |s| keys::actor_pk(tenant, s, id))).collect()
        }
        Path::Action => {
            let mut actions = resolved.actions.clone();
            actions.sort();
            actions.dedup();
            actions.iter().flat_map(|a| shards.clone().map(move |s| keys::action_pk(tenant, s, a))).collect()
        }
    }
}

/// A FilterExpression with its bound names and values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expr {
    pub text: Option<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, attr: &str) -> String {
        let n = format!("#{attr}");
        self.names.insert(n.clone(), attr.to_owned());
        n
    }

    fn value(&mut self, v: &str) -> String {
        let n = format!(":f{}", self.values.len());
        self.values.insert(n.clone(), AttributeValue::S(v.to_owned()));
        n
    }
}

/// The FilterExpression for every filter but time (which is in the key condition).
#[must_use]
pub fn expression(filter: &Filter) -> Expr {
    use crate::item::attr;
    let mut e = Expr::default();
    let mut clauses: Vec<String> = Vec::new();
    if !filter.actors.is_empty() {
        let id = e.name(attr::ACTOR_ID);
        let email = e.name(attr::ACTOR_EMAIL);
        let ids: Vec<String> = filter.actors.iter().map(|a| e.value(a)).collect();
        let emails: Vec<String> = filter.actors.iter().map(|a| e.value(&a.to_lowercase())).collect();
        clauses.push(format!("({id} IN ({}) OR {email} IN ({}))", ids.join(", "), emails.join(", ")));
    }
    if !filter.actions.is_empty() {
        let action = e.name(attr::ACTION);
        let alts: Vec<String> = filter
            .actions
            .iter()
            .map(|a| match a {
                ActionMatch::Exact(x) => format!("{action} = {}", e.value(x)),
                ActionMatch::Category(c) => format!("begins_with({action}, {})", e.value(&format!("{c}."))),
            })
            .collect();
        clauses.push(format!("({})", alts.join(" OR ")));
    }
    for (attr_name, want) in [
        (attr::RESOURCE_TYPE, &filter.resource_type),
        (attr::RESOURCE_ID, &filter.resource_id),
        (attr::WORKSPACE_ID, &filter.workspace),
    ] {
        if let Some(w) = want {
            let n = e.name(attr_name);
            clauses.push(format!("{n} = {}", e.value(w)));
        }
    }
    if let Some(o) = filter.outcome {
        let n = e.name(attr::OUTCOME);
        clauses.push(format!("{n} = {}", e.value(o.as_str())));
    }
    if let Some(q) = &filter.q {
        let n = e.name(attr::SEARCH);
        clauses.push(format!("contains({n}, {})", e.value(q)));
    }
    e.text = (!clauses.is_empty()).then(|| clauses.join(" AND "));
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Extra, parse_query};
    use crate::timestamp::Timestamp;

    fn filter(q: &str) -> Filter {
        parse_query(q, Extra::List, Timestamp::now()).map(|p| p.filter).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap_or_else(|_| unreachable!())
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
        let p = partitions(Path::Actor, &tenant(), 2, &f, &r);
        assert_eq!(p, vec!["acme#0#u1", "acme#1#u1", "acme#0#u2", "acme#1#u2"]);
        assert_eq!(partitions(Path::Time, &tenant(), 1, &f, &r), vec!["acme#0"]);
    }

    #[test]
    fn binds_every_value_and_never_splices_it() {
        let evil = "x) OR (1=1";
        let f = filter(&format!("q={}&workspace={}", "%22%29%20OR%20attribute_exists(pk", "w%27%3B--"));
        let e = expression(&f);
        let text = e.text.clone().unwrap_or_default();
        assert!(!text.contains("attribute_exists") && !text.contains(';') && !text.contains(evil), "{text}");
        assert!(e.values.values().any(|v| v.as_s().is_ok_and(|s| s == "\") or attribute_exists(pk")));
        assert_eq!(expression(&filter("")).text, None);
    }
}
