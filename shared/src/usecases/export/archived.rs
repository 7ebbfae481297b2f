//! The archived side of an export: the archived events of a range, newest first, read a
//! day at a time as the export reaches it, each day's parts merged.
//!
//! An archive run can move days while an export runs: it writes a part's manifest, then
//! tombstones the part's events, and an online read after that misses them. So the
//! archived side never trusts an old view: days are opened only when the export reaches
//! them (their manifest read then), and after every online read [`ArchiveSide::sync`]
//! lists the days again and re-reads the manifests of the open days, adding parts that
//! appeared. A part that appears is read from the export's position down: its events
//! above that position were read online before the archive tombstoned them (otherwise an
//! earlier sync would have found the part), so each event comes out once.

use crate::domain::filter::Filter;
use crate::domain::manifest::{self, Manifest, ManifestObject, PartEntry};
use crate::domain::row::Row;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::formats::parquet_read::{self, Batch, Part, Span};
use crate::ports::BlobStore;
use crate::usecases::export::ExportError;
use crate::usecases::merge::{Ahead, Keyed, Pull, Sorted};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// An export's position: the last key it wrote, `(occurred_at micros, id)`.
pub type Position = (i64, String);

/// A row group being read: its index, its bytes, and its slices (row ranges) still to
/// decode, oldest first.
type OpenGroup = (usize, Span, Vec<(usize, usize)>);

/// One archived part, read newest first, one row group at a time and each group in
/// slices from its end, from the export's position down: it holds one row group's
/// compressed bytes and one decoded slice ([`parquet_read::READ_SLICE_BYTES`]).
pub struct PartRows<'a> {
    bucket: &'a dyn BlobStore,
    columns: Option<&'static [&'static str]>,
    key: String,
    size: u64,
    part: Part,
    /// Row groups still to read, oldest first (read from the end).
    row_groups: Vec<usize>,
    /// The row group being read: its bytes, and its slices still to decode, oldest first.
    group: Option<OpenGroup>,
    batches: Vec<Batch>,
    /// Rows left in the last batch.
    left: usize,
    /// Rows above this key are skipped (they were written from the online side).
    below: Option<Position>,
}

impl<'a> PartRows<'a> {
    async fn open(
        bucket: &'a dyn BlobStore,
        columns: Option<&'static [&'static str]>,
        key: String,
        entry: &PartEntry,
        filter: &Filter,
        below: Option<Position>,
    ) -> Result<Self, ExportError> {
        let meta = parquet_read::footer(bucket, &key).await?;
        let rows = u64::try_from(meta.file_metadata().num_rows()).unwrap_or(0);
        if rows != entry.rows {
            return Err(ExportError::Archive(format!("{key} holds {rows} rows; its manifest says {}", entry.rows)));
        }
        let part = Part::from_metadata(std::sync::Arc::new(meta))?;
        let (from, mut to) = (filter.from.micros(), filter.to.micros());
        if let Some((at, _)) = &below {
            to = to.min(at + 1);
        }
        let row_groups = (0..part.row_groups())
            .filter(|&rg| part.time_range(rg).is_none_or(|(lo, hi)| hi >= from && lo < to))
            .collect();
        Ok(Self {
            bucket,
            columns,
            key,
            size: entry.bytes,
            part,
            row_groups,
            group: None,
            batches: Vec::new(),
            left: 0,
            below,
        })
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
                    let row = batch.row(self.left);
                    if self.below.as_ref().is_some_and(|(t, id)| row.key() > (*t, id.as_str())) {
                        continue;
                    }
                    self.below = None;
                    return Ok(Some(row.into_owned()));
                }
                self.batches.pop();
                self.left = self.batches.last().map_or(0, Batch::len);
                continue;
            }
            if let Some((rg, span, slices)) = &mut self.group {
                if let Some(slice) = slices.pop() {
                    self.batches = self.part.read_slice(span.clone(), *rg, self.columns, slice)?;
                    self.left = self.batches.last().map_or(0, Batch::len);
                    continue;
                }
                self.group = None;
            }
            let Some(rg) = self.row_groups.pop() else { return Ok(None) };
            let (start, len) = self.part.byte_range(rg);
            let data = self.bucket.read_range(&self.key, start, start + len).await?;
            let span = Span { offset: start, data: bytes::Bytes::from(data), file_len: self.size };
            self.group = Some((rg, span, self.part.slices(rg, self.columns)));
        }
    }
}

