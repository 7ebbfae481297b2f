//! Read budgets, catalog pages, catalog writes and tenant checks on the in-memory
//! adapters. The black-box twins of the budget and tenant tests run against DynamoDB
//! Local in `tests/tests/query.rs`.

use crate::domain::budget::{Budgets, Limits};
use crate::domain::catalog::ActorEntry;
use crate::domain::cursor::{BadCursor, CursorKey};
use crate::domain::error::Code;
use crate::domain::event::{Event, StoredEvent};
use crate::domain::filter::{CatalogQuery, Extra, Order, parse_query};
use crate::domain::ingest::Status;
use crate::domain::tenant::{TenantId, TenantSettings};
use crate::memory::{Fault, MemoryBlobs, MemoryQueue, MemorySigner, MemoryStore};
use crate::usecases::counts::ActionCounts;
use crate::usecases::export::Exporter;
use crate::usecases::export::requests::Exports;
use crate::usecases::ingest::Ingest;
use crate::usecases::query::{CatalogPage, Count, Page, Query, ReadError};
use crate::usecases::tests::{now, oracle, tenant};
use serde_json::{Value, json};
use std::sync::Arc;

fn event(i: usize, actor: &str) -> Value {
    let back = i64::try_from(i * 2_311 % 6_000_000).unwrap_or(0) + 60;
    let action = ["auth.login", "api_key.create", "channel.create"][i % 3];
    json!({
        "id": format!("e-{i:05}"),
        "occurred_at": now().plus_seconds(-back).to_string(),
        "action": action,
        "actor": {"type": "member", "id": actor, "name": format!("Name {actor}"), "email": format!("{actor}@x.com")},
        "resource": {"type": "channel", "id": format!("r-{}", i % 7)},
        "description": if i.is_multiple_of(97) { "the needle" } else { "hay" },
    })
}

async fn seeded(n: usize, shards: u16) -> (Arc<MemoryStore>, TenantId, Vec<Event>) {
    let store = Arc::new(MemoryStore::default());
    let t = tenant("acme");
    store.configure(&t, TenantSettings::new(shards, None));
    let raw: Vec<Value> = (0..n).map(|i| event(i, &format!("u{}", i % 5))).collect();
    for chunk in raw.chunks(500) {
        let results = Ingest::on(&store).ingest(&t, chunk.to_vec()).await;
        assert!(results.iter().all(|r| r.status == Status::Created), "{results:?}");
    }
    let events = store.events(&t).into_iter().map(|s| s.event).collect();
    (store, t, events)
}

fn query(store: &Arc<MemoryStore>, budgets: Budgets) -> Query {
    let mut q = Query::on(store, &Arc::new(MemoryBlobs::default()), CursorKey::derive("test"), 90);
    q.budgets = budgets;
    q
}

async fn page(q: &Query, t: &TenantId, query: &str, cursor: Option<&str>) -> Result<Page, ReadError> {
    let text = match cursor {
        Some(c) => format!("{query}&cursor={c}"),
        None => query.to_owned(),
    };
    let parsed = parse_query(&text, Extra::List, now()).unwrap_or_else(|v| panic!("{v:?}"));
    q.list(t, &parsed, now()).await
}

/// Every page of `query`: the ids in order, and the pages their budget ended.
async fn walk(q: &Query, t: &TenantId, query: &str) -> (Vec<String>, Vec<Page>) {
    let mut ids = Vec::new();
    let mut stopped = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5_000 {
        let p = page(q, t, query, cursor.as_deref()).await.unwrap_or_else(|e| panic!("{query}: {e}"));
        ids.extend(p.items.iter().map(|e| e.event.id.clone()));
        cursor.clone_from(&p.next_cursor);
        let more = p.next_cursor.is_some();
        if p.budget_exhausted {
            stopped.push(p);
        }
        if !more {
            return (ids, stopped);
        }
    }
    panic!("paging did not end for {query}");
}

const SMALL: Limits = Limits { requests: 4, items: 120 };

