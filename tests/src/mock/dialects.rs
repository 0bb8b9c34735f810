//! The wire pieces of the OpenAI-dialect flavors beyond Groq and OpenAI: Cerebras, OpenRouter,
//! Novita and the Hugging Face router (their sections of `docs/wire-formats.md`).
//!
//! What differs per flavor, and where the mock reproduces it:
//!
//! | flavor | base (mock `base_url()`) | error body | 429 wait | answer extras | stream |
//! |---|---|---|---|---|---|
//! | Cerebras | `/v1` | flat `{message,type,param,code}` | `x-ratelimit-reset-tokens-minute: 6.38` (float seconds) | `time_info`, `prompt_tokens_details` | usage + `time_info` on the finish chunk (no `choices: []` chunk) |
//! | OpenRouter | `/api/v1` | `{"error":{"code":<status>,"message","metadata"}}` | `X-RateLimit-Reset`: epoch **ms**, 7 s ahead | `gen-` ids, `provider`, `native_finish_reason`, `usage.cost` | `: OPENROUTER PROCESSING` comments; error chunk with `finish_reason: "error"` |
//! | Novita | `/openai` (routes under `/openai/v1`) | `{"code":<status>,"reason","message","metadata"}` | `retry-after: 7` (no header documented; assumed) | none | OpenAI; error frame `{code,reason,message}` |
//! | HuggingFace | `/v1` | OpenAI object on 4xx, `{"error":"text"}` on 429 and 5xx | `retry-after: 7` (assumed, as Novita) | none | OpenAI |
//!
//! Groq and OpenAI stay in `wire.rs`; the functions here delegate to it for them.

use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::{Value, json};

use super::{CONTEXT_LENGTH_MESSAGE, Flavor, RETRY_AFTER_SECONDS, wire};

/// OpenRouter's own context-overflow text (`docs/wire-formats.md`, OpenRouter).
pub const OPENROUTER_CONTEXT_LENGTH_MESSAGE: &str = "This endpoint's maximum context length is \
     8192 tokens. However, you requested about 9000 tokens (8744 of text input, 256 in the \
     output). Please reduce the length of either one, or use the context-compression plugin to \
     compress your prompt automatically.";

/// The Cerebras 429 reset header value, float seconds; it rounds up to [`RETRY_AFTER_SECONDS`].
pub const CEREBRAS_RESET_TOKENS_MINUTE: &str = "6.38";

/// The message of a `context-length` 400 in this flavor.
pub(super) fn context_length_message(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::OpenRouter => OPENROUTER_CONTEXT_LENGTH_MESSAGE,
        _ => CONTEXT_LENGTH_MESSAGE,
    }
}

/// The error body of `status` in this flavor's envelope.
pub(super) fn error_body(
    flavor: Flavor,
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    match flavor {
        Flavor::Groq | Flavor::OpenAi | Flavor::Gemini | Flavor::Replicate => {
            wire::error_body(flavor, message, kind, param, code)
        }
        // Flat: no `error` wrapper.
        Flavor::Cerebras => json!({"message": message, "type": kind, "param": param, "code": code}),
        // `code` is the HTTP status as a number.
        Flavor::OpenRouter => {
            json!({"error": {"code": status.as_u16(), "message": message, "metadata": {}}})
        }
        Flavor::Novita => json!({
            "code": status.as_u16(),
            "reason": novita_reason(status, kind, code),
            "message": message,
            "metadata": {},
        }),
        Flavor::HuggingFace => {
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                json!({ "error": message })
            } else {
                wire::error_body(Flavor::OpenAi, message, kind, param, code)
            }
        }
    }
}

