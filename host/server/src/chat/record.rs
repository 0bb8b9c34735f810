//! The request record: the one place a finished chat completion is reported. Every way a
//! request ends (answered, exhausted, stream finished, client gone, stream cut with no
//! continuation) goes through [`RequestRecord::finish`], which consumes the record, so each
//! request is reported exactly once. The log line is written here, the request's spend is
//! computed and added to the usage ledger here, and the key's limits are charged here (its
//! ticket: tokens and spend); metrics hook in here too, not at the call sites.
//!
//! Spend: the cost of a request is the sum over its attempts that consumed tokens, each at its
//! own target's price — the serving (or last) attempt's usage, and every attempt of a stream
//! that broke and was continued elsewhere ([`Finished::broken`]). A failed attempt whose
//! upstream answered with an error reports no usage to the gateway, so it costs 0.
//!
//! It also says loudly, after each walk of the route, when an attempt took a target out
//! ([`RequestRecord::walked`]).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Instant;

use aigw_access::usage::OPEN_KEY_ID;
use aigw_access::{Key, Ledger, Prices, Ticket, Tokens};
use aigw_router::{Attempt, BreakerState, FailureClass, Outcome, Skip, SkipReason};
use aigw_runtime::Usage;
use aigw_telemetry::{AttemptObservation, Budget, Decimal, RequestObservation, Telemetry};
use http::HeaderValue;

use crate::gateway::{RouteTarget, ServedRoute};
use crate::trace::{self, RequestTrace};

/// The most bytes of upstream text (failure reasons) a log line carries in one field, in either
/// log format: upstream text may echo a whole request. (Client text is already short: model
/// names are capped by the request head; the human format escapes and caps every field too.)
const MAX_LOGGED_TEXT_BYTES: usize = 2048;

/// A value written into a log field cut after [`MAX_LOGGED_TEXT_BYTES`] at a character
/// boundary, saying how much is missing. Written straight into the line: no string is built for
/// it, short or long.
pub(crate) struct Capped<T>(pub(crate) T);

impl<T: fmt::Display> fmt::Display for Capped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Budget::new(f, MAX_LOGGED_TEXT_BYTES);
        write!(out, "{}", self.0)?;
        out.finish()
    }
}

/// `text` as [`Capped`] writes it, borrowed when it is short (a `&str` field keeps its quotes in
/// the human format).
pub(crate) fn capped(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_LOGGED_TEXT_BYTES {
        return Cow::Borrowed(text);
    }
    Cow::Owned(Capped(text).to_string())
}

/// What is known of a request from its start, until it is reported.
pub(crate) struct RequestRecord {
    model: String,
    route: Arc<ServedRoute>,
    started: Instant,
    stream: bool,
    /// Set by [`RequestRecord::finish`]; a record dropped without it is a request whose
    /// handler was dropped (its client's connection went away before the answer).
    reported: bool,
    /// Some of the usage is an estimate (a broken attempt's provider reported none).
    usage_estimated: bool,
    /// Where the request's spend goes.
    accounting: Accounting,
    /// The key's admission: charged the request's tokens and spend when it is reported;
    /// dropped with the record (a client that went away), it frees its concurrency slot and
    /// charges nothing.
    ticket: Option<Ticket>,
    /// A tool loop's model calls and the aigw tool calls it ran (`None` without a loop).
    tool_loop: Option<(u32, u32)>,
    /// The response cache's part: `hit`, `miss`, or `None` (not cached here).
    cache: Option<&'static str>,
    /// When the stream's first chunk went out (streams only).
    first_chunk: Option<Instant>,
    /// Times the stream broke and was continued on another target.
    continuations: u32,
    /// The request's trace (its span, its trace id for the log line).
    trace: RequestTrace,
    /// Who asked and in which conversation, for the log line.
    asker: Asker,
}

