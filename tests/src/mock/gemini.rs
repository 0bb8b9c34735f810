//! Google Gemini's native API (`docs/wire-formats.md`, Gemini native): the routes, request reading,
//! answers and error bodies of [`Flavor::Gemini`]. `mock.rs` records the request and checks
//! `x-goog-api-key` (or `?key=`) before it hands over; everything the client sees after that is
//! decided here.
//!
//! Routes under `/v1beta`: `POST /models/{model}:generateContent`,
//! `POST /models/{model}:streamGenerateContent?alt=sse` (SSE frames `data: <json>\r\n\r\n`, no
//! `[DONE]`: the body just ends), the same without `alt=sse` (one JSON array `[{…},\r\n{…}]`),
//! `GET /models` (paged with `pageSize` / `pageToken`) and `GET /models/{model}`. Anything else
//! is a 404 `NOT_FOUND`. The model comes from the path; [`Behaviour::of`] picks what to do.
//!
//! | model | non-stream | stream |
//! |---|---|---|
//! | `ok`, `no-done`, `processing-<n>`, any other name | `candidates[0].content.parts[0].text` = `"mock reply to: <last user text>"`, `finishReason: "STOP"`, `usageMetadata` | one frame per word (only the new text), `usageMetadata` with the prompt count on each, the last frame with `finishReason: "STOP"` and the full counts; no `[DONE]` |
//! | `tool-call` | a `functionCall {name, args}` part (args an object) to the first declared function, `finishReason: "STOP"` (Gemini has no tool-call reason) | the call whole in one frame |
//! | `tool-call-parallel` | two `functionCall` parts (Paris, London) | the same, in one frame |
//! | `tool-call*` after `functionResponse` parts in the last `user` turn | `"tool said: <result>"`, one line per part | the same text, streamed |
//! | `slow-<ms>` | waits `<ms>` before the headers, then as `ok` | the same |
//! | `rate-limit` | 429 `RESOURCE_EXHAUSTED` with `Help`, `QuotaFailure` and `RetryInfo {retryDelay: "6.247483s"}`, "Please retry in 6.247483s." — no `retry-after`, no `x-ratelimit-*` | the same |
//! | `rate-limit-no-header` | the same 429 without `RetryInfo` and without "Please retry in" | the same |
//! | `error-500` | 500 `INTERNAL` | the same |
//! | `error-200` | as `error-500` | the same |
//! | `unavailable-503`, `capacity-498` | 503 `UNAVAILABLE` "The model is overloaded…" (Gemini has no 498) | the same |
//! | `context-length` | 400 `INVALID_ARGUMENT` "The input token count (9000) exceeds the maximum number of tokens allowed (8192)." | the same |
//! | `bad-request` | 400 `INVALID_ARGUMENT` with [`BAD_REQUEST_MESSAGE`] and a `BadRequest` field violation | the same |
//! | `no-credit` | 402 `RESOURCE_EXHAUSTED` (prepaid credits depleted) | the same |
//! | `forbidden` | 403 `PERMISSION_DENIED` (leaked key) | the same |
//! | `content-filter` | 200 without `candidates`, `promptFeedback.blockReason: "SAFETY"` | one such frame, then the end |
//! | `reset` | the connection closes, no response | the same |
//! | `cut-stream[-<n>]` | 200 whose body stops half-way (`content-length` of the whole) | `n` (default 2) word frames, then the connection dies (no `finishReason`) |
//! | `stream-error` | 500 `INTERNAL` | one text frame, then `{"error":{"code":500,…,"status":"INTERNAL"}}`, then the end |
//! | `flaky-<status>-<n>` | the first `n` requests for this model name answer as `error-500` (status 500 and any unknown one), `unavailable-503` or `rate-limit` (429), later ones as `ok` | the same |
//! | `slow-first-<ms>` | as `slow-<ms>` | the headers at once, then nothing for `<ms>`, then the `ok` frames |
//! | `stall-<n>` | the headers and half the body, then silence for up to 60 s, then the connection dies | `n` word frames, then silence for up to 60 s, then the connection dies (no `finishReason`) |
//! | `malformed-<n>` | 200 whose JSON body is cut in half (`content-length` of what is sent) | `n` word frames, a frame of truncated JSON, then the remaining frames as usual |
//!
//! Continuations are read as in `mock.rs`: after a final `model` turn with text (a prefill), or
//! such a turn followed by a `user` turn starting with "Continue", the answer is only what is
//! left of `"mock reply to: <the user text before it>"` when that reply starts with the
//! partial text, else the whole reply.
//!
//! A wrong key is Google's 400 `INVALID_ARGUMENT` with `ErrorInfo.reason: "API_KEY_INVALID"`, a
//! missing one 403 `PERMISSION_DENIED` ("unregistered callers"). A body that is not JSON is 400
//! "Invalid JSON payload received."; a role other than `user`/`model` is Google's 400 too, so a
//! client that leaks OpenAI roles fails here as it would against the real API.
//!
//! Token counts follow the other flavors: `promptTokenCount` = 8 + (characters of every `text`
//! part in `contents` and `systemInstruction`) / 4, `candidatesTokenCount` = whitespace words of
//! the answer (a function call: words of its JSON `args` + 1), `totalTokenCount` = the sum.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde_json::{Value, json};

