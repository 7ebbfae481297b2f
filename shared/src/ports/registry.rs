//! The archive's state per tenant: the head of its manifest chain, the one step in
//! flight, and a lease so two runs never interleave. Every change after [`lease`] is
//! conditional on still holding it, so a run that lost its lease (it stalled past the
//! expiry and another took over) fails instead of writing.
//!
//! [`lease`]: ArchiveRegistry::lease

use crate::domain::manifest::{ArchiveState, Pending};
use crate::domain::tenant::TenantId;
use crate::ports::StoreError;
use async_trait::async_trait;

/// How long a run holds a tenant before another run may take over; renewed every day.
pub const LEASE_SECONDS: u64 = 20 * 60;

/// The registry item changed under us: another run holds the tenant, or our lease lapsed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("another archive run holds tenant {0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait ArchiveRegistry: Send + Sync {
    /// Takes (or renews) the tenant's lease for `owner` for [`LEASE_SECONDS`].
    ///
    /// # Errors
    /// [`RegistryError::Busy`] when another owner holds an unexpired lease.
    async fn lease(&self, tenant: &TenantId, owner: &str) -> Result<(), RegistryError>;

    /// Gives the lease back; one that already lapsed is not an error.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn release(&self, tenant: &TenantId, owner: &str) -> Result<(), StoreError>;

    /// The tenant's archive state, read consistently.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn state(&self, tenant: &TenantId) -> Result<ArchiveState, StoreError>;

    /// Records the step about to write a manifest.
    ///
    /// # Errors
    /// [`RegistryError::Busy`] if the lease was lost or another step is in flight.
    async fn begin(&self, tenant: &TenantId, owner: &str, step: &Pending) -> Result<(), RegistryError>;

    /// The step's manifest is stored: it becomes the chain's head.
    ///
    /// # Errors
    /// [`RegistryError::Busy`] if the lease was lost or the step changed.
    async fn advance(&self, tenant: &TenantId, owner: &str, step: &Pending) -> Result<(), RegistryError>;

    /// The step is over (finished, or abandoned before its manifest was written), with
    /// the pace its commit measured ([`ArchiveState::commit_micros_per_row`]) if it did.
    ///
    /// # Errors
    /// [`RegistryError::Busy`] if the lease was lost or the step changed.
    async fn finish(
        &self,
        tenant: &TenantId,
        owner: &str,
        step: &Pending,
        commit_micros_per_row: Option<u64>,
    ) -> Result<(), RegistryError>;
}
