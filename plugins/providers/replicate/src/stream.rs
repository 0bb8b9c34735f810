//! Streamed answers.
//!
//! Replicate streams over a second request: the create response carries `urls.stream`, and
//! `GET urls.stream` answers SSE (`event: output` with plain-text pieces, `event: error`,
//! `event: done`). The host, however, feeds the stream decoder the 2xx body of the request
//! `encode` built, i.e. the prediction JSON of the create call: the WIT has no stream-side
//! `follow`. So the decoder accepts either body:
//!
//! - SSE from `urls.stream` (a host that follows it, or a proxy that does): `output` pieces
//!   become content deltas (the first with the role), `done` the finish chunk, `error` and a
//!   `done` whose reason is `canceled`/`error` a failure. The SSE carries no usage, so no usage
//!   chunk is emitted.
//! - a prediction JSON object: `succeeded` (sync mode finished in time) is replayed as chunks, a
//!   finish chunk and, when `metrics` has token counts, a usage chunk; `failed`/`canceled`/
//!   `aborted` are failures like in `decode`; `starting`/`processing` is an `unavailable` failure
//!   saying the host would have to follow `urls.stream`.

use aigw_plugin_sdk::failure::UpstreamError;
use aigw_plugin_sdk::sse::{Event, SseParser};
use aigw_plugin_sdk::{Chunk, Failure, StreamDecoder, Target};
use serde_json::{Value, json};

use crate::{
    Prediction, Status, is_content_filter_text, is_context_length_text, now_seconds, usage_json,
};

/// The most prediction JSON buffered for one streamed call; larger is a bad response.
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

enum Mode {
    /// Nothing but whitespace seen yet.
    Undecided(Vec<u8>),
    Sse(SseParser),
    Json(Vec<u8>),
}

/// The stream decoder for Replicate; see the module documentation.
pub struct PredictionStream {
    target: Target,
    mode: Mode,
    id: String,
    created: u64,
    role_sent: bool,
    done: bool,
}

impl PredictionStream {
    pub fn new(target: Target) -> Self {
        PredictionStream {
            target,
            mode: Mode::Undecided(Vec::new()),
            id: "chatcmpl-replicate".to_owned(),
            created: now_seconds(),
            role_sent: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Chunk {
        Chunk {
            json: json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.target.model,
                "choices": [{
                    "index": 0,
                    "delta": delta,
                    "logprobs": null,
                    "finish_reason": finish_reason,
                }],
            })
            .to_string(),
            usage: None,
        }
    }

    /// A content delta; the first one also carries the role.
    fn content(&mut self, text: &str, chunks: &mut Vec<Chunk>) {
        if !self.role_sent {
            self.role_sent = true;
            chunks.push(self.chunk(json!({"role": "assistant", "content": text}), None));
        } else if !text.is_empty() {
            chunks.push(self.chunk(json!({"content": text}), None));
        }
    }

    fn finish_chunks(&mut self, chunks: &mut Vec<Chunk>) {
        if !self.role_sent {
            self.content("", chunks);
        }
        chunks.push(self.chunk(json!({}), Some("stop")));
        self.done = true;
    }

    fn handle_events(&mut self, events: Vec<Event>) -> Result<Vec<Chunk>, Failure> {
        let mut chunks = Vec::new();
        for event in events {
            if self.done {
                break; // nothing after `done` belongs to the answer
            }
            match event.name.as_deref() {
                Some("output") => self.content(&event.data, &mut chunks),
                Some("error") => return Err(stream_error(&event.data)),
                Some("done") => {
                    let reason = serde_json::from_str::<Value>(&event.data)
                        .ok()
                        .and_then(|data| {
                            data.get("reason")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        })
                        .filter(|reason| !reason.is_empty());
                    match reason {
                        None => self.finish_chunks(&mut chunks),
                        Some(reason) if reason == "canceled" => {
                            return Err(Failure::Unavailable(
                                "replicate stream ended: the prediction was canceled".to_owned(),
                            ));
                        }
                        Some(reason) => {
                            return Err(Failure::Unavailable(format!(
                                "replicate stream ended with reason `{reason}`"
                            )));
                        }
                    }
                }
                // `logs`, keep-alives and unknown events carry no answer text.
                _ => {}
            }
        }
        Ok(chunks)
    }

