//! Reading archive Parquet back as [`Row`]s, for exports, `verify` and `auditlog
//! convert`; the ids of a part, for the archive's tombstones; a remote part's footer; and
//! one archived event's row, for a read by id.
//!
//! Parts are sorted oldest first and exports run newest first, so a part is read one row
//! group at a time from its last group to its first, and each group in slices from its
//! end ([`Part::slices`]), each slice's rows in reverse. A reader holds one row group's
//! compressed bytes (the writer bounds a group to [`ROW_GROUP_BYTES`] of rows) and at most
//! [`READ_SLICE_BYTES`] of decoded rows, decoded in batches of at most
//! [`READ_BATCH_BYTES`], whatever the size of the events: never a whole part, never a
//! whole large row group decoded. Row groups whose `occurred_at` statistics miss the range
//! asked for are never fetched or decoded.
//!
//! [`ROW_GROUP_BYTES`]: crate::formats::parquet_write::ROW_GROUP_BYTES

use crate::domain::fields::TEXT_FIELDS;
use crate::domain::plan::EventKey;
use crate::domain::row::{Row, STRING_COLUMNS};
use crate::ports::{BlobError, BlobStore};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, PrimitiveArray, RecordBatch, StringArray};
use bytes::{Buf, Bytes};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use std::borrow::Cow;
use std::sync::Arc;

/// Most rows decoded per batch.
const BATCH_ROWS: usize = 8_192;
/// Most decoded row data one slice of a row group holds (estimated from the footer's
/// uncompressed column sizes, pro rata per row); a single larger row is a slice alone.
pub const READ_SLICE_BYTES: u64 = 16 << 20;
/// Most decoded row data per batch within a slice.
pub const READ_BATCH_BYTES: u64 = 4 << 20;

/// An open part: its footer, read once.
pub struct Part {
    meta: ArrowReaderMetadata,
    occurred_at: usize,
}

impl Part {
    /// Reads the footer of a local part.
    ///
    /// # Errors
    /// When the input is not archive Parquet.
    pub fn open<T: ChunkReader>(input: &T) -> Result<Self, ParquetError> {
        Self::new(ArrowReaderMetadata::load(input, ArrowReaderOptions::new())?)
    }

    /// A part whose footer was fetched separately (a remote part).
    ///
    /// # Errors
    /// When the footer is not archive Parquet.
    pub fn from_metadata(metadata: Arc<ParquetMetaData>) -> Result<Self, ParquetError> {
        Self::new(ArrowReaderMetadata::try_new(metadata, ArrowReaderOptions::new())?)
    }

