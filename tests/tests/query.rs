//! The read API against DynamoDB Local: an oracle test of filters and paging, isolation,
//! catalogs and bad input.

mod common;

use audit::domain::event::Event;
use audit::domain::tenant::{TenantId, TenantSettings};
use audit::domain::timestamp::Timestamp;
use audit::usecases::counts::ActionCounts;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::HashMap;

const ACTORS: &[(&str, Option<&str>, &str)] = &[
    ("u-ada", Some("Ada@Example.com"), "Ada Lovelace"),
    ("u-bob", Some("bob@example.com"), "Bob Stone"),
    ("u-bob2", Some("BOB@example.com"), "Bob (second account)"),
    ("u-cy", None, "Cy"),
    ("key-1", None, "CI key"),
    ("u-dee", Some("dee@example.com"), "Dee"),
    ("svc#1", Some("svc@example.com"), "Service, \"one\""),
];
const ACTIONS: &[&str] = &[
    "auth.login",
    "auth.logout",
    "api_key.create",
    "api_key.delete",
    "channel.create",
    "channel.update",
    "member.invite",
];
const WORDS: &[&str] = &["alpha", "Bravo", "charlie", "ünïcode", "delta"];

/// A seeded, realistic spread of events for one tenant, as raw JSON.
fn events(rng: &mut StdRng, n: usize, now: Timestamp, prefix: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let (id, email, name) = ACTORS[rng.random_range(0..ACTORS.len())];
            let action = ACTIONS[rng.random_range(0..ACTIONS.len())];
            // Some events share a timestamp so that the id breaks the tie.
            let back = if i % 17 == 0 { 3_600 } else { rng.random_range(60..10 * 86_400) };
            let kind = ["channel", "user", "file"][rng.random_range(0..3)];
            let mut e = json!({
                "id": format!("{prefix}-{i:05}"),
                "occurred_at": now.plus_seconds(-back).to_string(),
                "action": action,
                "outcome": if rng.random_bool(0.2) { "failure" } else { "success" },
                "actor": {"type": "member", "id": id, "name": name},
                "resource": {"type": kind,
                              "id": format!("r-{}", rng.random_range(0..12)), "name": WORDS[rng.random_range(0..WORDS.len())]},
                "workspace": {"id": format!("w-{}", rng.random_range(0..3))},
                "description": format!("{name} did {action} {}", WORDS[rng.random_range(0..WORDS.len())]),
            });
            if let Some(mail) = email {
                e["actor"]["email"] = json!(mail);
            }
            e
        })
        .collect()
}

async fn seed(tenant: &TenantId, shards: u16, raw: &[Value], now: Timestamp) -> Vec<Event> {
    let store = store(None).await;
    set_settings_now(&store, tenant, TenantSettings::new(shards, None)).await;
    ingest_all(&store, tenant, raw).await;
    raw.iter()
        .map(|r| Event::validate(r.clone(), tenant, now).map(|a| a.event).unwrap_or_else(|e| panic!("{e:?}")))
        .collect()
}

fn random_query(rng: &mut StdRng, now: Timestamp) -> String {
    let mut q: Vec<(String, String)> = Vec::new();
    let from = now.plus_seconds(-rng.random_range(86_400..11 * 86_400));
    let to = if rng.random_bool(0.3) {
        from.plus_seconds(rng.random_range(3_600..4 * 86_400))
    } else {
        now.plus_seconds(60)
    };
    q.push(("from".into(), from.to_string()));
    q.push(("to".into(), to.to_string()));
    if rng.random_bool(0.35) {
        for _ in 0..rng.random_range(1..3) {
            let (id, email, _) = ACTORS[rng.random_range(0..ACTORS.len())];
            let v = match email {
                Some(m) if rng.random_bool(0.5) => {
                    if rng.random_bool(0.5) {
                        m.to_uppercase()
                    } else {
                        m.to_owned()
                    }
                }
                _ => id.to_owned(),
            };
            q.push(("actor".into(), v));
        }
    }
    if rng.random_bool(0.35) {
        for _ in 0..rng.random_range(1..3) {
            let a = ACTIONS[rng.random_range(0..ACTIONS.len())];
            let v = if rng.random_bool(0.4) { format!("{}.*", a.split('.').next().unwrap_or(a)) } else { a.to_owned() };
            q.push(("action".into(), v));
        }
    }
    if rng.random_bool(0.2) {
        q.push(("resource_id".into(), format!("r-{}", rng.random_range(0..12))));
    }
    if rng.random_bool(0.2) {
        q.push(("resource_type".into(), ["channel", "user", "file"][rng.random_range(0..3)].into()));
    }
    if rng.random_bool(0.2) {
        q.push(("workspace".into(), format!("w-{}", rng.random_range(0..3))));
    }
    if rng.random_bool(0.2) {
        q.push(("outcome".into(), if rng.random_bool(0.5) { "failure" } else { "success" }.into()));
    }
    if rng.random_bool(0.2) {
        q.push(("q".into(), WORDS[rng.random_range(0..WORDS.len())].to_uppercase()));
    }
    form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish()
}

