//! Serving tenants in turns ([`crate::domain::turn`]): offering a tenant a turn when work
//! arrives for it, and serving a turn's message with a slice of the tenant's work, then
//! passing the turn on.
//!
//! The order of writes is what keeps a turn from being lost: a turn's message is sent
//! before its token is recorded (a token without a message could never be served; a
//! message without its token is only dropped as stale), and a worker passes its turn on
//! before its own message is deleted (a worker that dies mid-slice leaves its message
//! to be delivered again once its hold has lapsed).

use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::domain::turn::{DUE_SLACK_MICROS, TurnMessage, delay_seconds, new_token};
use crate::ports::{MessageQueue, Noted, Outgoing, Passed, QueueError, StoreError, Take, TurnStore};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tries before a note or a pass gives up to a racing writer (each race means another
/// writer made progress, so a few are plenty).
const MAX_RACES: usize = 5;
/// How soon a tenant whose slice failed (storage unavailable) gets its next turn.
const AFTER_FAILURE: Duration = Duration::from_secs(5);
/// How long a message that overtook its token's record waits for it, in steps.
const RECORD_WAITS: [Duration; 3] = [Duration::from_millis(50), Duration::from_millis(150), Duration::from_millis(400)];
/// A token older than this that is not the tenant's is stale, never a record still to come.
const YOUNG_MILLIS: u64 = 60_000;

/// Whether `token` may be a turn whose record is still to be written: made in the last
/// minute and newer than the tenant's turn (tokens are UUIDv7, ordered by creation).
fn not_recorded_yet(token: &str, current: Option<&str>) -> bool {
    let Some((seconds, nanos)) = uuid::Uuid::parse_str(token).ok().and_then(|u| u.get_timestamp()).map(|t| t.to_unix())
    else {
        return false;
    };
    let made = seconds.saturating_mul(1000).saturating_add(u64::from(nanos / 1_000_000));
    let now = u64::try_from(Timestamp::now().micros() / 1000).unwrap_or(0);
    now.saturating_sub(made) < YOUNG_MILLIS && current.is_none_or(|c| c < token)
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the tenant's turn kept changing")]
    Contended,
}

/// A tenant's work of one kind, done a slice at a time.
#[async_trait]
pub trait TenantWork: Send + Sync {
    /// One slice of the tenant's work, ending before `deadline`; `state` is what the last
    /// slice kept, the answer what this one keeps.
    ///
    /// # Errors
    /// Storage unavailable: the turn comes back shortly.
    async fn slice(
        &self,
        tenant: &TenantId,
        state: Option<String>,
        deadline: Instant,
    ) -> Result<Option<String>, StoreError>;

    /// When the tenant's next piece of work is due; `None` when there is none.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn next_due(&self, tenant: &TenantId) -> Result<Option<Timestamp>, StoreError>;
}

/// What became of a turn's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Done with: delete it.
    Done,
    /// Leave it, to be delivered again (another worker holds the turn, or passing it on
    /// failed).
    Again,
}

/// The turns of one kind of work.
#[derive(Clone)]
pub struct Turns {
    pub kind: &'static str,
    pub store: Arc<dyn TurnStore>,
    /// The kind's queue of turn messages.
    pub queue: Arc<dyn MessageQueue>,
    /// How long a worker holds a turn: longer than a slice can take.
    pub hold: Duration,
}

impl Turns {
    /// Makes sure the tenant has a turn due now, to see work just added.
    ///
    /// # Errors
    /// Storage or the queue unavailable: the work is there, but no turn may see it yet;
    /// the caller retries (the work's producer is retried as a whole).
    pub async fn offer(&self, tenant: &TenantId) -> Result<(), TurnError> {
        for _ in 0..MAX_RACES {
            let now = Timestamp::now();
            match self.store.note(self.kind, tenant, now).await? {
                Noted::Live => return Ok(()),
                Noted::Replace { token } => {
                    let new = new_token();
                    self.send(tenant, &new, 0).await?;
                    if self.store.install(self.kind, tenant, token.as_deref(), &new, now).await? {
                        return Ok(());
                    }
                }
            }
        }
        Err(TurnError::Contended)
    }

