//! The walk over a route for one request: admit targets (skipping those cooling down after a
//! rate limit or behind an open breaker), attempt them in the route's order within their time
//! limits, act on each failure as [`FailureClass::action`] says, optionally hedge a slow attempt
//! with the next target, and report every attempt and skip.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::health::{Admission, ProbeGuard};
use crate::route::{Rng, Route, RouteEntry, Timeouts};
use crate::{Action, Failure, FailureClass};

/// Something that can try one target. The server implements it with the plugin runtime and the
/// HTTP client; tests implement it with fakes. The future resolves when the attempt is
/// *committed*: a whole answer, or a stream's first chunk.
pub trait Upstream {
    type Target;
    type Output;

    fn attempt(
        &self,
        target: &Self::Target,
        timeouts: &Timeouts,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send;
}

/// What the engine needs to know about the request itself.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// A stream commits at its first chunk, bounded by `first_byte`; a whole answer by `total`.
    pub stream: bool,
    /// Seeds the weighted order and the jitter of delays.
    pub seed: u64,
    /// Route entries not to use (a stream being continued excludes the target that broke).
    pub exclude: Vec<usize>,
    /// What this request is estimated to cost on each route entry (by index; `None`:
    /// unknown), in any one unit: the cost strategy orders by it. Empty for other strategies.
    pub costs: Vec<Option<u128>>,
}

/// Why an attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// The target's first attempt in this request.
    First,
    /// Again on the same target after a transient failure.
    Retry,
    /// Raced against a slow attempt on another target.
    Hedge,
}

impl AttemptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptKind::First => "first",
            AttemptKind::Retry => "retry",
            AttemptKind::Hedge => "hedge",
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Served,
    Failed(Failure),
    /// Lost a hedge race: another attempt answered first and this one was dropped.
    Cancelled,
}

/// One try of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Index of the target in the route.
    pub target: usize,
    pub kind: AttemptKind,
    /// When the attempt started, from the start of the request.
    pub at: Duration,
    pub latency: Duration,
    pub outcome: Outcome,
}

impl Attempt {
    pub fn failure(&self) -> Option<&Failure> {
        match &self.outcome {
            Outcome::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// Why a target was not tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Cooling down after a rate limit, for this much longer.
    Cooling(Duration),
    /// Its breaker is open for this much longer (zero: a probe is in flight).
    Open(Duration),
    /// The prompt did not fit a target at least as large.
    ContextWindow,
    /// The request excluded it.
    Excluded,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Cooling(_) => "cooling",
            SkipReason::Open(_) => "circuit_open",
            SkipReason::ContextWindow => "context_window",
            SkipReason::Excluded => "excluded",
        }
    }
}

/// A target the walk passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    pub target: usize,
    pub reason: SkipReason,
}

/// The request was served.
#[derive(Debug)]
pub struct Served<O> {
    pub output: O,
    /// Index of the target that served.
    pub target: usize,
    /// Every attempt, in the order they ended.
    pub attempts: Vec<Attempt>,
    pub skipped: Vec<Skip>,
    /// When the walk began: the origin of every attempt's `at`.
    pub started: Instant,
}

/// No target served the request.
#[derive(Debug, Default)]
pub struct Exhausted {
    /// Every attempt, in the order they ended; each carries its failure.
    pub attempts: Vec<Attempt>,
    pub skipped: Vec<Skip>,
}

impl Exhausted {
    /// The failure the client should hear about: the one that stopped the walk, else the last.
    pub fn decisive(&self) -> Option<&Failure> {
        self.attempts.iter().rev().find_map(Attempt::failure)
    }

    /// When no attempt could be made because every target is cooling down or behind an open
    /// breaker: the soonest one is back, and whether all of them were cooling (a rate limit)
    /// rather than broken.
    pub fn unavailable_for(&self) -> Option<(Duration, bool)> {
        if !self.attempts.is_empty() || self.skipped.is_empty() {
            return None;
        }
        let mut soonest: Option<Duration> = None;
        let mut all_cooling = true;
        for skip in &self.skipped {
            let wait = match skip.reason {
                SkipReason::Cooling(wait) => wait,
                SkipReason::Open(wait) => {
                    all_cooling = false;
                    wait
                }
                SkipReason::ContextWindow | SkipReason::Excluded => continue,
            };
            soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
        }
        soonest.map(|wait| (wait, all_cooling))
    }
}