#[tokio::test]
async fn a_q_with_no_hits_stops_at_its_budget_and_its_cursor_goes_on_to_the_end() {
    let (store, t, _) = seeded(3_000, 1).await;
    let budgets = Budgets { list: SMALL, ..Budgets::default() };
    let q = query(&store, budgets);
    let range = format!("from={}", now().plus_seconds(-80 * 86_400));
    let first = page(&q, &t, &format!("{range}&q=no-such-text"), None).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(first.items.is_empty());
    assert!(first.budget_exhausted, "the budget ended the page");
    assert!(first.next_cursor.is_some(), "a cursor to go on");
    assert!(first.stats.items_read <= SMALL.items, "{:?}", first.stats);
    assert!(first.stats.requests <= SMALL.requests, "{:?}", first.stats);
    let (ids, stopped) = walk(&q, &t, &format!("{range}&q=no-such-text")).await;
    assert!(ids.is_empty());
    assert!(stopped.len() > 10, "a long range takes many bounded pages");
    // Without a budget problem a page says so.
    let plain = page(&q, &t, "limit=5", None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((plain.items.len(), plain.budget_exhausted), (5, false));
}

#[tokio::test]
async fn pages_cut_short_by_any_budget_still_walk_every_filter_in_order() {
    let (store, t, events) = seeded(600, 3).await;
    let size = serde_json::to_vec(&store.events(&t)[0].to_json()).map_or(0, |v| v.len());
    let budgets = Budgets { list: SMALL, page_bytes: size * 3 + size / 2, ..Budgets::default() };
    let q = query(&store, budgets);
    let range = format!("from={}", now().plus_seconds(-80 * 86_400));
    for filter in ["", "q=needle", "action=api_key.*&q=needle", "actor=u1&actor=U3%40X.COM", "outcome=failure"] {
        for (limit, order) in [(10, "desc"), (7, "asc")] {
            let text = format!("{range}&{filter}&limit={limit}&order={order}");
            let (ids, stopped) = walk(&q, &t, &text).await;
            let order = if order == "asc" { Order::Asc } else { Order::Desc };
            assert_eq!(ids, oracle(&events, &format!("{range}&{filter}"), order), "{text}");
            assert!(stopped.iter().all(|p| p.items.len() <= 3 && p.next_cursor.is_some()), "{text}");
        }
    }
    let (_, stopped) = walk(&q, &t, &format!("{range}&limit=10")).await;
    assert!(stopped.iter().any(|p| p.items.len() == 3), "the byte budget stops a page after 3 events");
}

#[tokio::test]
async fn counts_stop_at_their_budget_and_say_so() {
    let (store, t, events) = seeded(600, 2).await;
    let range = format!("from={}", now().plus_seconds(-80 * 86_400));
    for filter in ["", "q=needle"] {
        let parsed = parse_query(&format!("{range}&{filter}"), Extra::Count, now()).unwrap_or_else(|v| panic!("{v:?}"));
        let want = oracle(&events, &format!("{range}&{filter}"), Order::Asc).len() as u64;
        let roomy = query(&store, Budgets::default());
        let full = roomy.count(&t, &parsed.filter, 100_000, now()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(full, Count { count: want, exact: true, budget_exhausted: false }, "{filter}");
        let tight = query(&store, Budgets { count: Limits { requests: 3, items: 150 }, ..Budgets::default() });
        let cut = tight.count(&t, &parsed.filter, 100_000, now()).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(!cut.exact && cut.budget_exhausted && cut.count < want, "{filter}: {cut:?}");
    }
}

async fn catalog_walk<T: Clone>(
    mut next: impl AsyncFnMut(Option<String>) -> Result<CatalogPage<T>, ReadError>,
) -> (Vec<T>, usize) {
    let mut all = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let p = next(cursor).await.unwrap_or_else(|e| panic!("{e}"));
        pages += 1;
        all.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return (all, pages),
        }
        assert!(pages < 1_000, "catalog paging did not end");
    }
}

#[tokio::test]
async fn catalogs_page_in_key_order_within_their_budget() {
    let store = Arc::new(MemoryStore::default());
    let t = tenant("acme");
    store.configure(&t, TenantSettings::new(3, None));
    let raw: Vec<Value> = (0..250)
        .map(|i| {
            let mut e = event(i, &format!("actor-{i:03}"));
            e["action"] = json!(format!("cat{}.act{i:03}", i % 4));
            e
        })
        .collect();
    let ingest = Ingest::on(&store);
    for chunk in raw.chunks(50) {
        assert!(ingest.ingest(&t, chunk.to_vec()).await.iter().all(|r| r.status == Status::Created));
    }
    let q = query(&store, Budgets { catalog: Limits { requests: 5, items: 60 }, ..Budgets::default() });
    let ask = |q: Option<&str>, cursor: Option<String>| CatalogQuery { q: q.map(str::to_owned), limit: 40, cursor };
    let (actors, pages) = catalog_walk(async |c| q.actors(&t, &ask(None, c)).await).await;
    let ids: Vec<String> = actors.iter().map(|a: &ActorEntry| a.id.clone()).collect();
    let want: Vec<String> = (0..250).map(|i| format!("actor-{i:03}")).collect();
    assert_eq!(ids, want, "every actor once, in id order");
    assert!(pages > 250 / 40, "pages of at most 40, some cut short by the budget");
    let (named, _) = catalog_walk(async |c| q.actors(&t, &ask(Some("NAME ACTOR-24"), c)).await).await;
    assert_eq!(named.len(), 10);
    let (actions, _) = catalog_walk(async |c| q.actions(&t, &ask(Some("cat1."), c)).await).await;
    assert_eq!(actions.len(), 63);
    assert!(actions.windows(2).all(|w| w[0].action < w[1].action));
    // A cursor works only for the catalog and q that issued it.
    let first = q.actors(&t, &ask(None, None)).await.unwrap_or_else(|e| panic!("{e}"));
    let cursor = first.next_cursor.unwrap_or_else(|| panic!("no cursor"));
    for (who, search) in [(tenant("other"), None), (t.clone(), Some("x"))] {
        let got = q.actors(&who, &ask(search, Some(cursor.clone()))).await;
        assert!(matches!(got, Err(ReadError::Cursor(BadCursor))), "{got:?}");
    }
    assert!(matches!(q.actions(&t, &ask(None, Some(cursor))).await, Err(ReadError::Cursor(BadCursor))));
}

