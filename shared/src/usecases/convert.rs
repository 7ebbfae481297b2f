//! `auditlog convert`: JSON-lines events to archive Parquet, with the same validation and
//! writer as the service (also how a team imports a previous audit system's history); and
//! archive Parquet to an export file, with the export function's reader and writer.
//!
//! Two passes keep memory small whatever the file size: the first reads only each line's
//! sort key (`occurred_at`, `id`) and offset, the second validates the lines in sorted
//! order, reading each from its offset, and streams them into the Parquet writer.

use crate::domain::canonical::sha256_hex;
use crate::domain::event::{Event, StoredEvent};
use crate::domain::incoming::Incoming;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::formats::TextFormat;
use crate::formats::export_file::columns;
use crate::formats::parquet_read::Part;
use crate::formats::parquet_write::PartWriter;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Lines handed from a validating thread to the writing thread at a time.
const CHUNK: usize = 1024;
/// Validating threads.
const VALIDATORS: usize = 2;

/// Why a conversion stopped; nothing it wrote is usable.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// An input line that is not a valid event (its number first).
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    /// The input as a whole is unusable (two lines that conflict, an unsorted part).
    #[error("{0}")]
    Input(String),
    #[error("{path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |source| ConvertError::File { path: path.display().to_string(), source }
}

type Chunk = Result<Vec<(usize, StoredEvent)>, ConvertError>;

/// What a conversion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Deserialize)]
struct SortKey<'a> {
    #[serde(borrow, default)]
    tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    occurred_at: Option<Cow<'a, str>>,
}

/// One input line's place in the output order.
struct Entry {
    occurred_at: i64,
    tenant: String,
    /// The id, assigned here when the line has none so both passes agree.
    id: String,
    assigned_id: bool,
    offset: u64,
    len: u32,
    line_no: usize,
}

/// Converts a JSON-lines file of events (each with `tenant_id`; `received_at` and `hash`
/// optional) to one archive Parquet file sorted by `occurred_at`, then `id`.
///
/// # Errors
/// The first invalid line (with its number and every violation), a `hash` that does not
/// match the event, or an I/O failure.
pub fn jsonl_to_parquet(input: &Path, output: &Path) -> Result<Converted, ConvertError> {
    let now = Timestamp::now();
    let started = std::time::Instant::now();
    let file = File::open(input).map_err(file_error(input))?;
    let mut entries = index(&file, now)?;
    tracing::debug!(lines = entries.len(), seconds = started.elapsed().as_secs_f64(), "indexed");
    // An id is stored once per tenant: a repeat with another time can only be a conflict.
    let mut by_id: Vec<&Entry> = entries.iter().collect();
    by_id.sort_unstable_by(|a, b| (&a.tenant, &a.id, a.occurred_at).cmp(&(&b.tenant, &b.id, b.occurred_at)));
    if let Some(w) = by_id
        .windows(2)
        .find(|w| w[0].tenant == w[1].tenant && w[0].id == w[1].id && w[0].occurred_at != w[1].occurred_at)
    {
        return Err(ConvertError::Input(format!(
            "lines {} and {}: id {} of tenant {} with two different times",
            w[0].line_no, w[1].line_no, w[1].id, w[1].tenant
        )));
    }
    drop(by_id);
    entries.sort_unstable_by(|a, b| (a.occurred_at, &a.id, &a.tenant).cmp(&(b.occurred_at, &b.id, &b.tenant)));

    let out = File::create(output).map_err(file_error(output))?;
    let mut writer = PartWriter::new(BufWriter::with_capacity(1 << 20, out))?;
    // Validating (parse, rules, RFC 8785, SHA-256) costs more than encoding, so it runs on
    // VALIDATORS threads, each taking every VALIDATORS-th chunk; the encoder takes the
    // chunks back in order from their channels in turn.
    let channels: Vec<_> = (0..VALIDATORS).map(|_| std::sync::mpsc::sync_channel::<Chunk>(2)).collect();
    let (senders, receivers): (Vec<_>, Vec<_>) = channels.into_iter().unzip();
    std::thread::scope(|scope| -> Result<(), ConvertError> {
        let file = &file;
        let entries = &entries;
        for (k, tx) in senders.into_iter().enumerate() {
            scope.spawn(move || {
                let mut buf = Vec::new();
                for chunk in entries.chunks(CHUNK).skip(k).step_by(VALIDATORS) {
                    let parsed: Chunk = chunk
                        .iter()
                        .map(|e| {
                            buf.resize(e.len as usize, 0);
                            file.read_exact_at(&mut buf, e.offset)?;
                            let stored =
                                parse_line(&buf, e, now).map_err(|why| ConvertError::Line { line: e.line_no, why })?;
                            Ok((e.line_no, stored))
                        })
                        .collect();
                    let failed = parsed.is_err();
                    if tx.send(parsed).is_err() || failed {
                        return;
                    }
                }
            });
        }
        // Owned here, so an early return drops them and unblocks the validators.
        let receivers = receivers;
        let in_order = (0..entries.len().div_ceil(CHUNK)).map(|i| receivers[i % VALIDATORS].recv());
        let mut previous: Option<(usize, StoredEvent)> = None;
        for batch in in_order {
            let batch = batch.map_err(|_| ConvertError::Input("a validating thread stopped".into()))?;
            for (line_no, stored) in batch? {
                // Repeats of one (tenant, id) are adjacent here: the same event twice is
                // stored once, as the service does; different content is a conflict.
                if let Some((line, p)) = previous
                    .as_ref()
                    .filter(|(_, p)| p.event.tenant_id == stored.event.tenant_id && p.event.id == stored.event.id)
                {
                    if p.hash != stored.hash {
                        return Err(ConvertError::Input(format!(
                            "lines {line} and {line_no}: id {} reused with different content",
                            stored.event.id
                        )));
                    }
                    continue;
                }
                writer.push(&stored)?;
                previous = Some((line_no, stored));
            }
        }
        Ok(())
    })?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "validated and encoded");
    let rows = writer.rows();
    let out = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
    out.sync_all()?;
    Ok(Converted { rows, bytes: out.metadata()?.len() })
}

