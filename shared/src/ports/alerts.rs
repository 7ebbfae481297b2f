//! Alert rules, their state, their deliveries, and the way out to webhooks and SNS.

use crate::domain::alert::{Destination, Rule};
use crate::domain::delivery::{Attempt, Delivery, Summary};
use crate::domain::egress::WebhookUrl;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::domain::webhook::Secrets;
use crate::ports::StoreError;
use crate::usecases::alerts::RuleState;
use async_trait::async_trait;

/// A rule as stored, with what its deliveries left on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    pub rule: Rule,
    pub summary: Summary,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleWriteError {
    /// The tenant already has [`crate::domain::alert::MAX_RULES_PER_TENANT`] rules.
    #[error("the tenant has as many rules as it may")]
    Limit,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tenant's rules (the API's side).
#[async_trait]
pub trait AlertRules: Send + Sync {
    /// Stores a new rule, unless the tenant has the most rules it may: the count and
    /// the rule change together, so concurrent creations cannot pass the limit.
    ///
    /// # Errors
    /// [`RuleWriteError::Limit`], or storage unavailable.
    async fn create(&self, rule: &Rule) -> Result<(), RuleWriteError>;

    /// # Errors
    /// Storage unavailable, or a stored rule that cannot be read.
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<StoredRule>, StoreError>;

    /// Every rule of the tenant, oldest first (ids are UUIDv7). Also what the alerts
    /// function caches.
    ///
    /// # Errors
    /// As [`AlertRules::get`].
    async fn list(&self, tenant: &TenantId) -> Result<Vec<StoredRule>, StoreError>;

    /// Replaces the rule's settings and secrets if it is still as last updated at
    /// `expected`; `false` when it changed meanwhile or is gone.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn replace(&self, rule: &Rule, expected: Timestamp) -> Result<bool, StoreError>;

    /// Deletes the rule and its threshold state; `false` when there was none.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
}

/// How [`AlertState::commit`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Done,
    /// The state moved since it was read (another batch): read it again and decide anew.
    Conflict,
    /// This event was already applied to this rule (a stream record processed again):
    /// nothing changed.
    Replayed,
}

/// A rule's threshold state, and the record of which events it has counted.
#[async_trait]
pub trait AlertState: Send + Sync {
    /// The rule's state and its version (0 before the first match).
    ///
    /// # Errors
    /// Storage unavailable.
    async fn state(&self, tenant: &TenantId, rule_id: &str) -> Result<(RuleState, u64), StoreError>;

    /// All or nothing: marks `event_id` as applied to the rule, moves its state from
    /// `version` to `next`, and stores `delivery` (when the match notifies).
    ///
    /// # Errors
    /// Storage unavailable.
    async fn commit(
        &self,
        tenant: &TenantId,
        rule_id: &str,
        event_id: &str,
        version: u64,
        next: &RuleState,
        delivery: Option<&Delivery>,
    ) -> Result<Commit, StoreError>;
}

/// Stored deliveries.
#[async_trait]
pub trait Deliveries: Send + Sync {
    /// # Errors
    /// Storage unavailable, or a stored delivery that cannot be read.
    async fn delivery(&self, tenant: &TenantId, rule_id: &str, id: &str) -> Result<Option<Delivery>, StoreError>;

    /// Records one attempt on the delivery (status, attempts, error) and on its rule's
    /// [`Summary`] (nothing there when the rule is gone).
    ///
    /// # Errors
    /// Storage unavailable.
    async fn record(&self, delivery: &Delivery, attempt: &Attempt) -> Result<(), StoreError>;
}

/// Why a notification was not delivered. Every failure is retried on the schedule: a
/// receiver back up, a topic's policy mended, a DNS name that now resolves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// The way out: a signed HTTPS request, or an SNS message.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Resolves a webhook's host now and checks every address, for the API to refuse
    /// a rule that could never be delivered.
    ///
    /// # Errors
    /// The reason, as the tenant sees it.
    async fn check(&self, url: &WebhookUrl) -> Result<(), SendError>;

    /// One attempt at `now`: for a webhook, the body signed with every secret that signs
    /// then, to an address checked as it is connected to, no redirects followed, a 2xx
    /// within the timeout required.
    ///
    /// # Errors
    /// The attempt's failure.
    async fn send(
        &self,
        destination: &Destination,
        secrets: &Secrets,
        delivery: &Delivery,
        subject: &str,
        now: Timestamp,
    ) -> Result<(), SendError>;
}
