//! A scriptable fake LLM provider: a real HTTP server on an ephemeral port that speaks one
//! provider's wire format faithfully ([`Flavor`]: Groq, OpenAI, Cerebras, OpenRouter, Novita,
//! Hugging Face, Gemini, Replicate), where **the requested model name picks the behaviour**.
//!
//! | model | non-stream | stream |
//! |---|---|---|
//! | `ok` (and any name not listed) | `"mock reply to: <last user message>"` | the same text, one word per chunk, finish chunk, `[DONE]` |
//! | `tool-call` | a call to the first tool in `tools`, `finish_reason: "tool_calls"` | tool-call deltas, arguments in 3 fragments |
//! | `tool-call-parallel` | two calls (index 0 and 1) | the same, as deltas |
//! | `tool-call-loop` | as `tool-call`, but calls again after tool results, every time, until the request says `tool_choice: "none"`: then `"answered with tool_choice none after <n> tool results"` (n: every `tool` message) | the same |
//! | `tool-call-then-503` | as `tool-call` until the conversation ends with tool results: then 503 as `unavailable-503` | the same |
//! | `tool-call-slow-<ms>` | as `tool-call-loop`, each answer after `<ms>` | the same |
//! | `tool-call-then-cut` | as `tool-call` until the conversation ends with tool results: then the `tool said: …` answer cut as `cut-stream` | the same |
//! | `slow-<ms>` | waits `<ms>` before the headers, then as `ok` | the same |
//! | `rate-limit` | 429, the provider's real body, `retry-after: 7`, `x-ratelimit-*` | the same |
//! | `rate-limit-no-header` | 429 as above without `retry-after` | the same |
//! | `error-500` | 500 `server_error` | the same |
//! | `unavailable-503` | 503 "engine is currently overloaded" | the same |
//! | `capacity-498` | 498 `capacity_exceeded` (Groq's flex tier) | the same |
//! | `context-length` | 400 `context_length_exceeded`, `param: "messages"` | the same |
//! | `bad-request` | 400 `invalid_request_error`, message [`BAD_REQUEST_MESSAGE`] | the same |
//! | `echo-error` | 500 `server_error` whose message quotes the last user message (as providers' validation errors quote input); Gemini and Replicate: as `error-500` | the same |
//! | `reset` | the connection closes, no response | the same |
//! | `cut-stream` (= `cut-stream-2`) | 200 whose body stops half-way | 200, role chunk + 2 content chunks, then the connection closes (no finish chunk, no `[DONE]`) |
//! | `cut-stream-<n>` | as `cut-stream` | as `cut-stream` with `n` content chunks; `cut-stream-0` closes right after the headers |
//! | `stream-error` | 500 `server_error` | one chunk, then a `{"error":{…}}` frame, then the end |
//! | `no-done` | as `ok` | as `ok` without `[DONE]` |
//! | `no-credit` | the provider's no-credit answer: 402 (OpenRouter, Cerebras, HF, Gemini, Replicate), OpenAI's 429 `insufficient_quota`, Novita's 403 `NOT_ENOUGH_BALANCE`, Groq's 403 restricted organisation | the same |
//! | `forbidden` | 403: a valid key without access to the model or region | the same |
//! | `content-filter` | [`FILTERED_TEXT`] with `finish_reason: "content_filter"`; a refusal where the provider refuses instead ([`Flavor::content_filter_refuses`]: OpenRouter's moderation 403, Gemini's blocked prompt, Replicate's E005 failed prediction) | the same, streamed |
//! | `processing-<n>` | Replicate: the prediction is still running after the sync wait and succeeds on the n-th poll; other flavors: as `ok` | the same |
//! | `runs-<ms>` | Replicate: the prediction succeeds `<ms>` after its creation on the wall clock (sync mode gives up after 1 s), its stream URL pacing the words over the run; other flavors: as `ok` | the same |
//! | `flaky-<status>-<n>` | the first `n` chat requests for this exact model name (counted per mock) answer as the error model of `<status>`: 500 → `error-500`, 503 → `unavailable-503`, 429 → `rate-limit` (with the flavor's wait), any other → `error-500`; every later one as `ok` | the same |
//! | `slow-first-<ms>` | as `slow-<ms>` | the headers at once, then nothing for `<ms>`, then the `ok` stream |
//! | `paced-<ms>` | as `slow-<ms>` | the `ok` stream with every frame (role, each word, finish, `[DONE]`) sent `<ms>` after the one before: a long generation in flight (Gemini, Replicate: as `slow-<ms>`) |
//! | `stall-<n>` | the headers and half the body, then silence (the connection held open for up to 60 s, then cut) | role chunk + `n` content chunks, then silence: no finish chunk, the connection held open for up to 60 s, then cut |
//! | `malformed-<n>` | 200 `application/json` whose body is a truncated completion (not JSON; `content-length` matches what is sent) | role chunk + `n` content chunks, one frame of truncated JSON, then the remaining chunks, the finish chunk and `[DONE]` as usual |
//! | `error-200` | 200 whose body is the flavor's `error-500` error object (some providers answer an error with a 200) | 200 whose first frame is that error object, then the end |
//! | `restarts` | as `ok`; a continuation ignores the partial answer and answers from the first word | the same |
//! | `repeats-sentence` | as `ok`; a continuation repeats the partial answer's last sentence, then goes on | the same |
//! | `diverges` | as `ok`; a continuation reproduces the first half of the partial answer's words, then says something else ([`DIVERGED_TEXT`]) | the same |
//! | `echo-messages` | as `ok`, answering with [`digest`] of the messages it received (what reached the upstream, for the tests of what the gateway adds) | the same |
//!
//! When the last message has role `tool`, the `tool-call` models answer `"tool said: <content>"`
//! (one line per trailing tool message) instead of calling again; a continuation after tool
//! results (a partial `tool said: …` answer) gets the rest of that answer. With
//! `tool_choice: "none"` every `tool-call` model answers without calling (see `tool-call-loop`).
//!
//! **Continuations.** A gateway that loses a stream half-way can continue it on another target
//! by sending the same conversation plus the partial answer, either as a *prefill* (a final
//! `assistant` message holding the text so far) or with a *continuation prompt* (that
//! `assistant` message followed by a `user` message starting with `"Continue"`); see
//! [`is_continuation`]. The mock answers such a request from the last `user` message *before*
//! the partial answer, and when its full reply starts with the partial text it sends only the
//! remainder (partial `"mock reply"` → `" to: hello there"`, streamed word by word after the
//! role chunk as usual), so a test can check that the pieces a client receives join into one
//! answer. A partial that is not a prefix of the reply gets the full reply. `completion_tokens`
//! counts the words actually sent. Gemini reads the same from a trailing `model` turn (or a
//! `model` turn followed by a `user` turn starting with `"Continue"`). The `restarts`,
//! `repeats-sentence` and `diverges` models (OpenAI dialects) continue the way fallback models
//! that ignore the instruction do (`continued_by`).
//!
//! Usage is deterministic: `completion_tokens` is the number of whitespace-separated words of the
//! answer's text, `prompt_tokens` is `8 + (characters of all message contents) / 4`.
//! Groq streams carry usage in `x_groq.usage` on the finish chunk; with
//! `stream_options.include_usage` every OpenAI-dialect flavor but Cerebras adds OpenAI's
//! `choices: []` usage chunk (for Groq `docs/wire-formats.md` marks that as unverified; the mock
//! sends it so adapters must cope with both). Cerebras puts the usage on the finish chunk instead
//! (`mock/dialects.rs`); Gemini and Replicate report it their own way (`mock/gemini.rs`,
//! `mock/replicate.rs`).
//!
//! Routes: `POST <base>/chat/completions`, `GET <base>/models`, where `<base>` is
//! [`Flavor::base_path`]: `/openai/v1` for Groq, `/v1` for OpenAI, Cerebras and Hugging Face,
//! `/api/v1` for OpenRouter, `/openai/v1` for Novita (whose configured base URL is `/openai`, see
//! [`Flavor::base_url_path`]). Anything else is the provider's 404. The per-flavor wire pieces
//! of Cerebras, OpenRouter, Novita and Hugging Face (error envelopes, 429 wait forms, usage
//! placement, stream comments) are in `mock/dialects.rs`.
//!
//! Gemini and Replicate are not OpenAI-shaped: `mock/gemini.rs` and `mock/replicate.rs` read
//! their native requests and write their native answers for the same behaviours (model from the
//! path for Gemini; `owner/<behaviour>` models for Replicate). A wrong key gets each flavor's
//! real answer (401; Gemini's 400 `API_KEY_INVALID`); a missing one too (Cerebras' 403
//! `Not authenticated`, Gemini's 403 `PERMISSION_DENIED`).
//!
//! The tool APIs' mocks (Open-Meteo, Finnhub, Alpha Vantage, NewsAPI, GNews, SearXNG, Brave,
//! Tavily) are in [`tools`]: there the arguments and the key pick the behaviour.
//!
//! The mock is cheap enough to sit behind a benchmark: no logging, `ok` answers with no think
//! time, and recording can be switched off ([`MockUpstream::start_unrecorded`]).

