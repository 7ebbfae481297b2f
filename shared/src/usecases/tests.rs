//! Every use case on the in-memory adapters: ingest results, paging and cursors, counts
//! and catalogs here; archive steps, crash points, tombstones and verify in [`archive`];
//! export merges, requests and dead letters in [`export`]; per-tenant export limits in
//! [`export_limits`]. They add to the black-box tests against the local AWS servers in
//! `tests/`, and replace none.

mod archive;
mod export;
mod export_limits;
mod export_parts;

use crate::domain::cursor::BadCursor;
use crate::domain::cursor::CursorKey;
use crate::domain::error::Code;
use crate::domain::event::Event;
use crate::domain::filter::{CatalogQuery, Extra, Order, parse_query};
use crate::domain::ingest::{ItemResult, Status};
use crate::domain::tenant::{TenantId, TenantSettings};
use crate::domain::timestamp::Timestamp;
use crate::memory::{Fault, MemoryBlobs, MemoryQueue, MemorySigner, MemoryStore};
use crate::ports::TenantRegistry;
use crate::usecases::consume::{Consumer, ERROR_ATTRIBUTE};
use crate::usecases::counts::ActionCounts;
use crate::usecases::ingest::Ingest;
use crate::usecases::query::{Count, Query, ReadError};
use serde_json::{Value, json};
use std::sync::Arc;

const DAY: i64 = 86_400;

pub(super) fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn now() -> Timestamp {
    Timestamp::now()
}

/// The files an export job wrote, in the order its manifest lists them.
pub(super) async fn export_files(store: &MemoryStore, files: &MemoryBlobs, t: &TenantId, id: &str) -> Vec<Vec<u8>> {
    let mut parts = crate::ports::ExportJobs::parts(store, t, id).await.unwrap_or_else(|e| panic!("{e}"));
    parts.sort_by_key(|p| p.index);
    parts.iter().flat_map(|p| &p.files).map(|f| files.bytes(&f.key).unwrap_or_default()).collect()
}

/// An event `back` seconds ago.
fn event(id: &str, back: i64, action: &str, actor: &str) -> Value {
    json!({
        "id": id,
        "occurred_at": now().plus_seconds(-back).to_string(),
        "action": action,
        "actor": {"type": "member", "id": actor, "name": format!("Name {actor}"), "email": format!("{actor}@Example.com")},
        "resource": {"type": "channel", "id": format!("r-{}", id.len() % 3), "name": "=SUM(A1)"},
        "description": format!("{actor} did {action}, \"quoted\""),
        "metadata": {"n": 1.5},
    })
}

fn ingest(store: &Arc<MemoryStore>) -> Ingest {
    Ingest::on(store)
}

fn query(store: &Arc<MemoryStore>) -> Query {
    Query::on(store, &Arc::new(MemoryBlobs::default()), CursorKey::derive("test"), 90)
}

fn statuses(results: &[ItemResult]) -> Vec<Status> {
    results.iter().map(|r| r.status).collect()
}

async fn load(store: &Arc<MemoryStore>, t: &TenantId, events: &[Value]) {
    for chunk in events.chunks(500) {
        let results = ingest(store).ingest(t, chunk.to_vec()).await;
        assert!(results.iter().all(|r| r.status == Status::Created), "{results:?}");
    }
}

async fn set_shards(store: &Arc<MemoryStore>, t: &TenantId, shards: u16, hot_days: Option<u32>) {
    store.configure(t, TenantSettings::new(shards, hot_days));
}

// ---------------------------------------------------------------- ingest

#[tokio::test]
async fn ingest_reports_created_duplicate_conflict_and_rejected_per_event() {
    let store = Arc::new(MemoryStore::default());
    let t = tenant("acme");
    let batch = vec![event("e1", 60, "channel.create", "u1"), json!({"action": "Bad"}), event("e2", 60, "a.b", "u2")];
    let first = ingest(&store).ingest(&t, batch.clone()).await;
    assert_eq!(statuses(&first), vec![Status::Created, Status::Rejected, Status::Created]);
    assert_eq!(first[1].error.as_ref().map(|e| e.code), Some(Code::InvalidRequest));
    assert!(first[1].error.as_ref().is_some_and(|e| e.message.starts_with("the event is invalid: ")));
    let again = ingest(&store).ingest(&t, batch).await;
    assert_eq!(statuses(&again), vec![Status::Duplicate, Status::Rejected, Status::Duplicate]);
    let mut changed = event("e1", 60, "channel.create", "u1");
    changed["description"] = json!("something else");
    let conflict = ingest(&store).ingest(&t, vec![changed]).await;
    assert_eq!(conflict[0].error.as_ref().map(|e| e.code), Some(Code::Conflict));
    assert_eq!(store.events(&t).len(), 2);
    assert!(store.events(&tenant("other")).is_empty());
    assert_eq!(TenantRegistry::list(&*store).await.ok(), Some(vec![t]));
}