use super::wire::split_words;
use super::{
    BAD_REQUEST_MESSAGE, Behaviour, Body, FAULT_PAUSE, Flavor, RETRY_AFTER_SECONDS, Reset,
    STALL_HOLD, State, Step, arguments_for, continued, is_continue_prompt, json_response,
    partial_turn_at, raw_json_response, streamed,
};

/// Google's JSON content type, on every JSON answer (errors included).
const JSON_UTF8: &str = "application/json; charset=UTF-8";

/// The fraction of a second the 429's `retryDelay` carries beyond `RETRY_AFTER_SECONDS - 1`, so
/// that a client rounding up (as it must) waits exactly [`RETRY_AFTER_SECONDS`].
const RETRY_FRACTION: &str = "247483";

/// The models `GET /models` lists: name, display name, input limit, output limit, thinking.
const MODELS: [(&str, &str, u64, u64, bool); 3] = [
    (
        "gemini-2.5-flash",
        "Gemini 2.5 Flash",
        1_048_576,
        65_536,
        true,
    ),
    ("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536, true),
    (
        "gemini-2.0-flash",
        "Gemini 2.0 Flash",
        1_048_576,
        8_192,
        false,
    ),
];

/// How the client asked for the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `:generateContent`: one JSON object.
    Whole,
    /// `:streamGenerateContent?alt=sse`: SSE frames.
    Sse,
    /// `:streamGenerateContent` without `alt=sse`: one JSON array of responses.
    Array,
}

pub(super) async fn handle(
    state: &State,
    parts: &Parts,
    body: Option<Value>,
) -> Result<Response<Body>, Reset> {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let route = path.strip_prefix(Flavor::Gemini.base_path()).unwrap_or("");
    let target = route.strip_prefix("/models/");

    if parts.method == Method::GET {
        if route == "/models" {
            return Ok(list_models(query));
        }
        if let Some(name) = target.filter(|name| !name.is_empty() && !name.contains(':')) {
            return Ok(get_model(name));
        }
    }
    if parts.method == Method::POST
        && let Some((model, method)) = target.and_then(|rest| rest.split_once(':'))
    {
        let mode = match method {
            "generateContent" => Some(Mode::Whole),
            "streamGenerateContent" if query_param(query, "alt") == Some("sse") => Some(Mode::Sse),
            "streamGenerateContent" => Some(Mode::Array),
            _ => None,
        };
        if let Some(mode) = mode
            && !model.is_empty()
        {
            return generate(state, model, mode, body).await;
        }
    }
    Ok(status_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &format!(
            "The requested URL {} {path} was not found on this server.",
            parts.method
        ),
        None,
    ))
}

