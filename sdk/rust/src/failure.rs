//! Classifying an upstream's error answer into a [`Failure`], shared by every provider.
//!
//! Providers disagree on statuses, error envelopes and where they say how long to wait
//! (`docs/wire-formats.md`, "Error classification across providers" and "Envelopes and quirks at
//! a glance"), so everything here is tolerant: unknown shapes fall back to the raw body text, and
//! nothing panics on bad input.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::types::{Failure, Header, HttpResponse, header_value};

/// The longest raw (non-JSON) body text kept in a failure message; HTML error pages are long.
const MAX_RAW_MESSAGE_CHARS: usize = 500;

/// What an error body said, whichever envelope it came in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamError {
    /// The human-readable message, verbatim.
    pub message: Option<String>,
    /// The machine-readable code: OpenAI's `code` (or `type` when `code` is absent), Gemini's
    /// `status`, Novita's `reason`. Numeric codes are kept as their decimal text.
    pub code: Option<String>,
    /// OpenAI's `type` (`invalid_request_error`, `tokens`, …).
    pub kind: Option<String>,
}

impl UpstreamError {
    /// Reads an error body. Accepts every envelope in `docs/wire-formats.md` (Error envelopes):
    /// OpenAI `{"error":{message,type,code}}`, flat `{message,type,code}` (Cerebras),
    /// `{"error":"text"}` (Hugging Face), `[{"error":{…}}]` (Gemini's OpenAI endpoint), problem
    /// details `{title,detail,status}` (Replicate), `{code,reason,message}` (Novita), FastAPI
    /// `{"detail":[{"msg":…}]}`; anything else becomes its (trimmed, shortened) text.
    pub fn parse(body: &[u8]) -> UpstreamError {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => UpstreamError::from_value(&value),
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                UpstreamError {
                    message: (!text.is_empty()).then(|| shorten(text)),
                    ..UpstreamError::default()
                }
            }
        }
    }

    /// Reads an already parsed error value (a body, or a mid-stream `{"error":…}` frame).
    pub fn from_value(value: &Value) -> UpstreamError {
        match value {
            Value::Array(items) => items
                .first()
                .map(UpstreamError::from_value)
                .unwrap_or_default(),
            Value::String(text) => UpstreamError {
                message: Some(text.clone()),
                ..UpstreamError::default()
            },
            Value::Object(object) => {
                if let Some(inner) = object.get("error").filter(|inner| !inner.is_null()) {
                    let mut error = UpstreamError::from_value(inner);
                    // `{"error":"text"}` may carry its message only in `error`; a wrapper may
                    // carry the message beside a non-object `error` (e.g. `"error": true`).
                    if error.message.is_none() {
                        error.message = text_field(value, "message");
                    }
                    return error;
                }
                let kind = text_field(value, "type");
                let code = text_field(value, "status")
                    .filter(|status| !status.bytes().all(|byte| byte.is_ascii_digit()))
                    .or_else(|| text_field(value, "reason"))
                    .or_else(|| text_field(value, "code"))
                    .or_else(|| kind.clone());
                let message = text_field(value, "message")
                    .or_else(|| text_field(value, "detail"))
                    .or_else(|| detail_list_message(value))
                    .or_else(|| text_field(value, "title"))
                    .or_else(|| text_field(value, "msg"));
                UpstreamError {
                    message,
                    code,
                    kind,
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => UpstreamError::default(),
        }
    }

    fn code_is(&self, codes: &[&str]) -> bool {
        [&self.code, &self.kind].into_iter().flatten().any(|code| {
            codes
                .iter()
                .any(|candidate| code.eq_ignore_ascii_case(candidate))
        })
    }

    fn message_or(&self, status: u16) -> String {
        match &self.message {
            Some(message) => message.clone(),
            None => match &self.code {
                Some(code) => format!("upstream answered HTTP {status} ({code})"),
                None => format!("upstream answered HTTP {status}"),
            },
        }
    }
}

/// A string or number field as text.
fn text_field(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// FastAPI validation errors: `{"detail":[{"loc":[…],"msg":"…"}]}`.
fn detail_list_message(value: &Value) -> Option<String> {
    let items = value.get("detail")?.as_array()?;
    let messages: Vec<&str> = items
        .iter()
        .filter_map(|item| item.get("msg").and_then(Value::as_str))
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_RAW_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Classifies a non-2xx upstream response.
pub fn classify(response: &HttpResponse) -> Failure {
    classify_parts(response.status, &response.headers, &response.body)
}

/// [`classify`] for callers that hold the pieces.
pub fn classify_parts(status: u16, headers: &[Header], body: &[u8]) -> Failure {
    let error = UpstreamError::parse(body);
    classify_error(status, headers, &error, SystemTime::now())
}

/// The classification rules, with the clock passed in so tests can pin HTTP-date retry delays.
pub fn classify_error(
    status: u16,
    headers: &[Header],
    error: &UpstreamError,
    now: SystemTime,
) -> Failure {
    let message = error.message_or(status);
    let rate_limited = || Failure::RateLimited {
        retry_after_seconds: retry_after_seconds(headers, error.message.as_deref(), now),
        message: message.clone(),
    };
    match status {
        // No credit left, whatever status says it (OpenAI's 429 `insufficient_quota`, Novita's
        // 403 `NOT_ENOUGH_BALANCE`): waiting does not help, the account must be topped up.
        400..=499 if is_no_credit(error) => Failure::NoCredit(message),
        429 => rate_limited(),
        // Groq answers 413 when one request alone exceeds the tokens-per-minute budget.
        413 if error.code_is(&["rate_limit_exceeded"]) => rate_limited(),
        _ if is_content_filter(error) && (400..500).contains(&status) => {
            Failure::ContentFiltered(message)
        }
        400 | 413 | 422 if is_context_length(error) => Failure::ContextLengthExceeded(message),
        401 | 403 => Failure::Unauthorized(message),
        // Payment required: the account has no credit (OpenRouter, Hugging Face, Cerebras,
        // Gemini's prepaid credit, Replicate). Another provider's account may still serve.
        402 => Failure::NoCredit(message),
        408 | 409 | 424 | 425 | 498 | 499 | 529 => Failure::Unavailable(message),
        500..=599 => Failure::Unavailable(message),
        400..=499 => Failure::InvalidRequest(message),
        _ => Failure::BadResponse(format!("unexpected HTTP status {status}: {message}")),
    }
}

/// Classifies an error object that arrived with a 2xx status: a mid-stream `{"error":…}` frame or
/// an error body on a 200. A numeric code that is an HTTP status is classified as that status;
/// otherwise known codes decide, and anything else is `unavailable` (another target may serve).
pub fn classify_error_value(value: &Value) -> Failure {
    let error = UpstreamError::from_value(value);
    let numeric_status = value
        .get("error")
        .and_then(|inner| inner.get("code"))
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code));
    if let Some(status) = numeric_status {
        return classify_error(status, &[], &error, SystemTime::now());
    }
    let message = error.message_or(200);
    if is_no_credit(&error) {
        Failure::NoCredit(message)
    } else if error.code_is(&["rate_limit_exceeded", "resource_exhausted"]) {
        Failure::RateLimited {
            retry_after_seconds: retry_after_seconds(
                &[],
                error.message.as_deref(),
                SystemTime::now(),
            ),
            message,
        }
    } else if is_context_length(&error) {
        Failure::ContextLengthExceeded(message)
    } else if is_content_filter(&error) {
        Failure::ContentFiltered(message)
    } else {
        Failure::Unavailable(message)
    }
}

/// Whether the error's code says the account has no credit or quota left: OpenAI's
/// `insufficient_quota` (on a 429) and Novita's `NOT_ENOUGH_BALANCE` (on a 403)
/// (`docs/wire-formats.md`, OpenAI baseline and Novita). A 402 is no credit whatever its body says.
pub fn is_no_credit(error: &UpstreamError) -> bool {
    error.code_is(&["insufficient_quota", "NOT_ENOUGH_BALANCE"])
}

/// Whether the error says the prompt does not fit: OpenAI's code, or one of the texts in
/// `docs/wire-formats.md`, "Error classification across providers" (codes differ across
/// providers, the texts are stable).
pub fn is_context_length(error: &UpstreamError) -> bool {
    const TEXTS: [&str; 6] = [
        "please reduce the length of the messages or completion",
        "maximum context length",
        "exceeds the maximum number of tokens allowed",
        "longer than the model's context length",
        "context length exceeded",
        "context_length_exceeded",
    ];
    error.code_is(&["context_length_exceeded"])
        || error.message.as_deref().is_some_and(|message| {
            let message = message.to_ascii_lowercase();
            TEXTS.iter().any(|text| message.contains(text))
        })
}

/// Whether the error is a policy rejection (OpenAI `content_policy_violation`, Azure
/// `content_filter`, OpenRouter moderation "flagged").
pub fn is_content_filter(error: &UpstreamError) -> bool {
    const TEXTS: [&str; 3] = [
        "content policy",
        "content management policy",
        "your input was flagged",
    ];
    error.code_is(&[
        "content_filter",
        "content_policy_violation",
        "content_filtered",
        "moderation_blocked",
    ]) || error.message.as_deref().is_some_and(|message| {
        let message = message.to_ascii_lowercase();
        TEXTS.iter().any(|text| message.contains(text))
    })
}

/// How long to wait before trying this target again, in whole seconds rounded up, from (in order)
/// the `retry-after` header (seconds or an HTTP date), a delay in the message ("Please try again
/// in 5.289s", "resets in ~30s"), or the `x-ratelimit-reset-*` headers.
pub fn retry_after_seconds(
    headers: &[Header],
    message: Option<&str>,
    now: SystemTime,
) -> Option<u32> {
    if let Some(value) = header_value(headers, "retry-after") {
        if let Some(seconds) = parse_seconds(value) {
            return Some(seconds_up(seconds));
        }
        if let Ok(date) = httpdate::parse_http_date(value.trim()) {
            let wait = date.duration_since(now).unwrap_or(Duration::ZERO);
            return Some(seconds_up(wait.as_secs_f64()));
        }
    }
    if let Some(seconds) = message.and_then(delay_in_message) {
        return Some(seconds_up(seconds));
    }
    reset_header_seconds(headers, now).map(seconds_up)
}

fn seconds_up(seconds: f64) -> u32 {
    let seconds = seconds.max(0.0).ceil();
    if seconds >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range and integral after the checks above.
        seconds as u32
    }
}

