//! The router and the queue handler on the in-memory adapters: status codes and bodies.

use super::*;
use audit::domain::tenant::TenantId;
use audit::memory::{Fault, MemoryQueue, MemoryStore};
use audit_http::auth::issue_hs256;
use audit_runtime::run::SqsMessage;
use axum::http::Request;
use serde_json::Value;
use std::time::Duration;
use tower::ServiceExt;

const SECRET: &str = "test-secret";

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"))
}

fn token(scope: &str) -> String {
    issue_hs256(SECRET, &tenant(), "tester", scope, Duration::from_secs(60)).unwrap_or_default()
}

fn router(store: &Arc<MemoryStore>) -> Router {
    app(Arc::new(AppState { ingest: Ingest::on(store), verifier: Verifier::new(Some(SECRET), None) }))
}

async fn post(router: &Router, token: Option<&str>, body: String) -> (u16, Value, Option<String>) {
    let mut req = Request::post("/v1/events").header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp =
        router.clone().oneshot(req.body(Body::from(body)).unwrap_or_default()).await.unwrap_or_else(|e| match e {});
    let status = resp.status().as_u16();
    let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), challenge)
}

fn event(id: &str) -> Value {
    json!({"id": id, "action": "channel.create", "actor": {"type": "member", "id": "u-1"}})
}

fn statuses(body: &Value) -> Vec<&str> {
    body["results"].as_array().map(|r| r.iter().filter_map(|x| x["status"].as_str()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn events_are_stored_once_and_a_batch_says_what_became_of_each() {
    let store = Arc::new(MemoryStore::default());
    let r = router(&store);
    let t = token("audit:write");
    let batch = json!({"events": [event("e1"), {"action": "Bad"}, event("e2")]}).to_string();
    let (status, body, _) = post(&r, Some(&t), batch.clone()).await;
    assert_eq!((status, statuses(&body)), (202, vec!["created", "rejected", "created"]));
    assert_eq!(body["results"][1]["error"]["code"], "invalid_request");
    let (status, body, _) = post(&r, Some(&t), batch).await;
    assert_eq!((status, statuses(&body)), (202, vec!["duplicate", "rejected", "duplicate"]));
    let mut other = event("e1");
    other["action"] = json!("channel.delete");
    let (status, body, _) = post(&r, Some(&t), other.to_string()).await;
    assert_eq!((status, body["results"][0]["error"]["code"].as_str()), (400, Some("conflict")));
    assert_eq!(store.events(&tenant()).len(), 2);
}

#[tokio::test]
async fn a_batch_refused_only_for_busy_storage_is_a_503() {
    let store = Arc::new(MemoryStore::default());
    store.faults.add(Fault::after("put", 0).unavailable());
    let (status, body, _) = post(&router(&store), Some(&token("audit:write")), event("e1").to_string()).await;
    assert_eq!((status, body["results"][0]["error"]["code"].as_str()), (503, Some("throttled")));
}

#[tokio::test]
async fn bodies_it_cannot_take_and_bad_tokens_are_refused_with_the_contracts_codes() {
    let store = Arc::new(MemoryStore::default());
    let r = router(&store);
    let t = token("audit:write");
    let (status, body, _) = post(&r, Some(&t), "{\"events\": []}".into()).await;
    assert_eq!((status, body["error"]["details"][0]["reason"].as_str()), (400, Some("empty_batch")));
    let (status, body, _) = post(&r, Some(&t), format!("{{\"events\": [{}]}}", vec!["{}"; 501].join(","))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")));
    let (status, body, challenge) = post(&r, None, event("e").to_string()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), challenge.as_deref()),
        (401, Some("unauthorized"), Some("Bearer"))
    );
    let (status, body, _) = post(&r, Some(&token("audit:read")), event("e").to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    assert!(store.events(&tenant()).is_empty());
}

fn delivery(bodies: &[(&str, String)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (id, body) in bodies {
        let mut m = SqsMessage::default();
        m.message_id = Some((*id).into());
        m.body = Some(body.clone());
        event.records.push(m);
    }
    event
}

#[tokio::test]
async fn a_delivery_reports_only_the_messages_to_retry() {
    let store = Arc::new(MemoryStore::default());
    let dead = Arc::new(MemoryQueue::default());
    let consumer = Consumer { ingest: Ingest::on(&store), dead_letters: dead.clone() };
    let mut good = event("q1");
    good["tenant_id"] = json!("acme");
    let first = delivery(&[("m1", good.to_string()), ("m2", "not json".into())]);
    let response = handle_queue(&consumer, &Default::default(), first).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((store.events(&tenant()).len(), dead.messages().len()), (1, 1));
    store.faults.add(Fault::after("put", 0).unavailable());
    let mut busy = event("q2");
    busy["tenant_id"] = json!("acme");
    let response = handle_queue(&consumer, &Default::default(), delivery(&[("m3", busy.to_string())])).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, vec!["m3"]);
    assert_eq!(dead.messages().len(), 1);
}