    fn new(meta: ArrowReaderMetadata) -> Result<Self, ParquetError> {
        let occurred_at = meta
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.name() == "occurred_at")
            .ok_or_else(|| ParquetError::General("not an archive part: no occurred_at column".into()))?;
        Ok(Self { meta, occurred_at })
    }

    #[must_use]
    pub fn row_groups(&self) -> usize {
        self.meta.metadata().num_row_groups()
    }

    /// The row count the footer declares.
    #[must_use]
    pub fn rows(&self) -> i64 {
        self.meta.metadata().file_metadata().num_rows()
    }

    /// The row group's first and last `occurred_at` (microseconds), from its statistics.
    #[must_use]
    pub fn time_range(&self, row_group: usize) -> Option<(i64, i64)> {
        let column = self.meta.metadata().row_group(row_group).column(self.occurred_at);
        match column.statistics() {
            Some(Statistics::Int64(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
            _ => None,
        }
    }

    /// The byte range `(start, length)` of a row group's column chunks.
    #[must_use]
    pub fn byte_range(&self, row_group: usize) -> (u64, u64) {
        let rg = self.meta.metadata().row_group(row_group);
        let ranges = rg.columns().iter().map(|c| c.byte_range());
        let start = ranges.clone().map(|(s, _)| s).min().unwrap_or(0);
        let end = ranges.map(|(s, l)| s + l).max().unwrap_or(0);
        (start, end - start)
    }

    /// Decodes one whole row group, only the named columns if `columns` is given (for
    /// small groups and tests: readers of any part use [`Part::slices`]).
    ///
    /// # Errors
    /// When the data cannot be read or decoded.
    pub fn read<T: ChunkReader + 'static>(
        &self,
        input: T,
        row_group: usize,
        columns: Option<&[&str]>,
    ) -> Result<Vec<Batch>, ParquetError> {
        self.batches(input, row_group, columns, None)?.collect()
    }

    /// Decoded bytes of one row of a row group, on average, counting only `columns`.
    fn row_bytes(&self, row_group: usize, columns: Option<&[&str]>) -> u64 {
        let rg = self.meta.metadata().row_group(row_group);
        let wanted = |name: &str| columns.is_none_or(|c| c.contains(&name));
        let bytes: i64 = rg
            .columns()
            .iter()
            .filter(|c| wanted(c.column_path().string().as_str()))
            .map(|c| c.uncompressed_size())
            .sum();
        let rows = rg.num_rows().max(1);
        u64::try_from(bytes.div_euclid(rows) + 1).unwrap_or(1)
    }

    /// A row group as consecutive slices `(first row, rows)`, in order, each holding at
    /// most [`READ_SLICE_BYTES`] of decoded `columns` (at least one row).
    #[must_use]
    pub fn slices(&self, row_group: usize, columns: Option<&[&str]>) -> Vec<(usize, usize)> {
        let rows = usize::try_from(self.meta.metadata().row_group(row_group).num_rows()).unwrap_or(0);
        let per = usize::try_from((READ_SLICE_BYTES / self.row_bytes(row_group, columns)).max(1)).unwrap_or(1);
        (0..rows).step_by(per).map(|first| (first, per.min(rows - first))).collect()
    }

    /// Decodes `rows` rows of a row group from row `first` (a slice of [`Part::slices`]).
    ///
    /// # Errors
    /// When the data cannot be read or decoded.
    pub fn read_slice<T: ChunkReader + 'static>(
        &self,
        input: T,
        row_group: usize,
        columns: Option<&[&str]>,
        (first, rows): (usize, usize),
    ) -> Result<Vec<Batch>, ParquetError> {
        self.batches(input, row_group, columns, Some((first, rows)))?.collect()
    }

    /// The batches of a row group (of one slice of it, if given), decoded one at a time
    /// as they are taken, each at most [`READ_BATCH_BYTES`] of rows.
    ///
    /// # Errors
    /// When the reader cannot be built.
    pub fn batches<T: ChunkReader + 'static>(
        &self,
        input: T,
        row_group: usize,
        columns: Option<&[&str]>,
        slice: Option<(usize, usize)>,
    ) -> Result<impl Iterator<Item = Result<Batch, ParquetError>> + use<T>, ParquetError> {
        let per_batch = usize::try_from(READ_BATCH_BYTES / self.row_bytes(row_group, columns)).unwrap_or(1);
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(input, self.meta.clone())
            .with_row_groups(vec![row_group])
            .with_batch_size(per_batch.clamp(1, BATCH_ROWS));
        if let Some(names) = columns {
            let mask = ProjectionMask::columns(builder.parquet_schema(), names.iter().copied());
            builder = builder.with_projection(mask);
        }
        if let Some((first, rows)) = slice {
            builder = builder
                .with_row_selection(RowSelection::from(vec![RowSelector::skip(first), RowSelector::select(rows)]));
        }
        Ok(builder.build()?.map(|b| Batch::new(&b?)))
    }
}

impl Part {
    /// Decodes row `index` of a row group alone, every column.
    ///
    /// # Errors
    /// When the data cannot be read or decoded.
    pub fn read_row<T: ChunkReader + 'static>(
        &self,
        input: T,
        row_group: usize,
        index: usize,
    ) -> Result<Option<Row<'static>>, ParquetError> {
        let selection = RowSelection::from(vec![RowSelector::skip(index), RowSelector::select(1)]);
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(input, self.meta.clone())
            .with_row_groups(vec![row_group])
            .with_row_selection(selection)
            .with_batch_size(1)
            .build()?;
        for batch in reader {
            let batch = Batch::new(&batch?)?;
            if !batch.is_empty() {
                return Ok(Some(batch.row(0).into_owned()));
            }
        }
        Ok(None)
    }
}

