//! Exports against DynamoDB Local, s3s-fs (which checks signatures and presigned expiry)
//! and moto: the file is downloaded through its presigned link and read back with
//! Python's csv module.

mod common;

use audit::domain::cursor::CursorKey;
use audit::domain::event::{Event, StoredEvent};
use audit::domain::export::Message;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::formats::export_file::CSV_COLUMNS;
use audit::ports::{BlobStore, Condition, EventReader, ExportJobs};
use audit::usecases::archive::{ArchiveStores, Archiver, Options};
use audit::usecases::export::Exporter;
use audit::usecases::export::requests::Exports;
use audit_aws::dynamodb::Table;
use audit_aws::s3::Bucket;
use audit_aws::sqs::Queue;
use audit_http::Verifier;
use aws_sdk_dynamodb::types::AttributeValue;
use common::data::{archive, bucket, day_ago, day_events, load, options};
use common::{env, new_tenant, secret, token};
use serde_json::{Value, json};
use std::sync::Arc;

struct Service {
    base: String,
    store: Arc<Table>,
    archive: Arc<Bucket>,
    exports: Arc<Bucket>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    signer: Arc<audit_aws::kms::Keys>,
}

/// The export API on a free port, with a queue of its own so tests do not take each
/// other's messages.
async fn service() -> Service {
    let sdk = common::sdk().await;
    let sqs = audit_aws::sdk::sqs(&sdk);
    let name = format!("exports-{}", uuid::Uuid::now_v7().simple());
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .queue_url
        .unwrap_or_default();
    let exports = Arc::new(Bucket::new(audit_aws::sdk::s3(&sdk), env("AUDIT_EXPORT_BUCKET")));
    let queue = Arc::new(Queue::new(sqs.clone(), &queue_url));
    let state = Arc::new(export::ExportState {
        exports: Exports::on(&common::store(None).await, &queue, &exports, CursorKey::derive(&secret())),
        verifier: Verifier::new(Some(&secret()), None),
        keys: common::signer().await,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, export::app(state)).await });
    Service {
        base: format!("http://{addr}"),
        store: common::store(None).await,
        archive: bucket(None).await,
        exports,
        sqs,
        queue_url,
        signer: common::signer().await,
    }
}

impl Service {
    /// The export queue of this test's service.
    fn queue(&self) -> Arc<Queue> {
        Arc::new(Queue::new(self.sqs.clone(), &self.queue_url))
    }

