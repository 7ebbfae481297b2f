//! Ports: the narrow capabilities use cases need from the world outside the process,
//! one trait per capability, so each function holds only what its IAM policy allows
//! (the ingest function cannot delete, the query function cannot write).
//!
//! May depend on: the domain. Implemented by the DynamoDB, S3 and SQS adapters
//! (`audit-aws`) and by the in-memory adapters in [`crate::memory`]. A new store
//! implements these traits; a use case never sees which one it has.

pub mod alerts;
pub mod blob;
pub mod catalogs;
pub mod clock;
pub mod events;
pub mod exports;
pub mod queue;
pub mod registry;
pub mod signing;
pub mod tenants;
pub mod turns;

pub use alerts::{AlertAgenda, AlertInbox, AlertRules, AlertState, Applied, Deliveries, Due, Matched, Notifier};
pub use alerts::{BULK_BYTES, Bulk, RULES_PER_MATCHED, RuleChange, RuleWriteError, SendError, StoredRule};
pub use blob::{BlobError, BlobStore, Condition, Listed, Upload};
pub use catalogs::{CatalogRead, Catalogs};
pub use clock::Clock;
pub use events::{ArchivedAt, CountPage, EventArchiver, EventIndex, EventReader, EventWriter, FETCH_MAX, Health};
pub use events::{IndexEntry, IndexPage, IndexQuery, Lookup, Moved, PutOutcome, StoreError};
pub use exports::ExportJobs;
pub use queue::{MessageQueue, Outgoing, QueueError};
pub use registry::{ArchiveRegistry, RegistryError};
pub use signing::{KeyDirectory, SignError, Signer};
pub use tenants::{TenantRegistry, Tenants};
pub use turns::{Noted, Passed, Take, TurnStore};
