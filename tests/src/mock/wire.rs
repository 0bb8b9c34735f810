//! The bytes a real provider puts on the wire: completions, stream chunks, error bodies and
//! rate-limit headers, for each [`Flavor`]. Shapes follow `docs/wire-formats.md` (OpenAI baseline,
//! Groq); nothing here decides *which* answer to give, only what it looks like.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Flavor, dialects};

/// Makes ids that look like the provider's (`chatcmpl-…`, `call_…`, `req_…`) without a RNG.
fn next_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{prefix}{:012x}{n:08x}", salt & 0xffff_ffff_ffff)
}

pub(super) fn tool_call_id() -> String {
    next_id("call_")
}

/// A tool call the mock's model decided to make.
pub(super) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What the answer says: text, tool calls, or text a content filter stopped.
pub(super) enum Answer {
    Text(String),
    ToolCalls(Vec<ToolCall>),
    /// What the model wrote before the provider's content filter ended the answer
    /// (`finish_reason: "content_filter"`).
    Filtered(String),
}

impl Answer {
    fn finish_reason(&self) -> &'static str {
        match self {
            Answer::Text(_) => "stop",
            Answer::Filtered(_) => "content_filter",
            Answer::ToolCalls(_) => "tool_calls",
        }
    }

    /// Completion tokens are counted as whitespace-separated words of the text (or of the
    /// arguments), so tests can check usage against the content they received.
    fn completion_tokens(&self) -> u64 {
        match self {
            Answer::Text(text) | Answer::Filtered(text) => text.split_whitespace().count() as u64,
            Answer::ToolCalls(calls) => calls
                .iter()
                .map(|c| c.arguments.split_whitespace().count() as u64 + 1)
                .sum(),
        }
    }
}

/// One completion being written in a flavor's dialect: the fields every chunk of a stream shares.
pub(super) struct Completion {
    flavor: Flavor,
    id: String,
    request_id: String,
    model: String,
    created: u64,
    prompt_tokens: u64,
}

impl Completion {
    pub fn new(flavor: Flavor, model: &str, prompt_tokens: u64) -> Completion {
        Completion {
            flavor,
            id: next_id(if flavor == Flavor::OpenRouter {
                "gen-"
            } else {
                "chatcmpl-"
            }),
            request_id: next_id("req_01"),
            model: model.to_owned(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            prompt_tokens,
        }
    }

    fn fingerprint(&self) -> &'static str {
        match self.flavor {
            Flavor::Groq => "fp_mockgroq01",
            Flavor::OpenAi
            | Flavor::OpenRouter
            | Flavor::Novita
            | Flavor::HuggingFace
            | Flavor::Gemini
            | Flavor::Replicate => "fp_mockopenai1",
            Flavor::Cerebras => "fp_70185065a4",
        }
    }

