//! The HTTP side of a key's limits: admission of a chat completion for a key (before any
//! target is tried), the 429 a refused request gets — in OpenAI's shape and codes
//! (`rate_limit_exceeded`, `insufficient_quota`), with `retry-after` and `retry-after-ms`, and a
//! message saying the limit is aigw's own so a client tells it from a provider's 429 — and
//! OpenAI's `x-ratelimit-*` headers on every chat answer for a key with a rate limit. The
//! accounting itself is `aigw_access::Limiter`'s.

use std::fmt::Write as _;
use std::time::Duration;

use aigw_access::{
    Gauge, Headroom, Key, Limits, Metric, Period, Refusal, Refused, Subject, SubjectKind, Ticket,
};
use aigw_telemetry::QuotaObservation;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::error::ApiError;
use crate::gateway::Gateway;

/// Admits a request for `key`: its ticket (charged when the request is reported), or the
/// answer refusing it. A gateway without a limiter (in-process, no store) limits nothing.
pub(crate) async fn admit(gateway: &Gateway, key: &Key) -> Result<Option<Ticket>, ApiError> {
    let Some(limiter) = &gateway.limiter else {
        return Ok(None);
    };
    match limiter.admit(key).await {
        Ok(ticket) => Ok(Some(ticket)),
        Err(Refused::Limit(refusal)) => {
            gateway.telemetry().quota_rejected(&QuotaObservation {
                key: &key.id,
                limit: limit_name(&refusal),
            });
            Err(refused(&refusal))
        }
        Err(Refused::Unavailable(error)) => {
            tracing::warn!(error = %error, "limits: the quota store could not be reached");
            let mut answer = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "aigw could not check this key's limits (its store is busy or unavailable); \
                 retry later",
            )
            .code("limits_unavailable");
            answer.retry_after = Some(1);
            Err(answer)
        }
    }
}

/// Adds OpenAI's rate-limit headers for `key` to an answer, when the key (else its team) has a
/// requests or tokens limit: its figures as this process knows them (no store access).
pub(crate) fn add_headers(gateway: &Gateway, key: &Key, headers: &mut HeaderMap) {
    let Some(limiter) = &gateway.limiter else {
        return;
    };
    let rated = |limits: &Limits| {
        limits.requests_per_minute.is_some() || limits.tokens_per_minute.is_some()
    };
    let own = Limits::of(&key.spec);
    let subject = if rated(&own) {
        Subject {
            kind: SubjectKind::Key,
            id: &key.id,
            limits: own,
        }
    } else {
        match &key.team {
            Some(team) if rated(&Limits::of_team(&team.spec)) => Subject {
                kind: SubjectKind::Team,
                id: &team.id,
                limits: Limits::of_team(&team.spec),
            },
            _ => return,
        }
    };
    headroom_headers(&limiter.headroom(&subject), headers);
}

/// OpenAI's rate-limit header names, made once (a name given as a string is checked and
/// hashed as a new name on every insert; a clone of a static name copies two pointers).
static REQUESTS_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
];
static TOKENS_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

fn headroom_headers(headroom: &Headroom, headers: &mut HeaderMap) {
    // Room for all six at once: the answer's map would otherwise grow (and rehash) mid-way.
    headers.reserve(6);
    let mut put = |gauge: Option<Gauge>, [limit, remaining, reset]: &[HeaderName; 3]| {
        let Some(gauge) = gauge else { return };
        headers.insert(limit.clone(), HeaderValue::from(gauge.limit));
        headers.insert(remaining.clone(), HeaderValue::from(gauge.remaining));
        if let Ok(value) = HeaderValue::from_str(&openai_duration(gauge.reset_ms)) {
            headers.insert(reset.clone(), value);
        }
    };
    put(headroom.requests, &REQUESTS_HEADERS);
    put(headroom.tokens, &TOKENS_HEADERS);
}

/// The limit a refusal names, as the metrics label it (`team_…` for the key's team's).
fn limit_name(refusal: &Refusal) -> &'static str {
    let team = refusal.kind == SubjectKind::Team;
    match (refusal.metric, team) {
        (Metric::Requests, false) => "requests_per_minute",
        (Metric::Requests, true) => "team_requests_per_minute",
        (Metric::DailyRequests, false) => "requests_per_day",
        (Metric::DailyRequests, true) => "team_requests_per_day",
        (Metric::Tokens, false) => "tokens_per_minute",
        (Metric::Tokens, true) => "team_tokens_per_minute",
        (Metric::Parallel, false) => "parallel_requests",
        (Metric::Parallel, true) => "team_parallel_requests",
        (Metric::Budget, false) => "budget",
        (Metric::Budget, true) => "team_budget",
    }
}

