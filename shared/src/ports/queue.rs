//! Outgoing queue messages: export jobs to run, dead letters of the ingest queue, alert
//! deliveries to retry.

use async_trait::async_trait;

/// A message to send, with string attributes (SQS message attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub body: String,
    pub attributes: Vec<(String, String)>,
    /// Held this long before it can be received (at most 900 s on SQS).
    pub delay_seconds: u32,
}

impl Outgoing {
    /// A message with no attributes, deliverable at once.
    #[must_use]
    pub fn text(body: String) -> Self {
        Self { body, attributes: Vec::new(), delay_seconds: 0 }
    }
}

/// The queue did not take the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

#[async_trait]
pub trait MessageQueue: Send + Sync {
    /// # Errors
    /// [`QueueError`] when the message could not be sent.
    async fn send(&self, message: Outgoing) -> Result<(), QueueError>;
}
