//! Gemini `GenerateContentResponse` → OpenAI `chat.completion`, plus the pieces the stream
//! decoder shares (parts, finish reasons, usage, blocked prompts).

use aigw_plugin_sdk::{Completion, Failure, HttpResponse, Step, Target, Usage};
use serde_json::{Map, Value, json};

use crate::errors::{classify_error_frame, classify_response};
use crate::now_seconds;

pub fn decode(target: &Target, response: HttpResponse) -> Result<Step, Failure> {
    if !(200..300).contains(&response.status) {
        return Err(classify_response(&response));
    }
    let value: Value = serde_json::from_slice(&response.body).map_err(|error| {
        Failure::BadResponse(format!("gemini answered a body that is not JSON: {error}"))
    })?;
    completion(target, &value).map(Step::Done)
}

/// A whole (non-streamed) answer.
pub fn completion(target: &Target, value: &Value) -> Result<Completion, Failure> {
    if !value.is_object() {
        return Err(Failure::BadResponse(
            "gemini answered JSON that is not an object".to_owned(),
        ));
    }
    if value.get("error").is_some_and(|error| !error.is_null()) {
        return Err(classify_error_frame(value));
    }
    if let Some(failure) = blocked_prompt(value) {
        return Err(failure);
    }
    let candidates = candidates(value);
    if candidates.is_empty() {
        return Err(Failure::BadResponse(
            "gemini answered no candidates".to_owned(),
        ));
    }

    let mut choices = Vec::new();
    let mut anything = false;
    let mut malformed_call = None;
    for (position, candidate) in candidates.iter().enumerate() {
        let parts = read_parts(candidate);
        let raw_reason = candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .unwrap_or("");
        if raw_reason == "MALFORMED_FUNCTION_CALL" {
            malformed_call = candidate
                .get("finishMessage")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(Some(String::new()));
        }
        anything |= !parts.text.is_empty() || !parts.calls.is_empty();
        let mut message = Map::new();
        message.insert("role".to_owned(), json!("assistant"));
        let content = if parts.text.is_empty() && !parts.calls.is_empty() {
            Value::Null
        } else {
            Value::String(parts.text)
        };
        message.insert("content".to_owned(), content);
        let has_calls = !parts.calls.is_empty();
        if has_calls {
            let calls: Vec<Value> = parts
                .calls
                .iter()
                .enumerate()
                .map(|(number, call)| call.to_openai(number, false))
                .collect();
            message.insert("tool_calls".to_owned(), Value::Array(calls));
        }
        choices.push(json!({
            "index": candidate_index(candidate, position),
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(raw_reason, has_calls),
        }));
    }
    // The model produced a broken call and nothing else: a retry (or another target) may
    // succeed, and an empty "stop" answer would mislead the client.
    if let Some(detail) = malformed_call.filter(|_| !anything) {
        let mut message = "gemini produced a malformed function call".to_owned();
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(&detail);
        }
        return Err(Failure::Unavailable(message));
    }

    let mut out = Map::new();
    out.insert("id".to_owned(), json!(completion_id(value)));
    out.insert("object".to_owned(), json!("chat.completion"));
    out.insert("created".to_owned(), json!(now_seconds()));
    out.insert("model".to_owned(), json!(target.model));
    out.insert("choices".to_owned(), Value::Array(choices));
    let usage = value.get("usageMetadata").and_then(parse_usage_metadata);
    if let Some((_, usage_json)) = &usage {
        out.insert("usage".to_owned(), usage_json.clone());
    }
    Ok(Completion {
        json: aigw_plugin_sdk::json::text(&Value::Object(out)),
        usage: usage.map(|(usage, _)| usage),
    })
}

/// The OpenAI id of tool call `number` of a choice.
pub fn call_id(number: usize) -> String {
    format!("call_{number}")
}

/// `chatcmpl-<responseId>`, or a fixed id when Gemini sent none.
pub fn completion_id(value: &Value) -> String {
    match value.get("responseId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => "chatcmpl-gemini".to_owned(),
    }
}