/// The log line's `key` and `conversation`.
#[derive(Default)]
pub(crate) struct Asker {
    /// The request's key (its name, else its id, is logged; never its secret).
    pub(crate) key: Option<Arc<Key>>,
    /// The conversation it continues (`x-aigw-conversation`).
    pub(crate) conversation: Option<String>,
}

/// What a finished request is accounted to: its key, the prices of the state it started on,
/// and the process's usage ledger (none in-process without a store).
pub(crate) struct Accounting {
    pub(crate) prices: Arc<Prices>,
    pub(crate) ledger: Option<Arc<Ledger>>,
    /// The process's metrics and history, fed from this report.
    pub(crate) telemetry: Arc<Telemetry>,
    /// The key's id, [`OPEN_KEY_ID`] for a request without one.
    pub(crate) key_id: String,
}

impl Accounting {
    pub(crate) fn new(
        prices: Arc<Prices>,
        ledger: Option<Arc<Ledger>>,
        telemetry: Arc<Telemetry>,
        key_id: Option<&str>,
    ) -> Accounting {
        Accounting {
            prices,
            ledger,
            telemetry,
            key_id: key_id.unwrap_or(OPEN_KEY_ID).to_owned(),
        }
    }
}

impl Accounting {
    /// The key's id, `None` for a request without one.
    pub(crate) fn key(&self) -> Option<&str> {
        (self.key_id != OPEN_KEY_ID).then_some(self.key_id.as_str())
    }
}

/// A usage's token counts.
pub(crate) fn tokens(usage: Usage) -> Tokens {
    Tokens::new(
        u64::from(usage.prompt_tokens),
        u64::from(usage.completion_tokens),
    )
}

/// How a request ended.
pub(crate) struct Finished<'a> {
    /// The status the client got (499: it went away; 200 for a stream that later broke is
    /// reported as 502, what the error event said).
    pub(crate) status: u16,
    pub(crate) attempts: &'a [Attempt],
    pub(crate) skipped: &'a [Skip],
    /// The target that served (or last served, for a broken stream).
    pub(crate) served: Option<&'a RouteTarget>,
    /// What the serving (or last) attempt consumed, on `served`.
    pub(crate) usage: Option<Usage>,
    /// What each attempt that broke before it consumed, on its own target (by label).
    pub(crate) broken: &'a [(Arc<str>, Usage)],
    pub(crate) error: Option<&'a str>,
    /// The whole answer's JSON, when the client got one (its id and model go on the span).
    pub(crate) answer: Option<&'a str>,
}

impl RequestRecord {
    pub(crate) fn new(
        model: String,
        route: Arc<ServedRoute>,
        started: Instant,
        stream: bool,
        accounting: Accounting,
    ) -> RequestRecord {
        RequestRecord {
            model,
            route,
            started,
            stream,
            reported: false,
            usage_estimated: false,
            accounting,
            ticket: None,
            tool_loop: None,
            cache: None,
            first_chunk: None,
            continuations: 0,
            trace: RequestTrace::none(),
            asker: Asker::default(),
        }
    }

    /// The stream's first chunk went out at `at` (the first call counts; later ones, a tool
    /// loop's later steps, do not).
    pub(crate) fn first_chunk_sent(&mut self, at: Instant) {
        self.first_chunk.get_or_insert(at);
    }

    /// The stream broke and is continued on another target.
    pub(crate) fn continued(&mut self) {
        self.continuations = self.continuations.saturating_add(1);
    }

    /// The request's trace and who asked, for its span and its log line.
    pub(crate) fn traced(&mut self, trace: RequestTrace, asker: Asker) {
        self.trace = trace;
        self.asker = asker;
    }

    /// The request's trace: its attempts are its span's children.
    pub(crate) fn trace(&self) -> &RequestTrace {
        &self.trace
    }

    /// The log line's `key`: the key's name, else its id.
    fn key_name(&self) -> Option<&str> {
        let key = self.asker.key.as_deref()?;
        Some(key.spec.name.as_deref().unwrap_or(&key.id))
    }

