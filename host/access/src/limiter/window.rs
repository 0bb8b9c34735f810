//! Windows: the stretch of time a windowed limit counts in. Per-minute limits count in the
//! minute `floor(now / 60 s)`; budgets in the UTC calendar day, ISO week (from Monday 00:00)
//! or month, or over the key's lifetime (one window that never ends). Every process computes
//! the same window from the same clock reading, so their shared counters line up.

use crate::Period;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// What a windowed limit counts per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Span {
    Minute,
    Period(Period),
    /// The key's lifetime: a budget with no `budget_duration`.
    Lifetime,
}

impl Span {
    /// The budget span of a key's `budget_duration`.
    pub(crate) fn budget(period: Option<Period>) -> Span {
        period.map_or(Span::Lifetime, Span::Period)
    }

    /// The window holding `now_ms`: its start and its end (exclusive), in Unix milliseconds.
    /// A lifetime window starts at 0 and ends never (`i64::MAX`).
    pub(crate) fn window(self, now_ms: i64) -> (i64, i64) {
        match self {
            Span::Minute => {
                let start = now_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
                (start, start + MINUTE_MS)
            }
            Span::Period(Period::Day) => {
                let start = now_ms.div_euclid(DAY_MS) * DAY_MS;
                (start, start + DAY_MS)
            }
            Span::Period(Period::Week) => {
                let day = now_ms.div_euclid(DAY_MS);
                // 1970-01-01 was a Thursday: Monday is three days later in the cycle.
                let monday = day - (day + 3).rem_euclid(7);
                (monday * DAY_MS, (monday + 7) * DAY_MS)
            }
            Span::Period(Period::Month) => {
                let (year, month, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
                let start = days_from_civil(year, month, 1) * DAY_MS;
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                (start, days_from_civil(next_year, next_month, 1) * DAY_MS)
            }
            Span::Lifetime => (0, i64::MAX),
        }
    }

    /// How this span names its metric in the `allowance` table (`spend:day`, …).
    pub(crate) fn spend_metric(self) -> &'static str {
        match self {
            Span::Minute => "spend:minute",
            Span::Period(Period::Day) => "spend:day",
            Span::Period(Period::Week) => "spend:week",
            Span::Period(Period::Month) => "spend:month",
            Span::Lifetime => "spend:lifetime",
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01T17:50:00Z, a Tuesday.
    const NOW: i64 = 1_796_147_400_000;

    #[test]
    fn minutes_start_on_the_minute() {
        let (start, end) = Span::Minute.window(NOW + 12_345);
        assert_eq!(start, NOW);
        assert_eq!(end, NOW + 60_000);
        assert_eq!(Span::Minute.window(NOW + 60_000).0, NOW + 60_000);
    }

    #[test]
    fn days_weeks_and_months_are_utc_calendar_ones() {
        let midnight = days_from_civil(2026, 12, 1) * DAY_MS;
        assert_eq!(midnight, NOW - (17 * 60 + 50) * 60_000);
        assert_eq!(
            Span::Period(Period::Day).window(NOW),
            (midnight, midnight + DAY_MS)
        );
        // Tuesday 1 December: the week began on Monday 30 November.
        let monday = days_from_civil(2026, 11, 30) * DAY_MS;
        assert_eq!(
            Span::Period(Period::Week).window(NOW),
            (monday, monday + 7 * DAY_MS)
        );
        assert_eq!(Span::Period(Period::Week).window(monday).0, monday);
        assert_eq!(
            Span::Period(Period::Week).window(monday - 1).0,
            monday - 7 * DAY_MS
        );
        assert_eq!(
            Span::Period(Period::Month).window(NOW),
            (midnight, days_from_civil(2027, 1, 1) * DAY_MS)
        );
        // February of a leap year ends on the 29th.
        let feb = days_from_civil(2028, 2, 10) * DAY_MS;
        let (start, end) = Span::Period(Period::Month).window(feb);
        assert_eq!((end - start) / DAY_MS, 29);
        assert_eq!(Span::Lifetime.window(NOW), (0, i64::MAX));
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1, 0, 59, 10_957, 20_423, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }
}
