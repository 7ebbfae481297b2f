//! `auditlog verify`: walks each tenant's chain of manifest revisions from seq 1 to the
//! head the registry records, checks the chain against its signed checkpoints (each
//! signature with the published keys, each signed head against the revision it names,
//! the registry's head signed), checks each day's current manifest is its latest
//! revision, and re-reads every part of every day's latest revision: its bytes against
//! the manifest, and every row's hash recomputed from its columns.
//!
//! The checkpoints are what catches a rewrite of the bucket and the table together: the
//! chain and the registry's head can be made consistent again by whoever writes both,
//! but a checkpoint's signature cannot be made without the signing key.

use crate::domain::checkpoint::Checkpoint;
use crate::domain::manifest::{self, ChainHead, Manifest, ManifestObject, PartEntry, Pending, Phase, Revision};
use crate::domain::signing::PublicKey;
use crate::domain::tenant::TenantId;
use crate::formats::parquet_read::Part;
use crate::formats::signature;
use crate::ports::{ArchiveRegistry, BlobStore, TenantRegistry};
use crate::usecases::archive::ArchiveError;
use crate::usecases::files::{Scratch, hash_file};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Rows of one part described in a `changed_row` finding; the rest are counted.
const ROWS_NAMED: usize = 3;

/// One thing wrong with a tenant's archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub tenant: String,
    /// A stable kind: `changed_part`, `changed_row`, `missing_part`, `extra_part`,
    /// `row_count`, `bad_manifest`, `chain`, `checkpoint`.
    pub kind: &'static str,
    pub detail: String,
}

/// What verification covered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    pub tenants: u32,
    /// Revisions read (the whole chain).
    pub manifests: u32,
    /// Checkpoints whose signature held.
    pub checkpoints: u32,
    pub parts: u32,
    /// Rows whose hash was recomputed and matched.
    pub rows: u64,
    pub findings: Vec<Finding>,
}

/// Checks every tenant in the registry, or only `only`; checkpoints with `keys`, the
/// published public keys (from KMS, or a saved `GET /v1/keys`).
///
/// # Errors
/// [`ArchiveError`] when storage cannot be read at all (a problem found is a finding).
pub async fn verify(
    tenants: &dyn TenantRegistry,
    registry: &dyn ArchiveRegistry,
    bucket: &dyn BlobStore,
    keys: &[PublicKey],
    only: Option<&TenantId>,
) -> Result<Checked, ArchiveError> {
    let tenants = match only {
        Some(t) => vec![t.clone()],
        None => tenants.list().await?,
    };
    let mut checked = Checked::default();
    for tenant in tenants {
        checked.tenants += 1;
        Tenant { bucket, keys, tenant: &tenant, checked: &mut checked }.verify(registry).await?;
    }
    Ok(checked)
}

/// One tenant's verification, recording into `checked`.
struct Tenant<'a> {
    bucket: &'a dyn BlobStore,
    keys: &'a [PublicKey],
    tenant: &'a TenantId,
    checked: &'a mut Checked,
}

