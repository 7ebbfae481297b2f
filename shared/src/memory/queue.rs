//! A queue that keeps what it is sent.

use crate::memory::Faults;
use crate::ports::{MessageQueue, Outgoing, QueueError};
use async_trait::async_trait;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<Outgoing>>,
    pub faults: Faults,
}

impl MemoryQueue {
    /// Every message sent so far, oldest first.
    #[must_use]
    pub fn messages(&self) -> Vec<Outgoing> {
        self.sent.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl MessageQueue for MemoryQueue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        self.faults.check("send", &message.body).map_err(|k| QueueError(format!("injected {k:?}")))?;
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(message);
        }
        Ok(())
    }
}
