//! The read filters of contract section 2 (`GET /v1/events`, `count`, exports): parsing
//! and validating the query string, and what "matches" means, in one place.

use crate::domain::canonical::sha256_hex;
use crate::domain::event::{Event, Outcome, Reason, Violation};
use crate::domain::row::{Row, col};
use crate::domain::timestamp::Timestamp;

/// How far back `from` goes when not given.
pub const DEFAULT_DAYS: i64 = 7;
/// Most values of a repeatable parameter.
pub const MAX_VALUES: usize = 20;
/// Longest `q`.
pub const MAX_Q_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionMatch {
    Exact(String),
    /// `api_key.*`: holds `api_key`.
    Category(String),
}

impl ActionMatch {
    #[must_use]
    pub fn matches(&self, action: &str) -> bool {
        match self {
            ActionMatch::Exact(a) => a == action,
            ActionMatch::Category(c) => action.strip_prefix(c.as_str()).is_some_and(|rest| rest.starts_with('.')),
        }
    }
}

/// Every filter, ANDed; a repeated one is ORed within itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub from: Timestamp,
    /// Exclusive.
    pub to: Timestamp,
    /// Actor ids, or emails (matched case-insensitively).
    pub actors: Vec<String>,
    pub actions: Vec<ActionMatch>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub workspace: Option<String>,
    pub outcome: Option<Outcome>,
    /// Lowercased keyword.
    pub q: Option<String>,
    /// Whether `from`/`to` were given (a cursor pins the defaults of its first page).
    pub from_given: bool,
    pub to_given: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Desc,
    Asc,
}

/// Parameters that a given endpoint accepts besides the filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    List,
    Count,
    /// `POST /v1/exports`: the filters alone.
    Export,
}

/// The parsed query string of a read endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub filter: Filter,
    pub limit: usize,
    pub order: Order,
    pub cursor: Option<String>,
    pub max: u64,
}

/// The filter parameters, shared by `GET /v1/events`, its count and export requests.
pub const FILTER_KEYS: &[&str] =
    &["from", "to", "actor", "action", "resource_type", "resource_id", "workspace", "outcome", "q"];

