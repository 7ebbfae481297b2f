//! The S3 adapter of the blob store: streaming uploads and reads with bounded memory,
//! conditional writes, and what verification needs (size and hash).
//!
//! Throttling and transient failures are retried by the SDK's standard policy (every call
//! here is idempotent); a body that breaks while streaming is read again from the start.

use async_trait::async_trait;
use audit::domain::timestamp::Timestamp;
use audit::ports::{BlobError, BlobStore, Condition, Listed, Upload};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// When a link signed at `now` starts and how long it lives, so that it ends no later than
/// `until`: SigV4 states both in whole seconds, so the start is `now`'s second and the life
/// the whole seconds from there to `until`. `None` when that is under a second.
fn link_life(now: std::time::SystemTime, until: Timestamp) -> Option<(std::time::SystemTime, Duration)> {
    let start = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let end = u64::try_from(until.micros().div_euclid(1_000_000)).ok()?;
    let life = end.checked_sub(start).filter(|s| *s >= 1)?;
    Some((std::time::UNIX_EPOCH + Duration::from_secs(start), Duration::from_secs(life)))
}

/// Objects up to this size go up in one PUT; larger ones in parts of this size (S3's
/// minimum is 5 MiB; 10,000 parts of this size allow 80 GiB).
pub const MULTIPART_CHUNK: u64 = 8 * 1024 * 1024;
/// Whole-object reads retried after a broken stream.
const READ_ATTEMPTS: u32 = 3;

/// The checksum every write carries (base64 SHA-256), computed here: a bucket with Object
/// Lock default retention (the archive's) refuses a write without one. The SDK's own (a
/// CRC32) is off under `AWS_REQUEST_CHECKSUM_CALCULATION=when_required`, and naming an
/// algorithm does not turn it back on (aws-sdk-s3 then sends the algorithm's name and no
/// value); a value given is sent as it is, whatever the setting.
fn checksum(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

fn failed<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    op: &'static str,
    key: &str,
    err: &SdkError<E, R>,
) -> BlobError {
    let message = match err {
        SdkError::ServiceError(s) => {
            format!("{}: {}", s.err().code().unwrap_or("?"), s.err().message().unwrap_or(""))
        }
        other => format!("{other:?}"),
    };
    let code = err.as_service_error().and_then(ProvideErrorMetadata::code);
    match code {
        Some("NoSuchKey" | "NotFound") => BlobError::NotFound(key.to_owned()),
        Some("PreconditionFailed" | "ConditionalRequestConflict") => BlobError::Precondition(key.to_owned()),
        _ => BlobError::Failed { op, key: key.to_owned(), message },
    }
}

trait Headers {
    /// The `If-None-Match` and `If-Match` headers of a conditional write.
    fn headers(&self) -> (Option<String>, Option<String>);
}

impl Headers for Condition {
    fn headers(&self) -> (Option<String>, Option<String>) {
        match self {
            Condition::None => (None, None),
            Condition::Absent => (Some("*".into()), None),
            Condition::Matches(etag) => (None, Some(etag.clone())),
        }
    }
}

/// One bucket.
#[derive(Clone)]
pub struct Bucket {
    client: Client,
    name: String,
}

impl Bucket {
    #[must_use]
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self { client, name: name.into() }
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads an object, or a range of it, through `feed` into what `init` makes, starting
    /// over when the body breaks mid-stream. `None` when the object does not exist.
    async fn read<S>(
        &self,
        key: &str,
        range: Option<&str>,
        init: impl Fn() -> std::io::Result<S>,
        feed: impl Fn(&mut S, &[u8]) -> std::io::Result<()>,
    ) -> Result<Option<(S, String)>, BlobError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut out = match self
                .client
                .get_object()
                .bucket(&self.name)
                .key(key)
                .set_range(range.map(str::to_owned))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    return match failed("GetObject", key, &e) {
                        BlobError::NotFound(_) => Ok(None),
                        other => Err(other),
                    };
                }
            };
            let etag = out.e_tag().unwrap_or_default().to_owned();
            let mut sink = init()?;
            let broke = loop {
                match out.body.try_next().await {
                    Ok(Some(chunk)) => feed(&mut sink, &chunk)?,
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            match broke {
                None => return Ok(Some((sink, etag))),
                Some(e) if attempt < READ_ATTEMPTS => tracing::warn!(key, error = %e, "read broke; reading again"),
                Some(e) => return Err(BlobError::Failed { op: "GetObject", key: key.into(), message: e.to_string() }),
            }
        }
    }

    async fn range(&self, key: &str, range: &str) -> Result<Vec<u8>, BlobError> {
        let read = self
            .read(
                key,
                Some(range),
                || Ok(Vec::new()),
                |v, chunk| {
                    v.extend_from_slice(chunk);
                    Ok(())
                },
            )
            .await?;
        read.map(|(v, _)| v).ok_or_else(|| BlobError::NotFound(key.to_owned()))
    }
}

