//! Exports (contract sections 2 and 5): a job's record and states, the queue message
//! that starts it, and the file formats. Jobs are listed by id, a UUIDv7, so by creation
//! time; every state change is conditional on the state it leaves (see [`Job::claimable`]
//! and its siblings), so a redelivered message never runs a finished job again.

use crate::domain::export_part::{FileEntry, Progress, Range};
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long a finished file can be downloaded.
pub const DOWNLOAD_HOURS: i64 = 24;
/// A job `running` this long without finishing was cut short (its function timed out)
/// and may be claimed again.
pub const STALE_SECONDS: i64 = 20 * 60;
/// How long a job's record is kept after its last change (created, or finished): a week
/// past its file's 24 hours, a day past the 7-day listing. The table's TTL deletes it then.
pub const KEEP_DAYS: i64 = 8;
/// The error code of a job whose every run died (the queue dead-lettered its message).
pub const INCOMPLETE: &str = "incomplete";

/// When the record of a job last changed at `at` may be deleted: the table's TTL
/// attribute, in seconds since the epoch.
#[must_use]
pub fn keep_until(at: Timestamp) -> i64 {
    at.plus_seconds(KEEP_DAYS * 86_400).micros() / 1_000_000
}

/// A file format an export can have: CSV and JSON lines (contract section 5), or Parquet
/// with the archive's schema (for ranges too large for a spreadsheet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Parquet,
}

impl Format {
    /// Every format, as requests name them.
    pub const NAMES: &'static str = "csv, jsonl or parquet";

    /// # Errors
    /// The name back, when it is not `csv`, `jsonl` or `parquet`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "csv" => Ok(Self::Csv),
            "jsonl" => Ok(Self::Jsonl),
            "parquet" => Ok(Self::Parquet),
            other => Err(other.to_owned()),
        }
    }

    /// The name, which is also the files' extension.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
            Self::Parquet => "parquet",
        }
    }

    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson; charset=utf-8",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// The export queue's message body: which job to run, and which of its parts (none: plan
/// the job, and produce its first part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub tenant_id: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u32>,
}

/// What a finished job wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub rows: u64,
    pub bytes: u64,
    pub truncated: bool,
    /// Files, listed in the job's signed manifest.
    pub files: u32,
}

/// What the API shows of a job besides its record: links while its files last, and how
/// far it has come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    /// The file of a job with one file (and of a job finished before exports had parts).
    pub download_url: Option<String>,
    pub manifest_url: Option<String>,
    /// Every file, with its link.
    pub files: Vec<(FileEntry, String)>,
    pub progress: Progress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Expired,
}

impl Status {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub tenant: TenantId,
    pub id: String,
    pub status: Status,
    pub format: Format,
    /// The filters, as a query string with the range fixed.
    pub query: String,
    /// The token's `sub`.
    pub requested_by: String,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub truncated: Option<bool>,
    /// `(code, message)` of a failed job.
    pub error: Option<(String, String)>,
    /// Its parts' ranges, newest first, once planned.
    pub plan: Option<Vec<Range>>,
    /// Files of a finished job (none for a job finished before exports had parts, whose
    /// one file is at [`Job::object_key`]).
    pub files: Option<u32>,
}

impl Job {
    #[must_use]
    pub fn new(tenant: TenantId, requested_by: &str, format: Format, query: String, now: Timestamp) -> Self {
        Self {
            tenant,
            id: uuid::Uuid::now_v7().to_string(),
            status: Status::Queued,
            format,
            query,
            requested_by: requested_by.to_owned(),
            created_at: now,
            started_at: None,
            completed_at: None,
            expires_at: None,
            rows: None,
            bytes: None,
            truncated: None,
            error: None,
            plan: None,
            files: None,
        }
    }

    /// The file's object key in the export bucket, for a job finished before exports had
    /// parts (its record has no [`Job::files`]).
    #[must_use]
    pub fn object_key(&self) -> String {
        format!("exports/{}/{}.{}", self.tenant, self.id, self.format.as_str())
    }

    /// The status as the API reports it: a finished file past its `expires_at` is expired.
    #[must_use]
    pub fn status_at(&self, now: Timestamp) -> Status {
        match (self.status, self.expires_at) {
            (Status::Succeeded, Some(at)) if now >= at => Status::Expired,
            (s, _) => s,
        }
    }

    /// Whether a delivery may start it: queued, or running so long its run was cut short.
    #[must_use]
    pub fn claimable(&self, now: Timestamp) -> bool {
        let stale = now.plus_seconds(-STALE_SECONDS);
        self.status == Status::Queued || (self.status == Status::Running && self.started_at.is_some_and(|t| t < stale))
    }