/// Walks every page; returns the ids in order.
async fn walk(base: &str, token: &str, query: &str, limit: usize, asc: bool) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..2_000 {
        let mut q = format!("{query}&limit={limit}&order={}", if asc { "asc" } else { "desc" });
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = get(base, token, &format!("/v1/events?{q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
        let items = body["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= limit);
        ids.extend(items.iter().map(|i| i["id"].as_str().unwrap_or_default().to_owned()));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
    panic!("paging did not end for {query}");
}

#[tokio::test]
async fn every_filter_and_page_walk_agrees_with_an_in_memory_oracle() {
    // Given: a tenant on three write shards and one on one, with realistic events
    let now = Timestamp::now();
    let mut rng = StdRng::seed_from_u64(20_261_122);
    let (a, b) = (new_tenant(), new_tenant());
    let (events_a, events_b) = (events(&mut rng, 1_500, now, "a"), events(&mut rng, 400, now, "b"));
    seed(&a, 3, &events_a, now).await;
    seed(&b, 1, &events_b, now).await;
    let base = serve_query(store(None).await).await;

    // When / then: for many random filters, orders and page sizes
    for round in 0..40 {
        let (tenant, evs) = if round % 3 == 2 { (&b, &events_b) } else { (&a, &events_a) };
        let token = token(tenant, "audit:read");
        let query = random_query(&mut rng, now);
        let asc = rng.random_bool(0.5);
        let limit = if rng.random_bool(0.8) { rng.random_range(1..15) } else { rng.random_range(15..=100) };
        // What the contract says the filters return: the reference filter, not the
        // service's own parser.
        let order = if asc { "asc" } else { "desc" };
        let expected = audit::reference::ids(evs, &format!("{query}&order={order}"), &now.to_string());

        let got = walk(&base, &token, &query, limit, asc).await;
        assert_eq!(got, expected, "round {round}: {query} limit {limit} asc {asc}");
        let (status, count) = get(&base, &token, &format!("/v1/events/count?{query}&max=100000")).await;
        assert_eq!(
            (status, count["count"].as_u64(), count["exact"].as_bool()),
            (200, Some(expected.len() as u64), Some(true)),
            "{query}"
        );
    }
}

#[tokio::test]
async fn tenants_never_see_each_others_events_catalogs_counts_or_cursors() {
    let now = Timestamp::now();
    let mut rng = StdRng::seed_from_u64(7);
    let (a, b) = (new_tenant(), new_tenant());
    seed(&a, 1, &events(&mut rng, 60, now, "iso"), now).await;
    let base = serve_query(store(None).await).await;
    let (ta, tb) = (token(&a, "audit:read"), token(&b, "audit:read"));

    let (_, page) = get(&base, &ta, "/v1/events?limit=5").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5));
    let cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
    for path in ["/v1/events", "/v1/events?actor=u-ada", "/v1/events?action=auth.*", "/v1/actions", "/v1/actors"] {
        let (status, body) = get(&base, &tb, path).await;
        assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(0)), "{path}: {body}");
    }
    let (_, count) = get(&base, &tb, "/v1/events/count").await;
    assert_eq!(count["count"], 0);
    let (status, _) = get(&base, &tb, "/v1/events/iso-00001").await;
    assert_eq!(status, 404);
    let (status, body) = get(&base, &tb, &format!("/v1/events?limit=5&cursor={cursor}")).await;
    assert_eq!((status, body["error"]["details"][0]["reason"].as_str()), (400, Some("invalid_cursor")));
    let (status, _) = get(&base, &ta, &format!("/v1/events?limit=5&cursor={cursor}")).await;
    assert_eq!(status, 200);
    let (status, body) = get(&base, &ta, &format!("/v1/events?limit=5&actor=u-ada&cursor={cursor}")).await;
    assert_eq!((status, body["error"]["details"][0]["reason"].as_str()), (400, Some("invalid_cursor")));
}