mod dialects;
mod gemini;
mod replicate;
pub mod scripted;
pub mod tools;
mod wire;

pub use dialects::{CEREBRAS_RESET_TOKENS_MINUTE, OPENROUTER_CONTEXT_LENGTH_MESSAGE};
pub use replicate::SYNC_WINDOW as REPLICATE_SYNC_WINDOW;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use wire::{Answer, Completion, ToolCall};

/// Which provider's dialect the mock speaks: base path, error bodies, usage placement, headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Groq: base `/openai/v1`, `x_groq` on responses and chunks, usage timings, no `param` on errors.
    Groq,
    /// OpenAI (and any OpenAI-compatible server): base `/v1`.
    OpenAi,
    /// Cerebras (`docs/wire-formats.md`, Cerebras): base `/v1`, flat error bodies, `time_info`,
    /// float-second `x-ratelimit-reset-*` headers.
    Cerebras,
    /// OpenRouter (`docs/wire-formats.md`, OpenRouter): base `/api/v1`, numeric `error.code`,
    /// `: OPENROUTER PROCESSING` stream comments, `X-RateLimit-Reset` in epoch milliseconds.
    OpenRouter,
    /// Novita (`docs/wire-formats.md`, Novita): base URL `/openai`, routes under `/openai/v1`,
    /// `{code,reason,message}` errors.
    Novita,
    /// The Hugging Face router (`docs/wire-formats.md`, Hugging Face router): base `/v1`,
    /// `{"error":"text"}` bodies on 429 and 5xx.
    HuggingFace,
    /// Google Gemini's native API (`docs/wire-formats.md`, Gemini native): base `/v1beta`,
    /// `POST /models/{model}:generateContent` and `:streamGenerateContent?alt=sse`,
    /// `x-goog-api-key`, `google.rpc.Status` errors, streams without `[DONE]` (see
    /// `mock/gemini.rs`).
    Gemini,
    /// Replicate's Predictions API (`docs/wire-formats.md`, Replicate): base `/v1`,
    /// `POST /models/{owner}/{name}/predictions` with `Prefer: wait`, prediction jobs polled at
    /// `GET /predictions/{id}`, problem-details errors (see `mock/replicate.rs`).
    Replicate,
}

impl Flavor {
    /// The path prefix the provider serves its API under.
    pub fn base_path(self) -> &'static str {
        match self {
            Flavor::Groq => "/openai/v1",
            Flavor::OpenAi | Flavor::Cerebras | Flavor::HuggingFace | Flavor::Replicate => "/v1",
            Flavor::OpenRouter => "/api/v1",
            Flavor::Novita => "/openai/v1",
            Flavor::Gemini => "/v1beta",
        }
    }

    /// The path a chat request for `model` goes to in this flavor (without the query string).
    pub fn chat_path(self, model: &str, stream: bool) -> String {
        let base = self.base_path();
        match self {
            Flavor::Gemini if stream => format!("{base}/models/{model}:streamGenerateContent"),
            Flavor::Gemini => format!("{base}/models/{model}:generateContent"),
            Flavor::Replicate => format!("{base}/models/{model}/predictions"),
            _ => format!("{base}/chat/completions"),
        }
    }

    /// The message of the `error-500` model's answer in this flavor.
    pub fn server_error_message(self) -> &'static str {
        match self {
            Flavor::Gemini => GEMINI_INTERNAL_MESSAGE,
            _ => SERVER_ERROR_MESSAGE,
        }
    }

    /// The message of the `unavailable-503` model's answer in this flavor.
    pub fn overloaded_message(self) -> &'static str {
        match self {
            Flavor::Gemini => GEMINI_OVERLOADED_MESSAGE,
            _ => OVERLOADED_MESSAGE,
        }
    }

    /// Whether the flavor's content filter refuses a request with an error (OpenRouter's 403
    /// moderation, Gemini's blocked prompt, Replicate's failed prediction E005) rather than ending the answer with
    /// `finish_reason: "content_filter"` (the other OpenAI dialects).
    pub fn content_filter_refuses(self) -> bool {
        matches!(
            self,
            Flavor::OpenRouter | Flavor::Gemini | Flavor::Replicate
        )
    }

    /// Whether a `POST` to `path` is a chat request (what [`MockUpstream::chat_requests`] keeps).
    pub fn is_chat_path(self, path: &str) -> bool {
        match self {
            Flavor::Gemini => {
                path.ends_with(":generateContent") || path.ends_with(":streamGenerateContent")
            }
            Flavor::Replicate => path.ends_with("/predictions"),
            _ => path.ends_with("/chat/completions"),
        }
    }

    /// The path of the base URL a provider is configured with; the plugin adds the rest. The
    /// same as [`Flavor::base_path`] except for Novita, whose plugin appends `/v1` itself.
    pub fn base_url_path(self) -> &'static str {
        match self {
            Flavor::Novita => "/openai",
            flavor => flavor.base_path(),
        }
    }
}

/// The message of the `bad-request` model's 400, so tests can check it reaches the client.
pub const BAD_REQUEST_MESSAGE: &str =
    "Invalid value for 'temperature': 7 is greater than the maximum of 2 (mock bad-request)";

/// The message of the `context-length` model's 400.
pub const CONTEXT_LENGTH_MESSAGE: &str = "This model's maximum context length is 8192 tokens. \
     However, you requested 9000 tokens (8744 in the messages, 256 in the completion). \
     Please reduce the length of the messages or completion.";

/// The message of the `error-500` model (and of `stream-error`'s error frame).
pub const SERVER_ERROR_MESSAGE: &str =
    "The server had an error while processing your request. Sorry about that!";

/// Gemini's 500 `INTERNAL` message.
pub const GEMINI_INTERNAL_MESSAGE: &str = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting";

/// Gemini's 503 `UNAVAILABLE` message.
pub const GEMINI_OVERLOADED_MESSAGE: &str = "The model is overloaded. Please try again later.";

/// The message of the `unavailable-503` model.
pub const OVERLOADED_MESSAGE: &str = "The engine is currently overloaded, please try again later";