#[async_trait]
impl BlobStore for Bucket {
    /// Uploads a local file, in parts of [`MULTIPART_CHUNK`] when larger, reading one part
    /// at a time; `condition` goes on the PUT or on the CompleteMultipartUpload.
    ///
    /// # Errors
    /// [`BlobError::Precondition`] when the condition does not hold, [`BlobError`] when
    /// S3 refuses after retries; a failed multipart upload is aborted.
    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
        condition: Condition,
    ) -> Result<(), BlobError> {
        use std::io::Read;
        let mut upload = S3Upload::new(self, key, content_type, None);
        upload.condition = condition;
        let mut file = std::fs::File::open(path)?;
        let mut buf = Vec::new();
        let result = async {
            loop {
                let room = MULTIPART_CHUNK - buf.len() as u64;
                if (&mut file).take(room).read_to_end(&mut buf)? == 0 {
                    break;
                }
                upload.offer(&mut buf).await?;
            }
            upload.finish(std::mem::take(&mut buf)).await
        }
        .await;
        if result.is_err() {
            upload.abort().await;
        }
        result.map(|_| ())
    }

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
    ) -> Result<(), BlobError> {
        let mut req = self.client.put_object().bucket(&self.name).key(key).content_type(content_type);
        let (if_none_match, if_match) = condition.headers();
        req = req
            .set_if_none_match(if_none_match)
            .set_if_match(if_match)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(checksum(&bytes));
        req.body(ByteStream::from(bytes)).send().await.map_err(|e| failed("PutObject", key, &e))?;
        Ok(())
    }

    /// A small object's bytes and ETag, or `None` when it does not exist.
    ///
    /// # Errors
    /// [`BlobError`] on any other failure.
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BlobError> {
        self.read(
            key,
            None,
            || Ok(Vec::new()),
            |v, chunk| {
                v.extend_from_slice(chunk);
                Ok(())
            },
        )
        .await
    }

    /// Streams an object through SHA-256: its size and hex digest, or `None` if absent.
    ///
    /// # Errors
    /// [`BlobError`] on failure.
    async fn hash(&self, key: &str) -> Result<Option<(u64, String)>, BlobError> {
        let read = self
            .read(
                key,
                None,
                || Ok((Sha256::new(), 0u64)),
                |(h, n), chunk| {
                    h.update(chunk);
                    *n += chunk.len() as u64;
                    Ok(())
                },
            )
            .await?;
        Ok(read.map(|((h, n), _)| (n, hex::encode(h.finalize()))))
    }

    /// Downloads an object to a local file, streaming.
    ///
    /// # Errors
    /// [`BlobError`] on failure, including [`BlobError::NotFound`].
    async fn download(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        use std::io::Write;
        let read = self.read(key, None, || std::fs::File::create(path), |f, chunk| f.write_all(chunk)).await?;
        let (mut file, _) = read.ok_or_else(|| BlobError::NotFound(key.to_owned()))?;
        file.flush()?;
        Ok(())
    }

    /// The last `n` bytes of an object.
    ///
    /// # Errors
    /// [`BlobError`] on failure.
    async fn tail(&self, key: &str, n: u64) -> Result<Vec<u8>, BlobError> {
        self.range(key, &format!("bytes=-{n}")).await
    }

    /// Bytes `start..end` of an object.
    ///
    /// # Errors
    /// [`BlobError`] on failure.
    async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Vec<u8>, BlobError> {
        self.range(key, &format!("bytes={start}-{}", end.saturating_sub(1))).await
    }

    /// Every object under `prefix`.
    ///
    /// # Errors
    /// [`BlobError`] on failure.
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, BlobError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.name)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| failed("ListObjectsV2", prefix, &e))?;
            for o in page.contents() {
                if let Some(key) = o.key() {
                    out.push(Listed { key: key.to_owned(), size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0) });
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Deletes an object (absent is fine).
    ///
    /// # Errors
    /// [`BlobError`] on failure.
    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.client
            .delete_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("DeleteObject", key, &e))?;
        Ok(())
    }

    /// A presigned GET of `key`, valid for `expires_in`, that downloads as an attachment.
    ///
    /// # Errors
    /// [`BlobError`] when the URL cannot be signed.
    async fn presign_get(&self, key: &str, until: Timestamp) -> Result<Option<String>, BlobError> {
        let Some((start, expires_in)) = link_life(std::time::SystemTime::now(), until) else { return Ok(None) };
        let config = aws_sdk_s3::presigning::PresigningConfig::builder()
            .start_time(start)
            .expires_in(expires_in)
            .build()
            .map_err(|e| BlobError::Failed { op: "presign", key: key.into(), message: e.to_string() })?;
        let req = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| failed("presign GetObject", key, &e))?;
        let headers: Vec<&str> = req.headers().map(|(name, _)| name).collect();
        browser_safe(req.uri(), &headers).map_err(|message| BlobError::Failed {
            op: "presign",
            key: key.into(),
            message,
        })?;
        Ok(Some(req.uri().to_owned()))
    }

    fn upload<'a>(&'a self, key: &str, content_type: &str, filename: Option<&str>) -> Box<dyn Upload + 'a> {
        Box::new(S3Upload::new(self, key, content_type, filename))
    }
}

