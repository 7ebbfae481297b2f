//! The read API on the in-memory adapters: status codes and bodies of every route.

use super::*;
use audit::domain::tenant::TenantId;
use audit::memory::{Fault, MemoryBlobs, MemorySigner, MemoryStore};
use audit::usecases::archive::{ArchiveStores, Archiver, Options};
use audit::usecases::counts::ActionCounts;
use audit::usecases::ingest::Ingest;
use audit_http::auth::issue_hs256;
use axum::body::Body;
use axum::http::Request;
use std::time::Duration;
use tower::ServiceExt;

const SECRET: &str = "test-secret";

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

fn token(t: &str, scope: &str) -> String {
    issue_hs256(SECRET, &tenant(t), "tester", scope, Duration::from_secs(60)).unwrap_or_default()
}

async fn seeded() -> (Arc<MemoryStore>, Router) {
    let (store, _, router) = seeded_with_archive().await;
    (store, router)
}

async fn seeded_with_archive() -> (Arc<MemoryStore>, Arc<MemoryBlobs>, Router) {
    let store = Arc::new(MemoryStore::default());
    let bucket = Arc::new(MemoryBlobs::default());
    let now = Timestamp::now();
    let events: Vec<Value> = (0..25)
        .map(|i| {
            json!({
                "id": format!("e-{i:02}"),
                "occurred_at": now.plus_seconds(-60 * (i + 1)).to_string(),
                "action": if i % 2 == 0 { "auth.login" } else { "api_key.create" },
                "actor": {"type": "member", "id": format!("u{}", i % 3), "name": format!("Bob {}", i % 3)},
            })
        })
        .collect();
    let acme = tenant("acme");
    Ingest::on(&store).ingest(&acme, events).await;
    // As the consumer of the table's stream counts them.
    let stored = store.events(&acme);
    let counted = ActionCounts::new(store.clone()).add(stored.iter().map(|e| (&acme, e.event.action.as_str()))).await;
    counted.unwrap_or_else(|(_, e)| panic!("{e}"));
    let state = QueryState {
        query: Query::on(&store, &bucket, CursorKey::derive(SECRET), 90),
        verifier: Verifier::new(Some(SECRET), None),
    };
    let router = app(Arc::new(state), store.clone());
    (store, bucket, router)
}

