//! Events in the store: conditional writes, reads by id, ordered index reads and the
//! archive's tombstones, each its own trait.
//!
//! An index read is one page of one [`Partition`] of a [`Path`], in [`EventKey`] order.
//! Like DynamoDB's Query, a page evaluates at most `limit` entries and returns those the
//! filter keeps, so a page can be short, even empty, with more to come; `last_evaluated`
//! is where the next page starts. An index may hold only keys (and what its filters
//! need): the events of the entries a reader takes are then fetched in one batch
//! ([`EventReader::fetch`]), so a page reads its look-ahead and the losers of a merge as
//! small index entries only.

use crate::domain::error::{Code, ErrorBody};
use crate::domain::event::StoredEvent;
use crate::domain::filter::{Filter, Order};
use crate::domain::plan::{EventKey, Partition, Path};
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use async_trait::async_trait;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttled or unavailable after every retry: the caller may try again later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A request the store refused for good (a bug or a misconfiguration).
    #[error("store request refused: {0}")]
    Refused(String),
    /// Stored data that is not what was written: an archived row or a registry entry
    /// that does not hold together.
    #[error("{0}")]
    Corrupt(String),
    /// A stored event that is not a valid event or no longer matches its hash (altered in
    /// the table): named, so the log and the metric say whose and which.
    #[error("stored event {event} of tenant {tenant} failed its integrity check: {why}")]
    Altered { tenant: String, event: String, why: String },
}

impl StoreError {
    /// The contract's error body for this failure, its cause logged and never shown: the
    /// one mapping every interface uses.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        match self {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %self, "store unavailable");
                ErrorBody::new(Code::Throttled, "storage is busy; retry")
            }
            StoreError::Refused(_) => {
                tracing::error!(error = %self, "store error");
                ErrorBody::new(Code::Internal, "internal error")
            }
            StoreError::Corrupt(why) => {
                tracing::error!(why, "stored data failed its integrity check");
                ErrorBody::new(Code::DataIntegrity, "stored data failed its integrity check; it is not served")
            }
            StoreError::Altered { tenant, event, why } => {
                tracing::error!(tenant, event, why, "stored event failed its integrity check");
                let mut body = ErrorBody::new(
                    Code::DataIntegrity,
                    format!("stored event {event} failed its integrity check; it is not served"),
                );
                body.event = Some(event.clone());
                body
            }
        }
    }
}

/// What became of one conditional event write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// The same (tenant, id) with the same content was already stored.
    Duplicate,
    /// The same (tenant, id) is stored with different content; it was left untouched.
    Conflict,
}

#[async_trait]
pub trait EventWriter: Send + Sync {
    /// Writes an event into write shard `shard` unless its (tenant, id) exists; never
    /// overwrites. `dedup` is the digest that tells a duplicate from a conflict.
    ///
    /// # Errors
    /// [`StoreError`] when the write could not be made.
    async fn put(&self, event: &StoredEvent, shard: u16, dedup: &str) -> Result<PutOutcome, StoreError>;
}

/// Where the archive moved an event: the part of its day that holds its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub id: String,
    /// The UTC day, `YYYY-MM-DD`.
    pub date: String,
    /// The part's file name, `part-NNNNN.parquet`.
    pub part: String,
}

/// An archived event as its tombstone points to it: day, part, and its key, whose time
/// picks the row group (by the part's `occurred_at` statistics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedAt {
    pub date: String,
    pub part: String,
    pub key: EventKey,
}

/// What the store knows of an id.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Online(Box<StoredEvent>),
    /// Moved to the archive; its item is a tombstone that keeps the id taken.
    Archived(ArchivedAt),
    /// Never stored.
    Absent,
}

impl Lookup {
    /// The event, if it is online.
    #[must_use]
    pub fn online(self) -> Option<StoredEvent> {
        match self {
            Lookup::Online(e) => Some(*e),
            _ => None,
        }
    }
}

#[async_trait]
pub trait EventReader: Send + Sync {
    /// What the store holds for `id`, read consistently: the event, the tombstone of an
    /// archived one, or nothing.
    ///
    /// # Errors
    /// [`StoreError`], including a corrupt item.
    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Lookup, StoreError>;

