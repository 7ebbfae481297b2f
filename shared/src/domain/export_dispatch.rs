//! Fair exports: what one tenant's exports may hold of the shared workers.
//!
//! Each tenant has one dispatch record: the jobs it has queued or running (`active`, at
//! most [`Limits::active`], checked when a job is asked for) and the work running now
//! (`running`, at most [`Limits::running`] holders, each a lease). A worker claims a
//! running slot before it runs a job; when the tenant has none free it puts the job back
//! on the queue a little later and takes the next message, so one tenant's backlog passes
//! by and another tenant's first export runs. A lease ends by itself, so a crashed
//! worker's slot frees itself. A holder is any unit of work: a job's id today, a part's
//! `{job}/{part}` once big exports are split, so the running limit counts parts too.
//!
//! Every change bumps `version`; the store writes a change only over the version it was
//! computed from, so concurrent workers and requests never lose each other's changes.

use crate::domain::timestamp::Timestamp;
use std::collections::BTreeMap;

/// A worker's lease on a running slot: longer than the export worker's 15-minute time
/// limit, so a live run never loses its slot, and a dead one's frees itself after it.
pub const LEASE_SECONDS: i64 = 16 * 60;
/// How long a job waits on the queue again when its tenant's slots are all taken.
pub const REQUEUE_SECONDS: u32 = 15;
/// What `Retry-After` says to a tenant at its limit of queued and running exports.
pub const RETRY_AFTER_SECONDS: u32 = 30;
/// An active job whose record is missing this long after its admission was never created
/// (the request died between the two writes): its place is given back.
pub const ORPHAN_SECONDS: i64 = 60;

/// Per-tenant limits (`AUDIT_EXPORT_ACTIVE_PER_TENANT`, `AUDIT_EXPORT_RUNNING_PER_TENANT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most jobs queued or running at once; past it `POST /v1/exports` answers 429.
    pub active: u32,
    /// Most units of work running at once. The workers' concurrency must exceed it, so
    /// that the workers a tenant cannot use serve the other tenants.
    pub running: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { active: 10, running: 2 }
    }
}

/// One tenant's dispatch record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatch {
    /// Jobs queued or running, by id, with when each was admitted.
    pub active: BTreeMap<String, Timestamp>,
    /// Work running now, by holder, with when its lease ends.
    pub running: BTreeMap<String, Timestamp>,
    /// The record's version: 0 while there is none.
    pub version: u64,
}

impl Dispatch {
    fn next(&self) -> Self {
        let mut d = self.clone();
        d.version += 1;
        d
    }

    /// The record with job `id` admitted at `now`; `None` when the tenant already has
    /// `limits.active` jobs queued or running.
    #[must_use]
    pub fn admit(&self, id: &str, now: Timestamp, limits: Limits) -> Option<Self> {
        if self.active.contains_key(id) || self.active.len() >= limits.active as usize {
            return None;
        }
        let mut d = self.next();
        d.active.insert(id.to_owned(), now);
        Some(d)
    }

    /// The record with a running slot leased to `holder` until `now` + [`LEASE_SECONDS`]
    /// (renewed if it holds one), expired leases dropped; `None` when every slot is
    /// leased to others.
    #[must_use]
    pub fn claim(&self, holder: &str, now: Timestamp, limits: Limits) -> Option<Self> {
        let mut d = self.next();
        d.running.retain(|_, until| *until > now);
        if !d.running.contains_key(holder) && d.running.len() >= limits.running as usize {
            return None;
        }
        d.running.insert(holder.to_owned(), now.plus_seconds(LEASE_SECONDS));
        Some(d)
    }

    /// The record without `holder`'s slot; `None` when it holds none (nothing to write).
    #[must_use]
    pub fn release(&self, holder: &str) -> Option<Self> {
        self.running.contains_key(holder).then(|| {
            let mut d = self.next();
            d.running.remove(holder);
            d
        })
    }