/// The answer to a request from an account without credit: (status, body). OpenAI says it as a
/// 429 `insufficient_quota` (not a wait-and-retry case), Novita as a 403, the others as 402.
/// Groq has no prepaid credit; its nearest answer is the restricted organisation's 403.
pub(super) fn no_credit(flavor: Flavor) -> (StatusCode, Value) {
    match flavor {
        Flavor::Groq => forbidden(flavor),
        Flavor::OpenAi => (
            StatusCode::TOO_MANY_REQUESTS,
            wire::error_body(
                flavor,
                "You exceeded your current quota, please check your plan and billing details. \
                 For more information on this error, read the docs: \
                 https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota",
                None,
                Some("insufficient_quota"),
            ),
        ),
        Flavor::Cerebras => (
            StatusCode::PAYMENT_REQUIRED,
            json!({"message": "Payment required: your organization has no remaining credit.",
                   "type": "payment_required", "param": null, "code": "payment_required"}),
        ),
        Flavor::OpenRouter => (
            StatusCode::PAYMENT_REQUIRED,
            json!({"error": {"code": 402, "message": "Insufficient credits. This account never \
                   purchased credits. Make sure your key is on the correct account or org, and \
                   if so, purchase more at https://openrouter.ai/settings/credits",
                   "metadata": {}}}),
        ),
        Flavor::Novita => (
            StatusCode::FORBIDDEN,
            json!({"code": 403, "reason": "NOT_ENOUGH_BALANCE",
                   "message": "not enough balance", "metadata": {}}),
        ),
        Flavor::HuggingFace => (
            StatusCode::PAYMENT_REQUIRED,
            json!({"error": "You have exceeded your monthly included credits for Inference \
                   Providers. Subscribe to PRO to get 20x more monthly included credits."}),
        ),
        Flavor::Gemini | Flavor::Replicate => unreachable_flavor(flavor),
    }
}

/// The answer to a valid key that may not use this model or region: (403, body).
pub(super) fn forbidden(flavor: Flavor) -> (StatusCode, Value) {
    let body = match flavor {
        Flavor::Groq => json!({"error": {
            "message": "Organization has been restricted. Please reach out to support if you \
                        believe this was in error.",
            "type": "invalid_request_error", "code": "organization_restricted"}}),
        Flavor::OpenAi => wire::error_body(
            flavor,
            "Country, region, or territory not supported",
            "request_forbidden",
            None,
            Some("unsupported_country_region_territory"),
        ),
        Flavor::Cerebras => json!({"message": "Your organization does not have access to this \
            model.", "type": "permission_denied", "param": null, "code": "model_access_denied"}),
        Flavor::OpenRouter => json!({"error": {"code": 403, "message": "This API key's \
            guardrail does not allow the requested model.", "metadata": {}}}),
        Flavor::Novita => json!({"code": 403, "reason": "MODEL_ACCESS_DENIED",
            "message": "identity verification is required to access this model", "metadata": {}}),
        Flavor::HuggingFace => json!({"error": "This authentication method does not have \
            sufficient permissions to call Inference Providers on behalf of user mock"}),
        Flavor::Gemini | Flavor::Replicate => return unreachable_flavor(flavor),
    };
    (StatusCode::FORBIDDEN, body)
}

/// How the flavor's content filter answers, when it refuses the request outright: (status,
/// body). `None` when the filter ends the answer with `finish_reason: "content_filter"` instead
/// (the OpenAI dialects other than OpenRouter).
pub(super) fn content_filter_refusal(flavor: Flavor, model: &str) -> Option<(StatusCode, Value)> {
    (flavor == Flavor::OpenRouter).then(|| {
        (
            StatusCode::FORBIDDEN,
            json!({"error": {"code": 403,
                "message": format!("{model} requires moderation on OpenRouter. Your input was \
                                    flagged for \"harassment\". No credits were charged."),
                "metadata": {"reasons": ["harassment"], "flagged_input": "hello there",
                             "provider_name": OPENROUTER_PROVIDER, "model_slug": model}}}),
        )
    })
}

/// Gemini and Replicate are served by their own modules and never reach the OpenAI-dialect
/// code; this answers like OpenAI if one ever does, rather than panicking inside a test server.
fn unreachable_flavor(flavor: Flavor) -> (StatusCode, Value) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        wire::error_body(
            Flavor::OpenAi,
            &format!("mock upstream: {flavor:?} has no OpenAI-dialect route"),
            "server_error",
            None,
            None,
        ),
    )
}

/// Novita's upper-case `reason` for an error.
fn novita_reason(status: StatusCode, kind: &str, code: Option<&str>) -> String {
    match (status.as_u16(), code) {
        (401, _) => "INVALID_API_KEY".to_owned(),
        (429, _) => "RATE_LIMIT_EXCEEDED".to_owned(),
        (_, Some(code)) => code.to_ascii_uppercase(),
        (_, None) => kind.to_ascii_uppercase(),
    }
}

