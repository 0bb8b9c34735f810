//! The failover engine of aigw. It owns what a route is (an ordered list of targets), how an
//! upstream failure is classified, and the one loop that walks a route's targets until one serves
//! or none can, recording every attempt. It is plain Rust over the [`Upstream`] trait: it knows
//! nothing of wasmtime, hyper or HTTP clients, so it is tested with in-process fakes and paused
//! time (design invariant 3).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// What kind of failure an attempt met; it decides what the engine does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// 429 or the provider's equivalent.
    RateLimited,
    /// 5xx, overloaded, an error in the middle of a stream.
    Unavailable,
    /// No answer in time: connect, first byte, or total.
    Timeout,
    /// The connection could not be made or was reset before an answer.
    Connect,
    /// The prompt does not fit this target's context window.
    ContextLengthExceeded,
    /// The request cannot be served as it stands, by any target.
    InvalidRequest,
    /// The provider refused the content.
    ContentFiltered,
    /// The credential was rejected, or none is configured.
    Unauthorized,
    /// The upstream answered something the plugin could not parse.
    BadResponse,
    /// The plugin trapped, ran out of time or memory.
    PluginFault,
}

/// What the engine does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Try the next target.
    FailOver,
    /// Stop and give the client this failure: no other target would do better.
    Answer,
}

impl FailureClass {
    pub fn action(self) -> Action {
        match self {
            FailureClass::InvalidRequest | FailureClass::ContentFiltered => Action::Answer,
            // A larger-window target may still serve; the full engine (issue 4) will skip
            // targets whose window is not larger.
            FailureClass::ContextLengthExceeded => Action::FailOver,
            FailureClass::RateLimited
            | FailureClass::Unavailable
            | FailureClass::Timeout
            | FailureClass::Connect
            | FailureClass::Unauthorized
            | FailureClass::BadResponse
            | FailureClass::PluginFault => Action::FailOver,
        }
    }

    /// A stable snake_case name, used as the OpenAI error `code` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::RateLimited => "rate_limited",
            FailureClass::Unavailable => "unavailable",
            FailureClass::Timeout => "timeout",
            FailureClass::Connect => "connect_error",
            FailureClass::ContextLengthExceeded => "context_length_exceeded",
            FailureClass::InvalidRequest => "invalid_request",
            FailureClass::ContentFiltered => "content_filter",
            FailureClass::Unauthorized => "unauthorized",
            FailureClass::BadResponse => "bad_response",
            FailureClass::PluginFault => "plugin_fault",
        }
    }
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    /// The upstream's reason, or the gateway's when the upstream gave none.
    pub message: String,
    /// The upstream's HTTP status, when it answered.
    pub status: Option<u16>,
    /// How long the upstream asked us to wait (rate limits).
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Failure {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Failure {
        self.retry_after = retry_after;
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} ({status}): {}", self.class.as_str(), self.message),
            None => write!(f, "{}: {}", self.class.as_str(), self.message),
        }
    }
}

/// One try of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Index of the target in the route.
    pub target: usize,
    pub latency: Duration,
    /// `None` when this attempt served the request.
    pub failure: Option<Failure>,
}

/// The request was served.
#[derive(Debug)]
pub struct Served<O> {
    pub output: O,
    /// Index of the target that served.
    pub target: usize,
    /// Every attempt, in order; the last one served.
    pub attempts: Vec<Attempt>,
}

/// No target served the request.
#[derive(Debug)]
pub struct Exhausted {
    /// Every attempt, in order; each carries its failure.
    pub attempts: Vec<Attempt>,
}

impl Exhausted {
    /// The failure the client should hear about: the one that stopped the loop, else the last.
    pub fn decisive(&self) -> Option<&Failure> {
        self.attempts.iter().rev().find_map(|a| a.failure.as_ref())
    }
}

/// Something that can try one target. The server implements it with the plugin runtime and the
/// HTTP client; tests implement it with fakes.
pub trait Upstream {
    type Target;
    type Output;

