//! The alerts' AWS adapters against the real servers: rules, states, agendas, turns and
//! deliveries in DynamoDB Local; webhooks to a receiver on loopback; SNS in moto, read
//! back through an SQS subscription.

mod common;

use audit::domain::alert::{MAX_RULES_PER_TENANT, Rule, parse_new, parse_patch};
use audit::domain::alerting::{Folded, RuleState};
use audit::domain::delivery::{Delivery, RetrySchedule, Status};
use audit::domain::egress::{Egress, Host, WebhookUrl, parse_url};
use audit::domain::event::{Event, StoredEvent};
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::domain::webhook::{Headers, Secret, Secrets, delivery_id, verify};
use audit::ports::{AlertAgenda, AlertInbox, AlertRules, AlertState, Applied, Bulk, Deliveries, Due, Matched};
use audit::ports::{Noted, Notifier, Passed, RuleChange, RuleWriteError, SendError, Take, TurnStore};
use audit_aws::dynamodb::Table;
use audit_aws::notify::Outbound;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::new_tenant;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rule(tenant: &TenantId, name: &str) -> Rule {
    let body = json!({"name": name, "match": {"action": "auth.login", "outcome": "failure"},
        "threshold": {"count": 3, "window_minutes": 5},
        "destination": {"type": "webhook", "url": "https://hooks.example.com/in?token=t"}});
    let settings = parse_new(body.to_string().as_bytes(), Egress::PUBLIC).unwrap_or_else(|v| panic!("{v:?}"));
    Rule::create(settings, tenant, Timestamp::now()).0
}

fn delivery(r: &Rule, event_id: &str) -> Delivery {
    Delivery {
        id: delivery_id(&r.id, event_id),
        tenant_id: r.tenant_id.clone(),
        rule_id: r.id.clone(),
        destination: r.settings.destination.key(),
        event_ids: vec![event_id.to_owned()],
        body: json!({"type": "audit_log.alert", "data": {"events": [{"id": event_id}]}}).to_string(),
        created_at: Timestamp::now(),
        status: Status::Pending,
        attempts: 0,
        last_error: None,
    }
}

async fn created(store: &Table, r: &Rule) {
    store.create(r).await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_tenant_creates_rules_up_to_the_limit_and_deleting_one_makes_room() {
    let store = common::store(None).await;
    let t = new_tenant();
    let rules: Vec<Rule> = (0..MAX_RULES_PER_TENANT).map(|i| rule(&t, &format!("r{i}"))).collect();
    for r in &rules {
        created(&store, r).await;
    }
    assert!(matches!(store.create(&rule(&t, "one more")).await, Err(RuleWriteError::Limit)));
    let listed = store.list(&t).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.iter().map(|s| &s.rule).collect::<Vec<_>>(), rules.iter().collect::<Vec<_>>(), "oldest first");
    assert!(store.delete(&t, &rules[7].id).await.unwrap_or_else(|e| panic!("{e}")));
    created(&store, &rule(&t, "in its place")).await;
    assert!(matches!(store.create(&rule(&t, "still full")).await, Err(RuleWriteError::Limit)));
    // Another tenant's limit is its own.
    created(&store, &rule(&new_tenant(), "elsewhere")).await;
}