    async fn post(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = reqwest::Client::new().post(format!("{}/v1/exports", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        common::get(&self.base, token, path).await
    }

    /// The export worker's use case, as the worker builds it.
    fn exporter(&self, max_rows: u64) -> Exporter {
        Exporter::on(&self.store, &self.archive, &self.exports, &self.queue(), &self.signer, max_rows, 90)
    }

    /// Runs the job the way the worker does after the queue delivers it.
    async fn run(&self, tenant: &TenantId, id: &str, max_rows: u64) {
        self.exporter(max_rows).run(tenant, id, None, None).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Requests an export and runs it; returns the job as `GET /v1/exports/{id}` shows it.
    async fn export(&self, tenant: &TenantId, body: Value, max_rows: u64) -> Value {
        let t = token(tenant, "audit:export");
        let (status, created) = self.post(Some(&t), body).await;
        assert_eq!(status, 202, "{created}");
        assert_eq!(created["status"], "queued");
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        self.run(tenant, &id, max_rows).await;
        let (status, job) = self.get(&t, &format!("/v1/exports/{id}")).await;
        assert_eq!(status, 200, "{job}");
        job
    }
}

async fn download(url: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::get(url).await.unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap_or_default().to_vec())
}

/// The CSV as Python's csv module reads it.
fn python_csv(bytes: &[u8]) -> (Vec<String>, Vec<serde_json::Map<String, Value>>) {
    let dir = std::env::temp_dir().join(format!("export-{}.csv", uuid::Uuid::now_v7()));
    std::fs::write(&dir, bytes).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(env("AUDIT_TEST_PYTHON"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/csv_rows.py"))
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let header = v["header"].as_array().into_iter().flatten().filter_map(|h| h.as_str().map(str::to_owned)).collect();
    let rows = v["rows"].as_array().into_iter().flatten().filter_map(|r| r.as_object().cloned()).collect();
    (header, rows)
}

/// What a spreadsheet-safe cell of `v` reads back as.
fn guarded(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_owned() }
}

fn text(v: &Value) -> String {
    v.as_str().map(guarded).unwrap_or_default()
}

/// Events in several old days (archived) and recent ones (online), plus a late event for
/// an archived day that is still online: every kind of source an export merges.
async fn archived_and_online(s: &Service, tenant: &TenantId) -> Vec<Value> {
    let mut all = day_events("x", &day_ago(200), 40);
    all.extend(day_events("x", &day_ago(199), 25));
    all.extend(day_events("x", &day_ago(2), 30));
    load(&s.store, tenant, &all).await;
    let report = archive(&s.store, &s.archive, tenant, options()).await;
    assert_eq!(report.rows_by_day().len(), 2, "{report:?}");
    let late = day_events("late", &day_ago(200), 3);
    load(&s.store, tenant, &late).await;
    all.extend(late);
    all
}

/// The stored form of each raw event the filters match, newest first: which ones, and in
/// what order, the reference filter decides from the contract's words.
fn expected(tenant: &TenantId, events: &[Value], query: &str) -> Vec<StoredEvent> {
    audit::reference::select(events, query, &Timestamp::now().to_string())
        .into_iter()
        .map(|raw| {
            Event::validate(raw.clone(), tenant, Timestamp::now())
                .unwrap_or_else(|v| panic!("{v:?}"))
                .stamp(Timestamp::now())
        })
        .collect()
}

fn range() -> (String, String) {
    (format!("{}T00:00:00Z", day_ago(201)), Timestamp::now().plus_seconds(-3600).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_csv_export_spans_archive_and_online_newest_first() {
    let s = service().await;
    let tenant = new_tenant();
    let all = archived_and_online(&s, &tenant).await;
    let (from, to) = range();
    let job = s.export(&tenant, json!({"from": from, "to": to}), 1_000_000).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["truncated"], false);
    let want = expected(&tenant, &all, &format!("from={from}&to={to}"));
    assert_eq!(want.len(), 98);
    assert_eq!(job["rows"], json!(want.len()));
    let url = job["download_url"].as_str().unwrap_or_default();
    let (status, bytes) = download(url).await;
    assert_eq!(status, 200);
    assert_eq!(job["bytes"], json!(bytes.len()));
    let (header, rows) = python_csv(&bytes);
    assert_eq!(header, CSV_COLUMNS.map(str::to_owned).to_vec());
    assert_eq!(rows.len(), want.len());
    for (row, s) in rows.iter().zip(&want) {
        let raw = serde_json::to_value(s.event.to_json()).unwrap_or_default();
        let cell = |c: &str| row.get(c).and_then(Value::as_str).unwrap_or_default().to_owned();
        assert_eq!(cell("id"), guarded(&s.event.id));
        assert_eq!(cell("occurred_at"), s.event.occurred_at.to_string());
        for (column, value) in [
            ("action", &raw["action"]),
            ("outcome", &raw["outcome"]),
            ("actor_type", &raw["actor"]["type"]),
            ("actor_id", &raw["actor"]["id"]),
            ("actor_name", &raw["actor"]["name"]),
            ("actor_email", &raw["actor"]["email"]),
            ("resource_type", &raw["resource"]["type"]),
            ("resource_id", &raw["resource"]["id"]),
            ("resource_name", &raw["resource"]["name"]),
            ("workspace_id", &raw["workspace"]["id"]),
            ("workspace_name", &raw["workspace"]["name"]),
            ("source_ip", &raw["source"]["ip"]),
            ("user_agent", &raw["source"]["user_agent"]),
            ("request_id", &raw["request_id"]),
            ("description", &raw["description"]),
        ] {
            assert_eq!(cell(column), text(value), "{column} of {}", s.event.id);
        }
        assert_eq!(serde_json::from_str::<Value>(&cell("changes")).unwrap_or_default(), raw["changes"]);
        assert_eq!(serde_json::from_str::<Value>(&cell("metadata")).unwrap_or_default(), raw["metadata"]);
    }
    // The awkward values really were there: commas, quotes, newlines, unicode, formulas.
    let first = &rows[0];
    assert_eq!(first["resource_name"], "'=SUM(A1)");
    assert!(first["actor_name"].as_str().is_some_and(|n| n.contains(", \"the\"")));
    assert!(first["description"].as_str().is_some_and(|d| d.contains('\n') && d.contains('雪')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_and_jsonl_match_the_query_definition() {
    let s = service().await;
    let tenant = new_tenant();
    let before = Timestamp::now();
    let all = archived_and_online(&s, &tenant).await;
    let after = Timestamp::now();
    let (from, to) = range();
    let body = json!({"from": from, "to": to, "action": ["channel.*", "api_key.delete"], "actor": "U3@EXAMPLE.COM", "format": "jsonl"});
    let job = s.export(&tenant, body, 1_000_000).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let want = expected(
        &tenant,
        &all,
        &format!("from={from}&to={to}&action=channel.*&action=api_key.delete&actor=U3%40EXAMPLE.COM"),
    );
    assert!(!want.is_empty());
    let (_, bytes) = download(job["download_url"].as_str().unwrap_or_default()).await;
    let lines: Vec<Value> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), want.len());
    for (line, s) in lines.iter().zip(&want) {
        // Received while the test stored it: UTC with microseconds, within the loading.
        let mut line = line.clone();
        let received = line.as_object_mut().and_then(|m| m.remove("received_at")).unwrap_or_default();
        let text = received.as_str().unwrap_or_default();
        assert!(text.len() == 27 && text.ends_with('Z') && text.as_bytes()[19] == b'.', "{received}");
        let at = Timestamp::parse(text).unwrap_or(Timestamp::MIN);
        assert!(before <= at && at <= after, "received_at {text} outside the load, {before} to {after}");
        let mut expected = s.to_json();
        expected.as_object_mut().map(|m| m.remove("received_at"));
        assert_eq!(line, expected);
    }
}

/// Moves a job's `expires_at`, as time passing would.
async fn set_expires_at(tenant: &TenantId, id: &str, at: Timestamp) {
    common::dynamodb(None)
        .await
        .update_item()
        .table_name(env("AUDIT_TABLE"))
        .key("pk", AttributeValue::S(format!("EXPORTS#{tenant}")))
        .key("sk", AttributeValue::S(id.to_owned()))
        .update_expression("SET expires_at = :p")
        .expression_attribute_values(":p", AttributeValue::S(at.to_string()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
}

/// When a presigned link stops, in seconds since the epoch: its signing second (the
/// `X-Amz-Date` it names) plus its life (`X-Amz-Expires`).
fn link_end(url: &str) -> i64 {
    let param = |name: &str| url.split(&format!("{name}=")).nth(1).and_then(|v| v.split('&').next()).unwrap_or("");
    let d = param("X-Amz-Date");
    let signed = (d.len() == 16)
        .then(|| format!("{}-{}-{}T{}:{}:{}Z", &d[0..4], &d[4..6], &d[6..8], &d[9..11], &d[11..13], &d[13..15]))
        .and_then(|iso| Timestamp::parse(&iso).ok())
        .map_or(i64::MAX / 2, |t| t.micros() / 1_000_000);
    signed + param("X-Amz-Expires").parse::<i64>().unwrap_or(i64::MAX / 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_expire_and_expired_exports_are_gone() {
    let s = service().await;
    let tenant = new_tenant();
    load(&s.store, &tenant, &day_events("e", &day_ago(1), 5)).await;
    let job = s.export(&tenant, json!({}), 1_000_000).await;
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let url = job["download_url"].as_str().unwrap_or_default();
    let expires_at = Timestamp::parse(job["expires_at"].as_str().unwrap_or_default()).unwrap_or(Timestamp::MIN);
    let completed_at = Timestamp::parse(job["completed_at"].as_str().unwrap_or_default()).unwrap_or(Timestamp::MIN);
    assert_eq!(expires_at, completed_at.plus_seconds(24 * 3600));
    // The link names its own expiry, which is never past expires_at.
    let link_expiry: u64 = url
        .split("X-Amz-Expires=")
        .nth(1)
        .and_then(|v| v.split('&').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(link_expiry <= 3600);
    // A bare link: nothing signed but the host, which is all a browser sends.
    assert!(url.contains("X-Amz-SignedHeaders=host&") || url.ends_with("X-Amz-SignedHeaders=host"), "{url}");
    assert_eq!(download(url).await.0, 200);

    // In the job's last seconds the link it gets ends by expires_at, to the fraction of a
    // second (SigV4 names its start and life in whole seconds), and s3s-fs refuses it once
    // that has passed.
    let parts = ExportJobs::parts(&*s.store, &tenant, &id).await.unwrap_or_else(|e| panic!("{e}"));
    let key = parts.iter().flat_map(|p| &p.files).map(|f| f.key.clone()).next().unwrap_or_default();
    let soon = Timestamp::from_micros(Timestamp::now().micros() + 3_700_000).unwrap_or(Timestamp::MIN);
    set_expires_at(&tenant, &id, soon).await;
    let t = token(&tenant, "audit:export");
    let (_, job) = s.get(&t, &format!("/v1/exports/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    match job["download_url"].as_str() {
        Some(url) => {
            let end = link_end(url);
            assert!(end * 1_000_000 <= soon.micros(), "the link ends at {end} s, past expires_at {soon}");
            while Timestamp::now().micros() < soon.micros() + 1_100_000 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert_eq!(download(url).await.0, 403);
        }
        // No link in the last second before expires_at.
        None => assert!(Timestamp::now().micros() > soon.micros() - 1_000_000, "{job}"),
    }

    // Past expires_at: the API says expired, gives no link, and the file is gone.
    set_expires_at(&tenant, &id, Timestamp::now().plus_seconds(-1)).await;
    let (status, job) = s.get(&t, &format!("/v1/exports/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(job["status"], "expired");
    assert_eq!(job["download_url"], Value::Null);
    assert!(
        s.exports.get_bytes(&key).await.unwrap_or_else(|e| panic!("{e}")).is_none(),
        "the expired file is still there"
    );
    let (_, again) = s.get(&t, &format!("/v1/exports/{id}")).await;
    assert_eq!(again["status"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn empty_truncated_and_failed_exports() {
    let s = service().await;
    let tenant = new_tenant();
    let all = archived_and_online(&s, &tenant).await;
    let (from, to) = range();

    // Nothing matches: a header-only file.
    let none = s.export(&tenant, json!({"from": from, "to": to, "resource_id": "no-such-thing"}), 1_000_000).await;
    assert_eq!((none["status"].as_str(), none["rows"].as_u64()), (Some("succeeded"), Some(0)));
    let (_, bytes) = download(none["download_url"].as_str().unwrap_or_default()).await;
    assert_eq!(bytes, audit::formats::TextFormat::Csv.header());

    // Over the row limit: the most recent rows, and truncated.
    let capped = s.export(&tenant, json!({"from": from, "to": to}), 7).await;
    assert_eq!((capped["rows"].as_u64(), capped["truncated"].as_bool()), (Some(7), Some(true)));
    let (_, bytes) = download(capped["download_url"].as_str().unwrap_or_default()).await;
    let (_, rows) = python_csv(&bytes);
    let want = expected(&tenant, &all, &format!("from={from}&to={to}"));
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    let want_ids: Vec<&str> = want.iter().take(7).map(|s| s.event.id.as_str()).collect();
    assert_eq!(ids, want_ids);

    // An archived day whose manifest is damaged: the job fails and says why.
    let manifest = audit::domain::manifest::manifest_key(tenant.as_str(), &day_ago(199));
    s.archive
        .put_bytes(&manifest, b"{not json".to_vec(), "application/json", Condition::None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let failed = s.export(&tenant, json!({"from": from, "to": to}), 1_000_000).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "data_integrity");
    assert!(failed["error"]["message"].as_str().is_some_and(|m| m.contains(&day_ago(199))), "{failed}");
    assert_eq!(failed["download_url"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_cannot_see_each_others_exports() {
    let s = service().await;
    let (a, b) = (new_tenant(), new_tenant());
    let events = day_events("iso", &day_ago(1), 4);
    load(&s.store, &a, &events).await;
    load(&s.store, &b, &day_events("iso-b", &day_ago(1), 2)).await;
    let job = s.export(&a, json!({}), 1_000_000).await;
    let id = job["id"].as_str().unwrap_or_default();
    // Only A's events are in A's file (its export event, too).
    let (_, bytes) = download(job["download_url"].as_str().unwrap_or_default()).await;
    let (_, rows) = python_csv(&bytes);
    assert!(
        rows.iter().all(|r| r["id"]
            .as_str()
            .is_some_and(|i| i.starts_with("iso-") && !i.starts_with("iso-b") || i.starts_with("audit_log:export:"))),
        "{rows:?}"
    );
    let tb = token(&b, "audit:export");
    let (status, body) = s.get(&tb, &format!("/v1/exports/{id}")).await;
    assert_eq!(status, 404, "{body}");
    let (_, list) = s.get(&tb, "/v1/exports").await;
    assert_eq!(list["items"], json!([]));
    let ta = token(&a, "audit:export");
    let (_, list) = s.get(&ta, "/v1/exports").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["id"], json!(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_are_checked_logged_and_queued() {
    let s = service().await;
    let tenant = new_tenant();
    let (status, _) = s.post(None, json!({})).await;
    assert_eq!(status, 401);
    let (status, body) = s.post(Some(&token(&tenant, "audit:read")), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    let t = token(&tenant, "audit:export");
    for (bad, field) in [
        (json!({"format": "xlsx"}), "format"),
        (json!({"cursor": "x"}), "cursor"),
        (json!({"from": 1}), "from"),
        (json!({"action": "x' OR 1=1"}), "action"),
        (json!(["x"]), ""),
    ] {
        let (status, body) = s.post(Some(&t), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
        assert!(
            body["error"]["details"].as_array().into_iter().flatten().any(|d| d["field"] == field),
            "{bad}: {body}"
        );
    }
    let (status, created) = s.post(Some(&t), json!({"action": "channel.create", "format": "jsonl"})).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    // Queued: the message names the job.
    let got = s
        .sqs
        .receive_message()
        .queue_url(&s.queue_url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let bodies: Vec<Message> =
        got.messages().iter().filter_map(|m| serde_json::from_str(m.body().unwrap_or_default()).ok()).collect();
    assert_eq!(bodies, vec![Message { tenant_id: tenant.to_string(), id: id.clone(), part: None }]);
    let job = ExportJobs::get(&*s.store, &tenant, &id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.map(|j| j.status.as_str()), Some("queued"));
    // Logged: an audit_log.export event by the caller, in the caller's tenant.
    let logged =
        EventReader::get(&*s.store, &tenant, &format!("audit_log:export:{id}")).await.unwrap_or_else(|e| panic!("{e}"));
    let logged = logged.online().unwrap_or_else(|| panic!("no export event"));
    assert_eq!(logged.event.action, "audit_log.export");
    assert_eq!(logged.event.actor.id, "tester");
    assert_eq!(logged.event.metadata.as_ref().and_then(|m| m.get("format")), Some(&json!("jsonl")));
    // A second run of the same message does nothing more.
    s.run(&tenant, &id, 10).await;
    s.run(&tenant, &id, 10).await;
    let (_, job) = s.get(&t, &format!("/v1/exports/{id}")).await;
    assert_eq!(job["status"], "succeeded");
    let (status, _) = s.get(&t, "/v1/exports/not-a-job").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_export_while_the_archive_moves_days_sees_every_event_once() {
    let s = service().await;
    let tenant = new_tenant();
    let mut all = Vec::new();
    for d in [160, 159, 158] {
        all.extend(day_events("mv", &day_ago(d), 2_000));
    }
    all.extend(day_events("mv", &day_ago(1), 100));
    load(&s.store, &tenant, &all).await;
    let t = token(&tenant, "audit:export");
    let (status, created) =
        s.post(Some(&t), json!({"from": format!("{}T00:00:00Z", day_ago(161)), "format": "jsonl"})).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    // The archive moves the three old days, part by part, while the export reads them:
    // the two take turns, an index page of the export after each part archived.
    let turns = common::turns::Turns::default();
    let stores = ArchiveStores {
        archiver: Arc::new(turns.archiver(s.store.clone())),
        ..ArchiveStores::on(&s.store, &s.archive, &s.signer)
    };
    let archiver = Archiver::new(stores, Options { part_max_rows: 300, ..options() });
    let exporter = Exporter { index: Arc::new(turns.reader(s.store.clone())), ..s.exporter(1_000_000) };
    let moving = async {
        let report = archiver.run(Timestamp::now(), Some(&tenant), None).await;
        turns.archive_done();
        report.unwrap_or_else(|e| panic!("{e}"))
    };
    let exporting = async {
        exporter.run(&tenant, &id, None, None).await.unwrap_or_else(|e| panic!("{e}"));
        turns.reader_done();
    };
    let (report, ()) = tokio::join!(moving, exporting);
    assert!(report.failures.is_empty() && report.committed.len() >= 20, "{report:?}");
    let progress = turns.progress();
    assert!(progress.pages >= 5 && progress.parts >= 5, "the two never took turns: {progress:?}");
    let (_, job) = s.get(&t, &format!("/v1/exports/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (_, bytes) = download(job["download_url"].as_str().unwrap_or_default()).await;
    let ids: Vec<String> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}"))["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an event exported twice");
    let mut want: std::collections::BTreeSet<String> =
        all.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    want.insert(format!("audit_log:export:{id}"));
    assert_eq!(
        unique.into_iter().cloned().collect::<std::collections::BTreeSet<_>>(),
        want,
        "events missed or invented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_job_ends_failed_and_job_items_expire_after_their_files() {
    use audit::domain::export::{INCOMPLETE, keep_until};
    let s = service().await;
    let tenant = new_tenant();
    let t = token(&tenant, "audit:export");
    let ddb = common::dynamodb(None).await;
    // The table's TTL is on (provisioned from template.yaml), on the attribute jobs carry.
    let ttl =
        ddb.describe_time_to_live().table_name(env("AUDIT_TABLE")).send().await.unwrap_or_else(|e| panic!("{e:?}"));
    let ttl = ttl.time_to_live_description.unwrap_or_else(|| panic!("no TTL description"));
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    assert_eq!(ttl.time_to_live_status().map(|s| s.as_str()), Some("ENABLED"));
    let item_ttl = |id: String| {
        let (ddb, tenant) = (&ddb, &tenant);
        async move {
            let out = ddb
                .get_item()
                .table_name(env("AUDIT_TABLE"))
                .key("pk", AttributeValue::S(format!("EXPORTS#{tenant}")))
                .key("sk", AttributeValue::S(id))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            let item = out.item.unwrap_or_else(|| panic!("no job item"));
            item.get("ttl").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok()).unwrap_or(0)
        }
    };
    let time =
        |v: &Value, field: &str| Timestamp::parse(v[field].as_str().unwrap_or_default()).unwrap_or(Timestamp::MIN);

    // A job whose every run died: its message reaches the dead-letter queue.
    let (_, created) = s.post(Some(&t), json!({})).await;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let (_, queued) = s.get(&t, &format!("/v1/exports/{id}")).await;
    assert_eq!(item_ttl(id.clone()).await, keep_until(time(&queued, "created_at")));
    let name = format!("export-dlq-{}", uuid::Uuid::now_v7().simple());
    let url = s
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .queue_url
        .unwrap_or_default();
    let body = json!({"tenant_id": tenant.as_str(), "id": id}).to_string();
    s.sqs.send_message().queue_url(&url).message_body(body).send().await.unwrap_or_else(|e| panic!("{e:?}"));
    let dead_letters = Queue::new(s.sqs.clone(), &url);
    let exporter = Exporter::on(&s.store, &s.archive, &s.exports, &s.queue(), &s.signer, 100, 90);
    let metrics = audit_runtime::metrics::Metrics::default();
    let got =
        audit_local::poll(&dead_letters, 10, 2, |event| export::handle_dead_letters(&exporter, &metrics, event)).await;
    assert_eq!(got.unwrap_or_else(|e| panic!("{e:?}")), 1);
    let (_, failed) = s.get(&t, &format!("/v1/exports/{id}")).await;
    assert_eq!(
        (failed["status"].as_str(), failed["error"]["code"].as_str()),
        (Some("failed"), Some(INCOMPLETE)),
        "{failed}"
    );
    assert_eq!(item_ttl(id).await, keep_until(time(&failed, "completed_at")));
    let left = dead_letters.receive(10, 1).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(left.is_empty(), "the dead letter was not deleted");

    // A finished job's record outlives its file by a week.
    let done = s.export(&tenant, json!({}), 100).await;
    let kept = item_ttl(done["id"].as_str().unwrap_or_default().to_owned()).await;
    assert_eq!(kept, keep_until(time(&done, "completed_at")));
    assert!(kept > time(&done, "expires_at").micros() / 1_000_000 + 6 * 86_400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_range_comes_in_parts_through_the_queue_with_a_manifest_signed_in_kms() {
    use audit::domain::export_part::Sizes;
    use audit::domain::signing::Signature;
    let s = service().await;
    let tenant = new_tenant();
    let mut all = Vec::new();
    for d in [210, 209, 208, 207] {
        all.extend(day_events("pt", &day_ago(d), 60));
    }
    load(&s.store, &tenant, &all).await;
    archive(&s.store, &s.archive, &tenant, options()).await;
    let t = token(&tenant, "audit:export");
    let (status, created) =
        s.post(Some(&t), json!({"from": format!("{}T00:00:00Z", day_ago(211)), "format": "jsonl"})).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    // Parts of about 100 archived rows, files of at most 40: the 240 archived events and
    // the export's own in several parts, fanned out through the test's SQS queue.
    let exporter = s.exporter(0).with_sizes(Sizes { part_rows: 100, file_rows: 40, file_bytes: 1 << 30 });
    let queue = s.queue();
    let mut delivered = 0;
    let mut job = Value::Null;
    for _ in 0..60 {
        for m in queue.receive(10, 1).await.unwrap_or_else(|e| panic!("{e:?}")) {
            assert!(exporter.consume(m.body.as_deref().unwrap_or_default(), None).await);
            queue.delete(m.receipt_handle.as_deref().unwrap_or_default()).await.unwrap_or_else(|e| panic!("{e:?}"));
            delivered += 1;
        }
        job = s.get(&t, &format!("/v1/exports/{id}")).await.1;
        if job["status"] == "succeeded" {
            break;
        }
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    let parts = job["progress"]["parts"].as_u64().unwrap_or_default();
    assert!(parts >= 3 && delivered >= parts, "{parts} parts, {delivered} deliveries: {job}");
    assert_eq!(job["progress"]["parts_done"].as_u64(), Some(parts));
    // Every file through its link, rows newest first, each once; the manifest lists them.
    let mut ids = Vec::new();
    let files = job["files"].as_array().cloned().unwrap_or_default();
    assert!(files.len() as u64 > parts, "{job}");
    for f in &files {
        let (status, bytes) = download(f["download_url"].as_str().unwrap_or_default()).await;
        assert_eq!(status, 200);
        assert_eq!(f["sha256"], json!(audit::domain::manifest::hash(&bytes)));
        for line in String::from_utf8_lossy(&bytes).lines() {
            let row: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
            ids.push((
                row["occurred_at"].as_str().unwrap_or_default().to_owned(),
                row["id"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "not newest first, or a row twice");
    let mut want: std::collections::BTreeSet<String> =
        all.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    want.insert(format!("audit_log:export:{id}"));
    assert_eq!(ids.into_iter().map(|(_, id)| id).collect::<std::collections::BTreeSet<_>>(), want);
    let (status, bytes) = download(job["manifest_url"].as_str().unwrap_or_default()).await;
    assert_eq!(status, 200);
    let manifest: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifest["files"].as_array().map(Vec::len), Some(files.len()));
    // Signed by the stack's KMS key, as GET /v1/keys publishes it.
    let keys = reqwest::get(format!("{}/v1/keys", s.base)).await.unwrap_or_else(|e| panic!("{e}"));
    let keys: Value = keys.json().await.unwrap_or_else(|e| panic!("{e}"));
    let keys = audit::domain::signing::keys_from_view(&keys);
    let signature: Option<Signature> = serde_json::from_value(manifest["signature"].clone()).ok();
    let message = audit::domain::export_manifest::message(&manifest);
    assert_eq!(audit::formats::signature::verify(&keys, &message, signature.as_ref()), Ok(()));
}
