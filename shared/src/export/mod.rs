//! Export jobs (contract sections 2 and 5): every event matching a job's filters, newest
//! first, from DynamoDB and the archive together, streamed into one file in S3.
//!
//! Two sources are merged in `(occurred_at, id)` order, newest first:
//! - online: the query API's own plan (index, partitions, filter expression), one
//!   descending Query stream per partition;
//! - archived: the days whose manifests fall in the range, newest first; per day, the
//!   parts whose first/last times overlap it, and per part only the row groups whose
//!   statistics do, each fetched with one ranged GET and read from its end.
//!
//! While an archive run is between its manifest and its deletes an event is in both
//! places; equal keys meet in the merge and the second is dropped. The file goes to S3
//! by multipart upload as it fills, so memory stays bounded whatever its size.

pub mod job;
pub mod request;

use crate::archive::manifest::{self, Manifest, PartEntry};
use crate::blob::{BlobError, Bucket, Upload};
use crate::filter::Filter;
use crate::index_stream::IndexStream;
use crate::item;
use crate::parquet_reader::{Batch, Part, Span};
use crate::planner;
use crate::reader::{ReadStats, resolve};
use crate::row::Row;
use crate::store::{Store, StoreError};
use crate::tenant::TenantId;
use crate::timestamp::Timestamp;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use job::{Job, Jobs};
use serde::{Deserialize, Serialize};

/// Items per Query page of the online stream, across all partitions together.
const PAGE_ITEMS_TOTAL: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("reading archived parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The archive is not as its manifests say; `auditlog verify` tells more.
    #[error("the archive is inconsistent: {0}")]
    Archive(String),
    #[error("the job's stored filters are invalid: {0}")]
    BadJob(String),
}

impl ExportError {
    /// The stable code a failed job reports.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(StoreError::Corrupt(_)) | Self::Archive(_) | Self::Parquet(_) => "data_integrity",
            Self::Store(_) | Self::Blob(_) => "storage_unavailable",
            Self::BadJob(_) => "internal",
        }
    }
}

/// The export queue's message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub tenant_id: String,
    pub id: String,
}

/// What a finished job wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub rows: u64,
    pub bytes: u64,
    pub truncated: bool,
}

pub struct Exporter<'a> {
    pub store: &'a Store,
    pub archive: &'a Bucket,
    pub exports: &'a Bucket,
    /// `AUDIT_EXPORT_MAX_ROWS`: past it, the most recent rows are kept.
    pub max_rows: u64,
}

impl Exporter<'_> {
    /// Runs one job to its end: `succeeded`, or `failed` with a reason. A job that is
    /// finished, or running under another delivery, is left alone.
    ///
    /// # Errors
    /// [`StoreError`] when the job's own record cannot be read or written; the queue
    /// delivers the message again.
    pub async fn run(&self, tenant: &TenantId, id: &str) -> Result<Option<Produced>, StoreError> {
        let jobs = Jobs { store: self.store };
        let Some(job) = jobs.get(tenant, id).await? else {
            tracing::warn!(%tenant, id, "export job not found");
            return Ok(None);
        };
        if !jobs.claim(tenant, id, Timestamp::now()).await? {
            tracing::info!(%tenant, id, status = job.status.as_str(), "export job already taken");
            return Ok(None);
        }
        let started = std::time::Instant::now();
        match self.produce(&job).await {
            Ok(p) => {
                tracing::info!(%tenant, id, rows = p.rows, bytes = p.bytes, seconds = started.elapsed().as_secs_f64(), "export done");
                jobs.succeed(tenant, id, p.rows, p.bytes, p.truncated, Timestamp::now()).await?;
                Ok(Some(p))
            }
            Err(e) => {
                tracing::error!(%tenant, id, error = %e, "export failed");
                jobs.fail(tenant, id, e.code(), &e.to_string()).await?;
                Ok(None)
            }
        }
    }

    async fn produce(&self, job: &Job) -> Result<Produced, ExportError> {
        let filter = request::stored_filter(&job.query).map_err(|v| ExportError::BadJob(format!("{v:?}")))?;
        let filename = format!("audit-export-{}.{}", job.id, job.format.as_str());
        let mut upload = Upload::new(self.exports, &job.object_key(), job.format.content_type(), Some(&filename));
        let result = self.write(job, &filter, &mut upload).await;
        if result.is_err() {
            upload.abort().await;
        }
        result
    }

    async fn write(&self, job: &Job, filter: &Filter, upload: &mut Upload<'_>) -> Result<Produced, ExportError> {
        let mut online = OnlineStream::open(self.store, &job.tenant, filter).await?;
        let mut archived = ArchiveStream::open(self.archive, &job.tenant, filter, job.format.columns()).await?;
        let mut a = online.next().await?;
        let mut b = archived.next().await?;
        let mut buf = job.format.header();
        let mut rows = 0u64;
        let mut truncated = false;
        let mut last: Option<(i64, String)> = None;
        loop {
            let from_online = match (&a, &b) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(x), Some(y)) => x.key() >= y.key(),
            };
            let row = if from_online {
                std::mem::replace(&mut a, online.next().await?)
            } else {
                std::mem::replace(&mut b, archived.next().await?)
            };
            let Some(row) = row else { break };
            if last.as_ref().is_some_and(|(t, id)| (*t, id.as_str()) == row.key()) {
                continue;
            }
            if rows == self.max_rows {
                truncated = true;
                break;
            }
            job.format.write(&row, &mut buf);
            rows += 1;
            let (t, id) = row.key();
            last = Some((t, id.to_owned()));
            upload.offer(&mut buf).await?;
        }
        let bytes = upload.finish(buf).await?;
        Ok(Produced { rows, bytes, truncated })
    }
}

