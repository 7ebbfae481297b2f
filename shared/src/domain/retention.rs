//! The retention rule (contract section 4): which part of a tenant's history is online.

use crate::domain::timestamp::Timestamp;

/// The first instant that is surely still online: the archive moves whole UTC days once
/// they are older than the window.
#[must_use]
pub fn online_start(now: Timestamp, hot_days: u32) -> Timestamp {
    let day = now.plus_seconds(-i64::from(hot_days) * 86_400).day();
    Timestamp::parse(&format!("{day}T00:00:00Z")).unwrap_or(Timestamp::MIN)
}

/// The first day (`YYYY-MM-DD`) the archive leaves online.
#[must_use]
pub fn archive_cutoff(now: Timestamp, hot_days: u32) -> String {
    online_start(now, hot_days).day()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_online_window_starts_at_a_utc_midnight() {
        let now = Timestamp::parse("2026-11-20T12:34:56Z").unwrap_or(Timestamp::MIN);
        assert_eq!(online_start(now, 90).to_string(), "2026-08-22T00:00:00.000000Z");
        assert_eq!(archive_cutoff(now, 90), "2026-08-22");
    }
}
