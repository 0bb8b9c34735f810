//! What the engine remembers about each target between requests: its rate-limit cooldown, its
//! circuit breaker, whether its credential was rejected, its recent latency, and counters.
//!
//! One [`Health`] per target label (`provider/model`), shared by every route that names the
//! target. The per-request path reads and writes a handful of atomics; the mutex guards only
//! what failures write (the last error, the rate-limit streak), so a healthy target never takes
//! it.
//!
//! The circuit breaker:
//!
//! ```text
//!            N consecutive failures                cooldown elapsed, one request admitted
//!  Closed ───────────────────────────▶ Open ─────────────────────────────────────▶ HalfOpen
//!    ▲                                  ▲                                              │
//!    │            probe succeeded       │                probe failed                  │
//!    └──────────────────────────────────┼──────────────────────────────────────────────┤
//!                                       └──────────────────────────────────────────────┘
//! ```
//!
//! Each target also keeps its last [`RECENT_FAILURES`] failures (time, class, status, a short
//! message), for the dashboard: a bounded ring, written only by failures.
//!
//! A rejected credential opens the breaker at once, for the (long) misconfiguration cooldown.
//! A rate limit does not count towards the breaker: the target answered, it only asked us to
//! wait, which is the separate cooldown.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::{Failure, FailureClass};

/// Engine-wide settings for cooldowns and breakers (the config's `[failover]`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    /// Consecutive failures that open a breaker.
    pub breaker_failures: u32,
    /// How long an open breaker stays open before a probe.
    pub breaker_cooldown: Duration,
    /// How long a target whose credential was rejected stays out.
    pub misconfigured_cooldown: Duration,
    /// First cooldown after a 429 that named no delay; doubles per consecutive 429.
    pub rate_limit_backoff: Duration,
    /// Cap of that backoff.
    pub rate_limit_backoff_max: Duration,
    /// Pause before a retry on the same target (jittered by the engine).
    pub retry_delay: Duration,
}