#[tokio::test]
async fn concurrent_creations_never_pass_the_limit() {
    let store = common::store(None).await;
    let t = new_tenant();
    let before = MAX_RULES_PER_TENANT - 10;
    for i in 0..before {
        created(&store, &rule(&t, &format!("r{i}"))).await;
    }
    let racing = (0..30).map(|i| {
        let (store, r) = (store.clone(), rule(&t, &format!("racer {i}")));
        tokio::spawn(async move { store.create(&r).await })
    });
    let outcomes = futures::future::join_all(racing).await;
    let mut ok = 0;
    for o in outcomes {
        match o.unwrap_or_else(|e| panic!("{e}")) {
            Ok(()) => ok += 1,
            Err(RuleWriteError::Limit) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(store.list(&t).await.unwrap_or_else(|e| panic!("{e}")).len(), MAX_RULES_PER_TENANT);
}

#[tokio::test]
async fn a_replace_applies_only_over_the_version_it_was_read_at() {
    let store = common::store(None).await;
    let t = new_tenant();
    let first = rule(&t, "first");
    created(&store, &first).await;
    let read_at = first.updated_at;

    let mut renamed = first.clone();
    let patch = parse_patch(br#"{"name": "renamed", "rotate_secret": true}"#, Egress::PUBLIC)
        .unwrap_or_else(|v| panic!("{v:?}"));
    let secret = renamed.apply(patch, read_at.plus_seconds(1));
    assert!(secret.is_some());
    assert!(store.replace(&renamed, read_at).await.unwrap_or_else(|e| panic!("{e}")));
    let stored = store.get(&t, &first.id).await.unwrap_or_else(|e| panic!("{e}")).map(|s| s.rule);
    assert_eq!(stored.as_ref(), Some(&renamed));

    // A writer that read the rule before the rename loses.
    let mut stale = first.clone();
    stale.settings.enabled = false;
    stale.updated_at = read_at.plus_seconds(2);
    assert!(!store.replace(&stale, read_at).await.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(store.get(&t, &first.id).await.ok().flatten().map(|s| s.rule), Some(renamed.clone()));

    // A deleted rule is not brought back.
    assert!(store.delete(&t, &first.id).await.unwrap_or_else(|e| panic!("{e}")));
    assert!(!store.replace(&stale, renamed.updated_at).await.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(store.get(&t, &first.id).await.ok().flatten(), None);
}

fn event(tenant: &TenantId, id: &str) -> StoredEvent {
    let now = Timestamp::now();
    let value =
        json!({"id": id, "action": "auth.login", "outcome": "failure", "actor": {"type": "member", "id": "u-1"}});
    Event::validate(value, tenant, now).unwrap_or_else(|v| panic!("{v:?}")).stamp(now)
}

fn change(rule_id: &str, version: u64, next: RuleState, delivery: Option<Delivery>) -> RuleChange {
    RuleChange { rule_id: rule_id.to_owned(), version, next, delivery, schedule_flush: None, cancel_flush: None }
}

#[tokio::test]
async fn a_delete_takes_the_state_with_it_and_finds_nothing_the_second_time() {
    let store = common::store(None).await;
    let t = new_tenant();
    let r = rule(&t, "r");
    created(&store, &r).await;
    let m = Matched { event: event(&t, "e1"), rules: vec![r.id.clone()], part: 0 };
    store.put(std::slice::from_ref(&m)).await.unwrap_or_else(|e| panic!("{e}"));
    let state = RuleState { minutes: vec![(1, 2)], ..RuleState::default() };
    assert_eq!(store.apply(&m, &[change(&r.id, 0, state, None)]).await.ok(), Some(Applied::Done));
    assert!(store.delete(&t, &r.id).await.unwrap_or_else(|e| panic!("{e}")));
    assert!(!store.delete(&t, &r.id).await.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(store.get(&t, &r.id).await.ok().flatten(), None);
    assert_eq!(store.state(&t, &r.id).await.ok(), Some((RuleState::default(), 0)));
    assert!(store.list(&t).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
}

#[tokio::test]
async fn the_agenda_holds_matched_events_attempts_and_flushes_in_time_order() {
    let store = common::store(None).await;
    let t = new_tenant();
    let r = rule(&t, "r");
    created(&store, &r).await;
    assert_eq!(store.next_due(&t).await.ok(), Some(None));
    let m = Matched { event: event(&t, "evt/1:@x"), rules: vec![r.id.clone(), "other".into()], part: 1 };
    // Put twice (a stream record read twice): one entry.
    store.put(&[m.clone(), m.clone()]).await.unwrap_or_else(|e| panic!("{e}"));
    store.put(std::slice::from_ref(&m)).await.unwrap_or_else(|e| panic!("{e}"));
    let due = store.due(&t, Timestamp::now(), 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(due, vec![Due::Matched(Box::new(m.clone()))]);
    assert_eq!(store.next_due(&t).await.ok().flatten(), Some(m.event.received_at));
    assert!(store.due(&new_tenant(), Timestamp::now(), 10).await.is_ok_and(|d| d.is_empty()), "another tenant's");

    // Applied: the entry goes, a delivery and its first attempt and a flush come.
    let d = delivery(&r, "evt/1:@x");
    let flush_at = Timestamp::now().plus_seconds(30);
    let folded = Folded { count: 2, named: vec!["a".into()], flush_at };
    let next = RuleState { folded: Some(folded), ..RuleState::default() };
    let c = RuleChange { schedule_flush: Some(flush_at), ..change(&r.id, 0, next.clone(), Some(d.clone())) };
    assert_eq!(store.apply(&m, std::slice::from_ref(&c)).await.ok(), Some(Applied::Done));
    assert_eq!(store.state(&t, &r.id).await.ok(), Some((next.clone(), 1)));
    assert_eq!(store.delivery(&t, &r.id, &d.id).await.ok().flatten(), Some(d.clone()));
    let due = store.due(&t, Timestamp::now(), 10).await.unwrap_or_else(|e| panic!("{e}"));
    let attempt = Due::Attempt { rule_id: r.id.clone(), delivery_id: d.id.clone(), due: d.created_at };
    assert_eq!(due, vec![attempt]);
    let later = store.due(&t, flush_at, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(later.last(), Some(&Due::Flush { rule_id: r.id.clone(), due: flush_at }));

    // The record comes again from the stream: its marker stops it, and only the entry goes.
    store.put(std::slice::from_ref(&m)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.apply(&m, &[change(&r.id, 1, RuleState::default(), None)]).await.ok(), Some(Applied::Replayed));
    assert_eq!(store.state(&t, &r.id).await.ok(), Some((next.clone(), 1)));
    assert_eq!(store.apply(&m, &[]).await.ok(), Some(Applied::Gone), "gone: another worker applied it");

    // A flush: its entry goes with the change it makes.
    let sent = RuleState { bucket: Some(flush_at), ..RuleState::default() };
    let d2 = delivery(&r, "a");
    let flushed = store.flush(&t, &r.id, flush_at, Some(&change(&r.id, 1, sent.clone(), Some(d2.clone())))).await;
    assert_eq!(flushed.ok(), Some(Applied::Done));
    assert_eq!(store.flush(&t, &r.id, flush_at, None).await.ok(), Some(Applied::Gone));
    assert_eq!(store.state(&t, &r.id).await.ok(), Some((sent, 2)));
    let due = store.due(&t, flush_at, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(due.len(), 2, "the two deliveries' attempts: {due:?}");
}

#[tokio::test]
async fn the_largest_bulk_entry_fits_an_item_reads_back_whole_and_goes_once_unpacked() {
    let store = common::store(None).await;
    let t = new_tenant();
    // A tenant with the most rules, its events the largest an event may be (text that
    // does not compress), each matching every rule, as many as the stream packs in one.
    let rules: Vec<String> = (0..MAX_RULES_PER_TENANT).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let all: Vec<u16> = (0..u16::try_from(rules.len()).unwrap_or(u16::MAX)).collect();
    let big = |i: usize| {
        let noise = || -> String { (0..30_000).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect() };
        let value = json!({"id": format!("{i:0>128}"), "action": "auth.login", "actor": {"type": "member", "id": "u-1"},
            "metadata": {"n": noise()},
            "changes": [{"field": "f", "old": noise(), "new": null}]});
        let event = Event::validate(value, &t, Timestamp::now()).unwrap_or_else(|v| panic!("{v:?}"));
        (event.stamp(Timestamp::now()), all.clone())
    };
    let events: Vec<(StoredEvent, Vec<u16>)> = (0..3).map(big).collect();
    assert!(events.iter().map(|(e, _)| e.doc.len() + 264).sum::<usize>() <= audit::ports::BULK_BYTES);
    let bulk = Bulk { tenant: t.clone(), due: Timestamp::now(), rules, events };
    // Put twice (a batch read again): one entry.
    store.put_bulks(&[bulk.clone(), bulk.clone()]).await.unwrap_or_else(|e| panic!("{e}"));
    store.put_bulks(std::slice::from_ref(&bulk)).await.unwrap_or_else(|e| panic!("{e}"));
    let due = store.due(&t, Timestamp::now(), 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(due, vec![Due::Bulk(Box::new(bulk.clone()))]);
    store.unpacked(&bulk).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.next_due(&t).await.ok(), Some(None));
}

#[tokio::test]
async fn applying_over_a_state_that_moved_is_a_conflict_and_changes_nothing() {
    let store = common::store(None).await;
    let t = new_tenant();
    let r = rule(&t, "r");
    created(&store, &r).await;
    let one = RuleState { minutes: vec![(29_000_000, 1)], ..RuleState::default() };
    let m1 = Matched { event: event(&t, "e1"), rules: vec![r.id.clone()], part: 0 };
    let m2 = Matched { event: event(&t, "e2"), rules: vec![r.id.clone()], part: 0 };
    store.put(&[m1.clone(), m2.clone()]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.apply(&m1, &[change(&r.id, 0, one.clone(), None)]).await.ok(), Some(Applied::Done));
    let d2 = delivery(&r, "e2");
    let stale = store.apply(&m2, &[change(&r.id, 0, RuleState::default(), Some(d2.clone()))]).await;
    assert_eq!(stale.ok(), Some(Applied::Conflict(vec![r.id.clone()])));
    assert_eq!(store.delivery(&t, &r.id, &d2.id).await.ok().flatten(), None, "nothing of it stayed");
    assert_eq!(store.state(&t, &r.id).await.ok(), Some((one, 1)));
    assert_eq!(store.apply(&m2, &[change(&r.id, 1, RuleState::default(), Some(d2))]).await.ok(), Some(Applied::Done));
}

#[tokio::test]
async fn recording_attempts_moves_the_delivery_its_agenda_entry_and_the_rules_summary() {
    let store = common::store(None).await;
    let t = new_tenant();
    let r = rule(&t, "r");
    created(&store, &r).await;
    let schedule = RetrySchedule::parse("1s").unwrap_or_else(|e| panic!("{e}"));
    let m = Matched { event: event(&t, "e1"), rules: vec![r.id.clone()], part: 0 };
    store.put(std::slice::from_ref(&m)).await.unwrap_or_else(|e| panic!("{e}"));
    let d = delivery(&r, "e1");
    assert_eq!(
        store.apply(&m, &[change(&r.id, 0, RuleState::default(), Some(d.clone()))]).await.ok(),
        Some(Applied::Done)
    );
    let t1 = Timestamp::now();

    // A failure, retried later: the entry moves to the retry.
    let first = d.attempt(t1, Some("HTTP 503".into()), &schedule);
    assert_eq!(first.status, Status::Retrying);
    store.record(&d, d.created_at, &first).await.unwrap_or_else(|e| panic!("{e}"));
    let after = store.delivery(&t, &r.id, &d.id).await.ok().flatten().unwrap_or_else(|| panic!("no delivery"));
    assert_eq!((after.status, after.attempts, after.last_error.as_deref()), (Status::Retrying, 1, Some("HTTP 503")));
    let retry_at = first.next_at.unwrap_or(t1);
    let entries = store.due(&t, retry_at, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(entries, vec![Due::Attempt { rule_id: r.id.clone(), delivery_id: d.id.clone(), due: retry_at }]);
    let summary = store.get(&t, &r.id).await.ok().flatten().map(|s| s.summary).unwrap_or_default();
    assert_eq!((summary.last_attempt_at, summary.last_delivered_at), (Some(t1), None));
    assert_eq!((summary.failed_attempts, summary.dead_letters), (1, 0));
    assert_eq!(summary.last_error, Some((t1, "HTTP 503".into())));

    // The same attempt recorded again (a lapsed hold): nothing moves twice.
    store.record(&d, d.created_at, &first).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.delivery(&t, &r.id, &d.id).await.ok().flatten().map(|d| d.attempts), Some(1));

    // Paused: the attempt waits, unspent.
    let later = retry_at.plus_seconds(30);
    store.defer(&after, retry_at, later).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(store.due(&t, retry_at, 10).await.is_ok_and(|e| e.is_empty()));
    assert_eq!(store.next_due(&t).await.ok().flatten(), Some(later));

    // The last attempt fails too: a dead letter, and the agenda is empty.
    let t2 = t1.plus_seconds(1);
    let last = after.attempt(t2, Some("timed out after 10 s".into()), &schedule);
    assert_eq!(last.status, Status::Dead);
    store.record(&after, later, &last).await.unwrap_or_else(|e| panic!("{e}"));
    let dead = store.delivery(&t, &r.id, &d.id).await.ok().flatten().map(|d| (d.status, d.attempts));
    assert_eq!(dead, Some((Status::Dead, 2)));
    assert_eq!(store.next_due(&t).await.ok(), Some(None));
    let summary = store.get(&t, &r.id).await.ok().flatten().map(|s| s.summary).unwrap_or_default();
    assert_eq!((summary.failed_attempts, summary.dead_letters), (2, 1));
    let letter = summary.last_dead_letter.clone().unwrap_or_else(|| panic!("no dead letter"));
    assert_eq!((letter.id.as_str(), letter.at, letter.attempts), (d.id.as_str(), t2, 2));
    assert_eq!((letter.event_ids, letter.error.as_str()), (vec!["e1".to_owned()], "timed out after 10 s"));
    assert_eq!(summary.to_json()["last_dead_letter"]["webhook_id"], json!(d.id));

    // A delivery ended unsent (its rule changed) counts as a dead letter, not an attempt.
    let m2 = Matched { event: event(&t, "e2"), rules: vec![r.id.clone()], part: 0 };
    store.put(std::slice::from_ref(&m2)).await.unwrap_or_else(|e| panic!("{e}"));
    let d2 = delivery(&r, "e2");
    assert_eq!(
        store.apply(&m2, &[change(&r.id, 1, RuleState::default(), Some(d2.clone()))]).await.ok(),
        Some(Applied::Done)
    );
    store
        .record(&d2, d2.created_at, &Delivery::end(t2, "the rule was disabled"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ended = store.delivery(&t, &r.id, &d2.id).await.ok().flatten().map(|d| (d.status, d.attempts, d.last_error));
    assert_eq!(ended, Some((Status::Dead, 0, Some("the rule was disabled".to_owned()))));
    let summary = store.get(&t, &r.id).await.ok().flatten().map(|s| s.summary).unwrap_or_default();
    assert_eq!((summary.failed_attempts, summary.dead_letters), (2, 2));
    assert_eq!(store.next_due(&t).await.ok(), Some(None));

    // Once the rule is gone an entry is forgotten, and no rule comes back.
    assert!(store.delete(&t, &r.id).await.unwrap_or_else(|e| panic!("{e}")));
    store.forget(&t, &r.id, "msg_x", t2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.get(&t, &r.id).await.ok().flatten(), None);
}

#[tokio::test]
async fn a_turn_is_noted_installed_taken_and_passed_under_its_conditions() {
    const KIND: &str = "alerts";
    let store = common::store(None).await;
    let t = new_tenant();
    let now = Timestamp::now();
    assert_eq!(store.note(KIND, &t, now).await.ok(), Some(Noted::Replace { token: None }));
    assert_eq!(store.install(KIND, &t, None, "t1", now).await.ok(), Some(true));
    assert_eq!(store.install(KIND, &t, None, "t2", now).await.ok(), Some(false), "t1 is there");
    assert_eq!(store.note(KIND, &t, now).await.ok(), Some(Noted::Live));
    let stale = store.take(KIND, &t, "t0", now, now.plus_seconds(60)).await.ok();
    assert_eq!(stale, Some(Take::Stale { current: Some("t1".into()) }));
    let held = store.take(KIND, &t, "t1", now, now.plus_seconds(60)).await.unwrap_or_else(|e| panic!("{e}"));
    let Take::Held { version, state: None } = held else { panic!("{held:?}") };
    assert_eq!(store.take(KIND, &t, "t1", now, now.plus_seconds(60)).await.ok(), Some(Take::Busy));
    // Work noted while it is held: a conditional pass sees it.
    assert_eq!(store.note(KIND, &t, now).await.ok(), Some(Noted::Live));
    let later = now.plus_seconds(3600);
    assert_eq!(
        store.pass(KIND, &t, "t1", Some(("t2", later)), Some("{}"), Some(version)).await.ok(),
        Some(Passed::Moved)
    );
    assert_eq!(store.pass(KIND, &t, "t1", Some(("t2", now)), Some("{\"t\":1}"), None).await.ok(), Some(Passed::Done));
    assert_eq!(store.pass(KIND, &t, "t1", None, None, None).await.ok(), Some(Passed::Lost));
    let held = store.take(KIND, &t, "t2", now, now.plus_seconds(60)).await.unwrap_or_else(|e| panic!("{e}"));
    let Take::Held { version, state } = held else { panic!("{held:?}") };
    assert_eq!(state.as_deref(), Some("{\"t\":1}"), "what the last slice kept");
    // Asleep until later: new work replaces it; its own message says not yet.
    assert_eq!(store.pass(KIND, &t, "t2", Some(("t3", later)), None, Some(version)).await.ok(), Some(Passed::Done));
    assert_eq!(store.take(KIND, &t, "t3", now, now.plus_seconds(60)).await.ok(), Some(Take::NotYet(later)));
    assert_eq!(store.note(KIND, &t, now).await.ok(), Some(Noted::Replace { token: Some("t3".into()) }));
    assert_eq!(store.install(KIND, &t, Some("t3"), "t4", now).await.ok(), Some(true));
    // A turn due long ago that nobody holds is lost, and replaced.
    let much_later = now.plus_seconds(3600);
    assert_eq!(store.note(KIND, &t, much_later).await.ok(), Some(Noted::Replace { token: Some("t4".into()) }));
    let other = new_tenant();
    assert_eq!(
        store.take(KIND, &other, "t4", now, now.plus_seconds(60)).await.ok(),
        Some(Take::Stale { current: None }),
        "another tenant's"
    );
}

#[tokio::test]
async fn tenants_never_see_each_others_rules() {
    let store = common::store(None).await;
    let (a, b) = (new_tenant(), new_tenant());
    let ra = rule(&a, "a's rule");
    created(&store, &ra).await;
    assert_eq!(store.get(&b, &ra.id).await.ok().flatten(), None);
    assert!(store.list(&b).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    assert!(!store.delete(&b, &ra.id).await.unwrap_or_else(|e| panic!("{e}")));
    let as_b = Rule { tenant_id: b.clone(), ..ra.clone() };
    assert!(!store.replace(&as_b, ra.updated_at).await.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(store.state(&b, &ra.id).await.ok(), Some((RuleState::default(), 0)));
    assert_eq!(store.get(&a, &ra.id).await.ok().flatten().map(|s| s.rule), Some(ra.clone()));
    assert_eq!(store.list(&a).await.map(|l| l.len()).ok(), Some(1));
}

// --- webhooks -------------------------------------------------------------------------

/// What a receiver got: path, headers, body.
type Got = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

/// A receiver on loopback: `/ok` answers 204, `/fail` 503, `/moved` redirects to `/ok`,
/// `/slow` answers after 5 s. Returns its port.
async fn receiver() -> (u16, Got) {
    async fn handle(State(got): State<Got>, uri: Uri, headers: HeaderMap, body: String) -> (StatusCode, HeaderMap) {
        let path = uri.path().to_owned();
        got.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((path.clone(), headers, body));
        let mut out = HeaderMap::new();
        let status = match path.as_str() {
            "/ok" => StatusCode::NO_CONTENT,
            "/moved" => {
                out.insert("location", axum::http::HeaderValue::from_static("/ok"));
                StatusCode::FOUND
            }
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::OK
            }
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, out)
    }
    let got = Got::default();
    let app = axum::Router::new().fallback(axum::routing::post(handle)).with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, got)
}

async fn outbound(egress: Egress, timeout: Duration) -> Outbound {
    Outbound::new(sns_client().await, egress, timeout).unwrap_or_else(|e| panic!("{e}"))
}

fn webhook(text: &str) -> audit::domain::alert::Destination {
    audit::domain::alert::Destination::Webhook(parse_url(text, Egress::LOCAL).unwrap_or_else(|e| panic!("{e}")))
}

fn got(g: &Got) -> Vec<(String, HeaderMap, String)> {
    g.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

#[tokio::test]
async fn a_webhook_is_signed_so_its_receiver_verifies_it() {
    let (port, received) = receiver().await;
    let out = outbound(Egress::LOCAL, Duration::from_secs(2)).await;
    let r = rule(&new_tenant(), "r");
    let d = delivery(&r, "e1");
    // During a rotation both secrets sign.
    let old = Secret::generate();
    let mut secrets = Secrets::new(old.clone());
    let now = Timestamp::now();
    let new = secrets.rotate(now);
    for host in ["127.0.0.1", "localhost"] {
        let sent = out.send(&webhook(&format!("http://{host}:{port}/ok")), &secrets, &d, "s", now).await;
        assert_eq!(sent, Ok(()), "{host}");
    }
    let all = got(&received);
    assert_eq!(all.len(), 2);
    for (path, headers, body) in all {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!((path.as_str(), body.as_str()), ("/ok", d.body.as_str()));
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(h("user-agent"), "audit-log-alerts");
        assert_eq!(h("webhook-id"), d.id);
        let signed = Headers {
            id: h("webhook-id"),
            timestamp: h("webhook-timestamp").parse().unwrap_or_default(),
            signature: h("webhook-signature"),
        };
        let unix = now.micros() / 1_000_000;
        assert_eq!(signed.timestamp, unix);
        assert_eq!(signed.signature.split(' ').count(), 2);
        for key in [&old, &new] {
            assert!(verify(key, &signed, body.as_bytes(), unix).is_ok());
        }
        assert!(verify(&new, &signed, format!("{body} ").as_bytes(), unix).is_err(), "altered body");
        assert!(verify(&Secret::generate(), &signed, body.as_bytes(), unix).is_err(), "foreign secret");
    }
}

#[tokio::test]
async fn a_failed_answer_a_redirect_and_a_slow_receiver_are_failed_attempts() {
    let (port, received) = receiver().await;
    let out = outbound(Egress::LOCAL, Duration::from_secs(1)).await;
    let secrets = Secrets::new(Secret::generate());
    let d = delivery(&rule(&new_tenant(), "r"), "e1");
    let now = Timestamp::now();
    let send = |path: &str| {
        let dest = webhook(&format!("http://127.0.0.1:{port}{path}"));
        let (out, secrets, d) = (&out, &secrets, &d);
        async move { out.send(&dest, secrets, d, "s", now).await }
    };
    assert_eq!(send("/fail").await, Err(SendError("HTTP 503".into())));
    // The redirect is reported, never followed.
    assert_eq!(send("/moved").await, Err(SendError("HTTP 302".into())));
    let paths: Vec<String> = got(&received).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(paths, ["/fail", "/moved"]);
    let started = Instant::now();
    assert_eq!(send("/slow").await, Err(SendError("timed out after 1 s".into())));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn loopback_is_refused_in_production_even_behind_a_name() {
    let (port, received) = receiver().await;
    let out = outbound(Egress::PUBLIC, Duration::from_secs(2)).await;
    let secrets = Secrets::new(Secret::generate());
    let d = delivery(&rule(&new_tenant(), "r"), "e1");
    // A stored https URL to a name that resolves to loopback (as after a rebinding).
    let dest = webhook(&format!("https://localhost:{port}/ok"));
    let sent = out.send(&dest, &secrets, &d, "s", Timestamp::now()).await;
    let text = sent.err().map(|e| e.0).unwrap_or_default();
    assert!(text == "address refused: 127.0.0.1 (loopback)" || text == "address refused: ::1 (loopback)", "{text}");
    let url = WebhookUrl { text: format!("https://localhost:{port}/ok"), host: Host::Name("localhost".into()), port };
    assert!(out.check(&url).await.is_err_and(|e| e.0.starts_with("address refused: ")));
    // And plain http is refused outright there.
    let sent = out.send(&webhook(&format!("http://127.0.0.1:{port}/ok")), &secrets, &d, "s", Timestamp::now()).await;
    assert!(sent.is_err());
    assert!(got(&received).is_empty());
}

// --- SNS ------------------------------------------------------------------------------

/// moto's SNS: `AWS_ENDPOINT_URL_SNS`, or the same moto server as SQS.
async fn sns_client() -> aws_sdk_sns::Client {
    let sdk = common::sdk().await;
    match std::env::var("AWS_ENDPOINT_URL_SNS") {
        Ok(_) => audit_aws::sdk::sns(&sdk),
        Err(_) => aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&sdk)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .endpoint_url(common::env("AWS_ENDPOINT_URL_SQS"))
                .build(),
        ),
    }
}

#[tokio::test]
async fn an_sns_alert_reaches_the_topics_subscribers() {
    let sdk = common::sdk().await;
    let (sns, sqs) = (sns_client().await, audit_aws::sdk::sqs(&sdk));
    let name = format!("audit-alerts-{}", uuid::Uuid::now_v7().simple());
    let topic = sns.create_topic().name(&name).send().await.unwrap_or_else(|e| panic!("{e:?}")).topic_arn;
    let topic = topic.unwrap_or_default();
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .queue_url
        .unwrap_or_default();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let queue_arn = attrs.attributes().and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)).cloned();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn.unwrap_or_default())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let out = Outbound::new(sns, Egress::PUBLIC, Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}"));
    let d = delivery(&rule(&new_tenant(), "r"), "e1");
    let dest = audit::domain::alert::Destination::Sns { topic_arn: topic.clone() };
    let subject = "Audit log alert: Überwachung\nder Anmeldungen";
    let sent = out.send(&dest, &Secrets::new(Secret::generate()), &d, subject, Timestamp::now()).await;
    assert_eq!(sent, Ok(()));

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let envelope: Value = serde_json::from_str(messages[0].body().unwrap_or_default()).unwrap_or_default();
    assert_eq!(envelope["TopicArn"], json!(topic));
    assert_eq!(envelope["Message"], json!(d.body));
    assert_eq!(envelope["Subject"], json!("Audit log alert: ?berwachung der Anmeldungen"));
    assert_eq!(envelope["MessageAttributes"]["webhook-id"]["Value"], json!(d.id));

    // A topic that does not exist is a failed attempt with a readable reason.
    let gone = audit::domain::alert::Destination::Sns { topic_arn: format!("{topic}-gone") };
    let sent = out.send(&gone, &Secrets::new(Secret::generate()), &d, "s", Timestamp::now()).await;
    assert!(sent.is_err_and(|e| e.0.starts_with("SNS refused: ")));
}