/// The 429 of a refused request.
pub(crate) fn refused(refusal: &Refusal) -> ApiError {
    let who = match refusal.kind {
        SubjectKind::Key => format!("key {}", refusal.id),
        SubjectKind::Team => format!("team {}", refusal.id),
        SubjectKind::Tools => format!("the tool calls of key {}", refusal.id),
    };
    let retry = refusal.retry_after.map(seconds);
    let retry_text = match retry {
        Some(s) => format!("; retry in {s} s"),
        None => String::new(),
    };
    let (kind, code, message) = match refusal.metric {
        Metric::Requests => (
            "requests",
            "rate_limit_exceeded",
            format!(
                "aigw key limit: {} per minute reached for {who}{retry_text}",
                counted(refusal.limit, "request", "requests")
            ),
        ),
        Metric::DailyRequests => (
            "requests",
            "rate_limit_exceeded",
            format!(
                "aigw key limit: {} per day (UTC) reached for {who}{retry_text}",
                counted(refusal.limit, "request", "requests")
            ),
        ),
        Metric::Tokens => (
            "tokens",
            "rate_limit_exceeded",
            format!(
                "aigw key limit: {} per minute reached for {who}{retry_text}",
                counted(refusal.limit, "token", "tokens")
            ),
        ),
        Metric::Parallel => (
            "requests",
            "rate_limit_exceeded",
            format!(
                "aigw key limit: {} reached for {who}; retry when one ends",
                counted(refusal.limit, "concurrent request", "concurrent requests")
            ),
        ),
        Metric::Budget => {
            let mut message = format!("aigw key limit: the budget of {} USD", usd(refusal.limit));
            let _ = match refusal.period {
                Some(Period::Day) => write!(message, " per day (UTC)"),
                Some(Period::Week) => write!(message, " per week (from Monday, UTC)"),
                Some(Period::Month) => write!(message, " per month (UTC)"),
                None => Ok(()),
            };
            let _ = write!(message, " is spent for {who}");
            let _ = match refusal.retry_after {
                Some(after) => write!(message, "; it renews in {}", human(after)),
                None => write!(message, "; an operator may raise it"),
            };
            ("insufficient_quota", "insufficient_quota", message)
        }
    };
    let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, kind, message).code(code);
    error.retry_after = retry;
    error.retry_after_ms = refusal
        .retry_after
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    error
}

/// `1 request`, `60 requests`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whole seconds to wait, rounded up, at least 1.
fn seconds(after: Duration) -> u64 {
    after.as_millis().div_ceil(1000).max(1) as u64
}

/// Micro-USD as USD with two decimals or more when needed (`5.00`, `0.0025`).
fn usd(micro: u64) -> String {
    let whole = micro / 1_000_000;
    let fraction = micro % 1_000_000;
    let mut digits = format!("{fraction:06}");
    while digits.len() > 2 && digits.ends_with('0') {
        digits.pop();
    }
    format!("{whole}.{digits}")
}

