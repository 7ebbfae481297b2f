//! Exports of any size: a job's range cut into parts that workers produce side by side,
//! each resumable, each written as one or more files.
//!
//! The range is cut by time, newest first, into parts of about [`Sizes::part_rows`] rows
//! as the archive's manifests count them ([`plan`]): whole days, and a day larger than a
//! part at its archive parts' first times. Online days are not counted before they are
//! read (DynamoDB has no cheap count), so they join the newest part; a part that meets
//! more rows than planned writes more files ([`Sizes::file_rows`], [`Sizes::file_bytes`]),
//! one after the other. A file is recorded once it is in S3; the part's cursor (the last
//! key written) is where the next file, or the next run after a crash or a deadline,
//! carries on. So a killed worker loses at most the file it was writing, and no row is
//! written twice: a file not recorded is never listed.

use crate::domain::timestamp::Timestamp;
use serde::{Deserialize, Serialize};

/// Microseconds in a day.
const DAY: i64 = 86_400_000_000;

/// How big parts and files may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Rows a part is planned to hold (`AUDIT_EXPORT_PART_ROWS`), as the archive's
    /// manifests count them before filters.
    pub part_rows: u64,
    /// Most rows in one file.
    pub file_rows: u64,
    /// Most bytes in one file (a file passes it by at most one row).
    pub file_bytes: u64,
}

impl Default for Sizes {
    fn default() -> Self {
        Self { part_rows: 1_000_000, file_rows: 5_000_000, file_bytes: 1 << 30 }
    }
}

/// A part's range: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// What one archived day holds, as its manifest says: each archive part's first and last
/// `occurred_at` and rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedDay {
    pub day: Timestamp,
    pub parts: Vec<(Timestamp, Timestamp, u64)>,
}

/// Cuts `range` into parts, newest first, of about `part_rows` rows each as the archived
/// days count them: at day starts, and within a day larger than a part at its archive
/// parts' first times. Days without a manifest count nothing. The parts cover the range
/// without gap or overlap.
#[must_use]
pub fn plan(range: Range, days: &[ArchivedDay], part_rows: u64) -> Vec<Range> {
    // Segments (start, rows) within the range, each to the next one's start or its day's end.
    let mut segments: Vec<(i64, u64)> = Vec::new();
    let (from, to) = (range.from.micros(), range.to.micros());
    for day in days {
        let (start, end) = (day.day.micros().max(from), (day.day.micros() + DAY).min(to));
        if start >= end {
            continue;
        }
        let rows: u64 = day.parts.iter().map(|p| p.2).sum();
        let mut cuts: Vec<i64> = vec![start];
        if rows > part_rows {
            // Each archive part's first time, but not a late part's (inside a larger one).
            let inside_larger =
                |p: &(Timestamp, Timestamp, u64)| day.parts.iter().any(|q| q.2 > p.2 && q.0 < p.0 && p.0 <= q.1);
            let firsts = day.parts.iter().filter(|p| !inside_larger(p)).map(|p| p.0.micros());
            cuts.extend(firsts.filter(|t| *t > start && *t < end));
        }
        cuts.sort_unstable();
        cuts.dedup();
        for (i, &s) in cuts.iter().enumerate() {
            let e = cuts.get(i + 1).copied().unwrap_or(end);
            let held = day.parts.iter().filter(|p| p.0.micros() < e && p.1.micros() >= s).map(|p| p.2).sum();
            segments.push((s, held));
        }
    }
    segments.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    // Greedy, newest first: a part closes at the start of its oldest segment once the
    // next segment would take it past `part_rows`.
    let mut parts = Vec::new();
    let (mut end, mut held, mut start) = (to, 0u64, to);
    for (seg_start, rows) in segments {
        if held > 0 && held.saturating_add(rows) > part_rows {
            parts.push((start, end));
            (end, held) = (start, 0);
        }
        held = held.saturating_add(rows);
        start = seg_start;
    }
    parts.push((from, end));
    parts
        .into_iter()
        .filter_map(|(f, t)| Some(Range { from: Timestamp::from_micros(f).ok()?, to: Timestamp::from_micros(t).ok()? }))
        .collect()
}

/// A part's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartStatus {
    /// Waiting for a worker: never started, or carried on after a deadline.
    Queued,
    Running,
    Done,
}

