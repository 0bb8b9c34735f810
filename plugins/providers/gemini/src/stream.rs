//! Gemini `streamGenerateContent?alt=sse` → OpenAI `chat.completion.chunk`s.
//!
//! Each SSE frame is a complete `GenerateContentResponse` holding only the new parts. There is no
//! `[DONE]`: the frame with `finishReason` is the last one and the connection closes, so `finish`
//! checks that a finish reason was seen. `usageMetadata` may ride on any frame; the last one wins
//! and becomes the OpenAI usage chunk (`choices: []`) at the end of the stream.
//!
//! A response whose head says JSON (a proxy that dropped `alt=sse`, so Gemini answered the
//! plain `streamGenerateContent` array of responses, or one `generateContent` object) is
//! buffered and decoded as that array at the end, with the same chunks as its frames would give.

use std::collections::BTreeMap;

use aigw_plugin_sdk::sse::SseParser;
use aigw_plugin_sdk::{Chunk, Failure, ResponseHead, StreamDecoder, StreamEnd, Target, Usage};
use serde_json::{Map, Value, json};

use crate::decode::{
    blocked_prompt, candidate_index, candidates, completion_id, finish_reason,
    parse_usage_metadata, read_parts,
};
use crate::errors::classify_error_frame;
use crate::now_seconds;

/// The most JSON buffered for a response that is not an event stream.
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

pub struct GeminiStream {
    target: Target,
    sse: SseParser,
    /// The buffered body when the head said JSON.
    json: Option<Vec<u8>>,
    id: Option<String>,
    created: u64,
    choices: BTreeMap<u64, ChoiceState>,
    usage: Option<(Usage, Value)>,
}

#[derive(Debug, Default)]
struct ChoiceState {
    role_sent: bool,
    calls: usize,
    finished: bool,
}

impl GeminiStream {
    pub fn new(target: Target, head: &ResponseHead) -> Self {
        GeminiStream {
            target,
            sse: SseParser::new(),
            json: head.is_json().then(Vec::new),
            id: None,
            created: now_seconds(),
            choices: BTreeMap::new(),
            usage: None,
        }
    }

