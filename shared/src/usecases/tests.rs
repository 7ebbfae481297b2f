//! Every use case on the in-memory adapters: ingest results, paging and cursors, counts,
//! catalogs, archive steps and crash points, verify, export merges and requests. They add
//! to the black-box tests against the local AWS servers in `tests/`, and replace none.

use crate::domain::cursor::BadCursor;
use crate::domain::cursor::CursorKey;
use crate::domain::error::Code;
use crate::domain::event::{Event, StoredEvent};
use crate::domain::export::{Format, Status as JobStatus};
use crate::domain::filter::{Extra, Order, parse_query};
use crate::domain::ingest::{ItemResult, Status};
use crate::domain::manifest::{self, Manifest};
use crate::domain::tenant::{TenantId, TenantSettings};
use crate::domain::timestamp::Timestamp;
use crate::formats::parquet_read::Part;
use crate::memory::{Fault, MemoryBlobs, MemoryQueue, MemoryStore};
use crate::ports::{BlobStore, Condition, EventReader, ExportJobs, TenantRegistry, Tenants};
use crate::usecases::archive::{ArchiveStores, Archiver, Options, Report};
use crate::usecases::consume::{Consumer, ERROR_ATTRIBUTE};
use crate::usecases::export::Exporter;
use crate::usecases::export::requests::Exports;
use crate::usecases::ingest::Ingest;
use crate::usecases::query::{Query, ReadError};
use crate::usecases::verify::verify;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

const DAY: i64 = 86_400;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

fn now() -> Timestamp {
    Timestamp::now()
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
    Query::on(store, CursorKey::derive("test"), 90)
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
    store.set_settings(t, TenantSettings { shards, hot_days }).await.unwrap_or_else(|e| panic!("{e}"));
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
async fn catalogs_count_actions_and_keep_each_actors_latest_sighting() {
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
    let q = query(&store);
    let actions = q.actions(&t, None).await.unwrap_or_default();
    let counts: Vec<(String, u64)> = actions.into_iter().map(|a| (a.action, a.count)).collect();
    assert_eq!(counts, vec![("api_key.create".to_owned(), 15), ("auth.login".to_owned(), 16)]);
    let keys = q.actions(&t, Some("KEY")).await.unwrap_or_default();
    assert_eq!(keys.len(), 1);
    let actors = q.actors(&t, Some("bob")).await.unwrap_or_default();
    assert_eq!(
        actors.iter().map(|a| (a.id.as_str(), a.name.as_deref())).collect::<Vec<_>>(),
        vec![("u1", Some("Bobby"))]
    );
    let all = q.actors(&t, None).await.unwrap_or_default();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].id, "u1", "most recent first");
}

// ---------------------------------------------------------------- query