/// The 401 message for a wrong or missing key.
pub(super) fn unauthorized_message(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Groq => "Invalid API Key",
        // Answered elsewhere: Gemini and Replicate by their own modules, OpenAI by
        // `mock::unauthorized` (its message echoes the presented key).
        Flavor::Gemini | Flavor::Replicate | Flavor::OpenAi => "mock upstream: unauthorized",
        Flavor::Cerebras => "Wrong API Key",
        Flavor::OpenRouter => "Missing Authentication header",
        Flavor::Novita => "Invalid API key, please check your key",
        Flavor::HuggingFace => "Invalid credentials in Authorization header",
    }
}

/// The 429 body each provider sends.
pub(super) fn rate_limit_body(flavor: Flavor, model: &str, echo_reset_ms: Option<u64>) -> Value {
    match flavor {
        Flavor::Groq | Flavor::OpenAi | Flavor::Gemini | Flavor::Replicate => {
            wire::rate_limit_body(flavor, model)
        }
        Flavor::Cerebras => json!({
            "message": "Tokens per minute limit exceeded - too many tokens processed.",
            "type": "too_many_tokens_error",
            "param": "quota",
            "code": "token_quota_exceeded",
        }),
        Flavor::OpenRouter => {
            let metadata = match echo_reset_ms {
                Some(reset) => json!({"headers": {
                    "X-RateLimit-Limit": "20",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset.to_string(),
                }}),
                None => json!({}),
            };
            json!({"error": {
                "code": 429,
                "message": format!("Rate limit exceeded: free-models-per-min. ({model})"),
                "metadata": metadata,
            }})
        }
        Flavor::Novita => error_body(
            flavor,
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Rate limit exceeded for model {model}: too many requests per minute."),
            "rate_limit_error",
            None,
            None,
        ),
        Flavor::HuggingFace => json!({
            "error": format!(
                "Rate limit reached for {model}. You reached free usage limit (reset hourly). \
                 Please subscribe to a plan at https://huggingface.co/pricing to use the API at \
                 this rate"
            )
        }),
    }
}

/// Epoch milliseconds [`RETRY_AFTER_SECONDS`] from now, OpenRouter's `X-RateLimit-Reset`.
pub(super) fn openrouter_reset_ms() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    now + RETRY_AFTER_SECONDS * 1000
}

/// The headers of a 429, in the provider's own form of saying how long to wait. Without
/// `with_wait` (`rate-limit-no-header`) the new flavors send no wait at all; Groq and OpenAI keep
/// their `x-ratelimit-*` set and only lose `retry-after`, as before.
pub(super) fn rate_limit_headers(
    flavor: Flavor,
    with_wait: bool,
    reset_ms: u64,
) -> Vec<(&'static str, String)> {
    let owned = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    };
    match flavor {
        Flavor::Groq | Flavor::OpenAi | Flavor::Gemini | Flavor::Replicate => {
            let mut headers = owned(&wire::rate_limit_headers(flavor, true));
            if with_wait {
                headers.push(("retry-after", RETRY_AFTER_SECONDS.to_string()));
            }
            headers
        }
        Flavor::Cerebras => {
            let mut headers = owned(&[
                ("x-ratelimit-limit-requests-day", "14400"),
                ("x-ratelimit-limit-tokens-minute", "60000"),
                ("x-ratelimit-remaining-requests-day", "14388"),
                ("x-ratelimit-remaining-tokens-minute", "0"),
            ]);
            if with_wait {
                headers.extend(owned(&[
                    ("x-ratelimit-reset-requests-day", "33011.38"),
                    (
                        "x-ratelimit-reset-tokens-minute",
                        CEREBRAS_RESET_TOKENS_MINUTE,
                    ),
                ]));
            }
            headers
        }
        Flavor::OpenRouter => {
            let mut headers = owned(&[("x-ratelimit-limit", "20"), ("x-ratelimit-remaining", "0")]);
            if with_wait {
                headers.push(("x-ratelimit-reset", reset_ms.to_string()));
            }
            headers
        }
        Flavor::Novita | Flavor::HuggingFace => {
            if with_wait {
                vec![("retry-after", RETRY_AFTER_SECONDS.to_string())]
            } else {
                Vec::new()
            }
        }
    }
}

