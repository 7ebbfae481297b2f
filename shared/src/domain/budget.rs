//! Read budgets: every read request stops after a bounded amount of work and answers
//! with what it has, a cursor to go on from, and `budget_exhausted: true`. Without them
//! a `q` with no hits over a long range, or a count of a busy tenant, reads until API
//! Gateway's 30 s are gone.
//!
//! Work is counted in store requests and items read (index entries evaluated plus events
//! fetched). The streams of one request share one [`Budget`], so a merge of many
//! partitions spends it together.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Most work one request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Store requests (one Query page, one BatchGetItem, ...).
    pub requests: u32,
    /// Items read: index entries evaluated plus events fetched.
    pub items: u32,
}

impl Limits {
    /// These limits, raised so that each of `streams` partitions gets its first read and
    /// `reserve` requests remain: a merge can only answer once every partition has been
    /// read, so a page over many partitions must be able to read each once to make any
    /// progress. The planner bounds the partitions a filter reads ([`crate::domain::plan::MAX_STREAMS`]).
    #[must_use]
    pub fn for_streams(self, streams: usize, reserve: u32) -> Self {
        let needed = u32::try_from(streams).unwrap_or(u32::MAX).saturating_add(reserve);
        Self { requests: self.requests.max(needed), items: self.items }
    }
}

/// `GET /v1/events`: a page.
pub const LIST: Limits = Limits { requests: 20, items: 10_000 };
/// `GET /v1/events/count`: enough to count 100,000 index entries exactly.
pub const COUNT: Limits = Limits { requests: 40, items: 120_000 };
/// `GET /v1/actions` and `GET /v1/actors`: a page of a catalog.
pub const CATALOG: Limits = Limits { requests: 10, items: 5_000 };
/// Most bytes of a page's JSON body. Lambda answers at most 6 MB, and the response
/// envelope escapes the body again (each `"` and `\` doubles at worst), so a page stops
/// before 2 MiB: at least 31 events of the largest size fit.
pub const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Every budget of the read API, in one place so a test can shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub list: Limits,
    pub count: Limits,
    pub catalog: Limits,
    pub page_bytes: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Self { list: LIST, count: COUNT, catalog: CATALOG, page_bytes: PAGE_BYTES }
    }
}

/// Work a read leaves in the budget for what must follow it (the fetch of a page's
/// events, say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserve {
    pub requests: u32,
    pub items: usize,
}

/// What one request has left, shared by every stream it reads.
#[derive(Debug)]
pub struct Budget {
    requests: AtomicU32,
    items: AtomicU32,
    spent_requests: AtomicU32,
    spent_items: AtomicU32,
    exhausted: AtomicBool,
}

impl Budget {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            requests: AtomicU32::new(limits.requests),
            items: AtomicU32::new(limits.items),
            spent_requests: AtomicU32::new(0),
            spent_items: AtomicU32::new(0),
            exhausted: AtomicBool::new(false),
        }
    }

    /// No limit: what the archive and exports read with (they have their own deadlines).
    #[must_use]
    pub fn unlimited() -> Self {
        Self::new(Limits { requests: u32::MAX, items: u32::MAX })
    }

    /// Takes one request that reads at most `want` items, leaving `reserve` for later
    /// work: how many items it may read, or `None` (and the budget is exhausted) when
    /// there is no room. A grant is paid up front; [`Budget::refund`] returns what a read
    /// did not use.
    pub fn grant(&self, want: usize, reserve: Reserve) -> Option<usize> {
        let want = u32::try_from(want.max(1)).unwrap_or(u32::MAX);
        let keep = u32::try_from(reserve.items).unwrap_or(u32::MAX);
        let took_request = self
            .requests
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| (r > reserve.requests).then(|| r - 1))
            .is_ok();
        let mut granted = 0;
        let took_items = took_request
            && self
                .items
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |i| {
                    granted = i.saturating_sub(keep).min(want);
                    (granted > 0).then(|| i - granted)
                })
                .is_ok();
        if !took_items {
            if took_request {
                self.requests.fetch_add(1, Ordering::SeqCst);
            }
            self.exhausted.store(true, Ordering::SeqCst);
            return None;
        }
        self.spent_requests.fetch_add(1, Ordering::SeqCst);
        self.spent_items.fetch_add(granted, Ordering::SeqCst);
        Some(granted as usize)
    }

    /// Takes `requests` and exactly `items`, or nothing (and the budget is exhausted).
    pub fn take(&self, requests: u32, items: usize) -> bool {
        let items = u32::try_from(items).unwrap_or(u32::MAX);
        let fits = self.requests.load(Ordering::SeqCst) >= requests && self.items.load(Ordering::SeqCst) >= items;
        if !fits {
            self.exhausted.store(true, Ordering::SeqCst);
            return false;
        }
        self.requests.fetch_sub(requests, Ordering::SeqCst);
        self.items.fetch_sub(items, Ordering::SeqCst);
        self.spent_requests.fetch_add(requests, Ordering::SeqCst);
        self.spent_items.fetch_add(items, Ordering::SeqCst);
        true
    }

    /// Returns the part of a grant of `granted` items that a read of `read` did not use.
    pub fn refund(&self, granted: usize, read: usize) {
        let unused = u32::try_from(granted.saturating_sub(read)).unwrap_or(u32::MAX);
        self.items.fetch_add(unused, Ordering::SeqCst);
        // The grant added at least `unused` to the spending.
        self.spent_items.fetch_sub(unused, Ordering::SeqCst);
    }

    /// Marks the budget as having ended the request (another limit, such as the page's
    /// bytes, stopped it).
    pub fn exhaust(&self) {
        self.exhausted.store(true, Ordering::SeqCst);
    }

    /// Whether a read was refused, so the request stopped early.
    #[must_use]
    pub fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::SeqCst)
    }

    /// `(requests, items)` spent so far.
    #[must_use]
    pub fn spent(&self) -> (u32, u32) {
        (self.spent_requests.load(Ordering::SeqCst), self.spent_items.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_stop_at_either_limit_and_say_so() {
        let none = Reserve::default();
        let b = Budget::new(Limits { requests: 3, items: 25 });
        assert_eq!(b.grant(10, none), Some(10));
        b.refund(10, 4);
        assert_eq!(b.spent(), (1, 4));
        assert_eq!(b.grant(100, none), Some(21));
        assert!(!b.exhausted());
        assert_eq!(b.grant(1, none), None, "no items left");
        assert!(b.exhausted());
        let r = Budget::new(Limits { requests: 3, items: 100 });
        let keep = Reserve { requests: 1, items: 90 };
        assert_eq!(r.grant(50, keep), Some(10), "items are kept for what follows");
        assert_eq!(r.grant(5, keep), None, "nothing left but the reserve");
        assert!(r.take(1, 90));
        assert!(!r.take(1, 1));
        assert_eq!(r.spent(), (2, 100));
    }

    #[test]
    fn every_stream_gets_its_first_read() {
        assert_eq!(LIST.for_streams(64, 2).requests, 66);
        assert_eq!(LIST.for_streams(1, 2), LIST);
    }
}
