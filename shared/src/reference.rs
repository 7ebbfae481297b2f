//! The read filters of contract section 2, written a second time from the contract's
//! words alone, for the tests: what `GET /v1/events`, its count and an export must return
//! is decided here without the service's parser, its `Filter` or its time type, so a
//! filter that means the wrong thing fails a test instead of agreeing with itself.
//!
//! Events are the JSON the contract describes (section 1); queries are the query
//! strings of `GET /v1/events`. Readings of the contract's words, where they leave a
//! choice: "the last 7 days" starts 7 days before now and has no end (no stored event
//! lies more than the 5 minutes section 1 allows ahead of its receipt); a `q` keyword is
//! a case-insensitive substring of one of the fields it searches.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn time(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("not RFC 3339: {text}: {e}"))
}

fn text<'a>(event: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(event, |v, k| v.get(k)).and_then(Value::as_str)
}

/// Whether `event` passes every filter of `query` (unknown parameters such as `limit`,
/// `cursor` or `format` are not filters), at time `now` (RFC 3339).
#[must_use]
pub fn matches(event: &Value, query: &str, now: &str) -> bool {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let all = |name: &str| -> Vec<&str> { pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect() };
    let one = |name: &str| all(name).first().copied();
    let lower = str::to_lowercase;
    // from (inclusive), to (exclusive); default the last 7 days.
    let at = time(text(event, &["occurred_at"]).unwrap_or_default());
    let from = one("from").map_or_else(|| time(now) - time::Duration::days(7), time);
    if at < from || one("to").is_some_and(|to| at >= time(to)) {
        return false;
    }
    // actor: the actor id exactly, or the actor email case-insensitively; repeated = OR.
    let actor_id = text(event, &["actor", "id"]);
    let email = text(event, &["actor", "email"]).map(lower);
    let actors = all("actor");
    if !actors.is_empty() && !actors.iter().any(|a| Some(*a) == actor_id || Some(lower(a)) == email) {
        return false;
    }
    // action: exact, or a category (the part before the first dot) with `.*`; OR.
    let action = text(event, &["action"]).unwrap_or_default();
    let category = action.split('.').next().unwrap_or_default();
    let actions = all("action");
    if !actions.is_empty() && !actions.iter().any(|a| a.strip_suffix(".*").map_or(*a == action, |c| c == category)) {
        return false;
    }
    // resource_type, resource_id, workspace (its id), outcome (`success` by default): exact.
    let outcome = text(event, &["outcome"]).unwrap_or("success");
    for (name, value) in [
        ("resource_type", text(event, &["resource", "type"])),
        ("resource_id", text(event, &["resource", "id"])),
        ("workspace", text(event, &["workspace", "id"])),
        ("outcome", Some(outcome)),
    ] {
        if one(name).is_some_and(|wanted| Some(wanted) != value) {
            return false;
        }
    }
    // q: a case-insensitive keyword over description, action, actor name and email,
    // resource id and name.
    if let Some(q) = one("q") {
        let q = lower(q);
        let searched = [
            &["description"][..],
            &["action"],
            &["actor", "name"],
            &["actor", "email"],
            &["resource", "id"],
            &["resource", "name"],
        ];
        if !searched.iter().any(|path| text(event, path).is_some_and(|t| lower(t).contains(&q))) {
            return false;
        }
    }
    true
}

/// The events `query` returns, all pages together, in its `order` (`desc` by default):
/// by `occurred_at`, then by `id`.
#[must_use]
pub fn select<'a>(events: &'a [Value], query: &str, now: &str) -> Vec<&'a Value> {
    let mut hits: Vec<&Value> = events.iter().filter(|e| matches(e, query, now)).collect();
    let key = |e: &Value| (time(text(e, &["occurred_at"]).unwrap_or_default()), text(e, &["id"]).map(str::to_owned));
    hits.sort_by_key(|e| key(e));
    let asc = form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "order" && v == "asc");
    if !asc {
        hits.reverse();
    }
    hits
}

/// The ids of [`select`].
#[must_use]
pub fn ids(events: &[Value], query: &str, now: &str) -> Vec<String> {
    select(events, query, now).into_iter().filter_map(|e| text(e, &["id"]).map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2026-11-05T12:00:00Z";

    fn event() -> Value {
        json!({"id": "e1", "occurred_at": "2026-11-05T10:00:00.000001Z", "action": "api_key.create",
               "actor": {"type": "member", "id": "u-1", "name": "Zoë Ünal", "email": "Zoe@Example.com"},
               "resource": {"type": "key", "id": "k-9", "name": "Deploy key"}, "workspace": {"id": "w-1"},
               "description": "created a key"})
    }

    #[test]
    fn each_filter_reads_as_the_contract_says() {
        let e = event();
        for (query, expected) in [
            ("", true),
            ("from=2026-11-05T10:00:00.000001Z", true),
            ("to=2026-11-05T10:00:00.000001Z", false),
            ("from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z", false),
            ("actor=u-1", true),
            ("actor=U-1", false),
            ("actor=ZOE%40example.COM", true),
            ("actor=nobody&actor=zoe%40example.com", true),
            ("action=api_key.*", true),
            ("action=api.*", false),
            ("action=api_key.create", true),
            ("action=api_key", false),
            ("outcome=success", true),
            ("outcome=failure", false),
            ("workspace=w-1&resource_type=key&resource_id=k-9", true),
            ("resource_id=k-1", false),
            ("q=DEPLOY", true),
            ("q=%C3%BCnal", true),
            ("q=zoe%40", true),
            ("q=k-9", true),
            ("q=key.cr", true),
            ("q=member", false),
            ("limit=1&order=asc", true),
        ] {
            assert_eq!(matches(&e, query, NOW), expected, "{query}");
        }
        let old = json!({"id": "e0", "occurred_at": "2026-10-29T11:59:59Z", "action": "a.b", "actor": {"id": "u"}});
        assert!(!matches(&old, "", NOW), "older than the last 7 days");
    }

    #[test]
    fn results_come_newest_first_unless_asked_and_ties_go_by_id() {
        let mut a = event();
        a["id"] = json!("a");
        let mut b = event();
        b["id"] = json!("b");
        let mut c = event();
        c["id"] = json!("c");
        c["occurred_at"] = json!("2026-11-05T09:00:00+00:00");
        let events = [b, c, a];
        assert_eq!(ids(&events, "", NOW), ["b", "a", "c"]);
        assert_eq!(ids(&events, "order=asc", NOW), ["c", "a", "b"]);
    }
}