/// Headers on every response (429s get [`rate_limit_headers`] on top).
pub(super) fn common_headers(flavor: Flavor, exhausted: bool) -> Vec<(&'static str, String)> {
    let owned = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    };
    match flavor {
        Flavor::Groq => {
            let mut headers = owned(&wire::rate_limit_headers(flavor, exhausted));
            headers.push(("x-request-id", "req_01mockmockmockmockmockmock".to_owned()));
            headers
        }
        Flavor::OpenAi => {
            let mut headers = owned(&wire::rate_limit_headers(flavor, exhausted));
            headers.push((
                "x-request-id",
                "req_mockmockmockmockmockmockmock".to_owned(),
            ));
            headers
        }
        Flavor::Cerebras => owned(&[
            ("x-ratelimit-limit-requests-day", "14400"),
            ("x-ratelimit-limit-tokens-minute", "60000"),
            ("x-ratelimit-remaining-requests-day", "14399"),
            ("x-ratelimit-remaining-tokens-minute", "59880"),
            ("x-request-id", "mock-cerebras-request"),
        ]),
        Flavor::OpenRouter | Flavor::Gemini | Flavor::Replicate => Vec::new(),
        Flavor::Novita => owned(&[("x-request-id", "mock-novita-request")]),
        Flavor::HuggingFace => owned(&[("x-request-id", "mock-hf-request")]),
    }
}

/// The `usage` object of a new flavor.
pub(super) fn usage(flavor: Flavor, prompt: u64, completion: u64) -> Value {
    let total = prompt + completion;
    match flavor {
        Flavor::Cerebras => json!({
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": 0},
        }),
        Flavor::OpenRouter => json!({
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
            "cost": 0.0000123,
            "is_byok": false,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }),
        _ => {
            json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total})
        }
    }
}

/// Cerebras' `time_info`.
pub(super) fn time_info(created: u64) -> Value {
    json!({"queue_time": 0.000073, "prompt_time": 0.00107, "completion_time": 0.00566,
           "total_time": 0.0222, "created": created})
}

/// The name OpenRouter reports as the upstream that served.
pub(super) const OPENROUTER_PROVIDER: &str = "MockProvider";

/// An SSE body of these chunks (without `[DONE]`): OpenRouter interleaves its keep-alive
/// comments, before the first chunk and after the second.
pub(super) fn sse_frames(flavor: Flavor, chunks: &[Value]) -> String {
    const KEEP_ALIVE: &str = ": OPENROUTER PROCESSING\n\n";
    let mut sse = String::new();
    if flavor == Flavor::OpenRouter {
        sse.push_str(KEEP_ALIVE);
    }
    for (i, chunk) in chunks.iter().enumerate() {
        sse.push_str(&wire::sse(&chunk.to_string()));
        if flavor == Flavor::OpenRouter && i == 1 {
            sse.push_str(KEEP_ALIVE);
        }
    }
    sse
}

/// The frame a stream fails with mid-way, in the flavor's form (`first` is a delta chunk of the
/// same completion, for flavors whose error rides on a chunk).
pub(super) fn stream_error_frame(flavor: Flavor, message: &str, first: &Value) -> Value {
    match flavor {
        Flavor::Groq
        | Flavor::OpenAi
        | Flavor::HuggingFace
        | Flavor::Gemini
        | Flavor::Replicate => {
            json!({"error": {"message": message, "type": "server_error"}})
        }
        Flavor::Cerebras => {
            json!({"message": message, "type": "server_error", "param": null, "code": null})
        }
        Flavor::OpenRouter => {
            let mut chunk = first.clone();
            chunk["error"] = json!({"code": "server_error", "message": message});
            chunk["choices"] = json!([{"index": 0, "delta": {"content": ""},
                                       "finish_reason": "error", "native_finish_reason": "error"}]);
            chunk
        }
        Flavor::Novita => {
            json!({"code": 500, "reason": "INTERNAL_SERVER_ERROR", "message": message})
        }
    }
}

/// The body of `GET /models` for a new flavor.
pub(super) fn models(flavor: Flavor) -> Value {
    let ids: &[&str] = match flavor {
        Flavor::Cerebras => &["llama3.1-8b", "llama-3.3-70b", "gpt-oss-120b", "qwen-3-32b"],
        Flavor::OpenRouter => &["openai/gpt-4o", "meta-llama/llama-3.3-70b-instruct:free"],
        Flavor::Novita => &["meta-llama/llama-3.3-70b-instruct", "deepseek/deepseek-v3"],
        Flavor::HuggingFace => &["Qwen/Qwen3-8B", "deepseek-ai/DeepSeek-V3-0324"],
        Flavor::Groq | Flavor::OpenAi | Flavor::Gemini | Flavor::Replicate => &[],
    };
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1721172741, "owned_by": "mock"}))
        .collect();
    json!({"object": "list", "data": data})
}
