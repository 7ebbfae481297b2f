//! Archive manifests (contract section 4): what each archived day holds, chained per
//! tenant so that a removed, altered, reordered or restored manifest is detectable.
//!
//! Each tenant's manifest revisions form one chain in the order they were written: `seq`
//! counts them from 1 and `prev` is the SHA-256 of the revision written just before (any
//! day). Every revision is kept as its own object ([`revision_key`]), byte for byte what
//! its day's current manifest ([`manifest_key`]) held when it was written, so the whole
//! chain can be walked from seq 1 to the head the tenant registry records. A day's next
//! revision lists every part so far plus one new part, and names the revisions it
//! supersedes.

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

/// The object key of revision `seq` of a tenant's chain: zero-padded, so keys sort in
/// chain order.
#[must_use]
pub fn revision_key(tenant: &str, seq: u64) -> String {
    format!("manifests/tenant={tenant}/revisions/{seq:010}.json")
}

/// The folder of a tenant's revisions.
#[must_use]
pub fn revisions_prefix(tenant: &str) -> String {
    format!("manifests/tenant={tenant}/revisions/")
}

/// The object key of the signed checkpoint of seq `seq` of a tenant's chain
/// ([`crate::domain::checkpoint`]): zero-padded, so keys sort in chain order.
#[must_use]
pub fn checkpoint_key(tenant: &str, seq: u64) -> String {
    format!("manifests/tenant={tenant}/checkpoints/{seq:010}.json")
}

/// The folder of a tenant's checkpoints.
#[must_use]
pub fn checkpoints_prefix(tenant: &str) -> String {
    format!("manifests/tenant={tenant}/checkpoints/")
}

/// What an object under [`manifests_prefix`] is: a day's current manifest, a revision or
/// a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestObject {
    Day(String),
    Revision(u64),
    Checkpoint(u64),
}

/// Reads a key under a tenant's [`manifests_prefix`]; `None` for anything the archive
/// never writes.
#[must_use]
pub fn parse_key(tenant: &str, key: &str) -> Option<ManifestObject> {
    let rest = key.strip_prefix(&manifests_prefix(tenant))?;
    let seq_of = |seq: &str| -> Option<u64> {
        seq.parse().ok().filter(|_| seq.len() == 10 && seq.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(seq) = rest.strip_prefix("revisions/").and_then(|r| r.strip_suffix(".json")) {
        let n = seq_of(seq)?;
        return (revision_key(tenant, n) == key).then_some(ManifestObject::Revision(n));
    }
    if let Some(seq) = rest.strip_prefix("checkpoints/").and_then(|r| r.strip_suffix(".json")) {
        let n = seq_of(seq)?;
        return (checkpoint_key(tenant, n) == key).then_some(ManifestObject::Checkpoint(n));
    }
    let date = rest.strip_prefix("date=")?.strip_suffix(".json")?;
    let valid = crate::domain::timestamp::Timestamp::parse(&format!("{date}T00:00:00Z")).is_ok_and(|t| t.day() == date);
    valid.then(|| ManifestObject::Day(date.to_owned()))
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

/// The number in a part's name, if it is one.
#[must_use]
pub fn part_number(name: &str) -> Option<usize> {
    let n = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    n.bytes().all(|b| b.is_ascii_digit()).then(|| n.parse().ok()).flatten()
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

    /// Whether this revision is what [`Manifest::revise`] makes of `previous` (the day's
    /// revision before it): every earlier part unchanged and in place, the replaced
    /// revisions named.
    #[must_use]
    pub fn extends(&self, previous: Option<(&Manifest, &str)>) -> bool {
        let (parts, mut supersedes) = match previous {
            Some((m, sha)) => {
                let mut s = m.supersedes.clone();
                s.push(Superseded { seq: m.seq, sha256: sha.to_owned() });
                (m.parts.as_slice(), s)
            }
            None => (&[][..], Vec::new()),
        };
        supersedes.sort_by_key(|s| s.seq);
        self.parts.len() > parts.len() && self.parts.starts_with(parts) && self.supersedes == supersedes
    }
}

/// The newest link of a tenant's chain, as the tenant registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub sha256: String,
}

/// A way the chain of a tenant's manifest revisions is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    #[error("revision seq {0} is missing")]
    MissingSeq(u64),
    #[error("revision object {key_seq} holds seq {seq} of {date}")]
    Misplaced { key_seq: u64, seq: u64, date: String },
    #[error("revision seq {seq} ({date}): prev does not match the hash of revision seq {}", seq - 1)]
    BrokenLink { date: String, seq: u64 },
    #[error("revision seq {seq} ({date}) drops or changes what the day's previous revision held")]
    NotExtending { date: String, seq: u64 },
    #[error("revision seq {seq} ({date}): rows {claimed} differ from the sum over its parts")]
    RowSum { date: String, seq: u64, claimed: u64 },
    #[error("the registry's head is seq {head_seq} but the newest revision is seq {newest}")]
    HeadSeq { head_seq: u64, newest: u64 },
    #[error("revision seq {0} does not hash to the registry's head")]
    HeadHash(u64),
}

/// One revision as stored (keyed elsewhere by the seq its object key names): the SHA-256
/// of its bytes and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub sha256: String,
    pub manifest: Manifest,
}

