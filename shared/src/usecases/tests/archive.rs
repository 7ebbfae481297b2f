//! The archive on the in-memory adapters: days moved part by part, tombstones that keep
//! ids taken, reads by id from the archive, runs killed at every call, runs that lose
//! their lease, days too big for one run, and every forgery `verify` must report.

use super::*;
use crate::domain::event::StoredEvent;
use crate::domain::manifest::{self, Manifest};
use crate::formats::parquet_read::Part;
use crate::formats::parquet_write::PartWriter;
use crate::memory::{ManualClock, SlowPages};
use crate::ports::Clock;
use crate::ports::{ArchiveRegistry, BlobStore, Condition, EventArchiver, EventReader, Lookup, Moved, StoreError};
use crate::usecases::archive::{ArchiveStores, Archiver, Options, Report};
use crate::usecases::verify::{Checked, verify};
use std::collections::BTreeSet;
use std::time::Duration;

pub(super) struct Archive {
    pub(super) store: Arc<MemoryStore>,
    pub(super) bucket: Arc<MemoryBlobs>,
    pub(super) signer: Arc<MemorySigner>,
}

impl Archive {
    pub(super) fn new() -> Self {
        Self {
            store: Arc::new(MemoryStore::default()),
            bucket: Arc::new(MemoryBlobs::default()),
            signer: Arc::new(MemorySigner::default()),
        }
    }

    fn stores(&self) -> ArchiveStores {
        ArchiveStores::on(&self.store, &self.bucket, &self.signer)
    }

    fn archiver(&self, part_max_rows: u64) -> Archiver {
        Archiver::new(self.stores(), Options { default_hot_days: 90, part_max_rows })
    }

    pub(super) async fn run(&self, t: &TenantId, part_max_rows: u64) -> Report {
        self.archiver(part_max_rows).run(now(), Some(t), None).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The ids in every archived part of the tenant.
    fn archived_ids(&self, t: &TenantId) -> Vec<String> {
        let mut ids = Vec::new();
        for key in self.bucket.keys().into_iter().filter(|k| k.starts_with(&manifest::events_prefix(t.as_str()))) {
            let bytes = bytes::Bytes::from(self.bucket.bytes(&key).unwrap_or_default());
            let part = Part::open(&bytes).unwrap_or_else(|e| panic!("{key}: {e}"));
            for rg in 0..part.row_groups() {
                for batch in
                    part.read(bytes.clone(), rg, Some(&["id", "occurred_at"])).unwrap_or_else(|e| panic!("{e}"))
                {
                    ids.extend((0..batch.len()).map(|i| batch.row(i).key().1.to_owned()));
                }
            }
        }
        ids
    }

    /// Each event is in exactly one place: archived once or online, never both or neither;
    /// every archived one has a tombstone that points to its part; no object was written
    /// twice.
    fn assert_each_in_one_place(&self, t: &TenantId, all: &BTreeSet<String>) {
        let archived = self.archived_ids(t);
        let archived_set: BTreeSet<String> = archived.iter().cloned().collect();
        assert_eq!(archived_set.len(), archived.len(), "an event is archived twice");
        let online: BTreeSet<String> = self.store.events(t).into_iter().map(|e| e.event.id).collect();
        assert!(archived_set.is_disjoint(&online), "an event is both archived and online");
        let found: BTreeSet<String> = archived_set.union(&online).cloned().collect();
        assert_eq!(&found, all, "events lost or invented");
        let tombstoned: BTreeSet<String> = self.store.tombstones(t).into_keys().collect();
        assert_eq!(tombstoned, archived_set, "an archived event without its tombstone, or the reverse");
        for key in self.bucket.keys().into_iter().filter(|k| k.starts_with(&manifest::events_prefix(t.as_str()))) {
            assert_eq!(self.bucket.writes_of(&key), 1, "{key} was uploaded more than once");
        }
    }

    async fn check(&self, t: &TenantId) -> Checked {
        let keys = crate::ports::KeyDirectory::keys(&*self.signer).await.unwrap_or_else(|e| panic!("{e}"));
        verify(&*self.store, &*self.store, &*self.bucket, &keys, Some(t)).await.unwrap_or_else(|e| panic!("{e}"))
    }

    pub(super) async fn verify_clean(&self, t: &TenantId) -> u64 {
        let checked = self.check(t).await;
        assert_eq!(checked.findings, vec![], "verify found problems");
        checked.rows
    }

    /// The kinds of verify's findings, in order, each once.
    async fn kinds(&self, t: &TenantId) -> Vec<&'static str> {
        let mut k: Vec<&'static str> = self.check(t).await.findings.iter().map(|f| f.kind).collect();
        k.sort_unstable();
        k.dedup();
        k
    }
}

