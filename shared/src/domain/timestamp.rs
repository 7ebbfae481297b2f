//! UTC timestamps with microsecond precision, the only form the service stores.
//!
//! The text form `2026-11-05T22:25:20.138832Z` has a fixed width, so it sorts
//! lexicographically in time order; the DynamoDB sort keys rely on that.

use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A timestamp that is not RFC 3339 or lies outside years 1970 to 9999.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp between 1970 and 9999")]
pub struct BadTimestamp;

impl Timestamp {
    /// The earliest accepted time.
    pub const MIN: Timestamp = Timestamp(0);
    /// 9999-12-31T23:59:59.999999Z, the last instant with a four-digit year.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

    /// The current time, truncated to microseconds.
    #[must_use]
    pub fn now() -> Self {
        Self::from_offset(OffsetDateTime::now_utc())
    }

    /// # Errors
    /// [`BadTimestamp`] when `micros` is outside the supported years.
    pub fn from_micros(micros: i64) -> Result<Self, BadTimestamp> {
        if (Self::MIN.0..=Self::MAX.0).contains(&micros) { Ok(Self(micros)) } else { Err(BadTimestamp) }
    }

    #[must_use]
    pub fn micros(self) -> i64 {
        self.0
    }

    /// Parses any RFC 3339 time; sub-microsecond digits are truncated.
    ///
    /// # Errors
    /// [`BadTimestamp`] for anything else.
    pub fn parse(text: &str) -> Result<Self, BadTimestamp> {
        let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| BadTimestamp)?;
        let micros = t.unix_timestamp_nanos().div_euclid(1000);
        Self::from_micros(i64::try_from(micros).map_err(|_| BadTimestamp)?)
    }

    #[must_use]
    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    #[must_use]
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    /// The UTC calendar day, `YYYY-MM-DD`.
    #[must_use]
    pub fn day(self) -> String {
        let t = self.to_offset();
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    }

    fn from_offset(t: OffsetDateTime) -> Self {
        let micros = t.unix_timestamp_nanos().div_euclid(1000);
        Self(i64::try_from(micros).unwrap_or(i64::MAX).clamp(Self::MIN.0, Self::MAX.0))
    }

    fn to_offset(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.to_offset();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalizes_offsets_and_precision() {
        let t = Timestamp::parse("2026-11-05T23:25:20.1388329+01:00").unwrap_or(Timestamp::MIN);
        assert_eq!(t.to_string(), "2026-11-05T22:25:20.138832Z");
        assert_eq!(t.day(), "2026-11-05");
    }

    #[test]
    fn rejects_non_rfc3339_and_out_of_range() {
        for bad in ["2026-11-05", "yesterday", "1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z", ""] {
            assert_eq!(Timestamp::parse(bad), Err(BadTimestamp), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn text_form_round_trips_and_sorts_like_time(a in 0i64..=Timestamp::MAX.0, b in 0i64..=Timestamp::MAX.0) {
            let (ta, tb) = (Timestamp(a), Timestamp(b));
            prop_assert_eq!(Timestamp::parse(&ta.to_string()), Ok(ta));
            prop_assert_eq!(ta.cmp(&tb), ta.to_string().cmp(&tb.to_string()));
        }
    }
}
