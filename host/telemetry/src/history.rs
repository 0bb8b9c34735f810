//! The last hour of requests, errors, failovers and latency, in 10-second buckets, for the
//! dashboard's chart.
//!
//! Buckets are 10 s wide (360 for the hour) rather than a minute: the dashboard polls every
//! 2 s, and an operator who just broke a target wants to see the next bucket move within
//! seconds, not at the next minute; 360 fixed slots are still small (~100 KiB) and a snapshot
//! skips the empty ones.
//!
//! The hot path ([`History::request`], once per finished request) touches only atomics of the
//! slot its time falls in: counters and a fixed-bucket latency histogram (p50/p95 are read from
//! it, no samples are kept). Only a failed attempt takes the slot's small mutex, to count the
//! failure against its target. A slot is recycled by the first request of a new bucket that
//! lands on it (a compare-and-swap on the bucket number it holds): a request reported in the
//! nanoseconds a slot is being cleared is not counted, which a chart can afford and a lock on
//! every request could not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::RequestObservation;

/// Width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(10);
/// Buckets kept: one hour.
pub const BUCKETS: usize = 360;
/// Distinct targets one bucket counts failures of; later ones are counted under
/// [`OTHER_TARGETS`] (labels come from the config, so this is a guard, not a limit met).
pub const MAX_TARGETS_PER_BUCKET: usize = 64;
/// The label failures of targets beyond [`MAX_TARGETS_PER_BUCKET`] are counted under.
pub const OTHER_TARGETS: &str = "(other)";

/// Upper bounds of the latency histogram's buckets, in milliseconds; one more bucket holds
/// everything slower. Spaced 1-2.5-5 so a quantile read from them is within a factor of ~2.5
/// before interpolation, from a cached answer (~1 ms) to a long generation (a minute).
const LATENCY_BOUNDS_MS: [f64; 15] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
    30_000.0, 60_000.0,
];
const LATENCY_SLOTS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// A slot's bucket number while it is being cleared.
const RECYCLING: u64 = u64::MAX;
/// A slot that never held a bucket.
const EMPTY: u64 = u64::MAX - 1;

/// Where the history reads the time from: the system clock, or a test's.
pub trait Clock: Send + Sync {
    /// Time since the Unix epoch.
    fn unix_time(&self) -> Duration;
}

/// The system's wall clock: buckets line up with the times an operator reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_time(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock a test sets and moves.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    pub fn at(unix_time: Duration) -> ManualClock {
        let clock = ManualClock::default();
        clock.set(unix_time);
        clock
    }

    pub fn set(&self, unix_time: Duration) {
        let millis = u64::try_from(unix_time.as_millis()).unwrap_or(u64::MAX);
        self.millis.store(millis, Ordering::Relaxed);
    }

    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(millis, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn unix_time(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::Relaxed))
    }
}

