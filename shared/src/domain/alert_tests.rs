use super::*;
use crate::domain::egress::Host;
use crate::domain::event::Event;
use crate::domain::fixtures::arb_event;
use crate::domain::row::Row;
use proptest::prelude::*;

fn now() -> Timestamp {
    Timestamp::parse("2026-11-20T12:00:00Z").unwrap_or(Timestamp::MIN)
}

fn tenant() -> TenantId {
    TenantId::parse("t-1").unwrap_or_else(|_| unreachable!())
}

const WEBHOOK: &str = r#""destination": {"type": "webhook", "url": "https://hooks.example.com/in"}"#;

fn new_rule(body: &str) -> Settings {
    parse_new(body.as_bytes(), Egress::PUBLIC).unwrap_or_else(|v| panic!("{body}: {v:?}"))
}

fn reasons(result: Result<impl std::fmt::Debug, Vec<Violation>>) -> Vec<(String, Reason)> {
    result.err().unwrap_or_default().into_iter().map(|v| (v.field, v.reason)).collect()
}

fn post(body: &str) -> Vec<(String, Reason)> {
    reasons(parse_new(body.as_bytes(), Egress::PUBLIC))
}

fn patch(body: &str) -> Vec<(String, Reason)> {
    reasons(parse_patch(body.as_bytes(), Egress::PUBLIC))
}

#[test]
fn a_full_rule_parses_with_every_filter() {
    let r = new_rule(&format!(
        r#"{{"name": "Failed logins", "enabled": false, "quiet_minutes": 0,
            "match": {{"action": ["auth.login", "api_key.*"], "actor": "Ada@x.com", "resource_type": "user",
                      "resource_id": "u-1", "workspace": "w-1", "outcome": "failure", "q": "Paris"}},
            "threshold": {{"count": 5, "window_minutes": 10}}, {WEBHOOK}}}"#
    ));
    assert_eq!((r.name.as_str(), r.enabled, r.quiet_minutes), ("Failed logins", false, 0));
    assert_eq!(r.threshold, Some(Threshold { count: 5, window_minutes: 10 }));
    assert_eq!(
        r.matcher.query(),
        "actor=Ada%40x.com&action=auth.login&action=api_key.*&resource_type=user&resource_id=u-1&workspace=w-1&outcome=failure&q=paris"
    );
    assert_eq!(Match::from_query(&r.matcher.query()), Ok(r.matcher.clone()));
    let Destination::Webhook(url) = &r.destination else { panic!("{:?}", r.destination) };
    assert_eq!(url.host, Host::Name("hooks.example.com".into()));
}

#[test]
fn defaults_apply_and_sns_destinations_parse() {
    let r = new_rule(
        r#"{"name": "Key created", "match": {"action": "api_key.create"},
            "destination": {"type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:123456789012:alerts-t1"}}"#,
    );
    assert_eq!((r.enabled, r.quiet_minutes, r.threshold), (true, DEFAULT_QUIET_MINUTES, None));
    assert_eq!(r.destination, Destination::Sns { topic_arn: "arn:aws:sns:eu-west-1:123456789012:alerts-t1".into() });
}

