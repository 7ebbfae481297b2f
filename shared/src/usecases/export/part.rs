//! One part of a job: claimed (a new attempt), written as files one after the other from
//! its cursor, each recorded (with the new cursor) only once it is complete in S3 and
//! only while the claim holds; then done, or, before the invocation's deadline, queued
//! again to carry on in a new invocation.

use super::{ExportError, Exporter, PAUSE_MARGIN, archived, online};
use crate::domain::export::{Job, Produced};
use crate::domain::export_part::{self, Cursor, FileEntry, Part, PartStatus};
use crate::domain::export_request::stored_filter;
use crate::domain::filter::Filter;
use crate::domain::retention::online_start;
use crate::domain::timestamp::Timestamp;
use crate::formats::FileWriter;
use crate::formats::export_file::columns;
use crate::ports::{StoreError, Upload};
use crate::usecases::merge::{Ahead, Keyed, Sorted};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// Days this close to the online window's start may be moving when the export runs (an
/// archive run's clock and the tenant's settings may differ a little from the export's).
const MOVING_MARGIN_DAYS: i64 = 2;
/// Rows between two looks at the clock (deadline, progress).
const CLOCK_EVERY: u64 = 256;
/// How often a part records how many rows its current file holds, for the job's progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// How a part's run ended.
enum PartEnd {
    Done,
    /// The deadline came: it carries on in another invocation.
    Paused,
    /// Another claim took the part over, or the job ended meanwhile.
    Lost,
}

/// Why a file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileEnd {
    /// The part's range is written.
    Exhausted,
    /// The file reached its size; the next one carries on.
    Full,
    /// The invocation's deadline is near.
    Deadline,
    /// The guard's row budget is spent, and rows remain.
    Budget,
}