    /// Says the request ran a tool loop: `steps` model calls, `calls` aigw tool calls (each
    /// tool call has its own record, written by the toolbox). Logged as `tool_steps` and
    /// `tool_calls`.
    pub(crate) fn tool_loop(&mut self, steps: u32, calls: u32) {
        self.tool_loop = Some((steps, calls));
    }

    /// Says what the response cache did for the request (`hit`, `miss`): logged as `cache`,
    /// observed as the observation's `cache`.
    pub(crate) fn cache(&mut self, status: Option<&'static str>) {
        self.cache = status;
    }

    /// Charges the request's tokens and spend (as the ledger gets it) to `ticket`, its key's
    /// limits, when it is reported.
    pub(crate) fn charge_to(&mut self, ticket: Ticket) {
        self.ticket = Some(ticket);
    }

    /// Marks the usage as partly estimated: logged as `usage_estimated=true`.
    pub(crate) fn usage_estimated(&mut self) {
        self.usage_estimated = true;
    }

    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    /// After a walk of the route: says loudly when an attempt took a target out — a rejected
    /// credential or an empty account (the operator must act; the key itself is never logged),
    /// or a breaker that just opened. Only failed attempts are looked at, so a healthy request
    /// does no work here.
    pub(crate) fn walked(&self, attempts: &[Attempt]) {
        for attempt in attempts {
            let Some(failure) = attempt.failure() else {
                continue;
            };
            let Some(entry) = self.route.entries.get(attempt.target) else {
                continue;
            };
            let snapshot = entry.health.snapshot();
            if snapshot.state != BreakerState::Open {
                continue;
            }
            match failure.class {
                FailureClass::Unauthorized => tracing::warn!(
                    target = %entry.target.label,
                    reason = %Capped(failure),
                    out_for_s = snapshot.open_for.as_secs(),
                    "credential rejected or missing: target marked misconfigured"
                ),
                FailureClass::NoCredit => tracing::warn!(
                    target = %entry.target.label,
                    reason = %Capped(failure),
                    out_for_s = snapshot.open_for.as_secs(),
                    "the provider account has no credit left: target marked misconfigured"
                ),
                _ if snapshot.consecutive_failures > 0 => tracing::warn!(
                    target = %entry.target.label,
                    reason = %Capped(failure),
                    consecutive_failures = snapshot.consecutive_failures,
                    open_for_ms = snapshot.open_for.as_millis() as u64,
                    "circuit breaker opened"
                ),
                _ => {}
            }
        }
    }

    /// Reports the finished request: its spend to the usage ledger, and the one log line it
    /// gets.
    pub(crate) fn finish(mut self, finished: Finished<'_>) {
        self.reported = true;
        let spend = self.account(&finished);
        if let Some(ticket) = self.ticket.take() {
            // Every attempt's tokens, the broken ones' too, and the same spend the ledger got.
            let used = finished
                .broken
                .iter()
                .map(|(_, usage)| *usage)
                .chain(finished.usage)
                .map(tokens)
                .fold(0u64, |sum, t| {
                    sum.saturating_add(t.input).saturating_add(t.output)
                });
            ticket.finish(used, spend);
        }
        self.observe(&finished, spend);
        // The line is off below `info`: skip building its fields too.
        if !tracing::enabled!(target: "aigw::request", tracing::Level::INFO) {
            return;
        }
        let Finished {
            status,
            attempts,
            skipped,
            served,
            usage,
            broken,
            error,
            answer: _,
        } = finished;
        // The client's usage is the request's: every attempt's.
        let usage = broken
            .iter()
            .map(|(_, u)| *u)
            .chain(usage)
            .reduce(super::continuation::add_usage);
        let error = error.map(capped);
        let provider = served.map(|t| t.provider.name.as_str()).unwrap_or("-");
        let target = served.map(|t| &*t.label).unwrap_or("-");
        tracing::info!(
            target: "aigw::request",
            trace_id = self.trace.trace_id(),
            key = self.key_name(),
            conversation = self.asker.conversation.as_deref(),
            model = %self.model,
            provider,
            target,
            status,
            attempts = attempts.len(),
            latency_ms = %Decimal::millis(self.started.elapsed()),
            stream = self.stream,
            prompt_tokens = usage.map(|u| u.prompt_tokens),
            completion_tokens = usage.map(|u| u.completion_tokens),
            usage_estimated = self.usage_estimated.then_some(true),
            tool_steps = self.tool_loop.map(|(steps, _)| steps),
            tool_calls = self.tool_loop.map(|(_, calls)| calls),
            cache = self.cache,
            cost_usd = %Decimal::usd(spend),
            // Failed attempts are metered apart from the one that served: the upstream may
            // bill them, and they are what an operator looks at. Empty fields are left out.
            failed_attempts = attempts
                .iter()
                .any(|a| a.failure().is_some())
                .then(|| tracing::field::display(Capped(FailedAttempts {
                    route: &self.route,
                    attempts,
                }))),
            attempt_log = %AttemptLog {
                route: &self.route,
                attempts,
                skipped,
            },
            error = error.as_deref(),
            "chat completion"
        );
    }
}

