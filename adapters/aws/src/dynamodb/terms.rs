//! Filter terms: what the indexes need to decide every filter but `q`, in a few bytes.
//!
//! Each index entry carries one binary set (`f`) of 4-byte digests, one per filterable
//! value of its event (`u` actor id, `e` lowercased actor email, `a` action, `c` category,
//! `o` outcome, `t` resource type, `r` resource id, `w` workspace id), and a filter
//! becomes `contains(f, digest)` clauses. That costs 33 bytes an entry, whatever the
//! values' length, where the values themselves would cost 80 to several hundred in each
//! of five copies (the item and four indexes).
//!
//! A digest can collide: about one value in 2^32 also matches. A page checks every event
//! it fetches against the filter itself, so it never shows such an event; a count taken
//! from the index alone could count it (about 2 in 10^9 per entry and filter value).

use audit::domain::filter::Fields;
use sha2::{Digest, Sha256};

/// Bytes of one digest.
pub const DIGEST_BYTES: usize = 4;

/// What a digest is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    ActorId,
    /// Lowercased.
    Email,
    Action,
    Category,
    Outcome,
    ResourceType,
    ResourceId,
    Workspace,
}

impl Term {
    fn tag(self) -> u8 {
        match self {
            Term::ActorId => b'u',
            Term::Email => b'e',
            Term::Action => b'a',
            Term::Category => b'c',
            Term::Outcome => b'o',
            Term::ResourceType => b't',
            Term::ResourceId => b'r',
            Term::Workspace => b'w',
        }
    }
}

/// The digest of one value of one field.
#[must_use]
pub fn digest(term: Term, value: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([term.tag(), 0x1f]);
    h.update(value.as_bytes());
    h.finalize()[..DIGEST_BYTES].to_vec()
}

/// Every digest of an event, each once (a set holds no duplicates).
#[must_use]
pub fn of<F: Fields>(e: &F) -> Vec<Vec<u8>> {
    let action = e.action();
    let category = action.split('.').next().unwrap_or(action);
    let values = [
        (Term::ActorId, Some(e.actor_id().to_owned())),
        (Term::Email, e.actor_email().map(str::to_lowercase)),
        (Term::Action, Some(action.to_owned())),
        (Term::Category, Some(category.to_owned())),
        (Term::Outcome, Some(e.outcome().to_owned())),
        (Term::ResourceType, e.resource_type().map(str::to_owned)),
        (Term::ResourceId, e.resource_id().map(str::to_owned)),
        (Term::Workspace, e.workspace_id().map(str::to_owned)),
    ];
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(values.len());
    for (term, value) in values {
        if let Some(v) = value {
            let d = digest(term, &v);
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::domain::fixtures::arb_event;
    use proptest::prelude::*;

    #[test]
    fn a_digest_depends_on_its_field() {
        assert_eq!(digest(Term::ActorId, "x").len(), DIGEST_BYTES);
        assert_ne!(digest(Term::ActorId, "x"), digest(Term::ResourceId, "x"));
        assert_eq!(digest(Term::Email, "a@b"), digest(Term::Email, "a@b"));
    }

    proptest! {
        #[test]
        fn an_event_has_a_digest_of_each_of_its_values(event in arb_event()) {
            let terms = of(&event);
            prop_assert!(terms.contains(&digest(Term::ActorId, &event.actor.id)));
            prop_assert!(terms.contains(&digest(Term::Category, event.category())));
            prop_assert!(terms.contains(&digest(Term::Outcome, event.outcome.as_str())));
            if let Some(m) = &event.actor.email {
                prop_assert!(terms.contains(&digest(Term::Email, &m.to_lowercase())));
            }
            prop_assert!(terms.len() <= 8);
        }
    }
}