    /// The buffered prediction JSON, replayed as chunks.
    fn replay_prediction(&mut self, body: &[u8]) -> Result<Vec<Chunk>, Failure> {
        let prediction = Prediction::parse(body)?;
        let status = prediction.status()?;
        if status != Status::Succeeded {
            if status == Status::Pending {
                let state = prediction.str("status").unwrap_or("pending");
                let stream_url = prediction
                    .0
                    .get("urls")
                    .and_then(|urls| urls.get("stream"))
                    .and_then(Value::as_str)
                    .unwrap_or("none given");
                return Err(Failure::Unavailable(format!(
                    "replicate prediction {} is still {state} after sync wait: streaming needs the \
                     host to follow urls.stream ({stream_url}), which the plugin interface cannot \
                     ask for yet",
                    prediction.id()
                )));
            }
            return Err(prediction.failure());
        }
        self.id = prediction.completion_id();
        self.created = prediction.created();
        let mut chunks = Vec::new();
        for piece in prediction.output_pieces() {
            self.content(&piece, &mut chunks);
        }
        self.finish_chunks(&mut chunks);
        if let Some(usage) = prediction.usage() {
            chunks.push(Chunk {
                json: json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.target.model,
                    "choices": [],
                    "usage": usage_json(usage),
                })
                .to_string(),
                usage: Some(usage),
            });
        }
        Ok(chunks)
    }
}

/// An `event: error` payload (`{"detail":"…"}`, or plain text).
fn stream_error(data: &str) -> Failure {
    match UpstreamError::parse(data.as_bytes()).message {
        Some(detail) if is_context_length_text(&detail) => {
            Failure::ContextLengthExceeded(format!("replicate stream error: {detail}"))
        }
        Some(detail) if is_content_filter_text(&detail) => {
            Failure::ContentFiltered(format!("replicate stream error: {detail}"))
        }
        Some(detail) => Failure::Unavailable(format!("replicate stream error: {detail}")),
        None => Failure::Unavailable("replicate stream error".to_owned()),
    }
}

impl StreamDecoder for PredictionStream {
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, Failure> {
        match &mut self.mode {
            Mode::Undecided(pending) => {
                pending.extend_from_slice(bytes);
                match pending.iter().find(|byte| !byte.is_ascii_whitespace()) {
                    None => Ok(Vec::new()),
                    Some(b'{') => {
                        let body = std::mem::take(pending);
                        if body.len() > MAX_JSON_BYTES {
                            return Err(too_large());
                        }
                        self.mode = Mode::Json(body);
                        Ok(Vec::new())
                    }
                    Some(_) => {
                        let body = std::mem::take(pending);
                        let mut parser = SseParser::new();
                        let events = parser.feed(&body);
                        self.mode = Mode::Sse(parser);
                        self.handle_events(events)
                    }
                }
            }
            Mode::Sse(parser) => {
                let events = parser.feed(bytes);
                self.handle_events(events)
            }
            Mode::Json(body) => {
                if body.len().saturating_add(bytes.len()) > MAX_JSON_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(bytes);
                Ok(Vec::new())
            }
        }
    }

    fn finish(&mut self) -> Result<Vec<Chunk>, Failure> {
        match std::mem::replace(&mut self.mode, Mode::Undecided(Vec::new())) {
            Mode::Undecided(_) => Err(Failure::BadResponse(
                "replicate answered an empty body to a streamed request".to_owned(),
            )),
            Mode::Json(body) => self.replay_prediction(&body),
            Mode::Sse(mut parser) => {
                let chunks = if self.done {
                    Vec::new()
                } else {
                    let events = parser.finish();
                    self.handle_events(events)?
                };
                if !self.done {
                    return Err(Failure::Unavailable(
                        "replicate stream ended before `event: done`".to_owned(),
                    ));
                }
                Ok(chunks)
            }
        }
    }
}

fn too_large() -> Failure {
    Failure::BadResponse(format!(
        "the prediction is larger than {MAX_JSON_BYTES} bytes"
    ))
}
