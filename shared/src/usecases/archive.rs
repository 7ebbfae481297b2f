//! The archive job (contract section 4): every UTC day wholly older than a tenant's
//! online window moves from DynamoDB to Parquet in S3, and its items become tombstones
//! only once S3 verifiably holds them.
//!
//! A day is committed part by part, each part one step: stream the next items of the day
//! (merged across write shards, in `(occurred_at, id)` order) into a Parquet part in a
//! scratch file; record the step in the tenant's registry item (conditional on the run's
//! lease, so a run that lost it stops before uploading); upload the part (only if its key
//! is free) and check what S3 holds; write the day's next manifest revision, as its own
//! object and as the day's current manifest; make it the chain's head; tombstone exactly
//! the ids the part holds; clear the step. The deadline is checked and the lease renewed
//! between parts, and a part is cut short when the deadline nears, so every run makes
//! progress however large the day. A run that stops anywhere leaves its step recorded
//! with everything needed to rebuild the revision, and the next run finishes it from the
//! part in S3, or, when the part never reached S3, drops it; nothing is uploaded twice.
//!
//! Each time the chain's head moves, the new head is signed into a checkpoint
//! ([`crate::domain::checkpoint`]), so the chain can be checked against a signature that
//! no one with only bucket and table access can forge; a run also signs a head that a
//! crash (or an archive older than checkpoints) left without one.

use crate::domain::budget::Reserve;
use crate::domain::checkpoint::Checkpoint;
use crate::domain::event::StoredEvent;
use crate::domain::filter::{Filter, Order};
use crate::domain::manifest::{self, ChainHead, Manifest, PartEntry, Pending, Phase};
use crate::domain::plan::{Partition, Path as ReadPath};
use crate::domain::retention::archive_cutoff;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::formats::parquet_read::{self, FooterError};
use crate::formats::parquet_write::PartWriter;
use crate::formats::signature;
use crate::ports::clock::SystemClock;
use crate::ports::{ArchiveRegistry, BlobError, BlobStore, Clock, Condition, EventArchiver, EventIndex, EventReader};
use crate::ports::{KeyDirectory, Moved, RegistryError, SignError, Signer, StoreError, TenantRegistry, Tenants};
use crate::usecases::files::{Scratch, hash_file};
use crate::usecases::merge::{Events, Fetch, IndexRead};
use serde::Serialize;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ids read back from a part per tombstone round.
const TOMBSTONE_CHUNK: usize = 4_096;
/// Events checked against the base table at once when adding to an archived day.
const CONFIRM_CHUNK: usize = 1_000;
/// Items per read of a day, across all shards together: bounds the memory a merge holds
/// whatever the shard count.
const PAGE_ITEMS_TOTAL: usize = 2_000;
/// Before a tenant's first part has shown how long committing takes, a row is taken to
/// cost this much to commit: DynamoDB Local tombstones about 700 rows/s, DynamoDB far more,
/// so a first part errs on the small side.
const DEFAULT_COMMIT_MICROS_PER_ROW: u64 = 2_000;
/// The slowest pace believed: a second per row.
const MAX_COMMIT_MICROS_PER_ROW: u64 = 1_000_000;
/// The share the commit estimate is inflated by, for the commit's own jitter.
const COMMIT_SAFETY: f64 = 1.25;

const PARQUET_TYPE: &str = "application/vnd.apache.parquet";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Footer(#[from] FooterError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
    /// What S3 holds is not what was written or recorded: nothing is tombstoned.
    #[error("verification failed: {0}")]
    Verification(String),
    /// The head could not be signed; the next run signs it.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// How the job runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// `AUDIT_HOT_DAYS`, for tenants without their own window.
    pub default_hot_days: u32,
    /// `AUDIT_ARCHIVE_PART_ROWS`: a larger day is split into parts, so each stays a size a
    /// small function uploads and verifies comfortably and Athena splits well.
    pub part_max_rows: u64,
}