fn days_ago(n: i64) -> i64 {
    // Noon of the day, so a day's events stay in that day whatever the hour now.
    let day = now().plus_seconds(-n * DAY).day();
    let noon = Timestamp::parse(&format!("{day}T12:00:00Z")).unwrap_or(Timestamp::MIN);
    now().micros() / 1_000_000 - noon.micros() / 1_000_000
}

pub(super) fn day_events(tag: &str, days: i64, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            event(
                &format!("{tag}-{days}-{i:04}"),
                days_ago(days) + i64::try_from(i).unwrap_or(0),
                "file.upload",
                &format!("u{}", i % 3),
            )
        })
        .collect()
}

pub(super) fn ids_of(events: &[Value]) -> BTreeSet<String> {
    events.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect()
}

fn day(n: i64) -> String {
    now().plus_seconds(-n * DAY).day()
}

fn part_key(t: &str, n: i64, part: usize) -> String {
    format!("{}{}", manifest::day_prefix(t, &day(n)), manifest::part_name(part))
}

// ---------------------------------------------------------------- days, parts, revisions

#[tokio::test]
async fn old_days_move_to_parquet_part_by_part_and_recent_ones_stay() {
    let a = Archive::new();
    let t = tenant("acme");
    set_shards(&a.store, &t, 3, None).await;
    let mut all = day_events("a", 200, 50);
    all.extend(day_events("a", 198, 30));
    all.extend(day_events("a", 2, 20));
    load(&a.store, &t, &all).await;
    let report = a.run(&t, 20).await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.rows_by_day(), vec![(day(200), 50), (day(198), 30)]);
    // Each part its own revision: 20 + 20 + 10, then 20 + 10.
    let parts: Vec<(u64, u64, String)> = report.committed.iter().map(|c| (c.seq, c.rows, c.part.clone())).collect();
    assert_eq!(
        parts.iter().map(|(s, r, _)| (*s, *r)).collect::<Vec<_>>(),
        vec![(1, 20), (2, 20), (3, 10), (4, 20), (5, 10)]
    );
    assert_eq!(parts[2].2, "part-00002.parquet");
    assert_eq!(a.store.events(&t).len(), 20);
    a.assert_each_in_one_place(&t, &ids_of(&all));
    assert_eq!(a.verify_clean(&t).await, 80);
    // Every revision stays readable as its own object.
    for seq in 1..=5 {
        let rev = a.bucket.bytes(&manifest::revision_key("acme", seq)).unwrap_or_else(|| panic!("no revision {seq}"));
        let m: Manifest = serde_json::from_slice(&rev).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.seq, seq);
    }
    // Nothing left to do: a second run changes nothing.
    let again = a.run(&t, 20).await;
    assert!(again.committed.is_empty() && again.failures.is_empty(), "{again:?}");
    // A late event for an archived day becomes its next part, in a new revision.
    let late = day_events("late", 200, 3);
    load(&a.store, &t, &late).await;
    all.extend(late);
    let report = a.run(&t, 20).await;
    assert_eq!(
        report.committed.iter().map(|c| (c.seq, c.part.clone())).collect::<Vec<_>>(),
        vec![(6, "part-00003.parquet".to_owned())]
    );
    let (bytes, _) =
        a.bucket.get_bytes(&manifest::manifest_key("acme", &day(200))).await.ok().flatten().unwrap_or_default();
    let m: Manifest = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((m.rows, m.supersedes.iter().map(|s| s.seq).collect::<Vec<_>>()), (53, vec![1, 2, 3]));
    assert_eq!(Some(bytes), a.bucket.bytes(&manifest::revision_key("acme", 6)));
    a.assert_each_in_one_place(&t, &ids_of(&all));
    assert_eq!(a.verify_clean(&t).await, 83);
}

