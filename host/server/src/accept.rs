//! What the accept loop does when `accept` fails. The usual cause is running out of file
//! descriptors (`EMFILE`/`ENFILE`): the pending connection stays in the backlog, so retrying at
//! once fails again at once — a loop that spun at 100 % CPU and wrote a log line per try (1.46 GB
//! in 10 s). Instead the loop pauses, doubling from [`FIRST_PAUSE`] to [`MAX_PAUSE`] while the
//! failures last, and the failure is logged at most once per [`REPORT_EVERY`], with how many were
//! left unsaid. The open connections keep being served meanwhile; one successful accept resets
//! both.

use std::time::Duration;

use tokio::time::Instant;

/// The pause after the first failed accept.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between retries.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one log line per this long.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The accept loop's memory of recent failures.
#[derive(Debug, Default)]
pub(crate) struct AcceptFailures {
    pause: Option<Duration>,
    last_report: Option<Instant>,
    unreported: u64,
}

/// What to do about one failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// How long to wait before the next accept.
    pub(crate) pause: Duration,
    /// `Some(n)`: log now, mentioning the `n` failures since the last line.
    pub(crate) report: Option<u64>,
}

impl AcceptFailures {
    /// A failed accept.
    pub(crate) fn failed(&mut self) -> Backoff {
        let now = Instant::now();
        let pause = match self.pause {
            None => FIRST_PAUSE,
            Some(pause) => (pause * 2).min(MAX_PAUSE),
        };
        self.pause = Some(pause);
        let due = self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= REPORT_EVERY);
        let report = if due {
            self.last_report = Some(now);
            Some(std::mem::take(&mut self.unreported))
        } else {
            self.unreported += 1;
            None
        };
        Backoff { pause, report }
    }

    /// An accept succeeded: the next failure starts over (its first line is logged at once
    /// only if the last line is old enough).
    pub(crate) fn succeeded(&mut self) {
        self.pause = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_are_reported_once_per_period() {
        let mut failures = AcceptFailures::default();
        let mut pauses = Vec::new();
        let mut reports = Vec::new();
        let started = Instant::now();
        // A steady stream of failures for 12 s of (paused) time.
        while started.elapsed() < Duration::from_secs(12) {
            let backoff = failures.failed();
            pauses.push(backoff.pause);
            if let Some(unsaid) = backoff.report {
                reports.push((started.elapsed().as_secs(), unsaid));
            }
            tokio::time::sleep(backoff.pause).await;
        }
        assert_eq!(pauses[..4], [5, 10, 20, 40].map(Duration::from_millis));
        assert!(pauses.iter().all(|p| *p <= MAX_PAUSE));
        // Ten doublings reach the cap: about 1 s between retries from then on, not a spin.
        assert!(pauses.len() < 30, "{} retries in 12 s", pauses.len());
        let seconds: Vec<u64> = reports.iter().map(|(at, _)| *at).collect();
        assert_eq!(seconds, [0, 5, 10], "one line per 5 s");
        assert_eq!(reports[0].1, 0);
        assert!(
            reports[1].1 > 0,
            "the second line counts what was left unsaid"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_accept_resets_the_pause() {
        let mut failures = AcceptFailures::default();
        for _ in 0..5 {
            failures.failed();
        }
        failures.succeeded();
        assert_eq!(failures.failed().pause, FIRST_PAUSE);
    }
}