/// Whether a presigned request (its URI, and the headers it must be sent with) works as a
/// bare link: a browser sends none of the headers
/// the SDK may have signed into it (an SDK once signed `x-amz-checksum-mode`, and links
/// worked against a local server that checks less, then failed deployed).
///
/// # Errors
/// What the link would need besides its URI.
fn browser_safe(uri: &str, headers: &[&str]) -> Result<(), String> {
    match signed_headers(uri) {
        Some(signed) if signed == "host" && headers.is_empty() => Ok(()),
        signed => Err(format!(
            "the link would need headers a browser does not send: signed {}, to send {headers:?}",
            signed.as_deref().unwrap_or("(none)")
        )),
    }
}

/// `X-Amz-SignedHeaders` of a presigned URI, decoded (`host;x-amz-...`).
fn signed_headers(uri: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    let value = query.split('&').find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))?;
    Some(value.replace("%3B", ";").replace("%3b", ";"))
}

/// A file written to S3 as it is produced: parts of at least [`MULTIPART_CHUNK`] go up as
/// they fill, so memory holds one part whatever the file's size. A file that never fills
/// a part is written with one PUT.
pub struct S3Upload<'a> {
    bucket: &'a Bucket,
    key: String,
    content_type: String,
    disposition: Option<String>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    bytes: u64,
    /// Checked by S3 when the object is completed.
    condition: Condition,
}

impl<'a> S3Upload<'a> {
    /// `filename`: what a browser saves a download as.
    #[must_use]
    pub fn new(bucket: &'a Bucket, key: &str, content_type: &str, filename: Option<&str>) -> Self {
        Self {
            bucket,
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            disposition: filename.map(|f| format!("attachment; filename=\"{f}\"")),
            upload_id: None,
            parts: Vec::new(),
            bytes: 0,
            condition: Condition::None,
        }
    }

    async fn send_part(&mut self, body: Vec<u8>) -> Result<(), BlobError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .bucket
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket.name)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .set_content_disposition(self.disposition.clone())
                    // Each part then carries its SHA-256, and the completion lists them.
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .send()
                    .await
                    .map_err(|e| failed("CreateMultipartUpload", &self.key, &e))?;
                let id = out.upload_id().unwrap_or_default().to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        self.bytes += body.len() as u64;
        let sum = checksum(&body);
        let out = self
            .bucket
            .client
            .upload_part()
            .bucket(&self.bucket.name)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(sum.clone())
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| failed("UploadPart", &self.key, &e))?;
        let part = CompletedPart::builder().set_e_tag(out.e_tag().map(str::to_owned)).checksum_sha256(sum);
        self.parts.push(part.part_number(number).build());
        Ok(())
    }
}

