//! Fair exports, black box on the local stack (DynamoDB Local, moto SQS, s3s-fs): the
//! exports API and the local runner's export workers on a queue of this test's own. One
//! tenant's backlog never holds another tenant's export; past its limit a tenant is told
//! to come back later; the list pages.

mod common;

use async_trait::async_trait;
use audit::domain::cursor::CursorKey;
use audit::domain::export_dispatch::Limits;
use audit::domain::tenant::{TenantId, TenantSettings};
use audit::ports::{StoreError, Tenants};
use audit::usecases::export::Exporter;
use audit::usecases::export::requests::Exports;
use audit_aws::s3::Bucket;
use audit_aws::sqs::Queue;
use audit_http::Verifier;
use common::{env, new_tenant, secret, token};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const LIMITS: Limits = Limits { active: 10, running: 2 };
/// More than `LIMITS.running`, as the deployed `ExportConcurrency` must be.
const WORKERS: usize = 4;

struct Service {
    base: String,
    queue: Arc<Queue>,
    exports: Arc<Bucket>,
}

/// The exports API on a queue of its own, and the store it writes to.
async fn service() -> Service {
    let sdk = common::sdk().await;
    let sqs = audit_aws::sdk::sqs(&sdk);
    let name = format!("fair-{}", uuid::Uuid::now_v7().simple());
    let created = sqs.create_queue().queue_name(name).send().await.unwrap_or_else(|e| panic!("{e:?}"));
    let queue = Arc::new(Queue::new(sqs, created.queue_url().unwrap_or_default()));
    let exports = Arc::new(Bucket::new(audit_aws::sdk::s3(&sdk), env("AUDIT_EXPORT_BUCKET")));
    let store = common::store(None).await;
    let api = Exports::on(&store, &queue, &exports, CursorKey::derive(&secret())).with_limits(LIMITS);
    let state = Arc::new(export::ExportState {
        exports: api,
        verifier: Verifier::new(Some(&secret()), None),
        keys: common::signer().await,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, export::app(state)).await });
    Service { base: format!("http://{addr}"), queue, exports }
}

/// A tenant's settings that are not given out for `held` while the gate is shut: each of
/// its export runs stops at its first read, and stays running, until the test opens it.
struct Gated {
    inner: Arc<audit_aws::dynamodb::Table>,
    held: TenantId,
    open: watch::Receiver<bool>,
}

#[async_trait]
impl Tenants for Gated {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        if *tenant == self.held {
            let mut open = self.open.clone();
            let _ = open.wait_for(|o| *o).await;
        }
        self.inner.settings(tenant).await
    }

    async fn set_settings(&self, tenant: &TenantId, settings: TenantSettings) -> Result<(), StoreError> {
        self.inner.set_settings(tenant, settings).await
    }
}

async fn post(base: &str, tenant: &TenantId) -> (u16, Option<String>, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/exports"))
        .bearer_auth(token(tenant, "audit:export"))
        .json(&json!({"format": "jsonl"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, retry_after, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn one_tenants_backlog_does_not_hold_another_tenants_export() {
    // Given: the runner's workers, with tenant A's runs held once they start
    let s = service().await;
    let (a, b) = (new_tenant(), new_tenant());
    let store = common::store(None).await;
    let archive = common::data::bucket(None).await;
    let (gate, open) = watch::channel(false);
    let mut exporter =
        Exporter::on(&store, &archive, &s.exports, &s.queue, &common::signer().await, 1_000, 90).with_limits(LIMITS);
    exporter.tenants = Arc::new(Gated { inner: store.clone(), held: a.clone(), open });
    audit_local::spawn_export_workers(&s.queue, &exporter, &audit_runtime::metrics::Metrics::default(), WORKERS);

    // When: A fills its queue, and past its limit is told to wait
    for i in 0..LIMITS.active {
        let (status, _, body) = post(&s.base, &a).await;
        assert_eq!(status, 202, "export {i}: {body}");
    }
    let (status, retry_after, body) = post(&s.base, &a).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("throttled")), "{body}");
    assert!(retry_after.and_then(|r| r.parse::<u32>().ok()).is_some_and(|r| r > 0), "Retry-After");
    let listed = common::get(&s.base, &token(&a, "audit:export"), "/v1/exports?limit=100").await.1;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(LIMITS.active as usize), "nothing queued past it");

    // Then: B's export, asked for after all of A's, finishes while A's runs are held
    let (status, _, created) = post(&s.base, &b).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let (_, job) = common::get(&s.base, &token(&b, "audit:export"), &format!("/v1/exports/{id}")).await;
        if job["status"] == "succeeded" || Instant::now() > deadline {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(job["status"], "succeeded", "B's export waited behind A's backlog: {job}");
    let (_, a_jobs) = common::get(&s.base, &token(&a, "audit:export"), "/v1/exports?limit=100").await;
    let running = a_jobs["items"].as_array().map_or(0, |j| j.iter().filter(|j| j["status"] == "running").count());
    assert!(running <= LIMITS.running as usize, "A runs at most its limit: {a_jobs}");

    // And: once A's runs go on, all of A's exports finish too
    let _ = gate.send(true);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (_, list) = common::get(&s.base, &token(&a, "audit:export"), "/v1/exports?limit=100").await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.iter().all(|j| j["status"] == "succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "A's exports did not all finish: {list}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, _, body) = post(&s.base, &a).await;
    assert_eq!(status, 202, "A has room again: {body}");
}

#[tokio::test]
async fn the_list_of_exports_pages_newest_first_with_a_cursor_bound_to_the_tenant() {
    // Given: seven exports of one tenant (none run: no worker reads this queue)
    let s = service().await;
    let tenant = new_tenant();
    let t = token(&tenant, "audit:export");
    let mut ids = Vec::new();
    for _ in 0..7 {
        let (status, _, body) = post(&s.base, &tenant).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap_or_default().to_owned());
    }
    ids.reverse();

    // When: it reads them three at a time
    let mut seen = Vec::new();
    let mut path = "/v1/exports?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = common::get(&s.base, &t, &path).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 3, "{page}");
        seen.extend(items.iter().map(|j| j["id"].as_str().unwrap_or_default().to_owned()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/exports?limit=3&cursor={c}"),
            None => break,
        }
    }

    // Then: every export once, newest first, in three pages; the default page holds 20
    assert_eq!((seen, pages), (ids.clone(), 3));
    let (_, all) = common::get(&s.base, &t, "/v1/exports").await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(7));
    assert_eq!(all["next_cursor"], Value::Null);

    // A cursor is this tenant's alone, and cannot be edited; limits are 1 to 100.
    let (_, first) = common::get(&s.base, &t, "/v1/exports?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let other = token(&new_tenant(), "audit:export");
    let (status, body) = common::get(&s.base, &other, &format!("/v1/exports?cursor={cursor}")).await;
    assert_eq!((status, body["error"]["details"][0]["reason"].as_str()), (400, Some("invalid_cursor")), "{body}");
    let swapped = if cursor.as_bytes().get(4) == Some(&b'A') { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &cursor[..4], &cursor[5..]);
    let (status, body) = common::get(&s.base, &t, &format!("/v1/exports?cursor={tampered}")).await;
    assert_eq!((status, body["error"]["details"][0]["reason"].as_str()), (400, Some("invalid_cursor")), "{body}");
    for bad in ["limit=0", "limit=101", "limit=x", "limit=2&limit=3", "order=asc"] {
        let (status, body) = common::get(&s.base, &t, &format!("/v1/exports?{bad}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{bad}: {body}");
    }
}
