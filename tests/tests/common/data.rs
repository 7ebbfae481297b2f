//! Events spread over days, loaded through the ingest path, and the archive's bucket.

use super::env;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::usecases::archive::{ArchiveStores, Archiver, Options, Report};
use audit_aws::dynamodb::Table;
use audit_aws::s3::Bucket;
use serde_json::{Value, json};
use std::sync::Arc;

pub const DAY: i64 = 86_400;

pub fn bucket_name() -> String {
    env("AUDIT_ARCHIVE_BUCKET")
}

pub async fn bucket(endpoint: Option<&str>) -> Arc<Bucket> {
    let sdk = super::sdk().await;
    let client = match endpoint {
        None => audit_aws::sdk::s3(&sdk),
        Some(url) => aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk).endpoint_url(url).force_path_style(true).build(),
        ),
    };
    Arc::new(Bucket::new(client, bucket_name()))
}

pub fn options() -> Options {
    Options { default_hot_days: 90, part_max_rows: 1_000_000 }
}

pub async fn archive(store: &Arc<Table>, bucket: &Arc<Bucket>, tenant: &TenantId, options: Options) -> Report {
    let archiver = Archiver::new(ArchiveStores::on(store, bucket, &super::signer().await), options);
    archiver.run(Timestamp::now(), Some(tenant), None).await.unwrap_or_else(|e| panic!("{e}"))
}

/// A UTC day `days_ago` days before today.
pub fn day_ago(days_ago: i64) -> String {
    Timestamp::now().plus_seconds(-days_ago * DAY).day()
}

/// `n` events on `day`, with the awkward values a CSV or a reader could get wrong.
pub fn day_events(tag: &str, day: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let secs = (i * 7919) % 86_400;
            let action = ["channel.create", "auth.login", "api_key.delete"][i % 3];
            json!({
                "id": format!("{tag}-{day}-{i:06}"),
                "occurred_at": format!("{day}T{:02}:{:02}:{:02}.{:06}Z", secs / 3600, secs / 60 % 60, secs % 60, i % 1_000_000),
                "action": action,
                "outcome": if i % 5 == 0 { "failure" } else { "success" },
                "actor": {"type": "member", "id": format!("u-{}", i % 7), "name": "Zoë, \"the\" admin", "email": format!("u{}@example.com", i % 7)},
                "resource": {"type": "channel", "id": format!("c-{i}"), "name": "=SUM(A1)", "parent": {"type": "team", "id": "t-1"}},
                "workspace": {"id": "w-1", "name": "Acme\nEU"},
                "source": {"ip": if i % 2 == 0 { "203.0.113.7" } else { "2001:db8::1" }, "user_agent": "tests/1.0"},
                "description": format!("line one\nline two, with comma {i} and 雪"),
                "changes": [{"field": "name", "old": "a", "new": "b"}],
                "metadata": {"n": i, "nested": {"k": [1, 2.5, null, true]}},
            })
        })
        .collect()
}

pub async fn load(store: &Arc<Table>, tenant: &TenantId, events: &[Value]) {
    super::ingest_all(store, tenant, events).await;
}