/// An open part and the newest time it may still hold: a part is read only once the
/// export may need its rows, so parts of a day that do not overlap hold no bytes at once.
struct Stream<'a> {
    rows: Ahead<PartRows<'a>>,
    /// No row left in the part is later than this (microseconds).
    upper: i64,
}

/// A day whose manifest the export has read, and what it opened of it.
struct OpenDay {
    etag: Option<String>,
    parts: HashSet<String>,
}

/// The archived events of a range, newest first, over days opened as the export
/// reaches them.
pub struct ArchiveSide<'a> {
    bucket: &'a dyn BlobStore,
    tenant: &'a TenantId,
    filter: &'a Filter,
    columns: Option<&'static [&'static str]>,
    /// Days in range that had a manifest when last listed.
    listed: BTreeSet<String>,
    opened: BTreeMap<String, OpenDay>,
    streams: Vec<Stream<'a>>,
    /// Reads of the bucket for manifests (lists and gets), for the tests.
    pub manifest_reads: u32,
}

impl<'a> ArchiveSide<'a> {
    /// # Errors
    /// [`ExportError::Blob`] when the manifests cannot be listed.
    pub async fn open(
        bucket: &'a dyn BlobStore,
        tenant: &'a TenantId,
        filter: &'a Filter,
        columns: Option<&'static [&'static str]>,
    ) -> Result<Self, ExportError> {
        let mut side = Self {
            bucket,
            tenant,
            filter,
            columns,
            listed: BTreeSet::new(),
            opened: BTreeMap::new(),
            streams: Vec::new(),
            manifest_reads: 0,
        };
        side.list().await?;
        Ok(side)
    }

    fn first_day(&self) -> String {
        self.filter.from.day()
    }

    fn last_day(&self) -> String {
        Timestamp::from_micros(self.filter.to.micros() - 1).unwrap_or(self.filter.to).day()
    }

    async fn list(&mut self) -> Result<(), ExportError> {
        let t = self.tenant.as_str();
        let prefix = format!("{}date=", manifest::manifests_prefix(t));
        self.manifest_reads += 1;
        let (first, last) = (self.first_day(), self.last_day());
        for o in self.bucket.list(&prefix).await? {
            if let Some(ManifestObject::Day(d)) = manifest::parse_key(t, &o.key)
                && d >= first
                && d <= last
            {
                self.listed.insert(d);
            }
        }
        Ok(())
    }

    /// Reads `date`'s manifest and opens the parts not opened yet that overlap the range,
    /// each from `below` down.
    async fn read_day(&mut self, date: &str, below: Option<&Position>) -> Result<(), ExportError> {
        let key = manifest::manifest_key(self.tenant.as_str(), date);
        self.manifest_reads += 1;
        let Some((bytes, etag)) = self.bucket.get_bytes(&key).await? else {
            self.opened.entry(date.to_owned()).or_insert(OpenDay { etag: None, parts: HashSet::new() });
            return Ok(());
        };
        let day = self.opened.entry(date.to_owned()).or_insert(OpenDay { etag: None, parts: HashSet::new() });
        if day.etag.as_deref() == Some(etag.as_str()) {
            return Ok(());
        }
        day.etag = Some(etag);
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ExportError::Archive(format!("{key} is unreadable: {e}")))?;
        let (from, to) = (self.filter.from, self.filter.to);
        let mut new = Vec::new();
        for entry in m.parts {
            if !day.parts.insert(entry.name.clone()) {
                continue;
            }
            let (Ok(first), Ok(last)) = (Timestamp::parse(&entry.first), Timestamp::parse(&entry.last)) else {
                return Err(ExportError::Archive(format!("{key} lists {} with invalid times", entry.name)));
            };
            if last < from || first >= to || below.is_some_and(|(t, _)| first.micros() > *t) {
                continue;
            }
            new.push(entry);
        }
        for entry in new {
            let part_key = format!("{}{}", manifest::day_prefix(self.tenant.as_str(), date), entry.name);
            let part = PartRows::open(self.bucket, self.columns, part_key, &entry, self.filter, below.cloned()).await?;
            let last = Timestamp::parse(&entry.last).map_or(i64::MAX, Timestamp::micros);
            let upper = below.map_or(last, |(t, _)| last.min(*t));
            self.streams.push(Stream { rows: Ahead::new(part), upper });
        }
        Ok(())
    }

    /// Catches up with archive runs since the last look: lists the days again, and
    /// re-reads the manifests of the open days at or below `position`, opening the parts
    /// that appeared from `position` down.
    ///
    /// # Errors
    /// [`ExportError`] when the bucket cannot be read or a manifest is unreadable.
    pub async fn sync(&mut self, position: Option<&Position>) -> Result<(), ExportError> {
        self.list().await?;
        let reached: Vec<String> =
            self.opened.keys().filter(|d| position.is_none_or(|(t, _)| day_start(d).micros() <= *t)).cloned().collect();
        for date in reached {
            self.read_day(&date, position).await?;
        }
        Ok(())
    }

    /// Opens the newest listed day not yet opened whose end lies above `frontier` (the
    /// time of the next key the export would write), so no archived row above it is left
    /// unread;
    /// `true` when it opened one.
    ///
    /// # Errors
    /// As [`ArchiveSide::sync`].
    pub async fn open_due(&mut self, frontier: Option<i64>, below: Option<&Position>) -> Result<bool, ExportError> {
        let due = self
            .listed
            .iter()
            .rev()
            .find(|d| {
                !self.opened.contains_key(*d) && frontier.is_none_or(|t| day_start(d).plus_seconds(86_400).micros() > t)
            })
            .cloned();
        match due {
            Some(date) => {
                self.read_day(&date, below).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads, of the open parts, those that may hold the newest row (each part with
    /// nothing at hand whose remaining rows may be as new as the newest row at hand), and
    /// drops the finished ones: a part is read only when its turn may have come.
    ///
    /// # Errors
    /// [`ExportError`] when a part cannot be read.
    pub async fn fill(&mut self) -> Result<(), ExportError> {
        loop {
            let newest = self.streams.iter().filter_map(|s| s.rows.head().map(|r| r.key().0)).max();
            let due = self
                .streams
                .iter()
                .enumerate()
                .filter(|(_, s)| s.rows.head().is_none() && !s.rows.exhausted())
                .filter(|(_, s)| newest.is_none_or(|t| s.upper >= t))
                .max_by_key(|(_, s)| s.upper)
                .map(|(i, _)| i);
            let Some(i) = due else { break };
            let s = &mut self.streams[i];
            s.rows.fill().await?;
            if let Some(t) = s.rows.head().map(|r| r.key().0) {
                s.upper = t;
            }
        }
        self.streams.retain(|s| s.rows.head().is_some() || !s.rows.exhausted());
        Ok(())
    }

    /// The newest row at hand.
    #[must_use]
    pub fn head(&self) -> Option<&Row<'static>> {
        self.best().and_then(|i| self.streams[i].rows.head())
    }

    /// Takes the newest row at hand.
    pub fn pop(&mut self) -> Option<Row<'static>> {
        let i = self.best()?;
        self.streams[i].rows.pop()
    }

    fn best(&self) -> Option<usize> {
        let mut best: Option<(usize, (i64, &str))> = None;
        for (i, s) in self.streams.iter().enumerate() {
            if let Some(key) = s.rows.head().map(Keyed::key)
                && best.is_none_or(|(_, b)| key > b)
            {
                best = Some((i, key));
            }
        }
        best.map(|(i, _)| i)
    }
}

fn day_start(day: &str) -> Timestamp {
    Timestamp::parse(&format!("{day}T00:00:00Z")).unwrap_or(Timestamp::MIN)
}
