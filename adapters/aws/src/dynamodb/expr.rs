//! The filters as DynamoDB expressions: the key condition over a time range, and the
//! FilterExpression every other filter becomes.
//!
//! Every filter is written into the FilterExpression (a key-exact one filters nothing
//! away, so it costs no reads), which keeps the expression the same whatever path the
//! plan chose. Values are always bound as expression attribute values, never spliced
//! into the text. A new filter gets its clause here, next to its definition in
//! `audit::domain::filter` (which the in-memory adapter applies as it is).

use crate::dynamodb::item::attr;
use crate::dynamodb::values::s;
use audit::domain::filter::{ActionMatch, Filter};
use audit::domain::timestamp::Timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

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
        self.values.insert(n.clone(), s(v));
        n
    }
}

/// The FilterExpression for every filter but time (which is in the key condition).
#[must_use]
pub fn expression(filter: &Filter) -> Expr {
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

/// The `ts` bounds (inclusive) of `[from, to)`: every `ts` of `from` sorts after the bare
/// time, and the last microsecond before `to` followed by U+10FFFF sorts after every id.
#[must_use]
pub fn ts_bounds(from: Timestamp, to: Timestamp) -> (String, String) {
    let last = Timestamp::from_micros(to.micros() - 1).unwrap_or(to);
    (from.to_string(), format!("{last}#\u{10FFFF}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::domain::filter::{Extra, parse_query};

    fn filter(q: &str) -> Filter {
        parse_query(q, Extra::List, Timestamp::now()).map(|p| p.filter).unwrap_or_else(|e| panic!("{e:?}"))
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