    fn usage(&self, answer: &Answer) -> Value {
        let completion_tokens = answer.completion_tokens();
        let total = self.prompt_tokens + completion_tokens;
        match self.flavor {
            // Groq reports timings in seconds next to the counts.
            Flavor::Groq => json!({
                "queue_time": 0.017,
                "prompt_tokens": self.prompt_tokens,
                "prompt_time": 0.002,
                "completion_tokens": completion_tokens,
                "completion_time": 0.011,
                "total_tokens": total,
                "total_time": 0.013,
            }),
            Flavor::OpenAi => json!({
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": total,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0, "audio_tokens": 0,
                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
                },
            }),
            flavor => dialects::usage(flavor, self.prompt_tokens, completion_tokens),
        }
    }

    /// The non-streamed `chat.completion` object.
    pub fn full(&self, answer: &Answer) -> Value {
        let message = match answer {
            Answer::Text(text) | Answer::Filtered(text) => {
                json!({"role": "assistant", "content": text})
            }
            Answer::ToolCalls(calls) => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": calls.iter().map(|c| json!({
                    "id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })).collect::<Vec<_>>(),
            }),
        };
        let mut body = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": answer.finish_reason(),
            }],
            "usage": self.usage(answer),
            "system_fingerprint": self.fingerprint(),
        });
        match self.flavor {
            Flavor::Groq => {
                body["usage_breakdown"] = Value::Null;
                body["x_groq"] = json!({"id": self.request_id});
                body["service_tier"] = json!("on_demand");
            }
            Flavor::OpenAi => {
                body["choices"][0]["message"]["refusal"] = Value::Null;
                body["choices"][0]["message"]["annotations"] = json!([]);
                body["service_tier"] = json!("default");
            }
            Flavor::Cerebras => body["time_info"] = dialects::time_info(self.created),
            Flavor::OpenRouter => {
                body["provider"] = json!(dialects::OPENROUTER_PROVIDER);
                body["choices"][0]["native_finish_reason"] = json!(answer.finish_reason());
                body["choices"][0]["message"]["refusal"] = Value::Null;
                body["choices"][0]["message"]["reasoning"] = Value::Null;
            }
            Flavor::Novita | Flavor::HuggingFace | Flavor::Gemini | Flavor::Replicate => {}
        }
        body
    }

    fn chunk(&self, choices: Value, include_usage: bool) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint(),
            "choices": choices,
        });
        if self.flavor == Flavor::OpenAi {
            chunk["service_tier"] = json!("default");
        }
        if self.flavor == Flavor::OpenRouter {
            chunk["provider"] = json!(dialects::OPENROUTER_PROVIDER);
        }
        // With include_usage every chunk carries `"usage": null` until the usage chunk.
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn delta_chunk(&self, delta: Value, include_usage: bool) -> Value {
        self.chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]),
            include_usage,
        )
    }

    /// The data chunks of a streamed answer, in order, up to and including the finish chunk
    /// and (when asked for) the `choices: []` usage chunk — everything but `[DONE]`.
    pub fn chunks(&self, answer: &Answer, include_usage: bool) -> Vec<Value> {
        let mut chunks = Vec::new();
        match answer {
            Answer::Text(text) | Answer::Filtered(text) => {
                chunks.push(
                    self.delta_chunk(json!({"role": "assistant", "content": ""}), include_usage),
                );
                for piece in split_words(text) {
                    chunks.push(self.delta_chunk(json!({"content": piece}), include_usage));
                }
            }
            Answer::ToolCalls(calls) => {
                chunks.push(
                    self.delta_chunk(json!({"role": "assistant", "content": null}), include_usage),
                );
                for (index, call) in calls.iter().enumerate() {
                    // The first fragment names the call; the arguments follow in pieces that
                    // only make sense once concatenated.
                    chunks.push(self.delta_chunk(
                        json!({"tool_calls": [{
                            "index": index, "id": call.id, "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }]}),
                        include_usage,
                    ));
                    for piece in split_in_three(&call.arguments) {
                        chunks.push(self.delta_chunk(
                            json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                            include_usage,
                        ));
                    }
                }
            }
        }
        if self.flavor == Flavor::Groq {
            // Groq names its request on the first chunk.
            if let Some(first) = chunks.first_mut() {
                first["x_groq"] = json!({"id": self.request_id});
            }
        }
        let mut finish = self.chunk(
            json!([{"index": 0, "delta": {}, "logprobs": null,
                    "finish_reason": answer.finish_reason()}]),
            include_usage,
        );
        if self.flavor == Flavor::Groq {
            // Groq puts the usage on the finish chunk, whether or not the client asked.
            finish["x_groq"] = json!({"id": self.request_id, "usage": self.usage(answer)});
        }
        if self.flavor == Flavor::Cerebras {
            // Cerebras puts usage and `time_info` on the finish chunk itself, beside `choices`.
            if include_usage {
                finish["usage"] = self.usage(answer);
                finish["time_info"] = dialects::time_info(self.created);
            }
            chunks.push(finish);
            return chunks;
        }
        if self.flavor == Flavor::OpenRouter {
            finish["choices"][0]["native_finish_reason"] = json!(answer.finish_reason());
        }
        chunks.push(finish);
        if include_usage {
            let mut usage_chunk = self.chunk(json!([]), false);
            usage_chunk["usage"] = self.usage(answer);
            chunks.push(usage_chunk);
        }
        chunks
    }

    /// A `data:` frame whose JSON stops in the middle of a chunk of this completion (right
    /// where the content should be), for the `malformed` models.
    pub fn truncated_chunk(&self) -> String {
        let id = &self.id;
        format!(
            concat!(
                r#"data: {{"id":"{id}","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"#,
                "\n\n"
            ),
            id = id
        )
    }

    /// The first content chunks of a text answer (role chunk included), for streams that die early.
    pub fn first_text_chunks(&self, text: &str, count: usize) -> Vec<Value> {
        let mut chunks = vec![self.delta_chunk(json!({"role": "assistant", "content": ""}), false)];
        for piece in split_words(text).into_iter().take(count) {
            chunks.push(self.delta_chunk(json!({"content": piece}), false));
        }
        chunks
    }
}

/// `"a b c"` → `["a", " b", " c"]`: one word per chunk, like a model emitting tokens.
pub(super) fn split_words(text: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        if i == 0 {
            pieces.push(word.to_owned());
        } else {
            pieces.push(format!(" {word}"));
        }
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// Splits a string into three non-empty pieces (fewer only when it is shorter than three chars),
/// on char boundaries.
fn split_in_three(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return vec![s.to_owned()];
    }
    let third = chars.len() / 3;
    vec![
        chars[..third].iter().collect(),
        chars[third..2 * third].iter().collect(),
        chars[2 * third..].iter().collect(),
    ]
}

/// An SSE frame: `data: <payload>\n\n`.
pub(super) fn sse(payload: &str) -> String {
    format!("data: {payload}\n\n")
}

pub(super) const SSE_DONE: &str = "data: [DONE]\n\n";

/// The error envelope `{"error":{message,type,param,code}}`. Groq leaves `param` out when it
/// has none; OpenAI always sends it.
pub(super) fn error_body(
    flavor: Flavor,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    let mut error = json!({"message": message, "type": kind});
    match (flavor, param) {
        (_, Some(param)) => error["param"] = json!(param),
        (Flavor::Groq, None) => {}
        (_, None) => error["param"] = Value::Null,
    }
    error["code"] = match code {
        Some(code) => json!(code),
        None => Value::Null,
    };
    json!({ "error": error })
}

/// The 429 body each provider really sends (Groq's from a captured response,
/// `docs/wire-formats.md`, Groq).
pub(super) fn rate_limit_body(flavor: Flavor, model: &str) -> Value {
    match flavor {
        Flavor::Groq => error_body(
            flavor,
            &format!(
                "Rate limit reached for model `{model}` in organization `org_01hmockmockmockmockmock` \
                 service tier `on_demand` on tokens per minute (TPM): Limit 6000, Used 5120, \
                 Requested 1200. Please try again in 5.289s. Need more tokens? Upgrade to Dev Tier \
                 today at https://console.groq.com/settings/billing"
            ),
            "tokens",
            None,
            Some("rate_limit_exceeded"),
        ),
        _ => error_body(
            flavor,
            &format!(
                "Rate limit reached for {model} in organization org-mockmockmockmock on tokens per \
                 min (TPM): Limit 200000, Used 199500, Requested 1200. Please try again in 5.289s. \
                 Visit https://platform.openai.com/account/rate-limits to learn more."
            ),
            "tokens",
            None,
            Some("rate_limit_exceeded"),
        ),
    }
}

/// The `x-ratelimit-*` set, as on every response of these providers. For Groq the request
/// numbers are per day and the token numbers per minute; resets are Go-style durations.
pub(super) fn rate_limit_headers(
    flavor: Flavor,
    exhausted: bool,
) -> [(&'static str, &'static str); 6] {
    match (flavor, exhausted) {
        (Flavor::Groq, false) => [
            ("x-ratelimit-limit-requests", "14400"),
            ("x-ratelimit-limit-tokens", "6000"),
            ("x-ratelimit-remaining-requests", "14399"),
            ("x-ratelimit-remaining-tokens", "5880"),
            ("x-ratelimit-reset-requests", "6s"),
            ("x-ratelimit-reset-tokens", "1.2s"),
        ],
        (Flavor::Groq, true) => [
            ("x-ratelimit-limit-requests", "14400"),
            ("x-ratelimit-limit-tokens", "6000"),
            ("x-ratelimit-remaining-requests", "14370"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-reset-tokens", "5.289s"),
        ],
        (_, false) => [
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-limit-tokens", "200000"),
            ("x-ratelimit-remaining-requests", "9999"),
            ("x-ratelimit-remaining-tokens", "199880"),
            ("x-ratelimit-reset-requests", "6ms"),
            ("x-ratelimit-reset-tokens", "36ms"),
        ],
        (_, true) => [
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-limit-tokens", "200000"),
            ("x-ratelimit-remaining-requests", "9970"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-reset-tokens", "5.289s"),
        ],
    }
}

/// The body of `GET /models`.
pub(super) fn models(flavor: Flavor) -> Value {
    match flavor {
        Flavor::Groq => {
            let model = |id: &str, owner: &str, context: u64, max_completion: u64| {
                json!({
                    "id": id, "object": "model", "created": 1693721698, "owned_by": owner,
                    "active": true, "context_window": context, "public_apps": null,
                    "max_completion_tokens": max_completion,
                })
            };
            json!({"object": "list", "data": [
                model("llama-3.1-8b-instant", "Meta", 131072, 131072),
                model("llama-3.3-70b-versatile", "Meta", 131072, 32768),
                model("openai/gpt-oss-120b", "OpenAI", 131072, 65536),
                model("qwen/qwen3-32b", "Alibaba Cloud", 131072, 40960),
                model("whisper-large-v3", "OpenAI", 448, 448),
            ]})
        }
        _ => {
            let model = |id: &str, created: u64, owner: &str| json!({"id": id, "object": "model", "created": created, "owned_by": owner});
            json!({"object": "list", "data": [
                model("gpt-4o-mini", 1721172741, "system"),
                model("gpt-4o", 1715367049, "system"),
                model("gpt-4.1-mini", 1744318173, "system"),
                model("text-embedding-3-small", 1705948997, "system"),
            ]})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_concatenate_back_to_the_text() {
        let text = "mock reply to: hello there";
        assert_eq!(split_words(text).concat(), text);
        assert_eq!(split_words(text).len(), 5);
    }

    #[test]
    fn arguments_split_into_three_pieces_that_concatenate_back() {
        let args = r#"{"city":"Paris"}"#;
        let pieces = split_in_three(args);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), args);
    }
}