impl PartStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            _ => return None,
        })
    }
}

/// One finished file of a part, as the manifest lists it (plus where it is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// The file's name, as it downloads.
    pub name: String,
    /// Its object key in the export bucket (not in the manifest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    /// `occurred_at` of the file's first row (its newest) and last row; `None` when empty.
    pub first: Option<String>,
    pub last: Option<String>,
}

/// A key of the export's order, `(occurred_at micros, id)`: where a part carries on.
pub type Cursor = (i64, String);

/// One part of a job, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub index: u32,
    pub range: Range,
    pub status: PartStatus,
    /// Claims so far: a file is recorded only by the claim that wrote it.
    pub attempt: u32,
    pub started_at: Option<Timestamp>,
    /// Its files so far, in order.
    pub files: Vec<FileEntry>,
    /// The last key its files hold, while more may follow.
    pub cursor: Option<Cursor>,
    /// Rows written of the file being written, for progress.
    pub writing: u64,
    /// The guard (`AUDIT_EXPORT_MAX_ROWS`) ended it.
    pub truncated: bool,
}

impl Part {
    /// A part that no worker has claimed yet.
    #[must_use]
    pub fn new(index: u32, range: Range) -> Self {
        Self {
            index,
            range,
            status: PartStatus::Queued,
            attempt: 0,
            started_at: None,
            files: Vec::new(),
            cursor: None,
            writing: 0,
            truncated: false,
        }
    }

    /// Rows in its finished files.
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Whether a delivery may claim it: queued, or running so long its run was cut short
    /// (as [`crate::domain::export::Job::claimable`]).
    #[must_use]
    pub fn claimable(&self, now: Timestamp) -> bool {
        let stale = now.plus_seconds(-crate::domain::export::STALE_SECONDS);
        self.status == PartStatus::Queued
            || (self.status == PartStatus::Running && self.started_at.is_some_and(|t| t < stale))
    }
}

/// The name of file `n` of part `part` of export `id`: what the browser saves and the
/// manifest lists, so an auditor's download folder matches the manifest.
#[must_use]
pub fn file_name(id: &str, part: u32, n: usize, extension: &str) -> String {
    format!("audit-export-{id}-{part:05}-{n:03}.{extension}")
}

/// Where the job's files and manifest are kept: `exports/{tenant}/{id}/`; each file
/// under the claim (`a{attempt}`) that wrote it, so a stalled run that wakes up can never
/// replace a file another run recorded.
#[must_use]
pub fn folder(tenant: &str, id: &str) -> String {
    format!("exports/{tenant}/{id}/")
}

/// The object key of a file written by claim `attempt`: short (the download's name comes
/// from the manifest and the link's Content-Disposition), because the local stack's
/// s3s-fs keeps a multipart upload's state in one file named after the base64 of bucket
/// and key, which must fit the file system's 255 bytes (it does for tenant ids of up to
/// 48 characters; S3 itself takes keys of 1,024).
#[must_use]
pub fn file_key(tenant: &str, id: &str, attempt: u32, part: u32, n: usize, extension: &str) -> String {
    format!("{}a{attempt}/{part:05}-{n:03}.{extension}", folder(tenant, id))
}

/// The object key of the job's signed manifest.
#[must_use]
pub fn manifest_key(tenant: &str, id: &str) -> String {
    format!("{}manifest.json", folder(tenant, id))
}

/// How far a job has come: parts done of all, rows written so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub parts: Option<u32>,
    pub parts_done: u32,
    pub rows: u64,
}

impl Progress {
    /// The progress of a job cut into `total` parts, of which `parts` are recorded.
    #[must_use]
    pub fn of(total: Option<u32>, parts: &[Part]) -> Self {
        Self {
            parts: total,
            parts_done: u32::try_from(parts.iter().filter(|p| p.status == PartStatus::Done).count()).unwrap_or(0),
            rows: parts.iter().map(|p| p.rows() + p.writing).sum(),
        }
    }
}

