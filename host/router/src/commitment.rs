//! What happens to a request after a target served it but before its answer is complete: a
//! stream commits at its first chunk, and may still break, stall or error afterwards. The
//! engine's bookkeeping for that case lives here, so the caller (the server's stream relay)
//! only reports what happened:
//!
//! - [`Commitment::broke`]: the serving target failed after commitment. It counts against the
//!   target's health like any failure (with jittered backoff, as the walk does), the attempt
//!   is rewritten from served to failed with its whole duration, and the target is excluded
//!   from continuing the answer.
//! - [`Commitment::resume`]: walk the route again for a continuation, excluding every target
//!   that broke, with a fresh order; the new walk's attempts and skips join the request's,
//!   timed from the request's start.

use tokio::time::Instant;

use crate::Failure;
use crate::engine::{Attempt, Outcome, Request, Served, Skip, SkipReason, Upstream, serve};
use crate::route::{Rng, Route};

/// A served request whose answer is still being delivered, and everything the engine did for
/// it so far.
#[derive(Debug)]
pub struct Commitment {
    /// The route entry serving now.
    pub target: usize,
    /// Every attempt of the request, continuations included, in the order they ended.
    pub attempts: Vec<Attempt>,
    pub skipped: Vec<Skip>,
    /// Targets that broke after commitment: never asked to continue.
    broken: Vec<usize>,
    stream: bool,
    /// The request's cost estimates, so a continuation walks in the same cost order.
    costs: Vec<Option<u128>>,
    rng: Rng,
    started: Instant,
}

impl<O> Served<O> {
    /// Splits a served request into its output and the commitment that follows its delivery.
    pub fn commit(self, request: &Request) -> (O, Commitment) {
        let commitment = Commitment {
            target: self.target,
            attempts: self.attempts,
            skipped: self.skipped,
            broken: Vec::new(),
            stream: request.stream,
            costs: request.costs.clone(),
            // Another stream of numbers than the walk's, so a continuation's order and
            // jitter are not the first walk's again.
            rng: Rng::new(request.seed.rotate_left(17)),
            started: self.started,
        };
        (self.output, commitment)
    }
}

impl Commitment {
    /// The serving target failed after commitment.
    pub fn broke<T>(&mut self, route: &Route<T>, failure: Failure) {
        let jitter = self.rng.unit();
        if let Some(entry) = route.entries.get(self.target) {
            entry.health.record_failure(&failure, jitter);
        }
        let elapsed = self.started.elapsed();
        let target = self.target;
        if let Some(last) = self.attempts.iter_mut().rev().find(|a| a.target == target) {
            last.latency = elapsed.saturating_sub(last.at).max(last.latency);
            last.outcome = Outcome::Failed(failure);
        }
        if !self.broken.contains(&target) {
            self.broken.push(target);
        }
    }

    /// Walks `route` again for a continuation, excluding the targets that broke. On success the
    /// new target is the serving one and its output is returned; `None` when no target served
    /// (its attempts are recorded either way).
    pub async fn resume<U>(&mut self, upstream: &U, route: &Route<U::Target>) -> Option<U::Output>
    where
        U: Upstream + Sync,
        U::Target: Sync,
    {
        let request = Request {
            stream: self.stream,
            seed: self.rng.next_u64(),
            exclude: self.broken.clone(),
            costs: self.costs.clone(),
        };
        let offset = self.started.elapsed();
        let (output, served, attempts, skipped) = match serve(upstream, route, &request).await {
            Ok(served) => (
                Some(served.output),
                Some(served.target),
                served.attempts,
                served.skipped,
            ),
            Err(exhausted) => (None, None, exhausted.attempts, exhausted.skipped),
        };
        self.attempts
            .extend(attempts.into_iter().map(|mut attempt| {
                attempt.at += offset;
                attempt
            }));
        // The excluded targets are the ones that broke: already in the attempts.
        self.skipped.extend(
            skipped
                .into_iter()
                .filter(|s| s.reason != SkipReason::Excluded),
        );
        if let Some(target) = served {
            self.target = target;
        }
        output
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::FailureClass;
    use crate::engine::AttemptKind;
    use crate::health::{Health, HealthSettings};
    use crate::route::{Policy, RouteEntry, Timeouts};

    /// Each target answers with its name after 10 ms, except those listed as failing.
    struct Targets {
        failing: Vec<&'static str>,
        calls: Mutex<Vec<&'static str>>,
    }

    impl Upstream for Targets {
        type Target = &'static str;
        type Output = &'static str;

        async fn attempt(
            &self,
            target: &&'static str,
            _timeouts: &Timeouts,
        ) -> Result<&'static str, Failure> {
            self.calls.lock().unwrap().push(target);
            tokio::time::sleep(Duration::from_millis(10)).await;
            if self.failing.contains(target) {
                Err(Failure::new(FailureClass::Unavailable, "down").with_status(503))
            } else {
                Ok(target)
            }
        }
    }

