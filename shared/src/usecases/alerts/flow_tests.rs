//! The alerts use cases end to end on the in-memory adapters: the API's rules and their
//! log, the stream's intake, and each tenant's work served in turns (judging matches,
//! rates and folding, deliveries retried to a dead letter, breakers, rule changes).

use super::{Intake, Rules, Worker};
use crate::domain::alerting::Limits;
use crate::domain::breaker::Pauses;
use crate::domain::delivery::{RetrySchedule, Status};
use crate::domain::egress::Egress;
use crate::domain::error::Code;
use crate::domain::event::{Event, StoredEvent};
use crate::domain::fixtures::with;
use crate::domain::rate::Rate;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::domain::turn::ALERTS;
use crate::memory::{Fault, MemoryAlerts, MemoryNotifier, MemoryQueue, MemoryStore, MemoryTurns};
use crate::ports::{AlertRules, Catalogs};
use crate::usecases::ingest::Ingest;
use crate::usecases::intake::Record;
use crate::usecases::turns::{Served, Turns};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPICS: &str = "arn:aws:sns:us-east-1:123456789012:audit-alerts-";

struct World {
    store: Arc<MemoryStore>,
    alerts: Arc<MemoryAlerts>,
    notifier: Arc<MemoryNotifier>,
    queue: Arc<MemoryQueue>,
    turns: Arc<MemoryTurns>,
    rules: Rules,
    intake: Intake,
    worker: Worker,
    served: Turns,
}

fn world() -> World {
    world_with(Limits::default())
}

