//! Exports on the in-memory adapters: the merge of the archive and the online store,
//! an archive run moving days while an export reads them, damaged archives, requests,
//! expiry, and the dead letters of jobs that never finished.

use super::archive::{Archive, day_events};
use super::*;
use crate::domain::cursor::CursorKey;
use crate::domain::event::StoredEvent;
use crate::domain::export::{Format, INCOMPLETE, Status as JobStatus};
use crate::domain::filter::Filter;
use crate::domain::manifest;
use crate::domain::plan::{EventKey, Partition, Path};
use crate::ports::{BlobStore, Condition, CountPage, EventIndex, EventReader, ExportJobs, IndexPage, IndexQuery};
use crate::ports::{Lookup, StoreError};
use crate::usecases::archive::{ArchiveStores, Archiver, Options};
use crate::usecases::export::Exporter;
use crate::usecases::export::requests::Exports;
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The stored event with `id`, if online.
async fn online(store: &Arc<MemoryStore>, t: &TenantId, id: &str) -> Option<StoredEvent> {
    EventReader::get(&**store, t, id).await.ok().and_then(Lookup::online)
}

struct Exporting {
    archive: Archive,
    files: Arc<MemoryBlobs>,
    queue: Arc<MemoryQueue>,
}

impl Exporting {
    fn new() -> Self {
        Self {
            archive: Archive::new(),
            files: Arc::new(MemoryBlobs::default()),
            queue: Arc::new(MemoryQueue::default()),
        }
    }

    fn exporter(&self, max_rows: u64) -> Exporter {
        Exporter::on(
            &self.archive.store,
            &self.archive.bucket,
            &self.files,
            &self.queue,
            &self.archive.signer,
            max_rows,
            90,
        )
    }

    fn exports(&self) -> Exports {
        Exports::on(&self.archive.store, &self.queue, &self.files, CursorKey::derive("k"))
    }

    /// Requests an export, runs it as the worker would, and returns the job's view and file.
    async fn export(&self, t: &TenantId, body: Value, max_rows: u64) -> (Value, Vec<u8>) {
        let job =
            self.exports().request(t, "tester", body.to_string().as_bytes()).await.unwrap_or_else(|e| panic!("{e:?}"));
        let message = self.queue.messages().last().map(|m| m.body.clone()).unwrap_or_default();
        assert!(self.exporter(max_rows).consume(&message, None).await);
        let view = self.exports().get(t, &job.id).await.ok().flatten().unwrap_or_default();
        (view, self.file(t, &job.id).await)
    }

    /// The export's files, one after the other.
    async fn file(&self, t: &TenantId, id: &str) -> Vec<u8> {
        export_files(&self.archive.store, &self.files, t, id).await.concat()
    }
}

/// The stored events newest first.
fn newest_first(mut events: Vec<StoredEvent>) -> Vec<StoredEvent> {
    events.sort_by(|a, b| b.key().cmp(&a.key()));
    events
}

#[tokio::test]
async fn an_export_merges_archive_and_online_newest_first_and_gives_an_event_in_both_once() {
    let x = Exporting::new();
    let t = tenant("exp");
    let mut all = day_events("x", 200, 25);
    all.extend(day_events("x", 199, 15));
    all.extend(day_events("x", 1, 10));
    load(&x.archive.store, &t, &all).await;
    let before = x.archive.store.events(&t);
    x.archive.run(&t, 10).await;
    // As between an archive run's manifest and its deletes: one archived event online too.
    let twice = before.iter().find(|e| e.event.id == "x-200-0003").cloned().unwrap_or_else(|| panic!("no event"));
    x.archive.store.insert(twice, 0);
    let from = now().plus_seconds(-201 * DAY).to_string();
    let (job, file) = x.export(&t, json!({"from": from, "format": "jsonl"}), 1_000_000).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // Every stored event, plus the export's own audit event, newest first, each once.
    let mut expected = before;
    expected.extend(
        online(&x.archive.store, &t, &format!("audit_log:export:{}", job["id"].as_str().unwrap_or_default())).await,
    );
    let expected = newest_first(expected);
    let lines: Vec<Value> =
        String::from_utf8_lossy(&file).lines().map(|l| serde_json::from_str(l).unwrap_or_default()).collect();
    assert_eq!(job["rows"], json!(expected.len()));
    assert_eq!(lines, expected.iter().map(StoredEvent::to_json).collect::<Vec<_>>());
    assert!(job["download_url"].as_str().is_some_and(|u| u.contains("until=")));

    // Capped: the most recent rows, and truncated.
    let (capped, file) = x.export(&t, json!({"from": from}), 7).await;
    assert_eq!((capped["rows"].as_u64(), capped["truncated"].as_bool()), (Some(7), Some(true)));
    let text = String::from_utf8_lossy(&file).to_string();
    assert_eq!(text.lines().count(), 8, "a header and seven rows");
    assert!(text.starts_with("id,occurred_at,action,"));
    assert!(text.contains(",'=SUM(A1),"), "the formula guard");
}