/// Decodes a query string into its pairs, in order.
#[must_use]
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// Parses a read endpoint's query string.
///
/// # Errors
/// Every invalid parameter, as violations (`field` = the parameter).
pub fn parse_query(query: &str, extra: Extra, now: Timestamp) -> Result<Parsed, Vec<Violation>> {
    let pairs = query_pairs(query);
    let mut v = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let allowed: &[&str] = match extra {
        Extra::List => &["limit", "order", "cursor"],
        Extra::Count => &["max"],
        Extra::Export => &[],
    };
    for (k, _) in &pairs {
        let repeatable = k == "actor" || k == "action";
        if !FILTER_KEYS.contains(&k.as_str()) && !allowed.contains(&k.as_str()) {
            v.push(Violation { field: k.clone(), reason: Reason::UnknownField, message: "unknown parameter".into() });
        } else if !repeatable && seen.contains(&k.as_str()) {
            v.push(Violation {
                field: k.clone(),
                reason: Reason::InvalidValue,
                message: "given more than once".into(),
            });
        }
        seen.push(k);
    }
    let one = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let many = |name: &str| pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let mut bad = |field: &str, reason: Reason, message: &str| {
        v.push(Violation { field: field.into(), reason, message: message.into() });
    };

    let time = |name: &str, bad: &mut dyn FnMut(&str, Reason, &str)| {
        one(name)
            .and_then(|t| Timestamp::parse(t).map_err(|_| bad(name, Reason::InvalidFormat, "an RFC 3339 time")).ok())
    };
    let from = time("from", &mut bad);
    let to = time("to", &mut bad);
    let (from_given, to_given) = (one("from").is_some(), one("to").is_some());
    let times_ok = (from.is_some() || !from_given) && (to.is_some() || !to_given);
    let to = to.unwrap_or_else(|| now.plus_seconds(crate::domain::event::MAX_FUTURE_SECONDS));
    let from = from.unwrap_or_else(|| now.plus_seconds(-DEFAULT_DAYS * 86_400));
    if from >= to && times_ok {
        bad("from", Reason::InvalidValue, "from must be before to");
    }

    let actors = many("actor");
    if actors.len() > MAX_VALUES {
        bad("actor", Reason::TooMany, "at most 20 values");
    }
    for a in &actors {
        // No stored actor holds U+0000 (event validation refuses it), and an export's
        // filters are themselves logged as an event, which must stay valid.
        if a.is_empty() || a.chars().count() > 320 || a.contains('\0') {
            bad("actor", Reason::InvalidValue, "an actor id or email of 1 to 320 characters, without U+0000");
        }
    }
    let mut actions = Vec::new();
    let raw_actions = many("action");
    if raw_actions.len() > MAX_VALUES {
        bad("action", Reason::TooMany, "at most 20 values");
    }
    for a in raw_actions {
        let parsed = match a.strip_suffix(".*") {
            Some(cat) if is_segment(cat) => Some(ActionMatch::Category(cat.to_owned())),
            Some(_) => None,
            None if a.len() <= 128 && a.split('.').count() >= 2 && a.split('.').all(is_segment) => {
                Some(ActionMatch::Exact(a))
            }
            None => None,
        };
        match parsed {
            Some(p) => actions.push(p),
            None => bad(
                "action",
                Reason::InvalidFormat,
                "an action such as channel.create, or a category such as api_key.*",
            ),
        }
    }
    let text = |name: &str, max: usize, bad: &mut dyn FnMut(&str, Reason, &str)| {
        one(name).and_then(|s| {
            if s.is_empty() || s.chars().count() > max || s.contains('\0') {
                bad(name, Reason::InvalidValue, "1 to 256 characters");
                None
            } else {
                Some(s.to_owned())
            }
        })
    };
    let resource_type = text("resource_type", 256, &mut bad);
    let resource_id = text("resource_id", 256, &mut bad);
    let workspace = text("workspace", 256, &mut bad);
    let q = one("q").and_then(|s| {
        if s.is_empty() || s.chars().count() > MAX_Q_CHARS || s.contains('\0') {
            bad("q", Reason::TooLong, "1 to 256 characters");
            None
        } else {
            Some(s.to_lowercase())
        }
    });
    let outcome = one("outcome").and_then(|o| match o {
        "success" => Some(Outcome::Success),
        "failure" => Some(Outcome::Failure),
        _ => {
            bad("outcome", Reason::InvalidValue, "success or failure");
            None
        }
    });
    let limit = match one("limit") {
        None => 10,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                bad("limit", Reason::InvalidValue, "1 to 100");
                10
            }
        },
    };
    let max = match one("max") {
        None => 10_000,
        Some(m) => match m.parse::<u64>() {
            Ok(n) if (1..=100_000).contains(&n) => n,
            _ => {
                bad("max", Reason::InvalidValue, "1 to 100000");
                10_000
            }
        },
    };
    let order = match one("order") {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(_) => {
            bad("order", Reason::InvalidValue, "asc or desc");
            Order::Desc
        }
    };
    let cursor = one("cursor").map(str::to_owned);
    if cursor.as_ref().is_some_and(|c| c.is_empty() || c.len() > 16 * 1024) {
        bad("cursor", Reason::InvalidValue, "not a cursor");
    }
    if !v.is_empty() {
        return Err(v);
    }
    let filter =
        Filter { from, to, actors, actions, resource_type, resource_id, workspace, outcome, q, from_given, to_given };
    Ok(Parsed { filter, limit, order, cursor, max })
}

/// Most items of a catalog page, and the default.
pub const CATALOG_LIMIT: usize = 100;

/// The parsed query string of `/v1/actions` or `/v1/actors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogQuery {
    pub q: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// The catalogs' query string: `q` (1 to 256 characters), `limit` (1 to 100) and