#[tokio::test]
async fn a_store_that_is_busy_gives_transient_rejections_and_a_broken_one_internal_ones() {
    let store = Arc::new(MemoryStore::default());
    let t = tenant("acme");
    store.faults.add(Fault::after("put", 1).on("busy").unavailable());
    let results = ingest(&store)
        .ingest(&t, vec![event("busy-1", 1, "a.b", "u"), event("busy-2", 1, "a.b", "u"), event("ok", 1, "a.b", "u")])
        .await;
    let transient: Vec<bool> = results.iter().map(ItemResult::transient).collect();
    assert_eq!(transient.iter().filter(|t| **t).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.stored()).count(), 2);
    let throttled = results.iter().find(|r| r.transient()).and_then(|r| r.error.clone());
    assert_eq!(throttled.map(|e| (e.code, e.message)), Some((Code::Throttled, "storage is busy; retry".into())));

    store.faults.clear();
    store.faults.add(Fault::after("settings", 0).times(1));
    let results = ingest(&store).ingest(&t, vec![event("later", 1, "a.b", "u")]).await;
    assert_eq!(results[0].error.as_ref().map(|e| e.code), Some(Code::Internal));
    // An internal error may pass too: the queue retries it rather than dead-lettering.
    assert!(results[0].transient());
}

#[tokio::test]
async fn a_retry_without_a_time_is_a_duplicate() {
    let store = Arc::new(MemoryStore::default());
    let t = tenant("acme");
    let raw = json!({"id": "no-time", "action": "auth.login", "actor": {"type": "member", "id": "u"}});
    let first = ingest(&store).ingest(&t, vec![raw.clone()]).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = ingest(&store).ingest(&t, vec![raw]).await;
    assert_eq!((statuses(&first), statuses(&second)), (vec![Status::Created], vec![Status::Duplicate]));
}

#[tokio::test]
async fn the_queue_consumer_stores_dead_letters_and_retries() {
    let store = Arc::new(MemoryStore::default());
    let dead = Arc::new(MemoryQueue::default());
    let consumer = Consumer { ingest: ingest(&store), dead_letters: dead.clone() };
    let t = tenant("acme");
    let mut good = event("q-1", 1, "a.b", "u");
    good["tenant_id"] = json!("acme");
    assert!(consumer.consume(Some("m1"), &good.to_string()).await.done);
    assert_eq!(store.events(&t).len(), 1);
    // A batch with a bad event: the good one stored, the bad one dead-lettered alone.
    let mixed = json!({"tenant_id": "acme", "events": [event("q-2", 1, "a.b", "u"), {"action": "A"}]});
    assert!(consumer.consume(Some("m2"), &mixed.to_string()).await.done);
    assert!(consumer.consume(Some("m3"), "not json").await.done);
    let letters = dead.messages();
    assert_eq!(letters.len(), 2);
    let body: Value = serde_json::from_str(&letters[0].body).unwrap_or_default();
    assert_eq!(body, json!({"tenant_id": "acme", "events": [{"action": "A"}]}));
    let reason = letters[0].attributes.iter().find(|(k, _)| k == ERROR_ATTRIBUTE).map(|(_, v)| v.clone());
    let reason: Value = serde_json::from_str(&reason.unwrap_or_default()).unwrap_or_default();
    assert_eq!((reason[0]["index"].as_u64(), reason[0]["error"]["code"].as_str()), (Some(1), Some("invalid_request")));
    assert_eq!(letters[1].body, "not json");
    // Storage busy: back to the queue, not the dead-letter queue.
    store.faults.add(Fault::after("put", 0).unavailable().times(1));
    let again = json!({"tenant_id": "acme", "events": [event("q-3", 1, "a.b", "u")]}).to_string();
    assert!(!consumer.consume(Some("m4"), &again).await.done);
    assert_eq!(dead.messages().len(), 2);
    assert!(consumer.consume(Some("m4"), &again).await.done);
    // The dead-letter queue unavailable: back to the queue as well.
    dead.faults.add(Fault::after("send", 0));
    assert!(!consumer.consume(Some("m5"), "[]").await.done);
    assert_eq!(store.events(&t).len(), 3);
}