fn oracle(events: &[Event], q: &str, order: Order) -> Vec<String> {
    let filter = parse_query(q, Extra::List, now()).map(|p| p.filter).unwrap_or_else(|v| panic!("{v:?}"));
    let mut hits: Vec<&Event> = events.iter().filter(|e| filter.matches(*e)).collect();
    hits.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
    if order == Order::Desc {
        hits.reverse();
    }
    hits.into_iter().map(|e| e.id.clone()).collect()
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
    assert_eq!(exact, (expected, true));
    let capped = q.count(&t, &all.filter, 50, now()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(capped, (50, false));
    let failures = parse_query("outcome=failure", Extra::Count, now()).unwrap_or_else(|v| panic!("{v:?}"));
    let got = q.count(&t, &failures.filter, 10_000, now()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.0, oracle(&events, "outcome=failure", Order::Asc).len() as u64);
    let old = parse_query(&format!("from={}", now().plus_seconds(-200 * DAY)), Extra::Count, now());
    let old = old.unwrap_or_else(|v| panic!("{v:?}"));
    let refused = q.count(&t, &old.filter, 10, now()).await;
    assert_eq!(refused.err().map(|e| e.body().code), Some(Code::RangeArchived));
    let one = q.get(&t, "ev-007").await.ok().flatten();
    assert_eq!(one.map(|e| e.event.outcome.as_str()), Some("failure"));
    assert!(q.get(&tenant("other"), "ev-007").await.ok().flatten().is_none());
}

// ---------------------------------------------------------------- archive

struct Archive {
    store: Arc<MemoryStore>,
    bucket: Arc<MemoryBlobs>,
}

impl Archive {
    fn new() -> Self {
        Self { store: Arc::new(MemoryStore::default()), bucket: Arc::new(MemoryBlobs::default()) }
    }

    fn stores(&self) -> ArchiveStores {
        ArchiveStores::on(&self.store, &self.bucket)
    }

    async fn run(&self, t: &TenantId, part_max_rows: u64) -> Report {
        let archiver = Archiver::new(self.stores(), Options { default_hot_days: 90, part_max_rows });
        archiver.run(now(), Some(t), None).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The ids in every archived part of the tenant.
    fn archived_ids(&self, t: &TenantId) -> Vec<String> {
        let mut ids = Vec::new();
        for key in self.bucket.keys().into_iter().filter(|k| k.starts_with(&manifest::events_prefix(t.as_str()))) {
            let bytes = bytes::Bytes::from(self.bucket.bytes(&key).unwrap_or_default());
            let part = Part::open(&bytes).unwrap_or_else(|e| panic!("{key}: {e}"));
            for rg in 0..part.row_groups() {
                for batch in
                    part.read(bytes.clone(), rg, Some(&["id", "occurred_at"])).unwrap_or_else(|e| panic!("{e}"))
                {
                    ids.extend((0..batch.len()).filter_map(|i| batch.row(i).key().1.to_owned().into()));
                }
            }
        }
        ids
    }

    /// Each event is in exactly one place: archived once or online, never both or neither.
    fn assert_each_in_one_place(&self, t: &TenantId, all: &BTreeSet<String>) {
        let archived = self.archived_ids(t);
        let archived_set: BTreeSet<String> = archived.iter().cloned().collect();
        assert_eq!(archived_set.len(), archived.len(), "an event is archived twice");
        let online: BTreeSet<String> = self.store.events(t).into_iter().map(|e| e.event.id).collect();
        assert!(archived_set.is_disjoint(&online), "an event is both archived and online");
        let found: BTreeSet<String> = archived_set.union(&online).cloned().collect();
        assert_eq!(&found, all, "events lost or invented");
    }

    async fn verify_clean(&self, t: &TenantId) -> u64 {
        let checked =
            verify(&*self.store, &*self.store, &*self.bucket, Some(t)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checked.findings, vec![], "verify found problems");
        checked.rows
    }
}

fn days_ago(n: i64) -> i64 {
    // Noon of the day, so a day's events stay in that day whatever the hour now.
    let day = now().plus_seconds(-n * DAY).day();
    let noon = Timestamp::parse(&format!("{day}T12:00:00Z")).unwrap_or(Timestamp::MIN);
    now().micros() / 1_000_000 - noon.micros() / 1_000_000
}

fn day_events(tag: &str, days: i64, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            event(
                &format!("{tag}-{days}-{i:04}"),
                days_ago(days) + i64::try_from(i).unwrap_or(0),
                "file.upload",
                &format!("u{}", i % 3),
            )
        })
        .collect()
}

fn ids_of(events: &[Value]) -> BTreeSet<String> {
    events.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn old_days_move_to_parquet_and_recent_ones_stay() {
    let a = Archive::new();
    let t = tenant("acme");
    set_shards(&a.store, &t, 3, None).await;
    let mut all = day_events("a", 200, 50);
    all.extend(day_events("a", 198, 30));
    all.extend(day_events("a", 2, 20));
    load(&a.store, &t, &all).await;
    let report = a.run(&t, 1_000_000).await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.days.iter().map(|d| d.rows).collect::<Vec<_>>(), vec![50, 30]);
    assert_eq!(a.store.events(&t).len(), 20);
    a.assert_each_in_one_place(&t, &ids_of(&all));
    assert_eq!(a.verify_clean(&t).await, 80);
    // Nothing left to do: a second run changes nothing.
    let again = a.run(&t, 1_000_000).await;
    assert!(again.days.is_empty() && again.failures.is_empty(), "{again:?}");
    // A late event for an archived day becomes its next part, in a new revision.
    let late = day_events("late", 200, 3);
    load(&a.store, &t, &late).await;
    all.extend(late);
    let report = a.run(&t, 1_000_000).await;
    assert_eq!(
        report.days.iter().map(|d| (d.seq, d.parts.clone())).collect::<Vec<_>>(),
        vec![(3, vec!["part-00001.parquet".to_owned()])]
    );
    let day = now().plus_seconds(-200 * DAY).day();
    let (bytes, _) = a.bucket.get_bytes(&manifest::manifest_key("acme", &day)).await.ok().flatten().unwrap_or_default();
    let m: Manifest = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((m.rows, m.supersedes.len()), (53, 1));
    a.assert_each_in_one_place(&t, &ids_of(&all));
    assert_eq!(a.verify_clean(&t).await, 83);
}

