//! Export files (contract section 5): CSV per RFC 4180 with a formula guard, or JSON
//! lines. One writer, used by the export function and by `auditlog convert`.

use crate::row::{Row, col};
use crate::timestamp::Timestamp;
use std::io::Write;

/// A file format an export can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// # Errors
    /// The name back, when it is not `csv` or `jsonl`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "csv" => Ok(Self::Csv),
            "jsonl" => Ok(Self::Jsonl),
            other => Err(other.to_owned()),
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }

    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson; charset=utf-8",
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

    /// The archive columns a file of this format needs (`None`: all of them).
    #[must_use]
    pub fn columns(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Csv => Some(&CSV_COLUMNS),
            Self::Jsonl => None,
        }
    }
}

/// The CSV columns, in order.
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

/// The [`Row`] string column of each CSV column after `occurred_at`.
const CSV_STRINGS: [usize; 17] = [
    col::ACTION,
    col::OUTCOME,
    col::ACTOR_TYPE,
    col::ACTOR_ID,
    col::ACTOR_NAME,
    col::ACTOR_EMAIL,
    col::RESOURCE_TYPE,
    col::RESOURCE_ID,
    col::RESOURCE_NAME,
    col::WORKSPACE_ID,
    col::WORKSPACE_NAME,
    col::SOURCE_IP,
    col::USER_AGENT,
    col::REQUEST_ID,
    col::DESCRIPTION,
    col::CHANGES,
    col::METADATA,
];

fn time(micros: i64) -> String {
    Timestamp::from_micros(micros).map(|t| t.to_string()).unwrap_or_default()
}

fn write_csv(row: &Row<'_>, out: &mut Vec<u8>) {
    cell(out, row.get(col::ID).unwrap_or_default());
    out.push(b',');
    cell(out, &time(row.occurred_at));
    for c in CSV_STRINGS {
        out.push(b',');
        cell(out, row.get(c).unwrap_or_default());
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

/// Writes a JSON string (serde_json's escaping).
fn string(out: &mut Vec<u8>, v: &str) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// The present members of an object, in the order given, after `{` (and a comma if
/// `first` is false); returns whether anything was written.
fn members(out: &mut Vec<u8>, members: &[(&str, Option<&str>)], mut first: bool) -> bool {
    let before = out.len();
    for (name, value) in members {
        if let Some(v) = value {
            if !first {
                out.push(b',');
            }
            first = false;
            let _ = write!(out, "\"{name}\":");
            string(out, v);
        }
    }
    out.len() > before
}

/// An object member of optional strings; nothing when all are absent.
fn object(out: &mut Vec<u8>, key: &str, fields: &[(&str, Option<&str>)]) {
    if fields.iter().any(|(_, v)| v.is_some()) {
        let _ = write!(out, ",\"{key}\":{{");
        members(out, fields, true);
        out.push(b'}');
    }
}

/// The event as the API returns it, keys in the API's (sorted) order; `changes` and
/// `metadata` are the stored JSON text.
fn write_jsonl(row: &Row<'_>, out: &mut Vec<u8>) {
    let g = |c| row.get(c);
    out.extend_from_slice(b"{\"action\":");
    string(out, g(col::ACTION).unwrap_or_default());
    object(
        out,
        "actor",
        &[
            ("email", g(col::ACTOR_EMAIL)),
            ("id", g(col::ACTOR_ID)),
            ("name", g(col::ACTOR_NAME)),
            ("type", g(col::ACTOR_TYPE)),
        ],
    );
    let raw = |out: &mut Vec<u8>, key: &str, v: Option<&str>| {
        if let Some(v) = v {
            let _ = write!(out, ",\"{key}\":{v}");
        }
    };
    let text = |out: &mut Vec<u8>, key: &str, v: Option<&str>| {
        if let Some(v) = v {
            let _ = write!(out, ",\"{key}\":");
            string(out, v);
        }
    };
    raw(out, "changes", g(col::CHANGES));
    text(out, "description", g(col::DESCRIPTION));
    text(out, "hash", g(col::HASH));
    text(out, "id", g(col::ID));
    raw(out, "metadata", g(col::METADATA));
    text(out, "occurred_at", Some(&time(row.occurred_at)));
    text(out, "outcome", g(col::OUTCOME));
    if g(col::HASH).is_some() {
        text(out, "received_at", Some(&time(row.received_at)));
    }
    text(out, "request_id", g(col::REQUEST_ID));
    let resource = [("id", g(col::RESOURCE_ID)), ("name", g(col::RESOURCE_NAME))];
    let parent = [
        ("id", g(col::RESOURCE_PARENT_ID)),
        ("name", g(col::RESOURCE_PARENT_NAME)),
        ("type", g(col::RESOURCE_PARENT_TYPE)),
    ];
    let kind = [("type", g(col::RESOURCE_TYPE))];
    if resource.iter().chain(&parent).chain(&kind).any(|(_, v)| v.is_some()) {
        // `parent` sorts between `name` and `type`.
        out.extend_from_slice(b",\"resource\":{");
        let mut wrote = members(out, &resource, true);
        if parent.iter().any(|(_, v)| v.is_some()) {
            out.extend_from_slice(if wrote { b",\"parent\":{" } else { b"\"parent\":{" });
            members(out, &parent, true);
            out.push(b'}');
            wrote = true;
        }
        members(out, &kind, !wrote);
        out.push(b'}');
    }
    object(
        out,
        "source",
        &[
            ("ip", g(col::SOURCE_IP)),
            ("location", g(col::SOURCE_LOCATION)),
            ("platform", g(col::SOURCE_PLATFORM)),
            ("user_agent", g(col::USER_AGENT)),
        ],
    );
    text(out, "tenant_id", g(col::TENANT_ID));
    object(out, "workspace", &[("id", g(col::WORKSPACE_ID)), ("name", g(col::WORKSPACE_NAME))]);
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::arb_event;
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
            Format::Jsonl.write(&Row::from_stored(&stored), &mut out);
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
            Format::Csv.write(&Row::from_stored(&stored), &mut out);
            prop_assert!(out.ends_with(b"\r\n"));
            let text = String::from_utf8(out).unwrap_or_default();
            let id_cell = csv_cell(&stored.event.id) + ",";
            prop_assert!(text.starts_with(&id_cell));
        }
    }
}