    /// Serves one turn message: a slice of the tenant's work before `deadline`, then the
    /// turn passed on.
    pub async fn serve(&self, body: &str, work: &dyn TenantWork, deadline: Instant) -> Served {
        let message = match serde_json::from_str::<TurnMessage>(body) {
            Ok(m) if m.kind == self.kind => m,
            other => {
                tracing::error!(body, ?other, "not a turn message of this queue: dropped");
                return Served::Done;
            }
        };
        let Ok(tenant) = TenantId::parse(&message.tenant_id) else {
            tracing::error!(body, "a turn message without a valid tenant: dropped");
            return Served::Done;
        };
        match self.serve_turn(&tenant, &message.token, work, deadline).await {
            Ok(served) => served,
            Err(e) => {
                tracing::warn!(%tenant, kind = self.kind, error = %e, "turn not passed on; its message comes back");
                Served::Again
            }
        }
    }

    async fn serve_turn(
        &self,
        tenant: &TenantId,
        token: &str,
        work: &dyn TenantWork,
        deadline: Instant,
    ) -> Result<Served, TurnError> {
        let now = Timestamp::now();
        let hold = i64::try_from(self.hold.as_micros()).unwrap_or(i64::MAX);
        let mut take = self.store.take(self.kind, tenant, token, now, now.plus_micros(hold)).await?;
        // A message is sent before its token is recorded: one that overtook its record
        // (a newer token than the tenant's, made moments ago) waits a little for it.
        for wait in RECORD_WAITS {
            match &take {
                Take::Stale { current } if not_recorded_yet(token, current.as_deref()) => {
                    tokio::time::sleep(wait).await;
                    let now = Timestamp::now();
                    take = self.store.take(self.kind, tenant, token, now, now.plus_micros(hold)).await?;
                }
                _ => break,
            }
        }
        let (version, state) = match take {
            Take::Held { version, state } => (version, state),
            Take::Stale { current } if not_recorded_yet(token, current.as_deref()) => {
                // Still not recorded: look again in a second, while the token is young.
                self.send(tenant, token, 1).await?;
                return Ok(Served::Done);
            }
            Take::Stale { .. } => return Ok(Served::Done),
            Take::Busy => return Ok(Served::Again),
            Take::NotYet(due) => {
                // A hop of a long sleep: the same token, on.
                self.send(tenant, token, delay_seconds(due, now)).await?;
                return Ok(Served::Done);
            }
        };
        let (state, failed) = match work.slice(tenant, state.clone(), deadline).await {
            Ok(kept) => (kept, false),
            Err(e) => {
                tracing::warn!(%tenant, kind = self.kind, error = %e, "slice failed; the turn comes back shortly");
                (state, true)
            }
        };
        let mut version = Some(version);
        for _ in 0..MAX_RACES {
            let now = Timestamp::now();
            let next = if failed {
                Some(now.plus_micros(i64::try_from(AFTER_FAILURE.as_micros()).unwrap_or(0)))
            } else {
                match work.next_due(tenant).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(%tenant, kind = self.kind, error = %e, "next work unknown; looking again shortly");
                        Some(now.plus_micros(i64::try_from(AFTER_FAILURE.as_micros()).unwrap_or(0)))
                    }
                }
            };
            // Due now: no condition on the work noted, as the turn goes on at once anyway.
            let due_now = next.is_some_and(|t| t.micros() <= now.micros() + DUE_SLACK_MICROS);
            let next = match next {
                Some(due) => {
                    let new = new_token();
                    self.send(tenant, &new, delay_seconds(due, now)).await?;
                    Some((new, due.max(now)))
                }
                None => None,
            };
            let condition = if due_now { None } else { version };
            let next_ref = next.as_ref().map(|(t, d)| (t.as_str(), *d));
            match self.store.pass(self.kind, tenant, token, next_ref, state.as_deref(), condition).await? {
                Passed::Done | Passed::Lost => return Ok(Served::Done),
                // Work came meanwhile: the next pass is due now, unconditionally.
                Passed::Moved => version = None,
            }
        }
        Err(TurnError::Contended)
    }

    async fn send(&self, tenant: &TenantId, token: &str, delay_seconds: u32) -> Result<(), QueueError> {
        let body = serde_json::to_string(&TurnMessage::new(self.kind, tenant, token))
            .map_err(|e| QueueError(format!("turn message: {e}")))?;
        self.queue.send(Outgoing { body, attributes: Vec::new(), delay_seconds }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::turn::ALERTS;
    use crate::memory::{Fault, MemoryQueue, MemoryTurns};
    use std::sync::Mutex;

    /// Work that is a list of due times; a slice takes what is due, up to `per_slice`.
    #[derive(Default)]
    struct Work {
        due: Mutex<Vec<Timestamp>>,
        per_slice: usize,
        slices: Mutex<Vec<Option<String>>>,
        /// Work arriving while a slice runs: (turns, tenant) to offer it to.
        during: Mutex<Option<(Turns, TenantId)>>,
    }

    #[async_trait]
    impl TenantWork for Work {
        async fn slice(&self, _: &TenantId, state: Option<String>, _: Instant) -> Result<Option<String>, StoreError> {
            self.slices.lock().map(|mut s| s.push(state.clone())).ok();
            let now = Timestamp::now();
            if let Ok(mut due) = self.due.lock() {
                let mut taken = 0;
                due.retain(|t| {
                    let take = *t <= now && taken < self.per_slice.max(1);
                    taken += usize::from(take);
                    !take
                });
            }
            let arriving = self.during.lock().ok().and_then(|mut d| d.take());
            if let Some((turns, tenant)) = arriving {
                self.due.lock().map(|mut d| d.push(now)).ok();
                turns.offer(&tenant).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
            }
            Ok(Some(format!("{}", state.as_deref().unwrap_or("").len() + 1)))
        }

        async fn next_due(&self, _: &TenantId) -> Result<Option<Timestamp>, StoreError> {
            Ok(self.due.lock().ok().and_then(|d| d.iter().min().copied()))
        }
    }

    fn setup() -> (Turns, Arc<MemoryTurns>, Arc<MemoryQueue>, TenantId) {
        let store = Arc::new(MemoryTurns::default());
        let queue = Arc::new(MemoryQueue::default());
        let turns = Turns { kind: ALERTS, store: store.clone(), queue: queue.clone(), hold: Duration::from_secs(60) };
        (turns, store, queue, TenantId::parse("acme").unwrap_or_else(|_| unreachable!()))
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn work_offered_many_times_makes_one_turn_which_ends_when_nothing_is_left() {
        let (turns, store, queue, tenant) = setup();
        let work = Work { per_slice: 10, ..Work::default() };
        work.due.lock().map(|mut d| d.push(Timestamp::now())).ok();
        for _ in 0..5 {
            turns.offer(&tenant).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let messages = queue.receive();
        assert_eq!(messages.len(), 1);
        assert_eq!(turns.serve(&messages[0].body, &work, later()).await, Served::Done);
        assert_eq!(store.token(ALERTS, &tenant), None);
        assert_eq!(queue.waiting(), 0);
        // The same message again (delivered twice): stale, dropped, nothing done.
        assert_eq!(turns.serve(&messages[0].body, &work, later()).await, Served::Done);
        assert_eq!(work.slices.lock().map(|s| s.len()).unwrap_or_default(), 1);
    }

    #[tokio::test]
    async fn a_turn_with_more_due_goes_to_the_back_and_keeps_its_state() {
        let (turns, _, queue, tenant) = setup();
        let work = Work { per_slice: 1, ..Work::default() };
        work.due.lock().map(|mut d| d.extend([Timestamp::now(), Timestamp::now()])).ok();
        turns.offer(&tenant).await.unwrap_or_else(|e| panic!("{e}"));
        let first = queue.receive();
        turns.serve(&first[0].body, &work, later()).await;
        let second = queue.receive();
        assert_eq!(second.len(), 1, "passed on, due now");
        assert_ne!(second[0].body, first[0].body, "with a new token");
        turns.serve(&second[0].body, &work, later()).await;
        assert_eq!(work.slices.lock().map(|s| s.clone()).unwrap_or_default(), [None, Some("1".to_owned())]);
        assert_eq!(queue.waiting(), 0);
    }

    #[tokio::test]
    async fn a_sleeping_turn_wakes_for_new_work_and_its_old_message_is_dropped() {
        let (turns, store, queue, tenant) = setup();
        let work = Work { per_slice: 10, ..Work::default() };
        work.due.lock().map(|mut d| d.extend([Timestamp::now(), Timestamp::now().plus_seconds(3600)])).ok();
        turns.offer(&tenant).await.unwrap_or_else(|e| panic!("{e}"));
        turns.serve(&queue.receive()[0].body, &work, later()).await;
        let asleep = queue.messages().last().cloned().unwrap_or_else(|| panic!("a message"));
        assert_eq!(asleep.delay_seconds, 900, "a long sleep, one hop at a time");
        let sleeping = store.token(ALERTS, &tenant);
        turns.offer(&tenant).await.unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(store.token(ALERTS, &tenant), sleeping, "replaced by a turn due now");
        let awake = queue.receive();
        assert_eq!(awake.len(), 1);
        assert_eq!(turns.serve(&asleep.body, &work, later()).await, Served::Done);
        assert_eq!(work.slices.lock().map(|s| s.len()).unwrap_or_default(), 1, "the old message did nothing");
        assert_eq!(turns.serve(&awake[0].body, &work, later()).await, Served::Done);
        assert_eq!(work.slices.lock().map(|s| s.len()).unwrap_or_default(), 2);
    }

    #[tokio::test]
    async fn work_noted_while_the_turn_is_held_is_never_left_without_a_turn() {
        let (turns, store, queue, tenant) = setup();
        let work = Work { per_slice: 10, ..Work::default() };
        work.due.lock().map(|mut d| d.push(Timestamp::now())).ok();
        turns.offer(&tenant).await.unwrap_or_else(|e| panic!("{e}"));
        // While the slice runs, new work arrives and is noted against the held turn.
        work.during.lock().map(|mut d| *d = Some((turns.clone(), tenant.clone()))).ok();
        turns.serve(&queue.receive()[0].body, &work, later()).await;
        let next = queue.receive();
        assert_eq!(next.len(), 1, "the turn went on for the new work");
        turns.serve(&next[0].body, &work, later()).await;
        assert_eq!(store.token(ALERTS, &tenant), None);
        assert!(work.due.lock().map(|d| d.is_empty()).unwrap_or_default());
    }

    #[tokio::test]
    async fn a_held_turn_is_left_for_later_and_a_failed_pass_leaves_the_message() {
        let (turns, store, queue, tenant) = setup();
        let work = Work { per_slice: 10, ..Work::default() };
        turns.offer(&tenant).await.unwrap_or_else(|e| panic!("{e}"));
        let m = queue.receive();
        let token = store.token(ALERTS, &tenant).unwrap_or_default();
        let now = Timestamp::now();
        assert!(matches!(store.take(ALERTS, &tenant, &token, now, now.plus_seconds(60)).await, Ok(Take::Held { .. })));
        assert_eq!(turns.serve(&m[0].body, &work, later()).await, Served::Again, "another worker holds it");
        let (turns, store, queue, tenant) = setup();
        turns.offer(&tenant).await.unwrap_or_else(|e| panic!("{e}"));
        store.faults.add(Fault::after("pass", 0).unavailable().times(1));
        assert_eq!(turns.serve(&queue.receive()[0].body, &work, later()).await, Served::Again);
        assert!(store.token(ALERTS, &tenant).is_some(), "the turn is still there, its message comes back");
    }

    #[tokio::test]
    async fn a_message_that_overtakes_its_turns_record_waits_for_it_and_an_old_one_is_dropped() {
        let (turns, store, queue, tenant) = setup();
        let work = Work { per_slice: 10, ..Work::default() };
        // The message is sent; its token is recorded only a moment later.
        let token = new_token();
        turns.send(&tenant, &token, 0).await.unwrap_or_else(|e| panic!("{e}"));
        let recording = {
            let (store, tenant, token) = (store.clone(), tenant.clone(), token.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                store.install(ALERTS, &tenant, None, &token, Timestamp::now()).await
            })
        };
        let m = queue.receive();
        assert_eq!(turns.serve(&m[0].body, &work, later()).await, Served::Done);
        assert!(matches!(recording.await, Ok(Ok(true))));
        assert_eq!(work.slices.lock().map(|s| s.len()).unwrap_or_default(), 1, "served once recorded");
        // A turn that ended: its message again is stale, however young.
        assert_eq!(turns.serve(&m[0].body, &work, later()).await, Served::Done);
        assert_eq!(queue.waiting(), 0);
        // A token never recorded and older than a minute is dropped at once.
        let old = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_600_000_000, 0)).to_string();
        let body = serde_json::to_string(&TurnMessage::new(ALERTS, &tenant, &old)).unwrap_or_default();
        assert_eq!(turns.serve(&body, &work, later()).await, Served::Done);
        assert_eq!(queue.waiting(), 0);
    }

    #[tokio::test]
    async fn messages_that_are_not_turns_are_dropped() {
        let (turns, _, _, _) = setup();
        let work = Work::default();
        for body in [
            "{}",
            "not json",
            r#"{"kind":"streams","tenant_id":"a","token":"t"}"#,
            r#"{"kind":"alerts","tenant_id":"a#b","token":"t"}"#,
        ] {
            assert_eq!(turns.serve(body, &work, later()).await, Served::Done, "{body}");
        }
    }
}
