//! Gemini's `google.rpc.Status` error envelope → [`Failure`] (`docs/wire-formats.md`, Gemini
//! native and Error classification across providers).
//!
//! On top of the SDK's generic rules: a bad key is HTTP 400 with `ErrorInfo.reason`
//! `API_KEY_INVALID` (unauthorized, not invalid-request); `FAILED_PRECONDITION` (free tier not
//! available in the region) is an account problem (unauthorized); a 429 says how long to wait only
//! in `RetryInfo.retryDelay` (`"23s"`, `"47.884324799s"`) or in its message ("Please retry in
//! 23.47s."), never in headers.

use std::time::SystemTime;

use aigw_plugin_sdk::failure::{UpstreamError, classify_error, parse_go_duration};
use aigw_plugin_sdk::{Failure, Header, HttpResponse};
use serde_json::Value;

/// A non-2xx HTTP answer.
pub fn classify_response(response: &HttpResponse) -> Failure {
    let value = serde_json::from_slice::<Value>(&response.body).ok();
    let error = match &value {
        Some(value) => UpstreamError::from_value(value),
        None => UpstreamError::parse(&response.body),
    };
    classify(response.status, &response.headers, &error, value.as_ref())
}

/// An `{"error":…}` object that arrived with HTTP 200 (a mid-stream frame or an error body). Its
/// `code` is the HTTP status Google would have answered; without one, the gRPC `status` decides.
pub fn classify_error_frame(value: &Value) -> Failure {
    let error = UpstreamError::from_value(value);
    let inner = error_object(value);
    let status = inner
        .and_then(|inner| inner.get("code"))
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .or_else(|| error.code.as_deref().and_then(status_for_grpc))
        .unwrap_or(500);
    classify(status, &[], &error, Some(value))
}

fn classify(
    status: u16,
    headers: &[Header],
    error: &UpstreamError,
    value: Option<&Value>,
) -> Failure {
    let details = details(value);
    let failure = classify_error(status, headers, error, SystemTime::now());
    let message = failure.message().to_owned();
    let grpc = error.code.as_deref().unwrap_or("");

    if status == 429 || (grpc.eq_ignore_ascii_case("RESOURCE_EXHAUSTED") && status != 402) {
        let retry_after_seconds = retry_info_seconds(&details)
            .or_else(|| retry_in_message(&message))
            .or(match failure {
                Failure::RateLimited {
                    retry_after_seconds,
                    ..
                } => retry_after_seconds,
                _ => None,
            });
        return Failure::RateLimited {
            retry_after_seconds,
            message,
        };
    }
    let key_invalid = details.iter().any(|detail| {
        detail
            .get("reason")
            .and_then(Value::as_str)
            .is_some_and(|reason| reason.starts_with("API_KEY_"))
    }) || message.to_ascii_lowercase().contains("api key not valid");
    if key_invalid
        || [
            "UNAUTHENTICATED",
            "PERMISSION_DENIED",
            "FAILED_PRECONDITION",
        ]
        .iter()
        .any(|code| grpc.eq_ignore_ascii_case(code))
    {
        return Failure::Unauthorized(message);
    }
    if matches!(failure, Failure::InvalidRequest(_))
        && ["UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"]
            .iter()
            .any(|code| grpc.eq_ignore_ascii_case(code))
    {
        return Failure::Unavailable(message);
    }
    failure
}

/// The `error` object of an envelope (`{"error":{…}}`, or the array form `[{"error":{…}}]`).
fn error_object(value: &Value) -> Option<&Value> {
    match value {
        Value::Array(items) => items.first().and_then(error_object),
        Value::Object(object) => object.get("error").filter(|inner| inner.is_object()),
        _ => None,
    }
}

fn details(value: Option<&Value>) -> Vec<&Value> {
    value
        .and_then(error_object)
        .and_then(|inner| inner.get("details"))
        .and_then(Value::as_array)
        .map(|details| details.iter().collect())
        .unwrap_or_default()
}

/// `RetryInfo.retryDelay`, a protobuf duration string, in whole seconds rounded up.
fn retry_info_seconds(details: &[&Value]) -> Option<u32> {
    details.iter().find_map(|detail| {
        let is_retry_info = detail
            .get("@type")
            .and_then(Value::as_str)
            .is_none_or(|kind| kind.ends_with("RetryInfo"));
        if !is_retry_info {
            return None;
        }
        let delay = detail.get("retryDelay")?;
        let seconds = match delay {
            Value::String(text) => parse_go_duration(text)?,
            // The JSON mapping is a string, but tolerate `{"seconds": 23, "nanos": …}`.
            Value::Object(parts) => {
                let whole = parts.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                let nanos = parts.get("nanos").and_then(Value::as_f64).unwrap_or(0.0);
                whole + nanos / 1e9
            }
            Value::Number(number) => number.as_f64()?,
            _ => return None,
        };
        Some(seconds_up(seconds))
    })
}

/// "Please retry in 23.47s." in a 429 message.
fn retry_in_message(message: &str) -> Option<u32> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("retry in ")? + "retry in ".len();
    let token = lower[start..].split_whitespace().next()?;
    let token = token.trim_end_matches(['.', ',', ';', ')']);
    parse_go_duration(token).map(seconds_up)
}

fn seconds_up(seconds: f64) -> u32 {
    if !seconds.is_finite() || seconds <= 0.0 {
        return 0;
    }
    let seconds = seconds.ceil();
    if seconds >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // Integral and in range after the checks above.
        seconds as u32
    }
}

/// The HTTP status Google maps a gRPC status to.
fn status_for_grpc(code: &str) -> Option<u16> {
    Some(match code.to_ascii_uppercase().as_str() {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ABORTED" | "ALREADY_EXISTS" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        _ => return None,
    })
}