/// The message of the `capacity-498` model.
pub const CAPACITY_MESSAGE: &str =
    "The flex tier is currently at capacity for this model. Please try again later.";

/// What the `content-filter` model writes before the filter stops it, in flavors whose filter
/// ends the answer with `finish_reason: "content_filter"` rather than refusing the request.
pub const FILTERED_TEXT: &str = "I can tell you";

/// What the `diverges` model says after reproducing half of the partial answer.
pub const DIVERGED_TEXT: &str = " — or rather, something else entirely.";

/// The `retry-after` header the `rate-limit` model sends, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 7;

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// Header names are lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Value::Null` when it is empty or not JSON (see `raw_body`).
    pub body: Value,
    pub raw_body: Bytes,
    /// When the request's head arrived.
    pub at: Instant,
}

impl RecordedRequest {
    /// The first value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `model` the request asked for, if it is a chat request: the body's `model`, or the
    /// model named in the path (`…/models/{model}:generateContent` for Gemini,
    /// `…/models/{owner}/{name}/predictions` for Replicate).
    pub fn model(&self) -> Option<&str> {
        if let Some(model) = self.body.get("model").and_then(Value::as_str) {
            return Some(model);
        }
        let (_, rest) = self.path.split_once("/models/")?;
        match rest.split_once(':') {
            Some((model, _)) => Some(model),
            None => rest.strip_suffix("/predictions"),
        }
    }
}

struct State {
    flavor: Flavor,
    recording: AtomicBool,
    requests: Mutex<Vec<RecordedRequest>>,
    api_key: RwLock<Option<String>>,
    /// Replicate's prediction jobs, by id (unused by the other flavors).
    predictions: replicate::Predictions,
    /// How many chat requests each `flaky-*` model name has had, so it fails only the first
    /// ones. Per mock, so tests running side by side each get their own failures.
    flaky: Mutex<HashMap<String, usize>>,
    /// Connections open right now, and a signal on every change: how a test sees the gateway
    /// drop an upstream connection (a cancelled stream) without sleeping.
    connections: AtomicUsize,
    connections_changed: Notify,
}

impl State {
    /// The behaviour of a chat request for `model`: [`Behaviour::of`], with a `flaky-*` model
    /// resolved (and its count advanced) into the error it answers with this time, or `Ok`.
    fn behaviour(&self, model: &str) -> Behaviour {
        self.behaviour_counted_as(model, model)
    }

    /// As [`State::behaviour`], for flavors where the behaviour is read from a part (`name`) of
    /// the name the requests are counted under (`model`; Replicate's `owner/name`).
    fn behaviour_counted_as(&self, model: &str, name: &str) -> Behaviour {
        let behaviour = Behaviour::of(name);
        let Behaviour::Flaky { status, failures } = behaviour else {
            return behaviour;
        };
        let mut counts = match self.flaky.lock() {
            Ok(counts) => counts,
            // A count is a single integer update: still consistent after a panic elsewhere.
            Err(poisoned) => poisoned.into_inner(),
        };
        let seen = counts.entry(model.to_owned()).or_insert(0);
        *seen = seen.saturating_add(1);
        if *seen <= failures {
            Behaviour::failure(status)
        } else {
            Behaviour::Ok
        }
    }
}

/// A running mock provider. The server stops (and drops its connections) when this is dropped.
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl MockUpstream {
    /// Starts a recording mock on `127.0.0.1:0` on the current tokio runtime.
    ///
    /// # Panics
    /// When no local port can be bound — a test cannot go on without its upstream.
    pub async fn start(flavor: Flavor) -> MockUpstream {
        match Self::bind("127.0.0.1:0", flavor, true).await {
            Ok(mock) => mock,
            Err(e) => panic!("mock upstream: cannot listen on 127.0.0.1:0: {e}"),
        }
    }

    /// Like [`MockUpstream::start`], but keeps no record of requests (for benchmarks).
    pub async fn start_unrecorded(flavor: Flavor) -> MockUpstream {
        match Self::bind("127.0.0.1:0", flavor, false).await {
            Ok(mock) => mock,
            Err(e) => panic!("mock upstream: cannot listen on 127.0.0.1:0: {e}"),
        }
    }

    /// Starts a mock on `listen` (e.g. `127.0.0.1:0`), recording requests when `record` is set.
    pub async fn bind(listen: &str, flavor: Flavor, record: bool) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            flavor,
            recording: AtomicBool::new(record),
            requests: Mutex::new(Vec::new()),
            api_key: RwLock::new(None),
            predictions: replicate::Predictions::default(),
            flaky: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            connections_changed: Notify::new(),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        Ok(MockUpstream {
            addr,
            state,
            server,
        })
    }

    /// Requires `authorization: Bearer <key>` on every request from now on; others get the
    /// flavor's real 401 body.
    pub fn with_api_key(self, key: &str) -> Self {
        if let Ok(mut slot) = self.state.api_key.write() {
            *slot = Some(key.to_owned());
        }
        self
    }

    /// Turns recording on or off.
    pub fn set_recording(&self, on: bool) {
        self.state.recording.store(on, Ordering::Relaxed);
    }

    pub fn flavor(&self) -> Flavor {
        self.state.flavor
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/openai/v1` (Groq), `http://127.0.0.1:PORT/v1` (OpenAI), … : what a
    /// provider of this flavor is configured with ([`Flavor::base_url_path`]).
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.state.flavor.base_url_path())
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        match self.state.requests.lock() {
            Ok(requests) => requests.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Connections open to the mock right now.
    pub fn open_connections(&self) -> usize {
        self.state.connections.load(Ordering::Acquire)
    }

    /// Waits until the number of open connections satisfies `done` (e.g. drops to 0 when the
    /// gateway cancels a stream); returns the count.
    pub async fn connections_until(&self, done: impl Fn(usize) -> bool) -> usize {
        loop {
            let changed = self.state.connections_changed.notified();
            let open = self.open_connections();
            if done(open) {
                return open;
            }
            changed.await;
        }
    }

    /// The `POST …/chat/completions` requests seen so far, in arrival order.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        let flavor = self.state.flavor;
        let mut requests = self.requests();
        requests.retain(|r| r.method == "POST" && flavor.is_chat_path(&r.path));
        requests
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        // The accept loop owns every connection task; aborting it drops them all.
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set stays as large as the live ones.
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Small writes (SSE frames) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let open = OpenConnection::new(Arc::clone(&state));
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { handle(state, request).await }
            });
            // Errors here are a client going away or a scripted `reset`; neither is news.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(open);
        });
    }
}

/// Counts one open connection for as long as it lives (its task aborted included).
struct OpenConnection(Arc<State>);

impl OpenConnection {
    fn new(state: Arc<State>) -> OpenConnection {
        state.connections.fetch_add(1, Ordering::AcqRel);
        state.connections_changed.notify_waiters();
        OpenConnection(state)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.connections_changed.notify_waiters();
    }
}

type Body = UnsyncBoxBody<Bytes, BoxError>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A scripted `reset`: returned from the service, it makes hyper drop the connection unanswered.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mock upstream: scripted connection reset")
    }
}

impl std::error::Error for Reset {}

/// What a `tool-call` model does once the conversation ends with tool results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Answers `"tool said: <content>"`.
    Answer,
    /// Calls again, every time, until the request says `tool_choice: "none"`.
    CallAgain,
    /// Answers 503, as `unavailable-503`.
    Unavailable,
    /// Streams the answer as `cut-stream` does (two content chunks, then the connection closes).
    Cut,
    /// Waits this long before every answer, and calls again as [`Then::CallAgain`].
    SlowAgain(Duration),
}

