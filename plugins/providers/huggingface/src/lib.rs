//! The Hugging Face Inference Providers plugin: the router's OpenAI-compatible chat completions
//! (`docs/wire-formats.md`, Hugging Face router), i.e. the SDK's OpenAI translator plus the
//! router's quirks.
//!
//! - The model is the target's, verbatim: a `model:provider` suffix (`…:novita`, `…:groq`,
//!   `…:fastest`) passes through and picks the router's backend.
//! - The router's spec caps `stop` at 4 sequences and `top_logprobs` at 5: larger values are
//!   rejected with a message naming the field.
//! - Error bodies are OpenAI objects or `{"error":"text"}` (402 credits exhausted: no-credit).
//!   503 `{"error":"… is currently loading","estimated_time":20.0}` is rate-limited for the
//!   estimated seconds (this target will serve soon; others may serve now); other 503/504 are
//!   unavailable. TGI's "`inputs` tokens + `max_new_tokens` must be <= N" is context length.
//! - Streams are the selected provider's bytes: a Groq backend's `x_groq.usage` is read as usage.

use aigw_plugin_sdk::failure::{UpstreamError, classify};
use aigw_plugin_sdk::openai::{Compatible, Dialect};
use aigw_plugin_sdk::{CredentialPlacement, Descriptor, Failure, HttpResponse};
use serde_json::{Map, Value};

/// The Hugging Face router dialect of the OpenAI API.
pub struct HuggingFace;

aigw_plugin_sdk::export_provider!(Compatible<HuggingFace>);

impl Dialect for HuggingFace {
    fn describe() -> Descriptor {
        Descriptor {
            name: "huggingface".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            default_base_url: "https://router.huggingface.co/v1".to_owned(),
            origins: Vec::new(),
            credential: CredentialPlacement::bearer(),
            credential_required: true,
            models: [
                "meta-llama/Llama-3.1-8B-Instruct",
                "Qwen/Qwen3-8B",
                "deepseek-ai/DeepSeek-V3-0324",
                "openai/gpt-oss-120b",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    fn adjust_request(body: &mut Map<String, Value>) -> Result<(), Failure> {
        if let Some(Value::Array(stop)) = body.get("stop")
            && stop.len() > 4
        {
            return Err(Failure::InvalidRequest(format!(
                "huggingface accepts at most 4 `stop` sequences (got {})",
                stop.len()
            )));
        }
        if let Some(top) = body.get("top_logprobs").and_then(Value::as_u64)
            && top > 5
        {
            return Err(Failure::InvalidRequest(format!(
                "huggingface accepts `top_logprobs` up to 5 (got {top})"
            )));
        }
        Ok(())
    }

    fn classify(response: &HttpResponse) -> Failure {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let error = UpstreamError::parse(&response.body);
        let message = error
            .message
            .clone()
            .unwrap_or_else(|| format!("upstream answered HTTP {}", response.status));
        if response.status == 503
            && let Some(estimated) = body.get("estimated_time").and_then(Value::as_f64)
        {
            return Failure::RateLimited {
                retry_after_seconds: Some(seconds_up(estimated)),
                message,
            };
        }
        if (400..500).contains(&response.status)
            && response.status != 429
            && is_tgi_overflow(&message)
        {
            return Failure::ContextLengthExceeded(message);
        }
        classify(response)
    }

    fn stream_usage(chunk: &Map<String, Value>) -> Option<&Value> {
        chunk.get("x_groq")?.get("usage")
    }

    fn hooks_see_content_frame(data: &str) -> bool {
        data.contains("\"x_groq\"")
    }
}

/// TGI's validation error for a prompt plus completion budget over the model's limit.
fn is_tgi_overflow(message: &str) -> bool {
    message.contains("`inputs` tokens + `max_new_tokens` must be <=")
}

fn seconds_up(seconds: f64) -> u32 {
    if !seconds.is_finite() || seconds <= 0.0 {
        0
    } else if seconds >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range after the checks above.
        seconds.ceil() as u32
    }
}

#[cfg(test)]
mod tests;
