//! Alert rules, their state, their deliveries, and the way out to webhooks and SNS.

use crate::domain::alert::{Destination, Rule};
use crate::domain::alerting::RuleState;
use crate::domain::delivery::{Attempt, Delivery, Summary};
use crate::domain::egress::WebhookUrl;
use crate::domain::event::StoredEvent;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::domain::webhook::Secrets;
use crate::ports::StoreError;
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

/// Most rules one matched event lists in one agenda entry; an event that matches more
/// is split into entries of at most this many, so each is applied in one transaction.
pub const RULES_PER_MATCHED: usize = 24;

/// An event that matched some of its tenant's rules as it arrived, waiting on the
/// tenant's agenda for its turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    pub event: StoredEvent,
    /// The rules it matched when it arrived (at most [`RULES_PER_MATCHED`]).
    pub rules: Vec<String>,
    /// Which entry of the event this is, when it matched more rules than one holds.
    pub part: u8,
}

/// Most bytes of events (their canonical text) one [`Bulk`] carries, with room left for
/// the rest under DynamoDB's 400 KB item (the text is stored compressed).
pub const BULK_BYTES: usize = 256 * 1024;

/// Many matched events of one tenant in one agenda entry: what the stream hands over for
/// a tenant with more matches in a batch than it writes one by one, so that what a
/// tenant's flood costs the stream is a write per bulk, not per 24 matched rules. The
/// tenant's worker puts the events' own entries on the agenda in its turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Bulk {
    pub tenant: TenantId,
    /// When it is due: its earliest event's arrival.
    pub due: Timestamp,
    /// The rules its events matched, each once.
    pub rules: Vec<String>,
    /// Its events (at least one), in the stream's order, each with the indexes in `rules`
    /// of the rules it matched, in order.
    pub events: Vec<(StoredEvent, Vec<u16>)>,
}

/// Something due on a tenant's agenda.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// A matched event to judge (boxed: it carries the whole event).
    Matched(Box<Matched>),
    /// Matched events to read back and put on the agenda one by one.
    Bulk(Box<Bulk>),
    /// An attempt at a delivery.
    Attempt { rule_id: String, delivery_id: String, due: Timestamp },
    /// A rule's folded notifications to send.
    Flush { rule_id: String, due: Timestamp },
}

/// The stream's side: matched events onto their tenants' agendas.
#[async_trait]
pub trait AlertInbox: Send + Sync {
    /// Puts `matched` on the agendas. Putting an entry again (a stream record read twice)
    /// writes the same item; the applied marker keeps it from counting twice.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn put(&self, matched: &[Matched]) -> Result<(), StoreError>;

    /// Puts `bulks` on their tenants' agendas; putting one again writes the same item.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn put_bulks(&self, bulks: &[Bulk]) -> Result<(), StoreError>;

    /// Takes a bulk entry off the agenda once its events' entries are on it.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn unpacked(&self, bulk: &Bulk) -> Result<(), StoreError>;
}

/// A tenant's agenda: everything its worker has to do, by the time it is due.
#[async_trait]
pub trait AlertAgenda: Send + Sync {
    /// Entries due at `now`, earliest first, at most `limit`.
    ///
    /// # Errors
    /// Storage unavailable, or an entry that cannot be read.
    async fn due(&self, tenant: &TenantId, now: Timestamp, limit: usize) -> Result<Vec<Due>, StoreError>;

    /// When the earliest entry is due; `None` when the agenda is empty.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn next_due(&self, tenant: &TenantId) -> Result<Option<Timestamp>, StoreError>;
}

/// A rule's state moved by a match or a flush, and what that sets going.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChange {
    pub rule_id: String,
    /// The version of the state it was decided from (0: the rule had none).
    pub version: u64,
    pub next: RuleState,
    /// A notification: stored with its first attempt due at once.
    pub delivery: Option<Delivery>,
    /// A flush of folded notifications to put on the agenda.
    pub schedule_flush: Option<Timestamp>,
    /// A flush to take off the agenda (the notification absorbed what it would send).
    pub cancel_flush: Option<Timestamp>,
}

/// How an all-or-nothing change went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The entry was applied already (a stream record read again): nothing changed but
    /// the entry's removal.
    Replayed,
    /// The entry is gone (another worker applied it): nothing changed.
    Gone,
    /// These rules' states moved since they were read: read them again and decide anew.
    Conflict(Vec<String>),
}

/// Rule states, and the changes matches and flushes make, each all or nothing.
#[async_trait]
pub trait AlertState: Send + Sync {
    /// The rule's state and its version (0 before the first change).
    ///
    /// # Errors
    /// Storage unavailable.
    async fn state(&self, tenant: &TenantId, rule_id: &str) -> Result<(RuleState, u64), StoreError>;

    /// Takes `matched` off its tenant's agenda, marks it applied, and makes `changes`.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn apply(&self, matched: &Matched, changes: &[RuleChange]) -> Result<Applied, StoreError>;

    /// Takes the rule's flush due at `due` off the agenda and makes `change` (which may
    /// schedule the next flush).
    ///
    /// # Errors
    /// Storage unavailable.
    async fn flush(
        &self,
        tenant: &TenantId,
        rule_id: &str,
        due: Timestamp,
        change: Option<&RuleChange>,
    ) -> Result<Applied, StoreError>;
}

/// Stored deliveries.
#[async_trait]
pub trait Deliveries: Send + Sync {
    /// # Errors
    /// Storage unavailable, or a stored delivery that cannot be read.
    async fn delivery(&self, tenant: &TenantId, rule_id: &str, id: &str) -> Result<Option<Delivery>, StoreError>;

    /// Records the attempt that was due at `due` (or the delivery's end without one):
    /// the delivery moves on only from where it stood (`delivery.attempts`), its agenda
    /// entry moves to the next attempt or goes, and the rule's [`Summary`] shows it
    /// (nothing there when the rule is gone).
    ///
    /// # Errors
    /// Storage unavailable.
    async fn record(&self, delivery: &Delivery, due: Timestamp, attempt: &Attempt) -> Result<(), StoreError>;

    /// Takes an attempt off the agenda whose delivery is gone or ended.
    ///
    /// # Errors
    /// Storage unavailable.
    async fn forget(
        &self,
        tenant: &TenantId,
        rule_id: &str,
        delivery_id: &str,
        due: Timestamp,
    ) -> Result<(), StoreError>;

    /// Moves the attempt due at `due` to `to`, not making it (its destination is paused).
    ///
    /// # Errors
    /// Storage unavailable.
    async fn defer(&self, delivery: &Delivery, due: Timestamp, to: Timestamp) -> Result<(), StoreError>;
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