    /// Which of `ids` are still online (neither absent nor tombstoned), read
    /// consistently: an index can briefly still list an event just archived.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn exist(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<bool>, StoreError>;

    /// The online events with `ids` (at most [`FETCH_MAX`]), in the order asked, `None`
    /// where there is none (archived, or never stored): one batched read of the events an
    /// index page listed. An id an index lists is always read back, even in the moment
    /// before an eventually consistent read would see it.
    ///
    /// # Errors
    /// [`StoreError`], including a corrupt item.
    async fn fetch(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<Option<StoredEvent>>, StoreError>;
}

/// Most ids of one [`EventReader::fetch`] (DynamoDB's BatchGetItem takes 100 keys).
pub const FETCH_MAX: usize = 100;

/// One read of an index partition.
#[derive(Debug, Clone, Copy)]
pub struct IndexQuery<'a> {
    pub tenant: &'a TenantId,
    pub path: Path,
    pub partition: &'a Partition,
    /// `from`/`to` bound the keys read; the other filters choose what is returned.
    pub filter: &'a Filter,
    pub order: Order,
    /// Start after this key (exclusive).
    pub after: Option<&'a EventKey>,
    /// Most events evaluated.
    pub limit: usize,
}

/// One entry of an index page: where it sorts, and its event when the index holds the
/// whole event (otherwise the reader fetches it).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub key: EventKey,
    pub event: Option<StoredEvent>,
}

#[derive(Debug, Clone, Default)]
pub struct IndexPage {
    /// The entries the index's filters kept, in key order.
    pub entries: Vec<IndexEntry>,
    /// The last key evaluated, where the next page starts; `None` at the partition's end.
    pub last_evaluated: Option<EventKey>,
    /// Items the store read for this page (its cost).
    pub read: u32,
}

#[derive(Debug, Clone, Default)]
pub struct CountPage {
    pub count: u64,
    pub last_evaluated: Option<EventKey>,
    /// Index entries evaluated (the page's cost).
    pub read: u32,
}

#[async_trait]
pub trait EventIndex: Send + Sync {
    /// Whether the index decides every filter of `filter` itself, so that its entries are
    /// exactly the matches and a count can be taken from the index alone. The filters it
    /// does not decide (such as `q` on DynamoDB, whose indexes hold no text) let through
    /// entries that a reader drops once it has fetched their events.
    fn decides(&self, filter: &Filter) -> bool;

    /// One page of a partition, in key order.
    ///
    /// # Errors
    /// [`StoreError`], including a corrupt item.
    async fn page(&self, q: &IndexQuery<'_>) -> Result<IndexPage, StoreError>;

    /// How many entries of a partition pass the index's filters, one page of at most
    /// `limit` evaluated at a time.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn count(&self, q: &IndexQuery<'_>) -> Result<CountPage, StoreError>;

    /// The key of the earliest event of a partition in `[from, to)`.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn earliest(
        &self,
        tenant: &TenantId,
        path: Path,
        partition: &Partition,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<EventKey>, StoreError>;
}

#[async_trait]
pub trait EventArchiver: Send + Sync {
    /// Turns each moved event's item into a tombstone: out of every index, keeping the id
    /// (with its `dedup` digest, so a resend is still a duplicate or a conflict) and where
    /// its row went. Repeating it is a no-op and an absent id is skipped, so a rerun may
    /// repeat it freely; an id already tombstoned to another part is refused, since the
    /// archive must never hold two rows for it.
    ///
    /// # Errors
    /// [`StoreError`] when a tombstone cannot be written, [`StoreError::Corrupt`] for an
    /// id archived elsewhere.
    async fn tombstone(&self, tenant: &TenantId, moved: &[Moved]) -> Result<(), StoreError>;
}

#[async_trait]
pub trait Health: Send + Sync {
    /// Checks the store answers (`/healthz`, and every function's warm-up).
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    async fn ping(&self) -> Result<(), StoreError>;
}