pub fn candidates(value: &Value) -> &[Value] {
    value
        .get("candidates")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn candidate_index(candidate: &Value, position: usize) -> u64 {
    candidate
        .get("index")
        .and_then(Value::as_u64)
        .unwrap_or(position as u64)
}

/// HTTP 200 with no candidates and `promptFeedback.blockReason`: the prompt itself was refused.
pub fn blocked_prompt(value: &Value) -> Option<Failure> {
    if !candidates(value).is_empty() {
        return None;
    }
    let feedback = value.get("promptFeedback")?;
    let reason = feedback.get("blockReason").and_then(Value::as_str)?;
    let mut message = format!("gemini blocked the prompt (blockReason {reason})");
    if let Some(detail) = feedback.get("blockReasonMessage").and_then(Value::as_str) {
        message.push_str(": ");
        message.push_str(detail);
    }
    Some(Failure::ContentFiltered(message))
}

/// One function call: its name and its arguments as a JSON string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub arguments: String,
    /// Gemini 3's `thoughtSignature` on the part, to be echoed back on the next turn.
    pub signature: Option<String>,
}

impl Call {
    /// The OpenAI `tool_calls[]` entry (also used as a stream delta, with `index`). The thought
    /// signature travels as `extra_content.google.thought_signature`, the field Google's own
    /// OpenAI-compatible endpoint uses, so clients written for that endpoint round-trip it.
    pub fn to_openai(&self, number: usize, with_index: bool) -> Value {
        let mut call = Map::new();
        if with_index {
            call.insert("index".to_owned(), json!(number));
        }
        call.insert("id".to_owned(), json!(call_id(number)));
        call.insert("type".to_owned(), json!("function"));
        call.insert(
            "function".to_owned(),
            json!({ "name": self.name, "arguments": self.arguments }),
        );
        if let Some(signature) = &self.signature {
            call.insert(
                "extra_content".to_owned(),
                json!({ "google": { "thought_signature": signature } }),
            );
        }
        Value::Object(call)
    }
}

/// The answer parts of a candidate: visible text joined, and function calls in order.
/// Thought parts (`"thought": true`) are skipped.
#[derive(Debug, Default)]
pub struct Parts {
    pub text: String,
    pub calls: Vec<Call>,
}

pub fn read_parts(candidate: &Value) -> Parts {
    let mut out = Parts::default();
    let parts = candidate
        .get("content")
        .and_then(|content| content.get("parts"))
        .and_then(Value::as_array);
    for part in parts.into_iter().flatten() {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            out.text.push_str(text);
        }
        if let Some(call) = part.get("functionCall") {
            let name = call
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let arguments = match call.get("args") {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(args) => aigw_plugin_sdk::json::text(args),
            };
            let signature = part
                .get("thoughtSignature")
                .and_then(Value::as_str)
                .filter(|signature| !signature.is_empty())
                .map(str::to_owned);
            out.calls.push(Call {
                name,
                arguments,
                signature,
            });
        }
    }
    out
}

/// Gemini's `finishReason` in OpenAI's terms. Gemini says `STOP` after a function call; the
/// presence of calls makes it `tool_calls`.
pub fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` → the SDK usage and the OpenAI `usage` JSON. Thinking tokens count as
/// completion tokens (OpenAI bills reasoning tokens as completion tokens too).
pub fn parse_usage_metadata(metadata: &Value) -> Option<(Usage, Value)> {
    let object = metadata.as_object()?;
    let count = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_u64)
            .map(|count| u32::try_from(count).unwrap_or(u32::MAX))
    };
    let prompt = count("promptTokenCount");
    let candidates = count("candidatesTokenCount");
    let thoughts = count("thoughtsTokenCount");
    if prompt.is_none() && candidates.is_none() && thoughts.is_none() {
        return None;
    }
    let prompt_tokens = prompt.unwrap_or(0);
    let completion_tokens = candidates
        .unwrap_or(0)
        .saturating_add(thoughts.unwrap_or(0));
    let total_tokens =
        count("totalTokenCount").unwrap_or_else(|| prompt_tokens.saturating_add(completion_tokens));
    let mut json = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total_tokens,
    });
    if let Some(object) = json.as_object_mut() {
        if let Some(cached) = count("cachedContentTokenCount") {
            object.insert(
                "prompt_tokens_details".to_owned(),
                json!({ "cached_tokens": cached }),
            );
        }
        if let Some(thoughts) = thoughts {
            object.insert(
                "completion_tokens_details".to_owned(),
                json!({ "reasoning_tokens": thoughts }),
            );
        }
    }
    Some((
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens,
        },
        json,
    ))
}