/// A decoded batch, viewable row by row.
pub struct Batch {
    len: usize,
    occurred_at: PrimitiveArray<TimestampMicrosecondType>,
    received_at: Option<PrimitiveArray<TimestampMicrosecondType>>,
    strings: Vec<Option<StringArray>>,
}

impl Batch {
    /// # Errors
    /// When a column has a type the archive does not use.
    pub fn new(batch: &RecordBatch) -> Result<Self, ParquetError> {
        let bad = |name: &str| ParquetError::General(format!("column {name} has an unexpected type"));
        let time = |name: &str| -> Result<Option<PrimitiveArray<TimestampMicrosecondType>>, ParquetError> {
            batch
                .column_by_name(name)
                .map(|c| c.as_primitive_opt::<TimestampMicrosecondType>().cloned().ok_or_else(|| bad(name)))
                .transpose()
        };
        let occurred_at = time("occurred_at")?.ok_or_else(|| bad("occurred_at"))?;
        let received_at = time("received_at")?;
        let strings = STRING_COLUMNS
            .iter()
            .map(|name| {
                batch
                    .column_by_name(name)
                    .map(|c| c.as_string_opt::<i32>().cloned().ok_or_else(|| bad(name)))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { len: batch.num_rows(), occurred_at, received_at, strings })
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Row `i`, borrowing from the batch; columns not read are `None`.
    #[must_use]
    pub fn row(&self, i: usize) -> Row<'_> {
        let mut s: [Option<Cow<'_, str>>; TEXT_FIELDS] = Default::default();
        for (slot, column) in s.iter_mut().zip(&self.strings) {
            *slot = column.as_ref().filter(|c| c.is_valid(i)).map(|c| Cow::Borrowed(c.value(i)));
        }
        Row {
            occurred_at: self.occurred_at.value(i),
            received_at: self.received_at.as_ref().map_or(0, |r| r.value(i)),
            s,
        }
    }
}

/// Reads the `id` column of a local part, `chunk` ids at a time.
///
/// # Errors
/// When the file is not a part with an `id` column.
pub fn ids(
    file: std::fs::File,
    chunk: usize,
) -> Result<impl Iterator<Item = Result<Vec<String>, ParquetError>>, ParquetError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let id_column = builder.parquet_schema().columns().iter().position(|c| c.name() == "id");
    let id_column = id_column.ok_or_else(|| ParquetError::General("a part without an id column".into()))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [id_column]);
    let reader = builder.with_projection(mask).with_batch_size(chunk).build()?;
    Ok(reader.map(|batch| {
        let batch = batch.map_err(|e| ParquetError::General(e.to_string()))?;
        Ok(batch.column(0).as_string::<i32>().iter().flatten().map(str::to_owned).collect())
    }))
}

/// A remote part that cannot be read as Parquet.
#[derive(Debug, thiserror::Error)]
pub enum FooterError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("not Parquet: {0}")]
    NotParquet(String),
}

/// A remote Parquet object's footer, read with two ranged GETs (its length, then itself).
///
/// # Errors
/// [`FooterError::NotParquet`] when the object has no valid footer, or a read failure.
pub async fn footer(store: &dyn BlobStore, key: &str) -> Result<ParquetMetaData, FooterError> {
    let not_parquet = |why: String| FooterError::NotParquet(format!("{key}: {why}"));
    let end = store.tail(key, 8).await?;
    if end.len() != 8 || &end[4..] != b"PAR1" {
        return Err(not_parquet("no Parquet footer".into()));
    }
    let len = u64::from(u32::from_le_bytes([end[0], end[1], end[2], end[3]]));
    let footer = store.tail(key, len + 8).await?;
    ParquetMetaDataReader::decode_metadata(&footer[..footer.len() - 8]).map_err(|e| not_parquet(e.to_string()))
}