#[tokio::test]
async fn catalogs_list_counted_actions_and_remember_actors_as_last_seen() {
    let now = Timestamp::now();
    let mut rng = StdRng::seed_from_u64(99);
    let tenant = new_tenant();
    let evs = seed(&tenant, 2, &events(&mut rng, 300, now, "cat"), now).await;
    // As the consumer of the table's stream counts them.
    let counts = ActionCounts::new(store(None).await);
    counts.add(evs.iter().map(|e| (&tenant, e.action.as_str()))).await.unwrap_or_else(|(_, e)| panic!("{e}"));
    let base = serve_query(store(None).await).await;
    let token = token(&tenant, "audit:read");

    let (_, actions) = get(&base, &token, "/v1/actions").await;
    let mut expected: HashMap<String, u64> = HashMap::new();
    for e in &evs {
        *expected.entry(e.action.clone()).or_default() += 1;
    }
    let got: HashMap<String, u64> = actions["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| (i["action"].as_str().unwrap_or_default().to_owned(), i["count"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(got, expected);
    let (_, filtered) = get(&base, &token, "/v1/actions?q=API_KEY").await;
    assert!(filtered["items"].as_array().is_some_and(
        |i| !i.is_empty() && i.iter().all(|x| x["action"].as_str().is_some_and(|a| a.starts_with("api_key.")))
    ));

    let (_, actors) = get(&base, &token, "/v1/actors?q=bo").await;
    let ids: Vec<&str> =
        actors["items"].as_array().map(|i| i.iter().filter_map(|x| x["id"].as_str()).collect()).unwrap_or_default();
    assert!(ids.contains(&"u-bob") && ids.contains(&"u-bob2") && ids.len() == 2, "{actors}");
    let latest = evs.iter().filter(|e| e.actor.id == "u-bob").map(|e| e.occurred_at).max().map(|t| t.to_string());
    let bob =
        actors["items"].as_array().and_then(|i| i.iter().find(|x| x["id"] == "u-bob")).cloned().unwrap_or_default();
    assert_eq!(bob["last_seen"].as_str().map(str::to_owned), latest);
    assert_eq!(bob["email"], "bob@example.com");
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_stable_code() {
    let tenant = new_tenant();
    let base = serve_query(store(None).await).await;
    let token = token(&tenant, "audit:read");
    let old = Timestamp::now().plus_seconds(-200 * 86_400).to_string();
    for (path, code, field) in [
        ("/v1/events?from=yesterday", "invalid_request", "from"),
        ("/v1/events?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "invalid_request", "from"),
        ("/v1/events?limit=0", "invalid_request", "limit"),
        ("/v1/events?limit=101", "invalid_request", "limit"),
        ("/v1/events?tenant=other", "invalid_request", "tenant"),
        ("/v1/events?order=sideways", "invalid_request", "order"),
        ("/v1/events?action=x%22%20OR%20%221%22%3D%221", "invalid_request", "action"),
        ("/v1/events?cursor=eyJ0IjoiYWNtZSJ9.AAAA", "invalid_request", "cursor"),
        ("/v1/events/count?max=0", "invalid_request", "max"),
        ("/v1/events/count?cursor=x", "invalid_request", "cursor"),
        ("/v1/actions?x=1", "invalid_request", "x"),
    ] {
        let (status, body) = get(&base, &token, path).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{path}: {body}");
        assert_eq!(body["error"]["details"][0]["field"].as_str(), Some(field), "{path}: {body}");
    }
    let (status, body) = get(&base, &token, &format!("/v1/events?q={}", "x".repeat(300))).await;
    assert_eq!((status, body["error"]["details"][0]["reason"].as_str()), (400, Some("too_long")));
    let (status, body) = get(&base, &token, &format!("/v1/events?from={old}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("range_archived")), "{body}");
    let (status, body) = get(&base, &token, &format!("/v1/events/count?from={old}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("range_archived")), "{body}");
    let (status, _) = get(&base, &token, "/v1/events/a%23b").await;
    assert_eq!(status, 400);
    // Expression syntax in values is data, never code: no error, no match.
    for q in ["%29%20OR%20attribute_exists(pk", "%3Af0", "%23pk"] {
        let (status, body) = get(&base, &token, &format!("/v1/events?q={q}&workspace={q}&actor={q}")).await;
        assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(0)), "{q}: {body}");
    }
    let (status, _) = get(&base, &common::token(&tenant, "audit:write"), "/v1/events").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn counts_stop_at_max_and_say_so() {
    let now = Timestamp::now();
    let mut rng = StdRng::seed_from_u64(3);
    let tenant = new_tenant();
    seed(&tenant, 1, &events(&mut rng, 120, now, "cnt"), now).await;
    let base = serve_query(store(None).await).await;
    let token = token(&tenant, "audit:read");
    let from = now.plus_seconds(-11 * 86_400).to_string();
    let (_, all) = get(&base, &token, &format!("/v1/events/count?from={from}")).await;
    assert_eq!((all["count"].as_u64(), all["exact"].as_bool()), (Some(120), Some(true)));
    let (_, capped) = get(&base, &token, &format!("/v1/events/count?from={from}&max=50")).await;
    assert_eq!((capped["count"].as_u64(), capped["exact"].as_bool()), (Some(50), Some(false)));
}

#[tokio::test]
async fn one_event_by_id_and_healthz() {
    let now = Timestamp::now();
    let mut rng = StdRng::seed_from_u64(5);
    let tenant = new_tenant();
    let evs = seed(&tenant, 1, &events(&mut rng, 3, now, "one"), now).await;
    let base = serve_query(store(None).await).await;
    let (status, body) = get(&base, &token(&tenant, "audit:read"), "/v1/events/one-00001").await;
    assert_eq!(status, 200);
    assert_eq!(body["action"].as_str(), Some(evs[1].action.as_str()));
    assert!(body["hash"].as_str().is_some_and(|h| h.len() == 64));
    let (status, body) = get(&base, &token(&tenant, "audit:read"), "/v1/events/missing").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let resp = reqwest::get(format!("{base}/healthz")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
}

/// Issue 14: an index that holds only keys costs one Query and one BatchGetItem a page
/// on one filter value; the time index, which holds whole events, one Query. Issue 10,
/// point 8: the catalogs page, in key order, to the end.
#[tokio::test]
async fn key_only_pages_take_one_query_and_one_fetch_and_catalogs_page_to_the_end() {
    let now = Timestamp::now();
    let mut rng = StdRng::seed_from_u64(14);
    let tenant = new_tenant();
    let evs = seed(&tenant, 1, &events(&mut rng, 300, now, "pg"), now).await;
    let base = serve_query(store(None).await).await;
    let token = token(&tenant, "audit:read");
    let from = now.plus_seconds(-11 * 86_400).to_string();
    // The actor path's first page also asks the email directory whether the value is an
    // email (an actor id and an email are one filter): one request more.
    for (query, most) in [("action=auth.login", 2), ("actor=u-ada", 3), ("resource_id=r-3", 2), ("", 1)] {
        let url = format!("{base}/v1/events?limit=10&from={from}&{query}");
        let resp = reqwest::Client::new().get(url).bearer_auth(&token).send().await.unwrap_or_else(|e| panic!("{e}"));
        let header = resp.headers().get("x-audit-requests").and_then(|v| v.to_str().ok()?.parse::<u32>().ok());
        let body: Value = resp.json().await.unwrap_or_default();
        assert!(header.is_some_and(|n| n <= most), "{query}: {header:?} requests");
        assert_eq!(body["items"].as_array().map(Vec::len), Some(10), "{query}: {body}");
        assert_eq!(body["budget_exhausted"], false, "{query}");
    }

    for (catalog, key, limit) in [("actions", "action", 2), ("actors", "id", 3)] {
        let mut got: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let q = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
            let (status, body) = get(&base, &token, &format!("/v1/{catalog}?limit={limit}{q}")).await;
            assert_eq!(status, 200, "{body}");
            let items = body["items"].as_array().cloned().unwrap_or_default();
            assert!(items.len() <= limit && body["budget_exhausted"] == false, "{body}");
            got.extend(items.iter().filter_map(|i| i[key].as_str().map(str::to_owned)));
            cursor = body["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        assert!(cursor.is_none(), "{catalog} did not end");
        let mut want: Vec<String> =
            evs.iter().map(|e| if key == "id" { e.actor.id.clone() } else { e.action.clone() }).collect();
        want.sort();
        want.dedup();
        assert_eq!(got, want, "{catalog}");
    }
    // A cursor of one catalog is refused by the other.
    let (_, first) = get(&base, &token, "/v1/actions?limit=1").await;
    let c = first["next_cursor"].as_str().unwrap_or_default();
    let (status, body) = get(&base, &token, &format!("/v1/actors?cursor={c}")).await;
    assert_eq!((status, body["error"]["details"][0]["reason"].as_str()), (400, Some("invalid_cursor")), "{body}");
}