/// Walks `route` for one request until a target serves or none can.
pub async fn serve<U>(
    upstream: &U,
    route: &Route<U::Target>,
    request: &Request,
) -> Result<Served<U::Output>, Exhausted>
where
    U: Upstream + Sync,
    U::Target: Sync,
{
    route.policy.retry_budget.deposit();
    let mut walk = Walk::new(route, request);
    match route.policy.hedge_after {
        None => walk_in_turn(&mut walk, upstream).await,
        Some(after) => walk_hedged(&mut walk, upstream, after).await,
    }
}

/// One attempt at a time (no hedging): no boxing, no timers beyond the attempt's own.
async fn walk_in_turn<'r, U>(
    walk: &mut Walk<'r, U::Target>,
    upstream: &U,
) -> Result<Served<U::Output>, Exhausted>
where
    U: Upstream + Sync,
    U::Target: Sync,
{
    let mut next = walk.next_candidate();
    while let Some(candidate) = next.take() {
        let started = Instant::now();
        let result = walk.run(upstream, candidate.index).await;
        match walk.settle(candidate, started, result) {
            Settled::Served(output, target) => return Ok(walk.served(output, target)),
            Settled::Stop => break,
            Settled::Retry(candidate) => {
                walk.pause_before_retry().await;
                next = Some(candidate);
            }
            Settled::Next => next = walk.next_candidate(),
        }
    }
    Err(walk.exhausted())
}

type Pending<'a, O> = Pin<Box<dyn Future<Output = Result<O, Failure>> + Send + 'a>>;

/// An attempt in flight in a hedged walk.
struct InFlight<'r, 'a, O> {
    candidate: Candidate<'r>,
    started: Instant,
    future: Pending<'a, O>,
}