/// The row count a remote Parquet object's footer declares.
///
/// # Errors
/// As [`footer`].
pub async fn remote_rows(store: &dyn BlobStore, key: &str) -> Result<u64, FooterError> {
    let meta = footer(store, key).await?;
    u64::try_from(meta.file_metadata().num_rows()).map_err(|e| FooterError::NotParquet(format!("{key}: {e}")))
}

/// The row of the event with `key` in a remote part: the footer, then one ranged read of
/// the row group whose `occurred_at` statistics hold the key's time (of the next one too
/// only when equal times straddle two groups), whose `id` and time columns find the row,
/// which alone is then decoded whole. `None` when the part has no such row.
///
/// # Errors
/// As [`footer`], and [`FooterError::NotParquet`] when a row group cannot be decoded.
pub async fn remote_row(
    store: &dyn BlobStore,
    object: &str,
    key: &EventKey,
) -> Result<Option<Row<'static>>, FooterError> {
    let bad = |e: ParquetError| FooterError::NotParquet(format!("{object}: {e}"));
    let part = Part::from_metadata(Arc::new(footer(store, object).await?)).map_err(bad)?;
    let (micros, id) = key.key();
    for rg in
        (0..part.row_groups()).filter(|&rg| part.time_range(rg).is_none_or(|(lo, hi)| lo <= micros && micros <= hi))
    {
        let (start, len) = part.byte_range(rg);
        let data = Bytes::from(store.read_range(object, start, start + len).await?);
        // The footer's metadata is all the reader needs besides this range.
        let span = Span { offset: start, data, file_len: start + len };
        let batches = part.read(span.clone(), rg, Some(&["id", "occurred_at"])).map_err(bad)?;
        let mut index = 0;
        for batch in &batches {
            for i in 0..batch.len() {
                if batch.row(i).key() == (micros, id) {
                    return part.read_row(span, rg, index + i).map_err(bad);
                }
            }
            index += batch.len();
        }
    }
    Ok(None)
}

/// One contiguous byte range of a remote file, standing in for the whole file: enough to
/// decode the row group it covers.
#[derive(Clone)]
pub struct Span {
    pub offset: u64,
    pub data: Bytes,
    pub file_len: u64,
}