fn world_with(limits: Limits) -> World {
    let store = Arc::new(MemoryStore::default());
    let alerts = Arc::new(MemoryAlerts::default());
    let notifier = Arc::new(MemoryNotifier::default());
    let queue = Arc::new(MemoryQueue::default());
    let turns = Arc::new(MemoryTurns::default());
    let rules = Rules {
        rules: alerts.clone(),
        notifier: notifier.clone(),
        ingest: Ingest::on(&store),
        egress: Egress::PUBLIC,
        topic_prefix: TOPICS.into(),
    };
    let served = Turns { kind: ALERTS, store: turns.clone(), queue: queue.clone(), hold: Duration::from_secs(60) };
    let intake = Intake::new(alerts.clone(), alerts.clone(), served.clone(), Duration::ZERO);
    let schedule = RetrySchedule::parse("1s,1s").unwrap_or_else(|e| panic!("{e}"));
    let mut worker = Worker::on(&alerts, &notifier, schedule, Duration::from_secs(1));
    worker.limits = limits;
    worker.pauses = Pauses { first_seconds: 1, max_seconds: 1 };
    World { store, alerts, notifier, queue, turns, rules, intake, worker, served }
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

/// A stream batch of `events` (stored first: the stream brings stored events), handed
/// over before a deadline a whole invocation away.
async fn arrive(w: &World, events: Vec<StoredEvent>) {
    for e in &events {
        w.store.insert(e.clone(), 0);
    }
    let records = events.into_iter().enumerate().map(|(i, e)| Record { sequence: i.to_string(), event: Some(e) });
    let left = w.intake.batch(records.collect(), Instant::now() + Duration::from_secs(60)).await;
    assert_eq!(left, None, "every record handed over");
}

/// Serves the turn messages that are due, as the queue's consumer would; how many.
async fn serve_due(w: &World) -> usize {
    let messages = w.queue.receive();
    for m in &messages {
        let served = w.served.serve(&m.body, &w.worker, Instant::now() + Duration::from_secs(60)).await;
        assert_eq!(served, Served::Done);
    }
    messages.len()
}

/// Serves turns until `done` holds, for at most `seconds`.
async fn serve_until(w: &World, seconds: u64, done: impl Fn(&World) -> bool) {
    let until = Instant::now() + Duration::from_secs(seconds);
    while !done(w) {
        assert!(Instant::now() < until, "not done within {seconds} s");
        if serve_due(w).await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn create_for(w: &World, tenant_id: &str, url: &str, extra: &str) -> String {
    let body = format!(
        r#"{{"name": "Deleted members", "match": {{"action": "member.delete"}},
            "destination": {{"type": "webhook", "url": "{url}"}}{extra}}}"#
    );
    let created =
        w.rules.create(&tenant(tenant_id), "alice", body.as_bytes()).await.unwrap_or_else(|e| panic!("{e:?}"));
    created["id"].as_str().unwrap_or_default().to_owned()
}

fn bodies(w: &World) -> Vec<Value> {
    w.notifier.sent().iter().map(|(_, d, _)| serde_json::from_str(&d.body).unwrap_or_default()).collect()
}

fn settled(w: &World, t: &str) -> bool {
    w.alerts.agenda_len(&tenant(t)) == 0 && w.queue.waiting() == 0
}

#[tokio::test]
async fn one_delivery_per_matching_event_and_a_replayed_record_sends_nothing_more() {
    let w = world();
    let rule = create(&w, "t-a", ", \"quiet_minutes\": 0").await;
    let events = vec![
        event("t-a", "e1", "member.delete"),
        event("t-a", "e2", "member.create"),
        event("t-a", "e3", "member.delete"),
    ];
    arrive(&w, events.clone()).await;
    arrive(&w, vec![event("t-b", "e9", "member.delete")]).await;
    assert_eq!(w.queue.waiting(), 1, "one turn for the tenant with matches, however many");
    serve_until(&w, 5, |w| settled(w, "t-a")).await;
    // The stream reads a record again: its entry comes back, and its marker stops it.
    arrive(&w, vec![events[0].clone()]).await;
    serve_until(&w, 5, |w| settled(w, "t-a")).await;
    let sent = w.notifier.sent();
    assert_eq!(sent.iter().map(|(_, d, _)| d.event_ids.clone()).collect::<Vec<_>>(), [["e1"], ["e3"]]);
    let body = &bodies(&w)[0];
    assert_eq!(body["type"], "audit_log.alert");
    assert_eq!(body["data"]["rule"]["id"], rule["id"]);
    assert_eq!(body["data"]["events"][0]["id"], "e1");
    assert!(body["data"]["rule"].get("destination").is_none(), "no URL in the body");
    assert!(w.alerts.deliveries().iter().all(|d| d.status == Status::Delivered));
    assert_eq!(w.turns.token(ALERTS, &tenant("t-a")), None, "nothing left: the turn ended");
}

#[tokio::test]
async fn a_threshold_rule_notifies_once_per_burst() {
    let w = world();
    create(&w, "t-a", r#", "threshold": {"count": 5, "window_minutes": 5}, "quiet_minutes": 10"#).await;
    arrive(&w, (0..12).map(|i| event("t-a", &format!("e{i}"), "member.delete")).collect()).await;
    serve_until(&w, 5, |w| settled(w, "t-a")).await;
    let bodies = bodies(&w);
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["data"]["count"], 5);
}

#[tokio::test]
async fn thresholds_and_quiet_periods_run_on_arrival_never_on_the_clients_clock() {
    let w = world();
    create(&w, "t-a", r#", "threshold": {"count": 3, "window_minutes": 5}, "quiet_minutes": 10"#).await;
    // Three events that arrive together but say they occurred days apart (an imported
    // history): a burst by arrival, so the threshold is reached...
    let now = Timestamp::now();
    let told = |i: i64, id: &str| {
        let value = with(
            json!({"id": id, "action": "member.delete", "occurred_at": now.plus_seconds(-i * 86_400).to_string()}),
        );
        Event::validate(value, &tenant("t-a"), now).unwrap_or_else(|v| panic!("{v:?}")).stamp(now)
    };
    arrive(&w, vec![told(0, "e0"), told(3, "e1"), told(6, "e2")]).await;
    serve_until(&w, 5, |w| settled(w, "t-a")).await;
    assert_eq!(bodies(&w).len(), 1, "reached by arrival");
    // ...and three more, which say they occurred a year before, arrive within the quiet
    // period: nothing more is sent.
    arrive(&w, (3..6).map(|i| told(365 + i, &format!("e{i}"))).collect()).await;
    serve_until(&w, 5, |w| settled(w, "t-a")).await;
    assert_eq!(bodies(&w).len(), 1, "quiet by arrival");
}

#[tokio::test]
async fn a_failing_receiver_is_retried_on_the_schedule_then_dead_lettered() {
    let w = world();
    let rule = create(&w, "t-a", "").await;
    let id = rule["id"].as_str().unwrap_or_default();
    w.notifier.faults.add(Fault::after("send", 0));
    arrive(&w, vec![event("t-a", "e1", "member.delete")]).await;
    serve_until(&w, 10, |w| w.alerts.deliveries().first().is_some_and(|d| d.status == Status::Dead)).await;
    let sent = w.notifier.sent();
    assert_eq!(sent.len(), 3, "the first attempt and two retries");
    assert!(sent.iter().all(|(_, d, _)| d.id == sent[0].1.id), "one webhook-id for every attempt");
    for pair in sent.windows(2) {
        assert!(pair[1].2.micros() - pair[0].2.micros() >= 1_000_000, "never early");
    }
    let got = w.rules.get(&tenant("t-a"), id).await.ok().flatten().unwrap_or_default();
    assert_eq!(got["delivery"]["failed_attempts"], 3);
    assert_eq!(got["delivery"]["dead_letters"], 1);
    assert_eq!(got["delivery"]["last_error"], "HTTP 500");
    assert_eq!(got["delivery"]["last_dead_letter"]["event_ids"], json!(["e1"]));
    serve_until(&w, 5, |w| settled(w, "t-a")).await;
}

#[tokio::test]
async fn a_tenants_backlog_never_stands_before_another_tenants_first_attempt() {
    let w = world();
    for _ in 0..100 {
        create_for(&w, "t-a", "https://a.example.com/in", r#", "quiet_minutes": 0"#).await;
    }
    create_for(&w, "t-b", "https://b.example.com/in", r#", "quiet_minutes": 0"#).await;
    arrive(&w, (0..50).map(|i| event("t-a", &format!("a{i}"), "member.delete")).collect()).await;
    arrive(&w, vec![event("t-b", "b1", "member.delete")]).await;
    // One turn per tenant, in the order they came: A's 5,000 matches are A's turn's work.
    let turns = w.queue.receive();
    assert_eq!(turns.len(), 2);
    assert!(turns[0].body.contains("t-a") && turns[1].body.contains("t-b"));
    // B's turn, served beside A's (another worker), is done at once.
    let b = w.served.serve(&turns[1].body, &w.worker, Instant::now() + Duration::from_secs(60)).await;
    assert_eq!(b, Served::Done);
    let to_b: Vec<_> = w.notifier.sent().into_iter().filter(|(_, d, _)| d.tenant_id == tenant("t-b")).collect();
    assert_eq!(to_b.len(), 1);
    assert!(w.notifier.sent().iter().all(|(_, d, _)| d.tenant_id == tenant("t-b")), "none of A's work was done");
    assert!(w.alerts.agenda_len(&tenant("t-a")) > 0);
}

#[tokio::test]
async fn a_burst_past_the_rates_is_folded_and_the_counts_add_up_to_the_matches() {
    let limits = Limits { rule: Rate::per_minute(600), tenant: Rate::per_minute(60) };
    let w = world_with(limits);
    create(&w, "t-a", r#", "quiet_minutes": 0"#).await;
    create(&w, "t-a", r#", "quiet_minutes": 0"#).await;
    arrive(&w, (0..150).map(|i| event("t-a", &format!("e{i:03}"), "member.delete")).collect()).await;
    serve_until(&w, 10, |w| settled(w, "t-a")).await;
    let bodies = bodies(&w);
    // Two rules, 150 matches each, 60 notifications a minute for the tenant: 60 at once,
    // then each rule's folded rest in one more as soon as the tenant's bucket has room.
    assert!(bodies.len() <= 60 + 2, "{} notifications", bodies.len());
    let counts: u64 = bodies.iter().map(|b| b["data"]["count"].as_u64().unwrap_or_default()).sum();
    assert_eq!(counts, 300, "every match stands in exactly one notification");
    let folded: Vec<&Value> = bodies.iter().filter(|b| b["data"]["folded"].as_u64() > Some(0)).collect();
    assert!(!folded.is_empty());
    for b in folded {
        assert_eq!(b["data"]["event_ids"].as_array().map(Vec::len), Some(10), "the first ten named");
    }
}

#[tokio::test]
async fn a_failing_destination_is_paused_probed_and_resumed() {
    let mut w = world();
    // Retries later than the pauses, so no delivery outlives its schedule meanwhile.
    w.worker.schedule = RetrySchedule::parse("5s,5s").unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..3 {
        create(&w, "t-a", r#", "quiet_minutes": 0"#).await;
    }
    w.notifier.faults.add(Fault::after("send", 0).times(6));
    arrive(&w, (0..4).map(|i| event("t-a", &format!("e{i}"), "member.delete")).collect()).await;
    // 12 deliveries to one destination: five fail and pause it; the rest wait, unspent;
    // the probe after the pause fails; the next probe gets through and the rest follow.
    serve_until(&w, 20, |w| {
        let all = w.alerts.deliveries();
        all.len() == 12 && all.iter().all(|d| d.status.is_final())
    })
    .await;
    let delivered = w.alerts.deliveries().iter().filter(|d| d.status == Status::Delivered).count();
    let errors: Vec<_> = w.alerts.deliveries().iter().map(|d| (d.status, d.attempts, d.last_error.clone())).collect();
    assert_eq!(delivered, 12, "every delivery went once the destination was back: {errors:?}");
    let sends = w.notifier.sent().len();
    assert_eq!(sends, 6 + 12, "six failures (five that paused it, one probe), then each once");
}

#[tokio::test]
async fn retries_end_when_the_rule_is_disabled_deleted_or_pointed_elsewhere() {
    for (change, why) in [
        (r#"{"enabled": false}"#, "the rule was disabled"),
        (
            r#"{"destination": {"type": "webhook", "url": "https://other.example.com/in"}}"#,
            "the rule's destination changed",
        ),
        ("delete", "the rule was deleted"),
    ] {
        let w = world();
        let id = create_for(&w, "t-a", "https://hooks.example.com/in?token=s3cret", "").await;
        w.notifier.faults.add(Fault::after("send", 0).times(1));
        arrive(&w, vec![event("t-a", "e1", "member.delete")]).await;
        serve_until(&w, 5, |w| w.notifier.sent().len() == 1).await;
        if change == "delete" {
            assert_eq!(w.rules.delete(&tenant("t-a"), "bob", &id).await.ok(), Some(true));
        } else {
            w.rules.update(&tenant("t-a"), "bob", &id, change.as_bytes()).await.unwrap_or_else(|e| panic!("{e:?}"));
        }
        serve_until(&w, 5, |w| w.alerts.deliveries().first().is_some_and(|d| d.status.is_final())).await;
        let d = &w.alerts.deliveries()[0];
        assert_eq!((d.status, d.last_error.as_deref()), (Status::Dead, Some(why)), "{change}");
        assert_eq!(w.notifier.sent().len(), 1, "{change}: no attempt after the change");
        assert!(!d.body.contains("s3cret") && !d.body.contains("hooks.example.com"));
    }
}

#[tokio::test]
async fn a_batch_near_its_deadline_hands_over_nothing_it_cannot_finish() {
    let w = world();
    create(&w, "t-a", "").await;
    let records = vec![Record { sequence: "s1".into(), event: Some(event("t-a", "e1", "member.delete")) }];
    assert_eq!(w.intake.batch(records, Instant::now()).await.as_deref(), Some("s1"));
    assert_eq!(w.alerts.agenda_len(&tenant("t-a")), 0);
    assert_eq!(w.queue.waiting(), 0);
    // Storage down while handing over: the batch is read again from the first matched record.
    w.alerts.faults.add(Fault::after("put", 0).unavailable().times(1));
    let records = vec![
        Record { sequence: "s1".into(), event: None },
        Record { sequence: "s2".into(), event: Some(event("t-a", "e2", "member.delete")) },
    ];
    assert_eq!(w.intake.batch(records, Instant::now() + Duration::from_secs(60)).await.as_deref(), Some("s2"));
}

#[tokio::test]
async fn the_action_counts_take_only_what_the_stream_will_not_deliver_again() {
    let w = world();
    create(&w, "t-a", "").await;
    let counts = crate::usecases::counts::ActionCounts::new(w.store.clone());
    let count = async || {
        let read = w.store.actions(&tenant("t-a"), None, 10).await.unwrap_or_else(|e| panic!("{e}"));
        read.items.into_iter().find(|a| a.action == "doc.edit").map_or(0, |a| a.count)
    };
    let records = |ids: &[&str]| -> Vec<Record> {
        let r = |id: &&str| Record { sequence: format!("s-{id}"), event: Some(event("t-a", id, "doc.edit")) };
        ids.iter().map(r).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    assert_eq!(w.intake.batch_and_count(&counts, records(&["a", "b"]), deadline).await, None);
    assert_eq!(count().await, 2);
    // Handing over fails at the matched record "d": "c" before it is counted, "d" and
    // "e" come again with the stream and are counted then.
    w.alerts.faults.add(Fault::after("put", 0).unavailable().times(1));
    let mut batch = records(&["c"]);
    batch.push(Record { sequence: "s-d".into(), event: Some(event("t-a", "d", "member.delete")) });
    batch.extend(records(&["e"]));
    assert_eq!(w.intake.batch_and_count(&counts, batch, deadline).await.as_deref(), Some("s-d"));
    assert_eq!(count().await, 3);
}

#[tokio::test]
async fn an_oversize_rule_is_413() {
    let w = world();
    let big = body(&format!(r#", "x": "{}""#, "a".repeat(20_000)));
    assert_eq!(w.rules.create(&tenant("t-a"), "a", &big).await.err().map(|e| e.code), Some(Code::PayloadTooLarge));
}
