//! The OpenRouter provider plugin: OpenRouter's OpenAI-compatible chat completions
//! (`docs/wire-formats.md`, OpenRouter), i.e. the SDK's OpenAI translator plus OpenRouter's quirks.
//!
//! - Requests pass through, OpenRouter extras included (`provider`, `reasoning`, `transforms`,
//!   `plugins`, `top_k`, `min_p`, …). The model is the target's (vendor-prefixed, variant
//!   suffixes such as `:free` kept). A client `models` fallback list is dropped: it would let
//!   OpenRouter answer with a model other than the target, and routing is the gateway's job.
//! - Error envelope `{"error":{"code":<HTTP status number>,"message","metadata"}}`.
//!   402 (out of credits, also on free models) is no-credit; 403 with moderation metadata
//!   (`reasons`, `flagged_input`) is content-filtered, other 403s unauthorized; 408/502/503 are
//!   unavailable; context overflow ("This endpoint's maximum context length is …") is
//!   context-length-exceeded.
//! - 429 wait: `retry-after`, else `X-RateLimit-Reset` (epoch **milliseconds**), else the same
//!   header echoed in `error.metadata.headers`.
//! - Streams: `: OPENROUTER PROCESSING` keep-alive comments are skipped; usage (with `cost`)
//!   arrives in the final chunk; a mid-stream error keeps HTTP 200 and arrives as a chunk with a
//!   top-level `error` and `finish_reason:"error"`; it is classified like an error body (a numeric
//!   code as that status). A `finish_reason:"error"` chunk without an `error` is unavailable.
//! - An error body on a 200 non-streamed answer is classified the same way.

use std::time::SystemTime;

use aigw_plugin_sdk::failure::{classify, classify_error_value, retry_after_seconds};
use aigw_plugin_sdk::openai::{ChunkStream, Compatible, Dialect};
use aigw_plugin_sdk::{
    CredentialPlacement, Descriptor, Failure, Header, HttpRequest, HttpResponse, Provider,
    ResponseHead, Step, Target,
};
use serde_json::{Map, Value};

/// The OpenRouter dialect of the OpenAI API.
pub struct OpenRouter;

/// The exported provider: [`Compatible<OpenRouter>`] with OpenRouter's error handling on every
/// path (non-2xx, error bodies on 200, mid-stream error chunks).
pub struct OpenRouterProvider;

aigw_plugin_sdk::export_provider!(OpenRouterProvider);

impl Provider for OpenRouterProvider {
    type StreamDecoder = ChunkStream<OpenRouter>;

    fn describe() -> Descriptor {
        Compatible::<OpenRouter>::describe()
    }

    fn encode(target: &Target, request_json: &str) -> Result<HttpRequest, Failure> {
        Compatible::<OpenRouter>::encode(target, request_json)
    }

    fn decode(target: &Target, response: HttpResponse) -> Result<Step, Failure> {
        if (200..300).contains(&response.status)
            && let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&response.body)
            && body.get("error").is_some_and(|error| !error.is_null())
        {
            return Err(classify_error_object(&body));
        }
        Compatible::<OpenRouter>::decode(target, response)
    }

    fn stream_decoder(_target: Target, head: ResponseHead) -> ChunkStream<OpenRouter> {
        ChunkStream::new(&head)
    }
}

impl Dialect for OpenRouter {
    fn stream_error(frame: &Map<String, Value>) -> Option<Failure> {
        stream_error(frame)
    }

    fn describe() -> Descriptor {
        Descriptor {
            name: "openrouter".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            default_base_url: "https://openrouter.ai/api/v1".to_owned(),
            origins: Vec::new(),
            credential: CredentialPlacement::bearer(),
            credential_required: true,
            models: [
                "openai/gpt-4o",
                "openai/gpt-4o-mini",
                "anthropic/claude-sonnet-4",
                "google/gemini-2.5-flash",
                "meta-llama/llama-3.3-70b-instruct:free",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    fn adjust_request(body: &mut Map<String, Value>) -> Result<(), Failure> {
        body.remove("models");
        if body.get("route").and_then(Value::as_str) == Some("fallback") {
            body.remove("route");
        }
        Ok(())
    }

    fn classify(response: &HttpResponse) -> Failure {
        let value: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        refine(classify(response), response.status, &value)
    }
}

/// OpenRouter's refinements of the SDK classification, from the error's `metadata`.
fn refine(failure: Failure, status: u16, body: &Value) -> Failure {
    let metadata = body.get("error").and_then(|error| error.get("metadata"));
    match failure {
        Failure::RateLimited {
            retry_after_seconds: None,
            message,
        } => Failure::RateLimited {
            retry_after_seconds: metadata.and_then(echoed_reset_seconds),
            message,
        },
        Failure::Unauthorized(message) | Failure::InvalidRequest(message)
            if status == 403 && metadata.is_some_and(is_moderation) =>
        {
            Failure::ContentFiltered(moderation_message(message, metadata))
        }
        failure => failure,
    }
}

/// Moderation metadata: `{reasons, flagged_input, provider_name, model_slug}`.
fn is_moderation(metadata: &Value) -> bool {
    metadata.get("reasons").is_some() || metadata.get("flagged_input").is_some()
}

fn moderation_message(message: String, metadata: Option<&Value>) -> String {
    let reasons: Vec<&str> = metadata
        .and_then(|metadata| metadata.get("reasons"))
        .and_then(Value::as_array)
        .map(|reasons| reasons.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if reasons.is_empty() || reasons.iter().all(|reason| message.contains(reason)) {
        message
    } else {
        format!("{message} (reasons: {})", reasons.join(", "))
    }
}

/// `X-RateLimit-Reset` (epoch ms) echoed in `error.metadata.headers`.
fn echoed_reset_seconds(metadata: &Value) -> Option<u32> {
    let headers: Vec<Header> = metadata
        .get("headers")?
        .as_object()?
        .iter()
        .filter_map(|(name, value)| {
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                _ => return None,
            };
            Some(Header::new(name.clone(), value))
        })
        .collect();
    retry_after_seconds(&headers, None, SystemTime::now())
}

/// An `{"error":…}` object that arrived with a 200 (body or stream chunk): a numeric `code` that
/// is an HTTP status is classified as that status, with OpenRouter's refinements.
fn classify_error_object(object: &Map<String, Value>) -> Failure {
    let value = Value::Object(object.clone());
    let status = value
        .get("error")
        .and_then(|error| error.get("code"))
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code));
    match status {
        Some(status) => {
            let response = HttpResponse {
                status,
                headers: Vec::new(),
                body: serde_json::to_vec(&value).unwrap_or_default(),
            };
            OpenRouter::classify(&response)
        }
        None => classify_error_value(&value),
    }
}

/// A mid-stream error chunk: a top-level `error`, or a `finish_reason:"error"` without one.
pub(crate) fn stream_error(frame: &Map<String, Value>) -> Option<Failure> {
    if frame.get("error").is_some_and(|error| !error.is_null()) {
        return Some(classify_error_object(frame));
    }
    let errored = frame
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|choices| {
            choices
                .iter()
                .any(|choice| choice.get("finish_reason").and_then(Value::as_str) == Some("error"))
        });
    errored.then(|| {
        let native = frame
            .get("choices")
            .and_then(|choices| choices.get(0))
            .and_then(|choice| choice.get("native_finish_reason"))
            .and_then(Value::as_str);
        Failure::Unavailable(match native {
            Some(native) => {
                format!("the upstream provider ended the stream with an error ({native})")
            }
            None => "the upstream provider ended the stream with an error".to_owned(),
        })
    })
}

#[cfg(test)]
mod tests;
