//! The one k-way merge: several streams, each already in `(occurred_at, id)` order, read
//! as one stream in that order (or its reverse), an item met twice given once.
//!
//! Index partitions are streams ([`PartitionStream`]): the console's pages merge them
//! across shards and key values, the archive merges a day's shards, an export merges its
//! query's partitions. An export also merges a day's archived parts, and the online side
//! with the archived side, where an event can be in both while an archive run is between
//! its manifest and its deletes.

use crate::domain::budget::{Budget, Reserve};
use crate::domain::event::StoredEvent;
use crate::domain::filter::{Filter, Order};
use crate::domain::plan::{EventKey, Partition, Path};
use crate::domain::row::Row;
use crate::domain::tenant::TenantId;
use crate::ports::{EventIndex, EventReader, FETCH_MAX, IndexEntry, IndexQuery, StoreError};
use async_trait::async_trait;
use std::collections::VecDeque;

/// An item with its place in the order.
pub trait Keyed {
    /// `(occurred_at in microseconds, id)`.
    fn key(&self) -> (i64, &str);
}

impl Keyed for StoredEvent {
    fn key(&self) -> (i64, &str) {
        StoredEvent::key(self)
    }
}

impl Keyed for IndexEntry {
    fn key(&self) -> (i64, &str) {
        self.key.key()
    }
}

impl Keyed for Row<'_> {
    fn key(&self) -> (i64, &str) {
        Row::key(self)
    }
}

/// A stream in key order that fills itself a batch at a time.
#[async_trait]
pub trait Sorted: Send {
    type Item: Keyed + Send;
    type Error: Send;

    /// The next item, if one is at hand.
    fn head(&self) -> Option<&Self::Item>;
    /// Takes the next item.
    fn pop(&mut self) -> Option<Self::Item>;
    /// Whether nothing will come beyond what is at hand.
    fn exhausted(&self) -> bool;
    /// Whether the stream may not read any more in this request (its budget is spent):
    /// a merge then stops, since it cannot know what the stream would have given.
    fn blocked(&self) -> bool {
        false
    }
    /// Reads more; called when nothing is at hand and the stream is neither exhausted nor
    /// blocked. May read nothing (a page the filter emptied) and be called again.
    async fn fill(&mut self) -> Result<(), Self::Error>;
}

#[async_trait]
impl<S: Sorted + ?Sized> Sorted for Box<S> {
    type Item = S::Item;
    type Error = S::Error;

    fn head(&self) -> Option<&S::Item> {
        (**self).head()
    }
    fn pop(&mut self) -> Option<S::Item> {
        (**self).pop()
    }
    fn exhausted(&self) -> bool {
        (**self).exhausted()
    }
    fn blocked(&self) -> bool {
        (**self).blocked()
    }
    async fn fill(&mut self) -> Result<(), S::Error> {
        (**self).fill().await
    }
}

/// A stream that yields its items one at a time, in key order; [`Ahead`] makes it
/// [`Sorted`].
#[async_trait]
pub trait Pull: Send {
    type Item: Keyed + Send;
    type Error: Send;

    /// The next item, or `None` at the end.
    async fn pull(&mut self) -> Result<Option<Self::Item>, Self::Error>;
}

/// A [`Pull`] stream with its next item at hand.
pub struct Ahead<P: Pull> {
    inner: P,
    head: Option<P::Item>,
    done: bool,
}

impl<P: Pull> Ahead<P> {
    #[must_use]
    pub fn new(inner: P) -> Self {
        Self { inner, head: None, done: false }
    }

    #[must_use]
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

#[async_trait]
impl<P: Pull> Sorted for Ahead<P> {
    type Item = P::Item;
    type Error = P::Error;

    fn head(&self) -> Option<&P::Item> {
        self.head.as_ref()
    }
    fn pop(&mut self) -> Option<P::Item> {
        self.head.take()
    }
    fn exhausted(&self) -> bool {
        self.done
    }
    async fn fill(&mut self) -> Result<(), P::Error> {
        self.head = self.inner.pull().await?;
        self.done = self.head.is_none();
        Ok(())
    }
}

/// Streams merged into one, in `order`.
pub struct Merge<S> {
    streams: Vec<S>,
    order: Order,
    last: Option<(i64, String)>,
    blocked: bool,
}

impl<S: Sorted> Merge<S> {
    #[must_use]
    pub fn new(streams: Vec<S>, order: Order) -> Self {
        Self { streams, order, last: None, blocked: false }
    }

    #[must_use]
    pub fn streams(&self) -> &[S] {
        &self.streams
    }

    /// Whether the merge stopped because a stream may read no more ([`Sorted::blocked`]),
    /// rather than at the end.
    #[must_use]
    pub fn blocked(&self) -> bool {
        self.blocked
    }

