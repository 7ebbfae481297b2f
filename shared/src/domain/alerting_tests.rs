use super::*;
use crate::domain::alert::{Rule, parse_new};
use crate::domain::egress::Egress;
use crate::domain::event::Event;
use crate::domain::fixtures::with;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;

fn t0() -> Timestamp {
    Timestamp::parse("2026-11-20T12:00:00Z").unwrap_or(Timestamp::MIN)
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|_| unreachable!())
}

/// A rule of tenant `t-a` on failed logins, with `extra` members in its body.
fn rule(extra: &str) -> Rule {
    let body = format!(
        r#"{{"name": "Failed logins", "match": {{"action": "auth.login", "outcome": "failure"}},
            "destination": {{"type": "webhook", "url": "https://hooks.example.com/in"}}{extra}}}"#
    );
    let settings = parse_new(body.as_bytes(), Egress::PUBLIC).unwrap_or_else(|v| panic!("{v:?}"));
    Rule::create(settings, &tenant("t-a"), t0()).0
}

fn event(tenant_id: &str, id: &str, action: &str, outcome: &str, received_at: Timestamp) -> StoredEvent {
    let value = with(json!({"id": id, "action": action, "outcome": outcome, "occurred_at": "2026-11-20T11:00:00Z"}));
    let accepted = Event::validate(value, &tenant(tenant_id), t0()).unwrap_or_else(|v| panic!("{v:?}"));
    accepted.stamp(received_at)
}

/// Feeds matches arriving at `t0 + seconds` through `decide`.
fn run(rule: &Rule, seconds: &[i64]) -> (RuleState, Vec<Decision>) {
    let mut state = RuleState::default();
    let mut decisions = Vec::new();
    for s in seconds {
        let (next, d) = decide(rule, &state, t0().plus_seconds(*s));
        state = next;
        decisions.push(d);
    }
    (state, decisions)
}