/// One part committed: a new manifest revision of its day.
#[derive(Debug, Clone, Serialize)]
pub struct Committed {
    pub tenant: String,
    pub date: String,
    pub seq: u64,
    pub rows: u64,
    pub part: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantFailure {
    pub tenant: String,
    pub error: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub committed: Vec<Committed>,
    /// Steps a previous run left unfinished and this one completed or dropped.
    pub resumed: u32,
    pub failures: Vec<TenantFailure>,
    /// The deadline came first; the next run continues.
    pub unfinished: bool,
    /// The archive's lag: over the tenants this run finished or stopped in, the most
    /// whole days between the oldest day left online that is due and the first day not
    /// due (0 when all of them are done). What the `ArchiveLagDays` metric reports.
    pub lag_days: u32,
    /// Tenants the deadline kept this run from visiting: their lag is not known.
    pub unvisited: usize,
}

impl Report {
    /// Rows committed per day, in the order the days were first committed.
    #[must_use]
    pub fn rows_by_day(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for c in &self.committed {
            match out.iter_mut().find(|(d, _)| *d == c.date) {
                Some((_, rows)) => *rows += c.rows,
                None => out.push((c.date.clone(), c.rows)),
            }
        }
        out
    }
}

/// What the archive reads, writes and tombstones.
#[derive(Clone)]
pub struct ArchiveStores {
    pub tenants: Arc<dyn Tenants>,
    pub tenant_registry: Arc<dyn TenantRegistry>,
    pub registry: Arc<dyn ArchiveRegistry>,
    pub index: Arc<dyn EventIndex>,
    pub events: Arc<dyn EventReader>,
    pub archiver: Arc<dyn EventArchiver>,
    pub bucket: Arc<dyn BlobStore>,
    /// Signs each new head into a checkpoint.
    pub signer: Arc<dyn Signer>,
    /// The public keys the head found at a run's start must be signed with.
    pub keys: Arc<dyn KeyDirectory>,
}

impl ArchiveStores {
    /// The archive of one store that holds events, tenants and the registry, into
    /// `bucket`, its checkpoints signed by `signer`.
    pub fn on<S, B, K>(store: &Arc<S>, bucket: &Arc<B>, signer: &Arc<K>) -> Self
    where
        S: Tenants + TenantRegistry + ArchiveRegistry + EventIndex + EventReader + EventArchiver + 'static,
        B: BlobStore + 'static,
        K: Signer + KeyDirectory + 'static,
    {
        Self {
            tenants: store.clone(),
            tenant_registry: store.clone(),
            registry: store.clone(),
            index: store.clone(),
            events: store.clone(),
            archiver: store.clone(),
            bucket: bucket.clone(),
            signer: signer.clone(),
            keys: signer.clone(),
        }
    }
}

/// The day's current manifest as this run knows it: what it says, its hash and ETag.
struct Current {
    manifest: Manifest,
    sha256: String,
    etag: String,
}

/// How long committing a row takes, as the tenant's last commit measured it: a part's
/// reading stops while the rows it holds can still be committed before the deadline.
#[derive(Debug, Clone, Copy)]
struct Pace {
    commit_micros_per_row: u64,
}

impl Pace {
    /// The pace kept on the registry item, bounded: a value no commit could have measured
    /// (an edited item) must neither stall the archive nor overflow the estimate.
    fn of(state: Option<u64>) -> Self {
        let kept = state.unwrap_or(DEFAULT_COMMIT_MICROS_PER_ROW);
        Self { commit_micros_per_row: kept.clamp(1, MAX_COMMIT_MICROS_PER_ROW) }
    }

    /// Whether `rows` read so far leave, at `now`, just the time to commit them before
    /// `deadline` (an estimate past any instant counts as past the deadline).
    fn must_stop(self, rows: u64, now: Instant, deadline: Option<Instant>) -> bool {
        #[expect(clippy::cast_precision_loss, reason = "an estimate")]
        let micros = rows as f64 * self.commit_micros_per_row as f64 * COMMIT_SAFETY;
        deadline.is_some_and(|d| {
            Duration::try_from_secs_f64(micros / 1e6)
                .ok()
                .and_then(|estimate| now.checked_add(estimate))
                .is_none_or(|done| done >= d)
        })
    }
}

/// What one committed row cost, measured over a commit of `rows`.
fn micros_per_row(elapsed: Duration, rows: u64) -> u64 {
    u64::try_from(elapsed.as_micros() / u128::from(rows.max(1))).unwrap_or(u64::MAX).max(1)
}

/// Why a day stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayEnd {
    Done,
    Deadline,
}

/// One archive run.
pub struct Archiver {
    stores: ArchiveStores,
    options: Options,
    /// Who holds the leases this run takes (unique per run).
    owner: String,
    /// What the deadline is measured by.
    clock: Arc<dyn Clock>,
}