/// One bucket's counters, reused every hour.
struct Slot {
    /// The bucket number (Unix time / [`BUCKET`]) the counters are of.
    bucket: AtomicU64,
    requests: AtomicU64,
    /// Status 500 and above.
    server_errors: AtomicU64,
    /// Status 429.
    rate_limited: AtomicU64,
    /// Other 4xx (499 included: the client went away).
    client_errors: AtomicU64,
    /// Requests whose attempts were on more than one target.
    failovers: AtomicU64,
    latency: [AtomicU64; LATENCY_SLOTS],
    /// Failed attempts by target: taken only by failures.
    target_failures: Mutex<Vec<(Box<str>, u64)>>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            bucket: AtomicU64::new(EMPTY),
            requests: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            latency: Default::default(),
            target_failures: Mutex::new(Vec::new()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Vec<(Box<str>, u64)>> {
        // A panic while holding it cannot leave a list of counts inconsistent.
        match self.target_failures.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Makes this slot hold `bucket`; false when it cannot now (another request is clearing it,
    /// or it already holds a later bucket: the clock went back).
    fn hold(&self, bucket: u64) -> bool {
        let held = self.bucket.load(Ordering::Acquire);
        if held == bucket {
            return true;
        }
        if held == RECYCLING || (held != EMPTY && held > bucket) {
            return false;
        }
        if self
            .bucket
            .compare_exchange(held, RECYCLING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return self.bucket.load(Ordering::Acquire) == bucket;
        }
        for counter in [
            &self.requests,
            &self.server_errors,
            &self.rate_limited,
            &self.client_errors,
            &self.failovers,
        ]
        .into_iter()
        .chain(&self.latency)
        {
            counter.store(0, Ordering::Relaxed);
        }
        self.failures().clear();
        self.bucket.store(bucket, Ordering::Release);
        true
    }

    fn count_failure(&self, target: &str) {
        let mut failures = self.failures();
        if let Some((_, count)) = failures.iter_mut().find(|(t, _)| &**t == target) {
            *count += 1;
            return;
        }
        let label = if failures.len() < MAX_TARGETS_PER_BUCKET {
            target
        } else {
            OTHER_TARGETS
        };
        match failures.iter_mut().find(|(t, _)| &**t == label) {
            Some((_, count)) => *count += 1,
            None => failures.push((label.into(), 1)),
        }
    }

    fn read(&self, bucket: u64) -> Option<HistoryBucket> {
        if self.bucket.load(Ordering::Acquire) != bucket {
            return None;
        }
        let requests = self.requests.load(Ordering::Relaxed);
        let latency: [u64; LATENCY_SLOTS] =
            std::array::from_fn(|i| self.latency[i].load(Ordering::Relaxed));
        let mut target_failures: Vec<(String, u64)> = self
            .failures()
            .iter()
            .map(|(target, count)| (target.to_string(), *count))
            .collect();
        target_failures.sort();
        let read = HistoryBucket {
            start: Duration::from_secs(bucket * BUCKET.as_secs()),
            requests,
            server_errors: self.server_errors.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            client_errors: self.client_errors.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
            latency_p50: quantile(&latency, 0.50),
            latency_p95: quantile(&latency, 0.95),
            target_failures,
        };
        // Recycled while being read: what was read may mix two buckets.
        (self.bucket.load(Ordering::Acquire) == bucket).then_some(read)
    }
}

/// One bucket of the history, as the dashboard reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryBucket {
    /// The bucket's start, since the Unix epoch.
    pub start: Duration,
    pub requests: u64,
    /// Requests answered with a status of 500 or above.
    pub server_errors: u64,
    /// Requests answered with 429.
    pub rate_limited: u64,
    /// Requests answered with another 4xx (499: the client went away).
    pub client_errors: u64,
    /// Requests whose attempts were on more than one target.
    pub failovers: u64,
    /// Median latency, interpolated within the histogram's bucket.
    pub latency_p50: Option<Duration>,
    pub latency_p95: Option<Duration>,
    /// Failed attempts per target label, sorted by label.
    pub target_failures: Vec<(String, u64)>,
}

/// The last hour as a snapshot: the buckets that saw a request, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySnapshot {
    /// The time of the snapshot, since the Unix epoch.
    pub now: Duration,
    pub bucket: Duration,
    pub buckets: Vec<HistoryBucket>,
}

/// The last hour of requests, in [`BUCKETS`] buckets of [`BUCKET`].
pub struct History {
    clock: Arc<dyn Clock>,
    slots: Box<[Slot]>,
}

impl Default for History {
    fn default() -> History {
        History::with_clock(Arc::new(SystemClock))
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").finish_non_exhaustive()
    }
}

impl History {
    /// A history reading the time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> History {
        History {
            clock,
            slots: (0..BUCKETS).map(|_| Slot::new()).collect(),
        }
    }

    fn bucket_now(&self) -> u64 {
        self.clock.unix_time().as_secs() / BUCKET.as_secs()
    }

    fn slot(&self, bucket: u64) -> &Slot {
        // BUCKETS fits a u64 and the remainder is below it.
        &self.slots[(bucket % BUCKETS as u64) as usize]
    }