/// Whether the parts make a finished export: every part done, or, under the guard, a
/// truncated part with every part before it done (the ones after never run).
#[must_use]
pub fn complete(total: u32, parts: &[Part]) -> bool {
    let done = |i: u32| parts.iter().any(|p| p.index == i && p.status == PartStatus::Done);
    (0..total).all(done) || parts.iter().any(|p| p.status == PartStatus::Done && p.truncated && (0..p.index).all(done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap_or(Timestamp::MIN)
    }

    fn day(d: &str, parts: &[(&str, &str, u64)]) -> ArchivedDay {
        ArchivedDay {
            day: t(&format!("{d}T00:00:00Z")),
            parts: parts.iter().map(|(f, l, n)| (t(&format!("{d}T{f}Z")), t(&format!("{d}T{l}Z")), *n)).collect(),
        }
    }

    fn covers(range: Range, parts: &[Range]) {
        assert_eq!(parts.first().map(|p| p.to), Some(range.to), "{parts:?}");
        assert_eq!(parts.last().map(|p| p.from), Some(range.from), "{parts:?}");
        for w in parts.windows(2) {
            assert_eq!(w[0].from, w[1].to, "contiguous, newest first: {parts:?}");
            assert!(w[0].from < w[0].to);
        }
    }

    #[test]
    fn a_small_range_is_one_part() {
        let range = Range { from: t("2026-01-01T00:00:00Z"), to: t("2026-03-01T00:00:00Z") };
        let days = [day("2026-01-05", &[("00:00:00", "23:00:00", 10)])];
        assert_eq!(plan(range, &days, 100), vec![range]);
        assert_eq!(plan(range, &[], 100), vec![range], "online days count nothing before they are read");
    }

    #[test]
    fn archived_days_fill_parts_and_a_large_day_is_cut_at_its_archive_parts() {
        let range = Range { from: t("2026-01-01T12:00:00Z"), to: t("2026-01-10T00:00:00Z") };
        let days = [
            day("2026-01-01", &[("12:30:00", "20:00:00", 40)]),
            day("2026-01-02", &[("00:00:00", "23:00:00", 50)]),
            day("2026-01-03", &[("00:00:00", "23:00:00", 50)]),
            // Larger than a part: three archive parts of 100 in time order, a late one.
            day(
                "2026-01-05",
                &[
                    ("00:00:00", "07:59:59", 100),
                    ("08:00:00", "15:59:59", 100),
                    ("16:00:00", "23:59:59", 100),
                    ("01:00:00", "22:00:00", 5),
                ],
            ),
        ];
        let parts = plan(range, &days, 100);
        covers(range, &parts);
        let cuts: Vec<String> = parts.iter().map(|p| p.from.to_string()).collect();
        assert_eq!(
            cuts,
            [
                "2026-01-05T16:00:00.000000Z",
                "2026-01-05T08:00:00.000000Z",
                "2026-01-05T00:00:00.000000Z",
                "2026-01-02T00:00:00.000000Z",
                "2026-01-01T12:00:00.000000Z",
            ]
        );
    }

    #[test]
    fn three_million_archived_rows_come_out_in_several_parts_that_add_up() {
        let range = Range { from: t("2026-01-01T00:00:00Z"), to: t("2026-02-01T00:00:00Z") };
        let days: Vec<ArchivedDay> =
            (1..=30).map(|d| day(&format!("2026-01-{d:02}"), &[("00:00:00", "23:59:59", 100_000)])).collect();
        let parts = plan(range, &days, Sizes::default().part_rows);
        covers(range, &parts);
        assert_eq!(parts.len(), 3, "{parts:?}");
    }

    #[test]
    fn a_finished_export_is_every_part_or_a_truncated_prefix() {
        let r = Range { from: t("2026-01-01T00:00:00Z"), to: t("2026-01-02T00:00:00Z") };
        let mut parts: Vec<Part> = (0..3).map(|i| Part::new(i, r)).collect();
        assert!(!complete(3, &parts));
        parts[0].status = PartStatus::Done;
        parts[0].truncated = true;
        assert!(complete(3, &parts), "the guard ended it at part 0");
        parts[0].truncated = false;
        parts[2].status = PartStatus::Done;
        assert!(!complete(3, &parts));
        parts[1].status = PartStatus::Done;
        assert!(complete(3, &parts));
        parts[1].files.push(FileEntry {
            name: "f".into(),
            key: "k".into(),
            rows: 7,
            bytes: 1,
            sha256: String::new(),
            first: None,
            last: None,
        });
        parts[2].writing = 3;
        assert_eq!(Progress::of(Some(3), &parts), Progress { parts: Some(3), parts_done: 3, rows: 10 });
    }
}
