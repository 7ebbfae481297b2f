//! `auditlog verify`: re-reads every archived part and checks it against its manifest, and
//! the manifests against each other and the registry's head.

use crate::domain::manifest::{self, Manifest};
use crate::domain::tenant::TenantId;
use crate::formats::parquet_read;
use crate::ports::{ArchiveRegistry, BlobStore, TenantRegistry};
use crate::usecases::archive::ArchiveError;
use serde::Serialize;
use std::collections::HashSet;

/// One thing wrong with a tenant's archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub tenant: String,
    /// A stable kind: `changed_part`, `missing_part`, `extra_part`, `row_count`,
    /// `bad_manifest`, `chain`.
    pub kind: &'static str,
    pub detail: String,
}

/// What verification covered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    pub tenants: u32,
    pub manifests: u32,
    pub parts: u32,
    pub rows: u64,
    pub findings: Vec<Finding>,
}

/// Checks every tenant in the registry, or only `only`.
///
/// # Errors
/// [`ArchiveError`] when storage cannot be read at all (a problem found is a finding).
pub async fn verify(
    tenants: &dyn TenantRegistry,
    registry: &dyn ArchiveRegistry,
    bucket: &dyn BlobStore,
    only: Option<&TenantId>,
) -> Result<Checked, ArchiveError> {
    let tenants = match only {
        Some(t) => vec![t.clone()],
        None => tenants.list().await?,
    };
    let mut checked = Checked::default();
    for tenant in tenants {
        checked.tenants += 1;
        verify_tenant(registry, bucket, &tenant, &mut checked).await?;
    }
    Ok(checked)
}

async fn verify_tenant(
    registry: &dyn ArchiveRegistry,
    bucket: &dyn BlobStore,
    tenant: &TenantId,
    checked: &mut Checked,
) -> Result<(), ArchiveError> {
    let t = tenant.as_str();
    let mut finding = |kind: &'static str, detail: String| {
        checked.findings.push(Finding { tenant: t.to_owned(), kind, detail });
    };
    let state = registry.state(tenant).await?;
    let mut manifests = Vec::new();
    for listed in bucket.list(&manifest::manifests_prefix(t)).await? {
        let bytes = match bucket.get_bytes(&listed.key).await {
            Ok(Some((bytes, _))) => bytes,
            Ok(None) => continue,
            Err(e) => {
                finding("bad_manifest", format!("{} cannot be read back intact: {e}", listed.key));
                continue;
            }
        };
        match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) if manifest::manifest_key(&m.tenant_id, &m.date) == listed.key => {
                manifests.push((manifest::hash(&bytes), m));
            }
            Ok(_) => finding("bad_manifest", format!("{} names another tenant or day", listed.key)),
            Err(e) => finding("bad_manifest", format!("{} is not a manifest: {e}", listed.key)),
        }
    }
    for problem in manifest::check_chain(&manifests, state.head.as_ref()) {
        finding("chain", problem.to_string());
    }
    let mut listed_parts: HashSet<String> = HashSet::new();
    for (_, m) in &manifests {
        checked.manifests += 1;
        for part in &m.parts {
            checked.parts += 1;
            let key = format!("{}{}", manifest::day_prefix(t, &m.date), part.name);
            listed_parts.insert(key.clone());
            // The SDK checks S3's stored checksums as it reads: a failed read of a part whose
            // bytes were altered in place surfaces as an error here.
            let read = match bucket.hash(&key).await {
                Ok(read) => read,
                Err(e) => {
                    finding("changed_part", format!("{key} cannot be read back intact: {e}"));
                    continue;
                }
            };
            match read {
                None => finding("missing_part", format!("{key} is listed in its manifest but absent")),
                Some((bytes, sha)) if bytes != part.bytes || sha != part.sha256 => finding(
                    "changed_part",
                    format!(
                        "{key}: {bytes} bytes with SHA-256 {sha}; the manifest says {} and {}",
                        part.bytes, part.sha256
                    ),
                ),
                Some(_) => match parquet_read::remote_rows(bucket, &key).await {
                    Ok(rows) if rows == part.rows => checked.rows += rows,
                    Ok(rows) => finding("row_count", format!("{key}: {rows} rows; the manifest says {}", part.rows)),
                    Err(e) => finding("changed_part", format!("{key}: {e}")),
                },
            }
        }
    }
    // A step in flight may have uploaded parts its manifest does not list yet.
    let in_flight: HashSet<String> = state
        .pending
        .iter()
        .flat_map(|p| p.parts.iter().map(move |n| format!("{}{n}", manifest::day_prefix(t, &p.date))))
        .collect();
    for listed in bucket.list(&manifest::events_prefix(t)).await? {
        if !listed_parts.contains(&listed.key) && !in_flight.contains(&listed.key) {
            finding("extra_part", format!("{} is in no manifest", listed.key));
        }
    }
    Ok(())
}