#[tokio::test]
async fn catalogs_list_counted_actions_and_keep_each_actors_latest_sighting() {
    let store = Arc::new(MemoryStore::default());
    let t = tenant("acme");
    set_shards(&store, &t, 3, None).await;
    let mut events: Vec<Value> = (0..30)
        .map(|i| {
            event(
                &format!("c{i}"),
                100 + i,
                ["api_key.create", "auth.login"][usize::try_from(i % 2).unwrap_or(0)],
                &format!("u{}", i % 4),
            )
        })
        .collect();
    let mut renamed = event("c-new", 10, "auth.login", "u1");
    renamed["actor"]["name"] = json!("Bobby");
    events.push(renamed);
    for chunk in events.chunks(7) {
        load(&store, &t, chunk).await;
    }
    // As the table's stream's consumer counts them.
    let stored = store.events(&t);
    let counter = ActionCounts::new(store.clone());
    counter.add(stored.iter().map(|e| (&t, e.event.action.as_str()))).await.unwrap_or_else(|(_, e)| panic!("{e}"));
    let q = query(&store);
    let search = |q: Option<&str>| CatalogQuery { q: q.map(str::to_owned), limit: 100, cursor: None };
    let actions = q.actions(&t, &search(None)).await.unwrap_or_else(|e| panic!("{e}")).items;
    let counts: Vec<(String, u64)> = actions.into_iter().map(|a| (a.action, a.count)).collect();
    assert_eq!(counts, vec![("api_key.create".to_owned(), 15), ("auth.login".to_owned(), 16)]);
    let keys = q.actions(&t, &search(Some("KEY"))).await.unwrap_or_else(|e| panic!("{e}")).items;
    assert_eq!(keys.len(), 1);
    let actors = q.actors(&t, &search(Some("bob"))).await.unwrap_or_else(|e| panic!("{e}")).items;
    assert_eq!(
        actors.iter().map(|a| (a.id.as_str(), a.name.as_deref())).collect::<Vec<_>>(),
        vec![("u1", Some("Bobby"))]
    );
    let all = q.actors(&t, &search(None)).await.unwrap_or_else(|e| panic!("{e}")).items;
    assert_eq!(all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), vec!["u0", "u1", "u2", "u3"], "in id order");
}

// ---------------------------------------------------------------- query

/// What the contract says `q` returns from `events` in `order`, decided by the reference
/// filter (crate::reference), never by the service's own parser and `Filter`.
pub(super) fn oracle(events: &[Event], q: &str, order: Order) -> Vec<String> {
    let events: Vec<Value> = events.iter().map(Event::to_json).collect();
    let order = if order == Order::Asc { "asc" } else { "desc" };
    crate::reference::ids(&events, &format!("{q}&order={order}"), &now().to_string())
}

async fn walk(q: &Query, t: &TenantId, query: &str, limit: usize, order: Order) -> Result<Vec<String>, ReadError> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let order_text = if order == Order::Asc { "asc" } else { "desc" };
    for _ in 0..500 {
        let mut text = format!("{query}&limit={limit}&order={order_text}");
        if let Some(c) = &cursor {
            text.push_str(&format!("&cursor={c}"));
        }
        let parsed = parse_query(&text, Extra::List, now()).unwrap_or_else(|v| panic!("{v:?}"));
        let page = q.list(t, &parsed, now()).await?;
        assert!(page.items.len() <= limit);
        ids.extend(page.items.iter().map(|e| e.event.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(ids),
        }
    }
    panic!("paging did not end for {query}");
}

async fn seeded(shards: u16) -> (Arc<MemoryStore>, TenantId, Vec<Event>) {
    let store = Arc::new(MemoryStore::default());
    let t = tenant("acme");
    set_shards(&store, &t, shards, None).await;
    let actions = ["auth.login", "api_key.create", "api_key.delete", "channel.create"];
    let raw: Vec<Value> = (0..240)
        .map(|i: usize| {
            // Some share a time, so the id breaks the tie.
            let back = if i.is_multiple_of(11) { 3_600 } else { i64::try_from(i * 977 % 500_000).unwrap_or(0) + 60 };
            let mut e = event(&format!("ev-{i:03}"), back, actions[i % 4], &format!("u{}", i % 5));
            if i.is_multiple_of(7) {
                e["outcome"] = json!("failure");
            }
            e
        })
        .collect();
    load(&store, &t, &raw).await;
    let events = store.events(&t).into_iter().map(|s| s.event).collect();
    (store, t, events)
}

