//! Tenant identity and per-tenant settings.

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
    /// Write shards of the tenant's index partitions. Only ever grows, so readers that
    /// query shards `0..shards` always see every item.
    pub shards: u16,
    /// The tenant's own online window, if it differs from `AUDIT_HOT_DAYS`.
    pub hot_days: Option<u32>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self { shards: 1, hot_days: None }
    }
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
