//! Changes to a tenant's export dispatch record ([`Dispatch`]): read, change, write over
//! the version read, again when another writer came first.

use crate::domain::export_dispatch::Dispatch;
use crate::domain::tenant::TenantId;
use crate::ports::{ExportJobs, StoreError};

/// Tries a change this many times against concurrent writers: each of them is a worker or
/// a request of the same tenant, which are few at once.
const ATTEMPTS: usize = 10;

/// Applies `change` to the tenant's record: `Ok(true)` once written, `Ok(false)` when
/// `change` declines (a limit reached, nothing to do).
///
/// # Errors
/// [`StoreError`], or `Unavailable` when other writers kept coming first.
pub async fn apply(
    jobs: &dyn ExportJobs,
    tenant: &TenantId,
    change: impl Fn(&Dispatch) -> Option<Dispatch>,
) -> Result<bool, StoreError> {
    for _ in 0..ATTEMPTS {
        let current = jobs.dispatch(tenant).await?;
        let Some(next) = change(&current) else { return Ok(false) };
        if jobs.put_dispatch(tenant, &next, current.version).await? {
            return Ok(true);
        }
    }
    Err(StoreError::Unavailable("the export dispatch record kept changing; retry".into()))
}

/// Job `id` no longer queued or running: its place and its slots given back. A failure
/// is only logged: a place left behind is given back when the tenant next reaches its
/// limit ([`Dispatch::settled`]), a slot when its lease ends.
pub async fn finish(jobs: &dyn ExportJobs, tenant: &TenantId, id: &str) {
    if let Err(e) = apply(jobs, tenant, |d| d.finish(id)).await {
        tracing::warn!(%tenant, id, error = %e, "export dispatch record not updated; it heals at the limit");
    }
}
