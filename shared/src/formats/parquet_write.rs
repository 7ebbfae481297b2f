//! The archive's Parquet form (contract section 4): one writer, used by the archive job
//! and by `auditlog convert`, so both produce the same columns, types and layout.
//!
//! Rows are appended in order (the caller sorts by `occurred_at`, then `id`) and written
//! in row groups of at most [`ROW_GROUP_ROWS`] rows and [`ROW_GROUP_BYTES`] of row data,
//! zstd-compressed with dictionaries and statistics so Athena and DuckDB can prune by time,
//! tenant and action. Every buffer is bounded by bytes as well as rows, so events of the
//! largest size (64 KiB) cost no more memory than small ones: the writer holds at most
//! [`BATCH_BYTES`] of rows not yet encoded and one row group's encoded pages.

use crate::domain::event::StoredEvent;
use crate::domain::fields::{FIELDS, Kind, TEXT_FIELDS};
use crate::domain::row::Row;
use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::io::Write;
use std::sync::Arc;

/// Most rows per row group: large enough for efficient scans.
pub const ROW_GROUP_ROWS: usize = 65_536;
/// Most row data per row group (the rows' text, as [`raw_size`] counts it): a reader holds
/// a row group's compressed bytes, which this bounds too, and decodes it in slices of
/// [`crate::formats::parquet_read::READ_SLICE_BYTES`]. About 32,000 rows of a typical
/// 500-byte event; 260 rows of the largest.
pub const ROW_GROUP_BYTES: usize = 16 << 20;
/// Most rows per Arrow batch handed to the Parquet writer.
const BATCH_ROWS: usize = 8_192;
/// Most row data per Arrow batch: builders of 8,192 rows of 64 KiB would hold 512 MiB.
pub const BATCH_BYTES: usize = 4 << 20;
/// Values encoded between two checks of a page's size: with the largest values, a page
/// grows at most this many past its 1 MiB limit.
const WRITE_BATCH: usize = 64;

/// What a row weighs in the bounds above: its text, and the two times.
#[must_use]
pub fn raw_size(row: &Row<'_>) -> usize {
    16 + row.s.iter().flatten().map(|v| v.len()).sum::<usize>()
}

/// The Arrow schema of an archive part: the fields in order, times as UTC microsecond
/// timestamps, the rest UTF-8.
#[must_use]
pub fn schema() -> SchemaRef {
    let fields: Vec<Field> = FIELDS
        .iter()
        .map(|f| {
            let ty = match f.kind {
                Kind::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                Kind::Text | Kind::Json => DataType::Utf8,
            };
            Field::new(f.column, ty, !f.required)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Columns that are (nearly) unique per row: a dictionary would only cost time before
/// the writer falls back to plain encoding.
const UNIQUE_COLUMNS: &[&str] =
    &["id", "occurred_at", "received_at", "request_id", "description", "changes", "metadata", "hash"];

fn properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        // Row groups are cut by the writer itself, by rows and by bytes.
        .set_max_row_group_row_count(None)
        .set_write_batch_size(WRITE_BATCH)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(true)
        .set_created_by(format!("audit-log {}", env!("CARGO_PKG_VERSION")));
    for name in UNIQUE_COLUMNS {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*name), false);
    }
    b.build()
}

/// Column builders for one batch.
struct Columns {
    strings: Vec<StringBuilder>,
    occurred_at: TimestampMicrosecondBuilder,
    received_at: TimestampMicrosecondBuilder,
}

impl Columns {
    fn new() -> Self {
        Self {
            strings: (0..TEXT_FIELDS).map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 24)).collect(),
            occurred_at: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            received_at: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
        }
    }

    fn push(&mut self, row: &Row<'_>) {
        for (b, v) in self.strings.iter_mut().zip(&row.s) {
            b.append_option(v.as_deref());
        }
        self.occurred_at.append_value(row.occurred_at);
        self.received_at.append_value(row.received_at);
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut strings = self.strings.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(FIELDS.len());
        for f in &FIELDS {
            match (f.kind, f.column) {
                (Kind::Time, "occurred_at") => cols.push(Arc::new(self.occurred_at.finish())),
                (Kind::Time, _) => cols.push(Arc::new(self.received_at.finish())),
                _ => cols.extend(strings.next()),
            }
        }
        RecordBatch::try_new(Arc::clone(schema), cols)
    }
}