#[async_trait]
impl Upload for S3Upload<'_> {
    /// Sends `buf` as the next part once it holds a full part (and empties it).
    ///
    /// # Errors
    /// [`BlobError`]; call [`Upload::abort`] afterwards.
    async fn offer(&mut self, buf: &mut Vec<u8>) -> Result<(), BlobError> {
        if (buf.len() as u64) < MULTIPART_CHUNK {
            return Ok(());
        }
        self.send_part(std::mem::take(buf)).await
    }

    /// Sends the rest and completes the object; returns its size.
    ///
    /// # Errors
    /// [`BlobError`]; call [`Upload::abort`] afterwards.
    async fn finish(&mut self, rest: Vec<u8>) -> Result<u64, BlobError> {
        let (if_none_match, if_match) = self.condition.headers();
        let Some(upload_id) = self.upload_id.clone() else {
            self.bytes = rest.len() as u64;
            self.bucket
                .client
                .put_object()
                .bucket(&self.bucket.name)
                .key(&self.key)
                .content_type(&self.content_type)
                .set_content_disposition(self.disposition.clone())
                .set_if_none_match(if_none_match)
                .set_if_match(if_match)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_sha256(checksum(&rest))
                .body(ByteStream::from(rest))
                .send()
                .await
                .map_err(|e| failed("PutObject", &self.key, &e))?;
            return Ok(self.bytes);
        };
        if !rest.is_empty() {
            self.send_part(rest).await?;
        }
        self.bucket
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket.name)
            .key(&self.key)
            .upload_id(upload_id)
            .set_if_none_match(if_none_match)
            .set_if_match(if_match)
            .multipart_upload(
                CompletedMultipartUpload::builder().set_parts(Some(std::mem::take(&mut self.parts))).build(),
            )
            .send()
            .await
            .map_err(|e| failed("CompleteMultipartUpload", &self.key, &e))?;
        Ok(self.bytes)
    }

    /// Gives up an unfinished upload (S3 would otherwise keep its parts until the
    /// bucket's lifecycle rule aborts it).
    async fn abort(&mut self) {
        if let Some(id) = &self.upload_id {
            let _ = self
                .bucket
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket.name)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await;
        }
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// When a link's URL says it stops: its signing second plus its life.
    fn end_of(url: &str) -> i64 {
        let param = |name: &str| url.split(&format!("{name}=")).nth(1).and_then(|v| v.split('&').next());
        let date = param("X-Amz-Date").unwrap_or_default();
        let iso = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &date[0..4],
            &date[4..6],
            &date[6..8],
            &date[9..11],
            &date[11..13],
            &date[13..15]
        );
        let signed = Timestamp::parse(&iso).map_or(i64::MAX, |t| t.micros() / 1_000_000);
        signed + param("X-Amz-Expires").and_then(|v| v.parse::<i64>().ok()).unwrap_or(i64::MAX / 2)
    }

    #[tokio::test]
    async fn a_link_never_outlives_its_until_by_any_fraction_of_a_second() {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("AKID", "SECRET", None, None, "test"))
            .build();
        let bucket = Bucket::new(Client::from_conf(config), "exports");
        let now = Timestamp::now();
        // Every fraction of a second, and the whole seconds either side of one.
        for micros in (0..40).map(|i| 1_000_000 + i * 97_003).chain([999_999, 2_000_000, 3_600_000_000]) {
            let until = Timestamp::from_micros(now.micros() + micros).unwrap_or(now);
            let url = bucket.presign_get("a/b.csv", until).await.unwrap_or_else(|e| panic!("{e}"));
            let Some(url) = url else {
                assert!(micros < 2_000_000, "no link {micros} µs ahead");
                continue;
            };
            let end = end_of(&url);
            assert!(end * 1_000_000 <= until.micros(), "{micros} µs ahead: the link ends at {end}, past {until}");
            assert!(end * 1_000_000 > until.micros() - 2_000_000, "{micros} µs ahead: a needlessly short link");
        }
        // The arithmetic alone, at a second's very end: what the old 1 s floor got wrong.
        let at = UNIX_EPOCH + Duration::from_micros(1_800_000_000_999_999);
        let until = Timestamp::from_micros(1_800_000_001_500_000).unwrap_or(Timestamp::MIN);
        assert_eq!(
            link_life(at, until),
            Some((UNIX_EPOCH + Duration::from_secs(1_800_000_000), Duration::from_secs(1)))
        );
        assert_eq!(link_life(at, Timestamp::from_micros(1_800_000_000_999_999).unwrap_or(Timestamp::MIN)), None);
        assert!(link_life(SystemTime::now(), Timestamp::MIN).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://b.s3.amazonaws.com/exports/t/x.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261207T120000Z&X-Amz-Expires=3600";

    #[test]
    fn a_link_that_signed_any_header_but_host_is_refused() {
        assert_eq!(browser_safe(&format!("{LINK}&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"), &[]), Ok(()));
        for signed in ["host%3Bx-amz-checksum-mode", "host%3bx-amz-content-sha256", "x-amz-date"] {
            let uri = format!("{LINK}&X-Amz-SignedHeaders={signed}&X-Amz-Signature=ab");
            assert!(browser_safe(&uri, &[]).is_err(), "{signed}");
        }
        assert!(browser_safe(LINK, &[]).is_err(), "no SignedHeaders at all");
        let uri = format!("{LINK}&X-Amz-SignedHeaders=host&X-Amz-Signature=ab");
        let refused = browser_safe(&uri, &["x-amz-checksum-mode"]).err().unwrap_or_default();
        assert!(refused.contains("x-amz-checksum-mode"), "{refused}");
    }
}