/// At most two attempts at a time: when the current one has not committed `after` its start,
/// the next target is started beside it and the first to commit wins; the other is dropped,
/// which cancels its upstream request. A failed attempt's retry (after its pause) takes a free
/// slot; when the main attempt fails while its hedge runs, the hedge becomes the main attempt
/// (and is not hedged again).
async fn walk_hedged<'r, U>(
    walk: &mut Walk<'r, U::Target>,
    upstream: &U,
    after: Duration,
) -> Result<Served<U::Output>, Exhausted>
where
    U: Upstream + Sync,
    U::Target: Sync,
{
    let launch = |walk: &Walk<'r, U::Target>, candidate: Candidate<'r>| {
        let future: Pending<'_, U::Output> = Box::pin(walk.run(upstream, candidate.index));
        InFlight {
            candidate,
            started: Instant::now(),
            future,
        }
    };
    let mut main: Option<InFlight<'r, '_, U::Output>> = None;
    let mut hedge: Option<InFlight<'r, '_, U::Output>> = None;
    // Whether the attempt in `main` has been hedged already.
    let mut hedged = false;
    // A retry waiting for its pause to end.
    let mut retry: Option<(Candidate<'r>, Instant)> = None;
    loop {
        if hedge.is_some() && main.is_none() {
            main = hedge.take();
            hedged = true;
        }
        if main.is_none() && retry.is_none() {
            match walk.next_candidate() {
                Some(candidate) => {
                    main = Some(launch(walk, candidate));
                    hedged = false;
                }
                None => return Err(walk.exhausted()),
            }
        }
        let hedge_at = match (&main, &hedge, &retry) {
            (Some(m), None, None) if !hedged => Some(m.started + after),
            _ => None,
        };
        let retry_at = retry.as_ref().map(|(_, at)| *at);
        let (finished, result) = tokio::select! {
            result = poll_slot(&mut main) => (main.take(), result),
            result = poll_slot(&mut hedge) => (hedge.take(), result),
            () = sleep_until(hedge_at) => {
                hedged = true;
                if let Some(mut candidate) = walk.next_candidate() {
                    candidate.kind = AttemptKind::Hedge;
                    hedge = Some(launch(walk, candidate));
                }
                continue;
            }
            () = sleep_until(retry_at) => {
                if let Some((candidate, _)) = retry.take() {
                    let in_flight = Some(launch(walk, candidate));
                    if main.is_none() {
                        main = in_flight;
                        hedged = false;
                    } else {
                        hedge = in_flight;
                    }
                }
                continue;
            }
        };
        let Some(finished) = finished else { continue };
        match walk.settle(finished.candidate, finished.started, result) {
            Settled::Served(output, target) => {
                walk.cancel_all([main.take(), hedge.take()]);
                return Ok(walk.served(output, target));
            }
            Settled::Stop => {
                walk.cancel_all([main.take(), hedge.take()]);
                return Err(walk.exhausted());
            }
            Settled::Retry(candidate) => {
                let at = Instant::now() + walk.retry_pause();
                retry = Some((candidate, at));
            }
            Settled::Next => {}
        }
    }
}

async fn poll_slot<O>(slot: &mut Option<InFlight<'_, '_, O>>) -> Result<O, Failure> {
    match slot {
        Some(in_flight) => in_flight.future.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A target admitted for an attempt.
struct Candidate<'r> {
    index: usize,
    kind: AttemptKind,
    /// Held while this attempt is a breaker's half-open probe.
    probe: Option<ProbeGuard<'r>>,
}

/// What to do after an attempt ended.
enum Settled<'r, O> {
    Served(O, usize),
    /// A failure the client must hear about now.
    Stop,
    /// Try the same target again (after the retry pause).
    Retry(Candidate<'r>),
    Next,
}

/// The state of one request's walk over its route.
struct Walk<'r, T> {
    route: &'r Route<T>,
    request: &'r Request,
    started: Instant,
    rng: Rng,
    order: Vec<usize>,
    position: usize,
    attempts: Vec<Attempt>,
    skipped: Vec<Skip>,
    /// After a context-length failure: only targets with a window above this may serve
    /// (`Some(None)`: the failing target's window is unknown, so any other target may).
    larger_than: Option<Option<u32>>,
}

impl<'r, T: Sync> Walk<'r, T> {
    fn new(route: &'r Route<T>, request: &'r Request) -> Walk<'r, T> {
        let mut rng = Rng::new(request.seed);
        let order = route.order(&mut rng, &request.costs);
        Walk {
            route,
            request,
            started: Instant::now(),
            rng,
            order,
            position: 0,
            attempts: Vec::with_capacity(1),
            skipped: Vec::new(),
            larger_than: None,
        }
    }

    fn entry(&self, index: usize) -> &'r RouteEntry<T> {
        &self.route.entries[index]
    }

    /// The next target in order that may be tried now; the others are recorded as skipped.
    fn next_candidate(&mut self) -> Option<Candidate<'r>> {
        while let Some(&index) = self.order.get(self.position) {
            self.position += 1;
            let entry: &'r RouteEntry<T> = &self.route.entries[index];
            if self.request.exclude.contains(&index) {
                self.skip(index, SkipReason::Excluded);
                continue;
            }
            if let Some(larger_than) = self.larger_than
                && !fits(entry.context_window, larger_than)
            {
                self.skip(index, SkipReason::ContextWindow);
                continue;
            }
            let probe = match entry.health.admit() {
                Admission::Admit => None,
                Admission::Probe(guard) => Some(guard),
                Admission::Cooling(wait) => {
                    self.skip(index, SkipReason::Cooling(wait));
                    continue;
                }
                Admission::Open(wait) => {
                    self.skip(index, SkipReason::Open(wait));
                    continue;
                }
            };
            return Some(Candidate {
                index,
                kind: AttemptKind::First,
                probe,
            });
        }
        None
    }

    fn skip(&mut self, target: usize, reason: SkipReason) {
        self.skipped.push(Skip { target, reason });
    }

    /// One attempt within its time limit: a stream's first chunk by `first_byte`, a whole
    /// answer by `total`.
    fn run<'a, U>(
        &self,
        upstream: &'a U,
        index: usize,
    ) -> impl Future<Output = Result<U::Output, Failure>> + Send + 'a
    where
        U: Upstream<Target = T> + Sync,
        'r: 'a,
    {
        let entry: &'r RouteEntry<T> = &self.route.entries[index];
        let stream = self.request.stream;
        let limit = if stream {
            entry.timeouts.first_byte.min(entry.timeouts.total)
        } else {
            entry.timeouts.total
        };
        async move {
            match tokio::time::timeout(limit, upstream.attempt(&entry.target, &entry.timeouts))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(Failure::new(
                    FailureClass::Timeout,
                    if stream {
                        format!("no stream chunk within {} ms", limit.as_millis())
                    } else {
                        format!("no complete answer within {} ms", limit.as_millis())
                    },
                )),
            }
        }
    }

    /// Records an attempt's end in the request and in the target's health, and decides.
    fn settle<O>(
        &mut self,
        candidate: Candidate<'r>,
        started: Instant,
        result: Result<O, Failure>,
    ) -> Settled<'r, O> {
        let latency = started.elapsed();
        let at = started.saturating_duration_since(self.started);
        let index = candidate.index;
        let health = &self.entry(index).health;
        let failure = match result {
            Ok(output) => {
                health.record_success(latency);
                self.attempts.push(Attempt {
                    target: index,
                    kind: candidate.kind,
                    at,
                    latency,
                    outcome: Outcome::Served,
                });
                return Settled::Served(output, index);
            }
            Err(failure) => failure,
        };
        let jitter = self.rng.unit();
        health.record_failure(&failure, jitter);
        // The probe (if this was one) is resolved by the record above.
        drop(candidate.probe);
        let action = failure.class.action();
        let window = self.entry(index).context_window;
        self.attempts.push(Attempt {
            target: index,
            kind: candidate.kind,
            at,
            latency,
            outcome: Outcome::Failed(failure),
        });
        match action {
            Action::Answer => Settled::Stop,
            Action::FailOver => Settled::Next,
            Action::FailOverLarger => {
                // Keep the strictest bound seen: the largest known window that failed.
                self.larger_than = Some(match (self.larger_than.flatten(), window) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                });
                Settled::Next
            }
            Action::Retry => {
                // Only one attempt per target is in flight, so every retry of it already
                // ended (and is recorded) by the time this one is decided.
                let used = self
                    .attempts
                    .iter()
                    .filter(|a| a.target == index && a.kind == AttemptKind::Retry)
                    .count();
                if used >= self.route.policy.retries as usize
                    || !self.route.policy.retry_budget.withdraw()
                {
                    return Settled::Next;
                }
                // The failure may just have opened the breaker: then the target is out.
                match health.admit() {
                    Admission::Admit => Settled::Retry(Candidate {
                        index,
                        kind: AttemptKind::Retry,
                        probe: None,
                    }),
                    Admission::Probe(guard) => Settled::Retry(Candidate {
                        index,
                        kind: AttemptKind::Retry,
                        probe: Some(guard),
                    }),
                    Admission::Cooling(_) | Admission::Open(_) => Settled::Next,
                }
            }
        }
    }

    /// The jittered pause before a retry: half to one and a half times the configured delay.
    fn retry_pause(&mut self) -> Duration {
        let delay = self
            .route
            .entries
            .first()
            .map_or(Duration::ZERO, |entry| entry.health.settings().retry_delay);
        delay.mul_f64(0.5 + self.rng.unit())
    }

    async fn pause_before_retry(&mut self) {
        let pause = self.retry_pause();
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }

    /// Records the attempts still in flight as cancelled (dropping them cancels them).
    fn cancel_all<O, const N: usize>(&mut self, in_flight: [Option<InFlight<'r, '_, O>>; N]) {
        for other in in_flight.into_iter().flatten() {
            self.attempts.push(Attempt {
                target: other.candidate.index,
                kind: other.candidate.kind,
                at: other.started.saturating_duration_since(self.started),
                latency: other.started.elapsed(),
                outcome: Outcome::Cancelled,
            });
        }
    }

    fn served<O>(&mut self, output: O, target: usize) -> Served<O> {
        Served {
            output,
            target,
            attempts: std::mem::take(&mut self.attempts),
            skipped: std::mem::take(&mut self.skipped),
            started: self.started,
        }
    }

    fn exhausted(&mut self) -> Exhausted {
        Exhausted {
            attempts: std::mem::take(&mut self.attempts),
            skipped: std::mem::take(&mut self.skipped),
        }
    }
}