/// A wait for people: `3 h 2 min`, `12 min`, `40 s`.
fn human(after: Duration) -> String {
    let total = after.as_secs();
    let (days, hours, minutes) = (total / 86_400, total / 3600 % 24, total / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{} s", seconds(after)),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// A duration as OpenAI's `x-ratelimit-reset-*` write it (Go's duration format): `20ms`,
/// `1s`, `59.5s`, `6m0s`, `1h0m0s`.
fn openai_duration(ms: u64) -> String {
    // Numbers through itoa into one string: this is on every answer of a rate-limited key,
    // twice, and a `format!` per part was ~2,000 instructions of a request.
    let mut out = String::with_capacity(16);
    let number = |out: &mut String, n: u64| out.push_str(itoa::Buffer::new().format(n));
    if ms < 1000 {
        number(&mut out, ms);
        out.push_str("ms");
        return out;
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let rest = ms % 60_000;
    if hours > 0 {
        number(&mut out, hours);
        out.push('h');
    }
    if hours > 0 || minutes > 0 {
        number(&mut out, minutes);
        out.push('m');
    }
    number(&mut out, rest / 1000);
    let frac = rest % 1000;
    if frac > 0 {
        // 1000 + frac: the thousandths with their leading zeros (`1050` → `05`), less the
        // trailing ones (`.5`, not `.500`).
        out.push('.');
        out.push_str(itoa::Buffer::new().format(1000 + frac)[1..].trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn resets_are_written_as_openai_writes_them() {
        assert_eq!(openai_duration(0), "0ms");
        assert_eq!(openai_duration(20), "20ms");
        assert_eq!(openai_duration(1000), "1s");
        assert_eq!(openai_duration(59_500), "59.5s");
        assert_eq!(openai_duration(360_000), "6m0s");
        assert_eq!(openai_duration(61_250), "1m1.25s");
        assert_eq!(openai_duration(3_600_000), "1h0m0s");
        assert_eq!(openai_duration(999), "999ms");
        assert_eq!(openai_duration(1_005), "1.005s");
        assert_eq!(openai_duration(1_050), "1.05s");
        assert_eq!(openai_duration(60_000), "1m0s");
        assert_eq!(openai_duration(3_723_040), "1h2m3.04s");
        assert_eq!(openai_duration(90_061_001), "25h1m1.001s");
    }

    fn refusal(metric: Metric, limit: u64, retry_ms: Option<u64>) -> Refusal {
        Refusal {
            kind: SubjectKind::Key,
            id: "key_0123".into(),
            metric,
            limit,
            period: (metric == Metric::Budget).then_some(Period::Day),
            retry_after: retry_ms.map(Duration::from_millis),
            headroom: Headroom::default(),
        }
    }

    #[test]
    fn refusals_say_whose_limit_and_when_to_retry() {
        let rpm = refused(&refusal(Metric::Requests, 60, Some(11_200)));
        assert_eq!(rpm.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            (rpm.kind, rpm.code),
            ("requests", Some("rate_limit_exceeded"))
        );
        assert_eq!(
            rpm.message,
            "aigw key limit: 60 requests per minute reached for key key_0123; retry in 12 s"
        );
        assert_eq!(
            (rpm.retry_after, rpm.retry_after_ms),
            (Some(12), Some(11_200))
        );
        let response = rpm.response();
        assert_eq!(response.headers()["retry-after"], "12");
        assert_eq!(response.headers()["retry-after-ms"], "11200");

        let tpm = refused(&refusal(Metric::Tokens, 1000, Some(300)));
        assert_eq!(
            (tpm.kind, tpm.code),
            ("tokens", Some("rate_limit_exceeded"))
        );
        assert!(
            tpm.message
                .ends_with("1000 tokens per minute reached for key key_0123; retry in 1 s")
        );

        let parallel = refused(&refusal(Metric::Parallel, 4, Some(1000)));
        assert!(
            parallel.message.contains("4 concurrent requests"),
            "{}",
            parallel.message
        );
        assert_eq!(parallel.code, Some("rate_limit_exceeded"));

        let budget = refused(&refusal(
            Metric::Budget,
            5_000_000,
            Some(3 * 3_600_000 + 120_000),
        ));
        assert_eq!(
            (budget.kind, budget.code),
            ("insufficient_quota", Some("insufficient_quota"))
        );
        assert_eq!(
            budget.message,
            "aigw key limit: the budget of 5.00 USD per day (UTC) is spent for key key_0123; \
             it renews in 3 h 2 min"
        );
        let mut lifetime = refusal(Metric::Budget, 2_500, None);
        lifetime.period = None;
        lifetime.kind = SubjectKind::Team;
        let lifetime = refused(&lifetime);
        assert_eq!(
            lifetime.message,
            "aigw key limit: the budget of 0.0025 USD is spent for team key_0123; an operator \
             may raise it"
        );
        assert_eq!(lifetime.retry_after, None);
    }

    #[test]
    fn headers_carry_both_gauges() {
        let mut headers = HeaderMap::new();
        headroom_headers(
            &Headroom {
                requests: Some(Gauge {
                    limit: 60,
                    remaining: 59,
                    reset_ms: 59_500,
                }),
                tokens: Some(Gauge {
                    limit: 1000,
                    remaining: 0,
                    reset_ms: 360_000,
                }),
            },
            &mut headers,
        );
        assert_eq!(headers["x-ratelimit-limit-requests"], "60");
        assert_eq!(headers["x-ratelimit-remaining-requests"], "59");
        assert_eq!(headers["x-ratelimit-reset-requests"], "59.5s");
        assert_eq!(headers["x-ratelimit-limit-tokens"], "1000");
        assert_eq!(headers["x-ratelimit-remaining-tokens"], "0");
        assert_eq!(headers["x-ratelimit-reset-tokens"], "6m0s");
        let mut none = HeaderMap::new();
        headroom_headers(&Headroom::default(), &mut none);
        assert!(none.is_empty());
    }
}