/// Checks a tenant's revisions (by the seq their keys name) as one chain from seq 1 to
/// `head`, each linked to the one before and extending its day's previous revision.
/// `in_flight` is the step whose revision may already be stored beyond the head.
#[must_use]
pub fn check_chain(
    revisions: &BTreeMap<u64, Revision>,
    head: Option<&ChainHead>,
    in_flight: Option<&Pending>,
) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    let head_seq = head.map_or(0, |h| h.seq);
    let newest = revisions.keys().next_back().copied().unwrap_or(0);
    let beyond =
        |seq: u64| in_flight.is_some_and(|p| p.phase == Phase::Manifest && p.seq == seq && seq == head_seq + 1);
    let last = if newest > head_seq && beyond(newest) { newest - 1 } else { newest };
    problems.extend((1..=last.max(head_seq)).filter(|s| !revisions.contains_key(s)).map(ChainProblem::MissingSeq));
    let mut latest: BTreeMap<&str, &Revision> = BTreeMap::new();
    for (seq, r) in revisions {
        let m = &r.manifest;
        if m.seq != *seq {
            problems.push(ChainProblem::Misplaced { key_seq: *seq, seq: m.seq, date: m.date.clone() });
        }
        if m.rows != m.parts.iter().map(|p| p.rows).sum::<u64>() {
            problems.push(ChainProblem::RowSum { date: m.date.clone(), seq: *seq, claimed: m.rows });
        }
        let linked = match (seq, &m.prev) {
            (1, None) => true,
            (_, Some(prev)) => revisions.get(&(seq - 1)).is_some_and(|p| &p.sha256 == prev),
            _ => false,
        };
        if !linked {
            problems.push(ChainProblem::BrokenLink { date: m.date.clone(), seq: *seq });
        }
        let previous = latest.get(m.date.as_str()).map(|p| (&p.manifest, p.sha256.as_str()));
        if !m.extends(previous) {
            problems.push(ChainProblem::NotExtending { date: m.date.clone(), seq: *seq });
        }
        latest.insert(&m.date, r);
    }
    if last != head_seq {
        problems.push(ChainProblem::HeadSeq { head_seq, newest: last });
    } else if let Some(h) = head
        && revisions.get(&h.seq).is_none_or(|r| r.sha256 != h.sha256)
    {
        problems.push(ChainProblem::HeadHash(h.seq));
    }
    problems
}

/// Per day, the SHA-256 its current manifest may hold: its latest revision up to the
/// head, or the in-flight step's.
#[must_use]
pub fn current_by_day(
    revisions: &BTreeMap<u64, Revision>,
    head: Option<&ChainHead>,
    in_flight: Option<&Pending>,
) -> BTreeMap<String, Vec<String>> {
    let head_seq = head.map_or(0, |h| h.seq);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in revisions.range(..=head_seq).map(|(_, r)| r) {
        out.insert(r.manifest.date.clone(), vec![r.sha256.clone()]);
    }
    if let Some(p) = in_flight.filter(|p| p.phase == Phase::Manifest && p.seq == head_seq + 1) {
        out.entry(p.date.clone()).or_default().push(p.manifest.clone());
    }
    out
}

