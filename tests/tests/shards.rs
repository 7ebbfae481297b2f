//! A tenant's shards only grow, and reads, exports and archive runs after a raise miss
//! nothing, on DynamoDB Local: not the processes that still have the old settings cached
//! (every process keeps a tenant's settings for a minute), nor, once the raise reaches the
//! writers, those reading every new shard.

mod common;

use audit::domain::tenant::{TenantId, TenantSettings};
use audit::domain::timestamp::Timestamp;
use audit::memory::MemoryQueue;
use audit::ports::{StoreError, Tenants};
use audit::usecases::archive::{ArchiveStores, Archiver};
use audit::usecases::export::Exporter;
use audit::usecases::export::requests::Exports;
use audit_aws::dynamodb::{Table, keys};
use audit_aws::s3::Bucket;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use common::data::{bucket, day_ago, day_events, options};
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

fn ids(events: &[Value]) -> BTreeSet<String> {
    events.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect()
}

/// A process of its own: a store whose settings cache is its own, filled now.
async fn process(tenant: &TenantId) -> Arc<Table> {
    let store = store(None).await;
    store.settings(tenant).await.unwrap_or_else(|e| panic!("{e}"));
    store
}

/// Every event the query API on `store` lists for the tenant (the last 7 days), but the
/// tests' exports.
async fn listed(store: Arc<Table>, tenant: &TenantId) -> BTreeSet<String> {
    let base = serve_query(store).await;
    let read = token(tenant, "audit:read");
    let mut out = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get(&base, &read, &format!("/v1/events?limit=100{cursor}")).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().into_iter().flatten().filter_map(|e| e["id"].as_str());
        // Not the exports' own audit events.
        out.extend(items.filter(|id| !id.starts_with("audit_log:")).map(str::to_owned));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

/// Every event an export of everything since `from`, run on `store`, writes.
async fn exported(store: &Arc<Table>, archive: &Arc<Bucket>, tenant: &TenantId, from: &str) -> BTreeSet<String> {
    let files = Arc::new(Bucket::new(audit_aws::sdk::s3(&sdk().await), env("AUDIT_EXPORT_BUCKET")));
    let queue = Arc::new(MemoryQueue::default());
    let exports = Exports::on(store, &queue, &files, audit::domain::cursor::CursorKey::derive("shards"));
    let body = json!({"from": from, "format": "jsonl"}).to_string();
    let job = exports.request(tenant, "tester", body.as_bytes()).await.unwrap_or_else(|e| panic!("{e:?}"));
    let exporter = Exporter::on(store, archive, &files, &queue, &signer().await, 1_000_000, 90);
    let done = exporter.run(tenant, &job.id, None, None).await;
    assert!(done.unwrap_or_else(|e| panic!("{e}")).is_some(), "the export did not succeed");
    let bytes = export_files(store, &files, tenant, &job.id).await.concat();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["id"].as_str().map(str::to_owned))
        .filter(|id| !id.starts_with("audit_log:"))
        .collect()
}

/// Events per shard of the tenant's time index.
async fn per_shard(tenant: &TenantId, shards: u16) -> Vec<i32> {
    let client = dynamodb(None).await;
    let mut out = Vec::new();
    for shard in 0..shards {
        let (mut n, mut start) = (0, None);
        loop {
            let page = client
                .query()
                .table_name(env("AUDIT_TABLE"))
                .index_name(keys::BY_TIME.name)
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", keys::BY_TIME.pk)
                .expression_attribute_values(":p", AttributeValue::S(keys::time_pk(tenant, shard)))
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            n += page.count();
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        out.push(n);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_raise_of_shards_reads_exports_and_archive_runs_miss_nothing() {
    // Given: a tenant on one shard with events of a day due for the archive and of
    // yesterday, and processes that have its settings cached
    let tenant = new_tenant();
    let admin = store(None).await;
    let archive = bucket(None).await;
    let (old, later_old, recent) = (day_ago(120), day_ago(119), day_ago(1));
    let mut first = day_events("a", &old, 40);
    first.extend(day_events("a", &recent, 40));
    ingest_all(&admin, &tenant, &first).await;
    let (reader, exporter, archiver) = (process(&tenant).await, process(&tenant).await, process(&tenant).await);

    // When: the shards are raised to 4 (they never shrink), and a process that has the
    // new settings writes more at once
    admin.set_settings(&tenant, TenantSettings::new(4, None)).await.unwrap_or_else(|e| panic!("{e}"));
    let shrink = admin.set_settings(&tenant, TenantSettings::new(2, None)).await;
    assert!(matches!(shrink, Err(StoreError::Refused(_))), "{shrink:?}");
    let mut second = day_events("b", &old, 40);
    second.extend(day_events("b", &recent, 40));
    ingest_all(&store(None).await, &tenant, &second).await;

    // Then: the processes with the old settings miss none of them
    let all: Vec<Value> = first.iter().chain(&second).cloned().collect();
    let recent_ids =
        ids(&all.iter().filter(|e| e["id"].as_str().is_some_and(|i| i.contains(&recent))).cloned().collect::<Vec<_>>());
    assert_eq!(listed(reader, &tenant).await, recent_ids);
    assert_eq!(exported(&exporter, &archive, &tenant, &format!("{old}T00:00:00Z")).await, ids(&all));
    let report = Archiver::new(ArchiveStores::on(&archiver, &archive, &common::signer().await), options())
        .run(Timestamp::now(), Some(&tenant), None)
        .await;
    let report = report.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.rows_by_day(), vec![(old.clone(), 80)], "{report:?}");

    // And once the raise reaches the writers, new events spread over the new shards, and
    // processes that read them all miss nothing either.
    dynamodb(None)
        .await
        .update_item()
        .table_name(env("AUDIT_TABLE"))
        .key("pk", AttributeValue::S(keys::TENANTS_PK.into()))
        .key("sk", AttributeValue::S(tenant.to_string()))
        .update_expression("SET shards_raised_at = :long_ago")
        .expression_attribute_values(":long_ago", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let before = per_shard(&tenant, 4).await;
    assert_eq!(before[1..], [0, 0, 0], "written to new shards before every reader knew them");
    let mut third = day_events("c", &later_old, 40);
    third.extend(day_events("c", &recent, 40));
    ingest_all(&store(None).await, &tenant, &third).await;
    let after = per_shard(&tenant, 4).await;
    assert!(after[1..].iter().all(|n| *n > 0), "{after:?}");
    let all: Vec<Value> = all.into_iter().chain(third).collect();
    let recent_ids =
        ids(&all.iter().filter(|e| e["id"].as_str().is_some_and(|i| i.contains(&recent))).cloned().collect::<Vec<_>>());
    assert_eq!(listed(process(&tenant).await, &tenant).await, recent_ids);
    assert_eq!(exported(&process(&tenant).await, &archive, &tenant, &format!("{old}T00:00:00Z")).await, ids(&all));
    let fresh = process(&tenant).await;
    let report = Archiver::new(ArchiveStores::on(&fresh, &archive, &common::signer().await), options())
        .run(Timestamp::now(), Some(&tenant), None)
        .await;
    let report = report.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.rows_by_day(), vec![(later_old, 40)], "{report:?}");
    let online = per_shard(&tenant, 4).await.iter().sum::<i32>();
    assert_eq!(online, 120 + 2, "only yesterday's events, and the two exports' own, are left online");
}