/// Google's answer to a wrong key (`missing: false`) or to no key at all.
pub(super) fn unauthorized(missing: bool) -> Response<Body> {
    if missing {
        return status_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
            None,
        );
    }
    // A bad key is 400, not 401: clients must look at `ErrorInfo.reason` to tell it from a
    // malformed request (`docs/wire-formats.md`, Gemini native).
    let message = "API key not valid. Please pass a valid API key.";
    status_error(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        message,
        Some(json!([
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ])),
    )
}

/// A `generateContent` / `streamGenerateContent` call for `model`.
async fn generate(
    state: &State,
    model: &str,
    mode: Mode,
    body: Option<Value>,
) -> Result<Response<Body>, Reset> {
    let Some(body) = body else {
        return Ok(invalid_argument(
            "Invalid JSON payload received. Unexpected token.",
        ));
    };
    let request = match Generate::parse(&body) {
        Ok(request) => request,
        Err(message) => return Ok(invalid_argument(&message)),
    };
    let reply = Reply::new(model, request.prompt_tokens());
    let text = || Answer::Text(request.reply_text());

    match state.behaviour(model) {
        // `Flaky` is resolved into an error or `Ok` by `State::behaviour`.
        Behaviour::Ok
        | Behaviour::NoDone
        | Behaviour::Processing { .. }
        | Behaviour::Flaky { .. } => Ok(answer(mode, &reply, &text())),
        // Without a stream there is no first frame to hold back: the whole answer waits.
        Behaviour::Slow(delay) | Behaviour::SlowFirst(delay) if mode == Mode::Whole => {
            tokio::time::sleep(delay).await;
            Ok(answer(mode, &reply, &text()))
        }
        // Pacing frames is the OpenAI dialects' (`mock.rs`); here it is `slow-<ms>`.
        Behaviour::Slow(delay) | Behaviour::Paced(delay) => {
            tokio::time::sleep(delay).await;
            Ok(answer(mode, &reply, &text()))
        }
        Behaviour::SlowFirst(delay) => {
            let body = whole_body(mode, &reply.frames(&text()));
            // hyper writes the head before it polls the body, so the headers are out while the
            // body's first step waits.
            let steps = vec![Step::Pause(delay), Step::Send(Bytes::from(body))];
            Ok(stream_response(mode, steps))
        }
        Behaviour::Stall { chunks } => Ok(cut_short(mode, &reply, &text(), chunks, STALL_HOLD)),
        Behaviour::Malformed { chunks } => Ok(malformed(mode, &reply, &text(), chunks)),
        Behaviour::ToolCall { parallel, .. } => {
            let results = request.function_results();
            if !results.is_empty() {
                let said = results
                    .iter()
                    .map(|r| format!("tool said: {r}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                Ok(answer(mode, &reply, &Answer::Text(said)))
            } else if request.declarations.is_empty() {
                Ok(invalid_argument(
                    "mock upstream: the tool-call models need `tools[].functionDeclarations` \
                     in the request",
                ))
            } else {
                let calls = function_calls(&request.declarations, parallel);
                Ok(answer(mode, &reply, &Answer::Calls(calls)))
            }
        }
        Behaviour::RateLimit { retry_after } => Ok(rate_limited(model, retry_after)),
        // The OpenAI dialects' 200 carrying an error: Gemini answers errors with their status.
        Behaviour::ServerError | Behaviour::ErrorIn200 | Behaviour::EchoError => Ok(server_error()),
        // Without a stream there is no frame to fail in: the error comes as a plain 500.
        Behaviour::StreamError if mode == Mode::Whole => Ok(server_error()),
        Behaviour::StreamError => Ok(stream_error(mode, &reply)),
        Behaviour::Unavailable | Behaviour::Capacity => Ok(status_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            Flavor::Gemini.overloaded_message(),
            None,
        )),
        Behaviour::ContextLength => Ok(invalid_argument(
            "The input token count (9000) exceeds the maximum number of tokens allowed (8192).",
        )),
        Behaviour::BadRequest => Ok(status_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            BAD_REQUEST_MESSAGE,
            Some(json!([{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{
                    "field": "generation_config.temperature",
                    "description": BAD_REQUEST_MESSAGE,
                }],
            }])),
        )),
        Behaviour::Reset => Err(Reset),
        Behaviour::NoCredit => Ok(status_error(
            StatusCode::PAYMENT_REQUIRED,
            "RESOURCE_EXHAUSTED",
            "Your prepayment credits are depleted. Please go to AI Studio at \
             https://ai.studio/projects to manage your project and billing.",
            None,
        )),
        Behaviour::Forbidden => Ok(status_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Your API key was reported as leaked. Please use another API key.",
            None,
        )),
        Behaviour::ContentFilter => Ok(blocked(mode, &reply)),
        Behaviour::CutStream { chunks } => {
            Ok(cut_short(mode, &reply, &text(), chunks, FAULT_PAUSE))
        }
    }
}