// ---------------------------------------------------------------- ids stay taken (issue 10, point 2)

#[tokio::test]
async fn an_archived_id_stays_taken_and_reads_back_from_the_archive() {
    let a = Archive::new();
    let t = tenant("ids");
    let events = day_events("i", 150, 30);
    load(&a.store, &t, &events).await;
    let before: Vec<StoredEvent> = a.store.events(&t);
    a.run(&t, 10).await;
    assert!(a.store.events(&t).is_empty());
    // A resend is a duplicate, a changed one a conflict, exactly as online.
    let again = ingest(&a.store).ingest(&t, vec![events[4].clone()]).await;
    assert_eq!(statuses(&again), vec![Status::Duplicate]);
    let mut changed = events[4].clone();
    changed["description"] = json!("rewritten");
    let conflict = ingest(&a.store).ingest(&t, vec![changed]).await;
    assert_eq!(conflict[0].error.as_ref().map(|e| e.code), Some(Code::Conflict));
    assert!(a.store.events(&t).is_empty(), "a resend was stored again");
    // The next run does not archive it a second time.
    a.run(&t, 10).await;
    a.assert_each_in_one_place(&t, &ids_of(&events));
    // Read by id: from the archive, marked, the same event with the same hash.
    let q = Query::on(&a.store, &a.bucket, CursorKey::derive("test"), 90);
    for original in [&before[0], &before[15], &before[29]] {
        let found = q.get(&t, &original.event.id).await.unwrap_or_else(|e| panic!("{e}"));
        let found = found.unwrap_or_else(|| panic!("{} not found", original.event.id));
        assert!(found.archived);
        assert_eq!(&found.event, original);
    }
    assert!(q.get(&t, "never-stored").await.ok().flatten().is_none());
    assert!(q.get(&tenant("other"), &before[0].event.id).await.ok().flatten().is_none());
    // A row altered in its part is refused, never served.
    let key = part_key("ids", 150, 1);
    let edited = edit_part(&a.bucket.bytes(&key).unwrap_or_default(), 0, false);
    a.bucket.overwrite(&key, edited);
    let id = &before[10].event.id;
    assert!(matches!(q.get(&t, id).await, Err(StoreError::Corrupt(_))), "an edited row was served");
}

#[tokio::test]
async fn an_index_that_still_lists_tombstoned_events_gets_no_event_archived_twice() {
    let a = Archive::new();
    let t = tenant("lag");
    let mut all = day_events("g", 160, 40);
    load(&a.store, &t, &all).await;
    a.run(&t, 15).await;
    // As a DynamoDB GSI for a moment after the base item changed.
    a.store.lag_index(true);
    let late = day_events("late", 160, 5);
    load(&a.store, &t, &late).await;
    all.extend(late);
    let report = a.run(&t, 15).await;
    assert_eq!(report.rows_by_day(), vec![(day(160), 5)], "{report:?}");
    a.store.lag_index(false);
    a.assert_each_in_one_place(&t, &ids_of(&all));
    a.verify_clean(&t).await;
    // A tombstone never moves to another part.
    let id = all[0]["id"].as_str().unwrap_or_default().to_owned();
    let elsewhere = Moved { id, date: day(160), part: "part-00009.parquet".into() };
    assert!(matches!(a.store.tombstone(&t, &[elsewhere]).await, Err(StoreError::Corrupt(_))));
}

// ---------------------------------------------------------------- runs that stop (points 4, 5)

/// Two days of events on two shards, and their ids.
async fn killable() -> (Archive, TenantId, BTreeSet<String>) {
    let a = Archive::new();
    let t = tenant("kill");
    let mut all = day_events("k", 120, 60);
    all.extend(day_events("k", 119, 20));
    set_shards(&a.store, &t, 2, None).await;
    load(&a.store, &t, &all).await;
    (a, t, ids_of(&all))
}