    /// The next item and the stream it came from, or `None` at the end or when a stream
    /// with nothing at hand is blocked ([`Merge::blocked`] tells which). Every stream
    /// with nothing at hand is filled first, together; on equal keys the earlier stream
    /// wins and the later copy is dropped.
    ///
    /// # Errors
    /// The first error of a fill.
    pub async fn next(&mut self) -> Result<Option<(usize, S::Item)>, S::Error> {
        loop {
            loop {
                let empty = self.streams.iter_mut().filter(|s| s.head().is_none() && !s.exhausted() && !s.blocked());
                let fills: Vec<_> = empty.map(|s| s.fill()).collect();
                if fills.is_empty() {
                    break;
                }
                for r in futures::future::join_all(fills).await {
                    r?;
                }
            }
            if self.streams.iter().any(|s| s.head().is_none() && !s.exhausted()) {
                self.blocked = true;
                return Ok(None);
            }
            let mut best: Option<(usize, (i64, &str))> = None;
            for (i, s) in self.streams.iter().enumerate() {
                let Some(key) = s.head().map(Keyed::key) else { continue };
                let better = match (best, self.order) {
                    (None, _) => true,
                    (Some((_, b)), Order::Asc) => key < b,
                    (Some((_, b)), Order::Desc) => key > b,
                };
                if better {
                    best = Some((i, key));
                }
            }
            let Some((i, _)) = best else { return Ok(None) };
            let Some(item) = self.streams[i].pop() else { return Ok(None) };
            let (t, id) = item.key();
            if self.last.as_ref().is_some_and(|(lt, lid)| *lt == t && lid == id) {
                continue;
            }
            self.last = Some((t, id.to_owned()));
            return Ok(Some((i, item)));
        }
    }
}

/// How many entries a partition read asks for.
#[derive(Debug, Clone, Copy)]
pub struct Fetch {
    /// `limit` of the first read.
    pub first: usize,
    /// Largest `limit`: a read the filter left short grows the next one eightfold up to
    /// this, so a sparse filter costs a few large reads rather than many small ones.
    pub most: usize,
}

/// What every stream of one merge reads: one path of a tenant's index, filtered, in one
/// order, so many `limit`s at a time, within one budget.
#[derive(Clone, Copy)]
pub struct IndexRead<'a> {
    pub index: &'a dyn EventIndex,
    pub tenant: &'a TenantId,
    pub path: Path,
    pub filter: &'a Filter,
    pub order: Order,
    pub fetch: Fetch,
    /// The request's budget, if it has one: a stream that finds it spent stops
    /// ([`Sorted::blocked`]).
    pub budget: Option<&'a Budget>,
    /// What a stream leaves in the budget for the work that follows its reads (the fetch
    /// of a page's events).
    pub reserve: Reserve,
}

impl<'a> IndexRead<'a> {
    /// One partition's stream, from `after` (exclusive); `done` for one a previous page
    /// finished.
    #[must_use]
    pub fn stream(&self, partition: Partition, after: Option<EventKey>, done: bool) -> PartitionStream<'a> {
        PartitionStream {
            read: *self,
            partition,
            after,
            evaluated: None,
            started: false,
            exhausted: done,
            blocked: false,
            buf: VecDeque::new(),
            limit: self.fetch.first.max(1),
            requests: 0,
            items_read: 0,
        }
    }

    /// The partitions merged, each read from its start.
    #[must_use]
    pub fn merge(&self, partitions: impl IntoIterator<Item = Partition>) -> Merge<PartitionStream<'a>> {
        Merge::new(partitions.into_iter().map(|p| self.stream(p, None, false)).collect(), self.order)
    }

    /// The partitions merged, as events: what the archive and exports read.
    #[must_use]
    pub fn events(&self, partitions: impl IntoIterator<Item = Partition>, reader: &'a dyn EventReader) -> Events<'a> {
        Events { merge: self.merge(partitions), reader, tenant: self.tenant, ready: VecDeque::new(), ended: false }
    }
}

/// One index partition read page by page.
pub struct PartitionStream<'a> {
    read: IndexRead<'a>,
    partition: Partition,
    /// Where the stream resumes (a cursor's position), before the first read.
    after: Option<EventKey>,
    /// The last key the previous read evaluated.
    evaluated: Option<EventKey>,
    started: bool,
    exhausted: bool,
    /// The budget refused the next read.
    blocked: bool,
    buf: VecDeque<IndexEntry>,
    limit: usize,
    /// Reads made and items they read, for a page's cost.
    pub requests: u32,
    pub items_read: u32,
}