    /// A finished request, counted in the bucket of the time it is reported.
    pub fn request(&self, request: &RequestObservation<'_>) {
        let bucket = self.bucket_now();
        let slot = self.slot(bucket);
        if !slot.hold(bucket) {
            return;
        }
        slot.requests.fetch_add(1, Ordering::Relaxed);
        let class = match request.status {
            429 => Some(&slot.rate_limited),
            500.. => Some(&slot.server_errors),
            400..=499 => Some(&slot.client_errors),
            _ => None,
        };
        if let Some(counter) = class {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some((first, rest)) = request.attempts.split_first()
            && rest.iter().any(|attempt| attempt.target != first.target)
        {
            slot.failovers.fetch_add(1, Ordering::Relaxed);
        }
        slot.latency[latency_slot(request.duration)].fetch_add(1, Ordering::Relaxed);
        for attempt in request.attempts {
            if attempt.outcome == "failed" {
                slot.count_failure(attempt.target);
            }
        }
    }

    /// The buckets of the last hour that saw a request, oldest first.
    pub fn snapshot(&self) -> HistorySnapshot {
        let now = self.clock.unix_time();
        let current = now.as_secs() / BUCKET.as_secs();
        let first = current.saturating_sub(BUCKETS as u64 - 1);
        let buckets = (first..=current)
            .filter_map(|bucket| self.slot(bucket).read(bucket))
            .filter(|bucket| bucket.requests > 0)
            .collect();
        HistorySnapshot {
            now,
            bucket: BUCKET,
            buckets,
        }
    }
}

fn latency_slot(latency: Duration) -> usize {
    let ms = latency.as_secs_f64() * 1000.0;
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// The `q` quantile of a histogram, interpolated linearly inside the bucket it falls in (the
/// slowest bucket, open-ended, answers its lower bound).
fn quantile(counts: &[u64; LATENCY_SLOTS], q: f64) -> Option<Duration> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, count) in counts.iter().enumerate() {
        let through = below + count;
        if *count > 0 && through as f64 >= rank {
            let lower = if i == 0 {
                0.0
            } else {
                LATENCY_BOUNDS_MS[i - 1]
            };
            let Some(upper) = LATENCY_BOUNDS_MS.get(i) else {
                return Some(Duration::from_secs_f64(lower / 1000.0));
            };
            let within = ((rank - below as f64) / *count as f64).clamp(0.0, 1.0);
            return Some(Duration::from_secs_f64(
                (lower + within * (upper - lower)) / 1000.0,
            ));
        }
        below = through;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::AttemptObservation;

    const START: Duration = Duration::from_secs(1_800_000_000);

    fn attempt<'a>(target: &'a str, outcome: &'static str) -> AttemptObservation<'a> {
        AttemptObservation {
            target,
            kind: "first",
            outcome,
            failure_class: (outcome == "failed").then_some("unavailable"),
            duration: Duration::from_millis(1),
        }
    }

    fn request<'a>(
        status: u16,
        ms: u64,
        attempts: &'a [AttemptObservation<'a>],
    ) -> RequestObservation<'a> {
        RequestObservation {
            route: "chat",
            provider: Some("mock"),
            target: attempts.last().map(|a| a.target),
            status,
            stream: false,
            key: None,
            duration: Duration::from_millis(ms),
            time_to_first_chunk: None,
            continuations: 0,
            cache: None,
            attempts,
            input_tokens: None,
            output_tokens: None,
            spend_micro_usd: 0,
            error_type: None,
        }
    }

    fn history() -> (Arc<ManualClock>, History) {
        let clock = Arc::new(ManualClock::at(START));
        let history = History::with_clock(clock.clone());
        (clock, history)
    }

    #[test]
    fn requests_errors_rate_limits_and_failovers_are_counted_apart() {
        let (_, history) = history();
        let served = [attempt("a/m", "served")];
        let failed_over = [attempt("a/m", "failed"), attempt("b/m", "served")];
        let retried = [attempt("a/m", "failed"), attempt("a/m", "served")];
        let failed = [attempt("a/m", "failed")];
        history.request(&request(200, 10, &served));
        history.request(&request(200, 10, &failed_over));
        history.request(&request(200, 10, &retried));
        history.request(&request(503, 10, &failed));
        history.request(&request(429, 10, &[]));
        history.request(&request(400, 10, &[]));
        let snapshot = history.snapshot();
        assert_eq!(snapshot.buckets.len(), 1);
        let bucket = &snapshot.buckets[0];
        assert_eq!(bucket.start, START);
        assert_eq!(bucket.requests, 6);
        assert_eq!(bucket.server_errors, 1);
        assert_eq!(bucket.rate_limited, 1);
        assert_eq!(bucket.client_errors, 1);
        // A retry on the same target is not a failover.
        assert_eq!(bucket.failovers, 1);
        assert_eq!(bucket.target_failures, vec![("a/m".to_owned(), 3)]);
    }

    #[test]
    fn time_moves_requests_into_new_buckets_and_an_hour_later_out() {
        let (clock, history) = history();
        history.request(&request(200, 1, &[]));
        clock.advance(BUCKET);
        history.request(&request(200, 1, &[]));
        history.request(&request(200, 1, &[]));
        let buckets = history.snapshot().buckets;
        assert_eq!(
            buckets.iter().map(|b| b.requests).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(buckets[1].start, START + BUCKET);

        // An hour after the first bucket it is gone; the second is the oldest kept.
        clock.set(START + BUCKET * BUCKETS as u32);
        let buckets = history.snapshot().buckets;
        assert_eq!(buckets.len(), 1);
        assert_eq!(buckets[0].start, START + BUCKET);

        // A request landing on the first bucket's slot recycles it: the old counts are gone.
        history.request(&request(503, 1, &[attempt("a/m", "failed")]));
        let buckets = history.snapshot().buckets;
        assert_eq!(buckets.len(), 2);
        let newest = &buckets[1];
        assert_eq!(newest.start, START + BUCKET * BUCKETS as u32);
        assert_eq!((newest.requests, newest.server_errors), (1, 1));
        assert_eq!(newest.target_failures, vec![("a/m".to_owned(), 1)]);
    }

    #[test]
    fn a_clock_gone_back_does_not_write_into_a_later_bucket() {
        let (clock, history) = history();
        clock.set(START + BUCKET * BUCKETS as u32);
        history.request(&request(200, 1, &[]));
        // The same slot, an hour earlier: not counted over the newer bucket.
        clock.set(START);
        history.request(&request(200, 1, &[]));
        clock.set(START + BUCKET * BUCKETS as u32);
        assert_eq!(history.snapshot().buckets[0].requests, 1);
    }

    #[test]
    fn quantiles_come_from_the_histogram() {
        let (_, history) = history();
        // 90 fast requests (~3 ms bucket: 2.5-5 ms) and 10 slow ones (~800 ms: 500-1000 ms).
        for _ in 0..90 {
            history.request(&request(200, 3, &[]));
        }
        for _ in 0..10 {
            history.request(&request(200, 800, &[]));
        }
        let bucket = &history.snapshot().buckets[0];
        let p50 = bucket.latency_p50.unwrap().as_secs_f64() * 1000.0;
        let p95 = bucket.latency_p95.unwrap().as_secs_f64() * 1000.0;
        assert!((2.5..=5.0).contains(&p50), "{p50}");
        assert!((500.0..=1000.0).contains(&p95), "{p95}");
        // Half the slow bucket's count is below the 95th rank: interpolated to its middle.
        assert!((p95 - 750.0).abs() < 1e-6, "{p95}");
    }

    #[test]
    fn the_slowest_bucket_answers_its_lower_bound() {
        let mut counts = [0u64; LATENCY_SLOTS];
        counts[LATENCY_SLOTS - 1] = 3;
        assert_eq!(quantile(&counts, 0.5), Some(Duration::from_secs(60)));
        assert_eq!(quantile(&[0; LATENCY_SLOTS], 0.5), None);
        assert_eq!(latency_slot(Duration::from_secs(3600)), LATENCY_SLOTS - 1);
        assert_eq!(latency_slot(Duration::ZERO), 0);
    }

    #[test]
    fn failures_of_too_many_targets_are_counted_together() {
        let (_, history) = history();
        let labels: Vec<String> = (0..MAX_TARGETS_PER_BUCKET + 5)
            .map(|i| format!("p/m{i}"))
            .collect();
        for label in &labels {
            history.request(&request(503, 1, &[attempt(label, "failed")]));
        }
        let failures = &history.snapshot().buckets[0].target_failures;
        assert_eq!(failures.len(), MAX_TARGETS_PER_BUCKET + 1);
        assert!(failures.contains(&(OTHER_TARGETS.to_owned(), 5)));
    }

    #[test]
    fn concurrent_requests_are_all_counted() {
        let (_, history) = history();
        // The bucket is taken before the threads race (a request meeting its clearing is not
        // counted, by design).
        history.request(&request(200, 5, &[]));
        let history = Arc::new(history);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let history = Arc::clone(&history);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        history.request(&request(200, 5, &[]));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(history.snapshot().buckets[0].requests, 4001);
    }
}