#[tokio::test]
async fn a_run_killed_at_any_call_loses_nothing_and_a_rerun_uploads_nothing_twice() {
    // The calls an undisturbed run makes: a rule that never fires still counts them.
    let (a, t, _) = killable().await;
    a.store.faults.add(Fault::after("*", usize::MAX));
    a.bucket.faults.add(Fault::after("*", usize::MAX));
    a.run(&t, 25).await;
    let (store_calls, bucket_calls) = (a.store.faults.calls(), a.bucket.faults.calls());
    assert!(store_calls > 20 && bucket_calls > 20, "{store_calls} {bucket_calls}");
    for (on_store, n) in (0..store_calls).map(|n| (true, n)).chain((0..bucket_calls).map(|n| (false, n))) {
        let (a, t, ids) = killable().await;
        // From call n on, every call fails: the process died there.
        let kill = Fault::after("*", n);
        if on_store {
            a.store.faults.add(kill)
        } else {
            a.bucket.faults.add(kill)
        }
        let crashed = a.run(&t, 25).await;
        let at = format!("killed at {} call {n}", if on_store { "store" } else { "bucket" });
        let online: BTreeSet<String> = a.store.events(&t).into_iter().map(|e| e.event.id).collect();
        let found: BTreeSet<String> = a.archived_ids(&t).into_iter().chain(online).collect();
        assert_eq!(found, ids, "{at}: events lost");
        a.store.faults.clear();
        a.bucket.faults.clear();
        // The dead run's lease lapses before the next run comes.
        a.store.lapse_lease(&t);
        let rerun = a.run(&t, 25).await;
        assert!(rerun.failures.is_empty(), "{at}: {crashed:?} then {rerun:?}");
        a.assert_each_in_one_place(&t, &ids);
        assert!(a.store.events(&t).is_empty(), "{at}");
        assert_eq!(a.verify_clean(&t).await, 80, "{at}");
    }
}