impl Archiver {
    #[must_use]
    pub fn new(stores: ArchiveStores, options: Options) -> Self {
        Self { stores, options, owner: format!("archive-{}", uuid::Uuid::now_v7()), clock: Arc::new(SystemClock) }
    }

    /// The run measures its deadline and its commits' pace by `clock` (the system's by
    /// default).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn past(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| self.clock.now() >= d)
    }

    /// Archives every due day of every tenant (or of `only`), as if the time were `now`,
    /// stopping between parts once `deadline` has passed. A failing tenant is reported and
    /// the others still run.
    ///
    /// # Errors
    /// [`ArchiveError`] when the tenant registry cannot be read.
    pub async fn run(
        &self,
        now: Timestamp,
        only: Option<&TenantId>,
        deadline: Option<Instant>,
    ) -> Result<Report, ArchiveError> {
        let tenants = match only {
            Some(t) => vec![t.clone()],
            None => self.stores.tenant_registry.list().await?,
        };
        let mut report = Report::default();
        let count = tenants.len();
        for (i, tenant) in tenants.into_iter().enumerate() {
            if self.past(deadline) {
                report.unfinished = true;
                report.unvisited = count - i;
                break;
            }
            if let Err(e) = self.tenant(&tenant, now, deadline, &mut report).await {
                tracing::error!(%tenant, error = %e, "archive of tenant failed");
                report.failures.push(TenantFailure { tenant: tenant.to_string(), error: e.to_string() });
            }
        }
        Ok(report)
    }

    async fn tenant(
        &self,
        tenant: &TenantId,
        now: Timestamp,
        deadline: Option<Instant>,
        report: &mut Report,
    ) -> Result<(), ArchiveError> {
        self.stores.registry.lease(tenant, &self.owner).await?;
        let result = self.tenant_leased(tenant, now, deadline, report).await;
        if let Err(e) = self.stores.registry.release(tenant, &self.owner).await {
            tracing::warn!(%tenant, error = %e, "could not release the archive lease; it expires by itself");
        }
        result
    }

    async fn tenant_leased(
        &self,
        tenant: &TenantId,
        now: Timestamp,
        deadline: Option<Instant>,
        report: &mut Report,
    ) -> Result<(), ArchiveError> {
        let settings = self.stores.tenants.settings(tenant).await?;
        let cutoff = archive_cutoff(now, settings.hot_days.unwrap_or(self.options.default_hot_days));
        let state = self.stores.registry.state(tenant).await?;
        let mut pace = Pace::of(state.commit_micros_per_row);
        let mut head = state.head;
        // Whether the head is known to have its checkpoint (read once, by the vouching).
        let mut signed = false;
        if let Some(h) = &head {
            signed = self.vouch(tenant, h, state.pending.as_ref()).await?;
        }
        if let Some(p) = state.pending {
            if let Some(done) = self.resume(tenant, &p, head.as_ref()).await? {
                head = Some(ChainHead { seq: done.seq, sha256: p.manifest.clone() });
                signed = false;
                report.committed.push(done);
            }
            report.resumed += 1;
        }
        if let Some(h) = head.as_ref().filter(|_| !signed) {
            self.ensure_checkpoint(tenant, h).await?;
        }
        // Days done in this run are not visited again: an index can still list items this
        // run tombstoned a moment ago. Later late events wait for the next run.
        let mut after: Option<String> = None;
        loop {
            let Some(day) = self.earliest_day(tenant, settings.shards, after.as_deref(), &cutoff).await? else {
                return Ok(());
            };
            if self.past(deadline)
                || self.day(tenant, settings.shards, &day, &mut head, deadline, &mut pace, report).await?
                    == DayEnd::Deadline
            {
                report.unfinished = true;
                report.lag_days = report.lag_days.max(days_between(&day, &cutoff));
                return Ok(());
            }
            after = Some(day);
        }
    }

    /// The earliest UTC day with online events before day `before`, after day `after` if
    /// given.
    async fn earliest_day(
        &self,
        tenant: &TenantId,
        shards: u16,
        after: Option<&str>,
        before: &str,
    ) -> Result<Option<String>, StoreError> {
        let from = after.map_or(Timestamp::MIN, |d| day_start(d).plus_seconds(86_400));
        let to = day_start(before);
        let mut earliest: Option<String> = None;
        for shard in 0..shards.max(1) {
            let partition = Partition::new(shard, None);
            let first = self.stores.index.earliest(tenant, ReadPath::Time, &partition, from, to).await?;
            if let Some(day) = first.map(|k| k.occurred_at.day())
                && earliest.as_ref().is_none_or(|e| day < *e)
            {
                earliest = Some(day);
            }
        }
        Ok(earliest)
    }

    /// The day's current manifest, checked against the chain's head.
    async fn current(
        &self,
        tenant: &TenantId,
        date: &str,
        head: Option<&ChainHead>,
    ) -> Result<Option<Current>, ArchiveError> {
        let key = manifest::manifest_key(tenant.as_str(), date);
        let Some((bytes, etag)) = self.stores.bucket.get_bytes(&key).await? else { return Ok(None) };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| ArchiveError::Verification(format!("{key} is not a manifest: {e}")))?;
        if head.is_none_or(|h| manifest.seq > h.seq) {
            return Err(ArchiveError::Verification(format!(
                "{key} is seq {} but the chain's head is {:?}; run auditlog verify",
                manifest.seq,
                head.map(|h| h.seq)
            )));
        }
        Ok(Some(Current { manifest, sha256: manifest::hash(&bytes), etag }))
    }

    /// Archives what is online of one day, a part (and a revision) at a time, until the
    /// day is done or the deadline comes.
    #[allow(clippy::too_many_arguments)]
    async fn day(
        &self,
        tenant: &TenantId,
        shards: u16,
        date: &str,
        head: &mut Option<ChainHead>,
        deadline: Option<Instant>,
        pace: &mut Pace,
        report: &mut Report,
    ) -> Result<DayEnd, ArchiveError> {
        let t = tenant.as_str();
        let mut current = self.current(tenant, date, head.as_ref()).await?;
        // Items of a day already archived could be index ghosts of tombstoned ones: check
        // each against the base table before it goes into a late part.
        let confirm = current.is_some();
        let from = day_start(date);
        let filter = Filter::range(from, from.plus_seconds(86_400));
        let per_read = (PAGE_ITEMS_TOTAL / usize::from(shards.max(1))).max(50);
        let fetch = Fetch { first: per_read, most: per_read };
        let path = ReadPath::Time;
        let index = &*self.stores.index;
        let reserve = Reserve::default();
        let read = IndexRead { index, tenant, path, filter: &filter, order: Order::Asc, fetch, budget: None, reserve };
        let mut stream = read.events((0..shards.max(1)).map(|shard| Partition::new(shard, None)), &*self.stores.events);
        loop {
            if self.past(deadline) {
                return Ok(DayEnd::Deadline);
            }
            self.stores.registry.lease(tenant, &self.owner).await?;
            let scratch = Scratch::new(".parquet");
            let Some(written) = self.write_part(&mut stream, tenant, confirm, scratch.path(), *pace, deadline).await?
            else {
                return Ok(DayEnd::Done);
            };
            let name = self.free_part_name(t, date, current.as_ref()).await?;
            let (bytes, sha256) = hash_file(scratch.path())?;
            let entry = PartEntry { name, rows: written.rows, bytes, sha256, first: written.first, last: written.last };
            let revision = Manifest::revise(
                current.as_ref().map(|c| (&c.manifest, c.sha256.as_str())),
                t,
                date,
                head.as_ref(),
                Timestamp::now().to_string(),
                vec![entry.clone()],
            );
            let bytes = revision.to_bytes().map_err(|e| ArchiveError::Verification(e.to_string()))?;
            let step = Pending {
                date: date.to_owned(),
                part: entry,
                seq: revision.seq,
                created_at: revision.created_at.clone(),
                manifest: manifest::hash(&bytes),
                phase: Phase::Manifest,
            };
            // Conditional on the lease: a run that lost it stops here, before uploading.
            self.stores.registry.begin(tenant, &self.owner, &step).await?;
            let committing = self.clock.now();
            let etag = current.as_ref().map(|c| c.etag.clone());
            let Some((done, etag)) = self.commit(tenant, &step, bytes, Written::No(etag), Some(scratch.path())).await?
            else {
                return Err(ArchiveError::Verification(format!("{} vanished from S3", step.part.name)));
            };
            pace.commit_micros_per_row = micros_per_row(self.clock.now().duration_since(committing), done.rows);
            tracing::info!(%tenant, date, part = %done.part, rows = done.rows, seq = done.seq, "part archived");
            *head = Some(ChainHead { seq: step.seq, sha256: step.manifest.clone() });
            current = Some(Current { manifest: revision, sha256: step.manifest, etag });
            report.committed.push(done);
            if written.ended {
                return Ok(DayEnd::Done);
            }
        }
    }

    /// The next part's name: after the parts the day's manifest names and after any object
    /// already in the day's folder, which is never overwritten (a part a stalled run
    /// uploaded after losing its lease, or anything else no manifest names: `verify`
    /// reports it).
    async fn free_part_name(
        &self,
        tenant: &str,
        date: &str,
        current: Option<&Current>,
    ) -> Result<String, ArchiveError> {
        let mut next = current.map_or(0, |c| c.manifest.parts.len());
        let prefix = manifest::day_prefix(tenant, date);
        for listed in self.stores.bucket.list(&prefix).await? {
            let taken = listed.key.strip_prefix(&prefix).and_then(manifest::part_number);
            if let Some(n) = taken.filter(|n| *n >= next) {
                tracing::warn!(tenant, date, key = %listed.key, "an object no manifest names holds a part key; skipping it");
                next = n + 1;
            }
        }
        Ok(manifest::part_name(next))
    }

    /// Writes up to `part_max_rows` of the stream into a Parquet file at `path`, reading
    /// while `pace` says the rows read can still be committed before `deadline` (but at
    /// least one item); `None` when the stream had nothing left.
    async fn write_part(
        &self,
        stream: &mut Events<'_>,
        tenant: &TenantId,
        confirm: bool,
        path: &Path,
        pace: Pace,
        deadline: Option<Instant>,
    ) -> Result<Option<WrittenPart>, ArchiveError> {
        let mut writer = PartWriter::new(BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?))?;
        let mut first = None;
        let mut last = None;
        let mut chunk: Vec<StoredEvent> = Vec::with_capacity(CONFIRM_CHUNK);
        let mut ended = false;
        while !ended && writer.rows() < self.options.part_max_rows {
            if writer.rows() > 0 && pace.must_stop(writer.rows(), self.clock.now(), deadline) {
                break;
            }
            let room = usize::try_from(self.options.part_max_rows - writer.rows()).unwrap_or(usize::MAX);
            let want = if confirm { CONFIRM_CHUNK.min(room) } else { 1 };
            chunk.clear();
            while chunk.len() < want {
                match stream.next().await? {
                    Some((_, e)) => chunk.push(e),
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            let keep = if confirm && !chunk.is_empty() {
                let ids: Vec<&str> = chunk.iter().map(|e| e.event.id.as_str()).collect();
                self.stores.events.exist(tenant, &ids).await?
            } else {
                vec![true; chunk.len()]
            };
            for (event, keep) in chunk.iter().zip(keep) {
                if keep {
                    writer.push(event)?;
                    let at = event.event.occurred_at.to_string();
                    first.get_or_insert_with(|| at.clone());
                    last = Some(at);
                }
            }
        }
        let rows = writer.rows();
        let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(match (rows, first, last) {
            (1.., Some(first), Some(last)) => Some(WrittenPart { rows, first, last, ended }),
            _ => None,
        })
    }

    /// Drives a recorded step to its end: the part in S3 (uploaded from `file` if given,
    /// only if its key is free) and checked, the revision stored as its own object and as
    /// the day's manifest, the head advanced, the part's ids tombstoned, the step cleared.
    /// Returns what was committed and the day's manifest's new ETag; `None` when the part
    /// never reached S3 and there is no file to upload, so the step is dropped (nothing
    /// was tombstoned; the day's items are still online).
    async fn commit(
        &self,
        tenant: &TenantId,
        step: &Pending,
        revision: Vec<u8>,
        written: Written,
        file: Option<&Path>,
    ) -> Result<Option<(Committed, String)>, ArchiveError> {
        let started = self.clock.now();
        let t = tenant.as_str();
        let part_key = format!("{}{}", manifest::day_prefix(t, &step.date), step.part.name);
        if let Some(path) = file {
            match self.stores.bucket.put_file(&part_key, path, PARQUET_TYPE, Condition::Absent).await {
                // Taken: by this step's own earlier attempt, or the check below says so.
                Ok(()) | Err(BlobError::Precondition(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let held = self.stores.bucket.hash(&part_key).await?;
        match (&held, &written) {
            (Some((bytes, sha)), _) if *bytes == step.part.bytes && *sha == step.part.sha256 => {}
            // Before its revision is written a step can be dropped: nothing of it is
            // committed, its events are still online.
            (None, Written::No(_)) if file.is_none() => {
                tracing::info!(%tenant, date = %step.date, part = %step.part.name, "dropping a step whose part never reached S3");
                self.stores.registry.finish(tenant, &self.owner, step, None).await?;
                return Ok(None);
            }
            (Some(_), Written::No(_)) => {
                self.stores.registry.finish(tenant, &self.owner, step, None).await?;
                return Err(ArchiveError::Verification(format!(
                    "{part_key} was taken by an object no manifest names; nothing tombstoned, the next run goes past it"
                )));
            }
            _ => {
                return Err(ArchiveError::Verification(format!(
                    "{part_key}: S3 holds {held:?}, the step wrote {} bytes with SHA-256 {}; nothing tombstoned",
                    step.part.bytes, step.part.sha256
                )));
            }
        }
        let footer_rows = parquet_read::remote_rows(&*self.stores.bucket, &part_key).await?;
        if footer_rows != step.part.rows {
            return Err(ArchiveError::Verification(format!(
                "{part_key}: footer says {footer_rows} rows, the step wrote {}",
                step.part.rows
            )));
        }
        let revision_key = manifest::revision_key(t, step.seq);
        self.put_once(&revision_key, revision.clone(), Condition::Absent, &step.manifest).await?;
        let manifest_key = manifest::manifest_key(t, &step.date);
        if let Written::No(etag) = written {
            let condition = etag.map_or(Condition::Absent, Condition::Matches);
            self.put_once(&manifest_key, revision, condition, &step.manifest).await?;
        }
        let etag = self.check_manifest(&manifest_key, &step.manifest).await?;
        self.stores.registry.advance(tenant, &self.owner, step).await?;
        self.checkpoint(tenant, &ChainHead { seq: step.seq, sha256: step.manifest.clone() }).await?;
        let scratch = Scratch::new(".parquet");
        let local = match file {
            Some(path) => path,
            None => {
                self.stores.bucket.download(&part_key, scratch.path()).await?;
                scratch.path()
            }
        };
        self.tombstone_ids_of(tenant, step, local).await?;
        let pace = micros_per_row(self.clock.now().duration_since(started), step.part.rows);
        self.stores.registry.finish(tenant, &self.owner, step, Some(pace)).await?;
        let done = Committed {
            tenant: t.to_owned(),
            date: step.date.clone(),
            seq: step.seq,
            rows: step.part.rows,
            part: step.part.name.clone(),
        };
        Ok(Some((done, etag)))
    }

    /// Writes `bytes` under `condition`; a lost condition is fine when the key already
    /// holds these very bytes (an earlier attempt of this step landed).
    async fn put_once(
        &self,
        key: &str,
        bytes: Vec<u8>,
        condition: Condition,
        sha256: &str,
    ) -> Result<(), ArchiveError> {
        match self.stores.bucket.put_bytes(key, bytes, "application/json", condition).await {
            Ok(()) => Ok(()),
            Err(BlobError::Precondition(_)) => {
                self.check_manifest(key, sha256).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks that `key` holds the manifest just written; returns its ETag.
    async fn check_manifest(&self, key: &str, sha256: &str) -> Result<String, ArchiveError> {
        match self.stores.bucket.get_bytes(key).await? {
            Some((bytes, etag)) if manifest::hash(&bytes) == sha256 => Ok(etag),
            _ => Err(ArchiveError::Verification(format!("{key} does not hold the revision this step writes"))),
        }
    }

    /// Finishes (or drops) the step a previous run left, rebuilding its revision from the
    /// step's record, the day's previous revision and the head.
    async fn resume(
        &self,
        tenant: &TenantId,
        p: &Pending,
        head: Option<&ChainHead>,
    ) -> Result<Option<Committed>, ArchiveError> {
        tracing::info!(%tenant, date = %p.date, part = %p.part.name, phase = ?p.phase, "finishing the step a previous run left");
        let t = tenant.as_str();
        let key = manifest::manifest_key(t, &p.date);
        let stored = self.stores.bucket.get_bytes(&key).await?;
        let (revision, written) = match stored {
            Some((bytes, _)) if manifest::hash(&bytes) == p.manifest => (bytes, Written::Yes),
            _ if p.phase == Phase::Tombstone => {
                return Err(ArchiveError::Verification(format!(
                    "{key} no longer holds the revision whose tombstones are pending; run auditlog verify"
                )));
            }
            stored => {
                let previous = match &stored {
                    Some((bytes, _)) => Some(
                        serde_json::from_slice::<Manifest>(bytes)
                            .map_err(|e| ArchiveError::Verification(format!("{key}: {e}")))?,
                    ),
                    None => None,
                };
                let sha = stored.as_ref().map(|(b, _)| manifest::hash(b));
                let rebuilt = Manifest::revise(
                    previous.as_ref().zip(sha.as_deref()),
                    t,
                    &p.date,
                    head,
                    p.created_at.clone(),
                    vec![p.part.clone()],
                );
                let bytes = rebuilt.to_bytes().map_err(|e| ArchiveError::Verification(e.to_string()))?;
                if manifest::hash(&bytes) != p.manifest {
                    return Err(ArchiveError::Verification(format!(
                        "{key} changed under the pending step of seq {}; run auditlog verify",
                        p.seq
                    )));
                }
                (bytes, Written::No(stored.map(|(_, etag)| etag)))
            }
        };
        if p.phase == Phase::Tombstone {
            let part_key = format!("{}{}", manifest::day_prefix(t, &p.date), p.part.name);
            let scratch = Scratch::new(".parquet");
            self.stores.bucket.download(&part_key, scratch.path()).await?;
            if hash_file(scratch.path())? != (p.part.bytes, p.part.sha256.clone()) {
                return Err(ArchiveError::Verification(format!(
                    "{part_key} differs from its manifest; nothing tombstoned"
                )));
            }
            self.ensure_checkpoint(tenant, &ChainHead { seq: p.seq, sha256: p.manifest.clone() }).await?;
            self.tombstone_ids_of(tenant, p, scratch.path()).await?;
            self.stores.registry.finish(tenant, &self.owner, p, None).await?;
            return Ok(Some(Committed {
                tenant: t.to_owned(),
                date: p.date.clone(),
                seq: p.seq,
                rows: p.part.rows,
                part: p.part.name.clone(),
            }));
        }
        Ok(self.commit(tenant, p, revision, written, None).await?.map(|(done, _)| done))
    }

    /// Signs `head` into its checkpoint (one that exists already is kept).
    async fn checkpoint(&self, tenant: &TenantId, head: &ChainHead) -> Result<(), ArchiveError> {
        let mut checkpoint = Checkpoint::new(tenant.as_str(), head, Timestamp::now().to_string());
        checkpoint.signature = Some(self.stores.signer.sign(&checkpoint.message()).await?);
        let key = manifest::checkpoint_key(tenant.as_str(), head.seq);
        match self.stores.bucket.put_bytes(&key, checkpoint.to_bytes(), "application/json", Condition::Absent).await {
            Ok(()) | Err(BlobError::Precondition(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Signs `head` unless it has a checkpoint: one a crash between the head's move and
    /// its checkpoint left unsigned, or the head of an archive older than checkpoints.
    /// Whether the head the registry names may be built on and signed: the archive signs
    /// only what descends from what it signed before, so a chain rewritten in the bucket
    /// and the table together (its checkpoints removed) is refused, not vouched for. The
    /// head must be signed, or be the step in flight whose checkpoint a crash kept from
    /// being written, on top of a signed head (or first of its chain).
    ///
    /// # Errors
    /// [`ArchiveError::Verification`] when it may not.
    /// `true` when the head has its checkpoint already, `false` when it is the step in
    /// flight, yet to be signed.
    async fn vouch(
        &self,
        tenant: &TenantId,
        head: &ChainHead,
        pending: Option<&Pending>,
    ) -> Result<bool, ArchiveError> {
        let t = tenant.as_str();
        let keys = self.stores.keys.keys().await?;
        let refuse = |why: String| {
            Err(ArchiveError::Verification(format!(
                "the head (seq {}) {why}: not signing or building on it; run auditlog verify",
                head.seq
            )))
        };
        let signed = |seq: u64| {
            let keys = &keys;
            async move {
                let Some((bytes, _)) = self.stores.bucket.get_bytes(&manifest::checkpoint_key(t, seq)).await? else {
                    return Ok::<_, ArchiveError>(None);
                };
                let checkpoint = serde_json::from_slice::<Checkpoint>(&bytes).ok().filter(|c| {
                    c.tenant_id == t
                        && c.seq == seq
                        && signature::verify(keys, &c.message(), c.signature.as_ref()).is_ok()
                });
                Ok(Some(checkpoint.map(|c| c.head)))
            }
        };
        match signed(head.seq).await? {
            Some(Some(h)) if h == head.sha256 => return Ok(true),
            Some(Some(_)) => return refuse("is not the revision its checkpoint signs".into()),
            Some(None) => return refuse("has a checkpoint that does not verify".into()),
            None => {}
        }
        if !pending.is_some_and(|p| p.phase == Phase::Tombstone && p.seq == head.seq && p.manifest == head.sha256) {
            return refuse("is not signed".into());
        }
        let Some(previous) = head.seq.checked_sub(1).filter(|s| *s > 0) else { return Ok(false) };
        let Some(Some(previous_head)) = signed(previous).await? else {
            return refuse(format!("follows seq {previous}, which is not signed"));
        };
        let revision = self.stores.bucket.get_bytes(&manifest::revision_key(t, head.seq)).await?;
        let linked = revision.is_some_and(|(bytes, _)| {
            manifest::hash(&bytes) == head.sha256
                && serde_json::from_slice::<Manifest>(&bytes).is_ok_and(|m| m.prev.as_ref() == Some(&previous_head))
        });
        if linked { Ok(false) } else { refuse(format!("does not follow the signed seq {previous}")) }
    }

    async fn ensure_checkpoint(&self, tenant: &TenantId, head: &ChainHead) -> Result<(), ArchiveError> {
        let key = manifest::checkpoint_key(tenant.as_str(), head.seq);
        if self.stores.bucket.get_bytes(&key).await?.is_none() {
            tracing::info!(%tenant, seq = head.seq, "signing a head that has no checkpoint");
            self.checkpoint(tenant, head).await?;
        }
        Ok(())
    }

    /// Tombstones online exactly the events a verified part holds, read from its id column.
    async fn tombstone_ids_of(&self, tenant: &TenantId, step: &Pending, part: &Path) -> Result<(), ArchiveError> {
        for ids in parquet_read::ids(std::fs::File::open(part)?, TOMBSTONE_CHUNK)? {
            let moved: Vec<Moved> = ids?
                .into_iter()
                .map(|id| Moved { id, date: step.date.clone(), part: step.part.name.clone() })
                .collect();
            self.stores.archiver.tombstone(tenant, &moved).await?;
        }
        Ok(())
    }
}

/// Whether the day's current manifest already holds a step's revision; if not, the ETag
/// it must still have (none: the day has no manifest yet).
enum Written {
    Yes,
    No(Option<String>),
}

/// A part written to a scratch file.
struct WrittenPart {
    rows: u64,
    first: String,
    last: String,
    /// The day's stream has nothing after it.
    ended: bool,
}

fn day_start(day: &str) -> Timestamp {
    Timestamp::parse(&format!("{day}T00:00:00Z")).unwrap_or(Timestamp::MIN)
}

/// Whole days from day `from` to day `to` (0 if `to` is not later).
fn days_between(from: &str, to: &str) -> u32 {
    let days = (day_start(to).micros() - day_start(from).micros()) / 86_400_000_000;
    u32::try_from(days).unwrap_or(0)
}

#[cfg(test)]
mod pace_tests {
    use super::*;

    #[test]
    fn reading_stops_while_the_rows_read_can_still_be_committed() {
        let pace = Pace { commit_micros_per_row: 1_000 };
        let now = Instant::now();
        let in_a_second = Some(now + Duration::from_secs(1));
        assert!(!pace.must_stop(100, now, in_a_second));
        // 1,000 rows at 1 ms each, with the safety share, take longer than the second left.
        assert!(pace.must_stop(1_000, now, in_a_second));
        assert!(!pace.must_stop(1_000_000, now, None), "no deadline, no limit");
        assert_eq!(Pace::of(None).commit_micros_per_row, DEFAULT_COMMIT_MICROS_PER_ROW);
        assert_eq!(Pace::of(Some(0)).commit_micros_per_row, 1);
        // An edited registry item: bounded, and no estimate overflows.
        assert_eq!(Pace::of(Some(u64::MAX)).commit_micros_per_row, MAX_COMMIT_MICROS_PER_ROW);
        let huge = Pace { commit_micros_per_row: u64::MAX };
        assert!(huge.must_stop(u64::MAX, now, in_a_second));
        assert_eq!(micros_per_row(Duration::from_secs(2), 1_000), 2_000);
        assert_eq!(micros_per_row(Duration::from_micros(5), 0), 5);
    }
}