#[tokio::test]
async fn pages_walk_every_filter_in_order_across_shards() {
    let (store, t, events) = seeded(3).await;
    let q = query(&store);
    for filter in [
        "",
        "action=api_key.*",
        "actor=u1&actor=U3%40EXAMPLE.COM",
        "outcome=failure",
        "q=U2",
        "resource_id=r-1&action=auth.login",
        "workspace=none",
    ] {
        for (limit, order) in [(1, Order::Asc), (7, Order::Desc), (100, Order::Asc), (13, Order::Desc)] {
            let got = walk(&q, &t, filter, limit, order).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got, oracle(&events, filter, order), "{filter} limit {limit} {order:?}");
        }
    }
}

#[tokio::test]
async fn a_cursor_is_refused_when_tampered_replayed_or_reused_with_other_filters_or_order() {
    let (store, t, _) = seeded(2).await;
    let q = query(&store);
    let parsed = parse_query("limit=5", Extra::List, now()).unwrap_or_else(|v| panic!("{v:?}"));
    let page = q.list(&t, &parsed, now()).await.unwrap_or_else(|e| panic!("{e}"));
    let cursor = page.next_cursor.unwrap_or_else(|| panic!("no cursor"));
    let with = |extra: &str, c: &str| parse_query(&format!("{extra}cursor={c}"), Extra::List, now());
    let (payload, tag) = cursor.split_once('.').unwrap_or_default();
    let mut flipped = payload.to_owned().into_bytes();
    flipped[3] ^= 1;
    let tampered = format!("{}.{tag}", String::from_utf8_lossy(&flipped));
    for (extra, c, who) in [
        ("", tampered.as_str(), t.clone()),
        ("", cursor.as_str(), tenant("other")),
        ("actor=u1&", cursor.as_str(), t.clone()),
        ("order=asc&", cursor.as_str(), t.clone()),
    ] {
        let parsed = with(extra, c).unwrap_or_else(|v| panic!("{v:?}"));
        let got = q.list(&who, &parsed, now()).await;
        assert!(matches!(got, Err(ReadError::Cursor(BadCursor))), "{extra} {who}: {got:?}");
        let body = got.err().map(|e| e.body());
        assert_eq!(
            body.map(|b| (b.code, b.details[0]["reason"].clone())),
            Some((Code::InvalidRequest, json!("invalid_cursor")))
        );
    }
    let ok = q.list(&t, &with("", &cursor).unwrap_or_else(|v| panic!("{v:?}")), now()).await;
    assert_eq!(ok.map(|p| p.items.len()).ok(), Some(10));
}

#[tokio::test]
async fn counts_stop_at_max_and_ranges_past_the_window_are_refused() {
    let (store, t, events) = seeded(2).await;
    let q = query(&store);
    let all = parse_query("max=100000", Extra::Count, now()).unwrap_or_else(|v| panic!("{v:?}"));
    let exact = q.count(&t, &all.filter, all.max, now()).await.unwrap_or_else(|e| panic!("{e}"));
    let expected = oracle(&events, "", Order::Asc).len() as u64;
    assert_eq!(exact, Count { count: expected, exact: true, budget_exhausted: false });
    let capped = q.count(&t, &all.filter, 50, now()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(capped, Count { count: 50, exact: false, budget_exhausted: false });
    for filter in ["outcome=failure", "q=u2"] {
        let parsed = parse_query(filter, Extra::Count, now()).unwrap_or_else(|v| panic!("{v:?}"));
        let got = q.count(&t, &parsed.filter, 10_000, now()).await.unwrap_or_else(|e| panic!("{e}"));
        let want = oracle(&events, filter, Order::Asc).len() as u64;
        assert_eq!(got, Count { count: want, exact: true, budget_exhausted: false }, "{filter}");
    }
    let old = parse_query(&format!("from={}", now().plus_seconds(-200 * DAY)), Extra::Count, now());
    let old = old.unwrap_or_else(|v| panic!("{v:?}"));
    let refused = q.count(&t, &old.filter, 10, now()).await;
    assert_eq!(refused.err().map(|e| e.body().code), Some(Code::RangeArchived));
    let one = q.get(&t, "ev-007").await.ok().flatten();
    assert_eq!(one.map(|f| (f.event.event.outcome.as_str(), f.archived)), Some(("failure", false)));
    assert!(q.get(&tenant("other"), "ev-007").await.ok().flatten().is_none());
}
