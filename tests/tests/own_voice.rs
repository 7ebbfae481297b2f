//! The service's own voice (contract section 1), black box on DynamoDB Local: a client
//! cannot write an event that reads as the service's record, nor take an id the service
//! needs, so no client write can block a rule change or an export. (The ingest queue's
//! side is in `ingest_queue.rs`: the bad-event table holds the reserved forms.)

mod common;

use audit::domain::egress::Egress;
use audit::domain::tenant::TenantId;
use audit::memory::MemoryNotifier;
use audit::ports::{EventReader, Lookup};
use audit::usecases::alerts::Rules;
use audit::usecases::ingest::Ingest;
use common::{count_events, new_tenant, post, serve, store, token};
use serde_json::{Value, json};
use std::sync::Arc;

fn forged(id: &str, action: &str) -> Value {
    json!({"id": id, "action": action, "actor": {"type": "member", "id": "mallory"},
           "description": "Deleted the alert rule"})
}

/// The `reason` of each detail of the first result's error.
fn reasons(body: &Value) -> Vec<(String, String)> {
    body["results"][0]["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|v| (v["field"].as_str().unwrap_or("").to_owned(), v["reason"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn logged(store: &Arc<audit_aws::dynamodb::Table>, tenant: &TenantId, id: &str) -> Option<Value> {
    let found = EventReader::get(&**store, tenant, id).await.unwrap_or_else(|e| panic!("{e}"));
    found.online().map(|e| e.to_json())
}

#[tokio::test]
async fn a_client_cannot_write_in_the_services_namespace_or_take_its_ids() {
    // Given: a tenant's write token
    let tenant = new_tenant();
    let base = serve(store(None).await).await;
    let write = token(&tenant, "audit:write");

    // When: it sends events that would read as the service's own records
    for (raw, field) in [
        (forged("e-1", "audit_log.export"), "action"),
        (forged("e-2", "audit_log.alert_create"), "action"),
        (forged("audit_log:export:0190b6c2-0000-7000-8000-000000000000", "channel.create"), "id"),
        (forged("Audit_Log:alert:x:deleted", "channel.delete"), "id"),
    ] {
        let (status, body) = post(&base, Some(&write), raw.to_string()).await;

        // Then: each is refused, with the field and the stable reason `reserved`
        assert_eq!(status, 400, "{raw}: {body}");
        assert_eq!(body["results"][0]["error"]["code"], "invalid_request", "{body}");
        assert!(reasons(&body).contains(&(field.to_owned(), "reserved".to_owned())), "{raw}: {body}");
        let message = body["results"][0]["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("service's own"), "{message}");
    }
    assert_eq!(count_events(&tenant).await, 0, "nothing stored");
}

#[tokio::test]
async fn a_forged_deletion_record_does_not_block_deleting_the_rule() {
    // Given: a rule, and a client that writes the records its deletion would log, in the
    // old id form (`alert:{id}:deleted`, which blocked the deletion for good) and the new
    let store = store(None).await;
    let tenant = new_tenant();
    let rules = Rules::on(&store, &Arc::new(MemoryNotifier::default()), Egress::PUBLIC, "audit-alerts-".into());
    let body = json!({"name": "failed logins", "match": {"action": "auth.login"},
        "destination": {"type": "webhook", "url": "https://hooks.example.com/in"}});
    let rule = rules.create(&tenant, "admin", body.to_string().as_bytes()).await.unwrap_or_else(|e| panic!("{e:?}"));
    let id = rule["id"].as_str().unwrap_or_default().to_owned();
    let base = serve(store.clone()).await;
    let write = token(&tenant, "audit:write");
    let old_form = format!("alert:{id}:deleted");
    let (status, body) = post(&base, Some(&write), forged(&old_form, "audit_log.alert_delete").to_string()).await;
    assert_eq!((status, reasons(&body)), (400, vec![("action".into(), "reserved".into())]), "{body}");
    // The old id form is the client's to use now: it is not the service's any more.
    let (status, body) = post(&base, Some(&write), forged(&old_form, "rule.delete").to_string()).await;
    assert_eq!(status, 202, "{body}");
    let new_form = format!("audit_log:alert:{id}:deleted");
    let (status, body) = post(&base, Some(&write), forged(&new_form, "rule.delete").to_string()).await;
    assert_eq!((status, reasons(&body)), (400, vec![("id".into(), "reserved".into())]), "{body}");

    // When: an administrator deletes the rule
    let deleted = rules.delete(&tenant, "admin", &id).await;

    // Then: it is gone, and its deletion is logged as the service's own event
    assert_eq!(deleted.map_err(|e| e.message), Ok(true));
    assert_eq!(rules.get(&tenant, &id).await.map_err(|e| e.message), Ok(None));
    let log = logged(&store, &tenant, &new_form).await.unwrap_or_else(|| panic!("deletion not logged"));
    assert_eq!((log["action"].as_str(), log["actor"]["id"].as_str()), (Some("audit_log.alert_delete"), Some("admin")));
    assert_eq!(logged(&store, &tenant, &old_form).await.map(|e| e["action"].clone()), Some(json!("rule.delete")));
}

#[tokio::test]
async fn the_services_own_events_are_stored_and_read_back() {
    // The service's path takes the reserved forms, and reads return them as stored.
    let store = store(None).await;
    let tenant = new_tenant();
    let own = forged("audit_log:export:x", "audit_log.export");
    let results = Ingest::on(&store).record_own(&tenant, vec![own]).await;
    assert!(results.iter().all(|r| r.stored()), "{results:?}");
    let read = EventReader::get(&*store, &tenant, "audit_log:export:x").await.ok().and_then(Lookup::online);
    assert_eq!(read.map(|e| e.event.action), Some("audit_log.export".to_owned()));
}