#[tokio::test]
async fn another_run_holding_the_tenant_is_not_interleaved() {
    let a = Archive::new();
    let t = tenant("busy");
    load(&a.store, &t, &day_events("b", 150, 5)).await;
    a.store.lease(&t, "someone-else").await.unwrap_or_else(|e| panic!("{e}"));
    let report = a.run(&t, 100).await;
    assert_eq!(report.failures.len(), 1);
    assert!(report.failures[0].error.contains("another archive run"), "{report:?}");
    assert_eq!(a.store.events(&t).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lease_stops_before_uploading_again() {
    let a = Arc::new(Archive::new());
    let t = tenant("stall");
    let all = day_events("s", 140, 100);
    load(&a.store, &t, &all).await;
    // The first run stalls in its first tombstones, long enough for its lease to lapse
    // and a second run to take the tenant over.
    a.store.faults.add(Fault::after("tombstone", 0).times(1).slow(Duration::from_millis(800)));
    let first = {
        let (a, t) = (a.clone(), t.clone());
        tokio::spawn(async move { a.run(&t, 20).await })
    };
    while a.store.state(&t).await.ok().and_then(|s| s.pending).is_none_or(|p| p.phase != manifest::Phase::Tombstone) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.store.lapse_lease(&t);
    let second = a.run(&t, 20).await;
    assert!(second.failures.is_empty() && second.resumed == 1, "{second:?}");
    let first = first.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(first.failures.iter().any(|f| f.error.contains("another archive run")), "{first:?}");
    assert_eq!(first.committed.len(), 0, "the stalled run committed after losing its lease");
    a.assert_each_in_one_place(&t, &ids_of(&all));
    assert_eq!(a.verify_clean(&t).await, 100);
}

#[tokio::test]
async fn a_part_key_that_is_taken_is_never_overwritten() {
    let a = Archive::new();
    let t = tenant("taken");
    let all = day_events("o", 130, 10);
    load(&a.store, &t, &all).await;
    // An object no manifest names sits where the day's first part would go.
    let key = part_key("taken", 130, 0);
    a.bucket.put_bytes(&key, b"someone else's".to_vec(), "x", Condition::None).await.unwrap_or_else(|e| panic!("{e}"));
    let report = a.run(&t, 100).await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.committed.iter().map(|c| c.part.as_str()).collect::<Vec<_>>(), vec!["part-00001.parquet"]);
    assert_eq!(a.bucket.bytes(&key), Some(b"someone else's".to_vec()));
    assert_eq!(a.kinds(&t).await, vec!["extra_part"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_key_taken_during_the_upload_is_not_replaced_and_the_next_run_goes_past_it() {
    let a = Arc::new(Archive::new());
    let t = tenant("race");
    let all = day_events("r", 130, 10);
    load(&a.store, &t, &all).await;
    a.bucket.faults.add(Fault::after("put_file", 0).times(1).slow(Duration::from_millis(300)));
    let run = {
        let (a, t) = (a.clone(), t.clone());
        tokio::spawn(async move { a.run(&t, 100).await })
    };
    // While the part is on its way, another writer takes its key.
    let step = loop {
        if let Some(p) = a.store.state(&t).await.ok().and_then(|s| s.pending) {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let key = format!("{}{}", manifest::day_prefix("race", &step.date), step.part.name);
    a.bucket.put_bytes(&key, b"planted".to_vec(), "x", Condition::None).await.unwrap_or_else(|e| panic!("{e}"));
    let report = run.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.failures.iter().any(|f| f.error.contains("taken")), "{report:?}");
    assert_eq!(a.bucket.bytes(&key), Some(b"planted".to_vec()));
    assert_eq!(a.store.events(&t).len(), 10, "tombstoned without their part in S3");
    assert!(a.store.state(&t).await.ok().and_then(|s| s.pending).is_none(), "the step stays and blocks the tenant");
    let report = a.run(&t, 100).await;
    assert_eq!(report.committed.iter().map(|c| c.part.as_str()).collect::<Vec<_>>(), vec!["part-00001.parquet"]);
    assert_eq!(a.store.events(&t).len(), 0);
    assert_eq!(a.kinds(&t).await, vec!["extra_part"]);
}

#[tokio::test]
async fn a_day_too_big_for_one_run_is_archived_across_runs() {
    let a = Archive::new();
    let t = tenant("big");
    let all = day_events("d", 110, 6_000);
    load(&a.store, &t, &all).await;
    // Reading a page of 2,000 items takes 60 ms of a clock that moves only with the
    // reads: the whole day takes longer than a run of 150 ms, on any machine.
    let clock = Arc::new(ManualClock::default());
    let slow = SlowPages { inner: a.store.clone(), clock: clock.clone(), per_page: Duration::from_millis(60) };
    let stores = ArchiveStores { index: Arc::new(slow), ..a.stores() };
    let mut runs = Vec::new();
    loop {
        let deadline = clock.now() + Duration::from_millis(150);
        let archiver = Archiver::new(stores.clone(), Options { default_hot_days: 90, part_max_rows: 1_000_000 });
        let report = archiver.with_clock(clock.clone()).run(now(), Some(&t), Some(deadline)).await;
        let report = report.unwrap_or_else(|e| panic!("{e}"));
        assert!(report.failures.is_empty(), "{report:?}");
        let done = !report.unfinished;
        runs.push(report);
        if done || runs.len() > 100 {
            break;
        }
    }
    assert!(runs.len() >= 2, "one run did it all: {runs:?}");
    assert!(runs[..runs.len() - 1].iter().all(|r| !r.committed.is_empty()), "a run made no progress: {runs:?}");
    assert!(runs[0].committed.iter().all(|c| c.rows < 6_000), "{:?}", runs[0]);
    // The lag each run reports (ArchiveLagDays): the day 110 days back is 20 days past
    // the 90-day window until the run that finishes it.
    let lags: Vec<u32> = runs.iter().map(|r| r.lag_days).collect();
    assert!(lags[..lags.len() - 1].iter().all(|l| (19..=21).contains(l)), "{lags:?}");
    assert_eq!(lags.last(), Some(&0));
    // The pace the commits measured is kept, for the next run's first part.
    let pace = a.store.state(&t).await.ok().and_then(|s| s.commit_micros_per_row);
    assert!(pace.is_some_and(|p| p > 0), "{pace:?}");
    a.assert_each_in_one_place(&t, &ids_of(&all));
    assert_eq!(a.verify_clean(&t).await, 6_000);
}

// ---------------------------------------------------------------- forgeries (point 3)

/// Part bytes with one row's actor name changed; its hash column left, or recomputed.
fn edit_part(bytes: &[u8], index: usize, recompute_hash: bool) -> Vec<u8> {
    let bytes = bytes::Bytes::copy_from_slice(bytes);
    let part = Part::open(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut w = PartWriter::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0;
    for rg in 0..part.row_groups() {
        for batch in part.read(bytes.clone(), rg, None).unwrap_or_else(|e| panic!("{e}")) {
            for i in 0..batch.len() {
                let mut row = batch.row(i).into_owned();
                if n == index {
                    row.s[crate::domain::row::col::ACTOR_NAME] = Some("Mallory".into());
                    if recompute_hash {
                        let mut doc = row.clone();
                        doc.s[crate::domain::row::col::HASH] = None;
                        let actual = match doc.to_stored() {
                            Err(crate::domain::row::BadRow::Hash { actual, .. }) => actual,
                            other => panic!("{other:?}"),
                        };
                        row.s[crate::domain::row::col::HASH] = Some(actual.into());
                    }
                }
                w.push_row(&row).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// What a forgery is, how it is made, and the kinds of finding it must cause.
type Forgery<'a> = (&'static str, Box<dyn Fn() + 'a>, Vec<&'static str>);

/// A manifest with what `change` does to it.
fn edited(bytes: &[u8], change: impl FnOnce(&mut Manifest)) -> Vec<u8> {
    let mut m: Manifest = serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}"));
    change(&mut m);
    m.to_bytes().unwrap_or_default()
}

#[tokio::test]
async fn verify_reports_every_single_change_an_attacker_with_bucket_access_can_make() {
    // Day A archived, then day B; a late event for B gives B a second revision.
    let a = Archive::new();
    let t = tenant("v");
    load(&a.store, &t, &day_events("a", 300, 12)).await;
    a.run(&t, 100).await;
    load(&a.store, &t, &day_events("b", 299, 12)).await;
    a.run(&t, 100).await;
    load(&a.store, &t, &day_events("late", 299, 2)).await;
    a.run(&t, 100).await;
    assert_eq!(a.verify_clean(&t).await, 26);
    let (day_a, day_b) = (manifest::manifest_key("v", &day(300)), manifest::manifest_key("v", &day(299)));
    let revision = |seq: u64| manifest::revision_key("v", seq);
    let part_a = part_key("v", 300, 0);
    let get = |key: &str| a.bucket.bytes(key).unwrap_or_else(|| panic!("{key}"));
    let originals: Vec<(String, Vec<u8>)> =
        a.bucket.keys().into_iter().filter(|k| k.contains("tenant=v/")).map(|k| (k.clone(), get(&k))).collect();
    let restore = || {
        for k in a.bucket.keys().into_iter().filter(|k| k.contains("tenant=v/")) {
            a.bucket.remove(&k);
        }
        for (k, v) in &originals {
            a.bucket.overwrite(k, v.clone());
        }
    };
    // The part's manifest entry and revision, fixed to the forged part: as an attacker
    // would, in the current manifest and in its revision object.
    let fix_a = |forged: &[u8]| {
        let sha = manifest::hash(forged);
        let fix = |m: &mut Manifest| {
            m.parts[0].sha256.clone_from(&sha);
            m.parts[0].bytes = forged.len() as u64;
        };
        a.bucket.overwrite(&day_a, edited(&get(&day_a), fix));
        a.bucket.overwrite(&revision(1), edited(&get(&revision(1)), fix));
    };
    let cases: Vec<Forgery<'_>> = vec![
        (
            "a part's bytes",
            Box::new(|| {
                let mut b = get(&part_a);
                b[100] ^= 1;
                a.bucket.overwrite(&part_a, b);
            }),
            vec!["changed_part"],
        ),
        (
            "a row, and the part's entry in its manifest",
            Box::new(|| {
                let forged = edit_part(&get(&part_a), 3, false);
                a.bucket.overwrite(&part_a, forged.clone());
                fix_a(&forged);
            }),
            vec!["chain", "changed_row"],
        ),
        (
            "a row with its hash column recomputed, and the manifest",
            Box::new(|| {
                let forged = edit_part(&get(&part_a), 3, true);
                a.bucket.overwrite(&part_a, forged.clone());
                fix_a(&forged);
            }),
            vec!["chain"],
        ),
        (
            "a row, and the day's current manifest only (issue 10, point 3)",
            Box::new(|| {
                let forged = edit_part(&get(&part_a), 3, true);
                a.bucket.overwrite(&part_a, forged.clone());
                let sha = manifest::hash(&forged);
                a.bucket.overwrite(
                    &day_a,
                    edited(&get(&day_a), |m| {
                        m.parts[0].sha256.clone_from(&sha);
                        m.parts[0].bytes = forged.len() as u64;
                    }),
                );
            }),
            vec!["bad_manifest", "changed_part"],
        ),
        (
            "a manifest field in the current manifest",
            Box::new(|| {
                a.bucket
                    .overwrite(&day_b, edited(&get(&day_b), |m| m.created_at = "2020-01-01T00:00:00.000000Z".into()));
            }),
            vec!["bad_manifest"],
        ),
        (
            "a manifest field in a superseded revision",
            Box::new(|| {
                a.bucket.overwrite(&revision(2), edited(&get(&revision(2)), |m| m.parts[0].rows -= 1));
            }),
            vec!["chain"],
        ),
        (
            "a row count in the newest revision and the current manifest",
            Box::new(|| {
                let change = |m: &mut Manifest| {
                    m.parts[1].rows += 1;
                    m.rows += 1;
                };
                a.bucket.overwrite(&day_b, edited(&get(&day_b), change));
                a.bucket.overwrite(&revision(3), edited(&get(&revision(3)), change));
            }),
            vec!["chain", "row_count"],
        ),
        (
            "a removed current manifest",
            Box::new(|| {
                a.bucket.remove(&day_a);
            }),
            vec!["bad_manifest"],
        ),
        (
            "a removed revision",
            Box::new(|| {
                a.bucket.remove(&revision(2));
            }),
            vec!["chain"],
        ),
        (
            "the newest revision and current manifest removed, the older restored",
            Box::new(|| {
                a.bucket.remove(&revision(3));
                a.bucket.overwrite(&day_b, get(&revision(2)));
            }),
            vec!["chain", "extra_part"],
        ),
        (
            "an older revision restored as the current manifest",
            Box::new(|| {
                a.bucket.overwrite(&day_b, get(&revision(2)));
            }),
            vec!["bad_manifest"],
        ),
        (
            "a revision replaced by another",
            Box::new(|| {
                a.bucket.overwrite(&revision(1), get(&revision(2)));
            }),
            vec!["chain"],
        ),
        (
            "revisions reordered",
            Box::new(|| {
                let (one, two) = (get(&revision(1)), get(&revision(2)));
                a.bucket.overwrite(&revision(1), two);
                a.bucket.overwrite(&revision(2), one);
            }),
            vec!["chain"],
        ),
        (
            "a manifest for a day no revision names",
            Box::new(|| {
                a.bucket.overwrite(&manifest::manifest_key("v", &day(298)), get(&day_a));
            }),
            vec!["bad_manifest"],
        ),
        (
            "a removed part",
            Box::new(|| {
                a.bucket.remove(&part_a);
            }),
            vec!["missing_part"],
        ),
        (
            "an extra part",
            Box::new(|| {
                a.bucket.overwrite(&part_key("v", 300, 7), get(&part_a));
            }),
            vec!["extra_part"],
        ),
    ];
    for (what, forge, expected) in cases {
        forge();
        let found = a.kinds(&t).await;
        for kind in &expected {
            assert!(found.contains(kind), "{what}: expected {kind}, found {found:?}");
        }
        restore();
        assert_eq!(a.kinds(&t).await, Vec::<&str>::new(), "{what}: not restored");
    }
}

#[tokio::test]
async fn a_chain_rewritten_in_bucket_and_table_together_is_caught_by_its_signed_checkpoints() {
    let a = Archive::new();
    let t = tenant("cp");
    load(&a.store, &t, &day_events("a", 300, 12)).await;
    a.run(&t, 100).await;
    // A rotation between two runs: the old key stays published and keeps verifying.
    a.signer.rotate();
    load(&a.store, &t, &day_events("b", 299, 12)).await;
    a.run(&t, 100).await;
    let checked = a.check(&t).await;
    assert_eq!((checked.findings.len(), checked.checkpoints), (0, 2), "{:?}", checked.findings);
    let signed: Vec<String> =
        a.bucket.keys().into_iter().filter(|k| k.starts_with(&manifest::checkpoints_prefix("cp"))).collect();
    assert_eq!(signed.len(), 2, "one checkpoint per head: {signed:?}");

    // Bucket and table rewritten consistently: the newest revision and the day's manifest
    // changed, the registry's head moved to the new revision's hash. The chain holds.
    let (revision, current) = (manifest::revision_key("cp", 2), manifest::manifest_key("cp", &day(299)));
    let rewritten =
        edited(&a.bucket.bytes(&revision).unwrap_or_default(), |m| m.created_at = "2020-01-01T00:00:00.000000Z".into());
    a.bucket.overwrite(&revision, rewritten.clone());
    a.bucket.overwrite(&current, rewritten.clone());
    a.store.set_archive_head(&t, manifest::ChainHead { seq: 2, sha256: manifest::hash(&rewritten) });
    assert_eq!(a.kinds(&t).await, vec!["checkpoint"], "only the signature can tell");
    // Nor can the checkpoint be rewritten to match without the key.
    let key = manifest::checkpoint_key("cp", 2);
    let mut forged: crate::domain::checkpoint::Checkpoint =
        serde_json::from_slice(&a.bucket.bytes(&key).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    forged.head = manifest::hash(&rewritten);
    a.bucket.overwrite(&key, forged.to_bytes());
    assert_eq!(a.kinds(&t).await, vec!["checkpoint"]);
    // Signed by a key of the attacker's own: not a published key.
    let other = MemorySigner::default();
    forged.signature =
        Some(crate::ports::Signer::sign(&other, &forged.message()).await.unwrap_or_else(|e| panic!("{e}")));
    a.bucket.overwrite(&key, forged.to_bytes());
    assert_eq!(a.kinds(&t).await, vec!["checkpoint"]);
    // And a checkpoint removed leaves the head unsigned.
    a.bucket.remove(&key);
    assert_eq!(a.kinds(&t).await, vec!["checkpoint"]);
    // The next archive run does not vouch for the forged head (signing it, or a revision
    // on top of it): the tenant fails, nothing is written, its new day stays online.
    load(&a.store, &t, &day_events("c", 298, 5)).await;
    let report = a.run(&t, 100).await;
    assert!(report.committed.is_empty(), "{:?}", report.committed);
    assert!(report.failures.iter().any(|f| f.error.contains("is not signed")), "{:?}", report.failures);
    assert!(a.bucket.bytes(&key).is_none(), "the forged head was signed");
    assert!(a.bucket.bytes(&manifest::revision_key("cp", 3)).is_none());
    assert_eq!(a.store.events(&t).len(), 5);
}

#[tokio::test]
async fn a_lookup_says_online_archived_or_absent() {
    let a = Archive::new();
    let t = tenant("look");
    load(&a.store, &t, &day_events("l", 100, 2)).await;
    load(&a.store, &t, &day_events("l", 1, 1)).await;
    a.run(&t, 10).await;
    let online = EventReader::get(&*a.store, &t, "l-1-0000").await.ok();
    assert!(matches!(online, Some(Lookup::Online(_))));
    let archived = EventReader::get(&*a.store, &t, "l-100-0001").await.ok();
    assert!(
        matches!(&archived, Some(Lookup::Archived(at)) if at.part == "part-00000.parquet" && at.date == day(100)),
        "{archived:?}"
    );
    assert!(matches!(EventReader::get(&*a.store, &t, "nope").await.ok(), Some(Lookup::Absent)));
}