/// The parts of a `GenerateContentRequest` the script reads.
struct Generate<'a> {
    contents: &'a [Value],
    system: Option<&'a Value>,
    /// Every `tools[].functionDeclarations[]`, in order.
    declarations: Vec<&'a Value>,
}

impl<'a> Generate<'a> {
    /// Reads the request, or says (in Google's words) why it is invalid.
    fn parse(body: &'a Value) -> Result<Generate<'a>, String> {
        if !body.is_object() {
            return Err(
                "Invalid JSON payload received. Unknown name \"\": Root element must be a message."
                    .to_owned(),
            );
        }
        let contents = match body.get("contents") {
            Some(Value::Array(contents)) if !contents.is_empty() => contents.as_slice(),
            _ => {
                return Err(
                    "* GenerateContentRequest.contents: contents is not specified\n".to_owned(),
                );
            }
        };
        for turn in contents {
            match turn.get("role") {
                // A single-turn request may leave the role out; Google takes it as `user`.
                None | Some(Value::Null) => {}
                Some(Value::String(role)) if role == "user" || role == "model" => {}
                Some(_) => return Err("Please use a valid role: user, model.".to_owned()),
            }
        }
        let declarations = body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|tool| tool.get("functionDeclarations").and_then(Value::as_array))
            .flatten()
            .collect();
        Ok(Generate {
            contents,
            system: body.get("systemInstruction"),
            declarations,
        })
    }

    fn prompt_tokens(&self) -> u64 {
        let chars: usize = self
            .contents
            .iter()
            .chain(self.system)
            .map(|turn| text_of(turn).chars().count())
            .sum();
        8 + chars as u64 / 4
    }

    /// The text the `ok` family answers: `"mock reply to: <question>"`, the question being the
    /// last `user` turn with text (before the partial answer of a continuation), or only what
    /// is left of that reply after the partial answer.
    fn reply_text(&self) -> String {
        let (asked, partial) = match self.partial_answer_at() {
            Some(at) => (&self.contents[..at], Some(text_of(&self.contents[at]))),
            None => (self.contents, None),
        };
        let question = asked
            .iter()
            .rev()
            .filter(|turn| is_user(turn))
            .map(text_of)
            .find(|text| !text.is_empty())
            .unwrap_or_default();
        continued(format!("mock reply to: {question}"), partial.as_deref())
    }

    /// Where a continuation's partial answer is, as `mock::is_continuation` reads OpenAI
    /// messages: a final `model` turn with text and no `functionCall`, or such a turn followed
    /// by a final `user` turn starting with "Continue".
    fn partial_answer_at(&self) -> Option<usize> {
        let is_partial = |turn: &Value| {
            let calls = parts_of(turn)
                .iter()
                .any(|part| part.get("functionCall").is_some());
            turn.get("role").and_then(Value::as_str) == Some("model")
                && !calls
                && !text_of(turn).is_empty()
        };
        let is_prompt = |turn: &Value| is_user(turn) && is_continue_prompt(&text_of(turn));
        partial_turn_at(self.contents, is_partial, is_prompt)
    }