/// Runs the archive with one call failing for good, as a crash at that point would
/// leave things; then reruns it cleanly: nothing lost, nothing twice.
async fn crash_then_rerun(store_fault: Option<Fault>, bucket_fault: Option<Fault>) {
    let a = Archive::new();
    let t = tenant("crash");
    set_shards(&a.store, &t, 2, None).await;
    let mut all = day_events("c", 120, 90);
    all.extend(day_events("c", 119, 20));
    load(&a.store, &t, &all).await;
    let ids = ids_of(&all);
    a.store.faults.add(store_fault.clone().unwrap_or_else(|| Fault::after("never", 0)));
    a.bucket.faults.add(bucket_fault.clone().unwrap_or_else(|| Fault::after("never", 0)));
    let crashed = a.run(&t, 30).await;
    assert_eq!(crashed.failures.len(), 1, "the injected fault did not stop the run: {crashed:?}");
    assert!(a.store.faults.failed() + a.bucket.faults.failed() > 0);
    // Whatever state the crash left, nothing is lost.
    let online: BTreeSet<String> = a.store.events(&t).into_iter().map(|e| e.event.id).collect();
    let found: BTreeSet<String> = a.archived_ids(&t).into_iter().chain(online).collect();
    assert_eq!(found, ids);
    a.store.faults.clear();
    a.bucket.faults.clear();
    let rerun = a.run(&t, 30).await;
    assert!(rerun.failures.is_empty(), "{rerun:?}");
    a.assert_each_in_one_place(&t, &ids);
    assert!(a.store.events(&t).is_empty());
    assert_eq!(a.verify_clean(&t).await, 110);
}

#[tokio::test]
async fn a_crash_at_any_step_loses_nothing_and_a_rerun_finishes() {
    // The read that verifies the first uploaded part.
    crash_then_rerun(None, Some(Fault::after("hash", 0).on("events/"))).await;
    // The manifest write, after the parts are verified.
    crash_then_rerun(None, Some(Fault::after("put_bytes", 0).on("manifests/"))).await;
    // Making the written manifest the chain's head.
    crash_then_rerun(Some(Fault::after("advance", 0)), None).await;
    // Midway through the deletes of the first day's three parts (one call per part).
    crash_then_rerun(Some(Fault::after("delete", 1)), None).await;
    // The second day's manifest write, after the first day is done.
    crash_then_rerun(None, Some(Fault::after("put_bytes", 1).on("manifests/"))).await;
    // Clearing the finished step.
    crash_then_rerun(Some(Fault::after("finish", 0)), None).await;
}

#[tokio::test]
async fn another_run_holding_the_tenant_is_not_interleaved() {
    use crate::ports::ArchiveRegistry;
    let a = Archive::new();
    let t = tenant("busy");
    load(&a.store, &t, &day_events("b", 150, 5)).await;
    a.store.lease(&t, "someone-else").await.unwrap_or_else(|e| panic!("{e}"));
    let report = a.run(&t, 100).await;
    assert_eq!(report.failures.len(), 1);
    assert!(report.failures[0].error.contains("another archive run"), "{report:?}");
    assert_eq!(a.store.events(&t).len(), 5);
}

