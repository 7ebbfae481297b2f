//! A bucket in memory, with ETags and conditional writes as S3 has them.

use crate::domain::timestamp::Timestamp;
use crate::memory::{FaultKind, Faults};
use crate::ports::{BlobError, BlobStore, Condition, Listed, Upload};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone)]
struct Object {
    bytes: Vec<u8>,
    etag: String,
    content_type: String,
}

#[derive(Debug, Default)]
pub struct MemoryBlobs {
    objects: Mutex<BTreeMap<String, Object>>,
    writes: Mutex<u64>,
    /// Writes that landed, per key.
    written: Mutex<BTreeMap<String, usize>>,
    pub faults: Faults,
}

fn failed(op: &'static str, key: &str, kind: FaultKind) -> BlobError {
    BlobError::Failed { op, key: key.to_owned(), message: format!("injected {kind:?}") }
}

impl MemoryBlobs {
    fn check(&self, op: &'static str, key: &str) -> Result<(), BlobError> {
        self.faults.check(op, key).map_err(|k| failed(op, key, k))
    }

    fn object(&self, key: &str) -> Option<Object> {
        self.objects.lock().ok().and_then(|o| o.get(key).cloned())
    }

    fn store(&self, key: &str, bytes: Vec<u8>, content_type: &str) {
        let n = self.writes.lock().map_or(0, |mut w| {
            *w += 1;
            *w
        });
        let object = Object { bytes, etag: format!("\"{n}\""), content_type: content_type.to_owned() };
        if let Ok(mut o) = self.objects.lock() {
            o.insert(key.to_owned(), object);
        }
        if let Ok(mut w) = self.written.lock() {
            *w.entry(key.to_owned()).or_default() += 1;
        }
    }

    fn put_if(&self, key: &str, bytes: Vec<u8>, content_type: &str, condition: &Condition) -> Result<(), BlobError> {
        let current = self.object(key).map(|o| o.etag);
        let holds = match condition {
            Condition::None => true,
            Condition::Absent => current.is_none(),
            Condition::Matches(etag) => current.as_ref() == Some(etag),
        };
        if !holds {
            return Err(BlobError::Precondition(key.to_owned()));
        }
        self.store(key, bytes, content_type);
        Ok(())
    }

    /// Removes an object (for tests to alter the bucket).
    pub fn remove(&self, key: &str) {
        if let Ok(mut o) = self.objects.lock() {
            o.remove(key);
        }
    }

    /// Writes an object whatever is there (for tests to alter the bucket).
    pub fn overwrite(&self, key: &str, bytes: Vec<u8>) {
        self.store(key, bytes, "application/octet-stream");
    }

    /// An object's bytes, if it exists (for tests to look at or alter).
    #[must_use]
    pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.object(key).map(|o| o.bytes)
    }

    /// The content type an object was written with.
    #[must_use]
    pub fn content_type(&self, key: &str) -> Option<String> {
        self.object(key).map(|o| o.content_type)
    }

    /// How many writes of `key` landed.
    #[must_use]
    pub fn writes_of(&self, key: &str) -> usize {
        self.written.lock().map_or(0, |w| w.get(key).copied().unwrap_or(0))
    }

    /// Every key, in order.
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().map(|o| o.keys().cloned().collect()).unwrap_or_default()
    }
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        condition: Condition,
    ) -> Result<(), BlobError> {
        self.check("put_bytes", key)?;
        self.put_if(key, bytes, content_type, &condition)
    }

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
        condition: Condition,
    ) -> Result<(), BlobError> {
        self.check("put_file", key)?;
        self.put_if(key, std::fs::read(path)?, content_type, &condition)
    }

    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BlobError> {
        self.check("get_bytes", key)?;
        Ok(self.object(key).map(|o| (o.bytes, o.etag)))
    }

    async fn hash(&self, key: &str) -> Result<Option<(u64, String)>, BlobError> {
        self.check("hash", key)?;
        Ok(self.object(key).map(|o| (o.bytes.len() as u64, hex::encode(Sha256::digest(&o.bytes)))))
    }

    async fn download(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        self.check("download", key)?;
        let o = self.object(key).ok_or_else(|| BlobError::NotFound(key.to_owned()))?;
        std::fs::write(path, o.bytes)?;
        Ok(())
    }

    async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Vec<u8>, BlobError> {
        self.check("read_range", key)?;
        let o = self.object(key).ok_or_else(|| BlobError::NotFound(key.to_owned()))?;
        let len = o.bytes.len();
        let clamp = |v: u64| usize::try_from(v).unwrap_or(len).min(len);
        Ok(o.bytes[clamp(start)..clamp(end).max(clamp(start))].to_vec())
    }

    async fn tail(&self, key: &str, n: u64) -> Result<Vec<u8>, BlobError> {
        self.check("tail", key)?;
        let o = self.object(key).ok_or_else(|| BlobError::NotFound(key.to_owned()))?;
        let from = o.bytes.len().saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
        Ok(o.bytes[from..].to_vec())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, BlobError> {
        self.check("list", prefix)?;
        let objects = self.objects.lock().map_err(|_| failed("list", prefix, FaultKind::Unavailable))?;
        Ok(objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| Listed { key: k.clone(), size: o.bytes.len() as u64 })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.check("delete", key)?;
        if let Ok(mut o) = self.objects.lock() {
            o.remove(key);
        }
        Ok(())
    }

    /// `memory:///{key}?until={until}`, or none within the last second, as S3's adapter.
    async fn presign_get(&self, key: &str, until: Timestamp) -> Result<Option<String>, BlobError> {
        self.check("presign", key)?;
        let room = until.micros() - Timestamp::now().micros();
        Ok((room >= 1_000_000).then(|| format!("memory:///{key}?until={until}")))
    }

    fn upload<'a>(&'a self, key: &str, content_type: &str, _filename: Option<&str>) -> Box<dyn Upload + 'a> {
        Box::new(MemoryUpload {
            blobs: self,
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            body: Vec::new(),
        })
    }
}

/// An upload that keeps what it is offered until it is finished.
struct MemoryUpload<'a> {
    blobs: &'a MemoryBlobs,
    key: String,
    content_type: String,
    body: Vec<u8>,
}

#[async_trait]
impl Upload for MemoryUpload<'_> {
    async fn offer(&mut self, buf: &mut Vec<u8>) -> Result<(), BlobError> {
        self.blobs.check("upload", &self.key)?;
        self.body.append(buf);
        Ok(())
    }

    async fn finish(&mut self, mut rest: Vec<u8>) -> Result<u64, BlobError> {
        self.blobs.check("upload", &self.key)?;
        self.body.append(&mut rest);
        let body = std::mem::take(&mut self.body);
        let size = body.len() as u64;
        self.blobs.store(&self.key, body, &self.content_type);
        Ok(size)
    }

    async fn abort(&mut self) {
        self.body.clear();
    }
}