    fn handle_data(&mut self, data: &str, chunks: &mut Vec<Chunk>) -> Result<(), Failure> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let value: Value = serde_json::from_str(data).map_err(|error| {
            Failure::BadResponse(format!(
                "gemini sent a stream frame that is not JSON: {error}"
            ))
        })?;
        match &value {
            // Tolerate the array form (`streamGenerateContent` without `alt=sse`) per frame.
            Value::Array(items) => {
                for item in items {
                    self.handle_response(item, chunks)?;
                }
                Ok(())
            }
            _ => self.handle_response(&value, chunks),
        }
    }

    fn handle_response(&mut self, value: &Value, chunks: &mut Vec<Chunk>) -> Result<(), Failure> {
        if !value.is_object() {
            return Err(Failure::BadResponse(
                "gemini sent a stream frame that is not a JSON object".to_owned(),
            ));
        }
        if value.get("error").is_some_and(|error| !error.is_null()) {
            return Err(classify_error_frame(value));
        }
        if let Some(failure) = blocked_prompt(value) {
            return Err(failure);
        }
        if self.id.is_none() && value.get("responseId").is_some() {
            self.id = Some(completion_id(value));
        }
        if let Some(usage) = value.get("usageMetadata").and_then(parse_usage_metadata) {
            self.usage = Some(usage);
        }
        for (position, candidate) in candidates(value).iter().enumerate() {
            let index = candidate_index(candidate, position);
            let parts = read_parts(candidate);
            let raw_reason = candidate
                .get("finishReason")
                .and_then(Value::as_str)
                .filter(|reason| !reason.is_empty() && *reason != "FINISH_REASON_UNSPECIFIED");
            let state = self.choices.entry(index).or_default();

            let mut delta = Map::new();
            if !state.role_sent {
                delta.insert("role".to_owned(), json!("assistant"));
            }
            if !parts.text.is_empty() {
                delta.insert("content".to_owned(), json!(parts.text));
            }
            if !parts.calls.is_empty() {
                let calls: Vec<Value> = parts
                    .calls
                    .iter()
                    .map(|call| {
                        let number = state.calls;
                        state.calls += 1;
                        call.to_openai(number, true)
                    })
                    .collect();
                delta.insert("tool_calls".to_owned(), Value::Array(calls));
            }
            let has_news = !parts.text.is_empty() || !parts.calls.is_empty();
            if has_news || (!state.role_sent && raw_reason.is_none()) {
                if !has_news {
                    delta.insert("content".to_owned(), json!(""));
                }
                state.role_sent = true;
                let delta = std::mem::take(&mut delta);
                chunks.push(self.chunk(index, Value::Object(delta), Value::Null));
            }
            if let Some(reason) = raw_reason {
                let state = self.choices.entry(index).or_default();
                let mut delta = Map::new();
                if !state.role_sent {
                    delta.insert("role".to_owned(), json!("assistant"));
                    state.role_sent = true;
                }
                state.finished = true;
                let reason = finish_reason(reason, state.calls > 0);
                chunks.push(self.chunk(index, Value::Object(delta), json!(reason)));
            }
        }
        Ok(())
    }

    fn envelope(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert(
            "id".to_owned(),
            json!(self.id.as_deref().unwrap_or("chatcmpl-gemini")),
        );
        out.insert("object".to_owned(), json!("chat.completion.chunk"));
        out.insert("created".to_owned(), json!(self.created));
        out.insert("model".to_owned(), json!(self.target.model));
        out
    }

    fn chunk(&self, index: u64, delta: Value, finish_reason: Value) -> Chunk {
        let mut out = self.envelope();
        out.insert(
            "choices".to_owned(),
            json!([{
                "index": index,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }]),
        );
        Chunk {
            json: aigw_plugin_sdk::json::text(&Value::Object(out)),
            usage: None,
        }
    }

    fn handle_events(
        &mut self,
        events: Vec<aigw_plugin_sdk::sse::Event>,
    ) -> Result<Vec<Chunk>, Failure> {
        let mut chunks = Vec::new();
        for event in events {
            self.handle_data(&event.data, &mut chunks)?;
        }
        Ok(chunks)
    }
}

impl StreamDecoder for GeminiStream {
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, Failure> {
        if let Some(body) = &mut self.json {
            if body.len().saturating_add(bytes.len()) > MAX_JSON_BYTES {
                return Err(Failure::BadResponse(format!(
                    "gemini answered more than {MAX_JSON_BYTES} bytes of JSON"
                )));
            }
            body.extend_from_slice(bytes);
            return Ok(Vec::new());
        }
        let events = self.sse.feed(bytes);
        self.handle_events(events)
    }

    fn finish(&mut self) -> Result<StreamEnd, Failure> {
        let mut chunks = match self.json.take() {
            Some(body) => {
                let text = String::from_utf8(body).map_err(|_| {
                    Failure::BadResponse("gemini answered JSON that is not UTF-8".to_owned())
                })?;
                let mut chunks = Vec::new();
                // The array form is read like one frame holding every response.
                self.handle_data(&text, &mut chunks)?;
                chunks
            }
            None => {
                let events = self.sse.finish();
                self.handle_events(events)?
            }
        };
        let finished =
            !self.choices.is_empty() && self.choices.values().all(|state| state.finished);
        if !finished {
            return Err(Failure::Unavailable(
                "gemini stream ended before a finishReason".to_owned(),
            ));
        }
        if let Some((usage, usage_json)) = self.usage.take() {
            let mut out = self.envelope();
            out.insert("choices".to_owned(), Value::Array(Vec::new()));
            out.insert("usage".to_owned(), usage_json);
            chunks.push(Chunk {
                json: aigw_plugin_sdk::json::text(&Value::Object(out)),
                usage: Some(usage),
            });
        }
        Ok(StreamEnd::Done(chunks))
    }
}