    fn route(names: &[&'static str]) -> Route<&'static str> {
        let settings = Arc::new(HealthSettings::default());
        let entries = names
            .iter()
            .enumerate()
            .map(|(i, name)| RouteEntry {
                target: *name,
                health: Arc::new(Health::new(Arc::clone(&settings))),
                priority: i as u32,
                weight: 1,
                context_window: None,
                timeouts: Timeouts::default(),
            })
            .collect();
        Route::new(
            entries,
            Policy {
                retries: 0,
                ..Policy::default()
            },
        )
    }

    fn request() -> Request {
        Request {
            stream: true,
            seed: 7,
            exclude: Vec::new(),
            costs: Vec::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_break_after_commitment_counts_against_the_target_and_rewrites_its_attempt() {
        let route = route(&["a", "b"]);
        let upstream = Targets {
            failing: vec![],
            calls: Mutex::new(vec![]),
        };
        let served = serve(&upstream, &route, &request()).await.unwrap();
        let (output, mut commitment) = served.commit(&request());
        assert_eq!(output, "a");
        tokio::time::sleep(Duration::from_millis(500)).await;
        commitment.broke(&route, Failure::new(FailureClass::Timeout, "stalled"));
        assert_eq!(route.entries[0].health.snapshot().consecutive_failures, 1);
        let attempt = &commitment.attempts[0];
        assert_eq!(
            attempt.failure().map(|f| f.class),
            Some(FailureClass::Timeout)
        );
        assert_eq!(
            attempt.latency,
            Duration::from_millis(510),
            "the attempt lasted from its start to the break"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn resume_excludes_the_broken_target_and_joins_the_new_attempts_in_request_time() {
        let route = route(&["a", "b", "c"]);
        let upstream = Targets {
            failing: vec!["b"],
            calls: Mutex::new(vec![]),
        };
        let served = serve(&upstream, &route, &request()).await.unwrap();
        let (_, mut commitment) = served.commit(&request());
        tokio::time::sleep(Duration::from_millis(100)).await;
        commitment.broke(&route, Failure::new(FailureClass::Unavailable, "cut"));
        let output = commitment.resume(&upstream, &route).await;
        assert_eq!(output, Some("c"), "b fails, a broke: c continues");
        assert_eq!(commitment.target, 2);
        assert_eq!(*upstream.calls.lock().unwrap(), ["a", "b", "c"]);
        let summary: Vec<(usize, bool, Duration)> = commitment
            .attempts
            .iter()
            .map(|a| (a.target, a.outcome == Outcome::Served, a.at))
            .collect();
        assert_eq!(
            summary,
            [
                (0, false, Duration::ZERO),
                (1, false, Duration::from_millis(110)),
                (2, true, Duration::from_millis(120)),
            ]
        );
        assert!(
            commitment
                .skipped
                .iter()
                .all(|s| s.reason != SkipReason::Excluded),
            "the broken target is an attempt, not a skip"
        );
        assert!(
            commitment
                .attempts
                .iter()
                .all(|a| a.kind == AttemptKind::First)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn when_no_target_can_continue_resume_gives_none_and_keeps_the_record() {
        let route = route(&["a", "b"]);
        let upstream = Targets {
            failing: vec!["b"],
            calls: Mutex::new(vec![]),
        };
        let served = serve(&upstream, &route, &request()).await.unwrap();
        let (_, mut commitment) = served.commit(&request());
        commitment.broke(&route, Failure::new(FailureClass::Unavailable, "cut"));
        assert_eq!(commitment.resume(&upstream, &route).await, None);
        assert_eq!(commitment.attempts.len(), 2);
        assert_eq!(commitment.target, 0, "the last serving target stays named");
        // Breaking twice on the same target excludes it once.
        commitment.broke(&route, Failure::new(FailureClass::Unavailable, "again"));
        assert_eq!(commitment.broken, [0]);
    }
}
