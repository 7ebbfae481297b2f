//! The archive's state per tenant, kept on the tenant's registry item: the head of its
//! manifest chain, the one step in flight, and a lease so two runs never interleave.
//!
//! Every change is a conditional update on the lease, so a run that lost its lease (it
//! stalled past the expiry and another run took over) fails instead of writing.

use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::manifest::{ArchiveState, ChainHead, PartEntry, Pending, Phase};
use audit::domain::tenant::TenantId;
use audit::ports::registry::LEASE_SECONDS;
use audit::ports::{ArchiveRegistry, RegistryError, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

const SEQ: &str = "archive_seq";
const HEAD: &str = "archive_head";
const PENDING: &str = "archive_pending";
const LEASE: &str = "archive_lease";
const LEASE_UNTIL: &str = "archive_lease_until";
const PACE: &str = "archive_pace";

fn tenant_key(tenant: &TenantId) -> Item {
    key(keys::TENANTS_PK, tenant.as_str())
}

impl Table {
    /// One conditional update of the registry item; `:me` is the lease owner.
    async fn registry_update(
        &self,
        tenant: &TenantId,
        owner: &str,
        expression: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), RegistryError> {
        let names: HashMap<String, String> =
            [("#s", SEQ), ("#h", HEAD), ("#p", PENDING), ("#l", LEASE), ("#u", LEASE_UNTIL), ("#r", PACE)]
                .into_iter()
                .filter(|(n, _)| expression.contains(n) || condition.contains(n))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
        let mut values: HashMap<String, AttributeValue> = values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        if condition.contains(":me") || expression.contains(":me") {
            values.insert(":me".into(), s(owner));
        }
        let run = retry(&self.backoff, "UpdateItem archive registry", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(tenant_key(tenant)))
                .update_expression(expression)
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
                .send()
        })
        .await;
        match run.result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(RegistryError::Busy(tenant.to_string()))
            }
            Err(e) => Err(store_error(&e).into()),
        }
    }
}

#[async_trait]
impl ArchiveRegistry for Table {
    async fn lease(&self, tenant: &TenantId, owner: &str) -> Result<(), RegistryError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.registry_update(
            tenant,
            owner,
            "SET #l = :me, #u = :until",
            "attribute_not_exists(#u) OR #u < :now OR #l = :me",
            vec![(":until", n(now + LEASE_SECONDS)), (":now", n(now))],
        )
        .await
    }

    async fn release(&self, tenant: &TenantId, owner: &str) -> Result<(), StoreError> {
        match self.registry_update(tenant, owner, "REMOVE #l, #u", "#l = :me", vec![]).await {
            Ok(()) | Err(RegistryError::Busy(_)) => Ok(()),
            Err(RegistryError::Store(e)) => Err(e),
        }
    }

    async fn state(&self, tenant: &TenantId) -> Result<ArchiveState, StoreError> {
        let item = self.get_one("GetItem archive state", tenant_key(tenant)).await?;
        item.as_ref().map_or(Ok(ArchiveState::default()), state_from_item)
    }

    async fn begin(&self, tenant: &TenantId, owner: &str, p: &Pending) -> Result<(), RegistryError> {
        let e = &p.part;
        let part = AttributeValue::M(HashMap::from([
            ("name".into(), s(&e.name)),
            ("rows".into(), n(e.rows)),
            ("bytes".into(), n(e.bytes)),
            ("sha256".into(), s(&e.sha256)),
            ("first".into(), s(&e.first)),
            ("last".into(), s(&e.last)),
        ]));
        let pending = AttributeValue::M(HashMap::from([
            ("date".into(), s(&p.date)),
            ("part".into(), part),
            ("created_at".into(), s(&p.created_at)),
            ("manifest".into(), s(&p.manifest)),
            ("seq".into(), n(p.seq)),
            ("phase".into(), s("manifest")),
        ]));
        let condition = "#l = :me AND attribute_not_exists(#p)";
        self.registry_update(tenant, owner, "SET #p = :p", condition, vec![(":p", pending)]).await
    }

    async fn advance(&self, tenant: &TenantId, owner: &str, p: &Pending) -> Result<(), RegistryError> {
        self.registry_update(
            tenant,
            owner,
            "SET #s = :seq, #h = :sha, #p.phase = :tombstone",
            "#l = :me AND #p.manifest = :sha",
            vec![(":seq", n(p.seq)), (":sha", s(&p.manifest)), (":tombstone", s("tombstone"))],
        )
        .await
    }

    async fn finish(
        &self,
        tenant: &TenantId,
        owner: &str,
        p: &Pending,
        commit_micros_per_row: Option<u64>,
    ) -> Result<(), RegistryError> {
        let condition = "#l = :me AND #p.manifest = :sha";
        let mut values = vec![(":sha", s(&p.manifest))];
        let expression = match commit_micros_per_row {
            Some(pace) => {
                values.push((":r", n(pace)));
                "REMOVE #p SET #r = :r"
            }
            None => "REMOVE #p",
        };
        self.registry_update(tenant, owner, expression, condition, values).await
    }
}

fn state_from_item(item: &Item) -> Result<ArchiveState, StoreError> {
    let head = match (get_n::<u64>(item, SEQ), get_s(item, HEAD)) {
        (Some(seq), Some(sha)) => Some(ChainHead { seq, sha256: sha.clone() }),
        _ => None,
    };
    let pending = match item.get(PENDING) {
        None => None,
        Some(v) => Some(pending_from(v).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "{tenant_item}: {PENDING} is malformed",
                tenant_item = get_s(item, keys::SK).map_or("?", String::as_str)
            ))
        })?),
    };
    Ok(ArchiveState { head, pending, commit_micros_per_row: get_n(item, PACE) })
}

fn pending_from(v: &AttributeValue) -> Option<Pending> {
    let m = v.as_m().ok()?;
    let st = |m: &Item, k: &str| get_s(m, k).cloned();
    let e = m.get("part")?.as_m().ok()?;
    Some(Pending {
        date: st(m, "date")?,
        part: PartEntry {
            name: st(e, "name")?,
            rows: get_n(e, "rows")?,
            bytes: get_n(e, "bytes")?,
            sha256: st(e, "sha256")?,
            first: st(e, "first")?,
            last: st(e, "last")?,
        },
        seq: get_n(m, "seq")?,
        created_at: st(m, "created_at")?,
        manifest: st(m, "manifest")?,
        phase: match st(m, "phase")?.as_str() {
            "manifest" => Phase::Manifest,
            "tombstone" => Phase::Tombstone,
            _ => return None,
        },
    })
}