/// `cursor`, each at most once, nothing else.
///
/// # Errors
/// Every offending parameter.
pub fn parse_catalog_query(query: &str) -> Result<CatalogQuery, Vec<Violation>> {
    let mut out = CatalogQuery { q: None, limit: CATALOG_LIMIT, cursor: None };
    let mut seen: Vec<String> = Vec::new();
    let mut v = Vec::new();
    for (k, value) in query_pairs(query) {
        let bad = |reason, message: &str| Violation { field: k.clone(), reason, message: message.into() };
        if seen.contains(&k) && ["q", "limit", "cursor"].contains(&k.as_str()) {
            v.push(bad(Reason::InvalidValue, "given more than once"));
            continue;
        }
        seen.push(k.clone());
        match k.as_str() {
            "q" if value.is_empty() || value.chars().count() > MAX_Q_CHARS || value.contains('\0') => {
                v.push(bad(Reason::InvalidValue, "1 to 256 characters"));
            }
            "q" => out.q = Some(value),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=CATALOG_LIMIT).contains(&n) => out.limit = n,
                _ => v.push(bad(Reason::InvalidValue, "1 to 100")),
            },
            "cursor" if value.is_empty() || value.len() > 16 * 1024 => {
                v.push(bad(Reason::InvalidValue, "not a cursor"))
            }
            "cursor" => out.cursor = Some(value),
            _ => v.push(bad(Reason::UnknownField, "unknown parameter")),
        }
    }
    if v.is_empty() { Ok(out) } else { Err(v) }
}