/// The online events matching a filter, newest first, over the query planner's path.
struct OnlineStream<'a> {
    inner: IndexStream<'a>,
    filter: Filter,
}

impl<'a> OnlineStream<'a> {
    async fn open(store: &'a Store, tenant: &TenantId, filter: &Filter) -> Result<Self, StoreError> {
        let settings = store.tenant_settings(tenant).await?;
        let path = planner::choose(filter);
        let resolved = resolve(store, tenant, settings, path, filter, &mut ReadStats::default()).await?;
        let partitions = planner::partitions(path, tenant, settings.shards, filter, &resolved);
        let expr = planner::expression(filter);
        let inner = IndexStream::new(store, path.index(), partitions, filter, expr, false, PAGE_ITEMS_TOTAL);
        Ok(Self { inner, filter: filter.clone() })
    }

    async fn next(&mut self) -> Result<Option<Row<'static>>, StoreError> {
        while let Some(it) = self.inner.next().await? {
            let stored = item::from_item(&it)?;
            if self.filter.matches(&stored.event) {
                return Ok(Some(Row::from_stored(&stored).into_owned()));
            }
        }
        Ok(None)
    }
}

/// One archived part, read newest first, one row group at a time.
struct PartCursor {
    key: String,
    size: u64,
    part: Part,
    /// Row groups still to read, oldest first (read from the end).
    row_groups: Vec<usize>,
    batches: Vec<Batch>,
    /// Rows left in the last batch.
    left: usize,
}

impl PartCursor {
    async fn open(bucket: &Bucket, key: String, entry: &PartEntry, filter: &Filter) -> Result<Self, ExportError> {
        let meta = bucket.parquet_footer(&key).await.map_err(|e| match e {
            BlobError::NotParquet(why) => ExportError::Archive(why),
            other => ExportError::Blob(other),
        })?;
        let rows = u64::try_from(meta.file_metadata().num_rows()).unwrap_or(0);
        if rows != entry.rows {
            return Err(ExportError::Archive(format!("{key} holds {rows} rows; its manifest says {}", entry.rows)));
        }
        let part = Part::from_metadata(std::sync::Arc::new(meta))?;
        let (from, to) = (filter.from.micros(), filter.to.micros());
        let row_groups = (0..part.row_groups())
            .filter(|&rg| part.time_range(rg).is_none_or(|(lo, hi)| hi >= from && lo < to))
            .collect();
        Ok(Self { key, size: entry.bytes, part, row_groups, batches: Vec::new(), left: 0 })
    }

    async fn next(&mut self, bucket: &Bucket, columns: Option<&[&str]>) -> Result<Option<Row<'static>>, ExportError> {
        loop {
            if let Some(batch) = self.batches.last() {
                if self.left > 0 {
                    self.left -= 1;
                    return Ok(Some(batch.row(self.left).into_owned()));
                }
                self.batches.pop();
                self.left = self.batches.last().map_or(0, Batch::len);
                continue;
            }
            let Some(rg) = self.row_groups.pop() else { return Ok(None) };
            let (start, len) = self.part.byte_range(rg);
            let data = bucket.read_range(&self.key, start, start + len).await?;
            let span = Span { offset: start, data: bytes::Bytes::from(data), file_len: self.size };
            self.batches = self.part.read(span, rg, columns)?;
            self.left = self.batches.last().map_or(0, Batch::len);
        }
    }
}

/// The archived events matching a filter, newest first.
struct ArchiveStream<'a> {
    bucket: &'a Bucket,
    tenant: TenantId,
    filter: Filter,
    columns: Option<&'static [&'static str]>,
    /// Archived days in range, oldest first (taken from the end).
    days: Vec<String>,
    cursors: Vec<PartCursor>,
    heads: Vec<Option<Row<'static>>>,
}

