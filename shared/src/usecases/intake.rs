//! What the consumers of the table's stream share: walking a batch of new events in
//! order, handing what each one gives rise to over in chunks, and stopping before the
//! invocation's deadline with a partial batch response that names the first record not
//! handed over (the stream delivers it again, with those after it).
//!
//! Handing over must be idempotent: a record read again (a retried or bisected batch)
//! hands over the same things once more.

use crate::domain::event::StoredEvent;
use std::future::Future;
use std::time::{Duration, Instant};

/// What a batch keeps back for handing over what it has gathered before its deadline.
const HAND_OVER_TIME: Duration = Duration::from_secs(5);

/// One record of a stream batch, as the handler read it.
#[derive(Debug)]
pub struct Record {
    /// What a partial batch response names.
    pub sequence: String,
    /// The event the record brings in, if it is a new event.
    pub event: Option<StoredEvent>,
}

/// Walks `records` in order: `gather` turns each new event into items (none: nothing to
/// do for it), `hand_over` takes the gathered items whenever `chunk` of them are pending
/// and at the end. Returns the sequence number of the first record not handed over, or
/// `None` when every one was.
pub async fn in_order<T, E, G, GF, H, HF>(
    records: Vec<Record>,
    deadline: Instant,
    chunk: usize,
    mut gather: G,
    mut hand_over: H,
) -> Option<String>
where
    E: std::fmt::Display,
    G: FnMut(StoredEvent) -> GF,
    GF: Future<Output = Result<Vec<T>, E>>,
    H: FnMut(Vec<T>) -> HF,
    HF: Future<Output = Result<(), E>>,
{
    let stop = deadline.checked_sub(HAND_OVER_TIME).unwrap_or(deadline);
    // Items not yet handed over, and the first record they came from.
    let mut pending: Vec<T> = Vec::new();
    let mut first_pending: Option<String> = None;
    let mut flush = async |pending: &mut Vec<T>, first_pending: &mut Option<String>| -> Option<String> {
        if pending.is_empty() {
            *first_pending = None;
            return None;
        }
        match hand_over(std::mem::take(pending)).await {
            Ok(()) => {
                *first_pending = None;
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "not handed over; the stream reads the batch again from here");
                first_pending.take()
            }
        }
    };
    for record in records {
        if Instant::now() >= stop {
            return flush(&mut pending, &mut first_pending).await.or(Some(record.sequence));
        }
        let Some(event) = record.event else { continue };
        let id = event.event.id.clone();
        match gather(event).await {
            Ok(items) if items.is_empty() => {}
            Ok(items) => {
                first_pending.get_or_insert(record.sequence);
                pending.extend(items);
                if pending.len() >= chunk
                    && let Some(failed) = flush(&mut pending, &mut first_pending).await
                {
                    return Some(failed);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, event = %id, "not gathered; the stream reads the batch again from here");
                return flush(&mut pending, &mut first_pending).await.or(Some(record.sequence));
            }
        }
    }
    flush(&mut pending, &mut first_pending).await
}
