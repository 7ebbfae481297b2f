//! The alerts API and the two handlers on the in-memory adapters.

use super::*;
use audit::domain::tenant::TenantId;
use audit::memory::{MemoryAlerts, MemoryNotifier, MemoryStore};
use audit::usecases::ingest::Ingest;
use audit_http::auth::issue_hs256;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "test-secret";

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

fn token(t: &str, scope: &str) -> String {
    issue_hs256(SECRET, &tenant(t), "tester", scope, Duration::from_secs(60)).unwrap_or_default()
}

fn router() -> Router {
    let store = Arc::new(MemoryStore::default());
    let rules = Rules {
        rules: Arc::new(MemoryAlerts::default()),
        notifier: Arc::new(MemoryNotifier::default()),
        ingest: Ingest::on(&store),
        egress: Egress::PUBLIC,
        topic_prefix: String::new(),
    };
    app(Arc::new(AlertsState { rules, verifier: Verifier::new(Some(SECRET), None) }))
}

async fn call(router: &Router, method: &str, uri: &str, token: &str, body: &str) -> (u16, Value) {
    let req = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
    let resp = router.clone().oneshot(req.body(Body::from(body.to_owned())).unwrap_or_default()).await;
    let resp = resp.unwrap_or_else(|e| match e {});
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const RULE: &str = r#"{"name": "Keys", "match": {"action": "api_key.*"},
    "destination": {"type": "webhook", "url": "https://hooks.example.com/in"}}"#;

#[tokio::test]
async fn rules_go_through_their_whole_life_over_http() {
    let r = router();
    let admin = token("t-a", "audit:admin");
    let (status, created) = call(&r, "POST", "/v1/alerts", &admin, RULE).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/alerts/{id}");
    assert_eq!(call(&r, "GET", &path, &admin, "").await.1["match"], json!({"action": ["api_key.*"]}));
    assert_eq!(call(&r, "GET", "/v1/alerts", &admin, "").await.1["items"][0]["id"], json!(id));
    let (status, changed) = call(&r, "PATCH", &path, &admin, r#"{"enabled": false}"#).await;
    assert_eq!((status, &changed["enabled"]), (200, &json!(false)));
    assert_eq!(call(&r, "DELETE", &path, &admin, "").await.0, 204);
    assert_eq!(call(&r, "GET", &path, &admin, "").await.0, 404);
    assert_eq!(call(&r, "DELETE", &path, &admin, "").await.0, 404);
}

#[tokio::test]
async fn rules_need_the_admin_scope_a_valid_body_and_an_id_of_the_tenant() {
    let r = router();
    let (status, body) = call(&r, "POST", "/v1/alerts", &token("t-a", "audit:read audit:write"), RULE).await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    assert_eq!(call(&r, "GET", "/v1/alerts", "not-a-token", "").await.0, 401);
    let admin = token("t-a", "audit:admin");
    let (status, body) = call(&r, "POST", "/v1/alerts", &admin, r#"{"name": "x", "bogus": 1}"#).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_request")));
    assert_eq!(call(&r, "GET", "/v1/alerts/not-a-rule", &admin, "").await.0, 404);
    let id = call(&r, "POST", "/v1/alerts", &admin, RULE).await.1["id"].as_str().unwrap_or_default().to_owned();
    let other = token("t-b", "audit:admin");
    assert_eq!(call(&r, "GET", &format!("/v1/alerts/{id}"), &other, "").await.0, 404);
    assert_eq!(call(&r, "PATCH", &format!("/v1/alerts/{id}"), &other, r#"{"enabled": false}"#).await.0, 404);
}

#[tokio::test]
async fn turn_messages_that_are_not_ours_are_dropped_and_a_held_turn_goes_back() {
    use audit::domain::delivery::RetrySchedule;
    use audit::memory::{MemoryQueue, MemoryTurns};
    use audit::ports::TurnStore;
    let alerts = Arc::new(MemoryAlerts::default());
    let store = Arc::new(MemoryTurns::default());
    let queue = Arc::new(MemoryQueue::default());
    let turns = Turns {
        kind: audit::domain::turn::ALERTS,
        store: store.clone(),
        queue: queue.clone(),
        hold: Duration::from_secs(60),
    };
    let schedule = RetrySchedule::parse("1s").unwrap_or_else(|e| panic!("{e}"));
    let worker = Worker::on(&alerts, &Arc::new(MemoryNotifier::default()), schedule, Duration::from_secs(1));
    turns.offer(&tenant("t-a")).await.unwrap_or_else(|e| panic!("{e}"));
    let turn = queue.receive().remove(0).body;
    // Another worker holds the turn.
    let token = store.token(audit::domain::turn::ALERTS, &tenant("t-a")).unwrap_or_default();
    let now = audit::domain::timestamp::Timestamp::now();
    let held = store.take(audit::domain::turn::ALERTS, &tenant("t-a"), &token, now, now.plus_seconds(60)).await;
    assert!(matches!(held, Ok(audit::ports::Take::Held { .. })));
    let message = |id: &str, body: &str| {
        let mut m = audit_runtime::run::SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m
    };
    let mut event = SqsEvent::default();
    event.records = vec![message("bad", "not json"), message("held", &turn)];
    let response = handle_work(&turns, &worker, event, std::time::Instant::now() + Duration::from_secs(60)).await;
    let failed: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, ["held"]);
}

#[test]
fn invocations_are_told_apart_by_their_source() {
    let sqs = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m", "body": "{}"}]});
    assert!(matches!(Invocation::parse(sqs), Ok(Invocation::Work(_))));
    let stream = json!({"Records": [{"eventSource": "aws:dynamodb", "eventName": "INSERT", "dynamodb": {}}]});
    assert!(matches!(Invocation::parse(stream), Ok(Invocation::Stream(_))));
    assert!(matches!(Invocation::parse(json!({"Records": []})), Ok(Invocation::Stream(_))));
}
