//! Exports in parts on the in-memory adapters: a range cut into parts that the export
//! queue fans out, progress while they run, a file list and a signed manifest at the
//! end; and a worker killed at every call of every phase, after which the export still
//! finishes with every row exactly once.

use super::archive::{Archive, day_events};
use super::*;
use crate::domain::export::STALE_SECONDS;
use crate::domain::export_dispatch::Limits;
use crate::domain::export_part::{Sizes, manifest_key};
use crate::domain::signing::Signature;
use crate::formats::signature;
use crate::memory::Fault;
use crate::ports::{KeyDirectory, MessageQueue};
use crate::usecases::export::Exporter;
use crate::usecases::export::requests::Exports;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Parts of about 120 archived rows, files of at most 50 rows.
const SIZES: Sizes = Sizes { part_rows: 120, file_rows: 50, file_bytes: 1 << 30 };

struct Parts {
    archive: Archive,
    files: Arc<MemoryBlobs>,
    queue: Arc<MemoryQueue>,
    t: TenantId,
    /// Every event stored, as ids.
    ids: BTreeSet<String>,
}

impl Parts {
    /// Six archived days of 60 events (archive parts of 25 rows) and 40 recent ones.
    async fn new() -> Self {
        let (archive, t) = (Archive::new(), tenant("parts"));
        let mut all = Vec::new();
        for d in 150..156 {
            all.extend(day_events("p", d, 60));
        }
        load(&archive.store, &t, &all).await;
        archive.run(&t, 25).await;
        let recent = day_events("p", 2, 40);
        load(&archive.store, &t, &recent).await;
        all.extend(recent);
        let ids = all.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
        Self { archive, files: Arc::new(MemoryBlobs::default()), queue: Arc::new(MemoryQueue::default()), t, ids }
    }

    fn exporter(&self) -> Exporter {
        let a = &self.archive;
        Exporter::on(&a.store, &a.bucket, &self.files, &self.queue, &a.signer, 0, 90)
            .with_sizes(SIZES)
            .with_limits(Limits { active: 10, running: 4 })
    }

    fn exports(&self) -> Exports {
        Exports::on(&self.archive.store, &self.queue, &self.files, CursorKey::derive("k"))
    }

    async fn request(&self) -> String {
        let body = br#"{"from": "2000-01-01T00:00:00Z", "format": "jsonl"}"#;
        let job = self.exports().request(&self.t, "auditor", body).await.unwrap_or_else(|e| panic!("{e:?}"));
        job.id
    }

    /// The ids the export must hold: every event, and its own audit event.
    fn ids_with(&self, id: &str) -> BTreeSet<String> {
        let mut ids = self.ids.clone();
        ids.insert(format!("audit_log:export:{id}"));
        ids
    }

    async fn view(&self, id: &str) -> Value {
        self.exports().get(&self.t, id).await.ok().flatten().unwrap_or_default()
    }

    /// Delivers every message due, each in a task of its own as a worker would run it,
    /// until none is left; a delivery that is not done (it failed, or its worker died)
    /// comes back once its visibility timeout is over, by which time a run it left
    /// behind is stale. Returns how many deliveries died.
    async fn drain(&self, exporter: &Exporter) -> usize {
        self.drain_by(exporter, || None).await
    }

    /// As [`Parts::drain`], each delivery given the deadline `deadline` says.
    async fn drain_by(&self, exporter: &Exporter, deadline: impl Fn() -> Option<std::time::Instant>) -> usize {
        let mut died = 0;
        for _ in 0..1_000 {
            let due = self.queue.receive();
            if due.is_empty() {
                return died;
            }
            for message in due {
                let (e, body, by) = (exporter.clone(), message.body.clone(), deadline());
                let done = tokio::spawn(async move { e.consume(&body, by).await }).await;
                if done.is_err() {
                    died += 1;
                }
                if !matches!(done, Ok(true)) {
                    self.archive.store.age_exports(STALE_SECONDS + 1);
                    self.queue.send(message).await.unwrap_or_else(|e| panic!("{e}"));
                }
            }
        }
        panic!("the export never settled");
    }

