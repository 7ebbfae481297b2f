//! The alerts use cases end to end on the in-memory adapters: the API's rules and their
//! log, the stream's evaluation with replays, and deliveries retried to a dead letter.

use super::deliver::AlertError;
use super::evaluate::Evaluated;
use super::{Deliverer, Evaluator, Rules};
use crate::domain::delivery::{RetryMessage, RetrySchedule, Status};
use crate::domain::egress::Egress;
use crate::domain::error::Code;
use crate::domain::event::{Event, StoredEvent};
use crate::domain::fixtures::with;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::memory::{Fault, MemoryAlerts, MemoryNotifier, MemoryQueue, MemoryStore};
use crate::ports::AlertRules;
use crate::usecases::ingest::Ingest;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A whole invocation ahead.
fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Judging with a whole invocation ahead.
trait Judge {
    async fn event_now(&self, event: &StoredEvent) -> Result<Evaluated, AlertError>;
}

impl Judge for Evaluator {
    async fn event_now(&self, event: &StoredEvent) -> Result<Evaluated, AlertError> {
        self.event(event, later()).await
    }
}

const TOPICS: &str = "arn:aws:sns:us-east-1:123456789012:audit-alerts-";

struct World {
    store: Arc<MemoryStore>,
    alerts: Arc<MemoryAlerts>,
    notifier: Arc<MemoryNotifier>,
    retries: Arc<MemoryQueue>,
    rules: Rules,
    evaluator: Evaluator,
    deliverer: Deliverer,
}

fn world() -> World {
    let store = Arc::new(MemoryStore::default());
    let alerts = Arc::new(MemoryAlerts::default());
    let notifier = Arc::new(MemoryNotifier::default());
    let retries = Arc::new(MemoryQueue::default());
    let rules = Rules {
        rules: alerts.clone(),
        notifier: notifier.clone(),
        ingest: Ingest::on(&store),
        egress: Egress::PUBLIC,
        topic_prefix: TOPICS.into(),
    };
    let deliverer = Deliverer {
        rules: alerts.clone(),
        deliveries: alerts.clone(),
        notifier: notifier.clone(),
        retries: retries.clone(),
        schedule: RetrySchedule::parse("1s,1s").unwrap_or_else(|e| panic!("{e}")),
        attempt_time: Duration::from_secs(1),
    };
    let evaluator = Evaluator::new(alerts.clone(), alerts.clone(), alerts.clone(), deliverer.clone(), Duration::ZERO);
    World { store, alerts, notifier, retries, rules, evaluator, deliverer }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|_| unreachable!())
}

fn body(extra: &str) -> Vec<u8> {
    format!(
        r#"{{"name": "Deleted members", "match": {{"action": "member.delete"}}, "quiet_minutes": 0,
            "destination": {{"type": "webhook", "url": "https://hooks.example.com/in"}}{extra}}}"#
    )
    .into_bytes()
}

fn event(tenant_id: &str, id: &str, action: &str) -> StoredEvent {
    let now = Timestamp::now();
    let value = with(json!({"id": id, "action": action, "occurred_at": now.to_string()}));
    let accepted = Event::validate(value, &tenant(tenant_id), now).unwrap_or_else(|v| panic!("{v:?}"));
    accepted.stamp(now)
}

async fn create(w: &World, tenant_id: &str, extra: &str) -> Value {
    w.rules.create(&tenant(tenant_id), "alice", &body(extra)).await.unwrap_or_else(|e| panic!("{e:?}"))
}

fn actions(w: &World, tenant_id: &str) -> Vec<String> {
    let mut a: Vec<String> = w.store.events(&tenant(tenant_id)).iter().map(|e| e.event.action.clone()).collect();
    a.sort();
    a
}