/// What the model name asks the mock to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Ok,
    ToolCall {
        parallel: bool,
        /// What it does once the conversation ends with tool results.
        then: Then,
    },
    Slow(Duration),
    RateLimit {
        retry_after: bool,
    },
    ServerError,
    Unavailable,
    Capacity,
    ContextLength,
    BadRequest,
    EchoError,
    Reset,
    CutStream {
        chunks: usize,
    },
    StreamError,
    NoDone,
    /// The account has no credit left (402, or the provider's own status for it).
    NoCredit,
    /// The key is valid but not allowed this model or region (403).
    Forbidden,
    /// The provider's content filter stops the answer.
    ContentFilter,
    /// Replicate: the prediction is still running when sync mode gives up, and needs this many
    /// polls before it succeeds. Other flavors answer as `Ok`.
    Processing {
        polls: usize,
    },
    /// The first `failures` requests answer as the error model of `status`, the rest as `Ok`.
    /// Only [`Behaviour::of`] returns it: [`State::behaviour`] resolves it per request, so the
    /// flavors never dispatch on it (they answer it as `Ok` should one slip through).
    Flaky {
        status: u16,
        failures: usize,
    },
    /// Stream: the headers at once, the first chunk after this long. Non-stream: as `Slow`.
    SlowFirst(Duration),
    /// Stream: every frame this long after the one before. Non-stream: as `Slow`.
    Paced(Duration),
    /// The answer stops after `chunks` content chunks and the connection goes silent.
    Stall {
        chunks: usize,
    },
    /// A frame of truncated JSON after `chunks` content chunks; the stream then goes on.
    Malformed {
        chunks: usize,
    },
    /// A 200 whose body (or first stream frame) is an error object.
    ErrorIn200,
}

/// How long `stall-<n>` keeps its connection open and silent before giving up on it: longer
/// than any timeout a test would wait for, short enough that a forgotten one does not hold the
/// mock (and a gateway's connection pool) forever.
const STALL_HOLD: Duration = Duration::from_secs(60);

/// The pause before a scripted fault (a cut, an error frame, a malformed frame): it lets the
/// chunks before it reach the client in an earlier read than the fault, as they would when
/// a real server fails mid-generation.
const FAULT_PAUSE: Duration = Duration::from_millis(50);

impl Behaviour {
    /// The error model a `flaky-<status>-<n>` failure answers as.
    fn failure(status: u16) -> Behaviour {
        match status {
            429 => Behaviour::RateLimit { retry_after: true },
            503 => Behaviour::Unavailable,
            // 500, and any status the mock has no model for: a plain server error.
            _ => Behaviour::ServerError,
        }
    }

    fn of(model: &str) -> Behaviour {
        match model {
            "tool-call" => Behaviour::ToolCall {
                parallel: false,
                then: Then::Answer,
            },
            "tool-call-parallel" => Behaviour::ToolCall {
                parallel: true,
                then: Then::Answer,
            },
            "tool-call-loop" => Behaviour::ToolCall {
                parallel: false,
                then: Then::CallAgain,
            },
            "tool-call-then-503" => Behaviour::ToolCall {
                parallel: false,
                then: Then::Unavailable,
            },
            "tool-call-then-cut" => Behaviour::ToolCall {
                parallel: false,
                then: Then::Cut,
            },
            "rate-limit" => Behaviour::RateLimit { retry_after: true },
            "rate-limit-no-header" => Behaviour::RateLimit { retry_after: false },
            "error-500" => Behaviour::ServerError,
            "unavailable-503" => Behaviour::Unavailable,
            "capacity-498" => Behaviour::Capacity,
            "context-length" => Behaviour::ContextLength,
            "bad-request" => Behaviour::BadRequest,
            "echo-error" => Behaviour::EchoError,
            "reset" => Behaviour::Reset,
            "cut-stream" => Behaviour::CutStream { chunks: 2 },
            "stream-error" => Behaviour::StreamError,
            "no-done" => Behaviour::NoDone,
            "no-credit" => Behaviour::NoCredit,
            "forbidden" => Behaviour::Forbidden,
            "content-filter" => Behaviour::ContentFilter,
            "error-200" => Behaviour::ErrorIn200,
            _ => {
                let number = |prefix: &str| -> Option<u64> {
                    model.strip_prefix(prefix).and_then(|n| n.parse().ok())
                };
                let count = |prefix: &str| -> Option<usize> {
                    model.strip_prefix(prefix).and_then(|n| n.parse().ok())
                };
                if let Some((status, failures)) = model
                    .strip_prefix("flaky-")
                    .and_then(|rest| rest.split_once('-'))
                    .and_then(|(status, n)| Some((status.parse().ok()?, n.parse().ok()?)))
                {
                    Behaviour::Flaky { status, failures }
                } else if let Some(ms) = number("paced-") {
                    Behaviour::Paced(Duration::from_millis(ms))
                } else if let Some(ms) = number("slow-first-") {
                    Behaviour::SlowFirst(Duration::from_millis(ms))
                } else if let Some(n) = count("stall-") {
                    Behaviour::Stall { chunks: n }
                } else if let Some(n) = count("malformed-") {
                    Behaviour::Malformed { chunks: n }
                } else if let Some(ms) = number("slow-") {
                    Behaviour::Slow(Duration::from_millis(ms))
                } else if let Some(n) = count("cut-stream-") {
                    Behaviour::CutStream { chunks: n }
                } else if let Some(ms) = number("tool-call-slow-") {
                    Behaviour::ToolCall {
                        parallel: false,
                        then: Then::SlowAgain(Duration::from_millis(ms)),
                    }
                } else if let Some(n) = count("processing-") {
                    Behaviour::Processing { polls: n }
                } else {
                    Behaviour::Ok
                }
            }
        }
    }
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Body>, Reset> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    // A client that stops sending half-way gets the connection closed, like a real server would.
    let raw_body = body.collect().await.map_err(|_| Reset)?.to_bytes();
    let json: Option<Value> = serde_json::from_slice(&raw_body).ok();
    let flavor = state.flavor;

    if state.recording.load(Ordering::Relaxed) {
        let recorded = RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: json.clone().unwrap_or(Value::Null),
            raw_body: raw_body.clone(),
            at,
        };
        match state.requests.lock() {
            Ok(mut requests) => requests.push(recorded),
            Err(poisoned) => poisoned.into_inner().push(recorded),
        }
    }

    let expected_key = state.api_key.read().ok().and_then(|key| key.clone());
    if let Some(key) = expected_key {
        match presented_key(flavor, &parts) {
            Some(presented) if presented == key => {}
            presented => return Ok(unauthorized(flavor, presented.as_deref())),
        }
    }

    match flavor {
        Flavor::Gemini => return gemini::handle(&state, &parts, json).await,
        Flavor::Replicate => return replicate::handle(&state, &parts, json).await,
        _ => {}
    }

    let base = flavor.base_path();
    let route = parts.uri.path().strip_prefix(base).unwrap_or("");
    match (&parts.method, route) {
        (&Method::POST, "/chat/completions") => chat(&state, json).await,
        (&Method::GET, "/models") => {
            let models = match flavor {
                Flavor::Groq | Flavor::OpenAi => wire::models(flavor),
                _ => dialects::models(flavor),
            };
            Ok(json_response(flavor, StatusCode::OK, &models))
        }
        _ => Ok(error(
            flavor,
            StatusCode::NOT_FOUND,
            &format!(
                "Unknown request URL: {} {}. Please check the URL for typos, or see the docs at \
                 https://platform.openai.com/docs/api-reference/.",
                parts.method,
                parts.uri.path()
            ),
            "invalid_request_error",
            None,
            Some("unknown_url"),
        )),
    }
}