    /// What the `functionResponse` parts of the last `user` turn say: `response.result` when it
    /// is a string (how clients wrap a plain-text tool result), else the `response` as JSON.
    fn function_results(&self) -> Vec<String> {
        let Some(turn) = self.contents.iter().rev().find(|turn| is_user(turn)) else {
            return Vec::new();
        };
        parts_of(turn)
            .iter()
            .filter_map(|part| part.get("functionResponse"))
            .map(|call| {
                let response = call.get("response").unwrap_or(&Value::Null);
                match response.get("result") {
                    Some(Value::String(result)) => result.clone(),
                    _ => response.to_string(),
                }
            })
            .collect()
    }
}

fn is_user(turn: &Value) -> bool {
    matches!(
        turn.get("role").and_then(Value::as_str),
        None | Some("user")
    )
}

fn parts_of(turn: &Value) -> &[Value] {
    turn.get("parts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A `Content`'s text: its `text` parts joined.
fn text_of(turn: &Value) -> String {
    parts_of(turn)
        .iter()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect()
}

/// `functionCall` objects for the declared functions: the first one, and for parallel calls the
/// second one (or the first again).
fn function_calls(declarations: &[&Value], parallel: bool) -> Vec<Value> {
    let call = |i: usize, city: &str| {
        let declaration = declarations.get(i).or_else(|| declarations.first());
        let name = declaration
            .and_then(|d| d.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("tool");
        let schema = declaration
            .and_then(|d| {
                d.get("parameters")
                    .or_else(|| d.get("parametersJsonSchema"))
            })
            .map(lower_case_types);
        json!({"name": name, "args": arguments_for(schema.as_ref(), city)})
    };
    if parallel {
        vec![call(0, "Paris"), call(1, "London")]
    } else {
        vec![call(0, "Paris")]
    }
}

/// Gemini's schema subset spells types in upper case (`STRING`, `INTEGER`); `arguments_for`
/// reads JSON Schema's lower-case names.
fn lower_case_types(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for property in properties.values_mut() {
            if let Some(kind) = property.get("type").and_then(Value::as_str) {
                property["type"] = json!(kind.to_ascii_lowercase());
            }
        }
    }
    schema
}

/// What the model answers.
enum Answer {
    Text(String),
    /// `functionCall` objects (`{"name", "args"}`).
    Calls(Vec<Value>),
}

impl Answer {
    /// Whitespace words of the text, or of each call's `args` JSON plus one per call, so tests
    /// can check usage against what they received (as the OpenAI flavors count).
    fn tokens(&self) -> u64 {
        match self {
            Answer::Text(text) => text.split_whitespace().count() as u64,
            Answer::Calls(calls) => calls
                .iter()
                .map(|call| call["args"].to_string().split_whitespace().count() as u64 + 1)
                .sum(),
        }
    }

    fn parts(&self) -> Vec<Value> {
        match self {
            Answer::Text(text) => vec![json!({"text": text})],
            Answer::Calls(calls) => calls
                .iter()
                .map(|call| json!({"functionCall": call}))
                .collect(),
        }
    }
}

/// One `GenerateContentResponse` being written: what every frame of it shares.
struct Reply {
    model: String,
    id: String,
    prompt_tokens: u64,
}

impl Reply {
    fn new(model: &str, prompt_tokens: u64) -> Reply {
        Reply {
            model: model.to_owned(),
            id: response_id(),
            prompt_tokens,
        }
    }

    /// The full counts, as on a whole answer and on a stream's last frame.
    fn usage(&self, candidates: u64) -> Value {
        json!({
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": candidates,
            "totalTokenCount": self.prompt_tokens + candidates,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
        })
    }

    /// The counts an unfinished stream frame carries: the prompt only.
    fn prompt_usage(&self) -> Value {
        json!({"promptTokenCount": self.prompt_tokens, "totalTokenCount": self.prompt_tokens})
    }

    fn response(&self, candidate: Value, usage: Value) -> Value {
        json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": self.id,
        })
    }

    /// The non-streamed answer.
    fn full(&self, answer: &Answer) -> Value {
        self.response(
            json!({
                "content": {"role": "model", "parts": answer.parts()},
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": safety_ratings(),
            }),
            self.usage(answer.tokens()),
        )
    }

    /// A frame holding only `parts`, finished (`STOP`, full counts) or not.
    fn frame(&self, parts: Vec<Value>, finish: Option<u64>) -> Value {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let usage = match finish {
            Some(tokens) => {
                candidate["finishReason"] = json!("STOP");
                self.usage(tokens)
            }
            None => self.prompt_usage(),
        };
        self.response(candidate, usage)
    }

    /// Every frame of a streamed answer: one word of text per frame, the last one finished; or
    /// all the calls at once (Gemini does not stream arguments).
    fn frames(&self, answer: &Answer) -> Vec<Value> {
        let tokens = answer.tokens();
        let Answer::Text(text) = answer else {
            return vec![self.frame(answer.parts(), Some(tokens))];
        };
        let words = split_words(text);
        if words.is_empty() {
            return vec![self.frame(vec![json!({"text": ""})], Some(tokens))];
        }
        let last = words.len() - 1;
        words
            .into_iter()
            .enumerate()
            .map(|(i, word)| self.frame(vec![json!({"text": word})], (i == last).then_some(tokens)))
            .collect()
    }

    /// The first `count` word frames of `text`, none of them finished: a stream that dies early.
    fn first_frames(&self, text: &str, count: usize) -> Vec<Value> {
        split_words(text)
            .into_iter()
            .take(count)
            .map(|word| self.frame(vec![json!({"text": word})], None))
            .collect()
    }

    /// A refused prompt: HTTP 200, no `candidates`, `promptFeedback.blockReason`.
    fn blocked(&self) -> Value {
        json!({
            "promptFeedback": {
                "blockReason": "SAFETY",
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
                    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"},
                ],
            },
            "usageMetadata": self.prompt_usage(),
            "modelVersion": self.model,
            "responseId": self.id,
        })
    }
}

