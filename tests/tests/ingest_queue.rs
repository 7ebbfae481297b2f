//! The ingest queue end to end: moto's SQS server, the consumer code path the Lambda
//! entry point and the local runner share, DynamoDB Local.

mod common;

use audit::domain::fixtures::bad_events;
use audit::domain::tenant::TenantId;
use audit::ports::{EventReader, Lookup};
use audit::usecases::consume::Consumer;
use audit::usecases::ingest::Ingest;
use audit_aws::dynamodb::Table;
use audit_aws::retry::Backoff;
use audit_aws::sqs::Queue;
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A queue with its own dead-letter queue, for this test alone.
struct Queues {
    sqs: aws_sdk_sqs::Client,
    url: String,
    dlq: String,
}

async fn queues() -> Queues {
    let sqs = audit_aws::sdk::sqs(&sdk().await);
    let name = format!("t-{}", uuid::Uuid::now_v7().simple());
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap_or_else(|e| panic!("{e:?}"));
    let dlq = dlq.queue_url.unwrap_or_default();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .ok()
        .and_then(|o| o.attributes)
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": "5"}).to_string(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .queue_url
        .unwrap_or_default();
    Queues { sqs, url, dlq }
}

impl Queues {
    async fn send(&self, body: String) {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
    }

    /// One delivery, handled as the Lambda entry point and the local runner do.
    async fn poll(&self, store: &Arc<Table>, wait_seconds: i32) -> usize {
        let consumer =
            Consumer { ingest: Ingest::on(store), dead_letters: Arc::new(Queue::new(self.sqs.clone(), &self.dlq)) };
        let queue = Queue::new(self.sqs.clone(), &self.url);
        let metrics = audit_runtime::metrics::Metrics::default();
        let polled =
            audit_local::poll(&queue, 10, wait_seconds, |e| ingest::handle_queue(&consumer, &metrics, e)).await;
        polled.unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// Polls until the queue stays empty.
    async fn drain(&self, store: &Arc<Table>) {
        let mut idle = 0;
        while idle < 2 {
            let n = self.poll(store, 0).await;
            idle = if n == 0 { idle + 1 } else { 0 };
        }
    }

    /// Every dead letter: its body and its `audit_error` attribute.
    async fn dead_letters(&self) -> Vec<(Value, Value)> {
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                let body = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get("audit_error"))
                    .and_then(|v| v.string_value())
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null);
                out.push((body, reason));
                if let Some(r) = m.receipt_handle() {
                    let _ = self.sqs.delete_message().queue_url(&self.dlq).receipt_handle(r).send().await;
                }
            }
        }
    }
}

fn message(tenant: &TenantId, event: &Value) -> String {
    let mut m = event.clone();
    if let Value::Object(o) = &mut m {
        o.insert("tenant_id".into(), json!(tenant.as_str()));
    }
    m.to_string()
}

#[tokio::test]
async fn bad_events_go_to_the_dead_letter_queue_with_their_reason() {
    // Given: each bad event in its own message, plus a batch mixing good and bad
    let tenant = new_tenant();
    let q = queues().await;
    let store = store(None).await;
    // `tenant_id` is the queue format's own field, so that row does not apply here.
    let table: Vec<_> =
        bad_events().into_iter().filter(|(raw, field, _)| raw.is_object() && *field != "tenant_id").collect();
    for (raw, _, _) in &table {
        q.send(message(&tenant, raw)).await;
    }
    q.send(json!({"tenant_id": tenant.as_str(), "events": [event("q-good", "a.b"), {"action": "A"}]}).to_string())
        .await;
    q.send("not json at all".into()).await;

    // When
    q.drain(&store).await;

    // Then: the good event stored, every bad one dead-lettered with its own reason
    assert!(store.get(&tenant, "q-good").await.ok().and_then(Lookup::online).is_some());
    assert_eq!(count_events(&tenant).await, 1);
    let dead = q.dead_letters().await;
    assert_eq!(dead.len(), table.len() + 2, "{dead:?}");
    for (raw, field, reason) in &table {
        let reason = serde_json::to_value(reason).unwrap_or_default();
        // A message of one event is dead-lettered as it was sent, `tenant_id` and all.
        let sent: Value = serde_json::from_str(&message(&tenant, raw)).unwrap_or_default();
        let hit = dead.iter().any(|(body, why)| {
            *body == sent
                && why[0]["error"]["details"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|v| v["field"] == *field && v["reason"] == reason))
        });
        assert!(hit, "no dead letter for {field}/{reason}");
    }
    assert!(dead.iter().any(|(body, why)| body["events"] == json!([{"action": "A"}]) && why[0]["index"] == 1));
    assert!(
        dead.iter().any(|(body, why)| body.is_null() && why[0]["message"].as_str().is_some_and(|m| m.contains("JSON")))
    );
}

#[tokio::test]
async fn the_same_message_delivered_twice_stores_each_event_once() {
    let tenant = new_tenant();
    let q = queues().await;
    let store = store(None).await;
    let body = json!({"tenant_id": tenant.as_str(), "events": (0..25).map(|i| event(&format!("m-{i}"), "db.update")).collect::<Vec<_>>()}).to_string();
    q.send(body.clone()).await;
    q.send(body).await;
    q.drain(&store).await;
    assert_eq!(count_events(&tenant).await, 25);
    assert!(q.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_transient_failure_returns_the_message_to_the_queue_not_the_dlq() {
    // Given: a DynamoDB that does not answer
    let tenant = new_tenant();
    let q = queues().await;
    let fast = Backoff { attempts: 2, base: Duration::from_millis(5), cap: Duration::from_millis(10) };
    let down = store_with_backoff(Some("http://127.0.0.1:9"), fast).await;
    q.send(message(&tenant, &event("t-1", "a.b"))).await;

    // When: one delivery fails
    let n = q.poll(&down, 1).await;
    assert_eq!(n, 1);
    assert_eq!(count_events(&tenant).await, 0);

    // Then: the message comes back (visibility 1 s) and is stored once DynamoDB is back;
    // it is polled for until it is, however long a busy machine makes that take
    let up = store(None).await;
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while count_events(&tenant).await == 0 {
        assert!(std::time::Instant::now() < give_up, "the message never came back from the queue");
        q.poll(&up, 1).await;
    }
    q.drain(&up).await;
    assert_eq!(count_events(&tenant).await, 1);
    assert!(q.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_conflicting_reuse_of_an_id_is_dead_lettered_and_the_original_kept() {
    let tenant = new_tenant();
    let q = queues().await;
    let store = store(None).await;
    q.send(message(&tenant, &event("c-1", "a.b"))).await;
    q.drain(&store).await;
    let original = store.get(&tenant, "c-1").await.ok().and_then(Lookup::online).map(|e| e.hash);
    q.send(message(&tenant, &event("c-1", "a.changed"))).await;
    q.drain(&store).await;
    let dead = q.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1[0]["error"]["code"], "conflict");
    assert_eq!(store.get(&tenant, "c-1").await.ok().and_then(Lookup::online).map(|e| e.hash), original);
}
