//! Export files (contract section 5): CSV per RFC 4180 with a formula guard, JSON lines,
//! or Parquet with the archive's schema, written from [`Row`]s by the field table. One
//! writer ([`FileWriter`]), used by the export function and by `auditlog convert`.

use crate::domain::export::Format;
use crate::domain::fields::{self, FIELDS, Kind, index};
use crate::domain::row::{Cell, Row, col};
use crate::formats::parquet_write::PartWriter;

/// The CSV columns, in order (contract section 5).
pub const CSV_COLUMNS: [&str; 19] = [
    "id",
    "occurred_at",
    "action",
    "outcome",
    "actor_type",
    "actor_id",
    "actor_name",
    "actor_email",
    "resource_type",
    "resource_id",
    "resource_name",
    "workspace_id",
    "workspace_name",
    "source_ip",
    "user_agent",
    "request_id",
    "description",
    "changes",
    "metadata",
];

/// The field of each CSV column.
const CSV_FIELDS: [usize; CSV_COLUMNS.len()] = {
    let mut out = [0; CSV_COLUMNS.len()];
    let mut i = 0;
    while i < CSV_COLUMNS.len() {
        out[i] = index(CSV_COLUMNS[i]);
        i += 1;
    }
    out
};

/// The export formats that are text, one row a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    Csv,
    Jsonl,
}

impl TextFormat {
    /// The text format `format` is, if it is one.
    #[must_use]
    pub fn of(format: Format) -> Option<Self> {
        match format {
            Format::Csv => Some(Self::Csv),
            Format::Jsonl => Some(Self::Jsonl),
            Format::Parquet => None,
        }
    }

    /// The export format this is.
    #[must_use]
    pub fn format(self) -> Format {
        match self {
            Self::Csv => Format::Csv,
            Self::Jsonl => Format::Jsonl,
        }
    }

    /// The start of a file: the CSV header row, or nothing.
    #[must_use]
    pub fn header(self) -> Vec<u8> {
        match self {
            Self::Csv => {
                let mut out = CSV_COLUMNS.join(",").into_bytes();
                out.extend_from_slice(b"\r\n");
                out
            }
            Self::Jsonl => Vec::new(),
        }
    }

    /// Appends one row.
    pub fn write(self, row: &Row<'_>, out: &mut Vec<u8>) {
        match self {
            Self::Csv => write_csv(row, out),
            Self::Jsonl => write_jsonl(row, out),
        }
    }
}

/// The archive columns a file of `format` needs (`None`: all of them).
#[must_use]
pub fn columns(format: Format) -> Option<&'static [&'static str]> {
    match format {
        Format::Csv => Some(&CSV_COLUMNS),
        Format::Jsonl | Format::Parquet => None,
    }
}

/// One export file written as it is produced: rows go in, and the bytes ready to send
/// come out of [`FileWriter::ready`], so memory holds a bounded buffer whatever the
/// file's size (a Parquet file: one row group's encoded pages, as the archive's writer).
pub enum FileWriter {
    Text(TextFormat, Vec<u8>),
    Parquet(Box<PartWriter<Vec<u8>>>),
}

impl FileWriter {
    /// A new file of `format`, its header written.
    ///
    /// # Errors
    /// When the Parquet header cannot be written.
    pub fn new(format: Format) -> Result<Self, parquet::errors::ParquetError> {
        Ok(match TextFormat::of(format) {
            Some(text) => Self::Text(text, text.header()),
            None => Self::Parquet(Box::new(PartWriter::new(Vec::new())?)),
        })
    }

    /// Appends one row.
    ///
    /// # Errors
    /// When a Parquet batch cannot be encoded.
    pub fn push(&mut self, row: &Row<'_>) -> Result<(), parquet::errors::ParquetError> {
        match self {
            Self::Text(format, buf) => {
                format.write(row, buf);
                Ok(())
            }
            Self::Parquet(w) => w.push_row(row),
        }
    }

