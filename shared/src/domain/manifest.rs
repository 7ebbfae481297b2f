//! Archive manifests (contract section 4): what each archived day holds, chained per
//! tenant so that a removed, altered or reordered manifest is detectable.
//!
//! Each tenant's manifests form one chain in the order they were written: `seq` counts
//! them from 1 and `prev` is the SHA-256 of the manifest written just before (any day).
//! A late event gives its day a new revision that lists every part so far; the revision it
//! replaces leaves the current object key, so the new one carries the replaced
//! revisions' `seq` and hash in `supersedes`, and the chain stays checkable from the
//! current objects alone. The head (latest `seq` and hash) lives in the tenant registry,
//! so dropping the newest manifest is detected too.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const VERSION: u32 = 1;

/// One Parquet file of a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartEntry {
    /// File name within the day's folder, `part-NNNNN.parquet`.
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    /// `occurred_at` of the first and last row.
    pub first: String,
    pub last: String,
}

/// A manifest revision that a later revision of the same day replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Superseded {
    pub seq: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub tenant_id: String,
    pub date: String,
    /// Position in the tenant's chain, from 1.
    pub seq: u64,
    /// SHA-256 of the tenant's previous manifest; `None` for the first.
    pub prev: Option<String>,
    pub created_at: String,
    pub rows: u64,
    pub parts: Vec<PartEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<Superseded>,
}

/// The object key of a day's folder of parts.
#[must_use]
pub fn day_prefix(tenant: &str, date: &str) -> String {
    format!("events/tenant={tenant}/date={date}/")
}

/// The object key of a day's manifest.
#[must_use]
pub fn manifest_key(tenant: &str, date: &str) -> String {
    format!("manifests/tenant={tenant}/date={date}.json")
}

/// The folder of a tenant's manifests.
#[must_use]
pub fn manifests_prefix(tenant: &str) -> String {
    format!("manifests/tenant={tenant}/")
}

/// The folder of a tenant's parts.
#[must_use]
pub fn events_prefix(tenant: &str) -> String {
    format!("events/tenant={tenant}/")
}

/// The name of a day's `n`-th part: fixed-width, so names sort in write order.
#[must_use]
pub fn part_name(n: usize) -> String {
    format!("part-{n:05}.parquet")
}

impl Manifest {
    /// The exact bytes stored, which the chain hashes.
    ///
    /// # Errors
    /// Never in practice (plain data); kept for serde's signature.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = serde_json::to_vec_pretty(self)?;
        out.push(b'\n');
        Ok(out)
    }

    /// The next revision of this day: every earlier part plus `new_parts`, linked after
    /// the chain's head.
    #[must_use]
    pub fn revise(
        previous: Option<(&Manifest, &str)>,
        tenant: &str,
        date: &str,
        head: Option<&ChainHead>,
        created_at: String,
        new_parts: Vec<PartEntry>,
    ) -> Manifest {
        let (mut parts, mut supersedes) = match previous {
            Some((m, sha)) => {
                let mut s = m.supersedes.clone();
                s.push(Superseded { seq: m.seq, sha256: sha.to_owned() });
                (m.parts.clone(), s)
            }
            None => (Vec::new(), Vec::new()),
        };
        parts.extend(new_parts);
        supersedes.sort_by_key(|s| s.seq);
        Manifest {
            version: VERSION,
            tenant_id: tenant.to_owned(),
            date: date.to_owned(),
            seq: head.map_or(1, |h| h.seq + 1),
            prev: head.map(|h| h.sha256.clone()),
            created_at,
            rows: parts.iter().map(|p| p.rows).sum(),
            parts,
            supersedes,
        }
    }
}

/// The newest link of a tenant's chain, as the tenant registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub sha256: String,
}

/// A way the chain of a tenant's manifests is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    #[error("manifest {date}: seq {seq} is claimed by more than one manifest")]
    DuplicateSeq { date: String, seq: u64 },
    #[error("manifest seq {0} is missing from the chain")]
    MissingSeq(u64),
    #[error("manifest {date} (seq {seq}): prev does not match the hash of manifest seq {}", seq - 1)]
    BrokenLink { date: String, seq: u64 },
    #[error("the registry's head is seq {head_seq} but the newest manifest is seq {newest}")]
    HeadSeq { head_seq: u64, newest: u64 },
    #[error("the newest manifest (seq {0}) does not hash to the registry's head")]
    HeadHash(u64),
    #[error("manifest {date}: rows {claimed} differ from the sum over its parts")]
    RowSum { date: String, claimed: u64 },
}

