use super::*;
use crate::dynamodb::deliveries::dead_letter_json;
use audit::domain::alert::parse_new;
use audit::domain::egress::Egress;

fn t0() -> Timestamp {
    Timestamp::parse("2026-11-20T12:00:00Z").unwrap_or(Timestamp::MIN)
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap_or_else(|_| unreachable!())
}

fn rule() -> Rule {
    let body = br#"{"name": "Failed logins", "match": {"action": "auth.login", "outcome": "failure"},
        "threshold": {"count": 3, "window_minutes": 5},
        "destination": {"type": "webhook", "url": "https://hooks.example.com/in"}}"#;
    let settings = parse_new(body, Egress::PUBLIC).unwrap_or_else(|v| panic!("{v:?}"));
    Rule::create(settings, &tenant("t-a"), t0()).0
}

#[test]
fn a_rule_state_is_stored_as_minutes_and_last() {
    let state = RuleState {
        minutes: vec![(29_000_000, 2), (29_000_001, 1)],
        last_notified: Some(t0()),
        ..RuleState::default()
    };
    let text = state_to_json(&state);
    assert_eq!(text, format!(r#"{{"minutes":[[29000000,2],[29000001,1]],"last":{}}}"#, t0().micros()));
    assert_eq!(state_from_json(&text), Ok(state));
    let folded = RuleState {
        bucket: Some(t0()),
        folded: Some(Folded { count: 140, named: vec!["e1".into()], flush_at: t0().plus_seconds(1) }),
        ..RuleState::default()
    };
    assert_eq!(state_from_json(&state_to_json(&folded)), Ok(folded));
    assert_eq!(state_from_json(r#"{"minutes":[],"last":null}"#), Ok(RuleState::default()));
    for bad in [
        "",
        "{}",
        r#"{"minutes":[[1]],"last":null}"#,
        r#"{"minutes":[],"last":-5}"#,
        r#"{"minutes":[],"last":null,"x":1}"#,
    ] {
        assert!(state_from_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_rule_item_reads_back_with_its_summary() {
    let r = rule();
    let mut item = rule_item(&r);
    assert_eq!(get_s(&item, keys::PK).map(String::as_str), Some("AL#t-a"));
    assert_eq!(get_s(&item, attr::UPDATED), Some(&r.updated_at.to_string()));
    let back = rule_from_item(&r.tenant_id, &item).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, StoredRule { rule: r.clone(), summary: Summary::default() });

    let dead = DeadLetter {
        id: "msg_1".into(),
        at: t0(),
        attempts: 3,
        event_ids: vec!["e1".into()],
        error: "HTTP 500".into(),
    };
    item.insert(attr::LAST_ATTEMPT.into(), n(t0().micros()));
    item.insert(attr::LAST_ERROR.into(), s("HTTP 500"));
    item.insert(attr::LAST_ERROR_AT.into(), n(t0().micros()));
    item.insert(attr::FAILED.into(), n(3));
    item.insert(attr::DEAD.into(), n(1));
    item.insert(attr::LAST_DEAD.into(), s(&dead_letter_json(&dead)));
    let back = rule_from_item(&r.tenant_id, &item).unwrap_or_else(|e| panic!("{e}"));
    let summary = Summary {
        last_attempt_at: Some(t0()),
        last_delivered_at: None,
        last_error: Some((t0(), "HTTP 500".into())),
        failed_attempts: 3,
        dead_letters: 1,
        last_dead_letter: Some(dead),
    };
    assert_eq!(back.summary, summary);
}

#[test]
fn a_rule_item_that_does_not_read_back_is_a_store_error() {
    let r = rule();
    // Read as another tenant's (a key mix-up must never serve it).
    assert!(matches!(rule_from_item(&tenant("t-b"), &rule_item(&r)), Err(StoreError::Corrupt(_))));
    for (name, value) in [
        (attr::DOC, s("{not json")),
        (attr::DOC, s(r#"{"id": "x"}"#)),
        (attr::DOC, n(1)),
        (attr::LAST_ATTEMPT, s("yesterday")),
        (attr::LAST_DEAD, s("{}")),
    ] {
        let mut item = rule_item(&r);
        item.insert(name.into(), value);
        assert!(matches!(rule_from_item(&r.tenant_id, &item), Err(StoreError::Corrupt(_))), "{name}");
    }
    // A doc whose id is not the one its key names.
    let mut other = r.clone();
    other.id = "00000000-0000-7000-8000-000000000000".into();
    let mut item = rule_item(&r);
    item.insert(attr::DOC.into(), s(&stored_doc(&other)));
    assert!(matches!(rule_from_item(&r.tenant_id, &item), Err(StoreError::Corrupt(_))));
}