impl RequestRecord {
    /// Feeds the process's telemetry (metrics, history) from the report. The attempts'
    /// observations are built on the stack for the usual few (no allocation per request).
    fn observe(&self, finished: &Finished<'_>, spend: u64) {
        const INLINE: usize = 4;
        const EMPTY: AttemptObservation<'static> = AttemptObservation {
            target: "",
            kind: "",
            outcome: "",
            failure_class: None,
            duration: std::time::Duration::ZERO,
        };
        let observe = |a: &Attempt| AttemptObservation {
            target: self
                .route
                .entries
                .get(a.target)
                .map(|e| &*e.target.label)
                .unwrap_or(""),
            kind: a.kind.as_str(),
            outcome: match &a.outcome {
                Outcome::Served => "served",
                Outcome::Cancelled => "cancelled",
                Outcome::Failed(_) => "failed",
            },
            failure_class: a.failure().map(|f| f.class.as_str()),
            duration: a.latency,
        };
        let mut inline = [EMPTY; INLINE];
        let spilled: Vec<AttemptObservation<'_>>;
        let attempts: &[AttemptObservation<'_>] = if finished.attempts.len() <= INLINE {
            for (slot, attempt) in inline.iter_mut().zip(finished.attempts) {
                *slot = observe(attempt);
            }
            &inline[..finished.attempts.len()]
        } else {
            spilled = finished.attempts.iter().map(observe).collect();
            &spilled
        };
        let usage = finished
            .broken
            .iter()
            .map(|(_, u)| *u)
            .chain(finished.usage)
            .reduce(super::continuation::add_usage);
        self.trace.finished(&trace::End {
            status: finished.status,
            target: finished.served,
            input_tokens: usage.map(|u| u64::from(u.prompt_tokens)),
            output_tokens: usage.map(|u| u64::from(u.completion_tokens)),
            answer: finished.answer,
            error_type: finished.error.map(|_| error_type(finished.status)),
        });
        self.accounting.telemetry.request(&RequestObservation {
            route: &self.model,
            provider: finished.served.map(|t| t.provider.name.as_str()),
            target: finished.served.map(|t| &*t.label),
            status: finished.status,
            stream: self.stream,
            key: self.accounting.key(),
            duration: self.started.elapsed(),
            time_to_first_chunk: self
                .first_chunk
                .map(|at| at.saturating_duration_since(self.started)),
            continuations: self.continuations,
            cache: self.cache,
            attempts,
            input_tokens: usage.map(|u| u64::from(u.prompt_tokens)),
            output_tokens: usage.map(|u| u64::from(u.completion_tokens)),
            spend_micro_usd: spend,
            error_type: finished.error.map(|_| "error"),
        });
    }

    /// Prices every part of the finished request at its target's price, adds the parts to the
    /// usage ledger (the request itself counted once, on the target that served or last
    /// served), and returns the request's spend in micro-USD. A request no target served
    /// (exhausted) consumed nothing the gateway knows of and is not in the ledger.
    fn account(&self, finished: &Finished<'_>) -> u64 {
        let Some(served) = finished.served else {
            return 0;
        };
        let accounting = &self.accounting;
        let mut spend = 0u64;
        let mut part = |label: &str, usage: Usage, request: bool| {
            let tokens = tokens(usage);
            let cost = accounting.prices.cost(label, tokens);
            spend = spend.saturating_add(cost);
            if let Some(ledger) = &accounting.ledger {
                ledger.record(&accounting.key_id, label, tokens, cost, request);
            }
        };
        for (label, usage) in finished.broken {
            part(label, *usage, false);
        }
        part(&served.label, finished.usage.unwrap_or_default(), true);
        spend
    }
}

