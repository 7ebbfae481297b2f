//! In-memory adapters of every port, for unit tests of the use cases here and of the
//! handlers in the function crates: [`MemoryStore`] (the table: events, indexes, tenants,
//! catalogs, archive registry, export jobs), [`MemoryBlobs`] (a bucket) and
//! [`MemoryQueue`]. Each follows the semantics of the AWS service it stands in for
//! (conditional writes, index pages that stop after `limit` evaluated items), and each
//! can be told to fail chosen calls ([`Faults`]) to test crash points and transient
//! failures.
//!
//! May depend on: the domain and the ports. Never used by production code.

mod alerts;
mod blobs;
mod clock;
mod queue;
mod signer;
mod store;
mod turns;

pub use alerts::{MemoryAlerts, MemoryNotifier};
pub use blobs::MemoryBlobs;
pub use clock::{ManualClock, SlowPages};
pub use queue::MemoryQueue;
pub use signer::MemorySigner;
pub use store::MemoryStore;
pub use turns::MemoryTurns;

use std::sync::Mutex;

/// How an injected failure fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Throttled or unreachable: a retry may succeed.
    Unavailable,
    /// Refused for good, as a crash at that point would leave things.
    Refused,
    /// Not a failure: the call blocks its thread this long, then goes through (a slow
    /// store, for deadlines and for runs that stall).
    Slow(std::time::Duration),
    /// The process dies at the call: it panics, and nothing after it runs (a test runs
    /// the caller in a task of its own, and sees the task end).
    Crash,
}

/// Calls of operation `op` (`"*"`: every operation) whose detail (a key, an id) contains
/// `contains` fail once `pass` of them went through: `times` of them, or every one after.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: &'static str,
    pub contains: Option<String>,
    pub pass: usize,
    pub times: Option<usize>,
    pub kind: FaultKind,
}

impl Fault {
    /// Every call of `op` after the first `pass` is refused for good.
    #[must_use]
    pub fn after(op: &'static str, pass: usize) -> Self {
        Self { op, contains: None, pass, times: None, kind: FaultKind::Refused }
    }

    /// Only calls whose detail contains `text` count.
    #[must_use]
    pub fn on(mut self, text: &str) -> Self {
        self.contains = Some(text.to_owned());
        self
    }

    /// The failures are transient.
    #[must_use]
    pub fn unavailable(mut self) -> Self {
        self.kind = FaultKind::Unavailable;
        self
    }

    /// The calls do not fail but take `delay` each.
    #[must_use]
    pub fn slow(mut self, delay: std::time::Duration) -> Self {
        self.kind = FaultKind::Slow(delay);
        self
    }

    /// The process dies at these calls ([`FaultKind::Crash`]).
    #[must_use]
    pub fn crash(mut self) -> Self {
        self.kind = FaultKind::Crash;
        self
    }

    /// Only this many calls fail; the ones after go through again.
    #[must_use]
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }
}

/// The failures an adapter is told to inject, and how many it did.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<(Fault, usize)>>,
    failed: Mutex<usize>,
}

impl Faults {
    pub fn add(&self, fault: Fault) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push((fault, 0));
        }
    }

    /// Removes every rule: what follows runs cleanly.
    pub fn clear(&self) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.clear();
        }
    }

    /// The most calls any rule has seen (a rule that never fires counts every call).
    #[must_use]
    pub fn calls(&self) -> usize {
        self.rules.lock().map_or(0, |r| r.iter().map(|(_, seen)| *seen).max().unwrap_or(0))
    }

    /// How many calls have been made to fail.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.failed.lock().map_or(0, |n| *n)
    }

    /// Called by the adapters at the start of each operation.
    ///
    /// # Errors
    /// The kind of failure to return, when a rule says this call fails.
    pub fn check(&self, op: &str, detail: &str) -> Result<(), FaultKind> {
        let mut delay = None;
        let verdict = {
            let Ok(mut rules) = self.rules.lock() else { return Ok(()) };
            let mut verdict = Ok(());
            for (rule, seen) in rules.iter_mut() {
                let matches = rule.op == op || rule.op == "*";
                if !matches || rule.contains.as_ref().is_some_and(|c| !detail.contains(c.as_str())) {
                    continue;
                }
                *seen += 1;
                let failing = *seen > rule.pass && rule.times.is_none_or(|t| *seen <= rule.pass + t);
                match (failing, rule.kind) {
                    (false, _) => {}
                    (true, FaultKind::Slow(d)) => delay = Some(d),
                    (true, kind) => {
                        verdict = Err(kind);
                        break;
                    }
                }
            }
            verdict
        };
        if verdict.is_err()
            && let Ok(mut n) = self.failed.lock()
        {
            *n += 1;
        }
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        // After the rules' lock is given back: the crash poisons nothing.
        assert!(verdict != Err(FaultKind::Crash), "injected crash at {op} {detail}");
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_lets_its_passes_through_then_fails_as_told() {
        let f = Faults::default();
        f.add(Fault::after("put", 2).on("acme").times(2));
        let calls: Vec<bool> = (0..6).map(|_| f.check("put", "acme#1").is_ok()).collect();
        assert_eq!(calls, vec![true, true, false, false, true, true]);
        assert!(f.check("put", "other").is_ok() && f.check("get", "acme").is_ok());
        assert_eq!(f.failed(), 2);
        f.add(Fault::after("get", 0).unavailable());
        assert_eq!(f.check("get", ""), Err(FaultKind::Unavailable));
        f.clear();
        assert!(f.check("get", "").is_ok());
        f.add(Fault::after("*", 1));
        assert!(f.check("put", "").is_ok() && f.check("get", "").is_err());
        f.clear();
        f.add(Fault::after("get", 0).slow(std::time::Duration::from_millis(5)));
        let started = std::time::Instant::now();
        assert!(f.check("get", "").is_ok() && started.elapsed() >= std::time::Duration::from_millis(5));
    }
}
