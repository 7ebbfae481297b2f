//! The DynamoDB key design (README, "Storage design").
//!
//! One table. An event's primary key is its identity, `EV#{tenant}#{id}`: the conditional
//! put on it is what makes ingest idempotent whatever `occurred_at` says, and it spreads
//! writes evenly whatever the tenant's volume. Every read path is a GSI whose partition key
//! starts with `{tenant}#{shard}` and whose sort key is `ts` = `{occurred_at}#{id}`, so
//! each partition is one ordered stream that a reader merges across shards. Free-form
//! parts (actor id, action, resource id) come last, after components that cannot hold `#`,
//! so no value can forge another key.

use crate::dynamodb::item::attr;
use audit::domain::plan::{EventKey, Partition, Path};
use audit::domain::tenant::TenantId;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// Sort key of every event index: `{occurred_at}#{id}`.
pub const TS: &str = "ts";

/// A global secondary index over events: its name, its partition-key attribute (the sort
/// key is always [`TS`]) and the attributes it projects besides the keys. template.yaml
/// defines the same (`tests/tests/cost.rs` compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub pk: &'static str,
    pub projects: &'static [&'static str],
}

impl Index {
    /// Whether the index holds whole events, so its entries need no fetch.
    #[must_use]
    pub fn whole(&self) -> bool {
        self.projects.contains(&attr::DOC)
    }
}

/// The whole event: doc, hash and receipt time, and the filter terms.
const WHOLE: &[&str] = &[attr::DOC, attr::HASH, attr::RECEIVED_AT, attr::TERMS];
/// The filter terms alone: a page fetches the events it takes from the table.
const TERMS_ONLY: &[&str] = &[attr::TERMS];

/// Every event of a tenant by time: the default console view, the archive's day read
/// and exports; it holds whole events, so those read one request a page.
pub const BY_TIME: Index = Index { name: "by_time", pk: "gt", projects: WHOLE };
/// Events of one operator.
pub const BY_ACTOR: Index = Index { name: "by_actor", pk: "ga", projects: TERMS_ONLY };
/// Events of one action.
pub const BY_ACTION: Index = Index { name: "by_action", pk: "gc", projects: TERMS_ONLY };
/// Events on one resource id (sparse: only events with a resource id).
pub const BY_RESOURCE: Index = Index { name: "by_resource", pk: "gr", projects: TERMS_ONLY };
/// Every event index.
pub const EVENT_INDEXES: [Index; 4] = [BY_TIME, BY_ACTOR, BY_ACTION, BY_RESOURCE];

/// Sort key of every event item (the partition key alone is the identity).
pub const EVENT_SK: &str = "EV";
/// Partition of the tenant registry: one item per tenant, sort key = tenant id.
pub const TENANTS_PK: &str = "TENANTS";

#[must_use]
pub fn event_pk(tenant: &TenantId, id: &str) -> String {
    format!("EV#{tenant}#{id}")
}

/// The index that serves a read path.
#[must_use]
pub fn index(path: Path) -> Index {
    match path {
        Path::Resource => BY_RESOURCE,
        Path::Actor => BY_ACTOR,
        Path::Action => BY_ACTION,
        Path::Time => BY_TIME,
    }
}

/// The index partition key of one of a path's partitions.
#[must_use]
pub fn partition_key(tenant: &TenantId, path: Path, p: &Partition) -> String {
    let value = p.value.as_deref().unwrap_or_default();
    match path {
        Path::Time => time_pk(tenant, p.shard),
        Path::Actor => actor_pk(tenant, p.shard, value),
        Path::Action => action_pk(tenant, p.shard, value),
        Path::Resource => resource_pk(tenant, p.shard, value),
    }
}

