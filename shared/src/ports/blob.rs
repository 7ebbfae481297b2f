//! Object storage (the archive and export buckets): streaming writes and reads with
//! bounded memory, conditional writes, and what verification needs.

use crate::domain::timestamp::Timestamp;
use async_trait::async_trait;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no such object: {0}")]
    NotFound(String),
    /// A conditional write lost: someone else wrote the key first.
    #[error("precondition failed writing {0}")]
    Precondition(String),
    #[error("S3 {op} {key}: {message}")]
    Failed { op: &'static str, key: String, message: String },
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
}

/// What a write should require of the key's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    None,
    /// The key must not exist yet.
    Absent,
    /// The key must still hold this ETag.
    Matches(String),
}

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Writes a small object under `condition`.
    ///
    /// # Errors
    /// [`BlobError::Precondition`] when the condition does not hold.
    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        condition: Condition,
    ) -> Result<(), BlobError>;

    /// Uploads a local file, streaming, under `condition` (checked when the object is
    /// completed, so a large upload cannot replace what another writer finished first).
    ///
    /// # Errors
    /// [`BlobError::Precondition`] when the condition does not hold.
    async fn put_file(&self, key: &str, path: &Path, content_type: &str, condition: Condition)
    -> Result<(), BlobError>;

    /// A small object's bytes and ETag, or `None` when it does not exist.
    ///
    /// # Errors
    /// [`BlobError`] on any other failure.
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BlobError>;

    /// An object's size and SHA-256 (hex), streamed, or `None` if absent.
    ///
    /// # Errors
    /// [`BlobError`], including a body that fails the store's own checksums.
    async fn hash(&self, key: &str) -> Result<Option<(u64, String)>, BlobError>;

    /// Downloads an object to a local file, streaming.
    ///
    /// # Errors
    /// [`BlobError`], including [`BlobError::NotFound`].
    async fn download(&self, key: &str, path: &Path) -> Result<(), BlobError>;

    /// Bytes `start..end` of an object.
    ///
    /// # Errors
    /// [`BlobError`].
    async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Vec<u8>, BlobError>;

    /// The last `n` bytes of an object.
    ///
    /// # Errors
    /// [`BlobError`].
    async fn tail(&self, key: &str, n: u64) -> Result<Vec<u8>, BlobError>;

    /// Every object under `prefix`, in key order.
    ///
    /// # Errors
    /// [`BlobError`].
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, BlobError>;

    /// Deletes an object (absent is fine).
    ///
    /// # Errors
    /// [`BlobError`].
    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// A link that downloads `key` as an attachment, valid no later than `until` (to the
    /// microsecond: never a moment past it); `None` when no link of at least a second
    /// fits before then.
    ///
    /// # Errors
    /// [`BlobError`] when it cannot be signed.
    async fn presign_get(&self, key: &str, until: Timestamp) -> Result<Option<String>, BlobError>;

    /// A new object written as it is produced; `filename` is what a browser saves it as.
    fn upload<'a>(&'a self, key: &str, content_type: &str, filename: Option<&str>) -> Box<dyn Upload + 'a>;
}

/// An object written as it is produced, so memory holds one part whatever its size.
#[async_trait]
pub trait Upload: Send {
    /// Takes `buf` (emptying it) once it holds enough for the store to send a part.
    ///
    /// # Errors
    /// [`BlobError`]; call [`Upload::abort`] afterwards.
    async fn offer(&mut self, buf: &mut Vec<u8>) -> Result<(), BlobError>;

    /// Sends the rest and completes the object; returns its size.
    ///
    /// # Errors
    /// [`BlobError`]; call [`Upload::abort`] afterwards.
    async fn finish(&mut self, rest: Vec<u8>) -> Result<u64, BlobError>;

    /// Gives up an unfinished object.
    async fn abort(&mut self);
}