    /// The record without job `id`: no longer active, and its work's slots (the job's
    /// own, its parts') released. `None` when it has nothing of the job.
    #[must_use]
    pub fn finish(&self, id: &str) -> Option<Self> {
        let part = format!("{id}/");
        let mine = |holder: &String| holder == id || holder.starts_with(&part);
        if !self.active.contains_key(id) && !self.running.keys().any(mine) {
            return None;
        }
        let mut d = self.next();
        d.active.remove(id);
        d.running.retain(|holder, _| !mine(holder));
        Some(d)
    }

    /// The active jobs admitted before `now` − [`ORPHAN_SECONDS`]: those to look up when
    /// the tenant is at its limit, in case some ended without leaving the record.
    #[must_use]
    pub fn settled(&self, now: Timestamp) -> Vec<String> {
        let before = now.plus_seconds(-ORPHAN_SECONDS);
        self.active.iter().filter(|(_, at)| **at < before).map(|(id, _)| id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::parse("2026-11-01T00:00:00Z").unwrap_or(Timestamp::MIN).plus_seconds(s)
    }

    const LIMITS: Limits = Limits { active: 3, running: 2 };

    #[test]
    fn a_tenant_has_at_most_its_limit_of_jobs_queued_or_running() {
        let mut d = Dispatch::default();
        for id in ["a", "b", "c"] {
            d = d.admit(id, t(0), LIMITS).unwrap_or_else(|| panic!("{id} refused"));
        }
        assert_eq!(d.version, 3);
        assert_eq!(d.admit("d", t(1), LIMITS), None, "the fourth waits");
        assert_eq!(d.admit("a", t(1), LIMITS), None, "an id is admitted once");
        let d = d.finish("b").unwrap_or_default();
        assert!(d.admit("d", t(2), LIMITS).is_some(), "a finished job makes room");
    }

    #[test]
    fn running_slots_are_leases_that_free_themselves() {
        let d = Dispatch::default();
        let d = d.claim("a", t(0), LIMITS).unwrap_or_default();
        let d = d.claim("b", t(10), LIMITS).unwrap_or_default();
        assert_eq!(d.claim("c", t(20), LIMITS), None, "both slots leased");
        // A holder renews its own lease, even at the limit.
        let renewed = d.claim("a", t(30), LIMITS).unwrap_or_default();
        assert_eq!(renewed.running.get("a"), Some(&t(30 + LEASE_SECONDS)));
        // A crashed worker's lease ends: its slot is free again.
        let later = d.claim("c", t(LEASE_SECONDS + 1), LIMITS).unwrap_or_default();
        assert_eq!(later.running.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert!(d.release("a").is_some_and(|d| d.claim("c", t(20), LIMITS).is_some()));
        assert_eq!(d.release("zz"), None, "nothing to write");
    }

    #[test]
    fn the_running_limit_counts_parts_and_finishing_a_job_frees_them() {
        let mut d = Dispatch::default().admit("j", t(0), LIMITS).unwrap_or_default();
        for part in ["j/0", "j/1"] {
            d = d.claim(part, t(0), LIMITS).unwrap_or_default();
        }
        assert_eq!(d.claim("j/2", t(0), LIMITS), None);
        let other = d.clone().admit("jj", t(0), LIMITS).unwrap_or_default();
        let done = other.finish("j").unwrap_or_default();
        assert!(done.running.is_empty() && done.active.keys().eq(["jj"]), "{done:?}");
        assert_eq!(done.finish("j"), None);
    }

    #[test]
    fn only_jobs_admitted_a_while_ago_are_looked_up_as_possible_leftovers() {
        let d = Dispatch::default().admit("old", t(0), LIMITS).and_then(|d| d.admit("new", t(100), LIMITS));
        let d = d.unwrap_or_default();
        assert_eq!(d.settled(t(100 + ORPHAN_SECONDS - 1)), ["old"]);
        assert_eq!(d.settled(t(100 + ORPHAN_SECONDS + 1)), ["new", "old"]);
    }
}