#[tokio::test]
async fn rules_are_created_read_changed_and_deleted_and_each_change_is_logged() {
    let w = world();
    let created = create(&w, "t-a", "").await;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    assert!(created["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")));
    assert_eq!(created["delivery"]["dead_letters"], 0);
    let got = w.rules.get(&tenant("t-a"), &id).await.ok().flatten().unwrap_or_default();
    assert_eq!(got["name"], "Deleted members");
    assert!(got.get("secret").is_none(), "the secret is shown once");
    assert_eq!(w.rules.list(&tenant("t-a")).await.ok().map(|l| l["items"].as_array().map(Vec::len)), Some(Some(1)));
    assert_eq!(w.rules.get(&tenant("t-b"), &id).await.ok().flatten(), None, "another tenant sees nothing");

    let changed = w.rules.update(&tenant("t-a"), "bob", &id, br#"{"name": "Gone", "rotate_secret": true}"#).await;
    let changed = changed.ok().flatten().unwrap_or_default();
    assert_eq!(changed["name"], "Gone");
    assert!(
        changed["secret"].as_str().is_some_and(|s| s.starts_with("whsec_") && Some(s) != created["secret"].as_str())
    );
    assert_eq!(w.rules.delete(&tenant("t-a"), "carol", &id).await.ok(), Some(true));
    assert_eq!(w.rules.delete(&tenant("t-a"), "carol", &id).await.ok(), Some(false));
    assert_eq!(actions(&w, "t-a"), ["audit_log.alert_create", "audit_log.alert_delete", "audit_log.alert_update"]);
    let update = w.store.events(&tenant("t-a")).into_iter().find(|e| e.event.action == "audit_log.alert_update");
    let doc: Value = serde_json::from_str(&update.map(|e| e.doc).unwrap_or_default()).unwrap_or_default();
    assert_eq!(doc["changes"], json!([{"field": "name", "old": "Deleted members", "new": "Gone"}]));
    assert_eq!(doc["actor"]["id"], "bob");
    assert!(!doc.to_string().contains("whsec_"), "no secret in the log");
    assert_eq!(doc["metadata"]["rule"]["destination"]["url"], "https://hooks.example.com/\u{2026}", "nor a path");
}

#[tokio::test]
async fn bad_bodies_foreign_topics_unresolvable_hosts_and_the_limit_are_refused() {
    let w = world();
    let e = w.rules.create(&tenant("t-a"), "a", br#"{"name": "x"}"#).await.err();
    assert_eq!(e.map(|e| e.code), Some(Code::InvalidRequest));
    let sns = |t: &str| {
        format!(
            r#"{{"name": "n", "match": {{"action": "a.b"}}, "destination": {{"type": "sns", "topic_arn": "{TOPICS}{t}"}}}}"#
        )
    };
    assert!(w.rules.create(&tenant("t-a"), "a", sns("t-a").as_bytes()).await.is_ok());
    let e = w.rules.create(&tenant("t-a"), "a", sns("t-b").as_bytes()).await.err();
    assert_eq!(
        e.map(|e| (e.code, e.details.first().map(|d| d["field"].as_str().unwrap_or_default().to_owned()))),
        Some((Code::InvalidRequest, Some("destination.topic_arn".into())))
    );
    w.notifier.refused_hosts.lock().map(|mut h| h.push("hooks.example.com".into())).unwrap_or_default();
    let e = w.rules.create(&tenant("t-a"), "a", &body("")).await.err();
    assert_eq!(
        e.map(|e| e.details.first().map(|d| d["field"].as_str().unwrap_or_default().to_owned())),
        Some(Some("destination.url".into()))
    );
    w.notifier.refused_hosts.lock().map(|mut h| h.clear()).unwrap_or_default();
    for _ in 1..crate::domain::alert::MAX_RULES_PER_TENANT {
        create(&w, "t-a", "").await;
    }
    let e = w.rules.create(&tenant("t-a"), "a", &body("")).await.err();
    assert_eq!(e.map(|e| e.code), Some(Code::Conflict));
    assert!(w.rules.create(&tenant("t-b"), "a", &body("")).await.is_ok(), "the limit is per tenant");
}

#[tokio::test]
async fn a_change_that_cannot_be_logged_is_undone() {
    let w = world();
    w.store.faults.add(Fault::after("put", 0).unavailable());
    let e = w.rules.create(&tenant("t-a"), "a", &body("")).await.err();
    assert_eq!(e.map(|e| e.code), Some(Code::Throttled));
    assert_eq!(w.alerts.list(&tenant("t-a")).await.map(|l| l.len()).ok(), Some(0));
}

#[tokio::test]
async fn one_delivery_per_matching_event_and_a_replayed_record_sends_nothing_more() {
    let w = world();
    let rule = create(&w, "t-a", "").await;
    for (id, action) in [("e1", "member.delete"), ("e2", "member.create"), ("e3", "member.delete")] {
        let done = w.evaluator.event_now(&event("t-a", id, action)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.notified, usize::from(action == "member.delete"));
    }
    let again = w.evaluator.event_now(&event("t-a", "e1", "member.delete")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again.matched, again.notified, again.replayed), (1, 0, 1));
    let sent = w.notifier.sent();
    assert_eq!(sent.iter().map(|(_, d, _)| d.event_ids.clone()).collect::<Vec<_>>(), [["e1"], ["e3"]]);
    let body: Value = serde_json::from_str(&sent[0].1.body).unwrap_or_default();
    assert_eq!(body["type"], "audit_log.alert");
    assert_eq!(body["data"]["rule"]["id"], rule["id"]);
    assert_eq!(body["data"]["events"][0]["id"], "e1");
    assert!(w.alerts.deliveries().iter().all(|d| d.status == Status::Delivered));
    assert!(
        w.evaluator.event_now(&event("t-b", "e9", "member.delete")).await.is_ok_and(|d| d.matched == 0),
        "tenant b"
    );
}

