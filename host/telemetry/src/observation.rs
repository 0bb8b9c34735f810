//! The observations telemetry is fed from: plain values, borrowed from the report they come
//! from, built once per event.

use std::time::Duration;

/// A finished chat completion, as its request record reports it.
#[derive(Debug, Clone)]
pub struct RequestObservation<'a> {
    /// The route: the alias the client asked for, or the `provider/model` it named.
    pub route: &'a str,
    /// The provider (plugin) of the target that served or last served.
    pub provider: Option<&'a str>,
    /// The label of the target that served or last served.
    pub target: Option<&'a str>,
    /// The status the client got (499: it went away).
    pub status: u16,
    pub stream: bool,
    /// The virtual key's id (never its secret); `None` without authentication.
    pub key: Option<&'a str>,
    /// From the request's arrival to its report.
    pub duration: Duration,
    /// From the request's arrival to the first content chunk sent (streams only).
    pub time_to_first_chunk: Option<Duration>,
    /// Times a broken stream was continued on another target.
    pub continuations: u32,
    /// The response cache's part: `Some("hit")`, `Some("miss")` (looked up, not found, stored
    /// after), `None` (not cacheable here, or the client opted out).
    pub cache: Option<&'static str>,
    /// Every attempt of the walk, in order.
    pub attempts: &'a [AttemptObservation<'a>],
    /// Tokens of every attempt that consumed some (`None`: no usage known).
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// The request's spend in micro-USD.
    pub spend_micro_usd: u64,
    /// The error's class (`error.type`), for a request that failed.
    pub error_type: Option<&'a str>,
}

/// One attempt of a request's walk.
#[derive(Debug, Clone)]
pub struct AttemptObservation<'a> {
    /// The target's label.
    pub target: &'a str,
    /// `first`, `retry` or `hedge`.
    pub kind: &'static str,
    /// `served`, `failed` or `cancelled`.
    pub outcome: &'static str,
    /// The failure class of a failed attempt (`rate_limited`, `timeout`, …).
    pub failure_class: Option<&'static str>,
    pub duration: Duration,
}

/// A finished tool call, as the toolbox's record reports it (every surface: REST, the chat
/// loop, MCP).
#[derive(Debug, Clone)]
pub struct ToolObservation<'a> {
    /// The tool's name (a tool the gateway offers: the toolbox refuses unknown names before a
    /// call is recorded).
    pub tool: &'a str,
    /// `None` for a call that answered; the error's code otherwise (`rate_limited`,
    /// `invalid_arguments`, `upstream_failed`, …).
    pub error: Option<&'static str>,
    /// Answered from the shared cache.
    pub cache_hit: bool,
    pub duration: Duration,
}

/// A request or tool call a key's limits refused (its 429).
#[derive(Debug, Clone)]
pub struct QuotaObservation<'a> {
    /// The key's id (never its secret).
    pub key: &'a str,
    /// The limit that refused it (`requests_per_minute`, `budget_usd`, …).
    pub limit: &'static str,
}
