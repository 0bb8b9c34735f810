//! Streamed answers.
//!
//! Replicate streams over a second request: a streamed call creates the prediction (without
//! sync mode), and its JSON carries `urls.stream`, where `GET` with `Accept: text/event-stream`
//! answers SSE (`event: output` with plain-text pieces, `event: error`, `event: done`). The
//! decoder is made for the create response and reads it as a prediction; at its end it asks the
//! host to follow `urls.stream` ([`StreamEnd::Follow`]), and the host feeds the SSE body to the
//! same decoder:
//!
//! - prediction JSON: `starting`/`processing` → follow `urls.stream` at once (or, for a
//!   prediction without a stream URL, poll `urls.get` at the [`crate::poll`] interval and read
//!   the next prediction the same way); `succeeded` (a model fast enough to have finished) is
//!   replayed as chunks, a finish chunk and, when `metrics` has token counts, a usage chunk;
//!   `failed`/`canceled`/`aborted` are failures like in `decode`.
//! - SSE: `output` pieces become content deltas (the first with the role), `done` the finish
//!   chunk, `error` and a `done` whose reason is `canceled`/`error` a failure; a body that ends
//!   before `done` was cut short. The SSE carries no usage: once it is done, the decoder follows
//!   `urls.get` and reads the finished prediction's `metrics` into OpenAI's usage chunk (a
//!   prediction that cannot be read then costs only the usage chunk, not the answer). The
//!   chunks carry the prediction's id (`chatcmpl-<id>`) and creation time.
//!
//! Which a body is comes from what the decoder asked for, else from the response head's
//! content type, else from its first byte (`{` is JSON).

use aigw_plugin_sdk::failure::UpstreamError;
use aigw_plugin_sdk::sse::{Event, SseParser};
use aigw_plugin_sdk::{
    Chunk, Failure, Follow, HttpRequest, ResponseHead, StreamDecoder, StreamEnd, Target, Usage,
};
use serde_json::{Value, json};

use crate::{
    Prediction, Status, is_content_filter_text, is_context_length_text, now_seconds, usage_json,
};

/// The most prediction JSON buffered for one streamed call; larger is a bad response.
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

enum Body {
    /// Nothing but whitespace seen yet, and nothing said what to expect.
    Undecided(Vec<u8>),
    Sse(SseParser),
    Json(Vec<u8>),
}

/// The stream decoder for Replicate; see the module documentation.
pub struct PredictionStream {
    target: Target,
    body: Body,
    id: String,
    created: u64,
    role_sent: bool,
    done: bool,
    /// `GET urls.get` of the prediction being streamed: its `metrics` give the usage the SSE
    /// does not carry, read once the stream is done.
    usage_request: Option<HttpRequest>,
    /// The body now being read is that prediction, for its usage only.
    reading_usage: bool,
}

impl PredictionStream {
    pub fn new(target: Target, head: &ResponseHead) -> Self {
        let is_sse = head.header("content-type").is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
        let body = if head.is_json() {
            Body::Json(Vec::new())
        } else if is_sse {
            Body::Sse(SseParser::new())
        } else {
            Body::Undecided(Vec::new())
        };
        PredictionStream {
            target,
            body,
            id: "chatcmpl-replicate".to_owned(),
            created: now_seconds(),
            role_sent: false,
            done: false,
            usage_request: None,
            reading_usage: false,
        }
    }

