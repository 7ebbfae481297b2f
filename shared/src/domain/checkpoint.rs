//! Signed archive checkpoints: each time the archive moves a tenant's chain head it
//! writes `manifests/tenant={t}/checkpoints/{seq:010}.json`, the head signed with the
//! service's key ([`crate::domain::signing`]), as CloudTrail signs its digest files. The
//! head also lives in DynamoDB, where whoever can write the table and the bucket could
//! rewrite both consistently; a checkpoint cannot be rewritten without the signing key,
//! which only the archive and export roles may use. So `auditlog verify`, and an auditor's
//! own verifier with the bucket and the public keys alone, check the chain against them.

use crate::domain::manifest::ChainHead;
use crate::domain::signing::{self, Kind, Signature};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const VERSION: u32 = 1;

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    pub tenant_id: String,
    /// The chain's head: its seq and the SHA-256 of that revision's bytes.
    pub seq: u64,
    pub head: String,
    pub created_at: String,
    pub signature: Option<Signature>,
}

impl Checkpoint {
    /// An unsigned checkpoint of `head`.
    #[must_use]
    pub fn new(tenant: &str, head: &ChainHead, created_at: String) -> Self {
        Self {
            version: VERSION,
            tenant_id: tenant.to_owned(),
            seq: head.seq,
            head: head.sha256.clone(),
            created_at,
            signature: None,
        }
    }

    /// The message its signature covers.
    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        signing::message(Kind::ArchiveCheckpoint, &serde_json::to_value(self).unwrap_or(Value::Null))
    }

    /// The bytes stored.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}
