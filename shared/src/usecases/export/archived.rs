//! The archived side of an export: the archived events matching a filter, newest first,
//! one day at a time, each day's parts merged.

use crate::domain::filter::{Filter, Order};
use crate::domain::manifest::{self, Manifest, PartEntry};
use crate::domain::row::Row;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::formats::parquet_read::{self, Batch, Part, Span};
use crate::ports::BlobStore;
use crate::usecases::export::ExportError;
use crate::usecases::merge::{Ahead, Merge, Pull};
use async_trait::async_trait;

/// One archived part, read newest first, one row group at a time.
pub struct PartRows<'a> {
    bucket: &'a dyn BlobStore,
    columns: Option<&'static [&'static str]>,
    key: String,
    size: u64,
    part: Part,
    /// Row groups still to read, oldest first (read from the end).
    row_groups: Vec<usize>,
    batches: Vec<Batch>,
    /// Rows left in the last batch.
    left: usize,
}

impl<'a> PartRows<'a> {
    async fn open(
        bucket: &'a dyn BlobStore,
        columns: Option<&'static [&'static str]>,
        key: String,
        entry: &PartEntry,
        filter: &Filter,
    ) -> Result<Self, ExportError> {
        let meta = parquet_read::footer(bucket, &key).await?;
        let rows = u64::try_from(meta.file_metadata().num_rows()).unwrap_or(0);
        if rows != entry.rows {
            return Err(ExportError::Archive(format!("{key} holds {rows} rows; its manifest says {}", entry.rows)));
        }
        let part = Part::from_metadata(std::sync::Arc::new(meta))?;
        let (from, to) = (filter.from.micros(), filter.to.micros());
        let row_groups = (0..part.row_groups())
            .filter(|&rg| part.time_range(rg).is_none_or(|(lo, hi)| hi >= from && lo < to))
            .collect();
        Ok(Self { bucket, columns, key, size: entry.bytes, part, row_groups, batches: Vec::new(), left: 0 })
    }
}

#[async_trait]
impl Pull for PartRows<'_> {
    type Item = Row<'static>;
    type Error = ExportError;

    async fn pull(&mut self) -> Result<Option<Row<'static>>, ExportError> {
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
            let data = self.bucket.read_range(&self.key, start, start + len).await?;
            let span = Span { offset: start, data: bytes::Bytes::from(data), file_len: self.size };
            self.batches = self.part.read(span, rg, self.columns)?;
            self.left = self.batches.last().map_or(0, Batch::len);
        }
    }
}

/// The archived events matching a filter, newest first.
pub struct ArchiveRows<'a> {
    bucket: &'a dyn BlobStore,
    tenant: &'a TenantId,
    filter: &'a Filter,
    columns: Option<&'static [&'static str]>,
    /// Archived days in range, oldest first (taken from the end).
    days: Vec<String>,
    day: Option<Merge<Ahead<PartRows<'a>>>>,
}

impl<'a> ArchiveRows<'a> {
    /// # Errors
    /// [`ExportError::Blob`] when the manifests cannot be listed.
    pub async fn open(
        bucket: &'a dyn BlobStore,
        tenant: &'a TenantId,
        filter: &'a Filter,
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
        Ok(Self { bucket, tenant, filter, columns, days, day: None })
    }

    /// The parts of `day` that overlap the range, merged.
    async fn open_day(&self, day: &str) -> Result<Merge<Ahead<PartRows<'a>>>, ExportError> {
        let key = manifest::manifest_key(self.tenant.as_str(), day);
        let mut parts = Vec::new();
        if let Some((bytes, _)) = self.bucket.get_bytes(&key).await? {
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| ExportError::Archive(format!("{key} is unreadable: {e}")))?;
            let (from, to) = (self.filter.from, self.filter.to);
            for entry in &m.parts {
                let (Ok(first), Ok(last)) = (Timestamp::parse(&entry.first), Timestamp::parse(&entry.last)) else {
                    return Err(ExportError::Archive(format!("{key} lists {} with invalid times", entry.name)));
                };
                if last < from || first >= to {
                    continue;
                }
                let part_key = format!("{}{}", manifest::day_prefix(self.tenant.as_str(), day), entry.name);
                parts.push(Ahead::new(PartRows::open(self.bucket, self.columns, part_key, entry, self.filter).await?));
            }
        }
        Ok(Merge::new(parts, Order::Desc))
    }
}

#[async_trait]
impl Pull for ArchiveRows<'_> {
    type Item = Row<'static>;
    type Error = ExportError;

    async fn pull(&mut self) -> Result<Option<Row<'static>>, ExportError> {
        loop {
            if let Some(day) = &mut self.day {
                match day.next().await? {
                    Some((_, row)) if self.filter.matches(&row) => return Ok(Some(row)),
                    Some(_) => continue,
                    None => self.day = None,
                }
            }
            let Some(day) = self.days.pop() else { return Ok(None) };
            self.day = Some(self.open_day(&day).await?);
        }
    }
}