/// Whether a target of `window` may serve after a context-length failure on a target of
/// `failed` tokens (unknown windows cannot be compared: they may try).
fn fits(window: Option<u32>, failed: Option<u32>) -> bool {
    match (window, failed) {
        (Some(window), Some(failed)) => window > failed,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::health::{BreakerState, Health, HealthSettings};
    use crate::route::{Policy, RetryBudget, Strategy};
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    /// A fake upstream: each target answers from its script, one step per call, after the
    /// step's delay (the last step repeats). Calls are recorded with their (paused) times.
    struct Fake {
        scripts: Mutex<Vec<(&'static str, VecDeque<Step>)>>,
        calls: Mutex<Vec<(&'static str, Duration)>>,
        origin: Instant,
    }

    type Step = (u64, Result<&'static str, Failure>);

    impl Fake {
        fn new(scripts: Vec<(&'static str, Vec<Step>)>) -> Fake {
            Fake {
                scripts: Mutex::new(
                    scripts
                        .into_iter()
                        .map(|(name, steps)| (name, steps.into()))
                        .collect(),
                ),
                calls: Mutex::new(Vec::new()),
                origin: Instant::now(),
            }
        }

        fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().unwrap().iter().map(|(n, _)| *n).collect()
        }

        fn call_times(&self, name: &str) -> Vec<Duration> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, at)| *at)
                .collect()
        }
    }

    impl Upstream for Fake {
        type Target = &'static str;
        type Output = &'static str;

        async fn attempt(
            &self,
            target: &&'static str,
            _timeouts: &Timeouts,
        ) -> Result<&'static str, Failure> {
            self.calls
                .lock()
                .unwrap()
                .push((target, self.origin.elapsed()));
            let (delay, result) = {
                let mut scripts = self.scripts.lock().unwrap();
                let (_, steps) = scripts.iter_mut().find(|(n, _)| n == target).unwrap();
                if steps.len() > 1 {
                    steps.pop_front().unwrap()
                } else {
                    steps.front().cloned().unwrap()
                }
            };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            result
        }
    }

    fn ok(delay: u64, answer: &'static str) -> Step {
        (delay, Ok(answer))
    }

    fn fail(delay: u64, class: FailureClass) -> Step {
        (delay, Err(Failure::new(class, format!("{class:?}"))))
    }

    fn settings() -> Arc<HealthSettings> {
        Arc::new(HealthSettings {
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(10),
            misconfigured_cooldown: Duration::from_secs(300),
            rate_limit_backoff: Duration::from_secs(1),
            rate_limit_backoff_max: Duration::from_secs(60),
            retry_delay: Duration::from_millis(100),
        })
    }

    struct Spec {
        name: &'static str,
        priority: u32,
        weight: u32,
        window: Option<u32>,
        timeouts: Timeouts,
    }

    fn spec(name: &'static str, priority: u32) -> Spec {
        Spec {
            name,
            priority,
            weight: 1,
            window: None,
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                first_byte: Duration::from_secs(2),
                stall: Duration::from_secs(2),
                total: Duration::from_secs(5),
            },
        }
    }

    fn route(specs: Vec<Spec>, policy: Policy) -> Route<&'static str> {
        let settings = settings();
        Route::new(
            specs
                .into_iter()
                .map(|s| RouteEntry {
                    target: s.name,
                    health: Arc::new(Health::new(Arc::clone(&settings))),
                    priority: s.priority,
                    weight: s.weight,
                    context_window: s.window,
                    timeouts: s.timeouts,
                })
                .collect(),
            policy,
        )
    }

    fn plain(names: &[&'static str]) -> Route<&'static str> {
        route(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| spec(n, i as u32))
                .collect(),
            Policy::default(),
        )
    }

    fn request() -> Request {
        Request {
            stream: false,
            seed: 1,
            exclude: Vec::new(),
            costs: Vec::new(),
        }
    }

    fn outcomes(attempts: &[Attempt]) -> Vec<(usize, AttemptKind, Option<FailureClass>)> {
        attempts
            .iter()
            .map(|a| (a.target, a.kind, a.failure().map(|f| f.class)))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_healthy_target_serves_and_the_rest_are_untouched() {
        let fake = Fake::new(vec![("a", vec![ok(5, "A")]), ("b", vec![ok(0, "B")])]);
        let r = plain(&["a", "b"]);
        let served = serve(&fake, &r, &request()).await.unwrap();
        assert_eq!((served.output, served.target), ("A", 0));
        assert_eq!(served.attempts[0].latency, Duration::from_millis(5));
        assert_eq!(served.attempts[0].outcome, Outcome::Served);
        assert_eq!(fake.calls(), ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_fails_over_at_once_and_cools_the_target_for_its_delay() {
        let limited = Failure::new(FailureClass::RateLimited, "slow down")
            .with_retry_after(Some(Duration::from_secs(7)));
        let fake = Fake::new(vec![
            ("a", vec![(0, Err(limited)), ok(0, "A")]),
            ("b", vec![ok(0, "B")]),
        ]);
        let r = plain(&["a", "b"]);
        let served = serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(served.output, "B");
        assert_eq!(
            fake.call_times("b"),
            [Duration::ZERO],
            "no pause before failing over"
        );
        // The next request does not touch `a` while it cools down...
        let served = serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(served.output, "B");
        assert_eq!(
            served.skipped,
            [Skip {
                target: 0,
                reason: SkipReason::Cooling(Duration::from_secs(7))
            }]
        );
        assert_eq!(fake.calls(), ["a", "b", "b"]);
        // ...and uses it again once the delay is over.
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(serve(&fake, &r, &request()).await.unwrap().output, "A");
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_target_cools_down_no_upstream_is_called_and_the_soonest_wait_is_known() {
        let limited = |s| {
            Failure::new(FailureClass::RateLimited, "slow down")
                .with_retry_after(Some(Duration::from_secs(s)))
        };
        let fake = Fake::new(vec![
            ("a", vec![(0, Err(limited(7)))]),
            ("b", vec![(0, Err(limited(3)))]),
        ]);
        let r = plain(&["a", "b"]);
        assert!(serve(&fake, &r, &request()).await.is_err());
        let exhausted = serve(&fake, &r, &request()).await.unwrap_err();
        assert!(exhausted.attempts.is_empty());
        assert_eq!(
            exhausted.unavailable_for(),
            Some((Duration::from_secs(3), true))
        );
        assert_eq!(fake.calls(), ["a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_5xx_is_retried_once_on_the_same_target_after_the_jittered_pause() {
        let fake = Fake::new(vec![
            ("a", vec![fail(0, FailureClass::Unavailable), ok(0, "A")]),
            ("b", vec![ok(0, "B")]),
        ]);
        let r = plain(&["a", "b"]);
        let served = serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(served.output, "A");
        assert_eq!(
            outcomes(&served.attempts),
            [
                (0, AttemptKind::First, Some(FailureClass::Unavailable)),
                (0, AttemptKind::Retry, None)
            ]
        );
        let times = fake.call_times("a");
        let gap = times[1] - times[0];
        // retry_delay 100 ms, jittered to 50..150 ms.
        assert!(
            gap >= Duration::from_millis(50) && gap < Duration::from_millis(150),
            "{gap:?}"
        );
        assert_eq!(served.attempts[1].at, gap);
    }

    #[tokio::test(start_paused = true)]
    async fn a_persistent_5xx_is_retried_once_then_fails_over() {
        for class in [
            FailureClass::Unavailable,
            FailureClass::Connect,
            FailureClass::BadResponse,
        ] {
            let fake = Fake::new(vec![("a", vec![fail(0, class)]), ("b", vec![ok(0, "B")])]);
            let r = plain(&["a", "b"]);
            let served = serve(&fake, &r, &request()).await.unwrap();
            assert_eq!(served.output, "B", "{class:?}");
            assert_eq!(fake.calls(), ["a", "a", "b"], "{class:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_when_the_route_budget_is_spent() {
        let policy = Policy {
            retry_budget: RetryBudget::new(0.0),
            ..Policy::default()
        };
        let fake = Fake::new(vec![
            ("a", vec![fail(0, FailureClass::Unavailable)]),
            ("b", vec![ok(0, "B")]),
        ]);
        let r = route(vec![spec("a", 0), spec("b", 1)], policy);
        serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(fake.calls(), ["a", "b"], "no budget, no retry");

        let policy = Policy {
            retries: 0,
            ..Policy::default()
        };
        let fake = Fake::new(vec![
            ("a", vec![fail(0, FailureClass::Unavailable)]),
            ("b", vec![ok(0, "B")]),
        ]);
        let r = route(vec![spec("a", 0), spec("b", 1)], policy);
        serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(fake.calls(), ["a", "b"], "retries = 0");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_target_times_out_and_is_never_retried_within_the_request() {
        let fake = Fake::new(vec![
            ("a", vec![ok(60_000, "late")]),
            ("b", vec![ok(0, "B")]),
        ]);
        let r = plain(&["a", "b"]);
        let started = Instant::now();
        let served = serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(served.output, "B");
        assert_eq!(fake.calls(), ["a", "b"]);
        let failure = served.attempts[0].failure().unwrap();
        assert_eq!(failure.class, FailureClass::Timeout);
        assert!(failure.message.contains("5000 ms"), "{failure}");
        // A whole answer is bounded by `total` (5 s).
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_is_bounded_by_its_first_byte_timeout() {
        let fake = Fake::new(vec![
            ("a", vec![ok(60_000, "late")]),
            ("b", vec![ok(0, "B")]),
        ]);
        let r = plain(&["a", "b"]);
        let started = Instant::now();
        let mut req = request();
        req.stream = true;
        let served = serve(&fake, &r, &req).await.unwrap();
        assert_eq!(served.output, "B");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn context_length_skips_targets_whose_window_is_not_larger() {
        let mut small = spec("small", 0);
        small.window = Some(8_192);
        let mut same = spec("same", 1);
        same.window = Some(8_192);
        let unknown = spec("unknown", 2);
        let mut large = spec("large", 3);
        large.window = Some(131_072);
        let fake = Fake::new(vec![
            ("small", vec![fail(0, FailureClass::ContextLengthExceeded)]),
            ("same", vec![ok(0, "same")]),
            (
                "unknown",
                vec![fail(0, FailureClass::ContextLengthExceeded)],
            ),
            ("large", vec![ok(0, "large")]),
        ]);
        let r = route(vec![small, same, unknown, large], Policy::default());
        let served = serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(served.output, "large");
        assert_eq!(fake.calls(), ["small", "unknown", "large"]);
        assert_eq!(
            served.skipped,
            [Skip {
                target: 1,
                reason: SkipReason::ContextWindow
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_requests_and_content_filters_are_answered_without_other_targets() {
        for class in [FailureClass::InvalidRequest, FailureClass::ContentFiltered] {
            let fake = Fake::new(vec![("a", vec![fail(0, class)]), ("b", vec![ok(0, "B")])]);
            let r = plain(&["a", "b"]);
            let exhausted = serve(&fake, &r, &request()).await.unwrap_err();
            assert_eq!(fake.calls(), ["a"], "{class:?}");
            assert_eq!(exhausted.decisive().unwrap().class, class);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_credential_fails_over_and_keeps_the_target_out() {
        let fake = Fake::new(vec![
            ("a", vec![fail(0, FailureClass::Unauthorized)]),
            ("b", vec![ok(0, "B")]),
        ]);
        let r = plain(&["a", "b"]);
        assert_eq!(serve(&fake, &r, &request()).await.unwrap().output, "B");
        let served = serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(fake.calls(), ["a", "b", "b"]);
        assert!(matches!(served.skipped[0].reason, SkipReason::Open(_)));
        assert!(r.entries[0].health.snapshot().misconfigured);
    }

    #[tokio::test(start_paused = true)]
    async fn plugin_faults_fail_over_without_a_retry() {
        let fake = Fake::new(vec![
            ("a", vec![fail(0, FailureClass::PluginFault)]),
            ("b", vec![ok(0, "B")]),
        ]);
        let r = plain(&["a", "b"]);
        assert_eq!(serve(&fake, &r, &request()).await.unwrap().output, "B");
        assert_eq!(fake.calls(), ["a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flapping_primary_is_left_while_its_breaker_is_open_and_taken_back_after_a_probe() {
        let policy = Policy {
            retries: 0,
            ..Policy::default()
        };
        let fake = Fake::new(vec![
            (
                "primary",
                vec![
                    fail(0, FailureClass::Unavailable),
                    fail(0, FailureClass::Unavailable),
                    fail(0, FailureClass::Unavailable),
                    ok(0, "primary"),
                ],
            ),
            ("fallback", vec![ok(0, "fallback")]),
        ]);
        let r = route(vec![spec("primary", 0), spec("fallback", 1)], policy);
        for _ in 0..3 {
            assert_eq!(
                serve(&fake, &r, &request()).await.unwrap().output,
                "fallback"
            );
        }
        assert_eq!(r.entries[0].health.snapshot().state, BreakerState::Open);
        // Open: served by the fallback without touching the primary.
        for _ in 0..5 {
            assert_eq!(
                serve(&fake, &r, &request()).await.unwrap().output,
                "fallback"
            );
        }
        assert_eq!(fake.call_times("primary").len(), 3);
        // After the cooldown one probe goes through, succeeds, and the primary is back.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            serve(&fake, &r, &request()).await.unwrap().output,
            "primary"
        );
        assert_eq!(r.entries[0].health.snapshot().state, BreakerState::Closed);
        assert_eq!(
            serve(&fake, &r, &request()).await.unwrap().output,
            "primary"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_target_behind_an_open_breaker_fails_fast_with_the_soonest_probe() {
        let policy = Policy {
            retries: 0,
            ..Policy::default()
        };
        let fake = Fake::new(vec![("a", vec![fail(0, FailureClass::Connect)])]);
        let r = route(vec![spec("a", 0)], policy);
        for _ in 0..3 {
            serve(&fake, &r, &request()).await.unwrap_err();
        }
        tokio::time::advance(Duration::from_secs(4)).await;
        let exhausted = serve(&fake, &r, &request()).await.unwrap_err();
        assert_eq!(fake.calls().len(), 3);
        assert_eq!(
            exhausted.unavailable_for(),
            Some((Duration::from_secs(6), false))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedge_races_the_next_target_and_the_first_to_answer_wins() {
        let policy = Policy {
            hedge_after: Some(Duration::from_millis(200)),
            ..Policy::default()
        };
        let fake = Fake::new(vec![
            ("slow", vec![ok(1_000, "slow")]),
            ("fast", vec![ok(100, "fast")]),
        ]);
        let r = route(vec![spec("slow", 0), spec("fast", 1)], policy);
        let started = Instant::now();
        let served = serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(served.output, "fast");
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(fake.call_times("fast"), [Duration::from_millis(200)]);
        assert_eq!(
            served
                .attempts
                .iter()
                .map(|a| (a.target, a.kind, a.outcome.clone()))
                .collect::<Vec<_>>(),
            [
                (1, AttemptKind::Hedge, Outcome::Served),
                (0, AttemptKind::First, Outcome::Cancelled)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedge_is_not_started_when_the_first_attempt_answers_in_time() {
        let policy = Policy {
            hedge_after: Some(Duration::from_millis(200)),
            ..Policy::default()
        };
        let fake = Fake::new(vec![("a", vec![ok(150, "A")]), ("b", vec![ok(0, "B")])]);
        let r = route(vec![spec("a", 0), spec("b", 1)], policy);
        assert_eq!(serve(&fake, &r, &request()).await.unwrap().output, "A");
        assert_eq!(fake.calls(), ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn when_the_hedged_attempt_fails_the_hedge_carries_on_alone() {
        let policy = Policy {
            hedge_after: Some(Duration::from_millis(200)),
            retries: 0,
            ..Policy::default()
        };
        let fake = Fake::new(vec![
            ("a", vec![fail(300, FailureClass::Unavailable)]),
            ("b", vec![ok(500, "B")]),
            ("c", vec![ok(0, "C")]),
        ]);
        let r = route(vec![spec("a", 0), spec("b", 1), spec("c", 2)], policy);
        let started = Instant::now();
        let served = serve(&fake, &r, &request()).await.unwrap();
        assert_eq!(served.output, "B");
        assert_eq!(started.elapsed(), Duration::from_millis(700));
        assert_eq!(
            fake.calls(),
            ["a", "b"],
            "no third target while the hedge runs"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn excluded_targets_are_skipped() {
        let fake = Fake::new(vec![("a", vec![ok(0, "A")]), ("b", vec![ok(0, "B")])]);
        let r = plain(&["a", "b"]);
        let mut req = request();
        req.exclude = vec![0];
        let served = serve(&fake, &r, &req).await.unwrap();
        assert_eq!(served.output, "B");
        assert_eq!(served.skipped[0].reason, SkipReason::Excluded);
    }

    #[tokio::test(start_paused = true)]
    async fn the_latency_strategy_prefers_the_target_that_answered_faster() {
        let policy = Policy {
            strategy: Strategy::Latency,
            ..Policy::default()
        };
        let fake = Fake::new(vec![("a", vec![ok(300, "A")]), ("b", vec![ok(30, "B")])]);
        let r = route(vec![spec("a", 0), spec("b", 0)], policy);
        // Both unmeasured at first: each gets measured once.
        let mut req = request();
        req.exclude = vec![1];
        serve(&fake, &r, &req).await.unwrap();
        req.exclude = vec![0];
        serve(&fake, &r, &req).await.unwrap();
        for _ in 0..5 {
            assert_eq!(serve(&fake, &r, &request()).await.unwrap().output, "B");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_cost_strategy_tries_the_cheapest_and_fails_over_to_the_dearer() {
        let policy = Policy {
            strategy: Strategy::Cost,
            retries: 0,
            ..Policy::default()
        };
        let fake = Fake::new(vec![
            ("dear", vec![ok(5, "DEAR")]),
            (
                "cheap",
                vec![fail(5, FailureClass::Unavailable), ok(5, "CHEAP")],
            ),
        ]);
        let r = route(vec![spec("dear", 0), spec("cheap", 0)], policy);
        let mut req = request();
        req.costs = vec![Some(20), Some(10)];
        // The cheaper fails: the dearer serves.
        let served = serve(&fake, &r, &req).await.unwrap();
        assert_eq!(served.output, "DEAR");
        assert_eq!(fake.calls(), ["cheap", "dear"]);
        // Next request: the cheaper again, and it serves.
        let served = serve(&fake, &r, &req).await.unwrap();
        assert_eq!(served.output, "CHEAP");
        // A request whose estimate flips the prices flips the order.
        req.costs = vec![Some(10), Some(20)];
        assert_eq!(serve(&fake, &r, &req).await.unwrap().output, "DEAR");
        assert_eq!(fake.calls(), ["cheap", "dear", "cheap", "dear"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_route_is_exhausted_with_no_attempts() {
        let fake = Fake::new(vec![]);
        let r = plain(&[]);
        let exhausted = serve(&fake, &r, &request()).await.unwrap_err();
        assert!(exhausted.attempts.is_empty());
        assert!(exhausted.decisive().is_none());
        assert_eq!(exhausted.unavailable_for(), None);
    }
}