#[test]
fn only_enabled_rules_of_the_events_own_tenant_match() {
    let on = rule("");
    let off = rule(r#", "enabled": false"#);
    let other_tenant = Rule { tenant_id: tenant("t-b"), ..rule("") };
    let rules = [on.clone(), off, other_tenant];
    let failed = event("t-a", "e1", "auth.login", "failure", t0());
    assert_eq!(matching(&rules, &failed), vec![&on]);
    assert!(matching(&rules, &event("t-a", "e2", "auth.login", "success", t0())).is_empty());
    assert!(matching(&rules, &event("t-a", "e3", "auth.logout", "failure", t0())).is_empty());
    // Tenant B's event never reaches tenant A's rule, even in A's list.
    assert!(matching(&[on], &event("t-b", "e1", "auth.login", "failure", t0())).is_empty());
}

#[test]
fn a_burst_notifies_once_per_quiet_period() {
    let r = rule(r#", "quiet_minutes": 5"#);
    let (_, d) = run(&r, &[0, 60, 299, 300, 301]);
    let notify = Decision::Notify { count: 1 };
    assert_eq!(d, vec![notify, Decision::Quiet, Decision::Quiet, notify, Decision::Quiet]);
    let (_, d) = run(&rule(r#", "quiet_minutes": 0"#), &[0, 0, 1]);
    assert_eq!(d, vec![notify; 3]);
}

#[test]
fn a_threshold_notifies_on_reaching_its_count_then_counts_afresh() {
    let r = rule(r#", "quiet_minutes": 0, "threshold": {"count": 3, "window_minutes": 2}"#);
    let (state, d) = run(&r, &[0, 10, 20, 30, 40, 50]);
    let counted = |count| Decision::Counted { count };
    assert_eq!(
        d,
        vec![
            counted(1),
            counted(2),
            Decision::Notify { count: 3 },
            counted(1),
            counted(2),
            Decision::Notify { count: 3 }
        ]
    );
    assert!(state.minutes.is_empty());
    assert_eq!(state.last_notified, Some(t0().plus_seconds(50)));
}

#[test]
fn matches_older_than_the_window_stop_counting() {
    let r = rule(r#", "threshold": {"count": 3, "window_minutes": 2}"#);
    // Minutes 0 and 1 are one window; minute 2 starts one without minute 0.
    let (state, d) = run(&r, &[0, 61, 125]);
    assert_eq!(d, vec![Decision::Counted { count: 1 }, Decision::Counted { count: 2 }, Decision::Counted { count: 2 }]);
    assert_eq!(state.minutes.len(), 2);
    // A late arrival (an earlier minute, read after a later one) counts where it belongs.
    let (_, d) = run(&r, &[125, 61, 0]);
    assert_eq!(d, vec![Decision::Counted { count: 1 }, Decision::Counted { count: 2 }, Decision::Counted { count: 2 }]);
}

#[test]
fn a_long_failed_login_burst_sends_one_notification_per_quiet_period() {
    let r = rule(r#", "quiet_minutes": 10, "threshold": {"count": 5, "window_minutes": 1}"#);
    let every_second: Vec<i64> = (0..700).collect();
    let (state, d) = run(&r, &every_second);
    let sent: Vec<usize> =
        d.iter().enumerate().filter(|(_, d)| matches!(d, Decision::Notify { .. })).map(|(i, _)| i).collect();
    // The fifth failure notifies; the next once the ten quiet minutes are over (at 604 s,
    // the fifth failure of that minute's window).
    assert_eq!(sent, vec![4, 604]);
    assert!(state.minutes.len() <= 1, "the state holds the window only: {:?}", state.minutes);
}

#[test]
fn a_notification_is_the_same_bytes_every_time_and_carries_no_secret_nor_url() {
    let r = rule("");
    let e = event("t-a", "evt/1", "auth.login", "failure", t0().plus_seconds(3));
    let note = Note { count: 1, folded: 0, named: vec!["evt/1".into()], trigger: Some("evt/1".into()) };
    let body = notification_body(&r, &note, Some(&e), e.received_at);
    assert_eq!(body, notification_body(&r, &note, Some(&e), e.received_at));
    assert_eq!(body["type"], json!("audit_log.alert"));
    assert_eq!(body["timestamp"], json!("2026-11-20T12:00:03.000000Z"));
    let mut shown = r.to_json();
    shown.as_object_mut().map(|o| o.remove("destination"));
    assert_eq!(body["data"]["rule"], shown);
    assert_eq!(body["data"]["events"], json!([e.to_json()]));
    assert_eq!((body["data"]["count"].clone(), body["data"]["event_ids"].clone()), (json!(1), json!(["evt/1"])));
    let text = body.to_string();
    assert!(!text.contains("whsec_"), "no secret");
    assert!(!text.contains("hooks.example.com"), "no destination: its URL may hold the receiver's token");
    assert_eq!(note.key_event(), "evt/1");
}

/// Matches of one rule at `t0 + seconds`, each judged as it arrives with the tenant's
/// bucket shared: the outcomes, the notes of those that notify, and the last state.
fn burst(r: &Rule, limits: Limits, seconds: &[f64]) -> (Vec<Outcome>, RuleState) {
    let mut state = RuleState::default();
    let mut bucket = None;
    let mut outcomes = Vec::new();
    for (i, s) in seconds.iter().enumerate() {
        #[expect(clippy::cast_possible_truncation, reason = "test times are small")]
        let now = t0().plus_micros((s * 1e6) as i64);
        let (next, taken, outcome) = on_match(r, &state, bucket, limits, &format!("e{i}"), now, now);
        state = next;
        bucket = taken.or(bucket);
        outcomes.push(outcome);
    }
    (outcomes, state)
}

fn limits(rule: u32, tenant: u32) -> Limits {
    Limits { rule: crate::domain::rate::Rate::per_minute(rule), tenant: crate::domain::rate::Rate::per_minute(tenant) }
}

#[test]
fn matches_past_the_rule_rate_fold_into_the_next_notification_and_the_counts_add_up() {
    let r = rule(r#", "quiet_minutes": 0"#);
    // 200 matches in one second against 60 a minute: 60 go, 140 fold.
    let times: Vec<f64> = (0..200).map(|i| f64::from(i) * 0.005).collect();
    let (outcomes, state) = burst(&r, limits(60, 600), &times);
    let sent = outcomes.iter().filter(|o| matches!(o, Outcome::Notify { .. })).count();
    assert_eq!(sent, 60);
    let schedules: Vec<Timestamp> =
        outcomes.iter().filter_map(|o| if let Outcome::Fold { scheduled } = o { *scheduled } else { None }).collect();
    assert_eq!(schedules, [t0().plus_seconds(1)], "one flush, when the bucket has room again");
    let folded = state.folded.clone().expect("folded");
    assert_eq!(folded.count, 140);
    assert_eq!(folded.named, (60..70).map(|i| format!("e{i}")).collect::<Vec<_>>(), "the first ten by name");
    // The flush sends them as one notification standing for all 140.
    let (after, taken, flush) = on_flush(&state, None, limits(60, 600), folded.flush_at);
    let Flush::Notify(note) = flush else { panic!("{flush:?}") };
    assert_eq!((note.count, note.folded, note.named.len(), note.trigger.clone()), (140, 140, 10, None));
    assert_eq!(note.key_event(), "e60");
    assert!(after.folded.is_none() && taken.is_some());
    assert_eq!(sent as u64 + note.count, 200, "nothing lost, nothing counted twice");
}

#[test]
fn a_notification_that_the_rates_allow_carries_what_was_folded_before_it() {
    let r = rule(r#", "quiet_minutes": 0"#);
    let (outcomes, state) = burst(&r, limits(2, 600), &[0.0, 0.0, 0.0, 0.0, 30.0]);
    assert!(matches!(outcomes[2], Outcome::Fold { scheduled: Some(_) }));
    assert_eq!(outcomes[3], Outcome::Fold { scheduled: None });
    let Outcome::Notify { note, unscheduled } = &outcomes[4] else { panic!("{:?}", outcomes[4]) };
    assert_eq!((note.count, note.folded), (3, 2));
    assert_eq!(note.named, ["e2", "e3", "e4"]);
    assert_eq!(note.trigger.as_deref(), Some("e4"));
    assert_eq!(*unscheduled, Some(t0().plus_seconds(30)), "its flush is cancelled");
    assert!(state.folded.is_none());
}

#[test]
fn the_tenant_rate_binds_all_its_rules_together() {
    let rules: Vec<Rule> = (0..3).map(|_| rule(r#", "quiet_minutes": 0"#)).collect();
    let mut bucket = None;
    let mut sent = 0;
    for i in 0..30 {
        for r in &rules {
            let (_, taken, outcome) =
                on_match(r, &RuleState::default(), bucket, limits(60, 10), &format!("e{i}"), t0(), t0());
            bucket = taken.or(bucket);
            sent += usize::from(matches!(outcome, Outcome::Notify { .. }));
        }
    }
    assert_eq!(sent, 10);
}

#[test]
fn a_flush_that_the_rates_still_hold_comes_again_later() {
    let r = rule(r#", "quiet_minutes": 0"#);
    let (_, state) = burst(&r, limits(1, 600), &[0.0, 0.0]);
    let (next, taken, flush) = on_flush(&state, None, limits(1, 600), t0().plus_seconds(10));
    assert_eq!(flush, Flush::Later(t0().plus_seconds(60)));
    assert!(taken.is_none());
    assert_eq!(next.folded.map(|f| (f.count, f.flush_at)), Some((1, t0().plus_seconds(60))));
    assert_eq!(on_flush(&RuleState::default(), None, limits(1, 1), t0()).2, Flush::Nothing);
}

#[test]
fn the_tenants_state_keeps_only_failing_destinations() {
    let mut t = TenantAlerts::default();
    let mut b = crate::domain::breaker::Breaker::default();
    b.failed(t0(), crate::domain::breaker::Pauses::default());
    t.set_breaker("webhook:a", b);
    t.set_bucket(t0());
    let back = TenantAlerts::from_json(&t.to_json()).expect("round trip");
    assert_eq!(back, t);
    t.set_breaker("webhook:a", crate::domain::breaker::Breaker::default());
    assert!(t.breakers.is_empty());
    assert!(TenantAlerts::from_json("{").is_err());
}