    /// Every row exactly once, newest first, file after file; the files' bytes.
    async fn assert_whole(&self, id: &str) -> Vec<Vec<u8>> {
        let files = export_files(&self.archive.store, &self.files, &self.t, id).await;
        let text = String::from_utf8(files.concat()).unwrap_or_default();
        let keys: Vec<(String, String)> = text
            .lines()
            .map(|l| {
                let row = serde_json::from_str::<Value>(l).unwrap_or_default();
                let field = |f: &str| row[f].as_str().unwrap_or_default().to_owned();
                (field("occurred_at"), field("id"))
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] > w[1]), "not newest first, or a row written twice");
        let ids: BTreeSet<String> = keys.into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, self.ids_with(id), "rows missed or invented");
        files
    }
}

#[tokio::test]
async fn a_large_export_comes_in_parts_fanned_out_with_progress_files_and_a_signed_manifest() {
    let x = Parts::new().await;
    let id = x.request().await;
    let exporter = x.exporter();
    // The first delivery plans the job, queues its other parts and writes the first.
    let first = x.queue.receive();
    assert_eq!(first.len(), 1);
    assert!(exporter.consume(&first[0].body, None).await);
    let view = x.view(&id).await;
    let parts = view["progress"]["parts"].as_u64().unwrap_or_default();
    assert!(parts >= 3, "360 archived rows in parts of 120: {view}");
    assert_eq!((view["status"].as_str(), view["progress"]["parts_done"].as_u64()), (Some("running"), Some(1)));
    assert!(view["progress"]["rows"].as_u64().is_some_and(|r| r > 0), "{view}");
    let queued: Vec<Value> =
        x.queue.messages()[1..].iter().filter_map(|m| serde_json::from_str(&m.body).ok()).collect();
    let indexes: Vec<u64> = queued.iter().filter_map(|m| m["part"].as_u64()).collect();
    assert_eq!(indexes, (1..parts).collect::<Vec<_>>(), "one message per further part");

    assert_eq!(x.drain(&exporter).await, 0);
    let view = x.view(&id).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(
        (view["progress"]["parts_done"].as_u64(), view["progress"]["parts"].as_u64()),
        (Some(parts), Some(parts))
    );
    let files = x.assert_whole(&id).await;
    let listed = view["files"].as_array().cloned().unwrap_or_default();
    assert!(listed.len() > usize::try_from(parts).unwrap_or(0), "files of 50 rows: {view}");
    assert_eq!(listed.len(), files.len());
    assert!(listed.iter().all(|f| f["download_url"].as_str().is_some_and(|u| u.contains("until="))));
    assert_eq!(view["download_url"], Value::Null, "several files: no single link");
    assert!(view["manifest_url"].as_str().is_some(), "{view}");

    // The manifest: every file in order with its hash, bytes and rows, signed.
    let bytes = x.files.bytes(&manifest_key("parts", &id)).unwrap_or_default();
    let manifest: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    assert_eq!(manifest["rows"], view["rows"]);
    assert_eq!(manifest["request"]["format"], "jsonl");
    assert!(manifest["archive_head"]["seq"].as_u64().is_some_and(|s| s >= 1), "{manifest}");
    let entries = manifest["files"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), files.len());
    for (entry, (file, shown)) in entries.iter().zip(files.iter().zip(&listed)) {
        assert_eq!(entry["sha256"], json!(hex::encode(Sha256::digest(file))));
        assert_eq!(entry["bytes"], json!(file.len()));
        assert_eq!(entry["rows"], json!(String::from_utf8_lossy(file).lines().count()));
        assert_eq!(entry["name"], shown["name"]);
    }
    let keys = x.archive.signer.keys().await.unwrap_or_else(|e| panic!("{e}"));
    let sig: Option<Signature> = serde_json::from_value(manifest["signature"].clone()).ok();
    let message = crate::domain::export_manifest::message(&manifest);
    assert_eq!(signature::verify(&keys, &message, sig.as_ref()), Ok(()));
    let mut forged = manifest.clone();
    forged["rows"] = json!(1);
    let forged_message = crate::domain::export_manifest::message(&forged);
    assert!(signature::verify(&keys, &forged_message, sig.as_ref()).is_err(), "a changed manifest still verifies");
}