#[tokio::test]
async fn verify_finds_changed_missing_and_extra_parts_and_a_broken_chain() {
    let a = Archive::new();
    let t = tenant("v");
    let mut all = Vec::new();
    for d in [300, 299, 298] {
        all.extend(day_events("v", d, 12));
    }
    load(&a.store, &t, &all).await;
    a.run(&t, 5).await;
    a.verify_clean(&t).await;
    let kinds = || async {
        let checked = verify(&*a.store, &*a.store, &*a.bucket, Some(&t)).await.unwrap_or_else(|e| panic!("{e}"));
        let mut k: Vec<&'static str> = checked.findings.iter().map(|f| f.kind).collect();
        k.dedup();
        k
    };
    let day = now().plus_seconds(-299 * DAY).day();
    let part = format!("{}part-00000.parquet", manifest::day_prefix("v", &day));
    let original = a.bucket.bytes(&part).unwrap_or_default();
    let mut changed = original.clone();
    changed[100] ^= 1;
    let put = |key: &String, bytes: Vec<u8>| {
        let (bucket, key) = (a.bucket.clone(), key.clone());
        async move { bucket.put_bytes(&key, bytes, "x", Condition::None).await }
    };
    put(&part, changed).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds().await, vec!["changed_part"]);
    a.bucket.delete(&part).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds().await, vec!["missing_part"]);
    put(&part, original.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let extra = format!("{}part-00009.parquet", manifest::day_prefix("v", &day));
    put(&extra, original).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds().await, vec!["extra_part"]);
    a.bucket.delete(&extra).await.unwrap_or_else(|e| panic!("{e}"));
    let first = manifest::manifest_key("v", &now().plus_seconds(-300 * DAY).day());
    let bytes = a.bucket.bytes(&first).unwrap_or_default();
    let mut m: Manifest = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    m.created_at = "2020-01-01T00:00:00.000000Z".into();
    put(&first, m.to_bytes().unwrap_or_default()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds().await, vec!["chain"]);
    put(&first, bytes).await.unwrap_or_else(|e| panic!("{e}"));
    a.verify_clean(&t).await;
}

// ---------------------------------------------------------------- export

struct Exporting {
    archive: Archive,
    files: Arc<MemoryBlobs>,
    queue: Arc<MemoryQueue>,
}

impl Exporting {
    fn new() -> Self {
        Self {
            archive: Archive::new(),
            files: Arc::new(MemoryBlobs::default()),
            queue: Arc::new(MemoryQueue::default()),
        }
    }

    fn exporter(&self, max_rows: u64) -> Exporter {
        Exporter::on(&self.archive.store, &self.archive.bucket, &self.files, max_rows)
    }

    fn exports(&self) -> Exports {
        Exports::on(&self.archive.store, &self.queue, &self.files)
    }

    /// Requests an export, runs it as the worker would, and returns the job's view and file.
    async fn export(&self, t: &TenantId, body: Value, max_rows: u64) -> (Value, Vec<u8>) {
        let job =
            self.exports().request(t, "tester", body.to_string().as_bytes()).await.unwrap_or_else(|e| panic!("{e:?}"));
        let message = self.queue.messages().last().map(|m| m.body.clone()).unwrap_or_default();
        assert!(self.exporter(max_rows).consume(&message).await);
        let view = self.exports().get(t, &job.id).await.ok().flatten().unwrap_or_default();
        let file = self.files.bytes(&job.object_key()).unwrap_or_default();
        (view, file)
    }
}

/// The stored events newest first.
fn newest_first(mut events: Vec<StoredEvent>) -> Vec<StoredEvent> {
    events.sort_by(|a, b| b.key().cmp(&a.key()));
    events
}

#[tokio::test]
async fn an_export_merges_archive_and_online_newest_first_and_gives_an_event_in_both_once() {
    let x = Exporting::new();
    let t = tenant("exp");
    let mut all = day_events("x", 200, 25);
    all.extend(day_events("x", 199, 15));
    all.extend(day_events("x", 1, 10));
    load(&x.archive.store, &t, &all).await;
    let before = x.archive.store.events(&t);
    x.archive.run(&t, 10).await;
    // As between an archive run's manifest and its deletes: one archived event online too.
    let twice = before.iter().find(|e| e.event.id == "x-200-0003").cloned().unwrap_or_else(|| panic!("no event"));
    x.archive.store.insert(twice, 0);
    let from = now().plus_seconds(-201 * DAY).to_string();
    let (job, file) = x.export(&t, json!({"from": from, "format": "jsonl"}), 1_000_000).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // Every stored event, plus the export's own audit event, newest first, each once.
    let mut expected = before;
    expected.extend(
        EventReader::get(&*x.archive.store, &t, &format!("export:{}", job["id"].as_str().unwrap_or_default()))
            .await
            .ok()
            .flatten(),
    );
    let expected = newest_first(expected);
    let lines: Vec<Value> =
        String::from_utf8_lossy(&file).lines().map(|l| serde_json::from_str(l).unwrap_or_default()).collect();
    assert_eq!(job["rows"], json!(expected.len()));
    assert_eq!(lines, expected.iter().map(StoredEvent::to_json).collect::<Vec<_>>());
    assert!(job["download_url"].as_str().is_some_and(|u| u.contains("expires=")));

    // Capped: the most recent rows, and truncated.
    let (capped, file) = x.export(&t, json!({"from": from}), 7).await;
    assert_eq!((capped["rows"].as_u64(), capped["truncated"].as_bool()), (Some(7), Some(true)));
    let text = String::from_utf8_lossy(&file).to_string();
    assert_eq!(text.lines().count(), 8, "a header and seven rows");
    assert!(text.starts_with("id,occurred_at,action,"));
    assert!(text.contains(",'=SUM(A1),"), "the formula guard");
}