impl Default for HealthSettings {
    fn default() -> HealthSettings {
        HealthSettings {
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            misconfigured_cooldown: Duration::from_secs(300),
            rate_limit_backoff: Duration::from_secs(1),
            rate_limit_backoff_max: Duration::from_secs(60),
            retry_delay: Duration::from_millis(50),
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; failures are counted.
    Closed,
    /// Requests skip the target until the cooldown ends.
    Open,
    /// One probe request is in flight; the others skip the target.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn from_u8(value: u8) -> BreakerState {
        match value {
            OPEN => BreakerState::Open,
            HALF_OPEN => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Whether a request may use the target now.
#[derive(Debug)]
pub enum Admission<'a> {
    /// Go ahead.
    Admit,
    /// Go ahead as the breaker's half-open probe: report the outcome through the guard's
    /// health (any `record_*` resolves it); dropping it unresolved re-opens the breaker for an
    /// immediate new probe.
    Probe(ProbeGuard<'a>),
    /// Skip: the target asked us to wait (rate limit) for this much longer.
    Cooling(Duration),
    /// Skip: the breaker is open for this much longer (or a probe is in flight: zero).
    Open(Duration),
}

/// The right to be a breaker's one half-open probe.
#[derive(Debug)]
pub struct ProbeGuard<'a> {
    health: &'a Health,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        // Resolved probes moved the state away from HalfOpen already; an abandoned one (its
        // request cancelled) must not leave the target half-open, with no probe, forever.
        if self
            .health
            .state
            .compare_exchange(HALF_OPEN, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.health.open_until_ms.store(0, Ordering::Release);
        }
    }
}

/// The failure classes, in a fixed order, for per-class counters.
const CLASSES: [FailureClass; 13] = [
    FailureClass::RateLimited,
    FailureClass::Unavailable,
    FailureClass::Timeout,
    FailureClass::Connect,
    FailureClass::ContextLengthExceeded,
    FailureClass::InvalidRequest,
    FailureClass::ContentFiltered,
    FailureClass::Unauthorized,
    FailureClass::NoCredit,
    FailureClass::BadResponse,
    FailureClass::PluginFault,
    FailureClass::RequestFault,
    FailureClass::Overloaded,
];

fn class_index(class: FailureClass) -> usize {
    CLASSES.iter().position(|c| *c == class).unwrap_or(0)
}

/// Weight of the newest latency sample in the moving average.
const EWMA_ALPHA: f64 = 0.3;

/// The longest last error a target keeps (longer ones are cut, with `…`). It is upstream text,
/// which may echo the client's request, and every remembered target keeps one: the cap makes a
/// target's memory (and its `/admin/targets` entry) a bounded size, whatever upstreams say.
pub const MAX_LAST_ERROR_BYTES: usize = 1024;

/// Failures a target remembers for the dashboard's list (the newest first).
pub const RECENT_FAILURES: usize = 10;
/// The longest message a recent failure keeps: a line of a list, not the whole story (that is
/// the last error's).
pub const MAX_RECENT_MESSAGE_BYTES: usize = 200;

/// One failure of the recent ones, as kept.
#[derive(Debug)]
struct Recent {
    at: Instant,
    /// The wall-clock time, for display.
    unix_time: Duration,
    class: &'static str,
    status: Option<u16>,
    message: String,
}

/// One of a target's recent failures, as a snapshot shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentFailure {
    /// How long ago it happened.
    pub age: Duration,
    /// When it happened, since the Unix epoch.
    pub unix_time: Duration,
    /// The failure's class (`unavailable`, `timeout`, …).
    pub class: &'static str,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
    /// The start of the (already scrubbed) message, at most [`MAX_RECENT_MESSAGE_BYTES`].
    pub message: String,
}

/// What failures write, behind the mutex.
#[derive(Debug, Default)]
struct Detail {
    last_error: Option<(Instant, String)>,
    /// The last [`RECENT_FAILURES`] failures, the oldest first.
    recent: VecDeque<Recent>,
    /// Consecutive 429s, for the backoff when the upstream names no delay.
    rate_limit_streak: u32,
    misconfigured: bool,
}

/// One target's shared state. Times are kept as milliseconds since `base` so they fit atomics.
#[derive(Debug)]
pub struct Health {
    base: Instant,
    settings: HealthSettingsRef,
    state: AtomicU8,
    /// End of the breaker's open period, in ms since `base`.
    open_until_ms: AtomicU64,
    /// End of the rate-limit cooldown, in ms since `base`.
    cooling_until_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Moving average of served latencies in µs, as `f64` bits; 0 before the first sample.
    latency_ewma_bits: AtomicU64,
    served: AtomicU64,
    failed: [AtomicU64; CLASSES.len()],
    detail: Mutex<Detail>,
}

type HealthSettingsRef = std::sync::Arc<HealthSettings>;

/// A point-in-time view of a target's health, for `GET /admin/targets`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    pub state: BreakerState,
    pub misconfigured: bool,
    pub consecutive_failures: u32,
    /// Rate-limit cooldown left.
    pub cooling_for: Duration,
    /// Open breaker period left.
    pub open_for: Duration,
    pub latency_ewma: Option<Duration>,
    pub served: u64,
    /// Failed attempts by class name (only classes that occurred).
    pub failed: Vec<(&'static str, u64)>,
    /// The last failure and how long ago it happened.
    pub last_error: Option<(Duration, String)>,
    /// The last [`RECENT_FAILURES`] failures, the newest first.
    pub recent_failures: Vec<RecentFailure>,
}

/// The failure as a target remembers it: at most [`MAX_LAST_ERROR_BYTES`].
fn last_error(failure: &Failure) -> String {
    cut(failure.to_string(), MAX_LAST_ERROR_BYTES)
}

/// `text` in at most `max` bytes, cut at a character boundary and marked with `…` if cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        text.truncate(floor_boundary(&text, max - '…'.len_utf8()));
        text.push('…');
    }
    text
}

/// The largest character boundary of `text` at or below `max`.
fn floor_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

