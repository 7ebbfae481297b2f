//! The clock a job measures its deadline by. A run that must stop in time reads it
//! between steps; a test gives it a clock that moves only with the work, so where the
//! deadline falls is the test's choice and never the machine's load.

use std::time::Instant;

pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The machine's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
