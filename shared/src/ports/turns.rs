//! The record of each tenant's turn ([`crate::domain::turn`]): its token, when it is
//! due, who holds it, how much work has been noted for it, and what the tenant's slices
//! keep between them. Every change is conditional, so a stale worker or a racing note
//! cannot lose a turn or leave work without one.

use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::ports::StoreError;
use async_trait::async_trait;

/// What noting work found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noted {
    /// A live turn, due now, will see the work.
    Live,
    /// No live turn: install one in place of `token` (none: there is no turn at all).
    Replace { token: Option<String> },
}

/// What taking a turn found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// Held: `version` counts the work noted so far; `state` is what the last slice kept.
    Held { version: u64, state: Option<String> },
    /// Not the tenant's turn: `current` is the newest of the tenant's turn and the last
    /// one passed on (if any). A message whose token is newer may just not be recorded yet.
    Stale { current: Option<String> },
    /// The turn sleeps until then: send the message on.
    NotYet(Timestamp),
    /// Another worker holds it: leave the message for later.
    Busy,
}

/// How passing a turn on went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passed {
    Done,
    /// Work was noted since the turn was taken: look again, it is due now.
    Moved,
    /// The token is not the tenant's any more (replaced as lost): nothing to pass.
    Lost,
}

#[async_trait]
pub trait TurnStore: Send + Sync {
    /// Counts new work for the tenant's turn of `kind` at `now`.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn note(&self, kind: &str, tenant: &TenantId, now: Timestamp) -> Result<Noted, StoreError>;

    /// Makes `token`, due at `due`, the tenant's turn in place of `replaced`, counting
    /// the work noted; `false` when another turn was installed meanwhile.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn install(
        &self,
        kind: &str,
        tenant: &TenantId,
        replaced: Option<&str>,
        token: &str,
        due: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Holds turn `token` from `now` until `until`.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn take(
        &self,
        kind: &str,
        tenant: &TenantId,
        token: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Take, StoreError>;

    /// Passes held turn `token` on to `next` (a token and when it is due), or to none,
    /// keeping `state`. With `version`, only if no work was noted since the turn was
    /// taken at that version.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn pass(
        &self,
        kind: &str,
        tenant: &TenantId,
        token: &str,
        next: Option<(&str, Timestamp)>,
        state: Option<&str>,
        version: Option<u64>,
    ) -> Result<Passed, StoreError>;
}