fn index(file: &File, now: Timestamp) -> Result<Vec<Entry>, ConvertError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut entries = Vec::new();
    let mut line = Vec::new();
    let mut offset = 0u64;
    for line_no in 1.. {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let start = offset;
        offset += n as u64;
        let text = trim(&line);
        if text.is_empty() {
            continue;
        }
        let bad = |why: String| ConvertError::Line { line: line_no, why };
        let key: SortKey<'_> = serde_json::from_slice(text).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let occurred_at = match key.occurred_at.as_deref() {
            Some(t) => Timestamp::parse(t).map_err(|_| bad("occurred_at is not RFC 3339".into()))?,
            None => now,
        };
        let (id, assigned_id) = match key.id {
            Some(id) => (id.into_owned(), false),
            None => (uuid::Uuid::now_v7().to_string(), true),
        };
        let len = u32::try_from(text.len()).map_err(|_| bad("over 4 GiB".into()))?;
        let tenant = key.tenant_id.unwrap_or_default().into_owned();
        entries.push(Entry { occurred_at: occurred_at.micros(), tenant, id, assigned_id, offset: start, len, line_no });
    }
    Ok(entries)
}

fn trim(line: &[u8]) -> &[u8] {
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    &line[..end]
}

/// One line as a stored event; the reason when it cannot be one.
fn parse_line(bytes: &[u8], entry: &Entry, now: Timestamp) -> Result<StoredEvent, String> {
    // Read from its text, so the numeric model holds for imports as for the API.
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let mut event = Incoming::parse(text).map_err(|_| "not a JSON object".to_owned())?;
    let tenant = match event.remove("tenant_id") {
        Some(Value::String(t)) => TenantId::parse(&t).map_err(|e| e.to_string())?,
        _ => return Err("tenant_id is required".into()),
    };
    let received_at = match event.remove("received_at") {
        Some(Value::String(t)) => Timestamp::parse(&t).map_err(|_| "received_at is not RFC 3339".to_owned())?,
        None | Some(Value::Null) => now,
        Some(_) => return Err("received_at must be a string".into()),
    };
    let claimed_hash = event.remove("hash");
    if entry.assigned_id {
        event.insert("id", Value::String(entry.id.clone()));
    }
    let accepted = Event::validate(event, &tenant, now)
        .map_err(|v| format!("invalid event: {}", serde_json::to_string(&v).unwrap_or_default()))?;
    let stored = accepted.stamp(received_at);
    match claimed_hash {
        Some(Value::String(h)) if h != stored.hash => {
            Err(format!("hash {h} does not match the event (RFC 8785 SHA-256 is {})", sha256_hex(&stored.doc)))
        }
        _ => Ok(stored),
    }
}

/// Bytes of formatted rows gathered before each write.
const OUT_CHUNK: usize = 1 << 20;

/// Converts an archive part to an export file (CSV or JSON lines), newest first.
///
/// # Errors
/// When the input is not archive Parquet sorted by `occurred_at`, then `id` (every part
/// the archive writes is), or on I/O failure.
pub fn parquet_to_export(input: &Path, output: &Path, format: TextFormat) -> Result<Converted, ConvertError> {
    let file = File::open(input).map_err(file_error(input))?;
    let part = Part::open(&file)
        .map_err(|e| ConvertError::Input(format!("{} is not archive Parquet: {e}", input.display())))?;
    let out = File::create(output).map_err(file_error(output))?;
    let mut out = std::io::BufWriter::with_capacity(OUT_CHUNK, out);
    let mut buf = format.header();
    let mut rows = 0u64;
    // The last row written: each next one must not sort after it.
    let mut last: Option<(i64, String)> = None;
    let wanted = columns(format.format());
    let slices =
        (0..part.row_groups()).rev().flat_map(|rg| part.slices(rg, wanted).into_iter().rev().map(move |s| (rg, s)));
    for (rg, slice) in slices {
        let batches = part.read_slice(file.try_clone()?, rg, wanted, slice)?;
        for batch in batches.iter().rev() {
            for i in (0..batch.len()).rev() {
                let row = batch.row(i);
                let (t, id) = row.key();
                match &mut last {
                    Some((lt, lid)) if (t, id) > (*lt, lid.as_str()) => {
                        return Err(ConvertError::Input(format!(
                            "{} is not sorted by occurred_at, then id: not an archive part",
                            input.display()
                        )));
                    }
                    Some((lt, lid)) => {
                        *lt = t;
                        lid.clear();
                        lid.push_str(id);
                    }
                    None => last = Some((t, id.to_owned())),
                }
                format.write(&row, &mut buf);
                rows += 1;
                if buf.len() >= OUT_CHUNK {
                    out.write_all(&buf)?;
                    buf.clear();
                }
            }
        }
    }
    out.write_all(&buf)?;
    let out = out.into_inner().map_err(|e| e.into_error())?;
    out.sync_all()?;
    Ok(Converted { rows, bytes: out.metadata()?.len() })
}