/// The credential a request presents, where the flavor expects it: `x-goog-api-key` (or the
/// `key` query parameter) for Gemini, `authorization: Bearer …` for the others.
fn presented_key(flavor: Flavor, parts: &http::request::Parts) -> Option<String> {
    if flavor == Flavor::Gemini {
        if let Some(key) = parts.headers.get("x-goog-api-key") {
            return key.to_str().ok().map(str::to_owned);
        }
        return parts.uri.query().and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("key="))
                .map(str::to_owned)
        });
    }
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
}

/// The flavor's answer to a wrong key (`presented`), or to no key at all. OpenAI's echoes the key
/// it was sent — the real one masks its middle; the mock sends it whole, the worst case a
/// gateway must keep from its clients and logs.
fn unauthorized(flavor: Flavor, presented: Option<&str>) -> Response<Body> {
    let missing = presented.is_none();
    match flavor {
        Flavor::Gemini => gemini::unauthorized(missing),
        Flavor::Replicate => replicate::unauthorized(missing),
        // Cerebras answers a request without the header 403 with FastAPI's body
        // (`docs/wire-formats.md`, Cerebras).
        Flavor::Cerebras if missing => json_response(
            flavor,
            StatusCode::FORBIDDEN,
            &json!({"detail": "Not authenticated"}),
        ),
        Flavor::OpenAi => error(
            flavor,
            StatusCode::UNAUTHORIZED,
            &format!(
                "Incorrect API key provided: {}. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                presented.unwrap_or("")
            ),
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ),
        _ => error(
            flavor,
            StatusCode::UNAUTHORIZED,
            dialects::unauthorized_message(flavor),
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ),
    }
}

/// The parts of a chat request the mock's script reads.
struct Chat<'a> {
    model: &'a str,
    stream: bool,
    include_usage: bool,
    messages: &'a [Value],
    tools: &'a [Value],
    /// `tool_choice: "none"`: the model must answer without calling.
    no_tools: bool,
}

impl<'a> Chat<'a> {
    fn parse(body: &'a Value) -> Result<Chat<'a>, &'static str> {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .ok_or("you must provide a model parameter")?;
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .ok_or("Missing required parameter: 'messages'.")?;
        Ok(Chat {
            model,
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            messages,
            tools: body
                .get("tools")
                .and_then(Value::as_array)
                .map_or(&[], Vec::as_slice),
            no_tools: body.get("tool_choice").and_then(Value::as_str) == Some("none"),
        })
    }

    fn prompt_tokens(&self) -> u64 {
        let chars: usize = self
            .messages
            .iter()
            .map(|m| text_of(m).chars().count())
            .sum();
        8 + chars as u64 / 4
    }

    /// The text the `ok` family of models answers: `"mock reply to: <question>"`, where the
    /// question is the last `user` message (before the partial answer of a continuation), or
    /// only what is left of that reply after the partial answer (see [`is_continuation`]).
    fn reply_text(&self) -> String {
        if self.model == ECHO_MODEL {
            return digest(self.messages);
        }
        let (asked, partial) = match partial_answer_at(self.messages) {
            Some(at) => (&self.messages[..at], Some(text_of(&self.messages[at]))),
            None => (self.messages, None),
        };
        let question = asked
            .iter()
            .rev()
            .find(|m| role_of(m) == Some("user"))
            .map(text_of)
            .unwrap_or_default();
        continued_by(
            self.model,
            format!("mock reply to: {question}"),
            partial.as_deref(),
        )
    }

    /// What a `tool-call` model answers once the conversation ends with tool results
    /// (before the partial answer of a continuation): `"tool said: <content>"`, one line per
    /// trailing result, or what is left of it after the partial answer. `None` without results.
    fn tool_reply(&self) -> Option<String> {
        let (asked, partial) = match partial_answer_at(self.messages) {
            Some(at) => (&self.messages[..at], Some(text_of(&self.messages[at]))),
            None => (self.messages, None),
        };
        let results = trailing_tool_results(asked);
        if results.is_empty() {
            return None;
        }
        let full = results
            .iter()
            .map(|r| format!("tool said: {r}"))
            .collect::<Vec<_>>()
            .join("\n");
        Some(continued_by(self.model, full, partial.as_deref()))
    }

    /// How many tool results the conversation holds in all.
    fn tool_results(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| role_of(m) == Some("tool"))
            .count()
    }
}

/// The contents of the tool results that end `messages`, if they end with any.
fn trailing_tool_results(messages: &[Value]) -> Vec<String> {
    let mut results: Vec<String> = messages
        .iter()
        .rev()
        .take_while(|m| role_of(m) == Some("tool"))
        .map(text_of)
        .collect();
    results.reverse();
    results
}

/// The model that answers with the [`digest`] of its messages.
const ECHO_MODEL: &str = "echo-messages";

/// A compact account of chat messages, what the `echo-messages` model answers: a JSON array of
/// one string per message, `"<role>: <text>"`; an assistant's tool calls as
/// `"assistant: <text> calls <name>(<arguments>), …"`, a tool result as
/// `"tool <tool_call_id>: <text>"`.
pub fn digest(messages: &[Value]) -> String {
    let lines: Vec<String> = messages
        .iter()
        .map(|m| {
            let role = role_of(m).unwrap_or("?");
            let text = text_of(m);
            if role == "tool" {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                return format!("tool {id}: {text}");
            }
            let calls: Vec<String> = m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    let field = |p: &str| c.pointer(p).and_then(Value::as_str).unwrap_or("");
                    format!(
                        "{}({})",
                        field("/function/name"),
                        field("/function/arguments")
                    )
                })
                .collect();
            if calls.is_empty() {
                format!("{role}: {text}")
            } else {
                format!("{role}: {text} calls {}", calls.join(", "))
            }
        })
        .collect();
    Value::from(lines).to_string()
}

/// Whether a chat request continues a broken answer: its messages end with the partial answer
/// so far, as a *prefill* (a final `assistant` message with text and no `tool_calls`) or with a
/// *continuation prompt* (that `assistant` message followed by a final `user` message whose text
/// starts with `"Continue"`). The mock answers such a request with the rest of its reply; see
/// the module docs.
///
/// A conversation whose user really says "Continue …" after an ordinary answer reads as a
/// continuation too: the mock cannot tell them apart, and neither can a real model.
pub fn is_continuation(messages: &[Value]) -> bool {
    partial_answer_at(messages).is_some()
}

/// The index of the message holding a continuation's partial answer ([`is_continuation`]).
fn partial_answer_at(messages: &[Value]) -> Option<usize> {
    let is_partial = |m: &Value| {
        let calls = m
            .get("tool_calls")
            .and_then(Value::as_array)
            .is_some_and(|calls| !calls.is_empty());
        role_of(m) == Some("assistant") && !calls && !text_of(m).is_empty()
    };
    let is_prompt = |m: &Value| role_of(m) == Some("user") && is_continue_prompt(&text_of(m));
    partial_turn_at(messages, is_partial, is_prompt)
}

/// Where the partial answer of a continuation is, given how the dialect spells a partial answer
/// (`is_partial`) and a continuation prompt (`is_prompt`): the last turn, or the one before a
/// final continuation prompt.
fn partial_turn_at<T>(
    turns: &[T],
    is_partial: impl Fn(&T) -> bool,
    is_prompt: impl Fn(&T) -> bool,
) -> Option<usize> {
    let last = turns.len().checked_sub(1)?;
    if is_partial(&turns[last]) {
        return Some(last);
    }
    let before = last.checked_sub(1)?;
    (is_prompt(&turns[last]) && is_partial(&turns[before])).then_some(before)
}