impl Health {
    pub fn new(settings: HealthSettingsRef) -> Health {
        Health {
            base: Instant::now(),
            settings,
            state: AtomicU8::new(CLOSED),
            open_until_ms: AtomicU64::new(0),
            cooling_until_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            latency_ewma_bits: AtomicU64::new(0),
            served: AtomicU64::new(0),
            failed: Default::default(),
            detail: Mutex::new(Detail::default()),
        }
    }

    pub fn settings(&self) -> &HealthSettings {
        &self.settings
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn remaining(until_ms: u64, now_ms: u64) -> Duration {
        Duration::from_millis(until_ms.saturating_sub(now_ms))
    }

    fn detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        // A panic while holding the lock cannot leave `Detail` inconsistent (plain fields).
        match self.detail.lock() {
            Ok(detail) => detail,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// May a request use this target now?
    pub fn admit(&self) -> Admission<'_> {
        let now = self.now_ms();
        match self.state.load(Ordering::Acquire) {
            CLOSED => {}
            OPEN => {
                let until = self.open_until_ms.load(Ordering::Acquire);
                if until > now {
                    return Admission::Open(Self::remaining(until, now));
                }
                // Cooldown over: exactly one request becomes the probe.
                if self
                    .state
                    .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return Admission::Open(Duration::ZERO);
                }
                return Admission::Probe(ProbeGuard { health: self });
            }
            _ => return Admission::Open(Duration::ZERO),
        }
        let cooling = self.cooling_until_ms.load(Ordering::Acquire);
        if cooling > now {
            return Admission::Cooling(Self::remaining(cooling, now));
        }
        Admission::Admit
    }

    /// The target served a request in `latency`.
    pub fn record_success(&self, latency: Duration) {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.answered();
        // Lossy under concurrent updates (one sample may overwrite another): a moving average
        // does not need every sample, and a CAS loop would contend on every request.
        let sample = latency.as_secs_f64() * 1e6;
        let previous = f64::from_bits(self.latency_ewma_bits.load(Ordering::Relaxed));
        let next = if previous == 0.0 {
            sample
        } else {
            previous + EWMA_ALPHA * (sample - previous)
        };
        self.latency_ewma_bits
            .store(next.max(f64::MIN_POSITIVE).to_bits(), Ordering::Relaxed);
    }

    /// The target answered (served, or refused the request for a reason of the request's own):
    /// the breaker closes and the failure streak ends.
    fn answered(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.state.load(Ordering::Acquire) != CLOSED {
            self.state.store(CLOSED, Ordering::Release);
            self.detail().misconfigured = false;
        }
    }

