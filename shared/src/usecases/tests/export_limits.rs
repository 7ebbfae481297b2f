//! Fair exports on the in-memory adapters: a tenant's limit of queued and running jobs,
//! places given back when jobs end (or were left behind), and a job requeued while its
//! tenant's running slots are taken.

use super::*;
use crate::domain::cursor::CursorKey;
use crate::domain::error::Code;
use crate::domain::export::Status as JobStatus;
use crate::domain::export_dispatch::{Dispatch, Limits, ORPHAN_SECONDS, REQUEUE_SECONDS};
use crate::domain::timestamp::Timestamp;
use crate::memory::{MemoryBlobs, MemoryQueue, MemorySigner, MemoryStore};
use crate::ports::ExportJobs;
use crate::usecases::export::Exporter;
use crate::usecases::export::requests::Exports;

const LIMITS: Limits = Limits { active: 2, running: 1 };

struct Fixture {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    exports: Exports,
    exporter: Exporter,
}

fn fixture() -> Fixture {
    let (store, queue, files) =
        (Arc::new(MemoryStore::default()), Arc::new(MemoryQueue::default()), Arc::new(MemoryBlobs::default()));
    let exports = Exports::on(&store, &queue, &files, CursorKey::derive("k")).with_limits(LIMITS);
    let exporter = Exporter::on(
        &store,
        &Arc::new(MemoryBlobs::default()),
        &files,
        &queue,
        &Arc::new(MemorySigner::default()),
        100,
        90,
    )
    .with_limits(LIMITS);
    Fixture { store, queue, exports, exporter }
}

#[tokio::test]
async fn a_tenant_at_its_limit_is_told_when_to_retry_and_nothing_is_logged_or_queued() {
    let f = fixture();
    let t = tenant("busy");
    for _ in 0..LIMITS.active {
        assert!(f.exports.request(&t, "u", b"{}").await.is_ok());
    }
    let refused = f.exports.request(&t, "u", b"{}").await.err().unwrap_or_else(|| panic!("admitted"));
    assert_eq!((refused.code, refused.status(), refused.retry_after.is_some()), (Code::Throttled, 429, true));
    assert_eq!(f.queue.messages().len(), LIMITS.active as usize, "nothing queued");
    assert_eq!(f.store.events(&t).len(), LIMITS.active as usize, "nothing logged");
    // Another tenant is not held by this one's limit.
    assert!(f.exports.request(&tenant("calm"), "u", b"{}").await.is_ok());
    // A job that ends gives its place back.
    let first = f.queue.messages()[0].body.clone();
    assert!(f.exporter.consume(&first, None).await);
    assert!(f.exports.request(&t, "u", b"{}").await.is_ok());
}

#[tokio::test]
async fn a_place_left_by_a_job_that_ended_unrecorded_is_given_back_at_the_limit() {
    // Given: a tenant whose record still holds two places: one of a job that ended
    // without giving it back, and one of a request that just took it
    let f = fixture();
    let t = tenant("leftover");
    let job = f.exports.request(&t, "u", b"{}").await.unwrap_or_else(|e| panic!("{e:?}"));
    f.store.fail(&t, &job.id, "internal", "crashed", now()).await.unwrap_or_else(|e| panic!("{e}"));
    let current = f.store.dispatch(&t).await.unwrap_or_default();
    let mut left = current.clone();
    let long_ago = Timestamp::now().plus_seconds(-ORPHAN_SECONDS - 1);
    left.active.insert(job.id.clone(), long_ago);
    left.active.insert("in-flight".into(), Timestamp::now());
    left.version += 1;
    assert!(f.store.put_dispatch(&t, &left, current.version).await.unwrap_or(false));

    // When: it asks for another export
    let next = f.exports.request(&t, "u", b"{}").await;

    // Then: the ended job's place is freed for it; the fresh one is kept
    assert!(next.is_ok(), "{next:?}");
    let record = f.store.dispatch(&t).await.unwrap_or_default();
    assert!(!record.active.contains_key(&job.id) && record.active.contains_key("in-flight"), "{record:?}");
}

#[tokio::test]
async fn a_job_whose_tenant_has_no_free_slot_goes_back_on_the_queue_for_a_while() {
    // Given: the tenant's one running slot leased to another of its jobs
    let f = fixture();
    let t = tenant("slots");
    let job = f.exports.request(&t, "u", b"{}").await.unwrap_or_else(|e| panic!("{e:?}"));
    let current = f.store.dispatch(&t).await.unwrap_or_default();
    let taken = current.claim("other-job", Timestamp::now(), LIMITS);
    let taken = taken.unwrap_or_else(|| panic!("no slot"));
    assert!(f.store.put_dispatch(&t, &taken, current.version).await.unwrap_or(false));

    // When: the worker receives the job
    let message = f.queue.messages()[0].clone();
    assert!(f.exporter.consume(&message.body, None).await, "done with this delivery");

    // Then: it is queued again, delayed, and not run
    let requeued = f.queue.messages().last().cloned().unwrap_or_else(|| panic!("not requeued"));
    assert_eq!((requeued.body, requeued.delay_seconds), (message.body.clone(), REQUEUE_SECONDS));
    let stored = ExportJobs::get(&*f.store, &t, &job.id).await.ok().flatten().map(|j| j.status);
    assert_eq!(stored, Some(JobStatus::Queued));

    // And: once the lease ends, the next delivery runs it and frees everything
    let expired = Dispatch {
        running: taken.running.keys().map(|k| (k.clone(), Timestamp::now().plus_seconds(-1))).collect(),
        version: taken.version + 1,
        ..taken.clone()
    };
    assert!(f.store.put_dispatch(&t, &expired, taken.version).await.unwrap_or(false));
    assert!(f.exporter.consume(&message.body, None).await);
    let stored = ExportJobs::get(&*f.store, &t, &job.id).await.ok().flatten().map(|j| j.status);
    assert_eq!(stored, Some(JobStatus::Succeeded));
    let record = f.store.dispatch(&t).await.unwrap_or_default();
    assert!(record.active.is_empty() && record.running.is_empty(), "{record:?}");
}