    /// Whether it may be recorded as finished (only a running job is).
    #[must_use]
    pub fn can_succeed(&self) -> bool {
        self.status == Status::Running
    }

    /// Whether it may be recorded as failed (a job not yet finished).
    #[must_use]
    pub fn can_fail(&self) -> bool {
        matches!(self.status, Status::Queued | Status::Running)
    }

    /// Whether its file may be recorded as gone (a finished job).
    #[must_use]
    pub fn can_expire(&self) -> bool {
        self.status == Status::Succeeded
    }

    /// The contract's view of the job.
    #[must_use]
    pub fn view(&self, now: Timestamp, shown: Shown) -> Value {
        let t = |v: Option<Timestamp>| v.map(|t| t.to_string());
        let files: Vec<Value> = shown
            .files
            .iter()
            .map(|(f, url)| {
                json!({"name": f.name, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256, "download_url": url})
            })
            .collect();
        let p = shown.progress;
        json!({
            "id": self.id,
            "status": self.status_at(now).as_str(),
            "format": self.format.as_str(),
            "rows": self.rows,
            "bytes": self.bytes,
            "truncated": self.truncated,
            "created_at": self.created_at.to_string(),
            "completed_at": t(self.completed_at),
            "expires_at": t(self.expires_at),
            "download_url": shown.download_url,
            "manifest_url": shown.manifest_url,
            "files": (!files.is_empty()).then_some(files),
            "progress": {"parts": p.parts, "parts_done": p.parts_done, "rows": p.rows},
            "error": self.error.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
        })
    }
}

/// The smallest UUIDv7 id a job created at `since` or later can have: ids begin with
/// the creation time in milliseconds, as hex.
#[must_use]
pub fn id_lower_bound(since: Timestamp) -> String {
    let ms = u64::try_from(since.micros() / 1000).unwrap_or(0);
    format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_job_expires_at_its_time() {
        let now = Timestamp::now();
        let tenant = TenantId::parse("acme").unwrap_or_else(|_| unreachable!());
        let mut job = Job::new(tenant, "u", Format::Csv, String::new(), now);
        job.status = Status::Succeeded;
        job.expires_at = Some(now.plus_seconds(10));
        assert_eq!(job.status_at(now), Status::Succeeded);
        assert_eq!(job.status_at(now.plus_seconds(10)), Status::Expired);
        assert_eq!(job.view(now.plus_seconds(11), Shown::default())["status"], "expired");
        assert!(job.object_key().starts_with("exports/acme/") && job.object_key().ends_with(".csv"));
    }

    #[test]
    fn a_record_outlives_its_file_and_the_listing() {
        let now = Timestamp::parse("2026-01-01T00:00:00Z").unwrap_or(Timestamp::MIN);
        let kept = keep_until(now);
        assert_eq!(kept, 1_767_225_600 + 8 * 86_400);
        let file_gone = now.plus_seconds(DOWNLOAD_HOURS * 3600).micros() / 1_000_000;
        assert!(kept > file_gone + 6 * 86_400);
    }

    #[test]
    fn the_listing_bound_sorts_like_uuid_v7_ids() {
        let lower = id_lower_bound(Timestamp::now());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let id = uuid::Uuid::now_v7().to_string();
        assert!(id.as_str() >= lower.as_str(), "{id} < {lower}");
    }

    #[test]
    fn only_an_unfinished_or_stalled_job_is_claimed() {
        let now = Timestamp::now();
        let tenant = TenantId::parse("acme").unwrap_or_else(|_| unreachable!());
        let mut job = Job::new(tenant, "u", Format::Csv, String::new(), now);
        assert!(job.claimable(now) && job.can_fail() && !job.can_succeed());
        job.status = Status::Running;
        job.started_at = Some(now);
        assert!(!job.claimable(now) && job.can_succeed());
        assert!(job.claimable(now.plus_seconds(STALE_SECONDS + 1)));
        job.status = Status::Succeeded;
        assert!(!job.claimable(now) && !job.can_fail() && job.can_expire());
    }

    #[test]
    fn the_sample_queue_message_names_a_job() {
        let message: Message =
            serde_json::from_str(r#"{"tenant_id": "t", "id": "x"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(TenantId::parse(&message.tenant_id).is_ok());
        assert!(serde_json::from_str::<Message>(r#"{"tenant_id": "t", "id": "x", "extra": 1}"#).is_err());
    }
}