    fn attempt(
        &self,
        target: &Self::Target,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send;
}

/// Walks `targets` in order until one serves or a failure says to stop.
pub async fn serve<U: Upstream + Sync>(
    upstream: &U,
    targets: &[U::Target],
) -> Result<Served<U::Output>, Exhausted>
where
    U::Target: Sync,
{
    let mut attempts = Vec::with_capacity(targets.len());
    for (index, target) in targets.iter().enumerate() {
        let started = Instant::now();
        let result = upstream.attempt(target).await;
        let latency = started.elapsed();
        match result {
            Ok(output) => {
                attempts.push(Attempt {
                    target: index,
                    latency,
                    failure: None,
                });
                return Ok(Served {
                    output,
                    target: index,
                    attempts,
                });
            }
            Err(failure) => {
                let action = failure.class.action();
                attempts.push(Attempt {
                    target: index,
                    latency,
                    failure: Some(failure),
                });
                match action {
                    Action::FailOver => continue,
                    Action::Answer => break,
                }
            }
        }
    }
    Err(Exhausted { attempts })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::Mutex;

    /// A fake upstream: each target is a scripted outcome and an answer delay.
    struct Script {
        tried: Mutex<Vec<&'static str>>,
    }

    struct FakeTarget {
        name: &'static str,
        delay: Duration,
        outcome: Result<&'static str, FailureClass>,
    }

    impl Upstream for Script {
        type Target = FakeTarget;
        type Output = &'static str;

        async fn attempt(&self, target: &FakeTarget) -> Result<&'static str, Failure> {
            self.tried.lock().unwrap().push(target.name);
            tokio::time::sleep(target.delay).await;
            target
                .outcome
                .map_err(|class| Failure::new(class, format!("{} failed", target.name)))
        }
    }

    fn target(
        name: &'static str,
        delay_ms: u64,
        outcome: Result<&'static str, FailureClass>,
    ) -> FakeTarget {
        FakeTarget {
            name,
            delay: Duration::from_millis(delay_ms),
            outcome,
        }
    }

    fn script() -> Script {
        Script {
            tried: Mutex::new(Vec::new()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_healthy_target_serves_without_trying_the_rest() {
        let s = script();
        let served = serve(&s, &[target("a", 5, Ok("A")), target("b", 0, Ok("B"))])
            .await
            .unwrap();
        assert_eq!(served.output, "A");
        assert_eq!(served.target, 0);
        assert_eq!(served.attempts.len(), 1);
        assert_eq!(served.attempts[0].latency, Duration::from_millis(5));
        assert_eq!(*s.tried.lock().unwrap(), vec!["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn failover_classes_move_to_the_next_target() {
        for class in [
            FailureClass::RateLimited,
            FailureClass::Unavailable,
            FailureClass::Timeout,
            FailureClass::Connect,
            FailureClass::Unauthorized,
            FailureClass::BadResponse,
            FailureClass::PluginFault,
            FailureClass::ContextLengthExceeded,
        ] {
            let s = script();
            let served = serve(&s, &[target("a", 10, Err(class)), target("b", 20, Ok("B"))])
                .await
                .unwrap();
            assert_eq!(served.output, "B", "{class:?}");
            assert_eq!(served.target, 1);
            assert_eq!(served.attempts.len(), 2);
            assert_eq!(served.attempts[0].failure.as_ref().unwrap().class, class);
            assert_eq!(served.attempts[0].latency, Duration::from_millis(10));
            assert_eq!(served.attempts[1].latency, Duration::from_millis(20));
            assert!(served.attempts[1].failure.is_none());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_are_answered_without_trying_other_targets() {
        for class in [FailureClass::InvalidRequest, FailureClass::ContentFiltered] {
            let s = script();
            let exhausted = serve(&s, &[target("a", 0, Err(class)), target("b", 0, Ok("B"))])
                .await
                .unwrap_err();
            assert_eq!(*s.tried.lock().unwrap(), vec!["a"], "{class:?}");
            assert_eq!(exhausted.attempts.len(), 1);
            assert_eq!(exhausted.decisive().unwrap().class, class);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_route_keeps_every_attempt_and_names_the_last_failure() {
        let s = script();
        let exhausted = serve(
            &s,
            &[
                target("a", 0, Err(FailureClass::RateLimited)),
                target("b", 0, Err(FailureClass::Unavailable)),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(exhausted.attempts.len(), 2);
        assert_eq!(exhausted.attempts[0].target, 0);
        assert_eq!(exhausted.attempts[1].target, 1);
        let last = exhausted.decisive().unwrap();
        assert_eq!(last.class, FailureClass::Unavailable);
        assert_eq!(last.message, "b failed");
    }

    #[tokio::test(start_paused = true)]
    async fn empty_route_is_exhausted_with_no_attempts() {
        let s = script();
        let exhausted = serve(&s, &[]).await.unwrap_err();
        assert!(exhausted.attempts.is_empty());
        assert!(exhausted.decisive().is_none());
    }

    #[test]
    fn failure_display_names_class_status_and_reason() {
        let f = Failure::new(FailureClass::RateLimited, "slow down").with_status(429);
        assert_eq!(f.to_string(), "rate_limited (429): slow down");
        let f = Failure::new(FailureClass::Timeout, "no answer in 300 ms");
        assert_eq!(f.to_string(), "timeout: no answer in 300 ms");
    }
}
