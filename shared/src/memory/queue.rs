//! A queue that keeps what it is sent, and hands out what is due as a receiver would.

use crate::memory::Faults;
use crate::ports::{MessageQueue, Outgoing, QueueError};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<Outgoing>>,
    /// Not yet received: when each may be, and the message.
    waiting: Mutex<VecDeque<(Instant, Outgoing)>>,
    pub faults: Faults,
}

impl MemoryQueue {
    /// Every message sent so far, oldest first.
    #[must_use]
    pub fn messages(&self) -> Vec<Outgoing> {
        self.sent.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Takes every message whose delay is over, oldest first, as one receive would.
    #[must_use]
    pub fn receive(&self) -> Vec<Outgoing> {
        let Ok(mut waiting) = self.waiting.lock() else { return Vec::new() };
        let now = Instant::now();
        let (ready, later): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(at, _)| *at <= now);
        waiting.extend(later);
        ready.into_iter().map(|(_, m)| m).collect()
    }

    /// Messages sent and not yet received.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or_default()
    }
}

#[async_trait]
impl MessageQueue for MemoryQueue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        self.faults.check("send", &message.body).map_err(|k| QueueError(format!("injected {k:?}")))?;
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.push_back((Instant::now() + Duration::from_secs(message.delay_seconds.into()), message.clone()));
        }
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(message);
        }
        Ok(())
    }
}