/// Whether a user turn's text asks to continue the answer before it.
fn is_continue_prompt(text: &str) -> bool {
    text.trim_start().starts_with("Continue")
}

/// What is left to say of `full` once `partial` has been said: the rest when `full` starts with
/// it, else all of `full` (the partial came from some other answer).
fn continued(full: String, partial: Option<&str>) -> String {
    match partial.and_then(|partial| full.strip_prefix(partial)) {
        Some(rest) => rest.to_owned(),
        None => full,
    }
}

/// How a model continues a broken answer: the `ok` family as asked, from where it stopped
/// ([`continued`]); `restarts` with its whole reply from the first word; `repeats-sentence`
/// with the partial answer's last sentence again (from just after its last `. `, `! ` or `? `;
/// the whole partial when it has none), then the rest; `diverges` with the first half of the
/// partial answer's words, then [`DIVERGED_TEXT`]. A partial that is not a prefix of the reply
/// gets the full reply from all of them.
fn continued_by(model: &str, full: String, partial: Option<&str>) -> String {
    let Some(partial) = partial else {
        return full;
    };
    let Some(rest) = full.strip_prefix(partial) else {
        return full;
    };
    match model {
        "restarts" => full,
        "repeats-sentence" => {
            let sentence = [". ", "! ", "? "]
                .iter()
                .filter_map(|end| partial.rfind(end).map(|at| at + end.len()))
                .max()
                .map_or(partial, |at| &partial[at..]);
            format!("{sentence}{rest}")
        }
        "diverges" => {
            let words: Vec<&str> = partial.split(' ').collect();
            format!("{}{DIVERGED_TEXT}", words[..words.len() / 2].join(" "))
        }
        _ => rest.to_owned(),
    }
}