impl<'a> ArchiveStream<'a> {
    async fn open(
        bucket: &'a Bucket,
        tenant: &TenantId,
        filter: &Filter,
        columns: Option<&'static [&'static str]>,
    ) -> Result<Self, ExportError> {
        let first = filter.from.day();
        let last = Timestamp::from_micros(filter.to.micros() - 1).unwrap_or(filter.to).day();
        let prefix = manifest::manifests_prefix(tenant.as_str());
        let mut days: Vec<String> = bucket
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| {
                o.key.strip_prefix(&format!("{prefix}date=")).and_then(|d| d.strip_suffix(".json")).map(str::to_owned)
            })
            .filter(|d| *d >= first && *d <= last)
            .collect();
        days.sort();
        Ok(Self {
            bucket,
            tenant: tenant.clone(),
            filter: filter.clone(),
            columns,
            days,
            cursors: Vec::new(),
            heads: Vec::new(),
        })
    }

    async fn open_day(&mut self, day: &str) -> Result<(), ExportError> {
        let key = manifest::manifest_key(self.tenant.as_str(), day);
        let Some((bytes, _)) = self.bucket.get_bytes(&key).await? else { return Ok(()) };
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ExportError::Archive(format!("{key} is unreadable: {e}")))?;
        let (from, to) = (self.filter.from, self.filter.to);
        for entry in &m.parts {
            let (Ok(first), Ok(last)) = (Timestamp::parse(&entry.first), Timestamp::parse(&entry.last)) else {
                return Err(ExportError::Archive(format!("{key} lists {} with invalid times", entry.name)));
            };
            if last < from || first >= to {
                continue;
            }
            let part_key = format!("{}{}", manifest::day_prefix(self.tenant.as_str(), day), entry.name);
            let mut cursor = PartCursor::open(self.bucket, part_key, entry, &self.filter).await?;
            let head = cursor.next(self.bucket, self.columns).await?;
            self.cursors.push(cursor);
            self.heads.push(head);
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<Option<Row<'static>>, ExportError> {
        loop {
            let newest = (0..self.heads.len())
                .filter_map(|i| self.heads[i].as_ref().map(|r| (r.key(), i)))
                .max()
                .map(|(_, i)| i);
            let Some(i) = newest else {
                self.cursors.clear();
                self.heads.clear();
                let Some(day) = self.days.pop() else { return Ok(None) };
                self.open_day(&day).await?;
                continue;
            };
            let next = self.cursors[i].next(self.bucket, self.columns).await?;
            let Some(row) = std::mem::replace(&mut self.heads[i], next) else { continue };
            if self.filter.matches(&row) {
                return Ok(Some(row));
            }
        }
    }
}

/// Handles one delivery of the export queue (one job per message); the response lists
/// the messages to deliver again. A message that is not a job's goes back too, so the
/// queue's redrive policy moves it to the dead-letter queue rather than dropping it.
pub async fn handle(exporter: &Exporter<'_>, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let body = message.body.as_deref().unwrap_or_default();
        let done = match serde_json::from_str::<Message>(body)
            .map_err(|e| e.to_string())
            .and_then(|m| TenantId::parse(&m.tenant_id).map(|t| (t, m.id)).map_err(|e| e.to_string()))
        {
            Ok((tenant, id)) => match exporter.run(&tenant, &id).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(%tenant, id, error = %e, "export job record unavailable; retrying");
                    false
                }
            },
            Err(e) => {
                tracing::error!(body, error = %e, "not an export job message");
                false
            }
        };
        if !done {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Does once what Lambda's event source mapping does for the export queue (the local
/// runner loops on it).
///
/// # Errors
/// When the queue cannot be read.
pub async fn poll_once(
    exporter: &Exporter<'_>,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    wait_seconds: i32,
) -> Result<usize, aws_sdk_sqs::Error> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(1)
        .wait_time_seconds(wait_seconds)
        .send()
        .await?;
    let mut count = 0;
    for m in received.messages.unwrap_or_default() {
        count += 1;
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.body = m.body.clone();
        let mut event = SqsEvent::default();
        event.records.push(record);
        let response = handle(exporter, event).await;
        if let (true, Some(receipt)) = (response.batch_item_failures.is_empty(), m.receipt_handle) {
            sqs.delete_message().queue_url(queue_url).receipt_handle(receipt).send().await?;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_queue_event_carries_a_job_message() {
        let event: SqsEvent = serde_json::from_str(include_str!("../../../events/sqs-export.json"))
            .unwrap_or_else(|e| panic!("not an SQS event: {e}"));
        let body = event.records[0].body.as_deref().unwrap_or_default();
        let message: Message = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        assert!(TenantId::parse(&message.tenant_id).is_ok());
        assert!(serde_json::from_str::<Message>(r#"{"tenant_id": "t", "id": "x", "extra": 1}"#).is_err());
    }
}