fn safety_ratings() -> Value {
    json!([
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"},
    ])
}

/// Looks like Google's base64-ish response ids, without a RNG.
fn response_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("mOcK{nanos:08x}{n:06x}")
}

/// The bytes of a streamed body in `mode`: SSE frames with CRLF separators (what Google sends),
/// or the pieces of one JSON array.
fn stream_text(mode: Mode, frames: &[Value]) -> String {
    match mode {
        Mode::Sse => frames
            .iter()
            .map(|frame| format!("data: {frame}\r\n\r\n"))
            .collect(),
        Mode::Whole | Mode::Array => frames
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(",\r\n"),
    }
}

/// A streamed response: `text/event-stream` for SSE, Google's JSON type for the array form.
fn stream_response(mode: Mode, steps: Vec<Step>) -> Response<Body> {
    let mut response = streamed(Flavor::Gemini, StatusCode::OK, steps);
    if mode != Mode::Sse {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    }
    response
}

/// A whole set of frames, in one write: a real server's writes coalesce the same way when the
/// model is fast, and the mock stays cheap behind a benchmark.
fn whole_stream(mode: Mode, frames: &[Value]) -> Response<Body> {
    stream_response(
        mode,
        vec![Step::Send(Bytes::from(whole_body(mode, frames)))],
    )
}

/// The bytes of a whole streamed body: the SSE frames, or the complete JSON array.
fn whole_body(mode: Mode, frames: &[Value]) -> String {
    match mode {
        Mode::Array => format!("[{}]", stream_text(mode, frames)),
        Mode::Whole | Mode::Sse => stream_text(mode, frames),
    }
}

/// A complete answer, in the form the client asked for.
fn answer(mode: Mode, reply: &Reply, answer: &Answer) -> Response<Body> {
    match mode {
        Mode::Whole => google_json(StatusCode::OK, &reply.full(answer)),
        Mode::Sse | Mode::Array => whole_stream(mode, &reply.frames(answer)),
    }
}

fn blocked(mode: Mode, reply: &Reply) -> Response<Body> {
    match mode {
        Mode::Whole => google_json(StatusCode::OK, &reply.blocked()),
        Mode::Sse | Mode::Array => whole_stream(mode, &[reply.blocked()]),
    }
}

