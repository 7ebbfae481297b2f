//! What matching a new event against 100 rules costs the alerts function, beside what it
//! costs to read the event from its stream record in the first place (decompressing
//! the stored document, checking its hash, parsing it): the work every record pays
//! whatever the rules.
//!
//! `python3 ../shared/bench/gen_events.py 20000 --tenants 1 > /tmp/ev.jsonl`
//! `cargo run --release -p audit-aws --example alert_matching -- /tmp/ev.jsonl [ROUNDS]`
//!
//! Prints, per round, nanoseconds per event of each, and the medians and their ratio.

use audit::domain::alert::{Rule, parse_new};
use audit::domain::alerting::matching;
use audit::domain::egress::Egress;
use audit::domain::event::{Event, StoredEvent};
use audit::domain::timestamp::Timestamp;
use audit_aws::dynamodb::item;
use std::hint::black_box;
use std::time::Instant;

const ACTIONS: &[&str] = &[
    "auth.login",
    "auth.logout",
    "api_key.create",
    "api_key.delete",
    "knowledge.create",
    "knowledge.update",
    "channel.create",
    "channel.connect",
    "message.send",
    "db.update",
    "member.invite",
    "member.delete",
    "member.enable",
    "member.disable",
    "app.publish",
    "app.export_dsl",
    "app.import_dsl",
    "workspace.create",
    "workspace.delete",
    "escalation_rule.update",
    "password.modify",
    "mfa.enable",
    "mfa.disable",
    "file.upload",
];

/// 100 rules of the kinds a tenant sets: exact actions (some with an outcome), whole
/// categories, one operator, a resource type with an action, a keyword.
fn rules(tenant: &audit::domain::tenant::TenantId) -> Vec<Rule> {
    let mut matches = Vec::new();
    for (i, a) in ACTIONS.iter().enumerate() {
        matches.push(format!(r#"{{"action": "{a}"}}"#));
        matches.push(format!(r#"{{"action": "{a}", "outcome": "failure"}}"#));
        matches.push(format!(r#"{{"actor": "u-0-{i}", "action": "{a}"}}"#));
    }
    for c in ["auth", "api_key", "member", "mfa", "workspace", "app", "db", "password", "file", "channel"] {
        matches.push(format!(r#"{{"action": "{c}.*"}}"#));
    }
    matches.push(r#"{"resource_type": "api_key", "action": ["api_key.create", "api_key.delete"]}"#.to_owned());
    matches.push(r#"{"q": "escalation"}"#.to_owned());
    for (i, r) in
        ["channel", "knowledge", "user", "api_key", "application", "workspace", "member", "file"].iter().enumerate()
    {
        matches.push(format!(r#"{{"resource_type": "{r}", "outcome": "failure"}}"#));
        matches.push(format!(r#"{{"workspace": "ws-0-{i}", "action": "member.*"}}"#));
    }
    assert_eq!(matches.len(), 100);
    let now = Timestamp::now();
    matches
        .iter()
        .map(|m| {
            let body = format!(
                r#"{{"name": "r", "match": {m}, "destination": {{"type": "webhook", "url": "https://hooks.example.com/x"}}}}"#
            );
            let settings = parse_new(body.as_bytes(), Egress::PUBLIC).unwrap_or_else(|v| panic!("{m}: {v:?}"));
            Rule::create(settings, tenant, now).0
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| panic!("usage: alert_matching EVENTS.jsonl [ROUNDS]"));
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(11);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let events: Vec<StoredEvent> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}"));
            Event::from_stored(&v).unwrap_or_else(|e| panic!("{e:?}")).stamp(Timestamp::now())
        })
        .collect();
    let tenant = events[0].event.tenant_id.clone();
    let events: Vec<StoredEvent> = events.into_iter().filter(|e| e.event.tenant_id == tenant).collect();
    let items: Vec<_> = events.iter().map(|e| item::to_item(e, 0, &e.hash)).collect();
    let rules = rules(&tenant);
    let n = events.len() as f64;
    let (mut read, mut matched, mut hits) = (Vec::new(), Vec::new(), 0usize);
    for round in 0..rounds {
        let t = Instant::now();
        for i in &items {
            black_box(item::from_item(black_box(i)).unwrap_or_else(|e| panic!("{e}")));
        }
        let r = t.elapsed().as_nanos() as f64 / n;
        let t = Instant::now();
        hits = 0;
        for e in &events {
            hits += black_box(matching(black_box(&rules), e)).len();
        }
        let m = t.elapsed().as_nanos() as f64 / n;
        println!("round {round}: read {r:.0} ns/event, match 100 rules {m:.0} ns/event");
        read.push(r);
        matched.push(m);
    }
    let (r, m) = (median(read), median(matched));
    println!(
        "{} events, {} rules, {:.2} matches/event; medians: read {r:.0} ns, match {m:.0} ns ({:.2}x the read)",
        events.len(),
        rules.len(),
        hits as f64 / n,
        m / r
    );
}
