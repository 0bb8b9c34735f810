//! The Cerebras provider plugin: Cerebras' OpenAI-compatible chat completions
//! (`docs/wire-formats.md`, Cerebras), i.e. the SDK's OpenAI translator plus Cerebras' quirks.
//!
//! - Cerebras rejects parameters it does not implement (400/422) instead of ignoring them:
//!   `frequency_penalty`, `presence_penalty`, `logit_bias` and `n` > 1 are rejected here with a
//!   message naming the field; their no-op forms (`0`, `null`, `{}`, `n: 1`) are dropped.
//!   `service_tier` (an OpenAI billing preference) is dropped.
//! - Errors come as a flat `{message,type,param,code}` body (no `error` wrapper); a request
//!   without an auth header gets 403 `{"detail":"Not authenticated"}` (unauthorized, like 401);
//!   402 (payment required) is no-credit.
//! - Quota errors (`token_quota_exceeded`, `request_quota_exceeded`, `too_many_*_error`) are
//!   rate-limited whatever the status; the wait comes from `retry-after` or the
//!   `x-ratelimit-reset-{requests,tokens}-{minute,hour,day}` headers, which are float seconds
//!   (`11.38`), preferring the exhausted dimension.
//! - A flat error object arriving as a stream frame is a failure, not a chunk.
//! - Responses carry `time_info` beside `usage`; it passes through. Stream usage rides on the
//!   final chunk (beside `choices`) or in a usage chunk; both end as one OpenAI usage chunk.

use std::time::SystemTime;

use aigw_plugin_sdk::failure::{
    UpstreamError, classify, classify_error_value, retry_after_seconds,
};
use aigw_plugin_sdk::openai::{Compatible, Dialect};
use aigw_plugin_sdk::{CredentialPlacement, Descriptor, Failure, HttpResponse};
use serde_json::{Map, Value};

/// The Cerebras dialect of the OpenAI API.
pub struct Cerebras;

/// The exported provider: the SDK's OpenAI translator with the Cerebras dialect.
pub type CerebrasProvider = Compatible<Cerebras>;

aigw_plugin_sdk::export_provider!(Compatible<Cerebras>);

/// Error codes and types Cerebras uses for its request and token quotas.
const QUOTA_CODES: [&str; 4] = [
    "token_quota_exceeded",
    "request_quota_exceeded",
    "too_many_tokens_error",
    "too_many_requests_error",
];

impl Dialect for Cerebras {
    fn stream_error(frame: &Map<String, Value>) -> Option<Failure> {
        stream_error(frame)
    }

    fn describe() -> Descriptor {
        Descriptor {
            name: "cerebras".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            default_base_url: "https://api.cerebras.ai/v1".to_owned(),
            origins: Vec::new(),
            credential: CredentialPlacement::bearer(),
            credential_required: true,
            models: ["llama3.1-8b", "llama-3.3-70b", "gpt-oss-120b", "qwen-3-32b"]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    fn adjust_request(body: &mut Map<String, Value>) -> Result<(), Failure> {
        for field in ["frequency_penalty", "presence_penalty"] {
            match body.get(field) {
                None | Some(Value::Null) => {}
                Some(value) if value.as_f64() == Some(0.0) => {}
                Some(_) => return Err(unsupported(field)),
            }
            body.remove(field);
        }
        match body.get("logit_bias") {
            None | Some(Value::Null) => {}
            Some(Value::Object(bias)) if bias.is_empty() => {}
            Some(_) => return Err(unsupported("logit_bias")),
        }
        body.remove("logit_bias");
        if let Some(n) = body.get("n").filter(|n| !n.is_null()) {
            if n.as_u64() != Some(1) {
                return Err(Failure::InvalidRequest(format!(
                    "cerebras does not support `n` other than 1 (got {n})"
                )));
            }
            body.remove("n");
        }
        body.remove("service_tier");
        Ok(())
    }

    fn classify(response: &HttpResponse) -> Failure {
        let error = UpstreamError::parse(&response.body);
        if response.status != 429 && is_quota(&error) {
            return Failure::RateLimited {
                retry_after_seconds: retry_after_seconds(
                    &response.headers,
                    error.message.as_deref(),
                    SystemTime::now(),
                ),
                message: error
                    .message
                    .unwrap_or_else(|| format!("upstream answered HTTP {}", response.status)),
            };
        }
        classify(response)
    }
}

fn is_quota(error: &UpstreamError) -> bool {
    // `code`, which falls back to `type` when absent: a 503 `queue_exceeded` also has type
    // `too_many_requests_error` but is an overload, not this account's quota.
    error
        .code
        .as_deref()
        .is_some_and(|code| QUOTA_CODES.contains(&code))
}

/// A mid-stream error frame: `{"error":…}` (left to the SDK decoder) or Cerebras' flat
/// `{message,type,code}` object without `choices`.
pub(crate) fn stream_error(frame: &Map<String, Value>) -> Option<Failure> {
    if frame.contains_key("choices") || frame.contains_key("error") {
        return None;
    }
    let message = frame.get("message").and_then(Value::as_str)?;
    if !(frame.contains_key("type") || frame.contains_key("code")) {
        return None;
    }
    let value = Value::Object(frame.clone());
    let error = UpstreamError::from_value(&value);
    if is_quota(&error) {
        return Some(Failure::RateLimited {
            retry_after_seconds: retry_after_seconds(&[], Some(message), SystemTime::now()),
            message: message.to_owned(),
        });
    }
    Some(classify_error_value(&value))
}

fn unsupported(field: &str) -> Failure {
    Failure::InvalidRequest(format!("cerebras does not support `{field}`"))
}

#[cfg(test)]
mod tests;