#[tokio::test]
async fn an_export_with_a_damaged_archive_fails_and_says_why() {
    let x = Exporting::new();
    let t = tenant("dmg");
    load(&x.archive.store, &t, &day_events("d", 150, 5)).await;
    x.archive.run(&t, 100).await;
    let day = now().plus_seconds(-150 * DAY).day();
    let key = manifest::manifest_key("dmg", &day);
    x.archive
        .bucket
        .put_bytes(&key, b"{not json".to_vec(), "x", Condition::None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (job, _) = x.export(&t, json!({"from": now().plus_seconds(-151 * DAY).to_string()}), 100).await;
    assert_eq!((job["status"].as_str(), job["error"]["code"].as_str()), (Some("failed"), Some("data_integrity")));
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains(&day)), "{job}");
    assert_eq!(job["download_url"], Value::Null);
}

#[tokio::test]
async fn export_requests_are_validated_logged_queued_and_expire() {
    let x = Exporting::new();
    let t = tenant("req");
    let exports = x.exports();
    let bad = exports.request(&t, "tester", br#"{"format": "xlsx"}"#).await;
    let bad = bad.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!((bad.code, bad.details[0]["field"].clone()), (Code::InvalidRequest, json!("format")));
    assert!(bad.message.starts_with("invalid export request: format"));
    assert!(x.queue.messages().is_empty());
    // The queue down: the job is failed, and the caller told to retry.
    x.queue.faults.add(Fault::after("send", 0).times(1));
    let down = exports.request(&t, "tester", b"{}").await;
    assert_eq!(down.err().map(|e| e.code), Some(Code::Throttled));
    let job = exports.request(&t, "tester", br#"{"format": "jsonl"}"#).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(job.status, JobStatus::Queued);
    let logged = EventReader::get(&*x.archive.store, &t, &format!("export:{}", job.id)).await.ok().flatten();
    assert_eq!(logged.map(|e| (e.event.action, e.event.actor.id)), Some(("audit_log.export".into(), "tester".into())));
    let listed = exports.list(&t).await.unwrap_or_default();
    assert_eq!(
        listed.iter().map(|j| j["status"].as_str().unwrap_or_default()).collect::<Vec<_>>(),
        vec!["queued", "failed"]
    );
    assert!(exports.list(&tenant("other")).await.unwrap_or_default().is_empty());
    assert!(exports.get(&tenant("other"), &job.id).await.ok().flatten().is_none());
    // Run twice: the second delivery does nothing more.
    let message = x.queue.messages().last().map(|m| m.body.clone()).unwrap_or_default();
    assert!(x.exporter(100).consume(&message).await);
    assert!(x.exporter(100).consume(&message).await);
    assert!(!x.exporter(100).consume("{\"not\": \"a job\"}").await);
    // Past its time: expired, no link, the file gone.
    let mut stored =
        ExportJobs::get(&*x.archive.store, &t, &job.id).await.ok().flatten().unwrap_or_else(|| panic!("no job"));
    assert_eq!(stored.format, Format::Jsonl);
    assert!(x.files.bytes(&stored.object_key()).is_some());
    stored.expires_at = Some(now().plus_seconds(-1));
    x.archive.store.put_job(stored.clone());
    let view = exports.get(&t, &job.id).await.ok().flatten().unwrap_or_default();
    assert_eq!((view["status"].as_str(), view["download_url"].clone()), (Some("expired"), Value::Null));
    assert!(x.files.bytes(&stored.object_key()).is_none());
}