    /// The bytes written so far and not yet taken: the caller takes (drains) them.
    pub fn ready(&mut self) -> &mut Vec<u8> {
        match self {
            Self::Text(_, buf) => buf,
            Self::Parquet(w) => w.sink_mut(),
        }
    }

    /// Ends the file: the bytes not yet taken, the footer included.
    ///
    /// # Errors
    /// When the last Parquet rows or the footer cannot be written.
    pub fn finish(self) -> Result<Vec<u8>, parquet::errors::ParquetError> {
        match self {
            Self::Text(_, buf) => Ok(buf),
            Self::Parquet(w) => w.finish(),
        }
    }
}

fn write_csv(row: &Row<'_>, out: &mut Vec<u8>) {
    for (k, &i) in CSV_FIELDS.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        if let Some(c) = row.cell(i) {
            cell(out, &c.text());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// One RFC 4180 field. A value a spreadsheet would run as a formula gets a leading `'`.
fn cell(out: &mut Vec<u8>, v: &str) {
    let bytes = v.as_bytes();
    let guard = matches!(bytes.first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'));
    let quote = bytes.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if quote {
        out.push(b'"');
    }
    if guard {
        out.push(b'\'');
    }
    if quote {
        for &b in bytes {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(bytes);
    }
}

/// The event as the API returns it, keys in the API's (sorted) order; `changes` and
/// `metadata` are the stored JSON text. `received_at` and `hash` come with the hash.
fn write_jsonl(row: &Row<'_>, out: &mut Vec<u8>) {
    let stamped = row.get(col::HASH).is_some();
    let present = |i: usize| (!FIELDS[i].server || stamped) && row.cell(i).is_some();
    fields::write_object(out, present, |out, i| match row.cell(i) {
        Some(Cell::Text(v)) if FIELDS[i].kind == Kind::Json => out.extend_from_slice(v.as_bytes()),
        Some(c) => {
            let _ = serde_json::to_writer(&mut *out, c.text().as_ref());
        }
        None => {}
    });
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::arb_event;
    use crate::domain::timestamp::Timestamp;
    use proptest::prelude::*;

    fn csv_cell(v: &str) -> String {
        let mut out = Vec::new();
        cell(&mut out, v);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn cells_are_quoted_per_rfc_4180_and_formulas_are_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@cmd"), "'@cmd");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("\rx"), "\"'\rx\"");
        assert_eq!(csv_cell("=1,2"), "\"'=1,2\"");
        assert_eq!(csv_cell("a=b"), "a=b");
        assert_eq!(csv_cell("雪"), "雪");
    }

    proptest! {
        #[test]
        fn a_jsonl_line_is_the_event_as_the_api_returns_it(event in arb_event()) {
            let stored = event.stamp(Timestamp::now());
            let mut out = Vec::new();
            TextFormat::Jsonl.write(&Row::from_stored(&stored), &mut out);
            prop_assert_eq!(out.last(), Some(&b'\n'));
            let text = String::from_utf8(out.clone()).unwrap_or_default();
            prop_assert_eq!(text.matches('\n').count(), 1);
            let back: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
            prop_assert_eq!(&back, &stored.to_json());
            // Keys in the API's order, so the text is the API's text.
            prop_assert_eq!(text.trim_end(), serde_json::to_string(&stored.to_json()).unwrap_or_default());
        }

        #[test]
        fn a_csv_row_has_every_column(event in arb_event()) {
            let stored = event.stamp(Timestamp::now());
            let mut out = Vec::new();
            TextFormat::Csv.write(&Row::from_stored(&stored), &mut out);
            prop_assert!(out.ends_with(b"\r\n"));
            let text = String::from_utf8(out).unwrap_or_default();
            let id_cell = csv_cell(&stored.event.id) + ",";
            prop_assert!(text.starts_with(&id_cell));
        }
    }
}
