//! The archive job against DynamoDB Local and s3s-fs, with DuckDB (through Python) as the
//! reader of what it wrote. Every test archives only its own tenants, so tests run side
//! by side on one table and one bucket.

mod common;

use audit::domain::event::Event;
use audit::domain::manifest::{self, Manifest};
use audit::domain::tenant::{TenantId, TenantSettings};
use audit::domain::timestamp::Timestamp;
use audit::memory::{ManualClock, SlowPages};
use audit::ports::{BlobError, BlobStore, Clock, Condition, TenantRegistry};
use audit::usecases::archive::{ArchiveStores, Archiver, Options};
use audit::usecases::verify::verify;
use audit_aws::dynamodb::{Table, keys};
use audit_aws::s3::Bucket;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use common::data::{archive, bucket, bucket_name, day_ago, day_events, load, options};
use common::faults::{self, Rule};
use common::{env, new_tenant, token};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The published keys of the local stack's signing key.
async fn keys() -> Vec<audit::domain::signing::PublicKey> {
    audit::ports::KeyDirectory::keys(&*common::signer().await).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Loads many events fast: BatchWriteItem of the service's own items, several in flight.
async fn bulk_load(store: &Arc<Table>, tenant: &TenantId, events: Vec<Value>) {
    store.register(tenant, Timestamp::now()).await.unwrap_or_else(|e| panic!("{e}"));
    let now = Timestamp::now();
    let items: Vec<WriteRequest> = events
        .into_iter()
        .map(|raw| {
            let stored = Event::validate(raw, tenant, now).unwrap_or_else(|e| panic!("{e:?}")).stamp(now);
            let item = audit_aws::dynamodb::item::to_item(&stored, 0, &stored.hash);
            let put = PutRequest::builder().set_item(Some(item)).build().unwrap_or_else(|e| panic!("{e}"));
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    let table = env("AUDIT_TABLE");
    let client = common::dynamodb(None).await;
    let batches = items.chunks(25).map(|b| {
        let (client, table) = (&client, &table);
        async move {
            let mut pending = b.to_vec();
            while !pending.is_empty() {
                let out = client
                    .batch_write_item()
                    .request_items(table.clone(), pending.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e:?}"));
                pending = out.unprocessed_items().and_then(|u| u.get(table.as_str())).cloned().unwrap_or_default();
            }
        }
    });
    futures::stream::iter(batches).buffer_unordered(8).collect::<Vec<()>>().await;
}

/// The ids of the tenant's online events (a Query of its time index).
async fn online_ids(store: &Table, tenant: &TenantId, shards: u16) -> Vec<String> {
    let client = common::dynamodb(None).await;
    let mut ids = Vec::new();
    for shard in 0..shards {
        let mut start = None;
        loop {
            let out = client
                .query()
                .table_name(store.name())
                .index_name(keys::BY_TIME.name)
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", keys::BY_TIME.pk)
                .expression_attribute_values(":p", AttributeValue::S(keys::time_pk(tenant, shard)))
                .projection_expression("ts")
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            ids.extend(out.items().iter().filter_map(|it| audit_aws::dynamodb::item::event_key(it).ok().map(|k| k.id)));
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    ids
}

/// What DuckDB reads from `events/**/*.parquet` with Hive partitioning for the tenant.
fn duckdb_rows(tenant: &TenantId, mode: &str) -> String {
    let out = std::process::Command::new(env("AUDIT_TEST_PYTHON"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/archive_rows.py"))
        .arg(format!("{}/{}", env("AUDIT_TEST_S3_DIR"), bucket_name()))
        .arg(tenant.as_str())
        .arg(mode)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

fn duckdb_ids(tenant: &TenantId) -> Vec<String> {
    duckdb_rows(tenant, "ids").lines().map(str::to_owned).collect()
}

/// Every event is in exactly one place: archived once, or online, never both or neither.
async fn assert_each_event_in_one_place(store: &Table, tenant: &TenantId, all: &[Value], shards: u16) {
    let archived = duckdb_ids(tenant);
    let online = online_ids(store, tenant, shards).await;
    let archived_set: BTreeSet<&String> = archived.iter().collect();
    assert_eq!(archived_set.len(), archived.len(), "an event is archived twice");
    let online_set: BTreeSet<&String> = online.iter().collect();
    assert!(archived_set.is_disjoint(&online_set), "an event is both archived and online");
    let expected: BTreeSet<String> = all.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    let found: BTreeSet<String> = archived.iter().chain(&online).cloned().collect();
    assert_eq!(found, expected, "events lost or invented");
}

async fn assert_verifies(store: &Table, bucket: &Bucket, tenant: &TenantId) -> u64 {
    let checked = verify(store, store, bucket, &keys().await, Some(tenant)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked.findings, vec![], "verify found problems");
    checked.rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_days_move_to_parquet_exactly_and_recent_ones_stay() {
    let store = common::store(None).await;
    let bucket = bucket(None).await;
    let tenant = new_tenant();
    common::set_settings_now(&store, &tenant, TenantSettings::new(3, None)).await;
    let (d1, d3, recent) = (day_ago(200), day_ago(198), day_ago(2));
    let mut all = day_events("a", &d1, 120);
    all.extend(day_events("a", &d3, 80));
    all.extend(day_events("a", &recent, 30));
    load(&store, &tenant, &all).await;

    let report = archive(&store, &bucket, &tenant, options()).await;
    assert_eq!(report.failures.len(), 0, "{report:?}");
    // The day between the two has no events: it gets no manifest and no part.
    assert_eq!(report.rows_by_day(), vec![(d1.clone(), 120), (d3.clone(), 80)]);
    let gap = day_ago(199);
    assert!(
        bucket
            .get_bytes(&manifest::manifest_key(tenant.as_str(), &gap))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );

    // DuckDB finds exactly the events that left DynamoDB, field for field.
    let expected: BTreeMap<String, Value> = all
        .iter()
        .filter(|e| !e["occurred_at"].as_str().unwrap_or_default().starts_with(&recent))
        .map(|e| (e["id"].as_str().unwrap_or_default().to_owned(), e.clone()))
        .collect();
    let rows: Vec<Value> = duckdb_rows(&tenant, "full")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(rows.len(), expected.len());
    for row in &rows {
        let id = row["id"].as_str().unwrap_or_default();
        let raw = expected.get(id).unwrap_or_else(|| panic!("unexpected archived id {id}"));
        let stored = Event::validate(raw.clone(), &tenant, Timestamp::now())
            .unwrap_or_else(|e| panic!("{e:?}"))
            .stamp(Timestamp::now());
        // The hash an auditor recomputes from the event as sent, by an outside RFC 8785.
        let mut sent = raw.clone();
        sent["tenant_id"] = json!(tenant.as_str());
        assert_eq!(row["hash"], json!(common::jcs_sha256(&sent)));
        assert_eq!(row["tenant_id"], json!(tenant.as_str()));
        assert_eq!(row["tenant"], json!(tenant.as_str()));
        assert_eq!(row["occurred_at"], json!(stored.event.occurred_at.to_string()));
        assert_eq!(row["date"], json!(stored.event.occurred_at.day()));
        for (column, value) in [
            ("action", &raw["action"]),
            ("outcome", &raw["outcome"]),
            ("actor_name", &raw["actor"]["name"]),
            ("actor_email", &raw["actor"]["email"]),
            ("resource_name", &raw["resource"]["name"]),
            ("resource_parent_id", &raw["resource"]["parent"]["id"]),
            ("workspace_name", &raw["workspace"]["name"]),
            ("source_ip", &raw["source"]["ip"]),
            ("description", &raw["description"]),
        ] {
            assert_eq!(&row[column], value, "{column} of {id}");
        }
        let metadata: Value = serde_json::from_str(row["metadata"].as_str().unwrap_or("null")).unwrap_or_default();
        assert_eq!(metadata, raw["metadata"]);
        let changes: Value = serde_json::from_str(row["changes"].as_str().unwrap_or("null")).unwrap_or_default();
        assert_eq!(changes, raw["changes"]);
        assert_eq!(row["request_id"], Value::Null);
    }
    assert_each_event_in_one_place(&store, &tenant, &all, 3).await;
    assert_eq!(online_ids(&store, &tenant, 3).await.len(), 30);
    assert_eq!(assert_verifies(&store, &bucket, &tenant).await, 200);

    // A second run finds nothing to do and changes nothing.
    let again = archive(&store, &bucket, &tenant, options()).await;
    assert!(again.committed.is_empty() && again.failures.is_empty(), "{again:?}");
    assert_eq!(assert_verifies(&store, &bucket, &tenant).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_tenant_keeps_its_own_window() {
    let store = common::store(None).await;
    let bucket = bucket(None).await;
    let (short, default) = (new_tenant(), new_tenant());
    common::set_settings_now(&store, &short, TenantSettings::new(1, Some(30))).await;
    let day = day_ago(60);
    let events = day_events("w", &day, 10);
    load(&store, &short, &events).await;
    load(&store, &default, &events).await;
    let r1 = archive(&store, &bucket, &short, options()).await;
    let r2 = archive(&store, &bucket, &default, options()).await;
    assert_eq!(r1.committed.iter().map(|d| d.rows).sum::<u64>(), 10);
    assert!(r2.committed.is_empty(), "a 60-day-old event is inside the default 90-day window");
    assert_eq!(duckdb_ids(&short).len(), 10);
    assert_eq!(duckdb_ids(&default).len(), 0);
    assert_eq!(online_ids(&store, &default, 1).await.len(), 10);
    assert_eq!(online_ids(&store, &short, 1).await.len(), 0);
    // The same ids in two tenants stay apart.
    assert_each_event_in_one_place(&store, &short, &events, 1).await;
    assert_each_event_in_one_place(&store, &default, &events, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_day_before_the_window_is_archived_and_the_run_ends_cleanly() {
    // Given: a tenant with events on the last day that left its window (every active
    // tenant, every day)
    let store = common::store(None).await;
    let bucket = bucket(None).await;
    let tenant = new_tenant();
    common::set_settings_now(&store, &tenant, TenantSettings::new(2, Some(30))).await;
    let (last, first_online) = (day_ago(31), day_ago(30));
    load(&store, &tenant, &day_events("edge", &last, 5)).await;
    load(&store, &tenant, &day_events("edge", &first_online, 5)).await;
    // When: the archive runs
    let report = archive(&store, &bucket, &tenant, options()).await;
    // Then: that day moved, the next stayed, and nothing failed looking past the last day
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.rows_by_day(), vec![(last, 5)]);
    assert_eq!(online_ids(&store, &tenant, 2).await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_event_becomes_a_new_part_and_revision() {
    let store = common::store(None).await;
    let bucket = bucket(None).await;
    let tenant = new_tenant();
    let (day, other) = (day_ago(150), day_ago(149));
    let mut all = day_events("l", &day, 20);
    all.extend(day_events("l", &other, 5));
    load(&store, &tenant, &all).await;
    archive(&store, &bucket, &tenant, options()).await;

    let late = day_events("late", &day, 3);
    load(&store, &tenant, &late).await;
    all.extend(late);
    let report = archive(&store, &bucket, &tenant, options()).await;
    assert_eq!(report.committed.len(), 1, "{report:?}");
    assert_eq!(report.committed[0].part, "part-00001.parquet");
    assert_eq!(report.committed[0].seq, 3);

    let (bytes, _) = bucket
        .get_bytes(&manifest::manifest_key(tenant.as_str(), &day))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no manifest"));
    let m: Manifest = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.parts.iter().map(|p| p.rows).collect::<Vec<_>>(), vec![20, 3]);
    assert_eq!(m.rows, 23);
    assert_eq!(m.supersedes.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1]);
    assert!(m.prev.is_some());
    assert_each_event_in_one_place(&store, &tenant, &all, 1).await;
    assert_eq!(duckdb_ids(&tenant).len(), 28);
    assert_verifies(&store, &bucket, &tenant).await;
}

/// Runs the archive with one request refused for good, as a crash at that point would
/// leave things; then reruns it cleanly and checks nothing was lost or duplicated.
async fn crash_then_rerun(s3_rule: Option<Rule>, dynamodb_rule: Option<Rule>) {
    let clean_store = common::store(None).await;
    let clean_bucket = bucket(None).await;
    let tenant = new_tenant();
    common::set_settings_now(&clean_store, &tenant, TenantSettings::new(2, None)).await;
    let mut all = day_events("c", &day_ago(120), 300);
    all.extend(day_events("c", &day_ago(119), 40));
    load(&clean_store, &tenant, &all).await;

    let s3_proxy = match s3_rule {
        Some(rule) => Some(faults::start(env("AWS_ENDPOINT_URL_S3"), rule).await),
        None => None,
    };
    let ddb_proxy = match dynamodb_rule {
        Some(rule) => Some(faults::start(env("AWS_ENDPOINT_URL_DYNAMODB"), rule).await),
        None => None,
    };
    let faulty_store = common::store(ddb_proxy.as_ref().map(|p| p.url.as_str())).await;
    let faulty_bucket = bucket(s3_proxy.as_ref().map(|p| p.url.as_str())).await;
    // Small parts, so a crash midway through deletes leaves whole parts on both sides.
    let small = Options { part_max_rows: 100, ..options() };
    let crashed = archive(&faulty_store, &faulty_bucket, &tenant, small.clone()).await;
    assert_eq!(crashed.failures.len(), 1, "the injected fault did not stop the run: {crashed:?}");
    let injected =
        s3_proxy.as_ref().map_or(0, faults::Proxy::failed) + ddb_proxy.as_ref().map_or(0, faults::Proxy::failed);
    assert!(injected > 0);
    // Whatever state the crash left, nothing is lost. (A part uploaded before the crash
    // can hold events that are still online until the rerun.)
    let mut found: BTreeSet<String> = duckdb_ids(&tenant).into_iter().collect();
    found.extend(online_ids(&clean_store, &tenant, 2).await);
    assert_eq!(found.len(), all.len());

    let rerun = archive(&clean_store, &clean_bucket, &tenant, small).await;
    assert!(rerun.failures.is_empty(), "{rerun:?}");
    assert_each_event_in_one_place(&clean_store, &tenant, &all, 2).await;
    assert_eq!(online_ids(&clean_store, &tenant, 2).await.len(), 0);
    assert_eq!(duckdb_ids(&tenant).len(), 340);
    assert_eq!(assert_verifies(&clean_store, &clean_bucket, &tenant).await, 340);
}

fn s3(method: axum::http::Method, path: &'static str, pass: usize) -> Rule {
    Rule { method, path_contains: Some(path), body_contains: None, target: None, pass }
}

fn dynamodb(target: &'static str, body: Option<&'static str>, pass: usize) -> Rule {
    Rule { method: axum::http::Method::POST, path_contains: None, body_contains: body, target: Some(target), pass }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_after_upload() {
    // The read that verifies the first uploaded part fails.
    crash_then_rerun(Some(s3(axum::http::Method::GET, "/events/", 0)), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_after_verify() {
    // Parts are uploaded and verified; the manifest write fails.
    crash_then_rerun(Some(s3(axum::http::Method::PUT, "/manifests/", 0)), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_after_manifest() {
    // The manifest is written; making it the chain's head fails.
    crash_then_rerun(None, Some(dynamodb("UpdateItem", Some("archive_seq"), 0))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_midway_through_tombstones() {
    // The first day's 300 events are in three parts of 100; tombstones stop after 150.
    crash_then_rerun(None, Some(dynamodb("UpdateItem", Some("#ap"), 150))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_between_revision_and_day_manifest() {
    // The first part's revision is written; the day's current manifest write fails.
    crash_then_rerun(Some(s3(axum::http::Method::PUT, "/manifests/", 1)), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_in_a_later_day() {
    // The first day's three parts complete (two manifest writes each); the second
    // day's revision write fails.
    crash_then_rerun(Some(s3(axum::http::Method::PUT, "/manifests/", 6)), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_before_a_part_is_uploaded() {
    // The step is recorded; the second part's upload fails.
    crash_then_rerun(Some(s3(axum::http::Method::PUT, "/events/", 1)), None).await;
}

/// A part's bytes with one row's action changed; its hash column left as it was.
fn forge_row(part: &[u8]) -> Vec<u8> {
    use audit::formats::parquet_read::Part;
    let bytes = bytes::Bytes::copy_from_slice(part);
    let opened = Part::open(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut w = audit::formats::parquet_write::PartWriter::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    let mut first = true;
    for rg in 0..opened.row_groups() {
        for batch in opened.read(bytes.clone(), rg, None).unwrap_or_else(|e| panic!("{e}")) {
            for i in 0..batch.len() {
                let mut row = batch.row(i).into_owned();
                if std::mem::take(&mut first) {
                    row.s[audit::domain::row::col::ACTION] = Some("auth.logout".into());
                }
                w.push_row(&row).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_catches_each_kind_of_tampering() {
    let store = common::store(None).await;
    let bucket = bucket(None).await;
    let tenant = new_tenant();
    // Issue 10, point 3: day A archived, then day B; a late event for B gives B a new
    // revision that supersedes the first.
    let (a, b) = (day_ago(300), day_ago(299));
    load(&store, &tenant, &day_events("v", &a, 30)).await;
    archive(&store, &bucket, &tenant, Options { part_max_rows: 20, ..options() }).await;
    load(&store, &tenant, &day_events("v", &b, 30)).await;
    archive(&store, &bucket, &tenant, options()).await;
    load(&store, &tenant, &day_events("late", &b, 2)).await;
    archive(&store, &bucket, &tenant, options()).await;
    assert_eq!(assert_verifies(&store, &bucket, &tenant).await, 62);

    let t = tenant.as_str();
    let part = format!("{}part-00000.parquet", manifest::day_prefix(t, &a));
    let kinds = |checked: audit::usecases::verify::Checked| -> Vec<&'static str> {
        let mut k: Vec<&'static str> = checked.findings.iter().map(|f| f.kind).collect();
        k.sort_unstable();
        k.dedup();
        k
    };
    let keys = keys().await;
    let check =
        || async { verify(&*store, &*store, &*bucket, &keys, Some(&tenant)).await.unwrap_or_else(|e| panic!("{e}")) };
    let get = |key: String| {
        let bucket = &bucket;
        async move { bucket.get_bytes(&key).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{key}")).0 }
    };
    let put = |key: String, bytes: Vec<u8>| {
        let bucket = &bucket;
        async move {
            bucket
                .put_bytes(&key, bytes, "application/octet-stream", Condition::None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    let delete = |key: String| {
        let bucket = &bucket;
        async move { bucket.delete(&key).await.unwrap_or_else(|e| panic!("{e}")) }
    };
    let manifest_a = manifest::manifest_key(t, &a);
    let m_original = get(manifest_a.clone()).await;

    // The forgery: A's part rewritten (one column of one row), and A's manifest's
    // sha256, bytes and rows fixed to match.
    let original = get(part.clone()).await;
    let forged = forge_row(&original);
    put(part.clone(), forged.clone()).await;
    let mut m: Manifest = serde_json::from_slice(&m_original).unwrap_or_else(|e| panic!("{e}"));
    m.parts[0].sha256 = manifest::hash(&forged);
    m.parts[0].bytes = forged.len() as u64;
    put(manifest_a.clone(), m.to_bytes().unwrap_or_default()).await;
    let found = kinds(check().await);
    for kind in ["bad_manifest", "changed_part", "changed_row"] {
        assert!(found.contains(&kind), "{kind} missing from {found:?}");
    }
    // The same fix in A's two revisions too: then the chain no longer holds.
    let revisions = [manifest::revision_key(t, 1), manifest::revision_key(t, 2)];
    let mut kept = Vec::new();
    for key in &revisions {
        let bytes = get(key.clone()).await;
        let mut r: Manifest = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
        r.parts[0] = m.parts[0].clone();
        put(key.clone(), r.to_bytes().unwrap_or_default()).await;
        kept.push(bytes);
    }
    let found = kinds(check().await);
    assert!(found.contains(&"chain") && found.contains(&"changed_row"), "{found:?}");
    for (key, bytes) in revisions.iter().zip(kept) {
        put(key.clone(), bytes).await;
    }
    put(manifest_a.clone(), m_original.clone()).await;

    // A part overwritten with one byte changed.
    let mut changed = original.clone();
    changed[100] ^= 0x01;
    put(part.clone(), changed.clone()).await;
    assert!(kinds(check().await).contains(&"changed_part"));
    // The same change made on disk behind S3's back (bit rot): S3's checksum catches it.
    let on_disk = std::path::PathBuf::from(format!("{}/{}/{part}", env("AUDIT_TEST_S3_DIR"), bucket_name()));
    put(part.clone(), original.clone()).await;
    std::fs::write(&on_disk, &changed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds(check().await), vec!["changed_part"]);
    // A missing part.
    delete(part.clone()).await;
    assert_eq!(kinds(check().await), vec!["missing_part"]);
    put(part.clone(), original.clone()).await;
    assert_verifies(&store, &bucket, &tenant).await;
    // An extra part no manifest lists.
    let extra = format!("{}part-00007.parquet", manifest::day_prefix(t, &b));
    put(extra.clone(), original.clone()).await;
    assert_eq!(kinds(check().await), vec!["extra_part"]);
    delete(extra).await;
    // An edited manifest, still well-formed: it is no longer its day's latest revision.
    let mut m: Manifest = serde_json::from_slice(&m_original).unwrap_or_else(|e| panic!("{e}"));
    m.created_at = "2020-01-01T00:00:00.000000Z".into();
    put(manifest_a.clone(), m.to_bytes().unwrap_or_default()).await;
    assert_eq!(kinds(check().await), vec!["bad_manifest"]);
    // The superseded revision of B restored as B's manifest.
    let manifest_b = manifest::manifest_key(t, &b);
    let b_current = get(manifest_b.clone()).await;
    put(manifest_a.clone(), m_original.clone()).await;
    put(manifest_b.clone(), get(manifest::revision_key(t, 3)).await).await;
    assert_eq!(kinds(check().await), vec!["bad_manifest"]);
    // B's newest revision removed, and the superseded one made current again: only the
    // registry's head and the checkpoint that signs it can tell (and B's late part is in
    // no manifest then).
    let newest = manifest::revision_key(t, 4);
    let newest_bytes = get(newest.clone()).await;
    delete(newest.clone()).await;
    assert_eq!(kinds(check().await), vec!["chain", "checkpoint", "extra_part"]);
    put(newest, newest_bytes).await;
    put(manifest_b, b_current).await;
    assert_verifies(&store, &bucket, &tenant).await;
    // Two revisions swapped.
    let (one, two) = (get(manifest::revision_key(t, 1)).await, get(manifest::revision_key(t, 2)).await);
    put(manifest::revision_key(t, 1), two.clone()).await;
    put(manifest::revision_key(t, 2), one.clone()).await;
    // A's current manifest is then no longer its latest revision either, and the swapped
    // revisions are not the ones their checkpoints sign.
    assert_eq!(kinds(check().await), vec!["bad_manifest", "chain", "checkpoint"]);
    put(manifest::revision_key(t, 1), one).await;
    put(manifest::revision_key(t, 2), two).await;
    assert_verifies(&store, &bucket, &tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_big_day_goes_out_in_several_parts() {
    // 60,000 events in parts of 25,000: three parts, each streamed out and tombstoned
    // (the suite's time goes to the tombstones; tests/bench/archive_export.sh has the
    // large days).
    let store = common::store(None).await;
    let bucket = bucket(None).await;
    let tenant = new_tenant();
    let day = day_ago(100);
    let events = day_events("big", &day, 60_000);
    let ids: BTreeSet<String> = events.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    bulk_load(&store, &tenant, events).await;
    let report = archive(&store, &bucket, &tenant, Options { part_max_rows: 25_000, ..options() }).await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.rows_by_day().len(), 1);
    assert_eq!(report.committed.len(), 3);
    let archived = duckdb_ids(&tenant);
    assert_eq!(archived.len(), 60_000);
    assert_eq!(archived.iter().cloned().collect::<BTreeSet<_>>(), ids);
    assert_eq!(online_ids(&store, &tenant, 1).await.len(), 0);
    assert_eq!(assert_verifies(&store, &bucket, &tenant).await, 60_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_file_goes_up_in_parts_and_reads_back_whole() {
    let bucket = bucket(None).await;
    let scratch = audit::usecases::files::Scratch::new(".bin");
    // 2.5 parts of pseudo-random bytes.
    let size = usize::try_from(audit_aws::s3::MULTIPART_CHUNK * 5 / 2).unwrap_or(0);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect();
    std::fs::write(scratch.path(), &bytes).unwrap_or_else(|e| panic!("{e}"));
    let key = format!("test/{}.bin", uuid::Uuid::now_v7());
    let put = |condition| bucket.put_file(&key, scratch.path(), "application/octet-stream", condition);
    put(Condition::Absent).await.unwrap_or_else(|e| panic!("{e}"));
    // A key that is taken is not overwritten, by a multipart upload either.
    assert!(matches!(put(Condition::Absent).await, Err(BlobError::Precondition(_))));
    let small = format!("test/{}.bin", uuid::Uuid::now_v7());
    bucket.put_bytes(&small, vec![1], "x", Condition::Absent).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(bucket.put_bytes(&small, vec![2], "x", Condition::Absent).await, Err(BlobError::Precondition(_))));
    let local = audit::usecases::files::hash_file(scratch.path()).unwrap_or_else(|e| panic!("{e}"));
    let remote = bucket.hash(&key).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(remote, Some(local));
    let tail = bucket.tail(&key, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tail, bytes[size - 10..].to_vec());
    let middle = bucket.read_range(&key, 100, 200).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(middle, bytes[100..200].to_vec());
    bucket.delete(&key).await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_archived_id_stays_taken_and_reads_back_from_the_archive() {
    let store = common::store(None).await;
    let bucket = bucket(None).await;
    let tenant = new_tenant();
    let day = day_ago(150);
    let events = day_events("t", &day, 40);
    let (ingest, query) = (common::serve(store.clone()).await, common::serve_query(store.clone()).await);
    let (write, read) = (token(&tenant, "audit:write"), token(&tenant, "audit:read"));
    let (status, _) = common::post(&ingest, Some(&write), json!({"events": events}).to_string()).await;
    assert_eq!(status, 202);
    let id = events[7]["id"].as_str().unwrap_or_default().to_owned();
    let (_, online) = common::get(&query, &read, &format!("/v1/events/{id}")).await;
    assert_eq!(online.get("archived"), None);
    let report = archive(&store, &bucket, &tenant, Options { part_max_rows: 15, ..options() }).await;
    assert_eq!(report.committed.len(), 3, "{report:?}");
    assert!(online_ids(&store, &tenant, 1).await.is_empty());

    // The item became a tombstone: in no index, the identity, dedup and pointer kept.
    let item = common::dynamodb(None)
        .await
        .get_item()
        .table_name(env("AUDIT_TABLE"))
        .key("pk", AttributeValue::S(keys::event_pk(&tenant, &id)))
        .key("sk", AttributeValue::S(keys::EVENT_SK.into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .item
        .unwrap_or_else(|| panic!("the tombstone is gone"));
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    // `dd` only where the dedup digest differs from `h`; these events name their time.
    assert_eq!(names, vec!["ad", "ap", "h", "pk", "sk", "ts"]);
    // events[7] is the 29th of the day in time order: the second part of 15 rows.
    assert_eq!(item["ap"].as_s().ok().map(String::as_str), Some("part-00001.parquet"));

    // A resend is a duplicate, a changed one a conflict, exactly as online.
    let (status, body) = common::post(&ingest, Some(&write), events[7].to_string()).await;
    assert_eq!((status, body["results"][0]["status"].as_str()), (202, Some("duplicate")), "{body}");
    let mut changed = events[7].clone();
    changed["description"] = json!("rewritten after the archive");
    let (status, body) = common::post(&ingest, Some(&write), changed.to_string()).await;
    assert_eq!((status, body["results"][0]["error"]["code"].as_str()), (400, Some("conflict")), "{body}");
    assert!(online_ids(&store, &tenant, 1).await.is_empty(), "a resend was stored again");

    // Read by id from the archive: the event as it was, marked archived.
    let (status, archived) = common::get(&query, &read, &format!("/v1/events/{id}")).await;
    assert_eq!(status, 200, "{archived}");
    assert_eq!(archived["archived"], json!(true));
    let mut expected = online.clone();
    expected["archived"] = json!(true);
    assert_eq!(archived, expected);
    let (status, _) = common::get(&query, &token(&new_tenant(), "audit:read"), &format!("/v1/events/{id}")).await;
    assert_eq!(status, 404);

    // The next run archives nothing twice.
    let again = archive(&store, &bucket, &tenant, options()).await;
    assert!(again.committed.is_empty(), "{again:?}");
    assert_each_event_in_one_place(&store, &tenant, &events, 1).await;
    assert_verifies(&store, &bucket, &tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_part_key_that_is_taken_is_never_overwritten() {
    let store = common::store(None).await;
    let bucket = bucket(None).await;
    let tenant = new_tenant();
    let day = day_ago(130);
    load(&store, &tenant, &day_events("o", &day, 10)).await;
    let key = format!("{}part-00000.parquet", manifest::day_prefix(tenant.as_str(), &day));
    bucket.put_bytes(&key, b"not ours".to_vec(), "x", Condition::None).await.unwrap_or_else(|e| panic!("{e}"));
    let report = archive(&store, &bucket, &tenant, options()).await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.committed.iter().map(|c| c.part.as_str()).collect::<Vec<_>>(), vec!["part-00001.parquet"]);
    let held = bucket.get_bytes(&key).await.unwrap_or_else(|e| panic!("{e}")).map(|(b, _)| b);
    assert_eq!(held, Some(b"not ours".to_vec()));
    assert!(online_ids(&store, &tenant, 1).await.is_empty());
    let checked =
        verify(&*store, &*store, &*bucket, &keys().await, Some(&tenant)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked.findings.iter().map(|f| f.kind).collect::<Vec<_>>(), vec!["extra_part"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_too_big_for_one_run_finishes_across_short_runs() {
    let store = common::store(None).await;
    let bucket = bucket(None).await;
    let tenant = new_tenant();
    let day = day_ago(105);
    let events = day_events("s", &day, 8_000);
    bulk_load(&store, &tenant, events.clone()).await;
    // Each page of the day read takes a second of a clock that moves only with the reads:
    // a run of three seconds reads about three pages (6,000 items) whatever the machine.
    let clock = Arc::new(ManualClock::default());
    let slow = SlowPages { inner: store.clone(), clock: clock.clone(), per_page: std::time::Duration::from_secs(1) };
    let stores = ArchiveStores { index: Arc::new(slow), ..ArchiveStores::on(&store, &bucket, &common::signer().await) };
    let mut runs = Vec::new();
    loop {
        let archiver = Archiver::new(stores.clone(), options()).with_clock(clock.clone());
        let deadline = clock.now() + std::time::Duration::from_secs(3);
        let report =
            archiver.run(Timestamp::now(), Some(&tenant), Some(deadline)).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(report.failures.is_empty(), "{report:?}");
        let done = !report.unfinished;
        runs.push(report);
        if done || runs.len() > 60 {
            break;
        }
    }
    assert!(runs.len() >= 2, "one run did it all: {runs:?}");
    assert!(runs[..runs.len() - 1].iter().all(|r| !r.committed.is_empty()), "a run made no progress: {runs:?}");
    let rows: u64 = runs.iter().flat_map(|r| &r.committed).map(|c| c.rows).sum();
    assert_eq!(rows, 8_000);
    assert_each_event_in_one_place(&store, &tenant, &events, 1).await;
    assert_eq!(assert_verifies(&store, &bucket, &tenant).await, 8_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_that_lost_its_lease_cannot_record_a_step() {
    use audit::domain::manifest::{PartEntry, Pending, Phase};
    use audit::ports::{ArchiveRegistry, RegistryError};
    let store = common::store(None).await;
    let tenant = new_tenant();
    store.lease(&tenant, "run-a").await.unwrap_or_else(|e| panic!("{e}"));
    let step = Pending {
        date: day_ago(100),
        part: PartEntry {
            name: "part-00000.parquet".into(),
            rows: 3,
            bytes: 99,
            sha256: "a".repeat(64),
            first: "2026-01-01T00:00:00.000000Z".into(),
            last: "2026-01-01T00:00:01.000000Z".into(),
        },
        seq: 1,
        created_at: Timestamp::now().to_string(),
        manifest: "b".repeat(64),
        phase: Phase::Manifest,
    };
    // Run A stalls past its lease; run B takes the tenant over.
    common::dynamodb(None)
        .await
        .update_item()
        .table_name(env("AUDIT_TABLE"))
        .key("pk", AttributeValue::S(keys::TENANTS_PK.into()))
        .key("sk", AttributeValue::S(tenant.to_string()))
        .update_expression("SET archive_lease_until = :past")
        .expression_attribute_values(":past", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    store.lease(&tenant, "run-b").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(store.begin(&tenant, "run-a", &step).await, Err(RegistryError::Busy(_))));
    store.begin(&tenant, "run-b", &step).await.unwrap_or_else(|e| panic!("{e}"));
    // The step as recorded is the step as read back: a later run rebuilds from it.
    assert_eq!(store.state(&tenant).await.unwrap_or_else(|e| panic!("{e}")).pending, Some(step.clone()));
    assert!(matches!(store.advance(&tenant, "run-a", &step).await, Err(RegistryError::Busy(_))));
}
