use super::*;
use audit::domain::alert::{Rule, parse_new};
use audit::domain::egress::Egress;

fn t0() -> Timestamp {
    Timestamp::parse("2026-11-20T12:00:00Z").unwrap_or(Timestamp::MIN)
}

fn rule() -> Rule {
    let body = br#"{"name": "r", "match": {"action": "auth.login"},
        "destination": {"type": "webhook", "url": "https://hooks.example.com/in"}}"#;
    let settings = parse_new(body, Egress::PUBLIC).unwrap_or_else(|v| panic!("{v:?}"));
    let tenant = TenantId::parse("t-a").unwrap_or_else(|_| unreachable!());
    Rule::create(settings, &tenant, t0()).0
}

fn delivery(rule: &Rule) -> Delivery {
    Delivery {
        id: "msg_1".into(),
        tenant_id: rule.tenant_id.clone(),
        rule_id: rule.id.clone(),
        destination: rule.settings.destination.key(),
        event_ids: vec!["e1".into(), "e2".into()],
        body: r#"{"type":"audit_log.alert"}"#.into(),
        created_at: t0(),
        status: Status::Pending,
        attempts: 0,
        last_error: None,
    }
}

#[test]
fn a_delivery_item_reads_back() {
    let r = rule();
    let mut d = delivery(&r);
    let item = delivery_item(&d);
    assert_eq!(get_s(&item, keys::PK), Some(&format!("AD#t-a#{}", r.id)));
    assert_eq!(get_s(&item, attr::STATUS).map(String::as_str), Some("pending"));
    assert_eq!(get_s(&item, attr::EVENTS).map(String::as_str), Some(r#"["e1","e2"]"#));
    let ttl: i64 = get_n(&item, TTL).unwrap_or_default();
    assert_eq!(ttl, t0().micros() / 1_000_000 + 30 * 24 * 3600);
    assert_eq!(delivery_from_item(&r.tenant_id, &r.id, &item).ok(), Some(d.clone()));

    d.status = Status::Dead;
    d.attempts = 8;
    d.last_error = Some("timed out after 10 s".into());
    assert_eq!(delivery_from_item(&r.tenant_id, &r.id, &delivery_item(&d)).ok(), Some(d.clone()));
    for status in [Status::Pending, Status::Retrying, Status::Delivered, Status::Dead] {
        assert_eq!(json!(status), json!(status_text(status)));
    }

    let mut bad = delivery_item(&d);
    bad.insert(attr::STATUS.into(), s("lost"));
    assert!(matches!(delivery_from_item(&r.tenant_id, &r.id, &bad), Err(StoreError::Corrupt(_))));
    let mut bad = delivery_item(&d);
    bad.remove(attr::BODY);
    assert!(matches!(delivery_from_item(&r.tenant_id, &r.id, &bad), Err(StoreError::Corrupt(_))));
}

#[test]
fn a_change_writes_each_clause_once() {
    let mut c = Change::default();
    c.set("#a", "a", ":a", n(1));
    c.add("#f", "sf");
    c.set("#b", "b", ":b", s("x"));
    c.add("#d", "sd");
    c.remove("#next", "next");
    assert_eq!(c.expression(), "SET #a = :a, #b = :b ADD #f :one, #d :one REMOVE #next");
    assert_eq!(c.names.get("#next").map(String::as_str), Some("next"));
    let mut only = Change::default();
    only.set("#a", "a", ":a", n(1));
    assert_eq!(only.expression(), "SET #a = :a");
}
