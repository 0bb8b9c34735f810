//! How often a pending prediction is polled.
//!
//! Sync mode (`Prefer: wait`) returns a prediction still `starting`/`processing` when the model
//! outlives the wait; the plugin then asks the host to poll `urls.get`. Polling back-to-back
//! would hammer Replicate (and its per-account rate limit) for nothing, while polling slowly adds
//! latency to short jobs. So the interval follows the prediction's age (from its `created_at`):
//! a quarter of the age, at least [`MIN_INTERVAL`] and at most [`MAX_INTERVAL`]. A prediction
//! that just missed the window is checked every 500 ms, one that has run for 8 s or more every
//! 2 s: a 20 s job costs about 15 polls, a minute-long one about 35. The age is computed from
//! Replicate's clock and ours; a skew only moves the interval within its bounds. The host stops
//! following at the attempt's deadline, so no poll count is kept here (the plugin keeps no
//! per-request state between calls).

use std::time::Duration;

/// The interval for a prediction that has only just started.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// The interval for a long-running prediction.
pub const MAX_INTERVAL: Duration = Duration::from_secs(2);

/// The wait before the next poll of a prediction created at `created_ms` (epoch milliseconds,
/// when it says), at `now_ms`.
pub fn delay(created_ms: Option<u64>, now_ms: u64) -> Duration {
    let Some(created_ms) = created_ms else {
        return MIN_INTERVAL;
    };
    let age = Duration::from_millis(now_ms.saturating_sub(created_ms));
    (age / 4).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_grows_with_the_age_within_its_bounds() {
        let created = 1_735_689_600_000;
        let at = |age_ms: u64| delay(Some(created), created + age_ms).as_millis();
        assert_eq!(at(0), 500);
        assert_eq!(at(1_000), 500);
        assert_eq!(at(2_000), 500);
        assert_eq!(at(4_000), 1_000);
        assert_eq!(at(6_000), 1_500);
        assert_eq!(at(8_000), 2_000);
        assert_eq!(at(3_600_000), 2_000);
        // Our clock behind Replicate's, or no creation time: the shortest interval.
        assert_eq!(delay(Some(created), created - 5_000).as_millis(), 500);
        assert_eq!(delay(None, created).as_millis(), 500);
    }

    #[test]
    fn a_twenty_second_prediction_is_polled_a_sane_number_of_times() {
        // The first poll comes when sync mode gives up (1 s here); count polls until 20 s.
        let mut age = 1_000;
        let mut polls = 0;
        let mut shortest = u64::MAX;
        while age < 20_000 {
            let wait = u64::try_from(delay(Some(0), age).as_millis()).unwrap();
            shortest = shortest.min(wait);
            age += wait;
            polls += 1;
        }
        assert!((10..=20).contains(&polls), "{polls} polls");
        assert_eq!(shortest, 500);
    }
}
