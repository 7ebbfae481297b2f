//! The DynamoDB key design (README, "Storage design").
//!
//! One table. An event's primary key is its identity, `EV#{tenant}#{id}`: the conditional
//! put on it is what makes ingest idempotent whatever `occurred_at` says, and it spreads
//! writes evenly whatever the tenant's volume. Every read path is a GSI whose partition key
//! starts with `{tenant}#{shard}` and whose sort key is `ts` = `{occurred_at}#{id}`, so
//! each partition is one ordered stream that a reader merges across shards. Free-form
//! parts (actor id, action, resource id) come last, after components that cannot hold `#`,
//! so no value can forge another key.

use crate::tenant::TenantId;
use crate::timestamp::Timestamp;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// Sort key of every event index: `{occurred_at}#{id}`.
pub const TS: &str = "ts";

/// A global secondary index over events: its name and partition-key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub pk: &'static str,
}

/// Every event of a tenant by time: the archive's and the unfiltered console's path.
pub const BY_TIME: Index = Index { name: "by_time", pk: "gt_pk" };
/// Events of one operator.
pub const BY_ACTOR: Index = Index { name: "by_actor", pk: "ga_pk" };
/// Events of one action.
pub const BY_ACTION: Index = Index { name: "by_action", pk: "gc_pk" };
/// Events on one resource id (sparse: only events with a resource id).
pub const BY_RESOURCE: Index = Index { name: "by_resource", pk: "gr_pk" };

/// Sort key of every event item (the partition key alone is the identity).
pub const EVENT_SK: &str = "EV";
/// Partition of the tenant registry: one item per tenant, sort key = tenant id.
pub const TENANTS_PK: &str = "TENANTS";

#[must_use]
pub fn event_pk(tenant: &TenantId, id: &str) -> String {
    format!("EV#{tenant}#{id}")
}

/// The write shard of an event: a stable function of its id, so every retry of an event
/// lands in the same index partitions.
#[must_use]
pub fn shard_of(id: &str, shards: u16) -> u16 {
    // FNV-1a: stable across releases and platforms, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    u16::try_from(h % u32::from(shards.max(1))).unwrap_or(0)
}

#[must_use]
pub fn ts(occurred_at: Timestamp, id: &str) -> String {
    format!("{occurred_at}#{id}")
}

#[must_use]
pub fn time_pk(tenant: &TenantId, shard: u16) -> String {
    format!("{tenant}#{shard}")
}

#[must_use]
pub fn actor_pk(tenant: &TenantId, shard: u16, actor_id: &str) -> String {
    format!("{tenant}#{shard}#{actor_id}")
}

#[must_use]
pub fn action_pk(tenant: &TenantId, shard: u16, action: &str) -> String {
    format!("{tenant}#{shard}#{action}")
}

#[must_use]
pub fn resource_pk(tenant: &TenantId, shard: u16, resource_id: &str) -> String {
    format!("{tenant}#{shard}#{resource_id}")
}

/// Partition of the action catalog (sort key = action). Sharded like the events so a
/// tenant at 10,000 events/s does not hammer one counter item.
#[must_use]
pub fn action_catalog_pk(tenant: &TenantId, shard: u16) -> String {
    format!("CA#{tenant}#{shard}")
}

/// Partition of the actor catalog (sort key = actor id).
#[must_use]
pub fn actor_catalog_pk(tenant: &TenantId, shard: u16) -> String {
    format!("CR#{tenant}#{shard}")
}

/// Partition of the email directory: one item per actor id that ever used the email
/// (sort key = actor id), so an email filter finds every operator who had it at event time.
#[must_use]
pub fn email_pk(tenant: &TenantId, email: &str) -> String {
    format!("EM#{tenant}#{}", email.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn shard_is_stable_and_in_range() {
        assert_eq!(shard_of("evt-1", 1), 0);
        assert_eq!(shard_of("evt-1", 16), shard_of("evt-1", 16));
        assert!((0..16).all(|i| shard_of(&format!("e{i}"), 16) < 16));
    }

    #[test]
    fn a_hash_in_a_free_form_part_cannot_reach_another_tenant() {
        // Tenants cannot hold '#', so the first component always ends at the first '#'.
        let k = actor_pk(&tenant(), 0, "x#other#0");
        assert!(k.starts_with("acme#0#"));
    }

    proptest! {
        #[test]
        fn shards_spread_evenly(ids in proptest::collection::vec("[a-z0-9-]{8,36}", 2000)) {
            let mut counts = [0usize; 8];
            for id in &ids { counts[usize::from(shard_of(id, 8))] += 1; }
            prop_assert!(counts.iter().all(|&c| c > 2000 / 8 / 2), "{counts:?}");
        }
    }
}
