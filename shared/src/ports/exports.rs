//! Export jobs: their records and state changes, each conditional on the state it
//! leaves ([`Job::claimable`] and its siblings say which), and each tenant's dispatch
//! record ([`Dispatch`]), written only over the version it was read at.

use crate::domain::export::{Job, Produced};
use crate::domain::export_dispatch::Dispatch;
use crate::domain::export_part::{Part, Range};
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::ports::StoreError;
use async_trait::async_trait;

#[async_trait]
pub trait ExportJobs: Send + Sync {
    /// # Errors
    /// [`StoreError`].
    async fn create(&self, job: &Job) -> Result<(), StoreError>;

    /// # Errors
    /// [`StoreError`].
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Job>, StoreError>;

    /// Up to `limit` of the tenant's jobs created since `since`, newest first, from the
    /// one before job id `before` (exclusive) when given.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn list(
        &self,
        tenant: &TenantId,
        since: Timestamp,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError>;

    /// The tenant's dispatch record, read consistently (version 0 when it has none).
    ///
    /// # Errors
    /// [`StoreError`].
    async fn dispatch(&self, tenant: &TenantId) -> Result<Dispatch, StoreError>;

    /// Writes `next` as the tenant's dispatch record if it is still at version
    /// `expected`; `false` when another change came first (read again and retry).
    ///
    /// # Errors
    /// [`StoreError`].
    async fn put_dispatch(&self, tenant: &TenantId, next: &Dispatch, expected: u64) -> Result<bool, StoreError>;

    /// Moves a claimable job to running at `now`; `false` when another delivery has it or
    /// it is finished.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn claim(&self, tenant: &TenantId, id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Records a finished file, downloadable for `DOWNLOAD_HOURS` from `now`.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn succeed(
        &self,
        tenant: &TenantId,
        id: &str,
        produced: Produced,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records why a job failed.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn fail(
        &self,
        tenant: &TenantId,
        id: &str,
        code: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records the plan of a running job, its parts' ranges in order; `false` when it has
    /// one already (an earlier run planned it) or is not running.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn set_plan(&self, tenant: &TenantId, id: &str, parts: &[Range]) -> Result<bool, StoreError>;

    /// The job's parts that were ever claimed, by index (a part not yet claimed has no
    /// record: its range is in the job's plan).
    ///
    /// # Errors
    /// [`StoreError`].
    async fn parts(&self, tenant: &TenantId, id: &str) -> Result<Vec<Part>, StoreError>;

    /// Claims part `index` (of range `range`) at `now` when [`Part::claimable`] (or never
    /// claimed): running, with the next attempt number. The part as claimed; `None` when
    /// another run holds it or it is done.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn claim_part(
        &self,
        tenant: &TenantId,
        id: &str,
        index: u32,
        range: Range,
        now: Timestamp,
    ) -> Result<Option<Part>, StoreError>;

    /// Records a part's status, files, cursor and progress, only while its claim
    /// `part.attempt` still holds it (running); `false` when another claim took it over.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn save_part(&self, tenant: &TenantId, id: &str, part: &Part) -> Result<bool, StoreError>;

    /// Records that a finished file's time is up and its object is gone.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn expire(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
}