/// Writes archive Parquet to any `Write`, streaming: memory holds one batch of rows and
/// the current row group's encoded pages.
pub struct PartWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    columns: Columns,
    pending: usize,
    pending_bytes: usize,
    group_rows: usize,
    group_bytes: usize,
    rows: u64,
}

impl<W: Write + Send> PartWriter<W> {
    /// # Errors
    /// When the Parquet header cannot be written.
    pub fn new(out: W) -> Result<Self, parquet::errors::ParquetError> {
        let schema = schema();
        let writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(properties()))?;
        Ok(Self {
            writer,
            schema,
            columns: Columns::new(),
            pending: 0,
            pending_bytes: 0,
            group_rows: 0,
            group_bytes: 0,
            rows: 0,
        })
    }

    /// Appends one event; events must come sorted by `occurred_at`, then `id`.
    ///
    /// # Errors
    /// When a full batch cannot be encoded or written.
    pub fn push(&mut self, event: &StoredEvent) -> Result<(), parquet::errors::ParquetError> {
        self.push_row(&Row::from_stored(event))
    }

    /// Appends one row, in the same order as [`PartWriter::push`].
    ///
    /// # Errors
    /// When a full batch cannot be encoded or written.
    pub fn push_row(&mut self, row: &Row<'_>) -> Result<(), parquet::errors::ParquetError> {
        let size = raw_size(row);
        self.columns.push(row);
        self.pending += 1;
        self.pending_bytes += size;
        self.group_rows += 1;
        self.group_bytes += size;
        self.rows += 1;
        if self.group_rows >= ROW_GROUP_ROWS || self.group_bytes >= ROW_GROUP_BYTES {
            self.flush_batch()?;
            self.writer.flush()?;
            (self.group_rows, self.group_bytes) = (0, 0);
        } else if self.pending == BATCH_ROWS || self.pending_bytes >= BATCH_BYTES {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), parquet::errors::ParquetError> {
        if self.pending > 0 {
            let batch = self.columns.finish(&self.schema)?;
            self.writer.write(&batch)?;
            (self.pending, self.pending_bytes) = (0, 0);
        }
        Ok(())
    }

    /// The sink, holding what has been written so far (a file written as it is produced
    /// hands it on from here).
    pub fn sink_mut(&mut self) -> &mut W {
        self.writer.inner_mut()
    }

    /// Rows written so far.
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the footer and returns the sink.
    ///
    /// # Errors
    /// When the last rows or the footer cannot be written.
    pub fn finish(mut self) -> Result<W, parquet::errors::ParquetError> {
        self.flush_batch()?;
        self.writer.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::arb_event;
    use crate::domain::timestamp::Timestamp;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn rows_read_back_with_the_contract_columns(events in proptest::collection::vec(arb_event(), 1..40)) {
            let (stored, bytes) = crate::formats::tests::part_of(events.into_iter().map(|e| e.stamp(Timestamp::now())));
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap_or_else(|e| panic!("{e}"));
            let names: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
            prop_assert_eq!(names, FIELDS.iter().map(|f| f.column.to_owned()).collect::<Vec<_>>());
            let mut row = 0;
            for batch in reader.build().unwrap_or_else(|e| panic!("{e}")) {
                let batch = batch.unwrap_or_else(|e| panic!("{e}"));
                let ids = batch.column(1).as_string::<i32>();
                let times = batch.column(2).as_primitive::<TimestampMicrosecondType>();
                let hashes = batch.column(26).as_string::<i32>();
                for i in 0..batch.num_rows() {
                    prop_assert_eq!(ids.value(i), stored[row].event.id.as_str());
                    prop_assert_eq!(times.value(i), stored[row].event.occurred_at.micros());
                    prop_assert_eq!(hashes.value(i), stored[row].hash.as_str());
                    row += 1;
                }
            }
            prop_assert_eq!(row, stored.len());
        }
    }
}
