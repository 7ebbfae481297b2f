//! What the black-box tests share: the local stack's settings, an in-process API on a
//! free port, tokens, and a DynamoDB proxy that injects faults.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod data;
pub mod faults;
pub mod proxy;
pub mod turns;

use audit::domain::cursor::CursorKey;
use audit::domain::tenant::TenantId;
use audit::usecases::ingest::Ingest;
use audit::usecases::query::Query;
use audit_aws::dynamodb::{Table, keys};
use audit_aws::retry::Backoff;
use audit_http::Verifier;
use audit_http::auth::issue_hs256;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use std::sync::Arc;
use std::time::Duration;

/// Reads a variable that `./infra/local/test` exports.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is unset: run the tests with ./infra/local/test"))
}

pub fn secret() -> String {
    env("AUDIT_JWT_SECRET")
}

/// A tenant of this test alone, so tests run side by side on one table.
pub fn new_tenant() -> TenantId {
    let t = format!("t-{}", uuid::Uuid::now_v7().simple());
    TenantId::parse(&t).unwrap_or_else(|e| panic!("{e}"))
}

pub fn token(tenant: &TenantId, scope: &str) -> String {
    issue_hs256(&secret(), tenant, "tester", scope, Duration::from_secs(600)).unwrap_or_else(|e| panic!("{e}"))
}

pub async fn sdk() -> aws_config::SdkConfig {
    audit_aws::sdk::sdk_config().await
}

/// A DynamoDB client for the local table, or for `endpoint` (a fault proxy) if given.
pub async fn dynamodb(endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let sdk = sdk().await;
    match endpoint {
        None => audit_aws::sdk::dynamodb(&sdk),
        // Set on the service's own builder: it outranks AWS_ENDPOINT_URL_DYNAMODB. Retries
        // stay off as in `audit_aws::sdk::dynamodb`, so only `audit_aws::retry` retries.
        Some(url) => aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .endpoint_url(url)
                .build(),
        ),
    }
}

/// The local stack's signing key (moto's KMS), as the archive and export functions use it.
pub async fn signer() -> Arc<audit_aws::kms::Keys> {
    Arc::new(audit_aws::kms::Keys::new(audit_aws::sdk::kms(&sdk().await), env("AUDIT_SIGNING_KEY"), Vec::new()))
}

/// The files an export job wrote, read from the bucket in the order its manifest lists them.
pub async fn export_files(store: &Table, files: &audit_aws::s3::Bucket, tenant: &TenantId, id: &str) -> Vec<Vec<u8>> {
    use audit::ports::{BlobStore, ExportJobs};
    let mut parts = ExportJobs::parts(store, tenant, id).await.unwrap_or_else(|e| panic!("{e}"));
    parts.sort_by_key(|p| p.index);
    let mut out = Vec::new();
    for file in parts.iter().flat_map(|p| &p.files) {
        let got = files.get_bytes(&file.key).await.unwrap_or_else(|e| panic!("{e}"));
        out.push(got.map(|(b, _)| b.to_vec()).unwrap_or_default());
    }
    out
}

/// The local table, through `endpoint` (a fault proxy) if given.
pub async fn store(endpoint: Option<&str>) -> Arc<Table> {
    Arc::new(Table::new(dynamodb(endpoint).await, env("AUDIT_TABLE")))
}

/// As [`store`], with its own retry policy.
pub async fn store_with_backoff(endpoint: Option<&str>, backoff: Backoff) -> Arc<Table> {
    Arc::new(Table::new(dynamodb(endpoint).await, env("AUDIT_TABLE")).with_backoff(backoff))
}

/// Stores events through the ingest use case; every one must be created.
pub async fn ingest_all(store: &Arc<Table>, tenant: &TenantId, events: &[serde_json::Value]) {
    for chunk in events.chunks(500) {
        let results = Ingest::on(store).ingest(tenant, chunk.to_vec()).await;
        assert!(results.iter().all(|r| r.status == audit::domain::ingest::Status::Created), "{results:?}");
    }
}

/// Serves the ingest router on a free loopback port; returns its base URL.
pub async fn serve(store: Arc<Table>) -> String {
    let state =
        Arc::new(ingest::AppState { ingest: Ingest::on(&store), verifier: Verifier::new(Some(&secret()), None) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, ingest::app(state)).await });
    format!("http://{addr}")
}

/// Serves the query router on a free loopback port; returns its base URL.
pub async fn serve_query(store: Arc<Table>) -> String {
    let state = Arc::new(query::QueryState {
        query: Query::on(&store, &data::bucket(None).await, CursorKey::derive(&secret()), 90),
        verifier: Verifier::new(Some(&secret()), None),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, query::app(state, store)).await });
    format!("http://{addr}")
}

/// GETs `path_and_query`; returns the status and the JSON answer.
pub async fn get(base: &str, token: &str, path_and_query: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path_and_query}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// How many event items the tenant has online (a Query of its time index, never a Scan).
pub async fn count_events(tenant: &TenantId) -> i32 {
    let client = dynamodb(None).await;
    let mut total = 0;
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(env("AUDIT_TABLE"))
            .index_name(keys::BY_TIME.name)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", keys::BY_TIME.pk)
            .expression_attribute_values(":p", AttributeValue::S(keys::time_pk(tenant, 0)))
            .select(Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        total += out.count();
        start = out.last_evaluated_key;
        if start.is_none() {
            return total;
        }
    }
}

/// POSTs `body` to `/v1/events`; returns the status and the JSON answer.
pub async fn post(base: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, serde_json::Value) {
    let mut req =
        reqwest::Client::new().post(format!("{base}/v1/events")).header("content-type", "application/json").body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    let json = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, json)
}

pub fn event(id: &str, action: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "occurred_at": "2026-11-01T10:00:00.123456Z",
        "action": action,
        "actor": {"type": "member", "id": "u-1", "name": "Ada", "email": "Ada@Example.com"},
        "resource": {"type": "channel", "id": "c-1", "name": "general"},
        "workspace": {"id": "w-1"},
        "source": {"ip": "203.0.113.7", "user_agent": "tests"},
        "description": "created a channel, \"general\"",
        "metadata": {"n": 1.5, "nested": {"k": [1, 2]}}
    })
}

/// The SHA-256 of `doc` in RFC 8785 form, by a JCS implementation no one here wrote: the
/// `hash` an auditor recomputes (contract section 1).
pub fn jcs_sha256(doc: &serde_json::Value) -> String {
    use sha2::Digest;
    let text = serde_jcs::to_string(doc).unwrap_or_else(|e| panic!("{e}"));
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Sets a tenant's settings as if their raise of shards were long past, so writes use
/// every shard at once (docs/design.md, "Capacity": a raise reaches writes only after every
/// reader's cached settings have it).
pub async fn set_settings_now(store: &Table, tenant: &TenantId, settings: audit::domain::tenant::TenantSettings) {
    use audit::ports::Tenants;
    store.set_settings(tenant, settings).await.unwrap_or_else(|e| panic!("{e}"));
    dynamodb(None)
        .await
        .update_item()
        .table_name(env("AUDIT_TABLE"))
        .key("pk", AttributeValue::S(keys::TENANTS_PK.into()))
        .key("sk", AttributeValue::S(tenant.to_string()))
        .update_expression("REMOVE shards_from, shards_raised_at")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
}