fn is_segment(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Filter {
    /// Everything in `[from, to)`, no other filter.
    #[must_use]
    pub fn range(from: Timestamp, to: Timestamp) -> Self {
        Self {
            from,
            to,
            actors: Vec::new(),
            actions: Vec::new(),
            resource_type: None,
            resource_id: None,
            workspace: None,
            outcome: None,
            q: None,
            from_given: true,
            to_given: true,
        }
    }

    /// Whether an event (stored online or read from the archive) passes every filter: the
    /// definition the planner's key conditions and filter expressions must agree with.
    #[must_use]
    pub fn matches<F: Fields>(&self, e: &F) -> bool {
        (self.from.micros()..self.to.micros()).contains(&e.occurred_at()) && self.matches_besides_time(e)
    }

    /// Whether an event passes every filter but the time range: what an alert rule's
    /// match means, since a rule judges each event as it arrives, whenever it occurred.
    #[must_use]
    pub fn matches_besides_time<F: Fields>(&self, e: &F) -> bool {
        let lc = |s: &str| s.to_lowercase();
        (self.actors.is_empty()
            || self.actors.iter().any(|a| *a == e.actor_id() || e.actor_email().map(lc) == Some(lc(a))))
            && (self.actions.is_empty() || self.actions.iter().any(|a| a.matches(e.action())))
            && opt_eq(&self.resource_type, e.resource_type())
            && opt_eq(&self.resource_id, e.resource_id())
            && opt_eq(&self.workspace, e.workspace_id())
            && self.outcome.is_none_or(|o| o.as_str() == e.outcome())
            && self.q.as_ref().is_none_or(|q| search_text(e).contains(q.as_str()))
    }

    /// A digest of the filters as given, which a cursor is bound to. Defaulted times are
    /// left out: the cursor pins the values its first page used.
    #[must_use]
    pub fn digest(&self) -> String {
        let mut actors = self.actors.clone();
        actors.sort();
        let mut actions: Vec<String> = self
            .actions
            .iter()
            .map(|a| match a {
                ActionMatch::Exact(x) => x.clone(),
                ActionMatch::Category(c) => format!("{c}.*"),
            })
            .collect();
        actions.sort();
        let text = serde_json::json!([
            self.from_given.then(|| self.from.to_string()),
            self.to_given.then(|| self.to.to_string()),
            actors,
            actions,
            self.resource_type,
            self.resource_id,
            self.workspace,
            self.outcome.map(Outcome::as_str),
            self.q,
        ]);
        sha256_hex(&text.to_string())[..32].to_owned()
    }
}

fn opt_eq(want: &Option<String>, have: Option<&str>) -> bool {
    want.as_ref().is_none_or(|w| Some(w.as_str()) == have)
}

/// What the filters look at, so one definition serves stored events and archive rows.
pub trait Fields {
    /// Microseconds since the epoch.
    fn occurred_at(&self) -> i64;
    fn actor_id(&self) -> &str;
    fn actor_email(&self) -> Option<&str>;
    fn action(&self) -> &str;
    fn resource_type(&self) -> Option<&str>;
    fn resource_id(&self) -> Option<&str>;
    fn workspace_id(&self) -> Option<&str>;
    fn outcome(&self) -> &str;
    /// What `q` searches: action, description, actor name and email, resource id and name.
    fn searched(&self) -> [Option<&str>; 6];
}

/// The text the `q` filter searches, lowercased (also stored on each item at ingest).
#[must_use]
pub fn search_text<F: Fields>(e: &F) -> String {
    let parts: Vec<&str> = e.searched().into_iter().flatten().collect();
    parts.join("\n").to_lowercase()
}

impl Fields for Event {
    fn occurred_at(&self) -> i64 {
        self.occurred_at.micros()
    }
    fn actor_id(&self) -> &str {
        &self.actor.id
    }
    fn actor_email(&self) -> Option<&str> {
        self.actor.email.as_deref()
    }
    fn action(&self) -> &str {
        &self.action
    }
    fn resource_type(&self) -> Option<&str> {
        self.resource.as_ref().and_then(|r| r.kind.as_deref())
    }
    fn resource_id(&self) -> Option<&str> {
        self.resource.as_ref().and_then(|r| r.id.as_deref())
    }
    fn workspace_id(&self) -> Option<&str> {
        self.workspace.as_ref().and_then(|w| w.id.as_deref())
    }
    fn outcome(&self) -> &str {
        self.outcome.as_str()
    }
    fn searched(&self) -> [Option<&str>; 6] {
        let r = self.resource.as_ref();
        [
            Some(&self.action),
            self.description.as_deref(),
            self.actor.name.as_deref(),
            self.actor.email.as_deref(),
            r.and_then(|r| r.id.as_deref()),
            r.and_then(|r| r.name.as_deref()),
        ]
    }
}

impl Fields for Row<'_> {
    fn occurred_at(&self) -> i64 {
        self.occurred_at
    }
    fn actor_id(&self) -> &str {
        self.get(col::ACTOR_ID).unwrap_or_default()
    }
    fn actor_email(&self) -> Option<&str> {
        self.get(col::ACTOR_EMAIL)
    }
    fn action(&self) -> &str {
        self.get(col::ACTION).unwrap_or_default()
    }
    fn resource_type(&self) -> Option<&str> {
        self.get(col::RESOURCE_TYPE)
    }
    fn resource_id(&self) -> Option<&str> {
        self.get(col::RESOURCE_ID)
    }
    fn workspace_id(&self) -> Option<&str> {
        self.get(col::WORKSPACE_ID)
    }
    fn outcome(&self) -> &str {
        self.get(col::OUTCOME).unwrap_or_default()
    }
    fn searched(&self) -> [Option<&str>; 6] {
        [
            self.get(col::ACTION),
            self.get(col::DESCRIPTION),
            self.get(col::ACTOR_NAME),
            self.get(col::ACTOR_EMAIL),
            self.get(col::RESOURCE_ID),
            self.get(col::RESOURCE_NAME),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::arb_event;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn rows_and_events_match_the_same_filters(event in arb_event(), pick in 0usize..8, q_len in 1usize..4) {
            let stored = event.stamp(Timestamp::now());
            let e = &stored.event;
            let row = Row::from_stored(&stored);
            let mut f = parse_query("from=1970-01-01T00:00:00Z&to=9999-01-01T00:00:00Z", Extra::Count, now())
                .map(|p| p.filter)
                .unwrap_or_else(|v| panic!("{v:?}"));
            match pick {
                0 => f.actors = vec![e.actor.id.clone()],
                1 => f.actors = vec![e.actor.email.clone().unwrap_or_default().to_uppercase()],
                2 => f.actions = vec![ActionMatch::Category(e.category().to_owned())],
                3 => f.resource_id = Some("other".into()),
                4 => f.workspace = e.workspace.as_ref().and_then(|w| w.id.clone()),
                5 => f.q = Some(e.action.chars().take(q_len).collect()),
                6 => f.outcome = Some(Outcome::Failure),
                _ => f.to = e.occurred_at,
            }
            prop_assert_eq!(f.matches(e), f.matches(&row));
        }
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-20T12:00:00Z").unwrap_or(Timestamp::MIN)
    }

    fn fields(q: &str, extra: Extra) -> Vec<(String, Reason)> {
        parse_query(q, extra, now()).err().unwrap_or_default().into_iter().map(|v| (v.field, v.reason)).collect()
    }

    #[test]
    fn parses_every_filter() {
        let p = parse_query(
            "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00%2B01:00&actor=u1&actor=Ada%40x.com&action=api_key.*&action=a.b&resource_type=channel&resource_id=c1&workspace=w&outcome=failure&q=Hello&limit=50&order=asc",
            Extra::List,
            now(),
        );
        let Ok(p) = p else { panic!("{p:?}") };
        assert_eq!(p.filter.to.to_string(), "2026-11-01T23:00:00.000000Z");
        assert_eq!(p.filter.actions, vec![ActionMatch::Category("api_key".into()), ActionMatch::Exact("a.b".into())]);
        assert_eq!(p.filter.q.as_deref(), Some("hello"));
        assert_eq!((p.limit, p.order), (50, Order::Asc));
    }

    #[test]
    fn refuses_bad_values_with_the_parameter_named() {
        let cases: &[(&str, &str, Reason)] = &[
            ("from=yesterday", "from", Reason::InvalidFormat),
            ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from", Reason::InvalidValue),
            ("limit=0", "limit", Reason::InvalidValue),
            ("limit=101", "limit", Reason::InvalidValue),
            ("limit=ten", "limit", Reason::InvalidValue),
            ("order=up", "order", Reason::InvalidValue),
            ("tenant=other", "tenant", Reason::UnknownField),
            ("action=Bad", "action", Reason::InvalidFormat),
            ("action=a.b%27%20OR%201%3D1", "action", Reason::InvalidFormat),
            ("action=*", "action", Reason::InvalidFormat),
            ("outcome=maybe", "outcome", Reason::InvalidValue),
            ("limit=5&limit=6", "limit", Reason::InvalidValue),
            ("max=5", "max", Reason::UnknownField),
            // Schemathesis found this one: an export's filters are logged as an event.
            ("actor=a%00b", "actor", Reason::InvalidValue),
            ("workspace=a%00b", "workspace", Reason::InvalidValue),
        ];
        for (q, field, reason) in cases {
            assert!(
                fields(q, Extra::List).contains(&((*field).to_owned(), *reason)),
                "{q}: {:?}",
                fields(q, Extra::List)
            );
        }
        let long_q = format!("q={}", "x".repeat(257));
        assert_eq!(fields(&long_q, Extra::List), vec![("q".to_owned(), Reason::TooLong)]);
        assert_eq!(fields("max=100001", Extra::Count), vec![("max".to_owned(), Reason::InvalidValue)]);
        assert_eq!(fields("cursor=x", Extra::Count), vec![("cursor".to_owned(), Reason::UnknownField)]);
    }

    #[test]
    fn catalogs_take_one_q_limit_and_cursor() {
        let q = parse_catalog_query("q=Bob&limit=5&cursor=a.b");
        assert_eq!(q, Ok(CatalogQuery { q: Some("Bob".into()), limit: 5, cursor: Some("a.b".into()) }));
        assert_eq!(parse_catalog_query(""), Ok(CatalogQuery { q: None, limit: CATALOG_LIMIT, cursor: None }));
        for bad in
            ["x=1", "q=a&q=b", "q=", &format!("q={}", "x".repeat(257)), "limit=0", "limit=101", "limit=x", "cursor="]
        {
            assert!(parse_catalog_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn categories_match_whole_segments() {
        let c = ActionMatch::Category("api_key".into());
        assert!(c.matches("api_key.create"));
        assert!(!c.matches("api_keys.create"));
        assert!(!c.matches("api_key"));
    }

    #[test]
    fn the_digest_ignores_value_order_and_defaulted_times() {
        let a = parse_query("actor=x&actor=y", Extra::List, now()).map(|p| p.filter.digest());
        let b = parse_query("actor=y&actor=x", Extra::List, now().plus_seconds(60)).map(|p| p.filter.digest());
        assert_eq!(a, b);
        let c = parse_query("actor=y", Extra::List, now()).map(|p| p.filter.digest());
        assert_ne!(a, c);
    }
}