/// Where an archive step stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The part may or may not be uploaded, the revision may or may not be written.
    Manifest,
    /// The revision is written and the head advanced; events may remain to tombstone.
    Tombstone,
}

/// The one archive step in flight for a tenant, as its registry records it before the
/// part is uploaded: with the day's previous revision and the head, it rebuilds the new
/// revision's exact bytes, so a later run can finish what a crashed one uploaded
/// instead of uploading it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub date: String,
    pub part: PartEntry,
    pub seq: u64,
    /// The revision's `created_at`.
    pub created_at: String,
    /// SHA-256 of the revision this step writes.
    pub manifest: String,
    pub phase: Phase,
}

/// A tenant's archive state: the head of its manifest chain, the step in flight, and how
/// fast its last part was committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveState {
    pub head: Option<ChainHead>,
    pub pending: Option<Pending>,
    /// Microseconds per row that committing (upload, checks, tombstones) of the tenant's
    /// last part took: the next run sizes its first part by it, so it ends in time.
    pub commit_micros_per_row: Option<u64>,
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

    /// Writes one revision per day in `days`, in order, like the archive job does.
    fn chain(days: &[&str]) -> (BTreeMap<u64, Revision>, Option<ChainHead>) {
        let mut current: BTreeMap<String, (String, Manifest)> = BTreeMap::new();
        let mut revisions = BTreeMap::new();
        let mut head = None;
        for day in days {
            let prev = current.get(*day).map(|(s, m)| (m, s.as_str()));
            let n = prev.map_or(0, |(m, _)| m.parts.len());
            let m = Manifest::revise(prev, "acme", day, head.as_ref(), "now".into(), vec![part(n, 3)]);
            let sha = hash(&m.to_bytes().unwrap_or_default());
            head = Some(ChainHead { seq: m.seq, sha256: sha.clone() });
            revisions.insert(m.seq, Revision { sha256: sha.clone(), manifest: m.clone() });
            current.insert((*day).to_owned(), (sha, m));
        }
        (revisions, head)
    }

    fn rehash(r: &mut Revision) {
        r.sha256 = hash(&r.manifest.to_bytes().unwrap_or_default());
    }

    #[test]
    fn a_chain_with_revisions_checks_clean() {
        let (revs, head) = chain(&["2026-01-01", "2026-01-02", "2026-01-01", "2026-01-03", "2026-01-01"]);
        assert_eq!(check_chain(&revs, head.as_ref(), None), vec![]);
        let jan1 = &revs[&5].manifest;
        assert_eq!((jan1.parts.len(), jan1.rows), (3, 9));
        assert_eq!(jan1.supersedes.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1, 3]);
        let current = current_by_day(&revs, head.as_ref(), None);
        assert_eq!(current["2026-01-01"], vec![revs[&5].sha256.clone()]);
        assert_eq!(current["2026-01-02"], vec![revs[&2].sha256.clone()]);
    }

    #[test]
    fn a_missing_revision_breaks_the_chain() {
        let (mut revs, head) = chain(&["2026-01-01", "2026-01-02", "2026-01-03"]);
        revs.remove(&2);
        assert_eq!(
            check_chain(&revs, head.as_ref(), None),
            vec![ChainProblem::MissingSeq(2), ChainProblem::BrokenLink { date: "2026-01-03".into(), seq: 3 }]
        );
    }

    #[test]
    fn dropping_the_newest_revision_is_caught_by_the_head() {
        let (mut revs, head) = chain(&["2026-01-01", "2026-01-02"]);
        revs.remove(&2);
        assert_eq!(
            check_chain(&revs, head.as_ref(), None),
            vec![ChainProblem::MissingSeq(2), ChainProblem::HeadSeq { head_seq: 2, newest: 1 }]
        );
    }

    #[test]
    fn an_altered_revision_breaks_the_next_link_and_a_superseded_one_too() {
        let (mut revs, head) = chain(&["2026-01-01", "2026-01-02", "2026-01-01"]);
        // The superseded revision of Jan 1, rewritten with its part changed.
        if let Some(r) = revs.get_mut(&1) {
            r.manifest.parts[0].sha256 = "f".repeat(64);
            rehash(r);
        }
        assert_eq!(
            check_chain(&revs, head.as_ref(), None),
            vec![
                ChainProblem::BrokenLink { date: "2026-01-02".into(), seq: 2 },
                ChainProblem::NotExtending { date: "2026-01-01".into(), seq: 3 },
            ]
        );
    }

    #[test]
    fn reordered_revisions_and_an_altered_newest_one_are_caught() {
        let (mut revs, head) = chain(&["2026-01-01", "2026-01-02", "2026-01-03"]);
        let (a, b) = (revs[&2].clone(), revs[&3].clone());
        revs.insert(2, b);
        revs.insert(3, a);
        let found = check_chain(&revs, head.as_ref(), None);
        assert!(
            found.contains(&ChainProblem::Misplaced { key_seq: 2, seq: 3, date: "2026-01-03".into() }),
            "{found:?}"
        );
        assert!(found.contains(&ChainProblem::HeadHash(3)), "{found:?}");
        let (mut revs, head) = chain(&["2026-01-01"]);
        if let Some(r) = revs.get_mut(&1) {
            r.manifest.created_at = "later".into();
            rehash(r);
        }
        assert_eq!(check_chain(&revs, head.as_ref(), None), vec![ChainProblem::HeadHash(1)]);
    }

    #[test]
    fn a_revision_written_by_the_step_in_flight_is_not_past_the_head() {
        let (revs, head) = chain(&["2026-01-01", "2026-01-02"]);
        let mut first = revs.clone();
        first.remove(&2);
        let h1 = first.get(&1).map(|r| ChainHead { seq: 1, sha256: r.sha256.clone() });
        let step = Pending {
            date: "2026-01-02".into(),
            part: part(0, 3),
            seq: 2,
            created_at: "now".into(),
            manifest: head.as_ref().map(|h| h.sha256.clone()).unwrap_or_default(),
            phase: Phase::Manifest,
        };
        assert_eq!(check_chain(&revs, h1.as_ref(), Some(&step)), vec![]);
        assert_eq!(check_chain(&revs, h1.as_ref(), None), vec![ChainProblem::HeadSeq { head_seq: 1, newest: 2 }]);
        assert_eq!(current_by_day(&revs, h1.as_ref(), Some(&step))["2026-01-02"], vec![step.manifest.clone()]);
    }

    #[test]
    fn keys_name_days_and_revisions() {
        assert_eq!(parse_key("t", &manifest_key("t", "2026-01-02")), Some(ManifestObject::Day("2026-01-02".into())));
        assert_eq!(parse_key("t", &revision_key("t", 42)), Some(ManifestObject::Revision(42)));
        assert_eq!(parse_key("t", &checkpoint_key("t", 42)), Some(ManifestObject::Checkpoint(42)));
        for other in [
            "manifests/tenant=t/date=2026-13-01.json",
            "manifests/tenant=t/revisions/42.json",
            "manifests/tenant=u/date=2026-01-02.json",
            "manifests/tenant=t/x",
        ] {
            assert_eq!(parse_key("t", other), None, "{other}");
        }
        assert!(revision_key("t", 9) < revision_key("t", 10));
        assert_eq!(part_number(&part_name(42)), Some(42));
        assert_eq!(part_number("part-x.parquet"), None);
    }

    #[test]
    fn manifests_round_trip_through_their_bytes() {
        let (revs, _) = chain(&["2026-01-01", "2026-01-01"]);
        let bytes = revs[&2].manifest.to_bytes().unwrap_or_default();
        let back: Manifest = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, revs[&2].manifest);
    }
}