/// One text frame, then an `{"error":…}` frame, then the end of the body.
fn stream_error(mode: Mode, reply: &Reply) -> Response<Body> {
    let mut frames = reply.first_frames("partial answer", 1);
    let error = json!({"error": {
        "code": 500,
        "message": Flavor::Gemini.server_error_message(),
        "status": "INTERNAL",
    }});
    let mut response = if mode == Mode::Sse {
        // The pause lets the partial answer reach the client before the error, as a failure
        // mid-generation would; one write would let the gateway see both at once.
        stream_response(
            mode,
            vec![
                Step::Send(Bytes::from(stream_text(mode, &frames))),
                Step::Pause(FAULT_PAUSE),
                Step::Send(Bytes::from(stream_text(mode, &[error]))),
            ],
        )
    } else {
        frames.push(error);
        whole_stream(mode, &frames)
    };
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// An answer that stops half-way: the connection stays silent for `hold` and is then cut
/// (`cut-stream`: just long enough for hyper to flush what was sent; `stall`: a hung server).
fn cut_short(
    mode: Mode,
    reply: &Reply,
    answer: &Answer,
    chunks: usize,
    hold: Duration,
) -> Response<Body> {
    if mode == Mode::Whole {
        let full = Bytes::from(reply.full(answer).to_string());
        let half = full.slice(..full.len() / 2);
        let mut response =
            stream_response(mode, vec![Step::Send(half), Step::Pause(hold), Step::Fail]);
        // The promised length makes the cut visible to the client as an incomplete body.
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
        return response;
    }
    let Answer::Text(text) = answer else {
        return stream_response(mode, vec![Step::Fail]);
    };
    let frames = reply.first_frames(text, chunks);
    let mut steps = Vec::new();
    if !frames.is_empty() {
        let mut body = stream_text(mode, &frames);
        if mode == Mode::Array {
            body.insert(0, '[');
        }
        steps.push(Step::Send(Bytes::from(body)));
    }
    steps.extend([Step::Pause(hold), Step::Fail]);
    stream_response(mode, steps)
}

/// An answer with one piece of broken JSON in it: `chunks` word frames, a frame whose JSON
/// stops half-way, then the rest of the frames as if nothing had happened. Not streamed: a 200
/// whose JSON body is cut in half (with a matching `content-length`).
fn malformed(mode: Mode, reply: &Reply, answer: &Answer, chunks: usize) -> Response<Body> {
    const TRUNCATED: &str = r#"{"candidates":[{"content":{"parts":[{"text":"#;
    if mode == Mode::Whole {
        let full = Bytes::from(reply.full(answer).to_string());
        let mut response =
            raw_json_response(Flavor::Gemini, StatusCode::OK, full.slice(..full.len() / 2));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
        return response;
    }
    let frames = reply.frames(answer);
    // The last frame carries `finishReason`: it always comes after the broken one.
    let (before, after) = frames.split_at(chunks.min(frames.len().saturating_sub(1)));
    let (head, broken, tail) = if mode == Mode::Sse {
        (
            stream_text(mode, before),
            format!("data: {TRUNCATED}\r\n\r\n"),
            stream_text(mode, after),
        )
    } else {
        // The array form: the broken element sits among the others.
        let mut head = format!("[{}", stream_text(mode, before));
        if !before.is_empty() {
            head.push_str(",\r\n");
        }
        let tail = format!("{}]", stream_text(mode, after));
        (head, format!("{TRUNCATED},\r\n"), tail)
    };
    let mut steps = Vec::new();
    if !head.is_empty() {
        steps.push(Step::Send(Bytes::from(head)));
    }
    steps.extend([
        Step::Pause(FAULT_PAUSE),
        Step::Send(Bytes::from(broken)),
        Step::Send(Bytes::from(tail)),
    ]);
    stream_response(mode, steps)
}

/// The 429 Google sends when a per-minute quota runs out. The wait is only in the body
/// (`RetryInfo.retryDelay` and the message's last sentence), never in headers.
fn rate_limited(model: &str, retry_after: bool) -> Response<Body> {
    let metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests";
    let delay = format!(
        "{}.{RETRY_FRACTION}s",
        RETRY_AFTER_SECONDS.saturating_sub(1)
    );
    let mut message = format!(
        "You exceeded your current quota, please check your plan and billing details. For more \
         information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. \
         To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n\
         * Quota exceeded for metric: {metric}, limit: 10, model: {model}"
    );
    let mut details = vec![
        json!({
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }],
        }),
        json!({
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{
                "quotaMetric": metric,
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": "10",
            }],
        }),
    ];
    if retry_after {
        message.push_str(&format!("\nPlease retry in {delay}."));
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": delay,
        }));
    }
    status_error(
        StatusCode::TOO_MANY_REQUESTS,
        "RESOURCE_EXHAUSTED",
        &message,
        Some(Value::Array(details)),
    )
}