#[tokio::test]
async fn a_delivery_whose_first_attempt_was_cut_short_is_sent_when_the_record_comes_again() {
    let w = world();
    create(&w, "t-a", "").await;
    // Committed, then the retry queue and the record fail: the stream will retry.
    w.notifier.faults.add(Fault::after("send", 0).times(1));
    w.retries.faults.add(Fault::after("send", 0).times(1));
    assert!(w.evaluator.event_now(&event("t-a", "e1", "member.delete")).await.is_err());
    assert_eq!(w.alerts.deliveries()[0].status, Status::Pending);
    let again = w.evaluator.event_now(&event("t-a", "e1", "member.delete")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.replayed, 1);
    assert_eq!(w.notifier.sent().len(), 2);
    assert_eq!(w.alerts.deliveries()[0].status, Status::Delivered);
}

#[tokio::test]
async fn a_threshold_rule_notifies_once_per_burst() {
    let w = world();
    create(&w, "t-a", r#", "threshold": {"count": 5, "window_minutes": 5}, "quiet_minutes": 10"#).await;
    for i in 0..12 {
        w.evaluator.event_now(&event("t-a", &format!("e{i}"), "member.delete")).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let sent = w.notifier.sent();
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_str(&sent[0].1.body).unwrap_or_default();
    assert_eq!(body["data"]["count"], 5);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_on_the_schedule_then_dead_lettered() {
    let w = world();
    let rule = create(&w, "t-a", "").await;
    let id = rule["id"].as_str().unwrap_or_default();
    w.notifier.faults.add(Fault::after("send", 0));
    w.evaluator.event_now(&event("t-a", "e1", "member.delete")).await.unwrap_or_else(|e| panic!("{e}"));
    for n in 1..=2 {
        let messages = w.retries.messages();
        assert_eq!(messages.len(), n);
        let m: RetryMessage = serde_json::from_str(&messages[n - 1].body).unwrap_or_else(|e| panic!("{e}"));
        assert!(messages[n - 1].delay_seconds <= 1);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        w.deliverer
            .retry(&serde_json::to_string(&m).unwrap_or_default(), later())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(w.retries.messages().len(), 2, "no attempt after the last");
    let sent = w.notifier.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|(_, d, _)| d.id == sent[0].1.id), "one webhook-id for every attempt");
    let got = w.rules.get(&tenant("t-a"), id).await.ok().flatten().unwrap_or_default();
    assert_eq!(got["delivery"]["failed_attempts"], 3);
    assert_eq!(got["delivery"]["dead_letters"], 1);
    assert_eq!(got["delivery"]["last_error"], "HTTP 500");
    assert_eq!(got["delivery"]["last_dead_letter"]["event_ids"], json!(["e1"]));
    assert_eq!(w.alerts.deliveries()[0].status, Status::Dead);
}

#[tokio::test]
async fn an_early_retry_message_waits_again_and_a_foreign_one_is_refused() {
    let w = world();
    let due = Timestamp::now().plus_seconds(3600).micros();
    let m = json!({"tenant_id": "t-a", "rule_id": "r", "delivery_id": "d", "due_at": due, "attempt": 2}).to_string();
    assert!(w.deliverer.retry(&m, later()).await.is_ok());
    assert_eq!(w.retries.messages().iter().map(|m| m.delay_seconds).collect::<Vec<_>>(), [900]);
    assert!(w.deliverer.retry(r#"{"tenant_id": "t-a"}"#, later()).await.is_err());
    assert!(w.deliverer.retry(&m.replace("t-a", "t#a"), later()).await.is_err());
}

#[tokio::test]
async fn a_first_attempt_that_does_not_fit_in_the_invocation_is_queued_due_now() {
    let w = world();
    create(&w, "t-a", "").await;
    let done = w.evaluator.event(&event("t-a", "e1", "member.delete"), Instant::now()).await;
    assert_eq!(done.map(|d| d.notified).ok(), Some(1));
    assert!(w.notifier.sent().is_empty());
    let queued = w.retries.messages();
    assert_eq!(queued.iter().map(|m| m.delay_seconds).collect::<Vec<_>>(), [0]);
    assert_eq!(w.alerts.deliveries()[0].status, Status::Pending);
    w.deliverer.retry(&queued[0].body, later()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.notifier.sent().len(), 1);
    assert_eq!(w.alerts.deliveries()[0].status, Status::Delivered);
}

#[tokio::test]
async fn an_oversize_rule_is_413() {
    let w = world();
    let big = body(&format!(r#", "x": "{}""#, "a".repeat(20_000)));
    assert_eq!(w.rules.create(&tenant("t-a"), "a", &big).await.err().map(|e| e.code), Some(Code::PayloadTooLarge));
}

#[tokio::test]
async fn a_duplicate_retry_message_attempts_nothing_and_an_early_one_waits_for_the_record() {
    let w = world();
    create(&w, "t-a", "").await;
    w.notifier.faults.add(Fault::after("send", 0));
    w.evaluator.event_now(&event("t-a", "e1", "member.delete")).await.unwrap_or_else(|e| panic!("{e}"));
    let first: RetryMessage = serde_json::from_str(&w.retries.messages()[0].body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.attempt, 2);
    let due_now = RetryMessage { due_at: Timestamp::now().micros(), ..first.clone() };
    let body = serde_json::to_string(&due_now).unwrap_or_default();
    w.deliverer.retry(&body, later()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.notifier.sent().len(), 2);
    // The same message again (SQS delivers at least once): attempt 2 was made.
    w.deliverer.retry(&body, later()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.notifier.sent().len(), 2);
    // Attempt 4 before attempt 3 is recorded: it waits a second.
    let early = RetryMessage { attempt: 4, ..due_now };
    w.deliverer
        .retry(&serde_json::to_string(&early).unwrap_or_default(), later())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.notifier.sent().len(), 2);
    let last = w.retries.messages().last().map(|m| m.delay_seconds);
    assert_eq!(last, Some(1));
}

#[tokio::test]
async fn a_retry_that_does_not_fit_in_the_invocation_goes_round_again() {
    let w = world();
    let due = json!({"tenant_id": "t-a", "rule_id": "r", "delivery_id": "d", "due_at": 0, "attempt": 2}).to_string();
    w.deliverer.retry(&due, Instant::now()).await.unwrap_or_else(|e| panic!("{e}"));
    let sent: Vec<(Value, u32)> = w
        .retries
        .messages()
        .iter()
        .map(|m| (serde_json::from_str(&m.body).unwrap_or_default(), m.delay_seconds))
        .collect();
    assert_eq!(sent, [(serde_json::from_str::<Value>(&due).unwrap_or_default(), 0)]);
}
