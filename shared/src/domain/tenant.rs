//! Tenant identity and per-tenant settings.

use crate::domain::timestamp::Timestamp;
use std::fmt;

/// A tenant id as the token's `tenant` claim carries it: `A-Z a-z 0-9 _ -`, 1 to 64.
///
/// Being free of `#` is what lets the key design put it first in composite keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// Not a valid tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant ids are 1-64 characters of A-Z a-z 0-9 _ -")]
pub struct BadTenant;

impl TenantId {
    /// # Errors
    /// [`BadTenant`] unless `s` matches the tenant pattern.
    pub fn parse(s: &str) -> Result<Self, BadTenant> {
        let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(Self(s.to_owned())) } else { Err(BadTenant) }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an operator can set per tenant; stored in the tenant registry item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantSettings {
    /// Shards of the tenant's index partitions: readers query shards `0..shards`. Only
    /// ever grows, so they always see every item.
    pub shards: u16,
    /// The tenant's own online window, if it differs from `AUDIT_HOT_DAYS`.
    pub hot_days: Option<u32>,
    /// The latest raise of `shards`, while writers may not use the new shards yet.
    pub raised: Option<Raise>,
}

/// A raise of a tenant's shards: from how many, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raise {
    pub from: u16,
    pub at: Timestamp,
}

/// How long after a raise writers keep to the shards from before it: every process
/// caches a tenant's settings for up to a minute (a reader may still query the old
/// shards that long), doubled for the clocks of different machines. Until then nothing
/// is written where a reader with the old settings would not look.
pub const RAISE_DELAY_SECONDS: i64 = 120;

impl Default for TenantSettings {
    fn default() -> Self {
        Self::new(1, None)
    }
}

impl TenantSettings {
    /// Settings never raised.
    #[must_use]
    pub fn new(shards: u16, hot_days: Option<u32>) -> Self {
        Self { shards, hot_days, raised: None }
    }

    /// The shards a write at `now` may go to: the ones from before the latest raise until
    /// [`RAISE_DELAY_SECONDS`] have passed, then all of them.
    #[must_use]
    pub fn write_shards(&self, now: Timestamp) -> u16 {
        match self.raised {
            Some(r) if now < r.at.plus_seconds(RAISE_DELAY_SECONDS) => r.from.clamp(1, self.shards.max(1)),
            _ => self.shards.max(1),
        }
    }

    /// These settings replaced by `next` at `now`: shards never shrink, and a raise is
    /// remembered (a change that raises nothing keeps the raise still running).
    ///
    /// # Errors
    /// [`ShardsShrink`] when `next` has fewer shards.
    pub fn replaced_by(&self, next: TenantSettings, now: Timestamp) -> Result<TenantSettings, ShardsShrink> {
        let current = self.shards.max(1);
        match next.shards.cmp(&current) {
            std::cmp::Ordering::Less => Err(ShardsShrink { current, asked: next.shards }),
            std::cmp::Ordering::Equal => Ok(TenantSettings { raised: self.raised, ..next }),
            std::cmp::Ordering::Greater => {
                Ok(TenantSettings { raised: Some(Raise { from: self.write_shards(now), at: now }), ..next })
            }
        }
    }
}

/// Fewer shards than a tenant has: readers would no longer query what is in the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shards can only grow: the tenant has {current}, {asked} asked")]
pub struct ShardsShrink {
    pub current: u16,
    pub asked: u16,
}

/// Most write shards a tenant can have (each is one partition key per index).
pub const MAX_SHARDS: u16 = 256;

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writers_keep_to_the_old_shards_until_every_reader_knows_the_new_ones() {
        let t0 = Timestamp::parse("2026-11-05T12:00:00Z").unwrap_or(Timestamp::MIN);
        let raised = TenantSettings::new(2, None).replaced_by(TenantSettings::new(8, Some(30)), t0);
        let raised = raised.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((raised.shards, raised.hot_days), (8, Some(30)), "readers read all of them at once");
        assert_eq!(raised.write_shards(t0), 2);
        assert_eq!(raised.write_shards(t0.plus_seconds(RAISE_DELAY_SECONDS - 1)), 2);
        assert_eq!(raised.write_shards(t0.plus_seconds(RAISE_DELAY_SECONDS)), 8);
        // A change that raises nothing does not cut the delay short; a second raise
        // within it starts from the shards writers use.
        let same = raised.replaced_by(TenantSettings::new(8, None), t0.plus_seconds(10));
        assert_eq!(same.map(|s| s.write_shards(t0.plus_seconds(60))), Ok(2));
        let again = raised.replaced_by(TenantSettings::new(16, None), t0.plus_seconds(10));
        assert_eq!(again.map(|s| s.write_shards(t0.plus_seconds(RAISE_DELAY_SECONDS + 5))), Ok(2));
        assert_eq!(raised.replaced_by(TenantSettings::new(4, None), t0), Err(ShardsShrink { current: 8, asked: 4 }));
        assert_eq!(TenantSettings::default().write_shards(t0), 1);
    }

    #[test]
    fn shard_is_stable_and_in_range() {
        assert_eq!(shard_of("evt-1", 1), 0);
        assert_eq!(shard_of("evt-1", 16), shard_of("evt-1", 16));
        assert!((0..16).all(|i| shard_of(&format!("e{i}"), 16) < 16));
    }

    proptest! {
        // Each case draws 2,000 ids: a few cases show the spread.
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn shards_spread_evenly(ids in proptest::collection::vec("[a-z0-9-]{8,36}", 2000)) {
            let mut counts = [0usize; 8];
            for id in &ids { counts[usize::from(shard_of(id, 8))] += 1; }
            prop_assert!(counts.iter().all(|&c| c > 2000 / 8 / 2), "{counts:?}");
        }
    }

    #[test]
    fn accepts_only_the_claim_pattern() {
        assert!(TenantId::parse("acme_Prod-1").is_ok());
        for bad in ["", "a#b", "a b", "ü", &"x".repeat(65), "a/b"] {
            assert_eq!(TenantId::parse(bad), Err(BadTenant), "{bad}");
        }
    }
}
