//! The failover engine of aigw. It owns what a route is (targets with priorities, weights,
//! context windows and timeouts: [`route`]), what the gateway remembers about each target between
//! requests (rate-limit cooldowns, circuit breakers, latency: [`health`]) and where that memory
//! lives across config swaps ([`registry`]), how an upstream failure is classified and what it
//! makes the engine do ([`FailureClass::action`]), the one loop that walks a route until a target
//! serves or none can, retrying, hedging and recording every attempt ([`engine`]), and what
//! follows when a served stream breaks after commitment ([`commitment`]). It is plain Rust over
//! the [`Upstream`] trait: it knows nothing of wasmtime, hyper or HTTP clients, so it is tested
//! with in-process fakes and paused time (design invariant 3).

pub mod commitment;
pub mod engine;
pub mod health;
pub mod registry;
pub mod route;

use std::fmt;
use std::time::Duration;

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
    /// The account behind the credential has no credit or quota left (402, OpenAI's 429
    /// `insufficient_quota`): waiting does not cure it, the operator must top up.
    NoCredit,
    /// The upstream answered something the plugin could not parse.
    BadResponse,
    /// The plugin trapped, ran out of time or memory on the upstream's answer.
    PluginFault,
    /// The request itself made the plugin fail while translating it (a memory or time limit,
    /// a trap on this body): the request's failure, never the target's, so it is answered at
    /// once and leaves the target's health alone.
    RequestFault,
    /// The gateway's own limits were reached (plugin instance slots, concurrent streams):
    /// neither the request's nor the target's, so it is answered at once (503) and leaves the
    /// target's health alone.
    Overloaded,
}

/// What the engine does after a failure (the failover table of the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Retry the same target once more if the route's retries and retry budget allow, else
    /// fail over: 5xx, resets, connect errors, unparseable answers — often transient.
    Retry,
    /// Try the next target now. Rate limits also cool the target down; timeouts never retry
    /// the silent target; a rejected credential marks it misconfigured.
    FailOver,
    /// Try only targets with a larger context window.
    FailOverLarger,
    /// Stop and give the client this failure: no other target would do better.
    Answer,
}

impl FailureClass {
    pub fn action(self) -> Action {
        match self {
            FailureClass::InvalidRequest
            | FailureClass::ContentFiltered
            | FailureClass::RequestFault
            | FailureClass::Overloaded => Action::Answer,
            FailureClass::ContextLengthExceeded => Action::FailOverLarger,
            FailureClass::Unavailable | FailureClass::Connect | FailureClass::BadResponse => {
                Action::Retry
            }
            FailureClass::RateLimited
            | FailureClass::Timeout
            | FailureClass::Unauthorized
            | FailureClass::NoCredit
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
            FailureClass::NoCredit => "no_credit",
            FailureClass::BadResponse => "bad_response",
            FailureClass::PluginFault => "plugin_fault",
            FailureClass::RequestFault => "request_fault",
            FailureClass::Overloaded => "overloaded",
        }
    }

    /// Whether a failure of this class says something about the target. A request's own fault
    /// and the gateway's own limits do not: the target's breaker, streaks and last error are
    /// left as they were.
    pub fn counts_against_target(self) -> bool {
        !matches!(self, FailureClass::RequestFault | FailureClass::Overloaded)
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

pub use commitment::Commitment;
pub use engine::{
    Attempt, AttemptKind, Exhausted, Outcome, Request, Served, Skip, SkipReason, Upstream, serve,
};
pub use health::{
    Admission, BreakerState, Health, HealthSettings, HealthSnapshot, MAX_LAST_ERROR_BYTES,
};
pub use registry::HealthRegistry;
pub use route::{Policy, RetryBudget, Rng, Route, RouteEntry, Strategy, Timeouts};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_display_names_class_status_and_reason() {
        let f = Failure::new(FailureClass::RateLimited, "slow down").with_status(429);
        assert_eq!(f.to_string(), "rate_limited (429): slow down");
        let f = Failure::new(FailureClass::Timeout, "no answer in 300 ms");
        assert_eq!(f.to_string(), "timeout: no answer in 300 ms");
    }

    #[test]
    fn every_class_has_the_action_of_the_failover_table() {
        use FailureClass::*;
        for (class, action) in [
            (RateLimited, Action::FailOver),
            (Unavailable, Action::Retry),
            (Connect, Action::Retry),
            (BadResponse, Action::Retry),
            (Timeout, Action::FailOver),
            (Unauthorized, Action::FailOver),
            (NoCredit, Action::FailOver),
            (PluginFault, Action::FailOver),
            (ContextLengthExceeded, Action::FailOverLarger),
            (InvalidRequest, Action::Answer),
            (ContentFiltered, Action::Answer),
            (RequestFault, Action::Answer),
            (Overloaded, Action::Answer),
        ] {
            assert_eq!(class.action(), action, "{class:?}");
        }
    }
}