impl Tenant<'_> {
    fn finding(&mut self, kind: &'static str, detail: String) {
        self.checked.findings.push(Finding { tenant: self.tenant.to_string(), kind, detail });
    }

    async fn verify(&mut self, registry: &dyn ArchiveRegistry) -> Result<(), ArchiveError> {
        let t = self.tenant.as_str();
        let state = registry.state(self.tenant).await?;
        let (revisions, day_objects, checkpoints) = self.read_manifests().await?;
        for problem in manifest::check_chain(&revisions, state.head.as_ref(), state.pending.as_ref()) {
            self.finding("chain", problem.to_string());
        }
        self.check_checkpoints(&revisions, &checkpoints, state.head.as_ref(), state.pending.as_ref()).await;
        // Each day's current manifest must be its latest revision.
        let expected = manifest::current_by_day(&revisions, state.head.as_ref(), state.pending.as_ref());
        let mut parts_of: BTreeMap<String, Vec<PartEntry>> = BTreeMap::new();
        let head_seq = state.head.as_ref().map_or(0, |h| h.seq);
        for r in revisions.range(..=head_seq).map(|(_, r)| r) {
            parts_of.insert(r.manifest.date.clone(), r.manifest.parts.clone());
        }
        for (date, shas) in &expected {
            let key = manifest::manifest_key(t, date);
            match self.bucket.get_bytes(&key).await {
                Ok(Some((bytes, _))) if shas.contains(&manifest::hash(&bytes)) => {}
                Ok(Some((bytes, _))) => {
                    self.finding("bad_manifest", format!("{key} is not its day's latest revision"));
                    // Its parts are checked too, so nothing it names escapes a check.
                    if let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) {
                        extend_parts(parts_of.entry(date.clone()).or_default(), m.parts);
                    }
                }
                Ok(None) => self.finding("bad_manifest", format!("{key} is missing")),
                Err(e) => self.finding("bad_manifest", format!("{key} cannot be read back intact: {e}")),
            }
        }
        for date in day_objects.iter().filter(|d| !expected.contains_key(*d)) {
            self.finding("bad_manifest", format!("{} names no revision of the chain", manifest::manifest_key(t, date)));
        }
        let mut listed_parts: HashSet<String> = HashSet::new();
        for (date, parts) in &parts_of {
            for part in parts {
                let key = format!("{}{}", manifest::day_prefix(t, date), part.name);
                listed_parts.insert(key.clone());
                self.check_part(&key, date, part).await?;
            }
        }
        // A step in flight may have uploaded a part no revision up to the head lists yet.
        let in_flight: Option<String> =
            state.pending.map(|p| format!("{}{}", manifest::day_prefix(t, &p.date), p.part.name));
        for listed in self.bucket.list(&manifest::events_prefix(t)).await? {
            if !listed_parts.contains(&listed.key) && in_flight.as_ref() != Some(&listed.key) {
                self.finding("extra_part", format!("{} is in no manifest", listed.key));
            }
        }
        Ok(())
    }

    /// Every revision (by the seq its key names), the days that have a current manifest
    /// object, and the seqs that have a checkpoint object.
    async fn read_manifests(&mut self) -> Result<(BTreeMap<u64, Revision>, Vec<String>, Vec<u64>), ArchiveError> {
        let t = self.tenant.as_str();
        let mut revisions = BTreeMap::new();
        let mut days = Vec::new();
        let mut checkpoints = Vec::new();
        for listed in self.bucket.list(&manifest::manifests_prefix(t)).await? {
            let seq = match manifest::parse_key(t, &listed.key) {
                Some(ManifestObject::Day(date)) => {
                    days.push(date);
                    continue;
                }
                Some(ManifestObject::Checkpoint(seq)) => {
                    checkpoints.push(seq);
                    continue;
                }
                Some(ManifestObject::Revision(seq)) => seq,
                None => {
                    self.finding("bad_manifest", format!("{} is not an object the archive writes", listed.key));
                    continue;
                }
            };
            let bytes = match self.bucket.get_bytes(&listed.key).await {
                Ok(Some((bytes, _))) => bytes,
                Ok(None) => continue,
                Err(e) => {
                    self.finding("bad_manifest", format!("{} cannot be read back intact: {e}", listed.key));
                    continue;
                }
            };
            self.checked.manifests += 1;
            match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(m) if m.tenant_id == t && manifest::parse_key(t, &manifest::manifest_key(t, &m.date)).is_some() => {
                    revisions.insert(seq, Revision { sha256: manifest::hash(&bytes), manifest: m });
                }
                Ok(_) => self.finding("bad_manifest", format!("{} names another tenant or no day", listed.key)),
                Err(e) => self.finding("bad_manifest", format!("{} is not a manifest: {e}", listed.key)),
            }
        }
        Ok((revisions, days, checkpoints))
    }

    /// Each checkpoint's signature with the published keys and its head against the
    /// revision it names; and the registry's head signed (unless the step in flight has
    /// just moved it).
    async fn check_checkpoints(
        &mut self,
        revisions: &BTreeMap<u64, Revision>,
        seqs: &[u64],
        head: Option<&ChainHead>,
        pending: Option<&Pending>,
    ) {
        let t = self.tenant.as_str();
        let mut signed_to = 0;
        for &seq in seqs {
            let key = manifest::checkpoint_key(t, seq);
            let checkpoint = match self.bucket.get_bytes(&key).await {
                Ok(Some((bytes, _))) => serde_json::from_slice::<Checkpoint>(&bytes).map_err(|e| e.to_string()),
                Ok(None) => continue,
                Err(e) => Err(e.to_string()),
            };
            let checkpoint = match checkpoint {
                Ok(c) if c.tenant_id == t && c.seq == seq => c,
                Ok(_) => {
                    self.finding("checkpoint", format!("{key} names another tenant or seq"));
                    continue;
                }
                Err(e) => {
                    self.finding("checkpoint", format!("{key} is not a checkpoint: {e}"));
                    continue;
                }
            };
            if let Err(why) = signature::verify(self.keys, &checkpoint.message(), checkpoint.signature.as_ref()) {
                self.finding("checkpoint", format!("{key}: {why}"));
                continue;
            }
            self.checked.checkpoints += 1;
            match revisions.get(&seq) {
                Some(r) if r.sha256 == checkpoint.head => signed_to = signed_to.max(seq),
                Some(r) => self.finding(
                    "checkpoint",
                    format!("{key} signs revision {seq} as {}, but it hashes to {}", checkpoint.head, r.sha256),
                ),
                None => self.finding("checkpoint", format!("{key} signs revision {seq}, which is missing")),
            }
        }
        let head_seq = head.map_or(0, |h| h.seq);
        // Excused: the one step in flight, whose checkpoint comes right after the head moved.
        let moving = head_seq == signed_to + 1
            && pending.is_some_and(|p| {
                p.phase == Phase::Tombstone && p.seq == head_seq && head.is_some_and(|h| h.sha256 == p.manifest)
            });
        if head_seq > signed_to && !moving {
            self.finding(
                "checkpoint",
                format!("the head (seq {head_seq}) is past the last validly signed checkpoint (seq {signed_to})"),
            );
        }
        if let Some(&newest) = seqs.iter().max()
            && newest > head_seq
        {
            self.finding(
                "checkpoint",
                format!("a checkpoint signs seq {newest}, past the registry's head (seq {head_seq})"),
            );
        }
    }

    /// Reads one part whole: its size and SHA-256 against the manifest, its footer's row
    /// count, and every row's hash recomputed from its columns.
    async fn check_part(&mut self, key: &str, date: &str, part: &PartEntry) -> Result<(), ArchiveError> {
        self.checked.parts += 1;
        let scratch = Scratch::new(".parquet");
        // The SDK checks S3's stored checksums as it reads: a failed read of a part whose
        // bytes were altered in place surfaces as an error here.
        match self.bucket.download(key, scratch.path()).await {
            Ok(()) => {}
            Err(crate::ports::BlobError::NotFound(_)) => {
                self.finding("missing_part", format!("{key} is listed in its manifest but absent"));
                return Ok(());
            }
            Err(e) => {
                self.finding("changed_part", format!("{key} cannot be read back intact: {e}"));
                return Ok(());
            }
        }
        let (bytes, sha) = hash_file(scratch.path())?;
        if bytes != part.bytes || sha != part.sha256 {
            self.finding(
                "changed_part",
                format!(
                    "{key}: {bytes} bytes with SHA-256 {sha}; the manifest says {} and {}",
                    part.bytes, part.sha256
                ),
            );
        }
        let file = std::fs::File::open(scratch.path())?;
        let opened = match Part::open(&file) {
            Ok(p) => p,
            Err(e) => {
                self.finding("changed_part", format!("{key} is not an archive part: {e}"));
                return Ok(());
            }
        };
        let footer_rows = u64::try_from(opened.rows()).unwrap_or(0);
        if footer_rows != part.rows {
            self.finding("row_count", format!("{key}: {footer_rows} rows; the manifest says {}", part.rows));
        }
        let mut bad: Vec<String> = Vec::new();
        let mut bad_count = 0usize;
        let mut row_no = 0usize;
        for rg in 0..opened.row_groups() {
            // One bounded batch at a time: a row group of large events is never decoded whole.
            let batches = match opened.batches(file.try_clone()?, rg, None, None) {
                Ok(b) => b,
                Err(e) => {
                    self.finding("changed_part", format!("{key}: row group {rg} cannot be decoded: {e}"));
                    return Ok(());
                }
            };
            for batch in batches {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        self.finding("changed_part", format!("{key}: row group {rg} cannot be decoded: {e}"));
                        return Ok(());
                    }
                };
                for i in 0..batch.len() {
                    let row = batch.row(i);
                    let problem = match row.to_stored() {
                        Ok(e) if e.event.tenant_id != *self.tenant => Some("belongs to another tenant".to_owned()),
                        Ok(e) if e.event.occurred_at.day() != date => Some(format!("is not of {date}")),
                        Ok(_) => None,
                        Err(why) => Some(why.to_string()),
                    };
                    match problem {
                        None => self.checked.rows += 1,
                        Some(why) => {
                            bad_count += 1;
                            if bad.len() < ROWS_NAMED {
                                bad.push(format!("row {row_no} (id {}) {why}", row.key().1));
                            }
                        }
                    }
                    row_no += 1;
                }
            }
        }
        if bad_count > 0 {
            self.finding(
                "changed_row",
                format!("{key}: {bad_count} row(s) do not hold their hash: {}", bad.join("; ")),
            );
        }
        Ok(())
    }
}

/// Adds the parts `more` names that `parts` lacks.
fn extend_parts(parts: &mut Vec<PartEntry>, more: Vec<PartEntry>) {
    for p in more {
        if !parts.contains(&p) {
            parts.push(p);
        }
    }
}
