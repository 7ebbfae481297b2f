//! Outgoing queue messages: export jobs to run, dead letters of the ingest queue.

use async_trait::async_trait;

/// A message to send, with string attributes (SQS message attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub body: String,
    pub attributes: Vec<(String, String)>,
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
