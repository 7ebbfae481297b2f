//! The handler on the in-memory adapters: what an invocation's payload asks for, and
//! how a run's failures reach the invocation.

use super::*;
use audit::memory::{Fault, MemoryBlobs, MemorySigner, MemoryStore};
use audit::usecases::ingest::Ingest;
use serde_json::json;
use std::sync::Arc;

async fn loaded() -> (Arc<MemoryStore>, Job) {
    let store = Arc::new(MemoryStore::default());
    let now = Timestamp::now();
    for t in ["a", "b"] {
        let tenant = TenantId::parse(t).unwrap_or_else(|e| panic!("{e}"));
        let events: Vec<Value> = (0..5)
            .map(|i| {
                json!({"id": format!("{t}-{i}"), "occurred_at": now.plus_seconds(-(100 + i) * 86_400).to_string(),
                       "action": "a.b", "actor": {"type": "member", "id": "u"}})
            })
            .collect();
        Ingest::on(&store).ingest(&tenant, events).await;
    }
    let stores = ArchiveStores::on(&store, &Arc::new(MemoryBlobs::default()), &Arc::new(MemorySigner::default()));
    (store, Job { stores, options: Options { default_hot_days: 90, part_max_rows: 1_000 } })
}

#[tokio::test]
async fn a_run_archives_every_tenant_or_the_one_asked_for() {
    let (store, job) = loaded().await;
    let b = TenantId::parse("b").unwrap_or_else(|e| panic!("{e}"));
    let report = job.handle(json!({"tenant": "b"}), None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.committed.iter().map(|d| d.tenant.as_str()).collect::<Vec<_>>(), vec!["b"; 5]);
    assert!(store.events(&b).is_empty());
    let report = job.handle(json!({}), None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.committed.len(), 5);
    // As if it were 200 days ago: nothing is old enough.
    let past = Timestamp::now().plus_seconds(-200 * 86_400).to_string();
    let (_, fresh) = loaded().await;
    let report = fresh.handle(json!({"now": past}), None).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.committed.is_empty());
}

#[tokio::test]
async fn a_bad_payload_a_failing_tenant_and_a_passed_deadline() {
    let (store, job) = loaded().await;
    for bad in [json!({"now": "yesterday"}), json!({"tenant": "no spaces"})] {
        assert!(matches!(job.handle(bad.clone(), None).await, Err(RunError::BadPayload(_))), "{bad}");
    }
    store.faults.add(Fault::after("lease", 0).on("a").times(1));
    let failed = job.handle(json!({}), None).await;
    assert!(matches!(&failed, Err(RunError::Tenants(r)) if r.failures.len() == 1), "{failed:?}");
    let b = TenantId::parse("b").unwrap_or_else(|e| panic!("{e}"));
    assert!(store.events(&b).is_empty(), "the other tenant still ran");
    let report = job.handle(json!({}), Some(Instant::now())).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.unfinished && report.committed.is_empty(), "{report:?}");
}