#[test]
fn bad_post_bodies_name_the_field_and_reason() {
    let m = r#""match": {"action": "auth.login"}"#;
    let cases: Vec<(String, &str, Reason)> = vec![
        ("[]".into(), "", Reason::NotAnObject),
        ("{".into(), "", Reason::InvalidFormat),
        (format!(r#"{{{m}, {WEBHOOK}}}"#), "name", Reason::MissingField),
        (r#"{"name": "x", "match": {"action": "auth.login"}}"#.into(), "destination", Reason::MissingField),
        (format!(r#"{{"name": "x", {WEBHOOK}}}"#), "match", Reason::MissingField),
        (format!(r#"{{"name": "", {m}, {WEBHOOK}}}"#), "name", Reason::TooShort),
        (format!(r#"{{"name": "{}", {m}, {WEBHOOK}}}"#, "é".repeat(129)), "name", Reason::TooLong),
        (format!(r#"{{"name": 7, {m}, {WEBHOOK}}}"#), "name", Reason::InvalidType),
        (format!(r#"{{"name": "a\u0000b", {m}, {WEBHOOK}}}"#), "name", Reason::NulCharacter),
        (format!(r#"{{"name": "x", "tenant": "other", {m}, {WEBHOOK}}}"#), "tenant", Reason::UnknownField),
        (format!(r#"{{"name": "x", "rotate_secret": true, {m}, {WEBHOOK}}}"#), "rotate_secret", Reason::UnknownField),
        (format!(r#"{{"name": "x", "enabled": "yes", {m}, {WEBHOOK}}}"#), "enabled", Reason::InvalidType),
        (format!(r#"{{"name": "x", "quiet_minutes": 1441, {m}, {WEBHOOK}}}"#), "quiet_minutes", Reason::InvalidValue),
        (format!(r#"{{"name": "x", "quiet_minutes": -1, {m}, {WEBHOOK}}}"#), "quiet_minutes", Reason::InvalidValue),
        (format!(r#"{{"name": "x", "quiet_minutes": 1.5, {m}, {WEBHOOK}}}"#), "quiet_minutes", Reason::InvalidType),
        (format!(r#"{{"name": "x", "quiet_minutes": "5", {m}, {WEBHOOK}}}"#), "quiet_minutes", Reason::InvalidType),
        (format!(r#"{{"name": "x", "match": {{}}, {WEBHOOK}}}"#), "match", Reason::MissingField),
        (format!(r#"{{"name": "x", "match": "auth.login", {WEBHOOK}}}"#), "match", Reason::InvalidType),
        (
            format!(r#"{{"name": "x", "match": {{"from": "2026-01-01T00:00:00Z"}}, {WEBHOOK}}}"#),
            "match.from",
            Reason::UnknownField,
        ),
        (
            format!(r#"{{"name": "x", "match": {{"action": "Auth.Login"}}, {WEBHOOK}}}"#),
            "match.action",
            Reason::InvalidFormat,
        ),
        (
            format!(r#"{{"name": "x", "match": {{"action": "x' OR '1'='1"}}, {WEBHOOK}}}"#),
            "match.action",
            Reason::InvalidFormat,
        ),
        (
            format!(r#"{{"name": "x", "match": {{"action": ["a.b", 3]}}, {WEBHOOK}}}"#),
            "match.action",
            Reason::InvalidType,
        ),
        (
            format!(r#"{{"name": "x", "match": {{"outcome": ["failure"]}}, {WEBHOOK}}}"#),
            "match.outcome",
            Reason::InvalidType,
        ),
        (
            format!(r#"{{"name": "x", "match": {{"outcome": "maybe"}}, {WEBHOOK}}}"#),
            "match.outcome",
            Reason::InvalidValue,
        ),
        (format!(r#"{{"name": "x", "match": {{"q": "{}"}}, {WEBHOOK}}}"#, "q".repeat(257)), "match.q", Reason::TooLong),
        (
            format!(r#"{{"name": "x", "match": {{"actor": [{}]}}, {WEBHOOK}}}"#, vec![r#""a""#; 21].join(",")),
            "match.actor",
            Reason::TooMany,
        ),
        (
            format!(r#"{{"name": "x", {m}, "threshold": {{"count": 1, "window_minutes": 5}}, {WEBHOOK}}}"#),
            "threshold.count",
            Reason::InvalidValue,
        ),
        (
            format!(r#"{{"name": "x", {m}, "threshold": {{"count": 1001, "window_minutes": 5}}, {WEBHOOK}}}"#),
            "threshold.count",
            Reason::InvalidValue,
        ),
        (
            format!(r#"{{"name": "x", {m}, "threshold": {{"count": 3, "window_minutes": 0}}, {WEBHOOK}}}"#),
            "threshold.window_minutes",
            Reason::InvalidValue,
        ),
        (
            format!(r#"{{"name": "x", {m}, "threshold": {{"count": 3, "window_minutes": 1441}}, {WEBHOOK}}}"#),
            "threshold.window_minutes",
            Reason::InvalidValue,
        ),
        (
            format!(r#"{{"name": "x", {m}, "threshold": {{"count": 3}}, {WEBHOOK}}}"#),
            "threshold.window_minutes",
            Reason::MissingField,
        ),
        (
            format!(
                r#"{{"name": "x", {m}, "threshold": {{"count": 3, "window_minutes": 5, "per": "actor"}}, {WEBHOOK}}}"#
            ),
            "threshold.per",
            Reason::UnknownField,
        ),
        (format!(r#"{{"name": "x", {m}, "threshold": 5, {WEBHOOK}}}"#), "threshold", Reason::InvalidType),
        (
            format!(r#"{{"name": "x", {m}, "destination": {{"type": "email"}}}}"#),
            "destination.type",
            Reason::InvalidValue,
        ),
        (
            format!(r#"{{"name": "x", {m}, "destination": {{"url": "https://a.example"}}}}"#),
            "destination.type",
            Reason::MissingField,
        ),
        (
            format!(r#"{{"name": "x", {m}, "destination": {{"type": "webhook"}}}}"#),
            "destination.url",
            Reason::MissingField,
        ),
        (
            format!(r#"{{"name": "x", {m}, "destination": {{"type": "webhook", "url": 5}}}}"#),
            "destination.url",
            Reason::InvalidType,
        ),
        (
            format!(r#"{{"name": "x", {m}, "destination": {{"type": "webhook", "url": "http://a.example/"}}}}"#),
            "destination.url",
            Reason::InvalidFormat,
        ),
        (
            format!(r#"{{"name": "x", {m}, "destination": {{"type": "webhook", "url": "https://169.254.169.254/"}}}}"#),
            "destination.url",
            Reason::InvalidValue,
        ),
        (
            format!(
                r#"{{"name": "x", {m}, "destination": {{"type": "webhook", "url": "https://a.example/", "topic_arn": "x"}}}}"#
            ),
            "destination.topic_arn",
            Reason::UnknownField,
        ),
        (
            format!(
                r#"{{"name": "x", {m}, "destination": {{"type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:1234:t"}}}}"#
            ),
            "destination.topic_arn",
            Reason::InvalidFormat,
        ),
        (
            format!(
                r#"{{"name": "x", {m}, "destination": {{"type": "sns", "topic_arn": "arn:aws:sqs:eu-west-1:123456789012:t"}}}}"#
            ),
            "destination.topic_arn",
            Reason::InvalidFormat,
        ),
        (
            format!(
                r#"{{"name": "x", {m}, "destination": {{"type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:123456789012:t.fifo"}}}}"#
            ),
            "destination.topic_arn",
            Reason::InvalidFormat,
        ),
        (
            format!(
                r#"{{"name": "x", {m}, "destination": {{"type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:123456789012:t", "url": "https://a.example/"}}}}"#
            ),
            "destination.url",
            Reason::UnknownField,
        ),
    ];
    for (body, field, reason) in &cases {
        assert!(post(body).contains(&((*field).to_owned(), *reason)), "{body}: {:?}", post(body));
    }
}

#[test]
fn bodies_that_are_not_small_utf8_json_are_refused_whole() {
    let invalid_utf8 = b"{\"name\": \"\xff\"}";
    assert_eq!(reasons(parse_new(invalid_utf8, Egress::PUBLIC)), vec![(String::new(), Reason::InvalidFormat)]);
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    assert_eq!(post(&big), vec![(String::new(), Reason::TooLarge)]);
    assert_eq!(patch(&big), vec![(String::new(), Reason::TooLarge)]);
    // NUL in a key is refused too, before the key is called unknown.
    assert!(post("{\"na\\u0000me\": \"x\"}").contains(&("na\u{0}me".to_owned(), Reason::NulCharacter)));
}

#[test]
fn patches_change_only_what_they_name() {
    let settings = new_rule(&format!(
        r#"{{"name": "Logins", "match": {{"action": "auth.login"}}, "threshold": {{"count": 3, "window_minutes": 5}}, {WEBHOOK}}}"#
    ));
    let (mut rule, secret) = Rule::create(settings, &tenant(), now());
    let before = rule.clone();
    let later = now().plus_seconds(60);
    let p =
        parse_patch(br#"{"enabled": false, "threshold": null}"#, Egress::PUBLIC).unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(rule.apply(p, later), None);
    assert_eq!((rule.settings.enabled, rule.settings.threshold, rule.updated_at), (false, None, later));
    assert_eq!(
        (&rule.settings.name, &rule.settings.matcher, &rule.settings.destination, rule.created_at),
        (&before.settings.name, &before.settings.matcher, &before.settings.destination, before.created_at)
    );
    assert_eq!(rule.secrets.current, secret);

    let p = parse_patch(br#"{"rotate_secret": true, "match": {"outcome": "failure"}}"#, Egress::PUBLIC)
        .unwrap_or_else(|v| panic!("{v:?}"));
    let new = rule.apply(p, later);
    assert!(new.as_ref().is_some_and(|s| *s != secret && rule.secrets.current == *s));
    assert_eq!(rule.secrets.signing(later).len(), 2, "the old secret still signs during the overlap");
    assert_eq!(rule.settings.matcher.query(), "outcome=failure");
}

#[test]
fn bad_patches_are_refused() {
    let cases: &[(&str, &str, Reason)] = &[
        ("{}", "", Reason::MissingField),
        (r#"{"id": "x"}"#, "id", Reason::UnknownField),
        (r#"{"created_at": "2026-01-01T00:00:00Z"}"#, "created_at", Reason::UnknownField),
        (r#"{"secret": "whsec_x"}"#, "secret", Reason::UnknownField),
        (r#"{"name": null}"#, "name", Reason::InvalidType),
        (r#"{"enabled": null}"#, "enabled", Reason::InvalidType),
        (r#"{"rotate_secret": "yes"}"#, "rotate_secret", Reason::InvalidType),
        (r#"{"match": {}}"#, "match", Reason::MissingField),
        (
            r#"{"destination": {"type": "webhook", "url": "https://10.1.2.3/"}}"#,
            "destination.url",
            Reason::InvalidValue,
        ),
        (r#"{"threshold": {"count": 2, "window_minutes": "5"}}"#, "threshold.window_minutes", Reason::InvalidType),
    ];
    for (body, field, reason) in cases {
        assert!(patch(body).contains(&((*field).to_owned(), *reason)), "{body}: {:?}", patch(body));
    }
}

#[test]
fn the_api_form_never_carries_a_secret_except_once() {
    let settings = new_rule(&format!(r#"{{"name": "Keys", "match": {{"action": ["api_key.*"]}}, {WEBHOOK}}}"#));
    let (rule, secret) = Rule::create(settings, &tenant(), now());
    assert!(is_rule_id(&rule.id), "{}", rule.id);
    let shown = rule.to_json();
    assert_eq!(
        shown,
        json!({
            "id": rule.id, "name": "Keys", "enabled": true, "match": {"action": ["api_key.*"]},
            "threshold": null, "quiet_minutes": 5,
            "destination": {"type": "webhook", "url": "https://hooks.example.com/in"},
            "created_at": "2026-11-20T12:00:00.000000Z", "updated_at": "2026-11-20T12:00:00.000000Z",
        })
    );
    assert!(!shown.to_string().contains("whsec_"));
    assert_eq!(rule.secrets.current, secret);
    assert!(!is_rule_id("not-a-rule") && !is_rule_id(&format!("{}x", rule.id)));
}

/// One generated filter value: of the event itself (so it matches) or another.
fn query_for(e: &Event, picks: &[(u8, bool)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (kind, same) in picks {
        let other = |s: Option<&str>| if *same { s.map(str::to_owned) } else { Some("zz-other".to_owned()) };
        let pair = match kind % 9 {
            0 => ("actor", other(Some(&e.actor.id))),
            1 => ("actor", other(e.actor.email.as_deref()).map(|s| s.to_uppercase())),
            2 => ("action", if *same { Some(e.action.clone()) } else { Some("zz.other".into()) }),
            3 => ("action", Some(if *same { format!("{}.*", e.category()) } else { "zz.*".into() })),
            4 => ("resource_type", other(e.resource_type())),
            5 => ("resource_id", other(e.resource_id())),
            6 => ("workspace", other(e.workspace_id())),
            7 => ("outcome", Some(if *same { e.outcome.as_str() } else { "failure" }.to_owned())),
            _ => ("q", other(Some(&e.action[..1]))),
        };
        if let (k, Some(v)) = pair {
            out.append_pair(k, &v);
        }
    }
    out.finish()
}

proptest! {
    /// A rule fires on exactly the events `GET /v1/events` lists with the same filters,
    /// whether it reads the event or its archive row.
    #[test]
    fn a_rule_matches_what_the_event_list_shows(event in arb_event(), picks in proptest::collection::vec((any::<u8>(), any::<bool>()), 1..4)) {
        let query = query_for(&event, &picks);
        prop_assume!(!query.is_empty());
        let listed = parse_query(&format!("{query}&from=1970-01-01T00:00:00Z&to=9999-12-31T00:00:00Z"), Extra::Export, now());
        let rule = Match::from_query(&query);
        prop_assume!(listed.is_ok());
        let (Ok(listed), Ok(rule)) = (listed, rule) else { return Err(TestCaseError::fail(query.clone())) };
        let stored = event.stamp(now());
        prop_assert_eq!(rule.matches(&stored.event), listed.filter.matches(&stored.event), "{}", query);
        prop_assert_eq!(rule.matches(&Row::from_stored(&stored)), listed.filter.matches(&stored.event));
        prop_assert_eq!(Match::from_query(&rule.query()), Ok(rule));
    }
}

#[test]
fn the_stored_form_reads_back_as_the_same_rule_secrets_and_rotation_included() {
    let body = br#"{"name": "Logins", "match": {"action": ["auth.login", "mfa.*"], "actor": "a@b.c", "q": "Paris"},
        "threshold": {"count": 3, "window_minutes": 10}, "quiet_minutes": 0, "enabled": false,
        "destination": {"type": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:audit-alerts-t-a"}}"#;
    let settings = parse_new(body, Egress::PUBLIC).unwrap_or_else(|v| panic!("{v:?}"));
    let t = TenantId::parse("t-a").unwrap_or_else(|_| unreachable!());
    let (mut rule, _) = Rule::create(settings, &t, Timestamp::now());
    assert_eq!(Rule::from_stored(&rule.to_stored()).as_ref(), Ok(&rule));
    rule.secrets.rotate(Timestamp::now());
    assert_eq!(Rule::from_stored(&rule.to_stored()).as_ref(), Ok(&rule));
    let mut broken = rule.to_stored();
    broken["secrets"]["current"] = json!("whsec_short");
    assert!(Rule::from_stored(&broken).is_err());
    broken = rule.to_stored();
    broken["match"] = json!("from=2020-01-01T00:00:00Z&action=a.b");
    assert!(Rule::from_stored(&broken).is_err());
}

#[test]
fn a_logged_webhook_shows_its_origin_only() {
    let url = |u: &str| Destination::Webhook(egress::parse_url(u, Egress::PUBLIC).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(
        url("https://hooks.example.com/T0/B1/secret?k=v").redacted()["url"],
        "https://hooks.example.com/\u{2026}"
    );
    assert_eq!(
        url("https://hooks.example.com:8443?token=x").redacted()["url"],
        "https://hooks.example.com:8443/\u{2026}"
    );
    assert_eq!(url("https://hooks.example.com").redacted()["url"], "https://hooks.example.com");
}
