//! The archive's state per tenant, kept on the tenant's registry item: the head of its
//! manifest chain, the one step in flight, and a lease so two runs never interleave.
//!
//! Every change is a conditional update on the lease, so a run that lost its lease (it
//! stalled past the expiry and another run took over) fails instead of writing.

use crate::archive::manifest::ChainHead;
use crate::item::Item;
use crate::keys;
use crate::retry::retry;
use crate::store::{Store, StoreError};
use crate::tenant::TenantId;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

const SEQ: &str = "archive_seq";
const HEAD: &str = "archive_head";
const PENDING: &str = "archive_pending";
const LEASE: &str = "archive_lease";
const LEASE_UNTIL: &str = "archive_lease_until";
/// How long a run holds a tenant before another run may take over; renewed every day.
const LEASE_SECONDS: u64 = 20 * 60;

/// Where an archive step stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Parts are uploaded and verified; the manifest may or may not have been written.
    Manifest,
    /// The manifest is written and the head advanced; items may remain to delete.
    Delete,
}

/// The step in flight for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub date: String,
    pub parts: Vec<String>,
    /// SHA-256 of the manifest revision this step writes.
    pub manifest: String,
    pub seq: u64,
    pub phase: Phase,
}

/// A tenant's archive state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub head: Option<ChainHead>,
    pub pending: Option<Pending>,
}

/// The registry item changed under us: another run holds the tenant, or our lease lapsed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("another archive run holds tenant {0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn key(tenant: &TenantId) -> HashMap<String, AttributeValue> {
    HashMap::from([(keys::PK.into(), s(keys::TENANTS_PK)), (keys::SK.into(), s(tenant.as_str()))])
}

/// The tenant registry seen from the archive.
pub struct Registry<'a> {
    pub store: &'a Store,
    /// Who holds leases taken through this value (unique per run).
    pub owner: String,
}

impl Registry<'_> {
    /// Every registered tenant, in id order.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let items = self.store.query_partition(keys::TENANTS_PK, None).await?;
        Ok(items
            .iter()
            .filter_map(|it| it.get(keys::SK).and_then(|v| v.as_s().ok()))
            .filter_map(|t| TenantId::parse(t).ok())
            .collect())
    }

    /// Takes (or renews) the tenant's lease for `LEASE_SECONDS`.
    ///
    /// # Errors
    /// [`RegistryError::Busy`] when another run holds an unexpired lease.
    pub async fn lease(&self, tenant: &TenantId) -> Result<(), RegistryError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.update(
            tenant,
            "SET #l = :me, #u = :until",
            "attribute_not_exists(#u) OR #u < :now OR #l = :me",
            vec![
                (":until", AttributeValue::N((now + LEASE_SECONDS).to_string())),
                (":now", AttributeValue::N(now.to_string())),
            ],
        )
        .await
    }

    /// Gives the lease back; one that already lapsed is not an error.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn release(&self, tenant: &TenantId) -> Result<(), StoreError> {
        match self.update(tenant, "REMOVE #l, #u", "#l = :me", vec![]).await {
            Ok(()) | Err(RegistryError::Busy(_)) => Ok(()),
            Err(RegistryError::Store(e)) => Err(e),
        }
    }

    /// The tenant's archive state, read consistently.
    ///
    /// # Errors
    /// [`StoreError`], including a malformed state.
    pub async fn state(&self, tenant: &TenantId) -> Result<State, StoreError> {
        let run = retry(self.store.backoff(), "GetItem archive state", || {
            self.store
                .client()
                .get_item()
                .table_name(self.store.table())
                .set_key(Some(key(tenant)))
                .consistent_read(true)
                .send()
        })
        .await;
        let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
        Ok(out.item().map(state_from_item).unwrap_or_default())
    }

    /// Records the step about to write a manifest.
    ///
    /// # Errors
    /// [`RegistryError::Busy`] if the lease was lost or another step is in flight.
    pub async fn begin(&self, tenant: &TenantId, p: &Pending) -> Result<(), RegistryError> {
        let pending = AttributeValue::M(HashMap::from([
            ("date".into(), s(&p.date)),
            ("parts".into(), AttributeValue::L(p.parts.iter().map(|n| s(n)).collect())),
            ("manifest".into(), s(&p.manifest)),
            ("seq".into(), AttributeValue::N(p.seq.to_string())),
            ("phase".into(), s("manifest")),
        ]));
        self.update(tenant, "SET #p = :p", "#l = :me AND attribute_not_exists(#p)", vec![(":p", pending)]).await
    }

    /// The manifest of the pending step is stored: it becomes the chain's head.
    ///
    /// # Errors
    /// [`RegistryError::Busy`] if the lease was lost or the step changed.
    pub async fn advance(&self, tenant: &TenantId, p: &Pending) -> Result<(), RegistryError> {
        self.update(
            tenant,
            "SET #s = :seq, #h = :sha, #p.phase = :delete",
            "#l = :me AND #p.manifest = :sha",
            vec![(":seq", AttributeValue::N(p.seq.to_string())), (":sha", s(&p.manifest)), (":delete", s("delete"))],
        )
        .await
    }

    /// The pending step is over (finished, or abandoned before its manifest was written).
    ///
    /// # Errors
    /// [`RegistryError::Busy`] if the lease was lost or the step changed.
    pub async fn finish(&self, tenant: &TenantId, p: &Pending) -> Result<(), RegistryError> {
        self.update(tenant, "REMOVE #p", "#l = :me AND #p.manifest = :sha", vec![(":sha", s(&p.manifest))]).await
    }

    /// One conditional update of the registry item; `:me` is this run's lease owner.
    async fn update(
        &self,
        tenant: &TenantId,
        expression: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), RegistryError> {
        let names: HashMap<String, String> =
            [("#s", SEQ), ("#h", HEAD), ("#p", PENDING), ("#l", LEASE), ("#u", LEASE_UNTIL)]
                .into_iter()
                .filter(|(n, _)| expression.contains(n) || condition.contains(n))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
        let mut values: HashMap<String, AttributeValue> = values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        if condition.contains(":me") || expression.contains(":me") {
            values.insert(":me".into(), s(&self.owner));
        }
        let run = retry(self.store.backoff(), "UpdateItem archive registry", || {
            self.store
                .client()
                .update_item()
                .table_name(self.store.table())
                .set_key(Some(key(tenant)))
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
            Err(e) => Err(StoreError::from_sdk(&e).into()),
        }
    }
}

fn state_from_item(item: &Item) -> State {
    let seq = item.get(SEQ).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
    let sha = item.get(HEAD).and_then(|v| v.as_s().ok());
    let head = match (seq, sha) {
        (Some(seq), Some(sha)) => Some(ChainHead { seq, sha256: sha.clone() }),
        _ => None,
    };
    let pending = item.get(PENDING).and_then(|v| v.as_m().ok()).and_then(|m| {
        let st = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
        Some(Pending {
            date: st("date")?,
            parts: m.get("parts")?.as_l().ok()?.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
            manifest: st("manifest")?,
            seq: m.get("seq")?.as_n().ok()?.parse().ok()?,
            phase: match st("phase")?.as_str() {
                "manifest" => Phase::Manifest,
                _ => Phase::Delete,
            },
        })
    });
    State { head, pending }
}