#[tokio::test]
async fn an_export_killed_at_any_call_of_any_phase_finishes_with_every_row_exactly_once() {
    // Calls the export makes to its stores, by phase: the start (claim, plan, fan-out),
    // each part (claim, its file uploads, its records), the end (sign, manifest, success).
    let mut killed = 0;
    let cases = [
        ("jobs.claim", 0),
        ("jobs.set_plan", 0),
        ("send", 0),
        ("send", 1),
        ("jobs.claim_part", 0),
        ("jobs.claim_part", 2),
        ("jobs.parts", 0),
        ("jobs.parts", 2),
        ("upload", 0),
        ("upload", 5),
        ("jobs.save_part", 0),
        ("jobs.save_part", 1),
        ("jobs.save_part", 6),
        ("sign", 0),
        ("put_bytes", 0),
        ("jobs.succeed", 0),
    ];
    for (op, pass) in cases {
        let x = Parts::new().await;
        let id = x.request().await;
        let fault = Fault::after(op, pass).crash().times(1);
        match op {
            "upload" | "put_bytes" => x.files.faults.add(fault),
            "send" => x.queue.faults.add(fault),
            "sign" => x.archive.signer.faults.add(fault),
            _ => x.archive.store.faults.add(fault),
        }
        let died = x.drain(&x.exporter()).await;
        assert_eq!(died, 1, "{op} after {pass}: the worker was not killed once");
        killed += died;
        let view = x.view(&id).await;
        assert_eq!(view["status"], "succeeded", "killed at {op} after {pass}: {view}");
        x.assert_whole(&id).await;
        assert!(x.files.bytes(&manifest_key("parts", &id)).is_some(), "killed at {op} after {pass}: no manifest");
    }
    assert_eq!(killed, cases.len());
}

#[tokio::test]
async fn under_the_row_guard_an_export_killed_between_two_parts_still_finishes() {
    // With the guard each part queues the next after saving itself done; killed at that
    // send, the part's own message comes back and must queue the next again.
    for pass in 0..2 {
        let x = Parts::new().await;
        let id = x.request().await;
        let mut exporter = x.exporter();
        exporter.max_rows = 1_000_000;
        x.queue.faults.add(Fault::after("send", pass).crash().times(1));
        assert_eq!(x.drain(&exporter).await, 1, "send after {pass}: the worker was not killed once");
        let view = x.view(&id).await;
        assert_eq!(view["status"], "succeeded", "killed at send after {pass}: {view}");
        assert_eq!(view["truncated"], false);
        x.assert_whole(&id).await;
    }
}

#[tokio::test]
async fn a_part_whose_invocation_nears_its_deadline_pauses_and_carries_on_in_the_next() {
    let x = Parts::new().await;
    let id = x.request().await;
    // Every invocation is already within its pause margin: each part writes one file of
    // the rows it reaches before its first look at the clock, records it, and queues
    // itself again.
    // One part of all 401 rows, in files as large as need be: the clock is looked at
    // every 256 rows.
    let exporter = x.exporter().with_sizes(Sizes { part_rows: 10_000, file_rows: 10_000, file_bytes: 1 << 30 });
    assert_eq!(x.drain_by(&exporter, || Some(std::time::Instant::now())).await, 0);
    let view = x.view(&id).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    x.assert_whole(&id).await;
    let deliveries = x.queue.messages().len();
    let parts = usize::try_from(view["progress"]["parts"].as_u64().unwrap_or_default()).unwrap_or(0);
    assert_eq!(parts, 1);
    // Without a pause: the request and one message per further part.
    assert!(deliveries > parts, "no part paused: {deliveries} messages for {parts} parts");
    assert!(view["files"].as_array().is_some_and(|f| f.len() >= 2), "each pause ends a file: {view}");
}
