//! The Groq provider plugin: Groq's OpenAI-compatible chat completions
//! (`docs/wire-formats.md`, Groq), i.e. the SDK's OpenAI translator plus Groq's quirks.
//!
//! - Groq answers 400 to `logprobs`, `top_logprobs`, `logit_bias` and `n` > 1: rejected here
//!   with a message naming the field, so the client learns why without a round trip.
//! - Groq answers 400 to `messages[].name`: dropped silently, the answer does not depend on it.
//! - Stream usage arrives as `x_groq.usage` on the finish chunk: turned into an OpenAI usage chunk.
//! - 498 (flex tier full) and 400 `tool_use_failed` are transient: `unavailable`; 413
//!   `rate_limit_exceeded` (one request over the TPM budget) is `rate-limited`.

use aigw_plugin_sdk::failure::{UpstreamError, classify};
use aigw_plugin_sdk::openai::{Compatible, Dialect};
use aigw_plugin_sdk::{CredentialPlacement, Descriptor, Failure, HttpResponse};
use serde_json::{Map, Value};

pub struct Groq;

aigw_plugin_sdk::export_provider!(Compatible<Groq>);

impl Dialect for Groq {
    fn describe() -> Descriptor {
        Descriptor {
            name: "groq".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            default_base_url: "https://api.groq.com/openai/v1".to_owned(),
            origins: Vec::new(),
            credential: CredentialPlacement::bearer(),
            credential_required: true,
            models: [
                "llama-3.1-8b-instant",
                "llama-3.3-70b-versatile",
                "openai/gpt-oss-20b",
                "openai/gpt-oss-120b",
                "qwen/qwen3-32b",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    fn adjust_request(body: &mut Map<String, Value>) -> Result<(), Failure> {
        // `logprobs: false` asks for nothing, so it is harmless to drop rather than reject.
        match body.get("logprobs") {
            Some(Value::Bool(true)) => return Err(unsupported("logprobs")),
            Some(_) => {
                body.remove("logprobs");
            }
            None => {}
        }
        for field in ["top_logprobs", "logit_bias"] {
            if body.get(field).is_some_and(|value| !value.is_null()) {
                return Err(unsupported(field));
            }
            body.remove(field);
        }
        if let Some(n) = body.get("n").filter(|n| !n.is_null())
            && n.as_u64() != Some(1)
        {
            return Err(Failure::InvalidRequest(format!(
                "groq does not support `n` other than 1 (got {n})"
            )));
        }
        if let Some(Value::Array(messages)) = body.get_mut("messages") {
            for message in messages.iter_mut().filter_map(Value::as_object_mut) {
                message.remove("name");
            }
        }
        Ok(())
    }

    fn classify(response: &HttpResponse) -> Failure {
        match classify(response) {
            // `tool_use_failed`: the model botched a tool call; a retry or another target
            // usually succeeds, so it is not the client's fault.
            Failure::InvalidRequest(message)
                if response.status == 400
                    && UpstreamError::parse(&response.body).code.as_deref()
                        == Some("tool_use_failed") =>
            {
                Failure::Unavailable(message)
            }
            failure => failure,
        }
    }

    fn stream_usage(chunk: &Map<String, Value>) -> Option<&Value> {
        chunk.get("x_groq")?.get("usage")
    }

    fn hooks_see_content_frame(data: &str) -> bool {
        data.contains("\"x_groq\"")
    }
}

fn unsupported(field: &str) -> Failure {
    Failure::InvalidRequest(format!("groq does not support `{field}`"))
}

#[cfg(test)]
mod tests;
