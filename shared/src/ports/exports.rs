//! Export jobs: their records and state changes, each conditional on the state it
//! leaves ([`Job::claimable`] and its siblings say which).

use crate::domain::export::{Job, Produced};
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

    /// The tenant's jobs created since `since`, newest first.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn list(&self, tenant: &TenantId, since: Timestamp) -> Result<Vec<Job>, StoreError>;

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

    /// Records that a finished file's time is up and its object is gone.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn expire(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
}