#[tokio::test]
async fn actions_are_known_at_once_and_counted_by_the_stream() {
    let store = Arc::new(MemoryStore::default());
    let t = tenant("acme");
    let ingest = Ingest::on(&store);
    let batch = |from: usize, action: &str| -> Vec<Value> {
        (from..from + 5)
            .map(|i| {
                let mut e = event(i, "u1");
                e["action"] = json!(action);
                e
            })
            .collect()
    };
    assert!(ingest.ingest(&t, batch(0, "auth.login")).await.iter().all(|r| r.status == Status::Created));
    assert!(ingest.ingest(&t, batch(10, "auth.login")).await.iter().all(|r| r.status == Status::Created));
    assert!(ingest.ingest(&t, batch(20, "member.invite")).await.iter().all(|r| r.status == Status::Created));
    let q = query(&store, Budgets::default());
    let all = CatalogQuery { q: None, limit: 100, cursor: None };
    let counts = async || -> Vec<(String, u64)> {
        let page = q.actions(&t, &all).await.unwrap_or_else(|e| panic!("{e}"));
        page.items.into_iter().map(|a| (a.action, a.count)).collect()
    };
    // Ingest makes the actions known; their counts are the stream consumer's.
    assert_eq!(counts().await, vec![("auth.login".to_owned(), 0), ("member.invite".to_owned(), 0)]);
    let stored = store.events(&t);
    let counter = ActionCounts::new(store.clone());
    counter.add(stored.iter().map(|e| (&t, e.event.action.as_str()))).await.unwrap_or_else(|(_, e)| panic!("{e}"));
    assert_eq!(counts().await, vec![("auth.login".to_owned(), 10), ("member.invite".to_owned(), 5)]);
    let (ids, _) = walk(&q, &t, "action=member.*").await;
    assert_eq!(ids.len(), 5, "a category finds a new action's events at once");
    let (ids, _) = walk(&q, &t, "actor=U1%40X.COM").await;
    assert_eq!(ids.len(), 15, "an email finds every event of its actor");
    // Catalogs that cannot learn a new action: its events wait (transient), others go in.
    store.faults.add(Fault::after("catalog.ensure", 0).unavailable());
    let mut mixed = batch(30, "auth.login");
    mixed.extend(batch(40, "mfa.enable"));
    let results = ingest.ingest(&t, mixed).await;
    let statuses: Vec<Status> = results.iter().map(|r| r.status).collect();
    assert_eq!(statuses[..5], [Status::Created; 5]);
    assert_eq!(statuses[5..], [Status::Rejected; 5]);
    assert!(results[5..].iter().all(|r| r.error.as_ref().is_some_and(|e| e.code == Code::Throttled)));
}

fn planted(store: &MemoryStore, under: &TenantId) -> StoredEvent {
    let other = tenant("other");
    let raw = event(99_999, "intruder");
    let stored = Event::validate(raw, &other, now()).unwrap_or_else(|v| panic!("{v:?}")).stamp(now());
    store.plant(under, stored.clone(), 0);
    stored
}

#[tokio::test]
async fn an_event_under_a_tenants_key_that_names_another_tenant_is_never_served() {
    let (store, t, events) = seeded(40, 1).await;
    let intruder = planted(&store, &t);
    let q = query(&store, Budgets::default());
    for filter in ["", "actor=intruder", "q=needle", "resource_id=r-0"] {
        let (ids, _) = walk(&q, &t, filter).await;
        assert!(!ids.contains(&intruder.event.id), "{filter}");
        assert_eq!(ids, oracle(&events, filter, Order::Desc), "{filter}");
    }
    assert!(q.get(&t, &intruder.event.id).await.unwrap_or_else(|e| panic!("{e}")).is_none());
    let (files, queue) = (Arc::new(MemoryBlobs::default()), Arc::new(MemoryQueue::default()));
    let exports = Exports::on(&store, &queue, &files, CursorKey::derive("k"));
    let body = json!({"format": "jsonl"}).to_string();
    let job = exports.request(&t, "auditor", body.as_bytes()).await.unwrap_or_else(|e| panic!("{e:?}"));
    let message = queue.messages().last().map(|m| m.body.clone()).unwrap_or_default();
    let signer = Arc::new(MemorySigner::default());
    let exporter = Exporter::on(&store, &Arc::new(MemoryBlobs::default()), &files, &queue, &signer, 1_000, 90);
    assert!(exporter.consume(&message, None).await);
    let file = super::tests::export_files(&store, &files, &t, &job.id).await.concat();
    let file = String::from_utf8(file).unwrap_or_default();
    assert!(file.contains("e-00000") && !file.contains(&intruder.event.id), "{file}");
}