impl Drop for RequestRecord {
    /// A request that was never reported: hyper dropped its handler because the client's
    /// connection ended before the answer. It still gets its one line.
    fn drop(&mut self) {
        if self.reported {
            return;
        }
        self.accounting.telemetry.request(&RequestObservation {
            route: &self.model,
            provider: None,
            target: None,
            status: 499,
            stream: self.stream,
            key: self.accounting.key(),
            duration: self.started.elapsed(),
            time_to_first_chunk: self
                .first_chunk
                .map(|at| at.saturating_duration_since(self.started)),
            continuations: self.continuations,
            cache: self.cache,
            attempts: &[],
            input_tokens: None,
            output_tokens: None,
            spend_micro_usd: 0,
            error_type: Some("client_gone"),
        });
        self.trace.finished(&trace::End {
            status: 499,
            target: None,
            input_tokens: None,
            output_tokens: None,
            answer: None,
            error_type: Some("client_gone"),
        });
        tracing::info!(
            target: "aigw::request",
            trace_id = self.trace.trace_id(),
            key = self.key_name(),
            conversation = self.asker.conversation.as_deref(),
            model = %self.model,
            status = 499u16,
            latency_ms = %Decimal::millis(self.started.elapsed()),
            stream = self.stream,
            error = "client went away before the answer",
            "chat completion"
        );
    }
}

/// The span's `error.type` of a request that ended with an error: the kind of answer it got.
fn error_type(status: u16) -> &'static str {
    match status {
        499 => "client_gone",
        429 => "rate_limited",
        400..=499 => "invalid_request",
        504 => "timeout",
        _ => "upstream_error",
    }
}

/// The label of route entry `index` (empty if out of range).
pub(crate) fn label(route: &ServedRoute, index: usize) -> String {
    target_label(route, index).to_owned()
}

fn target_label(route: &ServedRoute, index: usize) -> &str {
    route
        .entries
        .get(index)
        .map(|e| &*e.target.label)
        .unwrap_or_default()
}

/// `x-aigw-attempt-log`: one `label kind outcome latency` item per attempt, then the skipped
/// targets, for `x-aigw-debug: attempts`.
pub(crate) fn debug_header(
    headers: &mut http::HeaderMap,
    route: &ServedRoute,
    attempts: &[Attempt],
    skipped: &[Skip],
) {
    let log = AttemptLog {
        route,
        attempts,
        skipped,
    };
    if let Ok(value) = HeaderValue::from_str(&log.to_string()) {
        headers.insert("x-aigw-attempt-log", value);
    }
}

/// What every attempt did, for the log line and the debug header. Messages are left out: they
/// are upstream text, not always fit for a header.
struct AttemptLog<'a> {
    route: &'a ServedRoute,
    attempts: &'a [Attempt],
    skipped: &'a [Skip],
}