/// Checks a tenant's current manifests (`(sha256 of the bytes, manifest)`) as one chain
/// ending at `head`.
#[must_use]
pub fn check_chain(manifests: &[(String, Manifest)], head: Option<&ChainHead>) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    // seq → hash, from the current manifests and the revisions they replaced.
    let mut hashes: BTreeMap<u64, String> = BTreeMap::new();
    for (sha, m) in manifests {
        if m.rows != m.parts.iter().map(|p| p.rows).sum::<u64>() {
            problems.push(ChainProblem::RowSum { date: m.date.clone(), claimed: m.rows });
        }
        let entries =
            std::iter::once((m.seq, sha.clone())).chain(m.supersedes.iter().map(|s| (s.seq, s.sha256.clone())));
        for (seq, h) in entries {
            if hashes.insert(seq, h).is_some() {
                problems.push(ChainProblem::DuplicateSeq { date: m.date.clone(), seq });
            }
        }
    }
    let newest = hashes.keys().next_back().copied().unwrap_or(0);
    problems.extend((1..=newest).filter(|s| !hashes.contains_key(s)).map(ChainProblem::MissingSeq));
    for (_, m) in manifests {
        let expected = m.seq.checked_sub(1).and_then(|p| hashes.get(&p));
        let ok = match (m.seq, &m.prev) {
            (1, None) => true,
            (_, Some(prev)) => expected == Some(prev),
            _ => false,
        };
        if !ok {
            problems.push(ChainProblem::BrokenLink { date: m.date.clone(), seq: m.seq });
        }
    }
    let head_seq = head.map_or(0, |h| h.seq);
    if head_seq != newest {
        problems.push(ChainProblem::HeadSeq { head_seq, newest });
    } else if let Some(h) = head
        && hashes.get(&h.seq) != Some(&h.sha256)
    {
        problems.push(ChainProblem::HeadHash(h.seq));
    }
    problems
}

/// Where an archive step stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Parts are uploaded and verified; the manifest may or may not have been written.
    Manifest,
    /// The manifest is written and the head advanced; items may remain to delete.
    Delete,
}

/// The one archive step in flight for a tenant, as its registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub date: String,
    pub parts: Vec<String>,
    /// SHA-256 of the manifest revision this step writes.
    pub manifest: String,
    pub seq: u64,
    pub phase: Phase,
}

/// A tenant's archive state: the head of its manifest chain and the step in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveState {
    pub head: Option<ChainHead>,
    pub pending: Option<Pending>,
}

/// The hash that links a manifest into the chain.
#[must_use]
pub fn hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: usize, rows: u64) -> PartEntry {
        PartEntry {
            name: part_name(n),
            rows,
            bytes: 100,
            sha256: format!("{n:064}"),
            first: "2026-01-01T00:00:00.000000Z".into(),
            last: "2026-01-01T23:00:00.000000Z".into(),
        }
    }

    /// Writes manifests for the given days in order, like the archive job does.
    fn chain(days: &[&str]) -> (Vec<(String, Manifest)>, Option<ChainHead>) {
        let mut current: BTreeMap<String, (String, Manifest)> = BTreeMap::new();
        let mut head = None;
        for day in days {
            let prev = current.get(*day).map(|(s, m)| (m, s.as_str()));
            let n = prev.map_or(0, |(m, _)| m.parts.len());
            let m = Manifest::revise(prev, "acme", day, head.as_ref(), "now".into(), vec![part(n, 3)]);
            let sha = hash(&m.to_bytes().unwrap_or_default());
            head = Some(ChainHead { seq: m.seq, sha256: sha.clone() });
            current.insert((*day).to_owned(), (sha, m));
        }
        (current.into_values().collect(), head)
    }

    #[test]
    fn a_chain_with_revisions_checks_clean() {
        let (ms, head) = chain(&["2026-01-01", "2026-01-02", "2026-01-01", "2026-01-03", "2026-01-01"]);
        assert_eq!(check_chain(&ms, head.as_ref()), vec![]);
        let jan1 = ms.iter().find(|(_, m)| m.date == "2026-01-01").map(|(_, m)| m.clone());
        let jan1 = jan1.unwrap_or_else(|| unreachable!());
        assert_eq!(jan1.parts.len(), 3);
        assert_eq!(jan1.rows, 9);
        assert_eq!(jan1.supersedes.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn a_missing_manifest_breaks_the_chain() {
        let (mut ms, head) = chain(&["2026-01-01", "2026-01-02", "2026-01-03"]);
        ms.remove(1);
        assert_eq!(
            check_chain(&ms, head.as_ref()),
            vec![ChainProblem::MissingSeq(2), ChainProblem::BrokenLink { date: "2026-01-03".into(), seq: 3 }]
        );
    }

    #[test]
    fn dropping_the_newest_manifest_is_caught_by_the_head() {
        let (mut ms, head) = chain(&["2026-01-01", "2026-01-02"]);
        ms.pop();
        assert_eq!(check_chain(&ms, head.as_ref()), vec![ChainProblem::HeadSeq { head_seq: 2, newest: 1 }]);
    }

    #[test]
    fn an_altered_manifest_breaks_the_next_link() {
        let (mut ms, head) = chain(&["2026-01-01", "2026-01-02"]);
        ms[0].1.parts[0].rows = 2;
        ms[0].1.rows = 2;
        ms[0].0 = hash(&ms[0].1.to_bytes().unwrap_or_default());
        assert_eq!(
            check_chain(&ms, head.as_ref()),
            vec![ChainProblem::BrokenLink { date: "2026-01-02".into(), seq: 2 }]
        );
    }

    #[test]
    fn an_altered_newest_manifest_is_caught_by_the_head() {
        let (mut ms, head) = chain(&["2026-01-01"]);
        ms[0].0 = "0".repeat(64);
        assert_eq!(check_chain(&ms, head.as_ref()), vec![ChainProblem::HeadHash(1)]);
    }

    #[test]
    fn manifests_round_trip_through_their_bytes() {
        let (ms, _) = chain(&["2026-01-01", "2026-01-01"]);
        let bytes = ms[0].1.to_bytes().unwrap_or_default();
        let back: Manifest = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, ms[0].1);
    }
}
