//! Notification rates: a bucket that allows `per_minute` notifications a minute on
//! average and as many at once, kept as one timestamp (the generic cell rate algorithm's
//! "theoretical arrival time"), so a rule's allowance rides in its state item and a
//! tenant's in its turn, with no counter to reset.

use crate::domain::timestamp::Timestamp;

const MINUTE_MICROS: i64 = 60_000_000;

/// At most `per_minute` a minute, in bursts of up to as many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
}

impl Rate {
    #[must_use]
    pub const fn per_minute(per_minute: u32) -> Self {
        Self { per_minute }
    }

    /// Time one notification uses up.
    fn interval(self) -> i64 {
        MINUTE_MICROS / i64::from(self.per_minute.max(1))
    }

    /// How far ahead of now the bucket may run: a full burst.
    fn tolerance(self) -> i64 {
        self.interval() * (i64::from(self.per_minute.max(1)) - 1)
    }

    /// Whether one more may go at `now` from a bucket at `tat`: `Ok` with the bucket after
    /// it, or `Err` with the first instant one may.
    ///
    /// # Errors
    /// The bucket is empty until the returned instant.
    pub fn take(self, tat: Option<Timestamp>, now: Timestamp) -> Result<Timestamp, Timestamp> {
        let tat = tat.map_or(now, |t| t.max(now));
        let allowed_at = tat.plus_micros(-self.tolerance());
        if allowed_at > now { Err(allowed_at) } else { Ok(tat.plus_micros(self.interval())) }
    }
}

/// Takes one from both buckets or from neither: `Ok` with both buckets after it, or
/// `Err` with the first instant both allow one.
///
/// # Errors
/// Either bucket is empty until the returned instant.
pub fn take_both(
    (first, first_tat): (Rate, Option<Timestamp>),
    (second, second_tat): (Rate, Option<Timestamp>),
    now: Timestamp,
) -> Result<(Timestamp, Timestamp), Timestamp> {
    match (first.take(first_tat, now), second.take(second_tat, now)) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(a), Err(b)) => Err(a.max(b)),
        (Err(t), Ok(_)) | (Ok(_), Err(t)) => Err(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: f64) -> Timestamp {
        #[expect(clippy::cast_possible_truncation, reason = "test times are small")]
        Timestamp::MIN.plus_micros(1_700_000_000_000_000 + (seconds * 1e6) as i64)
    }

    /// Takes at `now` until refused; how many went.
    fn burst(rate: Rate, tat: &mut Option<Timestamp>, now: Timestamp) -> (u32, Timestamp) {
        let mut n = 0;
        loop {
            match rate.take(*tat, now) {
                Ok(next) => {
                    *tat = Some(next);
                    n += 1;
                }
                Err(until) => return (n, until),
            }
        }
    }

    #[test]
    fn a_full_bucket_lets_a_burst_of_its_rate_through_then_one_per_interval() {
        let rate = Rate::per_minute(60);
        let mut tat = None;
        let (n, until) = burst(rate, &mut tat, at(0.0));
        assert_eq!((n, until), (60, at(1.0)));
        assert_eq!(burst(rate, &mut tat, at(0.5)).0, 0);
        assert_eq!(burst(rate, &mut tat, at(1.0)).0, 1);
        assert_eq!(burst(rate, &mut tat, at(3.5)).0, 2);
        // A quiet minute refills it whole, and no more.
        assert_eq!(burst(rate, &mut tat, at(120.0)).0, 60);
    }

    #[test]
    fn over_any_minute_no_more_than_the_rate_plus_a_burst_goes() {
        let rate = Rate::per_minute(600);
        let mut tat = None;
        let mut sent = 0;
        for step in 0..=600 {
            sent += burst(rate, &mut tat, at(f64::from(step) * 0.1)).0;
        }
        // 600 at once, then 10 a second for the 60 seconds after.
        assert_eq!(sent, 600 + 600);
    }

    #[test]
    fn both_buckets_or_neither() {
        let (rule, tenant) = (Rate::per_minute(2), Rate::per_minute(600));
        let now = at(0.0);
        let (r1, t1) = take_both((rule, None), (tenant, None), now).expect("first");
        let (r2, t2) = take_both((rule, Some(r1)), (tenant, Some(t1)), now).expect("second");
        let until = take_both((rule, Some(r2)), (tenant, Some(t2)), now).expect_err("the rule's is empty");
        assert_eq!(until, at(30.0));
        // A refusal takes nothing from the other bucket: the caller keeps t2.
        assert!(tenant.take(Some(t2), now).is_ok());
    }
}