impl fmt::Display for AttemptLog<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for attempt in self.attempts {
            write!(
                f,
                "{separator}{} {} ",
                target_label(self.route, attempt.target),
                attempt.kind.as_str()
            )?;
            match &attempt.outcome {
                Outcome::Served => f.write_str("served")?,
                Outcome::Cancelled => f.write_str("cancelled")?,
                Outcome::Failed(failure) => {
                    f.write_str(failure.class.as_str())?;
                    if let Some(status) = failure.status {
                        write!(f, "({status})")?;
                    }
                }
            }
            write!(
                f,
                " at={:.1}ms took={:.1}ms",
                attempt.at.as_secs_f64() * 1000.0,
                attempt.latency.as_secs_f64() * 1000.0
            )?;
            separator = ", ";
        }
        for skip in self.skipped {
            write!(
                f,
                "{separator}{} skipped {}",
                target_label(self.route, skip.target),
                skip.reason.as_str()
            )?;
            if let SkipReason::Cooling(wait) | SkipReason::Open(wait) = skip.reason {
                write!(f, " for={:.1}s", wait.as_secs_f64())?;
            }
            separator = ", ";
        }
        Ok(())
    }
}

/// The failed attempts, `label failure` each, `; `-separated.
struct FailedAttempts<'a> {
    route: &'a ServedRoute,
    attempts: &'a [Attempt],
}

impl fmt::Display for FailedAttempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for (attempt, failure) in self
            .attempts
            .iter()
            .filter_map(|a| a.failure().map(|failure| (a, failure)))
        {
            write!(
                f,
                "{separator}{} {failure}",
                target_label(self.route, attempt.target)
            )?;
            separator = "; ";
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use aigw_router::{AttemptKind, Failure, Policy, Route};

    #[test]
    fn logged_upstream_text_is_capped_at_a_character_boundary() {
        assert_eq!(capped("short"), "short");
        let long = format!("a{}", "é".repeat(MAX_LOGGED_TEXT_BYTES));
        let kept = capped(&long);
        assert!(kept.len() < MAX_LOGGED_TEXT_BYTES + 20, "{}", kept.len());
        assert!(kept.ends_with(&format!(
            "…(+{} bytes)",
            long.len() - MAX_LOGGED_TEXT_BYTES + 1
        )));
    }

    #[test]
    fn a_value_written_in_pieces_is_capped_across_them() {
        struct Pieces;
        impl fmt::Display for Pieces {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for _ in 0..3 {
                    f.write_str(&"x".repeat(MAX_LOGGED_TEXT_BYTES / 2 + 1))?;
                }
                Ok(())
            }
        }
        let kept = Capped(Pieces).to_string();
        let written = 3 * (MAX_LOGGED_TEXT_BYTES / 2 + 1);
        assert_eq!(
            kept,
            format!(
                "{}…(+{} bytes)",
                "x".repeat(MAX_LOGGED_TEXT_BYTES),
                written - MAX_LOGGED_TEXT_BYTES
            )
        );
    }

    #[test]
    fn attempt_descriptions_name_target_kind_outcome_and_times() {
        let route: ServedRoute = Route::new(Vec::new(), Policy::default());
        let attempts = [Attempt {
            target: 9,
            kind: AttemptKind::Retry,
            at: Duration::from_millis(52),
            latency: Duration::from_micros(1500),
            outcome: Outcome::Failed(
                Failure::new(FailureClass::Unavailable, "boom").with_status(503),
            ),
        }];
        let skipped = [Skip {
            target: 9,
            reason: SkipReason::Cooling(Duration::from_millis(6500)),
        }];
        assert_eq!(
            AttemptLog {
                route: &route,
                attempts: &attempts,
                skipped: &skipped,
            }
            .to_string(),
            " retry unavailable(503) at=52.0ms took=1.5ms,  skipped cooling for=6.5s"
        );
    }
}