    /// An attempt on the target failed. `jitter` in `[0, 1)` spreads backoffs.
    pub fn record_failure(&self, failure: &Failure, jitter: f64) {
        if !failure.class.counts_against_target() {
            return;
        }
        self.failed[class_index(failure.class)].fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let mut detail = self.detail();
        let at = Instant::now();
        detail.last_error = Some((at, last_error(failure)));
        if detail.recent.len() == RECENT_FAILURES {
            detail.recent.pop_front();
        }
        // The message alone (the class is its own field), cut before it is copied.
        let message = &failure.message;
        let mut short = if message.len() > MAX_RECENT_MESSAGE_BYTES {
            let end = floor_boundary(message, MAX_RECENT_MESSAGE_BYTES - '…'.len_utf8());
            format!("{}…", &message[..end])
        } else {
            message.clone()
        };
        short.shrink_to_fit();
        detail.recent.push_back(Recent {
            at,
            unix_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            class: failure.class.as_str(),
            status: failure.status,
            message: short,
        });
        match failure.class {
            FailureClass::RateLimited => {
                detail.rate_limit_streak = detail.rate_limit_streak.saturating_add(1);
                let wait = match failure.retry_after {
                    Some(wait) => wait,
                    None => self.backoff(detail.rate_limit_streak, jitter),
                };
                drop(detail);
                let until = now.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(0));
                self.cooling_until_ms.fetch_max(until, Ordering::AcqRel);
                // A 429 is an answer: the target is up.
                self.answered();
            }
            // Neither a rejected key nor an empty account heals by itself: out for the long
            // cooldown, flagged for the operator.
            FailureClass::Unauthorized | FailureClass::NoCredit => {
                detail.misconfigured = true;
                drop(detail);
                self.open(now, self.settings.misconfigured_cooldown);
            }
            FailureClass::ContextLengthExceeded
            | FailureClass::InvalidRequest
            | FailureClass::ContentFiltered => {
                drop(detail);
                self.answered();
            }
            // Returned above: neither says anything about the target.
            FailureClass::RequestFault | FailureClass::Overloaded => {}
            FailureClass::Unavailable
            | FailureClass::Timeout
            | FailureClass::Connect
            | FailureClass::BadResponse
            | FailureClass::PluginFault => {
                drop(detail);
                let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
                let state = self.state.load(Ordering::Acquire);
                if state == HALF_OPEN || failures >= self.settings.breaker_failures {
                    self.open(now, self.settings.breaker_cooldown);
                }
            }
        }
        if failure.class != FailureClass::RateLimited {
            self.detail().rate_limit_streak = 0;
        }
    }

    fn open(&self, now_ms: u64, cooldown: Duration) {
        let until = now_ms.saturating_add(u64::try_from(cooldown.as_millis()).unwrap_or(0));
        self.open_until_ms.store(until, Ordering::Release);
        self.state.store(OPEN, Ordering::Release);
    }

    /// Exponential backoff with "equal jitter": half of the doubled delay fixed, half random,
    /// so clients that were limited together do not come back together.
    fn backoff(&self, streak: u32, jitter: f64) -> Duration {
        let base = self.settings.rate_limit_backoff;
        let doubled = base.saturating_mul(1u32 << streak.saturating_sub(1).min(20));
        let capped = doubled.min(self.settings.rate_limit_backoff_max);
        capped / 2 + capped.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let now = self.now_ms();
        let detail = self.detail();
        let state = BreakerState::from_u8(self.state.load(Ordering::Acquire));
        HealthSnapshot {
            state,
            misconfigured: detail.misconfigured,
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            cooling_for: Self::remaining(self.cooling_until_ms.load(Ordering::Acquire), now),
            open_for: match state {
                BreakerState::Open => {
                    Self::remaining(self.open_until_ms.load(Ordering::Acquire), now)
                }
                BreakerState::Closed | BreakerState::HalfOpen => Duration::ZERO,
            },
            latency_ewma: self.latency_ewma(),
            served: self.served.load(Ordering::Relaxed),
            failed: CLASSES
                .iter()
                .zip(&self.failed)
                .map(|(class, count)| (class.as_str(), count.load(Ordering::Relaxed)))
                .filter(|(_, count)| *count > 0)
                .collect(),
            last_error: detail
                .last_error
                .as_ref()
                .map(|(at, message)| (at.elapsed(), message.clone())),
            recent_failures: detail
                .recent
                .iter()
                .rev()
                .map(|recent| RecentFailure {
                    age: recent.at.elapsed(),
                    unix_time: recent.unix_time,
                    class: recent.class,
                    status: recent.status,
                    message: recent.message.clone(),
                })
                .collect(),
        }
    }

    /// The moving average of served latencies, if any request was served.
    pub fn latency_ewma(&self) -> Option<Duration> {
        let ewma = f64::from_bits(self.latency_ewma_bits.load(Ordering::Relaxed));
        (ewma > 0.0).then(|| Duration::from_secs_f64(ewma / 1e6))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::Arc;

    fn health(breaker_failures: u32) -> Health {
        Health::new(Arc::new(HealthSettings {
            breaker_failures,
            breaker_cooldown: Duration::from_secs(10),
            misconfigured_cooldown: Duration::from_secs(300),
            rate_limit_backoff: Duration::from_secs(1),
            rate_limit_backoff_max: Duration::from_secs(8),
            retry_delay: Duration::ZERO,
        }))
    }

    fn failure(class: FailureClass) -> Failure {
        Failure::new(class, "boom")
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_after_n_consecutive_failures_then_probes_once_and_closes() {
        let h = health(3);
        for _ in 0..2 {
            h.record_failure(&failure(FailureClass::Unavailable), 0.0);
            assert!(matches!(h.admit(), Admission::Admit));
        }
        h.record_failure(&failure(FailureClass::Timeout), 0.0);
        assert_eq!(h.snapshot().state, BreakerState::Open);
        assert!(matches!(h.admit(), Admission::Open(d) if d == Duration::from_secs(10)));

        tokio::time::advance(Duration::from_secs(10)).await;
        let Admission::Probe(probe) = h.admit() else {
            panic!("expected the probe");
        };
        // Only one probe at a time.
        assert!(matches!(h.admit(), Admission::Open(d) if d.is_zero()));
        assert_eq!(h.snapshot().state, BreakerState::HalfOpen);
        h.record_success(Duration::from_millis(5));
        drop(probe);
        assert_eq!(h.snapshot().state, BreakerState::Closed);
        assert_eq!(h.snapshot().consecutive_failures, 0);
        assert!(matches!(h.admit(), Admission::Admit));
    }

    #[tokio::test(start_paused = true)]
    async fn the_requests_own_faults_and_the_gateways_limits_leave_the_target_alone() {
        let h = health(2);
        h.record_failure(&failure(FailureClass::Unavailable), 0.0);
        for _ in 0..10 {
            h.record_failure(&failure(FailureClass::RequestFault), 0.0);
            h.record_failure(&failure(FailureClass::Overloaded), 0.0);
        }
        let snapshot = h.snapshot();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.consecutive_failures, 1);
        assert!(snapshot.last_error.unwrap().1.starts_with("unavailable"));
        assert!(matches!(h.admit(), Admission::Admit));
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_error_is_kept_to_a_bounded_size() {
        let h = health(100);
        // Upstream text echoing a huge request, with a multi-byte character at the cut.
        let echoed = format!("bad request: {}", "é".repeat(1 << 20));
        h.record_failure(&Failure::new(FailureClass::Unavailable, echoed), 0.0);
        let (_, kept) = h.snapshot().last_error.unwrap();
        assert!(kept.len() <= MAX_LAST_ERROR_BYTES, "{}", kept.len());
        assert!(kept.starts_with("unavailable: bad request: éé"), "{kept}");
        assert!(kept.ends_with('…'));
        h.record_failure(&Failure::new(FailureClass::Unavailable, "short"), 0.0);
        assert_eq!(h.snapshot().last_error.unwrap().1, "unavailable: short");
    }

    #[tokio::test(start_paused = true)]
    async fn the_recent_failures_are_a_bounded_ring_newest_first() {
        let h = health(1000);
        for i in 0..RECENT_FAILURES + 3 {
            h.record_failure(
                &Failure::new(FailureClass::Unavailable, format!("failure {i}")).with_status(503),
                0.0,
            );
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // Neither counted against the target nor remembered.
        h.record_failure(&failure(FailureClass::Overloaded), 0.0);
        h.record_failure(&Failure::new(FailureClass::Timeout, "é".repeat(1000)), 0.0);
        let recent = h.snapshot().recent_failures;
        assert_eq!(recent.len(), RECENT_FAILURES);
        assert_eq!(recent[0].class, "timeout");
        assert_eq!(recent[0].status, None);
        assert!(recent[0].message.len() <= MAX_RECENT_MESSAGE_BYTES);
        assert!(recent[0].message.ends_with('…'), "{}", recent[0].message);
        assert_eq!(
            recent[1].message,
            format!("failure {}", RECENT_FAILURES + 2)
        );
        assert_eq!(recent[1].status, Some(503));
        assert_eq!(recent[1].age, Duration::from_secs(1));
        // The oldest kept: the first four were pushed out by the later ones.
        assert_eq!(recent[RECENT_FAILURES - 1].message, "failure 4");
        assert!(recent[1].unix_time > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_a_full_cooldown() {
        let h = health(1);
        h.record_failure(&failure(FailureClass::Connect), 0.0);
        tokio::time::advance(Duration::from_secs(10)).await;
        let Admission::Probe(probe) = h.admit() else {
            panic!("expected the probe");
        };
        h.record_failure(&failure(FailureClass::Unavailable), 0.0);
        drop(probe);
        assert_eq!(h.snapshot().state, BreakerState::Open);
        assert!(matches!(h.admit(), Admission::Open(d) if d == Duration::from_secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_lets_the_next_request_probe_at_once() {
        let h = health(1);
        h.record_failure(&failure(FailureClass::Connect), 0.0);
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = h.admit();
        assert!(matches!(probe, Admission::Probe(_)));
        drop(probe);
        assert!(matches!(h.admit(), Admission::Probe(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_failure_streak() {
        let h = health(2);
        h.record_failure(&failure(FailureClass::Unavailable), 0.0);
        h.record_success(Duration::from_millis(1));
        h.record_failure(&failure(FailureClass::Unavailable), 0.0);
        assert_eq!(h.snapshot().state, BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_cool_down_for_the_named_delay_without_touching_the_breaker() {
        let h = health(1);
        h.record_failure(
            &failure(FailureClass::RateLimited).with_retry_after(Some(Duration::from_secs(7))),
            0.0,
        );
        assert_eq!(h.snapshot().state, BreakerState::Closed);
        assert!(matches!(h.admit(), Admission::Cooling(d) if d == Duration::from_secs(7)));
        tokio::time::advance(Duration::from_secs(7)).await;
        assert!(matches!(h.admit(), Admission::Admit));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_without_a_delay_back_off_exponentially_with_jitter_up_to_the_cap() {
        let h = health(1);
        let limited = failure(FailureClass::RateLimited);
        let mut waits = Vec::new();
        for jitter in [0.0, 0.0, 0.999, 0.0, 0.0, 0.0] {
            h.record_failure(&limited, jitter);
            waits.push(h.snapshot().cooling_for);
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        // 1 s, 2 s, 4 s (nearly all of it with jitter ~1), 8 s, then capped at 8 s; half fixed.
        assert_eq!(waits[0], Duration::from_millis(500));
        assert_eq!(waits[1], Duration::from_millis(1000));
        assert!(waits[2] > Duration::from_millis(3990) && waits[2] <= Duration::from_secs(4));
        assert_eq!(waits[3], Duration::from_secs(4));
        assert_eq!(waits[4], Duration::from_secs(4));
        assert_eq!(waits[5], Duration::from_secs(4));
        // Any other outcome ends the streak.
        h.record_failure(&failure(FailureClass::Unavailable), 0.0);
        h.record_failure(&limited, 0.0);
        assert_eq!(h.snapshot().cooling_for, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_credential_marks_the_target_misconfigured_for_the_long_cooldown() {
        let h = health(5);
        h.record_failure(&failure(FailureClass::Unauthorized), 0.0);
        let snapshot = h.snapshot();
        assert!(snapshot.misconfigured);
        assert_eq!(snapshot.state, BreakerState::Open);
        assert_eq!(snapshot.open_for, Duration::from_secs(300));
        assert_eq!(snapshot.failed, vec![("unauthorized", 1)]);
        assert!(snapshot.last_error.unwrap().1.contains("boom"));
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_do_not_count_towards_the_breaker() {
        let h = health(1);
        for class in [
            FailureClass::InvalidRequest,
            FailureClass::ContentFiltered,
            FailureClass::ContextLengthExceeded,
        ] {
            h.record_failure(&failure(class), 0.0);
            assert_eq!(h.snapshot().state, BreakerState::Closed, "{class:?}");
        }
    }

    #[test]
    fn latency_is_a_moving_average() {
        let h = health(1);
        assert_eq!(h.latency_ewma(), None);
        h.record_success(Duration::from_millis(100));
        h.record_success(Duration::from_millis(200));
        let ewma = h.latency_ewma().unwrap().as_secs_f64() * 1000.0;
        assert!((ewma - 130.0).abs() < 0.01, "{ewma}");
        assert_eq!(h.snapshot().served, 2);
    }
}