fn role_of(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// A message's text: a string `content`, or the `text` parts of an array `content`.
fn text_of(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

async fn chat(state: &State, body: Option<Value>) -> Result<Response<Body>, Reset> {
    let flavor = state.flavor;
    let Some(body) = body else {
        return Ok(error(
            flavor,
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but \
             what was sent was not valid JSON.)",
            "invalid_request_error",
            None,
            None,
        ));
    };
    let chat = match Chat::parse(&body) {
        Ok(chat) => chat,
        Err(message) => {
            return Ok(error(
                flavor,
                StatusCode::BAD_REQUEST,
                message,
                "invalid_request_error",
                None,
                None,
            ));
        }
    };
    let completion = Completion::new(flavor, chat.model, chat.prompt_tokens());
    let reply = || Answer::Text(chat.reply_text());

    match state.behaviour(chat.model) {
        behaviour @ (Behaviour::Ok
        | Behaviour::NoDone
        | Behaviour::Processing { .. }
        | Behaviour::Flaky { .. }) => {
            let done = behaviour != Behaviour::NoDone;
            Ok(answer(flavor, &chat, &completion, &reply(), done))
        }
        // Without a stream there is no first chunk to hold back: the whole answer waits.
        Behaviour::Slow(delay) | Behaviour::SlowFirst(delay) | Behaviour::Paced(delay)
            if !chat.stream =>
        {
            tokio::time::sleep(delay).await;
            Ok(answer(flavor, &chat, &completion, &reply(), true))
        }
        Behaviour::Slow(delay) => {
            tokio::time::sleep(delay).await;
            Ok(answer(flavor, &chat, &completion, &reply(), true))
        }
        Behaviour::SlowFirst(delay) => {
            let sse = stream_text(flavor, &chat, &completion, &reply(), true);
            // hyper writes the head before it polls the body, so the headers are out while the
            // body's first step waits: a model that takes its time over the first token.
            let steps = vec![Step::Pause(delay), Step::Send(Bytes::from(sse))];
            Ok(streamed(flavor, StatusCode::OK, steps))
        }
        Behaviour::Paced(delay) => {
            let sse = stream_text(flavor, &chat, &completion, &reply(), true);
            let steps = sse
                .split_inclusive("\n\n")
                .flat_map(|frame| {
                    [
                        Step::Pause(delay),
                        Step::Send(Bytes::copy_from_slice(frame.as_bytes())),
                    ]
                })
                .collect();
            Ok(streamed(flavor, StatusCode::OK, steps))
        }
        Behaviour::Stall { chunks } => Ok(cut_short(
            flavor,
            &chat,
            &completion,
            chunks,
            &reply(),
            STALL_HOLD,
        )),
        Behaviour::Malformed { chunks } => {
            Ok(malformed(flavor, &chat, &completion, chunks, &reply()))
        }
        Behaviour::ToolCall { parallel, then } => {
            if let Then::SlowAgain(delay) = then {
                tokio::time::sleep(delay).await;
            }
            let said = chat.tool_reply();
            let response = if chat.no_tools {
                let text = format!(
                    "answered with tool_choice none after {} tool results",
                    chat.tool_results()
                );
                answer(flavor, &chat, &completion, &Answer::Text(text), true)
            } else if let (Some(text), Then::Answer) = (&said, then) {
                answer(
                    flavor,
                    &chat,
                    &completion,
                    &Answer::Text(text.clone()),
                    true,
                )
            } else if let (Some(_), Then::Unavailable) = (&said, then) {
                error(
                    flavor,
                    StatusCode::SERVICE_UNAVAILABLE,
                    OVERLOADED_MESSAGE,
                    "server_error",
                    None,
                    None,
                )
            } else if let (Some(text), Then::Cut) = (&said, then) {
                let text = Answer::Text(text.clone());
                cut_short(flavor, &chat, &completion, 2, &text, FAULT_PAUSE)
            } else if chat.tools.is_empty() {
                error(
                    flavor,
                    StatusCode::BAD_REQUEST,
                    "mock upstream: the tool-call models need `tools` in the request",
                    "invalid_request_error",
                    Some("tools"),
                    None,
                )
            } else {
                let calls = tool_calls(chat.tools, parallel);
                answer(flavor, &chat, &completion, &Answer::ToolCalls(calls), true)
            };
            Ok(response)
        }
        Behaviour::RateLimit { retry_after } => {
            let reset_ms = dialects::openrouter_reset_ms();
            let mut response = json_response(
                flavor,
                StatusCode::TOO_MANY_REQUESTS,
                &dialects::rate_limit_body(flavor, chat.model, retry_after.then_some(reset_ms)),
            );
            let headers = response.headers_mut();
            for (name, value) in dialects::rate_limit_headers(flavor, retry_after, reset_ms) {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            Ok(response)
        }
        Behaviour::ServerError => Ok(server_error(flavor)),
        Behaviour::ErrorIn200 => {
            let body = server_error_body(flavor);
            if !chat.stream {
                return Ok(json_response(flavor, StatusCode::OK, &body));
            }
            let frame = Bytes::from(wire::sse(&body.to_string()));
            Ok(streamed(flavor, StatusCode::OK, vec![Step::Send(frame)]))
        }
        // Without a stream there is no frame to fail in: the error comes as a plain 500.
        Behaviour::StreamError if !chat.stream => Ok(server_error(flavor)),
        Behaviour::Unavailable => Ok(error(
            flavor,
            StatusCode::SERVICE_UNAVAILABLE,
            OVERLOADED_MESSAGE,
            "server_error",
            None,
            None,
        )),
        Behaviour::Capacity => {
            let status = StatusCode::from_u16(498).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Ok(error(
                flavor,
                status,
                CAPACITY_MESSAGE,
                "capacity_exceeded",
                None,
                Some("capacity_exceeded"),
            ))
        }
        Behaviour::ContextLength => Ok(error(
            flavor,
            StatusCode::BAD_REQUEST,
            dialects::context_length_message(flavor),
            "invalid_request_error",
            Some("messages"),
            Some("context_length_exceeded"),
        )),
        Behaviour::BadRequest => Ok(error(
            flavor,
            StatusCode::BAD_REQUEST,
            BAD_REQUEST_MESSAGE,
            "invalid_request_error",
            Some("temperature"),
            None,
        )),
        Behaviour::EchoError => {
            let question = chat
                .messages
                .iter()
                .rev()
                .find(|m| role_of(m) == Some("user"))
                .map(text_of)
                .unwrap_or_default();
            Ok(error(
                flavor,
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("The server had an error while processing: {question}"),
                "server_error",
                None,
                None,
            ))
        }
        Behaviour::Reset => Err(Reset),
        Behaviour::NoCredit => {
            let (status, body) = dialects::no_credit(flavor);
            Ok(json_response(flavor, status, &body))
        }
        Behaviour::Forbidden => {
            let (status, body) = dialects::forbidden(flavor);
            Ok(json_response(flavor, status, &body))
        }
        Behaviour::ContentFilter => match dialects::content_filter_refusal(flavor, chat.model) {
            Some((status, body)) => Ok(json_response(flavor, status, &body)),
            None => {
                let filtered = Answer::Filtered(FILTERED_TEXT.to_owned());
                Ok(answer(flavor, &chat, &completion, &filtered, true))
            }
        },
        Behaviour::CutStream { chunks } => Ok(cut_short(
            flavor,
            &chat,
            &completion,
            chunks,
            &reply(),
            FAULT_PAUSE,
        )),
        Behaviour::StreamError => {
            let chunks = completion.first_text_chunks("partial answer", 1);
            let frame = match flavor {
                Flavor::Groq | Flavor::OpenAi => {
                    json!({"error": {"message": SERVER_ERROR_MESSAGE, "type": "server_error"}})
                }
                _ => dialects::stream_error_frame(flavor, SERVER_ERROR_MESSAGE, &chunks[0]),
            };
            let mut steps: Vec<Step> = chunks
                .iter()
                .map(|c| Step::Send(Bytes::from(wire::sse(&c.to_string()))))
                .collect();
            // The pause lets the partial answer reach the client before the error, as a
            // failure mid-generation would.
            steps.push(Step::Pause(FAULT_PAUSE));
            steps.push(Step::Send(Bytes::from(wire::sse(&frame.to_string()))));
            let mut response = streamed(flavor, StatusCode::OK, steps);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Ok(response)
        }
    }
}

/// The `error-500` model's answer: a 500 with the flavor's server-error body.
fn server_error(flavor: Flavor) -> Response<Body> {
    json_response(
        flavor,
        StatusCode::INTERNAL_SERVER_ERROR,
        &server_error_body(flavor),
    )
}

/// The flavor's server-error body, also what `error-200` sends with a 200.
fn server_error_body(flavor: Flavor) -> Value {
    dialects::error_body(
        flavor,
        StatusCode::INTERNAL_SERVER_ERROR,
        SERVER_ERROR_MESSAGE,
        "server_error",
        None,
        None,
    )
}

/// Calls to the first tool (and, for parallel calls, the second tool or the first again).
fn tool_calls(tools: &[Value], parallel: bool) -> Vec<ToolCall> {
    let function = |i: usize| {
        tools
            .get(i)
            .or_else(|| tools.first())
            .and_then(|t| t.get("function"))
    };
    let call = |i: usize, city: &str| {
        let function = function(i);
        ToolCall {
            id: wire::tool_call_id(),
            name: function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("tool")
                .to_owned(),
            arguments: arguments_for(function.and_then(|f| f.get("parameters")), city).to_string(),
        }
    };
    if parallel {
        vec![call(0, "Paris"), call(1, "London")]
    } else {
        vec![call(0, "Paris")]
    }
}

/// Arguments that satisfy a JSON schema's properties: `{"city":"Paris"}` for the usual weather
/// tool; otherwise a plausible value per property type.
fn arguments_for(schema: Option<&Value>, city: &str) -> Value {
    let Some(properties) = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return json!({ "city": city });
    };
    let mut args = serde_json::Map::new();
    for (name, property) in properties {
        let value = match property.get("type").and_then(Value::as_str) {
            Some("integer") => json!(1),
            Some("number") => json!(1.5),
            Some("boolean") => json!(true),
            Some("array") => json!([]),
            Some("object") => json!({}),
            _ => match property
                .get("enum")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
            {
                Some(first) => first.clone(),
                None if name.contains("city") || name.contains("location") => json!(city),
                None => json!("mock"),
            },
        };
        args.insert(name.clone(), value);
    }
    Value::Object(args)
}

/// A complete answer, streamed or not as the client asked.
fn answer(
    flavor: Flavor,
    chat: &Chat<'_>,
    completion: &Completion,
    answer: &Answer,
    done: bool,
) -> Response<Body> {
    if !chat.stream {
        return json_response(flavor, StatusCode::OK, &completion.full(answer));
    }
    let sse = stream_text(flavor, chat, completion, answer, done);
    // One frame per SSE event would be more bytes on the wire for nothing: a real server's
    // writes coalesce the same way when the model is fast.
    streamed(flavor, StatusCode::OK, vec![Step::Send(Bytes::from(sse))])
}

/// Every frame of a streamed answer, `[DONE]` included when `done`.
fn stream_text(
    flavor: Flavor,
    chat: &Chat<'_>,
    completion: &Completion,
    answer: &Answer,
    done: bool,
) -> String {
    let mut sse = dialects::sse_frames(flavor, &completion.chunks(answer, chat.include_usage));
    if done {
        sse.push_str(wire::SSE_DONE);
    }
    sse
}

/// An answer that stops half-way: the connection stays silent for `hold` and is then cut.
/// `cut-stream` holds just long enough for hyper to flush what was sent before the connection
/// dies; `stall` holds for [`STALL_HOLD`], a server that hangs mid-answer.
fn cut_short(
    flavor: Flavor,
    chat: &Chat<'_>,
    completion: &Completion,
    chunks: usize,
    reply: &Answer,
    hold: Duration,
) -> Response<Body> {
    if !chat.stream {
        let full = Bytes::from(completion.full(reply).to_string());
        let half = full.slice(..full.len() / 2);
        let mut response = streamed(
            flavor,
            StatusCode::OK,
            vec![Step::Send(half), Step::Pause(hold), Step::Fail],
        );
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
        return response;
    }
    let Answer::Text(text) = reply else {
        return streamed(flavor, StatusCode::OK, vec![Step::Fail]);
    };
    let mut sse = String::new();
    if chunks > 0 {
        sse = dialects::sse_frames(flavor, &completion.first_text_chunks(text, chunks));
    }
    let mut steps = Vec::new();
    if !sse.is_empty() {
        steps.push(Step::Send(Bytes::from(sse)));
    }
    steps.extend([Step::Pause(hold), Step::Fail]);
    streamed(flavor, StatusCode::OK, steps)
}

/// An answer with one piece of broken JSON in it. Streamed: the first `chunks` content chunks,
/// a frame whose JSON stops half-way, then the rest of the stream as if nothing had happened
/// (what a proxy mangling one write looks like). Not streamed: a 200 JSON body cut in half
/// whose `content-length` matches, so only the JSON is wrong, not the HTTP message.
fn malformed(
    flavor: Flavor,
    chat: &Chat<'_>,
    completion: &Completion,
    chunks: usize,
    reply: &Answer,
) -> Response<Body> {
    if !chat.stream {
        let full = Bytes::from(completion.full(reply).to_string());
        let half = full.slice(..full.len() / 2);
        return raw_json_response(flavor, StatusCode::OK, half);
    }
    let content_chunks = match reply {
        Answer::Text(text) | Answer::Filtered(text) => wire::split_words(text).len(),
        Answer::ToolCalls(_) => 0,
    };
    let all = completion.chunks(reply, chat.include_usage);
    // The role chunk, then at most every content chunk: the finish chunk always comes after.
    let (before, after) = all.split_at((1 + chunks.min(content_chunks)).min(all.len()));
    let mut rest = dialects::sse_frames(flavor, after);
    rest.push_str(wire::SSE_DONE);
    let steps = vec![
        Step::Send(Bytes::from(dialects::sse_frames(flavor, before))),
        Step::Pause(FAULT_PAUSE),
        Step::Send(Bytes::from(completion.truncated_chunk())),
        Step::Send(Bytes::from(rest)),
    ];
    streamed(flavor, StatusCode::OK, steps)
}

/// One step of a scripted response body.
enum Step {
    Send(Bytes),
    Pause(Duration),
    /// Abort the body: hyper closes the connection without finishing the message.
    Fail,
}

/// A streamed (`text/event-stream`) response whose body follows `steps`.
fn streamed(flavor: Flavor, status: StatusCode, steps: Vec<Step>) -> Response<Body> {
    let frames = futures_util::stream::unfold(steps.into_iter(), |mut steps| async move {
        loop {
            match steps.next()? {
                Step::Send(bytes) => return Some((Ok(Frame::data(bytes)), steps)),
                Step::Pause(delay) => tokio::time::sleep(delay).await,
                Step::Fail => {
                    let cut: BoxError = "mock upstream: scripted cut".into();
                    return Some((Err(cut), steps));
                }
            }
        }
    });
    let body: Pin<Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send>> =
        Box::pin(frames);
    let mut response = Response::new(StreamBody::new(body).boxed_unsync());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    provider_headers(flavor, headers, false);
    response
}

fn json_response(flavor: Flavor, status: StatusCode, body: &Value) -> Response<Body> {
    raw_json_response(flavor, status, Bytes::from(body.to_string()))
}

/// A whole `application/json` answer of these bytes (JSON or, for `malformed`, not quite).
fn raw_json_response(flavor: Flavor, status: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut response = Response::new(
        Full::new(bytes)
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    provider_headers(flavor, headers, status == StatusCode::TOO_MANY_REQUESTS);
    response
}

fn error(
    flavor: Flavor,
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response<Body> {
    json_response(
        flavor,
        status,
        &dialects::error_body(flavor, status, message, kind, param, code),
    )
}

/// Headers these providers put on every response.
fn provider_headers(flavor: Flavor, headers: &mut http::HeaderMap, exhausted: bool) {
    for (name, value) in dialects::common_headers(flavor, exhausted) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_pick_behaviours() {
        assert_eq!(Behaviour::of("ok"), Behaviour::Ok);
        assert_eq!(Behaviour::of("llama-3.1-8b-instant"), Behaviour::Ok);
        assert_eq!(
            Behaviour::of("slow-250"),
            Behaviour::Slow(Duration::from_millis(250))
        );
        assert_eq!(Behaviour::of("slow-abc"), Behaviour::Ok);
        assert_eq!(
            Behaviour::of("cut-stream"),
            Behaviour::CutStream { chunks: 2 }
        );
        assert_eq!(
            Behaviour::of("cut-stream-0"),
            Behaviour::CutStream { chunks: 0 }
        );
        assert_eq!(
            Behaviour::of("rate-limit-no-header"),
            Behaviour::RateLimit { retry_after: false }
        );
        assert_eq!(
            Behaviour::of("flaky-503-3"),
            Behaviour::Flaky {
                status: 503,
                failures: 3
            }
        );
        assert_eq!(Behaviour::of("flaky-503"), Behaviour::Ok);
        assert_eq!(
            Behaviour::of("slow-first-250"),
            Behaviour::SlowFirst(Duration::from_millis(250))
        );
        assert_eq!(Behaviour::of("stall-2"), Behaviour::Stall { chunks: 2 });
        assert_eq!(
            Behaviour::of("paced-40"),
            Behaviour::Paced(Duration::from_millis(40))
        );
        assert_eq!(
            Behaviour::of("malformed-0"),
            Behaviour::Malformed { chunks: 0 }
        );
    }

    #[test]
    fn flaky_statuses_map_to_the_error_models() {
        assert_eq!(
            Behaviour::failure(429),
            Behaviour::RateLimit { retry_after: true }
        );
        assert_eq!(Behaviour::failure(503), Behaviour::Unavailable);
        assert_eq!(Behaviour::failure(500), Behaviour::ServerError);
        assert_eq!(Behaviour::failure(502), Behaviour::ServerError);
    }

    #[test]
    fn continuations_are_a_trailing_partial_answer_or_a_continue_prompt_after_one() {
        let question = json!({"role": "user", "content": "hello there"});
        let partial = json!({"role": "assistant", "content": "mock reply"});
        let prompt = json!({"role": "user", "content": "Continue from where you stopped."});
        assert!(!is_continuation(&[]));
        assert!(!is_continuation(std::slice::from_ref(&question)));
        assert!(is_continuation(&[question.clone(), partial.clone()]));
        assert!(is_continuation(&[
            question.clone(),
            partial.clone(),
            prompt.clone()
        ]));
        // A continuation prompt needs the partial answer right before it.
        assert!(!is_continuation(&[question.clone(), prompt.clone()]));
        // A tool call is not a partial answer.
        let call = json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]});
        assert!(!is_continuation(&[question.clone(), call]));

        assert_eq!(
            continued("mock reply to: x".to_owned(), Some("mock reply")),
            " to: x"
        );
        assert_eq!(
            continued("mock reply to: x".to_owned(), Some("something else")),
            "mock reply to: x"
        );
    }

    #[test]
    fn fallback_models_that_ignore_the_continuation_prompt_restart_repeat_or_diverge() {
        let full = || "One two. Three four five. Six seven".to_owned();
        let partial = Some("One two. Three four");
        assert_eq!(continued_by("ok", full(), partial), " five. Six seven");
        assert_eq!(continued_by("restarts", full(), partial), full());
        assert_eq!(
            continued_by("repeats-sentence", full(), partial),
            "Three four five. Six seven"
        );
        assert_eq!(
            continued_by("diverges", full(), partial),
            format!("One two.{DIVERGED_TEXT}")
        );
        // Not a continuation: every one answers in full.
        for model in ["restarts", "repeats-sentence", "diverges"] {
            assert_eq!(continued_by(model, full(), None), full());
            assert_eq!(Behaviour::of(model), Behaviour::Ok);
        }
        assert_eq!(Behaviour::of("error-200"), Behaviour::ErrorIn200);
    }

    #[test]
    fn arguments_follow_the_tool_schema() {
        let schema = json!({"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        }});
        assert_eq!(
            arguments_for(Some(&schema), "Paris"),
            json!({"city": "Paris", "days": 1, "unit": "celsius"})
        );
        assert_eq!(arguments_for(None, "Paris"), json!({"city": "Paris"}));
    }

    #[test]
    fn the_digest_says_each_message_in_one_string() {
        let messages = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ]);
        let Value::Array(messages) = messages else {
            panic!("an array")
        };
        let digest = digest(&messages);
        assert_eq!(
            serde_json::from_str::<Value>(&digest).ok(),
            Some(json!([
                "system: be brief",
                "user: ab",
                "assistant:  calls f({})",
                "tool c1: 42"
            ]))
        );
    }
}