impl Length for Span {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for Span {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        Ok(self.get_bytes(start, 0)?.reader()).map(|_| {
            let from = usize::try_from(start - self.offset).unwrap_or(0);
            self.data.slice(from..).reader()
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        let end = start + length as u64;
        if start < self.offset || end > self.offset + self.data.len() as u64 {
            return Err(ParquetError::General(format!("bytes {start}..{end} are outside the fetched range")));
        }
        let from = usize::try_from(start - self.offset).map_err(|e| ParquetError::General(e.to_string()))?;
        Ok(self.data.slice(from..from + length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::arb_event;
    use crate::domain::timestamp::Timestamp;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn rows_read_back_equal_the_rows_written(events in proptest::collection::vec(arb_event(), 1..60)) {
            let (stored, bytes) = crate::formats::tests::part_of(events.into_iter().map(|e| e.stamp(Timestamp::now())));
            let part = Part::open(&bytes).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(part.row_groups(), 1);
            let (lo, hi) = part.time_range(0).unwrap_or_default();
            prop_assert_eq!(lo, stored[0].event.occurred_at.micros());
            prop_assert_eq!(hi, stored[stored.len() - 1].event.occurred_at.micros());
            // Read through a span holding only the row group's bytes, as from S3.
            let (start, len) = part.byte_range(0);
            let span = Span {
                offset: start,
                data: bytes.slice(usize::try_from(start).unwrap_or(0)..usize::try_from(start + len).unwrap_or(0)),
                file_len: bytes.len() as u64,
            };
            let batches = part.read(span, 0, None).unwrap_or_else(|e| panic!("{e}"));
            let rows: Vec<Row<'_>> = batches.iter().flat_map(|b| (0..b.len()).map(|i| b.row(i))).collect();
            prop_assert_eq!(rows.len(), stored.len());
            for (row, s) in rows.iter().zip(&stored) {
                prop_assert_eq!(row, &Row::from_stored(s));
            }
        }
    }

    #[tokio::test]
    async fn one_row_is_found_by_its_key_in_a_remote_part() {
        use crate::domain::event::Event;
        use crate::domain::fixtures::with;
        use crate::domain::tenant::TenantId;
        use crate::memory::MemoryBlobs;
        use crate::ports::Condition;
        let now = Timestamp::now();
        let tenant = TenantId::parse("t").unwrap_or_else(|e| panic!("{e}"));
        // Two row groups, times shared by three events each (so the id decides), one
        // shared time across the groups' boundary.
        let events = (0..70_000).map(|i: i64| {
            let raw = with(
                serde_json::json!({"id": format!("e-{i:05}"), "occurred_at": now.plus_seconds(-(i / 3)).to_string()}),
            );
            Event::validate(raw, &tenant, now).unwrap_or_else(|v| panic!("{v:?}")).stamp(now)
        });
        let (stored, bytes) = crate::formats::tests::part_of(events);
        let bucket = MemoryBlobs::default();
        bucket.put_bytes("p.parquet", bytes.to_vec(), "x", Condition::None).await.unwrap_or_else(|e| panic!("{e}"));
        for s in [&stored[0], &stored[9_001], &stored[65_535], &stored[65_536], &stored[69_999]] {
            let key = EventKey::new(s.event.occurred_at, &s.event.id);
            let row = remote_row(&bucket, "p.parquet", &key).await.unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq_row(row.as_ref(), s);
        }
        let absent = EventKey::new(now, "no-such-id");
        assert!(remote_row(&bucket, "p.parquet", &absent).await.ok().flatten().is_none());
    }

    #[test]
    fn events_of_sixty_kib_make_row_groups_bounded_by_bytes_read_in_bounded_slices() {
        use crate::domain::event::Event;
        use crate::domain::fixtures::with;
        use crate::domain::tenant::TenantId;
        use crate::formats::parquet_write::{ROW_GROUP_BYTES, raw_size};
        let now = Timestamp::now();
        let tenant = TenantId::parse("t").unwrap_or_else(|e| panic!("{e}"));
        // 60 KiB each: metadata at its 32 KiB limit, the rest in changes.
        let (meta, change) = ("m".repeat(31 * 1024), "c".repeat(14 * 1024));
        let events = (0..700).map(|i: i64| {
            let raw = with(serde_json::json!({
                "id": format!("big-{i:04}"),
                "occurred_at": now.plus_seconds(-i).to_string(),
                "metadata": {"blob": meta},
                "changes": [{"field": "f", "old": change, "new": change}],
            }));
            Event::validate(raw, &tenant, now).unwrap_or_else(|v| panic!("{v:?}")).stamp(now)
        });
        let (stored, bytes) = crate::formats::tests::part_of(events);
        let weight = raw_size(&Row::from_stored(&stored[0]));
        let part = Part::open(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(part.row_groups() >= 3, "42 MB of rows in groups of at most 16 MiB: {}", part.row_groups());
        let mut rows = 0;
        for rg in 0..part.row_groups() {
            let n = usize::try_from(part.meta.metadata().row_group(rg).num_rows()).unwrap_or(0);
            assert!(n * weight <= ROW_GROUP_BYTES + weight, "row group {rg}: {n} rows of {weight} bytes");
            for (first, len) in part.slices(rg, None) {
                assert!(len as u64 * weight as u64 <= READ_SLICE_BYTES.max(weight as u64), "slice of {len} rows");
                let batches =
                    part.batches(bytes.clone(), rg, None, Some((first, len))).unwrap_or_else(|e| panic!("{e}"));
                for batch in batches {
                    let batch = batch.unwrap_or_else(|e| panic!("{e}"));
                    assert!(batch.len() as u64 * weight as u64 <= READ_BATCH_BYTES.max(weight as u64));
                    rows += batch.len();
                }
            }
        }
        assert_eq!(rows, 700);
    }

    fn prop_assert_eq_row(row: Option<&Row<'static>>, s: &crate::domain::event::StoredEvent) {
        assert_eq!(row, Some(&Row::from_stored(s)), "{}", s.event.id);
        assert_eq!(row.map(Row::to_stored), Some(Ok(s.clone())));
    }
}