#[tokio::test]
async fn an_export_with_a_damaged_archive_fails_and_says_why() {
    let x = Exporting::new();
    let t = tenant("dmg");
    load(&x.archive.store, &t, &day_events("d", 150, 5)).await;
    x.archive.run(&t, 100).await;
    let day = now().plus_seconds(-150 * DAY).day();
    let key = manifest::manifest_key("dmg", &day);
    x.archive
        .bucket
        .put_bytes(&key, b"{not json".to_vec(), "x", Condition::None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (job, _) = x.export(&t, json!({"from": now().plus_seconds(-151 * DAY).to_string()}), 100).await;
    assert_eq!((job["status"].as_str(), job["error"]["code"].as_str()), (Some("failed"), Some("data_integrity")));
    assert!(job["error"]["message"].as_str().is_some_and(|m| m.contains(&day)), "{job}");
    assert_eq!(job["download_url"], Value::Null);
}

#[tokio::test]
async fn export_requests_are_validated_logged_queued_and_expire() {
    let x = Exporting::new();
    let t = tenant("req");
    let exports = x.exports();
    let bad = exports.request(&t, "tester", br#"{"format": "xlsx"}"#).await;
    let bad = bad.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!((bad.code, bad.details[0]["field"].clone()), (Code::InvalidRequest, json!("format")));
    assert!(bad.message.starts_with("invalid export request: format"));
    assert!(x.queue.messages().is_empty());
    // The queue down: the job is failed, and the caller told to retry.
    x.queue.faults.add(Fault::after("send", 0).times(1));
    let down = exports.request(&t, "tester", b"{}").await;
    assert_eq!(down.err().map(|e| e.code), Some(Code::Throttled));
    let job = exports.request(&t, "tester", br#"{"format": "jsonl"}"#).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(job.status, JobStatus::Queued);
    let logged = online(&x.archive.store, &t, &format!("audit_log:export:{}", job.id)).await;
    assert_eq!(logged.map(|e| (e.event.action, e.event.actor.id)), Some(("audit_log.export".into(), "tester".into())));
    let listed = exports.list(&t, "").await.map(|p| p.items).unwrap_or_default();
    assert_eq!(
        listed.iter().map(|j| j["status"].as_str().unwrap_or_default()).collect::<Vec<_>>(),
        vec!["queued", "failed"]
    );
    assert!(exports.list(&tenant("other"), "").await.map(|p| p.items).unwrap_or_default().is_empty());
    assert!(exports.get(&tenant("other"), &job.id).await.ok().flatten().is_none());
    // Run twice: the second delivery does nothing more.
    let message = x.queue.messages().last().map(|m| m.body.clone()).unwrap_or_default();
    assert!(x.exporter(100).consume(&message, None).await);
    assert!(x.exporter(100).consume(&message, None).await);
    assert!(!x.exporter(100).consume("{\"not\": \"a job\"}", None).await);
    // Past its time: expired, no link, the file gone.
    let mut stored =
        ExportJobs::get(&*x.archive.store, &t, &job.id).await.ok().flatten().unwrap_or_else(|| panic!("no job"));
    assert_eq!(stored.format, Format::Jsonl);
    let manifest = crate::domain::export_part::manifest_key("req", &job.id);
    assert!(!x.file(&t, &job.id).await.is_empty() && x.files.bytes(&manifest).is_some());
    // A link never outlives expires_at: in its last hour the link ends exactly there (to
    // the microsecond), in its last second there is none.
    for left in [3_599_000_000, 1_500_001, 1_000_000, 999_999, 1] {
        let at = Timestamp::from_micros(now().micros() + left).unwrap_or(Timestamp::MIN);
        stored.expires_at = Some(at);
        x.archive.store.put_job(stored.clone());
        let view = exports.get(&t, &job.id).await.ok().flatten().unwrap_or_default();
        let until = view["download_url"].as_str().and_then(|u| u.split("until=").nth(1)).map(str::to_owned);
        match until {
            Some(until) => assert_eq!(until, at.to_string(), "{left} µs left"),
            None => assert!(left < 1_000_000 + 50_000, "no link {left} µs before expires_at"),
        }
    }
    stored.expires_at = Some(now().plus_seconds(-1));
    x.archive.store.put_job(stored.clone());
    let view = exports.get(&t, &job.id).await.ok().flatten().unwrap_or_default();
    assert_eq!((view["status"].as_str(), view["download_url"].clone()), (Some("expired"), Value::Null));
    assert!(x.file(&t, &job.id).await.is_empty() && x.files.bytes(&manifest).is_none(), "files and manifest gone");
}

// ---------------------------------------------------------------- an archive run under an export (point 6)

/// The store's index, which runs an archive of the tenant just before the export's
/// `at`-th index read: an archive run moving days while the export reads them.
struct ArchivingIndex {
    store: Arc<MemoryStore>,
    bucket: Arc<MemoryBlobs>,
    signer: Arc<MemorySigner>,
    tenant: TenantId,
    part_max_rows: u64,
    at: usize,
    reads: AtomicUsize,
}

#[async_trait]
impl EventIndex for ArchivingIndex {
    fn decides(&self, filter: &Filter) -> bool {
        self.store.decides(filter)
    }

    async fn page(&self, q: &IndexQuery<'_>) -> Result<IndexPage, StoreError> {
        let read = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        if read == self.at {
            let stores = ArchiveStores::on(&self.store, &self.bucket, &self.signer);
            let options = Options { default_hot_days: 90, part_max_rows: self.part_max_rows };
            let report = Archiver::new(stores, options).run(now(), Some(&self.tenant), None).await;
            let report = report.unwrap_or_else(|e| panic!("{e}"));
            assert!(report.failures.is_empty() && !report.committed.is_empty(), "{report:?}");
        }
        self.store.page(q).await
    }

    async fn count(&self, q: &IndexQuery<'_>) -> Result<CountPage, StoreError> {
        self.store.count(q).await
    }

    async fn earliest(
        &self,
        tenant: &TenantId,
        path: Path,
        partition: &Partition,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<EventKey>, StoreError> {
        self.store.earliest(tenant, path, partition, from, to).await
    }
}

#[tokio::test]
async fn an_export_sees_every_event_once_while_an_archive_run_moves_days_under_it() {
    // The online side reads 1,000 items at a time: about six reads, the run comes before
    // each in turn, committing whole days or parts of 250 and 400 rows.
    for (at, part_max_rows) in [(1, 10_000), (2, 10_000), (3, 250), (4, 10_000), (5, 400), (6, 10_000)] {
        let x = Exporting::new();
        let t = tenant("moving");
        // One old day archived already, with late events for it online.
        let mut all = day_events("m", 200, 700);
        load(&x.archive.store, &t, &all).await;
        x.archive.run(&t, 10_000).await;
        let mut online_now = day_events("late", 200, 3);
        online_now.extend(day_events("m", 199, 2_000));
        online_now.extend(day_events("m", 198, 1_500));
        online_now.extend(day_events("m", 197, 1_500));
        online_now.extend(day_events("m", 3, 300));
        load(&x.archive.store, &t, &online_now).await;
        all.extend(online_now);
        let job = x.exports().request(&t, "tester", br#"{"from": "2000-01-01T00:00:00Z", "format": "jsonl"}"#).await;
        let job = job.unwrap_or_else(|e| panic!("{e:?}"));
        // Every event stored before the export ran: the archived, the late ones, and the
        // export's own audit event.
        let online_ids = x.archive.store.events(&t).into_iter().map(|e| e.event.id);
        let all_ids: BTreeSet<String> =
            all.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).chain(online_ids).collect();
        let index = ArchivingIndex {
            store: x.archive.store.clone(),
            bucket: x.archive.bucket.clone(),
            signer: x.archive.signer.clone(),
            tenant: t.clone(),
            part_max_rows,
            at,
            reads: AtomicUsize::new(0),
        };
        let mut exporter = x.exporter(10_000_000);
        exporter.index = Arc::new(index);
        let message = x.queue.messages().last().map(|m| m.body.clone()).unwrap_or_default();
        assert!(exporter.consume(&message, None).await);
        let view = x.exports().get(&t, &job.id).await.ok().flatten().unwrap_or_default();
        assert_eq!(view["status"], "succeeded", "{view}");
        let file = x.file(&t, &job.id).await;
        let lines: Vec<Value> =
            String::from_utf8_lossy(&file).lines().map(|l| serde_json::from_str(l).unwrap_or_default()).collect();
        let ids: Vec<String> = lines.iter().map(|l| l["id"].as_str().unwrap_or_default().to_owned()).collect();
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "read {at}: an event exported twice");
        assert_eq!(unique, all_ids, "read {at}: events missed or invented");
        let keys: Vec<(String, String)> = lines
            .iter()
            .map(|l| {
                (
                    l["occurred_at"].as_str().unwrap_or_default().to_owned(),
                    l["id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] > w[1]), "read {at}: not newest first");
        assert!(x.archive.store.events(&t).len() < 400, "read {at}: the archive run did not come");
    }
}

#[tokio::test]
async fn only_an_export_that_reaches_days_the_archive_may_move_lists_them_again() {
    let x = Exporting::new();
    let t = tenant("lists");
    load(&x.archive.store, &t, &day_events("r", 2, 3_000)).await;
    load(&x.archive.store, &t, &day_events("o", 100, 3_000)).await;
    // A rule that never fires counts the bucket's listings.
    x.archive.bucket.faults.add(Fault::after("list", usize::MAX));
    let (recent, _) = x.export(&t, json!({"from": now().plus_seconds(-5 * DAY).to_string()}), 10_000).await;
    // One listing to plan the parts, one as the part opens the archived side.
    assert_eq!((recent["rows"].as_u64(), x.archive.bucket.faults.calls()), (Some(3_001), 2));
    let (old, _) = x.export(&t, json!({"from": now().plus_seconds(-101 * DAY).to_string()}), 10_000).await;
    assert_eq!(old["rows"].as_u64(), Some(6_002));
    assert!(x.archive.bucket.faults.calls() > 6, "an export over old days did not catch up after each read");
}

// ---------------------------------------------------------------- dead letters (point 9)

#[tokio::test]
async fn a_dead_lettered_job_ends_failed_and_a_finished_one_is_left_alone() {
    let x = Exporting::new();
    let t = tenant("dlq");
    let exports = x.exports();
    let job = exports.request(&t, "tester", b"{}").await.unwrap_or_else(|e| panic!("{e:?}"));
    let message = x.queue.messages().last().map(|m| m.body.clone()).unwrap_or_default();
    // Its run was cut short three times: it is still running when its message dies.
    assert!(ExportJobs::claim(&*x.archive.store, &t, &job.id, now()).await.unwrap_or(false));
    // The table unavailable: the dead letter comes back.
    x.archive.store.faults.add(Fault::after("jobs.fail", 0).unavailable().times(1));
    assert!(!x.exporter(100).dead_letter(&message).await);
    assert!(x.exporter(100).dead_letter(&message).await);
    let view = exports.get(&t, &job.id).await.ok().flatten().unwrap_or_default();
    assert_eq!((view["status"].as_str(), view["error"]["code"].as_str()), (Some("failed"), Some(INCOMPLETE)));
    assert!(view["completed_at"].is_string() && view["download_url"].is_null(), "{view}");
    // A job that finished before its message was dead-lettered keeps its file.
    let (done, _) = x.export(&t, json!({}), 100).await;
    let message = x.queue.messages().last().map(|m| m.body.clone()).unwrap_or_default();
    assert!(x.exporter(100).dead_letter(&message).await);
    let id = done["id"].as_str().unwrap_or_default();
    let view = exports.get(&t, id).await.ok().flatten().unwrap_or_default();
    assert_eq!(view["status"], "succeeded");
    // A body that names no job is dropped.
    assert!(x.exporter(100).dead_letter("not a job").await);
}