    /// A `chat.completion.chunk` of this stream with `choices` (and the usage, when given).
    fn envelope(&self, choices: Value, usage: Option<Usage>) -> Chunk {
        let mut json = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.target.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            json["usage"] = usage_json(usage);
        }
        Chunk {
            json: aigw_plugin_sdk::json::text(&json),
            usage,
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Chunk {
        self.envelope(
            json!([{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }]),
            None,
        )
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

    /// A whole prediction body: the follow it calls for, or its replay as chunks.
    fn prediction_ended(&mut self, body: &[u8]) -> Result<StreamEnd, Failure> {
        if self.reading_usage {
            // The answer is complete already: a prediction that cannot be read (or has no
            // metrics yet) only costs the usage chunk, never the answer.
            let usage = Prediction::parse(body).ok().and_then(|p| p.usage());
            return Ok(StreamEnd::Done(
                usage.map(|u| self.usage_chunk(u)).into_iter().collect(),
            ));
        }
        let prediction = Prediction::parse(body)?;
        let status = prediction.status()?;
        self.id = prediction.completion_id();
        self.created = prediction.created();
        match status {
            Status::Succeeded => self.replay(&prediction).map(StreamEnd::Done),
            Status::Failed | Status::Canceled | Status::Aborted => Err(prediction.failure()),
            Status::Pending => {
                if let Some(request) = prediction.stream_request() {
                    self.usage_request = prediction.poll_request(&self.target).ok();
                    self.body = Body::Sse(SseParser::new());
                    return Ok(StreamEnd::Follow(Follow::now(request)));
                }
                // No stream to read: poll until it ends, then replay it.
                let follow = prediction.poll(&self.target)?;
                self.body = Body::Json(Vec::new());
                Ok(StreamEnd::Follow(follow))
            }
        }
    }

    /// A finished prediction as chunks: its output pieces, the finish chunk, the usage chunk.
    fn replay(&mut self, prediction: &Prediction) -> Result<Vec<Chunk>, Failure> {
        if self.role_sent {
            // Pieces were streamed already; replaying would send the answer twice.
            return Err(Failure::BadResponse(
                "replicate sent a whole prediction after streaming part of it".to_owned(),
            ));
        }
        let mut chunks = Vec::new();
        for piece in prediction.output_pieces() {
            self.content(&piece, &mut chunks);
        }
        self.finish_chunks(&mut chunks);
        if let Some(usage) = prediction.usage() {
            chunks.push(self.usage_chunk(usage));
        }
        Ok(chunks)
    }

    /// OpenAI's final usage chunk (`choices: []`).
    fn usage_chunk(&self, usage: Usage) -> Chunk {
        self.envelope(json!([]), Some(usage))
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
        match &mut self.body {
            Body::Undecided(pending) => {
                pending.extend_from_slice(bytes);
                match pending.iter().find(|byte| !byte.is_ascii_whitespace()) {
                    None => Ok(Vec::new()),
                    Some(b'{') => {
                        let body = std::mem::take(pending);
                        if body.len() > MAX_JSON_BYTES {
                            return Err(too_large());
                        }
                        self.body = Body::Json(body);
                        Ok(Vec::new())
                    }
                    Some(_) => {
                        let body = std::mem::take(pending);
                        let mut parser = SseParser::new();
                        let events = parser.feed(&body);
                        self.body = Body::Sse(parser);
                        self.handle_events(events)
                    }
                }
            }
            Body::Sse(parser) => {
                let events = parser.feed(bytes);
                self.handle_events(events)
            }
            Body::Json(body) => {
                if body.len().saturating_add(bytes.len()) > MAX_JSON_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(bytes);
                Ok(Vec::new())
            }
        }
    }

    fn finish(&mut self) -> Result<StreamEnd, Failure> {
        match std::mem::replace(&mut self.body, Body::Undecided(Vec::new())) {
            Body::Undecided(_) => Err(Failure::BadResponse(
                "replicate answered an empty body to a streamed request".to_owned(),
            )),
            Body::Json(body) => self.prediction_ended(&body),
            Body::Sse(mut parser) => {
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
                // The SSE has no usage: read it from the finished prediction's metrics.
                if chunks.is_empty()
                    && let Some(request) = self.usage_request.take()
                {
                    self.body = Body::Json(Vec::new());
                    self.reading_usage = true;
                    return Ok(StreamEnd::Follow(Follow::now(request)));
                }
                Ok(StreamEnd::Done(chunks))
            }
        }
    }
}

fn too_large() -> Failure {
    Failure::BadResponse(format!(
        "the prediction is larger than {MAX_JSON_BYTES} bytes"
    ))
}
