//! What each destination receives for one batch: the bytes of its body and the headers
//! that describe them, built from the batch's events and their sequence numbers.
//!
//! (Skeleton: the destinations' engineer fills it in.)

use crate::domain::event::StoredEvent;

/// One batch of a stream: its events in order, numbered from `first_seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub stream_id: String,
    pub first_seq: u64,
    pub events: Vec<StoredEvent>,
}

impl Batch {
    /// The last sequence number it carries.
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64 - u64::from(!self.events.is_empty())
    }

    /// Each event with its sequence number.
    pub fn numbered(&self) -> impl Iterator<Item = (u64, &StoredEvent)> {
        (self.first_seq..).zip(self.events.iter())
    }
}