async fn get(router: &Router, token: Option<&str>, uri: &str) -> (u16, Value) {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = router.clone().oneshot(req.body(Body::empty()).unwrap_or_default()).await.unwrap_or_else(|e| match e {});
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .map(|i| i.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn pages_follow_their_cursors_to_the_end_newest_first() {
    let (_, r) = seeded().await;
    let t = token("acme", "audit:read");
    let (status, first) = get(&r, Some(&t), "/v1/events?limit=10&action=auth.login").await;
    assert_eq!((status, ids(&first).len()), (200, 10));
    assert_eq!(ids(&first)[0], "e-00");
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let (_, second) = get(&r, Some(&t), &format!("/v1/events?limit=10&action=auth.login&cursor={cursor}")).await;
    assert_eq!(ids(&second).len(), 3);
    assert_eq!(second["next_cursor"], Value::Null);
    assert!(second["items"][0]["hash"].as_str().is_some_and(|h| h.len() == 64));
    // The same cursor with other filters, or another tenant's token: refused.
    let (status, body) = get(&r, Some(&t), &format!("/v1/events?limit=10&cursor={cursor}")).await;
    assert_eq!((status, body["error"]["details"][0]["reason"].as_str()), (400, Some("invalid_cursor")));
    let other = token("other", "audit:read");
    let (status, _) = get(&r, Some(&other), &format!("/v1/events?limit=10&action=auth.login&cursor={cursor}")).await;
    assert_eq!(status, 400);
    let (_, theirs) = get(&r, Some(&other), "/v1/events").await;
    assert!(ids(&theirs).is_empty());
}

#[tokio::test]
async fn counts_single_events_and_bad_parameters() {
    let (_, r) = seeded().await;
    let t = token("acme", "audit:read");
    let (status, body) = get(&r, Some(&t), "/v1/events/count?max=20").await;
    assert_eq!((status, body), (200, json!({"count": 20, "exact": false, "budget_exhausted": false})));
    let (_, body) = get(&r, Some(&t), "/v1/events/count").await;
    assert_eq!(body, json!({"count": 25, "exact": true, "budget_exhausted": false}));
    let (status, body) = get(&r, Some(&t), "/v1/events/e-03").await;
    assert_eq!((status, body["action"].as_str()), (200, Some("api_key.create")));
    let (status, body) = get(&r, Some(&t), "/v1/events/missing").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _) = get(&r, Some(&t), "/v1/events/a%23b").await;
    assert_eq!(status, 400);
    let (status, body) = get(&r, Some(&t), "/v1/events?limit=0&tenant=x").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")));
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.starts_with("invalid parameters: ")));
    assert_eq!(body["error"]["details"].as_array().map(Vec::len), Some(2));
    let old = Timestamp::now().plus_seconds(-200 * 86_400).to_string();
    let (status, body) = get(&r, Some(&t), &format!("/v1/events?from={old}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("range_archived")));
    let (status, body) = get(&r, Some(&token("acme", "audit:write")), "/v1/events").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = get(&r, None, "/v1/events").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_archived_event_is_read_from_the_archive_and_marked() {
    let (store, bucket, r) = seeded_with_archive().await;
    let old = json!({"id": "old-1", "occurred_at": Timestamp::now().plus_seconds(-120 * 86_400).to_string(),
                     "action": "auth.login", "actor": {"type": "member", "id": "u1"}});
    Ingest::on(&store).ingest(&tenant("acme"), vec![old]).await;
    let t = token("acme", "audit:read");
    let (_, online) = get(&r, Some(&t), "/v1/events/old-1").await;
    assert_eq!(online.get("archived"), None, "{online}");
    let options = Options { default_hot_days: 90, part_max_rows: 100 };
    let report = Archiver::new(ArchiveStores::on(&store, &bucket, &Arc::new(MemorySigner::default())), options)
        .run(Timestamp::now(), None, None)
        .await;
    assert_eq!(report.map(|r| r.committed.len()).ok(), Some(1));
    let (status, archived) = get(&r, Some(&t), "/v1/events/old-1").await;
    assert_eq!(status, 200, "{archived}");
    let mut expected = online.clone();
    expected["archived"] = json!(true);
    assert_eq!(archived, expected);
    let (status, body) = get(&r, Some(&token("other", "audit:read")), "/v1/events/old-1").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn one_handler_serves_both_catalogs() {
    let (_, r) = seeded().await;
    let t = token("acme", "audit:read");
    let (status, body) = get(&r, Some(&t), "/v1/actions").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["items"],
        json!([{"action": "api_key.create", "count": 12}, {"action": "auth.login", "count": 13}])
    );
    let (_, body) = get(&r, Some(&t), "/v1/actions?q=KEY").await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
    let (_, body) = get(&r, Some(&t), "/v1/actors?q=bob").await;
    assert_eq!(ids(&body).len(), 3);
    assert_eq!(body["items"][0]["type"], "member");
    for bad in ["/v1/actions?x=1", "/v1/actors?q=a&q=b"] {
        let (status, body) = get(&r, Some(&t), bad).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{bad}");
    }
}

#[tokio::test]
async fn healthz_says_whether_the_store_answers_and_busy_storage_is_a_503() {
    let (store, r) = seeded().await;
    assert_eq!(get(&r, None, "/healthz").await, (200, json!({"status": "ok"})));
    store.faults.add(Fault::after("ping", 0).times(1));
    assert_eq!(get(&r, None, "/healthz").await, (503, json!({"status": "unavailable"})));
    store.faults.add(Fault::after("settings", 0).unavailable().times(1));
    let (status, body) = get(&r, Some(&token("acme", "audit:read")), "/v1/events").await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("throttled")));
}
