//! Log streams: their settings, the sealing of their credentials, the buffer of events
//! each stream has yet to deliver, where each stream's delivery stands, and the way out
//! to the destinations.

use crate::domain::event::StoredEvent;
use crate::domain::log_stream::payload::Batch;
use crate::domain::log_stream::{LogStream, Plain, Progress, Sealed};
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::ports::{SendError, StoreError};
use async_trait::async_trait;
use std::collections::HashSet;

#[derive(Debug, thiserror::Error)]
pub enum StreamWriteError {
    /// The tenant already has [`crate::domain::log_stream::MAX_STREAMS_PER_TENANT`].
    #[error("the tenant has as many streams as it may")]
    Limit,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tenant's streams (the API's side; the intake and the worker read them).
#[async_trait]
pub trait StreamConfigs: Send + Sync {
    /// Stores a new stream, unless the tenant has the most it may (the count and the
    /// stream change together, so concurrent creations cannot pass the limit).
    ///
    /// # Errors
    /// [`StreamWriteError::Limit`], or storage unavailable.
    async fn create(&self, stream: &LogStream) -> Result<(), StreamWriteError>;

    /// # Errors
    /// Storage unavailable, or a stored stream that cannot be read.
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<LogStream>, StoreError>;

    /// Every stream of the tenant, oldest first, read consistently: a stream is carried
    /// every event received after it was created.
    ///
    /// # Errors
    /// As [`StreamConfigs::get`].
    async fn list(&self, tenant: &TenantId) -> Result<Vec<LogStream>, StoreError>;

    /// Replaces the stream's settings if it is still as last updated at `expected`;
    /// `false` when it changed meanwhile or is gone.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn replace(&self, stream: &LogStream, expected: Timestamp) -> Result<bool, StoreError>;

    /// Deletes the stream (its buffer and progress go with it, or expire); `false` when
    /// there was none.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
}

/// Why a credential could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sealing: {0}")]
pub struct SealError(pub String);

/// Credentials encrypted with the deployment's key, bound to their tenant (a sealed
/// credential opened for another tenant fails).
#[async_trait]
pub trait Sealer: Send + Sync {
    /// # Errors
    /// The key unavailable.
    async fn seal(&self, tenant: &TenantId, plain: &Plain) -> Result<Sealed, SealError>;

    /// # Errors
    /// The key unavailable, or a credential sealed for another tenant or altered.
    async fn open(&self, tenant: &TenantId, sealed: &Sealed) -> Result<Plain, SealError>;
}

/// An event waiting in a stream's buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub stream_id: String,
    pub event: StoredEvent,
}

/// Each stream's buffer of events not yet delivered, oldest arrival first, and the
/// marks of those delivered (so an event put again, a stream record read twice, is not
/// sent twice).
#[async_trait]
pub trait StreamBuffer: Send + Sync {
    /// Puts events in their streams' buffers; putting one again writes the same item.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn put(&self, queued: &[Queued]) -> Result<(), StoreError>;

    /// The oldest buffered events of a stream, by arrival, at most `limit` of them and
    /// about `max_bytes` of their documents.
    ///
    /// # Errors
    /// Storage unavailable, or an entry that cannot be read.
    async fn oldest(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Which of `ids` the stream has delivered already.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn delivered(&self, tenant: &TenantId, stream_id: &str, ids: &[&str]) -> Result<HashSet<String>, StoreError>;

    /// Marks `events` delivered and takes them out of the buffer.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn done(&self, tenant: &TenantId, stream_id: &str, events: &[StoredEvent]) -> Result<(), StoreError>;
}

/// Where each stream's delivery stands, and the batches it numbered (kept for replays).
#[async_trait]
pub trait StreamProgress: Send + Sync {
    /// The stream's progress and its version (0 before the first change).
    ///
    /// # Errors
    /// Storage unavailable.
    async fn progress(&self, tenant: &TenantId, stream_id: &str) -> Result<(Progress, u64), StoreError>;

    /// Replaces the progress if it is still at `version`; `false` otherwise.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn set_progress(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        progress: &Progress,
        version: u64,
    ) -> Result<bool, StoreError>;

    /// Numbers a batch: records which events `first_seq..` are, and moves the progress
    /// (`assigned`) from `version`, together; `false` when the progress moved meanwhile.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn number(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        batch: &Batch,
        progress: &Progress,
        version: u64,
    ) -> Result<bool, StoreError>;

    /// The numbered batch holding `seq`, with its events (read back from where they are
    /// stored), if it is still kept.
    ///
    /// # Errors
    /// Storage unavailable, or an event that cannot be read.
    async fn batch_at(&self, tenant: &TenantId, stream_id: &str, seq: u64) -> Result<Option<Batch>, StoreError>;
}

/// The way out: one batch to one destination.
#[async_trait]
pub trait StreamSender: Send + Sync {
    /// Sends `batch` to `stream`'s destination at `now`, with its opened credential (a
    /// token, an API key, or for `https` the signing secret).
    ///
    /// # Errors
    /// The attempt's failure, as the tenant sees it (never a credential or a URL's path).
    async fn send(
        &self,
        stream: &LogStream,
        credential: Option<&Plain>,
        batch: &Batch,
        now: Timestamp,
    ) -> Result<(), SendError>;
}
