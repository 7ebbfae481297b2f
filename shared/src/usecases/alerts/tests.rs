use super::*;
use crate::domain::alert::{Rule, parse_new};
use crate::domain::egress::Egress;
use crate::domain::event::Event;
use crate::domain::fixtures::with;
use crate::domain::tenant::TenantId;

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
fn a_notification_is_the_same_on_every_attempt_and_carries_no_secret() {
    let r = rule("");
    let e = event("t-a", "evt/1", "auth.login", "failure", t0().plus_seconds(3));
    let n = notification(&r, &e, 1);
    assert_eq!(n, notification(&r, &e, 1));
    assert_eq!(n.id, delivery_id(&r.id, "evt/1"));
    assert_ne!(n.id, notification(&r, &event("t-a", "evt/2", "auth.login", "failure", t0()), 1).id);
    assert_eq!(n.body["type"], json!("audit_log.alert"));
    assert_eq!(n.body["timestamp"], json!("2026-11-20T12:00:03.000000Z"));
    assert_eq!(n.body["data"]["rule"], r.to_json());
    assert_eq!(n.body["data"]["events"], json!([e.to_json()]));
    assert!(!n.body.to_string().contains("whsec_"));
}