fn server_error() -> Response<Body> {
    status_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
        Flavor::Gemini.server_error_message(),
        None,
    )
}

fn invalid_argument(message: &str) -> Response<Body> {
    status_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message, None)
}

/// The `google.rpc.Status` envelope: `{"error":{code,message,status,details?}}`.
fn status_error(
    code: StatusCode,
    status: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    let mut error = json!({"code": code.as_u16(), "message": message, "status": status});
    if let Some(details) = details {
        error["details"] = details;
    }
    google_json(code, &json!({ "error": error }))
}

fn google_json(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = json_response(Flavor::Gemini, status, body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    response
}

/// `GET /models`: [`MODELS`], `pageSize` at a time (all of them by default), continued with the
/// opaque `nextPageToken`.
fn list_models(query: &str) -> Response<Body> {
    let size = query_param(query, "pageSize")
        .and_then(|size| size.parse::<usize>().ok())
        .filter(|size| *size > 0)
        .unwrap_or(50);
    let start = match query_param(query, "pageToken").filter(|token| !token.is_empty()) {
        None => 0,
        Some(token) => match token
            .strip_prefix("mock-page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n < MODELS.len())
        {
            Some(start) => start,
            None => return invalid_argument("Invalid page token."),
        },
    };
    let end = start.saturating_add(size).min(MODELS.len());
    let models: Vec<Value> = MODELS[start..end].iter().map(model_info).collect();
    let mut body = json!({ "models": models });
    if end < MODELS.len() {
        body["nextPageToken"] = json!(format!("mock-page-{end}"));
    }
    google_json(StatusCode::OK, &body)
}

/// `GET /models/{model}` (the name may carry its `models/` prefix twice over, as some clients
/// build it from a listed name).
fn get_model(name: &str) -> Response<Body> {
    let name = name.strip_prefix("models/").unwrap_or(name);
    match MODELS.iter().find(|model| model.0 == name) {
        Some(model) => google_json(StatusCode::OK, &model_info(model)),
        None => status_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("models/{name} is not found for API version v1beta."),
            None,
        ),
    }
}

fn model_info(&(name, display, input, output, thinking): &(&str, &str, u64, u64, bool)) -> Value {
    let mut model = json!({
        "name": format!("models/{name}"),
        "version": "001",
        "displayName": display,
        "description": format!("{display} (mock upstream)"),
        "inputTokenLimit": input,
        "outputTokenLimit": output,
        "supportedGenerationMethods": [
            "generateContent", "countTokens", "createCachedContent", "batchGenerateContent",
        ],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
    });
    if thinking {
        model["thinking"] = json!(true);
    }
    model
}

/// A query parameter's raw value.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_rounds_up_to_the_retry_after_constant() {
        let delay: f64 = format!("{}.{RETRY_FRACTION}", RETRY_AFTER_SECONDS - 1)
            .parse()
            .unwrap_or(0.0);
        assert_eq!(delay.ceil() as u64, RETRY_AFTER_SECONDS);
    }

    #[test]
    fn upper_case_schema_types_get_typed_arguments() {
        let schema = json!({"type": "OBJECT", "properties": {
            "city": {"type": "STRING"}, "days": {"type": "INTEGER"},
        }});
        assert_eq!(
            arguments_for(Some(&lower_case_types(&schema)), "Paris"),
            json!({"city": "Paris", "days": 1})
        );
    }
}