impl Exporter {
    /// Runs part `index` of a planned job in the running slot `holder`, which it gives
    /// back; the job's result when this part was the last.
    pub(super) async fn run_part(
        &self,
        job: &Job,
        index: u32,
        holder: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<Produced>, StoreError> {
        let (tenant, id) = (&job.tenant, job.id.as_str());
        let Some(range) = job.plan.as_ref().and_then(|p| p.get(index as usize)).copied() else {
            self.release_slot(job, holder).await;
            return Ok(None);
        };
        let Some(mut part) = self.jobs.claim_part(tenant, id, index, range, Timestamp::now()).await? else {
            // Done (its message came again), or another run has it.
            self.release_slot(job, holder).await;
            self.queue_next_if_lost(job, index).await?;
            return self.finish_if_complete(job).await;
        };
        let ended = self.write_part(job, &mut part, deadline).await;
        self.release_slot(job, holder).await;
        match ended {
            Ok(PartEnd::Done) => {
                part.status = PartStatus::Done;
                if !self.jobs.save_part(tenant, id, &part).await? {
                    return Ok(None);
                }
                tracing::info!(%tenant, id, index, rows = part.rows(), files = part.files.len(), "export part done");
                let next = index + 1;
                if self.max_rows > 0 && !part.truncated && job.plan.as_ref().is_some_and(|p| (next as usize) < p.len())
                {
                    self.send(tenant, id, Some(next), 0).await?;
                }
                self.finish_if_complete(job).await
            }
            Ok(PartEnd::Paused) => {
                part.status = PartStatus::Queued;
                if self.jobs.save_part(tenant, id, &part).await? {
                    tracing::info!(%tenant, id, index, files = part.files.len(), "export part paused before the deadline");
                    self.send(tenant, id, Some(index), 0).await?;
                }
                Ok(None)
            }
            Ok(PartEnd::Lost) => Ok(None),
            Err(e) => self.fail(job, &e).await,
        }
    }

    /// Under the guard each part queues the next: a run killed between saving its part
    /// done and queueing the next leaves nothing queued. Its message comes back and finds
    /// the part done; the next is queued again then, unless it is done (a repeat is
    /// harmless: a part is claimed once).
    async fn queue_next_if_lost(&self, job: &Job, index: u32) -> Result<(), StoreError> {
        let next = index + 1;
        if self.max_rows == 0 || job.plan.as_ref().is_none_or(|p| (next as usize) >= p.len()) {
            return Ok(());
        }
        let parts = self.jobs.parts(&job.tenant, &job.id).await?;
        let done = |i: u32| parts.iter().find(|p| p.index == i).filter(|p| p.status == PartStatus::Done);
        if done(index).is_some_and(|p| !p.truncated) && done(next).is_none() {
            self.send(&job.tenant, &job.id, Some(next), 0).await?;
        }
        Ok(())
    }

    /// Writes the part's files from its cursor until its range is written, the deadline
    /// nears or the guard's budget is spent.
    async fn write_part(&self, job: &Job, part: &mut Part, deadline: Option<Instant>) -> Result<PartEnd, ExportError> {
        let (tenant, id) = (&job.tenant, job.id.as_str());
        let budget = if self.max_rows == 0 {
            None
        } else {
            let before: u64 =
                self.jobs.parts(tenant, id).await?.iter().filter(|p| p.index < part.index).map(Part::rows).sum();
            Some(self.max_rows.saturating_sub(before))
        };
        loop {
            let Some(current) = self.jobs.get(tenant, id).await? else { return Ok(PartEnd::Lost) };
            if current.status != crate::domain::export::Status::Running {
                return Ok(PartEnd::Lost);
            }
            let n = part.files.len();
            let name = export_part::file_name(id, part.index, n, job.format.as_str());
            let key = export_part::file_key(tenant.as_str(), id, part.attempt, part.index, n, job.format.as_str());
            let left = budget.map(|b| b.saturating_sub(part.rows()));
            let Some((file, end)) = self.write_file(job, part, &name, &key, deadline, left).await? else {
                return Ok(PartEnd::Done);
            };
            part.files.push(file);
            part.writing = 0;
            part.truncated = end == FileEnd::Budget;
            if !self.jobs.save_part(tenant, id, part).await? {
                return Ok(PartEnd::Lost);
            }
            match end {
                FileEnd::Exhausted | FileEnd::Budget => return Ok(PartEnd::Done),
                FileEnd::Deadline => return Ok(PartEnd::Paused),
                FileEnd::Full => {}
            }
        }
    }

    /// Writes the part's next file from its cursor: its entry and why it ended; `None`
    /// when it would be empty and the part has a file already (nothing is recorded).
    async fn write_file(
        &self,
        job: &Job,
        part: &mut Part,
        name: &str,
        key: &str,
        deadline: Option<Instant>,
        budget: Option<u64>,
    ) -> Result<Option<(FileEntry, FileEnd)>, ExportError> {
        let mut filter = stored_filter(&job.query).map_err(|v| ExportError::BadJob(format!("{v:?}")))?;
        filter.from = filter.from.max(part.range.from);
        filter.to = filter.to.min(part.range.to);
        if let Some((t, _)) = &part.cursor {
            filter.to = filter.to.min(Timestamp::from_micros(t + 1).unwrap_or(filter.to));
        }
        let mut upload = self.exports.upload(key, job.format.content_type(), Some(name));
        let result = self.fill_file(job, part, &filter, &mut *upload, deadline, budget).await;
        match result {
            Ok(Some((mut entry, end))) => {
                entry.name = name.to_owned();
                entry.key = key.to_owned();
                Ok(Some((entry, end)))
            }
            Ok(None) => {
                upload.abort().await;
                Ok(None)
            }
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }

    /// The merge of the online and archived sides into one file: see the module's
    /// documentation of [`super`].
    #[allow(clippy::too_many_lines)]
    async fn fill_file(
        &self,
        job: &Job,
        part: &mut Part,
        filter: &Filter,
        upload: &mut dyn Upload,
        deadline: Option<Instant>,
        budget: Option<u64>,
    ) -> Result<Option<(FileEntry, FileEnd)>, ExportError> {
        let settings = self.tenants.settings(&job.tenant).await?;
        // Whether the range reaches days an archive run may be moving while the export
        // reads them; if not, no online read can miss what the archive moved.
        let moving = filter.from
            < online_start(Timestamp::now(), settings.hot_days.unwrap_or(self.default_hot_days))
                .plus_seconds(MOVING_MARGIN_DAYS * 86_400);
        let (catalogs, index, events) = (&*self.catalogs, &*self.index, &*self.events);
        let online = online::OnlineRows::open(catalogs, index, events, &job.tenant, settings, filter).await?;
        let mut online = Ahead::new(online);
        let mut archived =
            archived::ArchiveSide::open(&*self.archive, &job.tenant, filter, columns(job.format)).await?;
        let cursor: Option<Cursor> = part.cursor.clone();
        let mut synced = 0;
        let mut last: Option<archived::Position> = cursor.clone();
        let mut out = Sink::new(FileWriter::new(job.format)?);
        let (mut first, mut newest_written) = (None, None);
        let stop_at = deadline.map(|d| d.checked_sub(PAUSE_MARGIN).unwrap_or(d));
        let mut beat = Instant::now();
        let mut end = FileEnd::Exhausted;
        loop {
            while online.head().is_none() && !online.exhausted() {
                online.fill().await?;
            }
            let reads = online.inner().reads();
            if reads != synced && moving {
                archived.sync(last.as_ref()).await?;
            }
            synced = reads;
            archived.fill().await?;
            let frontier = match (online.head().map(|r| r.key().0), archived.head().map(|r| r.key().0)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if archived.open_due(frontier, last.as_ref()).await? {
                continue;
            }
            // On equal keys the online copy is taken; the archived one is dropped below.
            let from_online = match (online.head().map(Keyed::key), archived.head().map(Keyed::key)) {
                (Some(a), Some(b)) => a >= b,
                (a, _) => a.is_some(),
            };
            let row = if from_online { online.pop() } else { archived.pop() };
            let Some(row) = row else { break };
            let (t, id) = row.key();
            // At or above the cursor: written by the part's earlier files.
            if last.as_ref().is_some_and(|(lt, lid)| (t, id) >= (*lt, lid.as_str())) {
                continue;
            }
            last = Some((t, id.to_owned()));
            // The online side is filtered already; this is the definition it follows.
            if !from_online && !filter.matches(&row) {
                continue;
            }
            if budget.is_some_and(|b| out.rows >= b) {
                end = FileEnd::Budget;
                break;
            }
            if out.rows >= self.sizes.file_rows || out.bytes() >= self.sizes.file_bytes {
                end = FileEnd::Full;
                break;
            }
            if out.rows.is_multiple_of(CLOCK_EVERY) && out.rows > 0 {
                if stop_at.is_some_and(|s| Instant::now() >= s) {
                    end = FileEnd::Deadline;
                    break;
                }
                if beat.elapsed() >= PROGRESS_EVERY {
                    beat = Instant::now();
                    part.writing = out.rows;
                    self.jobs.save_part(&job.tenant, &job.id, part).await?;
                }
            }
            out.push(&row, upload).await?;
            let at = Timestamp::from_micros(t).map(|t| t.to_string()).ok();
            first.get_or_insert_with(|| at.clone());
            newest_written = Some((at, (t, id.to_owned())));
        }
        if out.rows == 0 && !part.files.is_empty() {
            return Ok(None);
        }
        let rows = out.rows;
        let (bytes, sha256) = out.finish(upload).await?;
        let (last_time, cursor) = match newest_written {
            Some((at, key)) => (at, Some(key)),
            None => (None, cursor),
        };
        part.cursor = cursor;
        let entry = FileEntry {
            name: String::new(),
            key: String::new(),
            rows,
            bytes,
            sha256,
            first: first.flatten(),
            last: last_time,
        };
        Ok(Some((entry, end)))
    }
}

/// A file on its way to S3: rows in, bytes hashed exactly as they leave.
struct Sink {
    writer: FileWriter,
    sha: Sha256,
    /// Bytes of the writer's buffer already hashed.
    hashed: usize,
    sent: u64,
    rows: u64,
}

impl Sink {
    fn new(writer: FileWriter) -> Self {
        Self { writer, sha: Sha256::new(), hashed: 0, sent: 0, rows: 0 }
    }

    /// The file's size so far.
    fn bytes(&mut self) -> u64 {
        self.sent + self.writer.ready().len() as u64
    }

    async fn push(&mut self, row: &crate::domain::row::Row<'_>, upload: &mut dyn Upload) -> Result<(), ExportError> {
        self.writer.push(row)?;
        self.rows += 1;
        let ready = self.writer.ready();
        self.sha.update(&ready[self.hashed..]);
        let len = ready.len();
        upload.offer(ready).await?;
        if ready.is_empty() {
            self.sent += len as u64;
            self.hashed = 0;
        } else {
            self.hashed = len;
        }
        Ok(())
    }

    /// Sends the rest; the file's size and SHA-256.
    async fn finish(self, upload: &mut dyn Upload) -> Result<(u64, String), ExportError> {
        let Self { writer, mut sha, hashed, .. } = self;
        let rest = writer.finish()?;
        sha.update(&rest[hashed..]);
        let size = upload.finish(rest).await?;
        Ok((size, hex::encode(sha.finalize())))
    }
}
