//! The filters as DynamoDB expressions: the key condition over a time range, and the
//! FilterExpression every other filter becomes.
//!
//! Every filter but `q` is written into the FilterExpression as `contains` clauses over
//! the entry's filter terms (a key-exact one filters nothing away, so it costs no reads),
//! which keeps the expression the same whatever path the plan chose. `q` is not: no
//! index holds text, so the reader checks it on the events it fetches. Values are always
//! bound as expression attribute values, never spliced into the text. A new filter gets
//! its term in [`crate::dynamodb::terms`] and its clause here, next to its definition in
//! `audit::domain::filter` (which the in-memory adapter applies as it is).

use crate::dynamodb::item::attr;
use crate::dynamodb::terms::{Term, digest};
use crate::dynamodb::values::b;
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
    /// `contains(f, :v)` for the digest of `value` as `term`.
    fn has(&mut self, term: Term, value: &str) -> String {
        self.names.insert("#f".into(), attr::TERMS.into());
        let n = format!(":f{}", self.values.len());
        self.values.insert(n.clone(), b(digest(term, value)));
        format!("contains(#f, {n})")
    }
}

/// Whether the indexes decide every filter of `filter` (all but `q`).
#[must_use]
pub fn decides(filter: &Filter) -> bool {
    filter.q.is_none()
}

/// The FilterExpression for every filter but time (in the key condition) and `q`.
#[must_use]
pub fn expression(filter: &Filter) -> Expr {
    let mut e = Expr::default();
    let mut clauses: Vec<String> = Vec::new();
    if !filter.actors.is_empty() {
        let alts: Vec<String> = filter
            .actors
            .iter()
            .flat_map(|a| [(Term::ActorId, a.clone()), (Term::Email, a.to_lowercase())])
            .map(|(term, v)| e.has(term, &v))
            .collect();
        clauses.push(format!("({})", alts.join(" OR ")));
    }
    if !filter.actions.is_empty() {
        let alts: Vec<String> = filter
            .actions
            .iter()
            .map(|a| match a {
                ActionMatch::Exact(x) => e.has(Term::Action, x),
                ActionMatch::Category(c) => e.has(Term::Category, c),
            })
            .collect();
        clauses.push(format!("({})", alts.join(" OR ")));
    }
    for (term, want) in [
        (Term::ResourceType, &filter.resource_type),
        (Term::ResourceId, &filter.resource_id),
        (Term::Workspace, &filter.workspace),
    ] {
        if let Some(w) = want {
            clauses.push(e.has(term, w));
        }
    }
    if let Some(o) = filter.outcome {
        clauses.push(e.has(Term::Outcome, o.as_str()));
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
    fn binds_every_value_as_a_digest_and_never_splices_it() {
        let f = filter("workspace=w%27%29%20OR%20attribute_exists(pk&actor=a%40B.com&action=api_key.*&outcome=failure");
        let e = expression(&f);
        let text = e.text.clone().unwrap_or_default();
        assert!(!text.contains("attribute_exists") && !text.contains('\''), "{text}");
        assert_eq!(
            text,
            "(contains(#f, :f0) OR contains(#f, :f1)) AND (contains(#f, :f2)) AND contains(#f, :f3) AND contains(#f, :f4)"
        );
        assert_eq!(e.values.get(":f1"), Some(&b(digest(Term::Email, "a@b.com"))));
        assert_eq!(e.values.get(":f2"), Some(&b(digest(Term::Category, "api_key"))));
        assert_eq!(expression(&filter("")).text, None);
        let q = filter("q=x");
        assert_eq!(expression(&q).text, None, "q is for the reader");
        assert!(!decides(&q) && decides(&f));
    }
}