impl PartitionStream<'_> {
    #[must_use]
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Where a next page should resume this stream: past `taken` (the last entry this
    /// page took from it), or, with nothing left buffered, past the last key evaluated (so
    /// what the filter dropped is not read again).
    #[must_use]
    pub fn resume_at(&self, taken: Option<EventKey>) -> Option<EventKey> {
        match (&self.evaluated, self.buf.is_empty()) {
            (Some(e), true) => Some(e.clone()),
            _ => taken.or_else(|| self.after.clone()),
        }
    }

    /// Where this page started the stream (what a cursor said, if anything).
    #[must_use]
    pub fn started_after(&self) -> Option<EventKey> {
        self.after.clone()
    }

    /// Whether nothing is left: none buffered and none to read.
    #[must_use]
    pub fn done(&self) -> bool {
        self.buf.is_empty() && self.exhausted
    }
}

#[async_trait]
impl Sorted for PartitionStream<'_> {
    type Item = IndexEntry;
    type Error = StoreError;

    fn head(&self) -> Option<&IndexEntry> {
        self.buf.front()
    }

    fn pop(&mut self) -> Option<IndexEntry> {
        self.buf.pop_front()
    }

    fn exhausted(&self) -> bool {
        self.exhausted
    }

    fn blocked(&self) -> bool {
        self.blocked
    }

    async fn fill(&mut self) -> Result<(), StoreError> {
        let r = &self.read;
        let limit = match r.budget {
            Some(b) => match b.grant(self.limit, r.reserve) {
                Some(limit) => limit,
                None => {
                    self.blocked = true;
                    return Ok(());
                }
            },
            None => self.limit,
        };
        let after = if self.started { self.evaluated.as_ref() } else { self.after.as_ref() };
        let q = IndexQuery {
            tenant: r.tenant,
            path: r.path,
            partition: &self.partition,
            filter: r.filter,
            order: r.order,
            after,
            limit,
        };
        let page = r.index.page(&q).await;
        if let Some(b) = r.budget {
            b.refund(limit, page.as_ref().map_or(0, |p| p.read as usize));
        }
        let page = page?;
        self.requests += 1;
        self.items_read += page.read;
        if page.entries.len() < limit && page.last_evaluated.is_some() {
            self.limit = (self.limit * 8).min(r.fetch.most.max(r.fetch.first));
        }
        self.started = true;
        self.exhausted = page.last_evaluated.is_none();
        self.evaluated = page.last_evaluated;
        self.buf.extend(page.entries);
        Ok(())
    }
}

/// Index partitions merged as events: each entry's event, from the index when it holds
/// it, else fetched from the table in batches of [`FETCH_MAX`] entries in merge order.
/// An event that is no longer online (archived a moment ago) or that is not the
/// tenant's is left out.
pub struct Events<'a> {
    merge: Merge<PartitionStream<'a>>,
    reader: &'a dyn EventReader,
    tenant: &'a TenantId,
    ready: VecDeque<(usize, StoredEvent)>,
    ended: bool,
}

impl Events<'_> {
    /// Index reads made so far, across partitions.
    #[must_use]
    pub fn reads(&self) -> u32 {
        self.merge.streams().iter().map(|s| s.requests).sum()
    }

    /// The next event and the partition it came from, or `None` at the end.
    ///
    /// # Errors
    /// [`StoreError`] from a read or a fetch.
    pub async fn next(&mut self) -> Result<Option<(usize, StoredEvent)>, StoreError> {
        while self.ready.is_empty() && !self.ended {
            let mut batch = Vec::with_capacity(FETCH_MAX);
            while batch.len() < FETCH_MAX {
                match self.merge.next().await? {
                    Some(entry) => batch.push(entry),
                    None => {
                        self.ended = true;
                        break;
                    }
                }
            }
            for (i, event) in with_events(self.reader, self.tenant, batch).await? {
                if let Some(event) = event.filter(|e| owned_by(self.tenant, e)) {
                    self.ready.push_back((i, event));
                }
            }
        }
        Ok(self.ready.pop_front())
    }
}

/// Entries with their events: those the index did not hold fetched in one batch (the
/// caller keeps batches within [`FETCH_MAX`]).
///
/// # Errors
/// [`StoreError`] from the fetch.
pub async fn with_events(
    reader: &dyn EventReader,
    tenant: &TenantId,
    entries: Vec<(usize, IndexEntry)>,
) -> Result<Vec<(usize, Option<StoredEvent>)>, StoreError> {
    let missing: Vec<&str> =
        entries.iter().filter(|(_, e)| e.event.is_none()).map(|(_, e)| e.key.id.as_str()).collect();
    let mut fetched = if missing.is_empty() { Vec::new() } else { reader.fetch(tenant, &missing).await? }.into_iter();
    Ok(entries.into_iter().map(|(i, e)| (i, e.event.or_else(|| fetched.next().flatten()))).collect())
}