/// A plain non-negative number of seconds (`30`, `11.38`).
fn parse_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty()
        || !text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.')
    {
        return None;
    }
    text.parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite())
}

/// A delay stated in an error message: Groq/OpenAI "Please try again in 5.289s" (also `1m30s`,
/// `850ms`), Replicate "Your rate limit resets in ~30s".
fn delay_in_message(message: &str) -> Option<f64> {
    let lower = message.to_ascii_lowercase();
    ["try again in ", "resets in "].iter().find_map(|marker| {
        let start = lower.find(marker)? + marker.len();
        let rest = lower[start..].trim_start_matches('~');
        let token: &str = rest.split_whitespace().next()?;
        // "5.289s." at the end of a sentence.
        let token = token.trim_end_matches(['.', ',', ';', ')']);
        parse_go_duration(token)
    })
}

/// A Go-style duration string (`7.66s`, `2m59.56s`, `6ms`, `1h0m0s`, `250us`) in seconds. A bare
/// number counts as seconds (Cerebras sends `11.38`).
pub fn parse_go_duration(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Some(seconds) = parse_seconds(text) {
        return Some(seconds);
    }
    let mut total = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The `x-ratelimit-reset-*` headers: the dimension that is exhausted (its `remaining` is 0) if
/// one is, else the soonest reset (a hint only; a target retried early just cools down again).
/// OpenRouter's bare `x-ratelimit-reset` is an epoch time in milliseconds.
fn reset_header_seconds(headers: &[Header], now: SystemTime) -> Option<f64> {
    let mut soonest: Option<f64> = None;
    for header in headers {
        let name = header.name.to_ascii_lowercase();
        let Some(dimension) = name.strip_prefix("x-ratelimit-reset") else {
            continue;
        };
        let Some(seconds) = reset_value_seconds(dimension, &header.value, now) else {
            continue;
        };
        let remaining = format!("x-ratelimit-remaining{dimension}");
        if header_value(headers, &remaining).is_some_and(|value| value.trim() == "0") {
            return Some(seconds);
        }
        soonest = Some(soonest.map_or(seconds, |current| current.min(seconds)));
    }
    soonest
}

fn reset_value_seconds(dimension: &str, value: &str, now: SystemTime) -> Option<f64> {
    let seconds = parse_go_duration(value)?;
    // An epoch in milliseconds (13 digits today) cannot be a sensible relative delay.
    if dimension.is_empty() && seconds > 1e11 {
        let now_ms = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0;
        return Some(((seconds - now_ms) / 1000.0).max(0.0));
    }
    Some(seconds)
}
