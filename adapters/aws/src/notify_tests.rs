use super::*;
use audit::domain::delivery::Status;
use audit::domain::egress::parse_url;
use audit::domain::tenant::TenantId;
use audit::domain::webhook::Secret;

fn outbound(egress: Egress) -> Outbound {
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    Outbound::new(crate::sdk::sns(&conf), egress, Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}"))
}

fn delivery() -> Delivery {
    Delivery {
        id: "msg_1".into(),
        tenant_id: TenantId::parse("t-a").unwrap_or_else(|_| unreachable!()),
        rule_id: "r".into(),
        destination: "webhook:d".into(),
        event_ids: vec!["e".into()],
        body: "{}".into(),
        created_at: Timestamp::now(),
        status: Status::Pending,
        attempts: 0,
        last_error: None,
    }
}

fn url(text: &str) -> WebhookUrl {
    parse_url(text, Egress::LOCAL).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A URL to a literal address, as a rule saved under another setting could hold.
fn literal(ip: &str, port: u16) -> WebhookUrl {
    let ip: std::net::IpAddr = ip.parse().unwrap_or_else(|e| panic!("{e}"));
    let shown = if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() };
    WebhookUrl { text: format!("https://{shown}:{port}/in"), host: Host::Ip(ip), port }
}

#[test]
fn subjects_are_short_printable_ascii() {
    assert_eq!(sns_subject("Audit log alert: Failed logins"), "Audit log alert: Failed logins");
    assert_eq!(sns_subject("Audit log alert: Überwachung\nzwei\ttabs"), "Audit log alert: ?berwachung zwei tabs");
    assert_eq!(sns_subject(&"x".repeat(300)).len(), 99);
    assert_eq!(sns_subject(" \n "), "Audit log alert");
    assert!(sns_subject("\u{7}bell\u{1b}[0m").chars().all(|c| c.is_ascii_graphic() || c == ' '));
}

#[test]
fn durations_read_as_people_write_them() {
    assert_eq!(seconds(Duration::from_secs(10)), "10 s");
    assert_eq!(seconds(Duration::from_millis(300)), "300 ms");
}

#[tokio::test]
async fn a_name_with_any_address_outside_the_egress_is_refused_whole() {
    let refused = resolve_checked("localhost", Egress::PUBLIC).await;
    assert!(matches!(&refused, Err(Unreachable::Refused(r)) if r.range == "loopback"), "{refused:?}");
    assert!(refused.map_err(|e| e.to_string()).err().is_some_and(|e| e.starts_with("address refused: ")));
    let local = resolve_checked("localhost", Egress::LOCAL).await.unwrap_or_default();
    assert!(!local.is_empty() && local.iter().all(|a| a.ip().is_loopback()));
}

#[tokio::test]
async fn a_literal_address_is_checked_before_anything_is_sent() {
    let out = outbound(Egress::PUBLIC);
    for (ip, shown) in [
        ("10.0.0.1", "address refused: 10.0.0.1 (private 10.0.0.0/8)"),
        ("169.254.169.254", "address refused: 169.254.169.254 (link-local 169.254.0.0/16)"),
        ("::1", "address refused: ::1 (loopback)"),
        ("::ffff:192.168.1.1", "address refused: ::ffff:192.168.1.1 (private 192.168.0.0/16)"),
    ] {
        let u = literal(ip, 443);
        let text = u.text.clone();
        assert_eq!(out.check(&u).await, Err(SendError(shown.into())), "{text}");
        let secrets = Secrets::new(Secret::generate());
        let sent = out.send(&Destination::Webhook(u), &secrets, &delivery(), "s", Timestamp::now()).await;
        assert_eq!(sent, Err(SendError(shown.into())), "{text}");
    }
    assert_eq!(
        out.check(&url("https://localhost/in")).await.map_err(|e| e.0.starts_with("address refused: ")),
        Err(true)
    );
    // Loopback is permitted where the egress says so.
    assert_eq!(outbound(Egress::LOCAL).check(&url("http://127.0.0.1:9/in")).await, Ok(()));
}

#[tokio::test]
async fn a_refused_connection_names_no_url() {
    // A loopback port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9);
    let u = url(&format!("http://127.0.0.1:{port}/in?token=hunter2"));
    let secrets = Secrets::new(Secret::generate());
    let out = outbound(Egress::LOCAL);
    let sent = out.send(&Destination::Webhook(u), &secrets, &delivery(), "s", Timestamp::now()).await;
    let text = sent.err().map(|e| e.0).unwrap_or_default();
    assert!(text.starts_with("connection failed: "), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("127.0.0.1"), "{text}");
}