/// Whether a stored event is the tenant's, as its key says it must be. A store bug, or an
/// item written under the wrong key, must never show one tenant's event to another, so
/// every read checks what the event itself says (and logs what it drops).
#[must_use]
pub fn owned_by(tenant: &TenantId, stored: &StoredEvent) -> bool {
    let ours = stored.event.tenant_id == *tenant;
    if !ours {
        tracing::error!(%tenant, stored_tenant = %stored.event.tenant_id, id = %stored.event.id,
            "an item under this tenant's key holds another tenant's event; not served");
    }
    ours
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream over a fixed list, filled `per_fill` at a time.
    struct List {
        items: VecDeque<Row<'static>>,
        at_hand: VecDeque<Row<'static>>,
        per_fill: usize,
        fills: usize,
        /// Fills that read nothing before the items come.
        empty_fills: usize,
    }

    fn row(t: i64, id: &str) -> Row<'static> {
        let mut r = Row { occurred_at: t, received_at: 0, s: Default::default() };
        r.s[crate::domain::row::col::ID] = Some(id.to_owned().into());
        r
    }

    fn list(keys: &[(i64, &str)], per_fill: usize) -> List {
        let items = keys.iter().map(|(t, id)| row(*t, id)).collect();
        List { items, at_hand: VecDeque::new(), per_fill, fills: 0, empty_fills: 0 }
    }

    #[async_trait]
    impl Sorted for List {
        type Item = Row<'static>;
        type Error = ();
        fn head(&self) -> Option<&Row<'static>> {
            self.at_hand.front()
        }
        fn pop(&mut self) -> Option<Row<'static>> {
            self.at_hand.pop_front()
        }
        fn exhausted(&self) -> bool {
            self.items.is_empty()
        }
        async fn fill(&mut self) -> Result<(), ()> {
            self.fills += 1;
            if self.empty_fills > 0 {
                self.empty_fills -= 1;
                return Ok(());
            }
            for _ in 0..self.per_fill {
                self.at_hand.extend(self.items.pop_front());
            }
            Ok(())
        }
    }

    async fn drain(mut m: Merge<List>) -> Vec<(usize, i64, String)> {
        let mut out = Vec::new();
        while let Ok(Some((i, r))) = m.next().await {
            let (t, id) = r.key();
            out.push((i, t, id.to_owned()));
        }
        out
    }

    #[tokio::test]
    async fn merges_in_order_either_way_and_drops_the_second_copy() {
        let a = [(1, "a"), (3, "a"), (5, "x")];
        let b = [(2, "b"), (3, "a"), (3, "b"), (6, "b")];
        let got = drain(Merge::new(vec![list(&a, 1), list(&b, 2)], Order::Asc)).await;
        let keys: Vec<(i64, &str)> = got.iter().map(|(_, t, id)| (*t, id.as_str())).collect();
        assert_eq!(keys, vec![(1, "a"), (2, "b"), (3, "a"), (3, "b"), (5, "x"), (6, "b")]);
        // The copy in both comes from the first stream.
        assert_eq!(got[2].0, 0);
        let desc_a = [(5, "x"), (3, "a"), (1, "a")];
        let desc_b = [(6, "b"), (3, "b"), (3, "a"), (2, "b")];
        let got = drain(Merge::new(vec![list(&desc_a, 3), list(&desc_b, 1)], Order::Desc)).await;
        let keys: Vec<(i64, &str)> = got.iter().map(|(_, t, id)| (*t, id.as_str())).collect();
        assert_eq!(keys, vec![(6, "b"), (5, "x"), (3, "b"), (3, "a"), (2, "b"), (1, "a")]);
    }

    #[tokio::test]
    async fn streams_that_fill_empty_are_filled_again_and_empty_ones_end() {
        let mut sparse = list(&[(1, "a"), (2, "b")], 1);
        sparse.empty_fills = 2;
        let mut m = Merge::new(vec![list(&[], 1), sparse, list(&[(0, "z")], 5)], Order::Asc);
        let first = m.next().await.ok().flatten().map(|(i, r)| (i, r.key().0));
        assert_eq!(first, Some((2, 0)));
        assert_eq!(m.streams()[1].fills, 3);
        assert_eq!(m.streams()[0].fills, 0);
        let rest = drain(m).await;
        assert_eq!(rest.iter().map(|(i, t, _)| (*i, *t)).collect::<Vec<_>>(), vec![(1, 1), (1, 2)]);
    }
}