/// The sort key of every event index, `{occurred_at}#{id}`: the event key's text form.
#[must_use]
pub fn ts(key: &EventKey) -> String {
    key.to_string()
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

/// Partition of the action catalog (sort key = action). One per tenant: a process
/// writes each entry at most once a minute, so no entry runs hot.
#[must_use]
pub fn action_catalog_pk(tenant: &TenantId) -> String {
    format!("CA#{tenant}")
}

/// Partition of the actor catalog (sort key = actor id), spread over the tenant's shards
/// by actor id: a busy tenant has many actors written each minute.
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

/// Partition of a tenant's export jobs (sort key = job id).
#[must_use]
pub fn export_jobs_pk(tenant: &TenantId) -> String {
    format!("EXPORTS#{tenant}")
}

/// Partition of one export job's parts (sort key = the part's index, zero-padded): apart
/// from the jobs, so listing jobs never meets a part.
#[must_use]
pub fn export_parts_pk(tenant: &TenantId, job: &str) -> String {
    format!("EXPORTS#{tenant}#{job}")
}

/// Partition of a tenant's alert rules (`R#{rule id}`), their count (`N`) and their
/// threshold states (`S#{rule id}`): one Query lists the rules, and the count sits
/// beside them so a creation changes both in one transaction.
#[must_use]
pub fn alerts_pk(tenant: &TenantId) -> String {
    format!("AL#{tenant}")
}

/// Sort key of the tenant's rule count.
pub const RULE_COUNT_SK: &str = "N";
/// Sort-key prefix of the tenant's rules.
pub const RULE_SK_PREFIX: &str = "R#";

#[must_use]
pub fn rule_sk(rule_id: &str) -> String {
    format!("{RULE_SK_PREFIX}{rule_id}")
}

#[must_use]
pub fn rule_state_sk(rule_id: &str) -> String {
    format!("S#{rule_id}")
}

/// Partition of a tenant's agenda: every piece of its alert work, sorted by when it is
/// due (`{µs:019}#M#{event id}#{part}` a matched event, `...#A#{rule id}#{delivery id}` an
/// attempt, `...#F#{rule id}` a flush), so one `Query` reads what is due, in order.
#[must_use]
pub fn agenda_pk(tenant: &TenantId) -> String {
    format!("AQ#{tenant}")
}

/// Partition of the matched events a tenant's worker has applied (sort key =
/// `{event id}#{part}`): one read again from the stream finds its marker and changes
/// nothing.
#[must_use]
pub fn applied_pk(tenant: &TenantId) -> String {
    format!("AK#{tenant}")
}

/// A tenant's turn of one kind of work ([`audit::domain::turn`]).
#[must_use]
pub fn turn_pk(kind: &str, tenant: &TenantId) -> String {
    format!("TURN#{kind}#{tenant}")
}

/// Sort key of a turn item.
pub const TURN_SK: &str = "T";

/// Partition of a rule's deliveries (sort key = delivery id).
#[must_use]
pub fn deliveries_pk(tenant: &TenantId, rule_id: &str) -> String {
    format!("AD#{tenant}#{rule_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn a_hash_in_a_free_form_part_cannot_reach_another_tenant() {
        // Tenants cannot hold '#', so the first component always ends at the first '#'.
        let k = actor_pk(&tenant(), 0, "x#other#0");
        assert!(k.starts_with("acme#0#"));
    }

    #[test]
    fn each_path_reads_its_own_index_partition() {
        let p = Partition::new(2, Some("u-1"));
        assert_eq!(partition_key(&tenant(), Path::Actor, &p), "acme#2#u-1");
        assert_eq!(partition_key(&tenant(), Path::Time, &Partition::new(1, None)), "acme#1");
        assert_eq!(index(Path::Resource).pk, "gr");
    }

    #[test]
    fn alert_items_live_in_partitions_of_their_tenant() {
        assert_eq!(alerts_pk(&tenant()), "AL#acme");
        assert_eq!(rule_sk("r1"), "R#r1");
        assert_eq!(rule_state_sk("r1"), "S#r1");
        assert_eq!(applied_pk(&tenant()), "AK#acme");
        assert_eq!(agenda_pk(&tenant()), "AQ#acme");
        assert_eq!(turn_pk("alerts", &tenant()), "TURN#alerts#acme");
        assert_eq!(deliveries_pk(&tenant(), "r1"), "AD#acme#r1");
    }
}
