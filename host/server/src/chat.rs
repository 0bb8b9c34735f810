//! `POST /v1/chat/completions`: parse the request once, walk the route with the failover
//! engine, and answer as JSON or as a server-sent event stream — continuing a stream that breaks
//! after its first byte on the route's next target.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aigw_router::{
    Attempt, Failure, FailureClass, Outcome, Request, Served, Skip, SkipReason, Timeouts, Upstream,
};
use aigw_runtime::{CallError, Chunk, HttpResponse, Step, StreamDecoder, Usage};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::body::Body;
use crate::error::ApiError;
use crate::gateway::{Gateway, RouteTarget, ServedRoute};

/// How many `follow` steps one answer may take (polling APIs); a plugin looping forever on
/// `follow` fails the attempt instead of holding the request.
const MAX_FOLLOW_STEPS: usize = 64;
/// SSE frames buffered towards a slow client before the upstream read waits.
const STREAM_BUFFER: usize = 32;

/// The fields the gateway itself needs. Everything else stays in the raw body for the plugin;
/// parsing into this struct also validates the whole body as JSON (the one parse on the host).
#[derive(Deserialize)]
struct RequestHead<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    messages: Option<IgnoredAny>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Options of one request that do not come from its JSON body.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestOptions {
    /// `x-aigw-debug: attempts`: describe every attempt in a response header.
    pub debug_attempts: bool,
}

/// Seeds each request's weighted order and jitter differently, without a lock or a syscall.
fn next_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0x5DEE_CE66_D1CE_4E5B);
    COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
}

pub(crate) async fn handle(
    gateway: Arc<Gateway>,
    body: Bytes,
    options: RequestOptions,
) -> Response<Body> {
    let started = Instant::now();
    let head: RequestHead<'_> = match serde_json::from_slice(&body) {
        Ok(head) => head,
        Err(e) => {
            return ApiError::invalid_request(format!(
                "request body is not valid JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
            .code("invalid_json")
            .response();
        }
    };
    let Some(model) = head.model.as_deref() else {
        return ApiError::invalid_request("you must provide a model parameter")
            .param("model")
            .code("missing_model")
            .response();
    };
    if head.messages.is_none() {
        return ApiError::invalid_request("you must provide a messages parameter")
            .param("messages")
            .code("missing_messages")
            .response();
    }
    let Some(route) = gateway.resolve(model) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "the model `{model}` does not exist; known models: {}",
                gateway.known_models.join(", ")
            ),
        )
        .param("model")
        .code("model_not_found")
        .response();
    };
    let stream = head.stream.unwrap_or(false);
    let include_usage = head
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let model = model.to_owned();
    // The plugin receives the client's JSON as text; it was just validated.
    let Ok(text) = std::str::from_utf8(&body) else {
        return ApiError::invalid_request("request body is not UTF-8")
            .code("invalid_json")
            .response();
    };
    let call = Call {
        gateway: &gateway,
        body: text,
        continuation: None,
        stream,
    };
    let seed = next_seed();
    let request = Request {
        stream,
        seed,
        exclude: Vec::new(),
    };
    let outcome = aigw_router::serve(&call, &route, &request).await;
    match &outcome {
        Ok(served) => warn_of_unhealthy_targets(&route, &served.attempts),
        Err(exhausted) => warn_of_unhealthy_targets(&route, &exhausted.attempts),
    }
    let log = RequestLog {
        model,
        route: Arc::clone(&route),
        started,
        stream,
    };
    match outcome {
        Ok(served) => {
            let context = StreamContext {
                gateway: Arc::clone(&gateway),
                route,
                body: body.clone(),
                seed,
                include_usage,
                log,
            };
            answer(served, context, options)
        }
        Err(exhausted) => {
            let error = ApiError::exhausted(&exhausted, &log.model, |i| label(&route, i));
            log.emit(
                error.status.as_u16(),
                &exhausted.attempts,
                &exhausted.skipped,
                None,
                None,
                Some(&error.message),
            );
            let mut response = error.response();
            let headers = response.headers_mut();
            headers.insert(
                "x-aigw-attempts",
                HeaderValue::from(exhausted.attempts.len()),
            );
            if options.debug_attempts {
                debug_header(headers, &route, &exhausted.attempts, &exhausted.skipped);
            }
            response
        }
    }
}

/// Says loudly when an attempt took a target out: a rejected credential (the operator must fix
/// the key; the key itself is never logged) or a breaker that just opened. Only failed
/// attempts are looked at, so a healthy request does no work here.
fn warn_of_unhealthy_targets(route: &ServedRoute, attempts: &[Attempt]) {
    for attempt in attempts {
        let Some(failure) = attempt.failure() else {
            continue;
        };
        let Some(entry) = route.entries.get(attempt.target) else {
            continue;
        };
        let snapshot = entry.health.snapshot();
        if snapshot.state != aigw_router::BreakerState::Open {
            continue;
        }
        if failure.class == FailureClass::Unauthorized {
            tracing::warn!(
                target = %entry.target.label,
                reason = %failure,
                out_for_s = snapshot.open_for.as_secs(),
                "credential rejected or missing: target marked misconfigured"
            );
        } else if snapshot.consecutive_failures > 0 {
            tracing::warn!(
                target = %entry.target.label,
                reason = %failure,
                consecutive_failures = snapshot.consecutive_failures,
                open_for_ms = snapshot.open_for.as_millis() as u64,
                "circuit breaker opened"
            );
        }
    }
}

fn label(route: &ServedRoute, index: usize) -> String {
    route
        .entries
        .get(index)
        .map(|e| e.target.label.to_string())
        .unwrap_or_default()
}

/// `x-aigw-attempt-log`: one `label kind outcome latency` item per attempt, then the skipped
/// targets, for `x-aigw-debug: attempts`.
fn debug_header(
    headers: &mut http::HeaderMap,
    route: &ServedRoute,
    attempts: &[Attempt],
    skipped: &[Skip],
) {
    if let Ok(value) = HeaderValue::from_str(&describe_attempts(route, attempts, skipped)) {
        headers.insert("x-aigw-attempt-log", value);
    }
}

/// What every attempt did, for the log line and the debug header. Messages are left out: they
/// are upstream text, not always fit for a header.
fn describe_attempts(route: &ServedRoute, attempts: &[Attempt], skipped: &[Skip]) -> String {
    let mut out = String::new();
    for attempt in attempts {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let outcome = match &attempt.outcome {
            Outcome::Served => "served".to_owned(),
            Outcome::Cancelled => "cancelled".to_owned(),
            Outcome::Failed(failure) => match failure.status {
                Some(status) => format!("{}({status})", failure.class.as_str()),
                None => failure.class.as_str().to_owned(),
            },
        };
        let _ = write!(
            out,
            "{} {} {outcome} at={:.1}ms took={:.1}ms",
            label(route, attempt.target),
            attempt.kind.as_str(),
            attempt.at.as_secs_f64() * 1000.0,
            attempt.latency.as_secs_f64() * 1000.0
        );
    }
    for skip in skipped {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "{} skipped {}",
            label(route, skip.target),
            skip.reason.as_str()
        );
        if let SkipReason::Cooling(wait) | SkipReason::Open(wait) = skip.reason {
            let _ = write!(out, " for={:.1}s", wait.as_secs_f64());
        }
    }
    out
}

/// What one successful attempt produced.
enum Answer {
    Complete { json: String, usage: Option<Usage> },
    Stream(Box<OpenStream>),
}

/// A stream that produced its first chunks: from here on it is committed to the client.
struct OpenStream {
    response: reqwest::Response,
    decoder: StreamDecoder,
    first: Vec<Chunk>,
    finished: bool,
    /// The longest silence allowed between two upstream reads.
    stall: Duration,
    /// When the whole attempt must be over.
    deadline: tokio::time::Instant,
    total: Duration,
}

/// The request bodies that ask a target to continue a broken answer.
struct Continuation {
    /// The partial answer as the last (assistant) message, for targets that continue it.
    prefill: String,
    /// The partial answer followed by a user message asking to continue, for the others.
    prompt: String,
}

/// What the gateway asks a target that continues another's broken answer without prefill.
pub(crate) const CONTINUE_PROMPT: &str = "Continue your previous answer exactly where it \
     stopped. Do not repeat anything already written and do not add any preamble.";

/// One chat completion request, tried against targets by the failover engine.
struct Call<'a> {
    gateway: &'a Gateway,
    body: &'a str,
    /// Set when continuing a broken stream: the body depends on the target.
    continuation: Option<&'a Continuation>,
    stream: bool,
}

impl Upstream for Call<'_> {
    type Target = RouteTarget;
    type Output = Answer;

    async fn attempt(&self, target: &RouteTarget, timeouts: &Timeouts) -> Result<Answer, Failure> {
        let provider = &target.provider;
        if let Some(why) = &provider.missing_credential {
            return Err(Failure::new(
                FailureClass::Unauthorized,
                format!("provider `{}` has no credential: {why}", provider.name),
            ));
        }
        let body = match self.continuation {
            Some(c) if target.prefill => c.prefill.as_str(),
            Some(c) => c.prompt.as_str(),
            None => self.body,
        };
        if self.stream {
            self.open_stream(target, body, timeouts)
                .await
                .map(|s| Answer::Stream(Box::new(s)))
        } else {
            self.complete(target, body, timeouts).await
        }
    }
}

impl Call<'_> {
    /// Sends a request and waits for the response headers, within `first_byte`.
    async fn send(
        &self,
        target: &RouteTarget,
        request: aigw_runtime::HttpRequest,
        timeouts: &Timeouts,
        whole: Duration,
    ) -> Result<reqwest::Response, Failure> {
        let provider = &target.provider;
        let send = self
            .gateway
            .egress
            .send(provider, timeouts.connect, request, whole);
        match tokio::time::timeout(timeouts.first_byte, send).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                FailureClass::Timeout,
                format!(
                    "no response within {} ms (first byte)",
                    timeouts.first_byte.as_millis()
                ),
            )),
        }
    }

    async fn complete(
        &self,
        target: &RouteTarget,
        body: &str,
        timeouts: &Timeouts,
    ) -> Result<Answer, Failure> {
        let provider = &target.provider;
        let plugin = &provider.plugin;
        let mut request = plugin
            .encode(&target.plugin_target, body)
            .await
            .map_err(|e| call_failure(e, &provider.name, None))?;
        for _ in 0..MAX_FOLLOW_STEPS {
            let response = self.send(target, request, timeouts, timeouts.total).await?;
            let status = response.status().as_u16();
            let response = read_whole(response, timeouts.total).await?;
            match plugin.decode(&target.plugin_target, response).await {
                Ok(Step::Done(completion)) => {
                    return Ok(Answer::Complete {
                        json: completion.json,
                        usage: completion.usage,
                    });
                }
                Ok(Step::Follow(next)) => request = next,
                Err(e) => return Err(call_failure(e, &provider.name, Some(status))),
            }
        }
        Err(Failure::new(
            FailureClass::BadResponse,
            format!(
                "plugin `{}` did not finish within {MAX_FOLLOW_STEPS} steps",
                provider.name
            ),
        ))
    }

    /// Sends a streamed request and reads until the first chunk: until then, any failure
    /// lets the engine fail over without the client seeing a byte.
    async fn open_stream(
        &self,
        target: &RouteTarget,
        body: &str,
        timeouts: &Timeouts,
    ) -> Result<OpenStream, Failure> {
        let started = tokio::time::Instant::now();
        let provider = &target.provider;
        let plugin = &provider.plugin;
        let request = plugin
            .encode(&target.plugin_target, body)
            .await
            .map_err(|e| call_failure(e, &provider.name, None))?;
        // The stream's own limits (stall, total) are enforced while reading it.
        let mut response = self
            .send(target, request, timeouts, Duration::from_secs(24 * 3600))
            .await?;
        let status = response.status();
        if !status.is_success() {
            let answer = read_whole(response, timeouts.total).await?;
            return Err(match plugin.decode(&target.plugin_target, answer).await {
                Err(e) => call_failure(e, &provider.name, Some(status.as_u16())),
                Ok(_) => Failure::new(
                    FailureClass::BadResponse,
                    format!("upstream answered {status} to a streamed request"),
                )
                .with_status(status.as_u16()),
            });
        }
        let mut decoder = plugin
            .stream_decoder(&target.plugin_target)
            .await
            .map_err(|e| call_failure(e, &provider.name, None))?;
        let open = |response, decoder, first, finished| OpenStream {
            response,
            decoder,
            first,
            finished,
            stall: timeouts.stall,
            deadline: started + timeouts.total,
            total: timeouts.total,
        };
        loop {
            match response.chunk().await {
                Ok(Some(piece)) => {
                    let first = decoder
                        .feed(&piece)
                        .await
                        .map_err(|e| call_failure(e, &provider.name, None))?;
                    if !first.is_empty() {
                        return Ok(open(response, decoder, first, false));
                    }
                }
                Ok(None) => {
                    let first = decoder
                        .finish()
                        .await
                        .map_err(|e| call_failure(e, &provider.name, None))?;
                    return Ok(open(response, decoder, first, true));
                }
                Err(e) => {
                    return Err(Failure::new(
                        FailureClass::Unavailable,
                        format!("stream broke before its first chunk: {e}"),
                    ));
                }
            }
        }
    }
}

async fn read_whole(
    response: reqwest::Response,
    timeout: Duration,
) -> Result<HttpResponse, Failure> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response.bytes().await.map_err(|e| {
        if e.is_timeout() {
            Failure::new(
                FailureClass::Timeout,
                format!("no complete answer within {} ms", timeout.as_millis()),
            )
        } else {
            // The connection broke mid-answer: a transport failure (502), whatever the status.
            Failure::new(
                FailureClass::Connect,
                format!("upstream body broke off: {e}"),
            )
        }
    })?;
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// Maps a plugin call error onto the engine's failure classes.
fn call_failure(error: CallError, provider: &str, status: Option<u16>) -> Failure {
    use aigw_runtime::Failure as Plugin;
    let failure = match error {
        CallError::Fault(fault) => {
            return Failure::new(
                FailureClass::PluginFault,
                format!(
                    "plugin of provider `{provider}` failed ({}): {}",
                    fault.kind.as_str(),
                    fault.message
                ),
            );
        }
        CallError::Failure(f) => f,
    };
    let (class, retry_after) = match &failure {
        Plugin::RateLimited {
            retry_after_seconds,
            ..
        } => (
            FailureClass::RateLimited,
            retry_after_seconds.map(|s| Duration::from_secs(u64::from(s))),
        ),
        Plugin::Unavailable(_) => (FailureClass::Unavailable, None),
        Plugin::ContextLengthExceeded(_) => (FailureClass::ContextLengthExceeded, None),
        Plugin::InvalidRequest(_) => (FailureClass::InvalidRequest, None),
        Plugin::ContentFiltered(_) => (FailureClass::ContentFiltered, None),
        Plugin::Unauthorized(_) => (FailureClass::Unauthorized, None),
        Plugin::BadResponse(_) => (FailureClass::BadResponse, None),
    };
    let mut out = Failure::new(class, failure.message()).with_retry_after(retry_after);
    out.status = status;
    out
}

fn served_headers(response: &mut Response<Body>, target: &RouteTarget, attempts: usize) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&target.provider.name) {
        headers.insert("x-aigw-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&target.label) {
        headers.insert("x-aigw-target", v);
    }
    headers.insert("x-aigw-attempts", HeaderValue::from(attempts));
}

/// What a committed stream needs to go on, continuation included.
struct StreamContext {
    gateway: Arc<Gateway>,
    route: Arc<ServedRoute>,
    /// The client's request, for continuation requests.
    body: Bytes,
    seed: u64,
    include_usage: bool,
    log: RequestLog,
}

fn answer(
    served: Served<Answer>,
    context: StreamContext,
    options: RequestOptions,
) -> Response<Body> {
    let Some(target) = context
        .route
        .entries
        .get(served.target)
        .map(|e| e.target.clone())
    else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "lost target",
        )
        .response();
    };
    let debug = |response: &mut Response<Body>| {
        if options.debug_attempts {
            debug_header(
                response.headers_mut(),
                &context.route,
                &served.attempts,
                &served.skipped,
            );
        }
    };
    match served.output {
        Answer::Complete { json, usage } => {
            context.log.emit(
                200,
                &served.attempts,
                &served.skipped,
                Some(&target),
                usage,
                None,
            );
            let mut response = Response::new(Body::full(json));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            served_headers(&mut response, &target, served.attempts.len());
            debug(&mut response);
            response
        }
        Answer::Stream(open) => {
            let (tx, rx) = mpsc::channel(STREAM_BUFFER);
            let mut response = Response::new(Body::Stream(rx));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            served_headers(&mut response, &target, served.attempts.len());
            debug(&mut response);
            let committed = Committed {
                open: *open,
                target: served.target,
                attempts: served.attempts,
                skipped: served.skipped,
            };
            tokio::spawn(pump(committed, tx, context));
            response
        }
    }
}

/// Appends one SSE event, `data: <json>\n\n`.
fn push_frame(out: &mut Vec<u8>, json: &[u8]) {
    out.reserve(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// The most answer text kept for continuing a broken stream; a longer answer that breaks ends
/// with an error event instead.
const MAX_TRANSCRIPT_BYTES: usize = 4 << 20;

/// What the client has received of a stream, enough to continue it elsewhere: the stream's id
/// and the answer text. Each chunk is read with a borrowed, typed probe (no tree; unknown fields
/// skipped), so a long stream costs its text in memory, not its JSON.
#[derive(Default)]
struct Transcript {
    id: Option<String>,
    text: String,
    /// Tool calls were streamed, another choice appeared, a chunk did not parse, or the text
    /// passed its cap: the answer cannot be continued.
    stuck: bool,
}

#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<ChoiceProbe<'a>>,
}

#[derive(Deserialize)]
struct ChoiceProbe<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<DeltaProbe<'a>>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    tool_calls: Option<IgnoredAny>,
}

impl Transcript {
    fn record(&mut self, json: &str) {
        if self.stuck {
            return;
        }
        let Ok(chunk) = serde_json::from_str::<ChunkProbe<'_>>(json) else {
            self.stuck = true;
            return;
        };
        if self.id.is_none() {
            self.id = chunk.id.map(Cow::into_owned);
        }
        for choice in chunk.choices {
            let Some(delta) = choice.delta else { continue };
            if choice.index != 0 || delta.tool_calls.is_some() {
                self.stuck = true;
                return;
            }
            if let Some(content) = delta.content {
                self.text.push_str(&content);
            }
        }
        if self.text.len() > MAX_TRANSCRIPT_BYTES {
            self.stuck = true;
            self.text = String::new();
        }
    }

    /// The stream's id and the answer text so far; `None` when the answer cannot be continued.
    fn partial(&self) -> Option<(Option<String>, String)> {
        (!self.stuck).then(|| (self.id.clone(), self.text.clone()))
    }
}

/// The continuation requests for a partial answer (the client's request with the partial
/// answer appended), or `None` if the client's body cannot be extended.
fn continuation_bodies(body: &[u8], partial: &str) -> Option<Continuation> {
    let mut request: Value = serde_json::from_slice(body).ok()?;
    let messages = request.get_mut("messages")?.as_array_mut()?;
    if partial.is_empty() {
        // Nothing reached the client but the role: a fresh answer is a continuation.
        let text = request.to_string();
        return Some(Continuation {
            prefill: text.clone(),
            prompt: text,
        });
    }
    messages.push(serde_json::json!({"role": "assistant", "content": partial}));
    let prefill = request.to_string();
    let messages = request.get_mut("messages")?.as_array_mut()?;
    messages.push(serde_json::json!({"role": "user", "content": CONTINUE_PROMPT}));
    Some(Continuation {
        prefill,
        prompt: request.to_string(),
    })
}

/// Rewrites a continuing target's chunk to belong to the stream the client already has: the
/// original `id`, and no second `role`.
fn rejoin(json: &str, id: Option<&str>) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    if let (Some(id), Some(object)) = (id, value.as_object_mut()) {
        object.insert("id".to_owned(), Value::String(id.to_owned()));
    }
    if let Some(choices) = value.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            if let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) {
                delta.remove("role");
            }
        }
    }
    value.to_string()
}

/// Forwards chunks to the client; returns false once the client has gone. The chunks one
/// upstream read produced go out as one write: a frame per chunk cost a syscall per chunk.
async fn forward(
    chunks: Vec<Chunk>,
    tx: &mpsc::Sender<Bytes>,
    include_usage: bool,
    usage: &mut Option<Usage>,
    done: bool,
    transcript: &mut Transcript,
    rejoin_id: Option<&Option<String>>,
) -> bool {
    let mut out = Vec::new();
    for chunk in chunks {
        if let Some(u) = chunk.usage {
            *usage = Some(u);
            if !include_usage {
                continue;
            }
        }
        let json = match rejoin_id {
            Some(id) => rejoin(&chunk.json, id.as_deref()),
            None => chunk.json,
        };
        push_frame(&mut out, json.as_bytes());
        transcript.record(&json);
    }
    if done {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
    out.is_empty() || tx.send(Bytes::from(out)).await.is_ok()
}

/// A stream committed to the client, and how it got there.
struct Committed {
    open: OpenStream,
    /// The route entry serving it.
    target: usize,
    attempts: Vec<Attempt>,
    skipped: Vec<Skip>,
}

/// How relaying one upstream stream ended.
enum Relayed {
    Finished,
    ClientGone,
    Broke(Failure),
}

/// Carries one upstream stream to the client until it finishes, breaks or the client leaves.
async fn relay(
    open: &mut OpenStream,
    tx: &mpsc::Sender<Bytes>,
    include_usage: bool,
    usage: &mut Option<Usage>,
    transcript: &mut Transcript,
    rejoin_id: Option<&Option<String>>,
    provider: &str,
) -> Relayed {
    let mut pending = std::mem::take(&mut open.first);
    loop {
        // `finished` means the decoder's `finish` succeeded: only then does `[DONE]` go out.
        let sent = forward(
            std::mem::take(&mut pending),
            tx,
            include_usage,
            usage,
            open.finished,
            transcript,
            rejoin_id,
        )
        .await;
        if !sent {
            return Relayed::ClientGone;
        }
        if open.finished {
            return Relayed::Finished;
        }
        let silence_ends = tokio::time::Instant::now() + open.stall;
        let piece =
            match tokio::time::timeout_at(silence_ends.min(open.deadline), open.response.chunk())
                .await
            {
                Err(_) if silence_ends < open.deadline => {
                    return Relayed::Broke(Failure::new(
                        FailureClass::Timeout,
                        format!("stream stalled: no data for {} ms", open.stall.as_millis()),
                    ));
                }
                Err(_) => {
                    return Relayed::Broke(Failure::new(
                        FailureClass::Timeout,
                        format!(
                            "stream still running after its total limit of {} ms",
                            open.total.as_millis()
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    return Relayed::Broke(Failure::new(
                        FailureClass::Unavailable,
                        format!("upstream stream broke off: {e}"),
                    ));
                }
                Ok(Ok(piece)) => piece,
            };
        let decoded = match &piece {
            Some(bytes) => open.decoder.feed(bytes).await,
            None => {
                open.finished = true;
                open.decoder.finish().await
            }
        };
        match decoded {
            Ok(chunks) => pending = chunks,
            Err(e) => return Relayed::Broke(call_failure(e, provider, None)),
        }
    }
}

/// Carries a committed stream to the client. A failure after this point cannot fail over
/// invisibly (bytes already went out): the answer so far is continued on the route's next
/// target, which is asked to carry on from the partial text and whose new tokens join the same
/// stream. When no target can continue, the stream ends with an error event and no `[DONE]`,
/// so the client never mistakes a cut answer for a complete one (invariant 6).
async fn pump(committed: Committed, tx: mpsc::Sender<Bytes>, context: StreamContext) {
    let Committed {
        mut open,
        mut target,
        mut attempts,
        mut skipped,
    } = committed;
    let route = Arc::clone(&context.route);
    let mut usage = None;
    // A one-target route (any direct `provider/model`) has no other target to continue on:
    // reading its chunks for a continuation would be work for nothing.
    let mut transcript = Transcript {
        stuck: route.entries.len() < 2,
        ..Transcript::default()
    };
    // Set once continuing: the original stream's id, to rewrite the continuation's chunks.
    let mut rejoin_id: Option<Option<String>> = None;
    let mut exclude = Vec::new();
    let mut since = Instant::now();
    loop {
        let entry = &route.entries[target];
        let relayed = relay(
            &mut open,
            &tx,
            context.include_usage,
            &mut usage,
            &mut transcript,
            rejoin_id.as_ref(),
            &entry.target.provider.name,
        )
        .await;
        let served_by = entry.target.clone();
        let failure = match relayed {
            Relayed::Finished => {
                open.decoder.close().await;
                context
                    .log
                    .emit(200, &attempts, &skipped, Some(&served_by), usage, None);
                return;
            }
            Relayed::ClientGone => {
                context.log.emit(
                    499,
                    &attempts,
                    &skipped,
                    Some(&served_by),
                    usage,
                    Some("client went away"),
                );
                return;
            }
            Relayed::Broke(failure) => failure,
        };
        // The engine saw this attempt serve; it broke afterwards: that counts against the
        // target too, and the attempt is recorded as failed.
        entry.health.record_failure(&failure, 0.5);
        if let Some(last) = attempts.iter_mut().rev().find(|a| a.target == target) {
            last.latency = since.elapsed().max(last.latency);
            last.outcome = Outcome::Failed(failure.clone());
        }
        exclude.push(target);
        since = Instant::now();
        let Some((next, next_target, id)) =
            continue_elsewhere(&context, &transcript, &exclude, &mut attempts, &mut skipped).await
        else {
            end_with_error(
                &tx, &served_by, &failure, &context, &attempts, &skipped, usage,
            )
            .await;
            return;
        };
        tracing::info!(
            target: "aigw::request",
            model = %context.log.model,
            broken = %served_by.label,
            continued_on = %route.entries[next_target].target.label,
            reason = %failure,
            "stream continued on another target"
        );
        open = next;
        target = next_target;
        rejoin_id = Some(id);
    }
}

/// Asks the route's other targets (all but `exclude`) to continue the answer the transcript
/// holds. Their attempts and skips join the request's. `None` when the answer cannot be
/// continued or no target could: the stream then ends with an error event.
async fn continue_elsewhere(
    context: &StreamContext,
    transcript: &Transcript,
    exclude: &[usize],
    attempts: &mut Vec<Attempt>,
    skipped: &mut Vec<Skip>,
) -> Option<(OpenStream, usize, Option<String>)> {
    let (id, partial) = transcript.partial()?;
    let bodies = continuation_bodies(&context.body, &partial)?;
    let text = std::str::from_utf8(&context.body).ok()?;
    let call = Call {
        gateway: &context.gateway,
        body: text,
        continuation: Some(&bodies),
        stream: true,
    };
    let request = Request {
        stream: true,
        seed: context.seed.rotate_left(17),
        exclude: exclude.to_vec(),
    };
    let (output, served, new_attempts, new_skipped) =
        match aigw_router::serve(&call, &context.route, &request).await {
            Ok(served) => (
                Some(served.output),
                served.target,
                served.attempts,
                served.skipped,
            ),
            Err(exhausted) => (None, 0, exhausted.attempts, exhausted.skipped),
        };
    attempts.extend(new_attempts);
    // The excluded targets are the ones that broke: already in the attempts.
    skipped.extend(
        new_skipped
            .into_iter()
            .filter(|s| s.reason != SkipReason::Excluded),
    );
    match output? {
        Answer::Stream(next) => Some((*next, served, id)),
        Answer::Complete { .. } => None,
    }
}

/// Ends a broken stream that no target could continue: one OpenAI-style error event, no
/// `[DONE]`.
async fn end_with_error(
    tx: &mpsc::Sender<Bytes>,
    broken: &RouteTarget,
    failure: &Failure,
    context: &StreamContext,
    attempts: &[Attempt],
    skipped: &[Skip],
    usage: Option<Usage>,
) {
    let message = format!("{}: {}", broken.label, failure.message);
    let event = ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", message.clone())
        .code(failure.class.as_str());
    let mut out = Vec::new();
    push_frame(&mut out, &event.json());
    let _ = tx.send(Bytes::from(out)).await;
    context
        .log
        .emit(502, attempts, skipped, Some(broken), usage, Some(&message));
}

/// The one log line each request gets.
struct RequestLog {
    model: String,
    route: Arc<ServedRoute>,
    started: Instant,
    stream: bool,
}

impl RequestLog {
    fn emit(
        &self,
        status: u16,
        attempts: &[Attempt],
        skipped: &[Skip],
        served: Option<&RouteTarget>,
        usage: Option<Usage>,
        error: Option<&str>,
    ) {
        // The line is off below `info`: skip building its fields too.
        if !tracing::enabled!(target: "aigw::request", tracing::Level::INFO) {
            return;
        }
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        // Failed attempts are metered apart from the one that served: the upstream may bill
        // them, and they are what an operator looks at.
        let failed: Vec<String> = attempts
            .iter()
            .filter_map(|a| {
                a.failure()
                    .map(|f| format!("{} {}", label(&self.route, a.target), f))
            })
            .collect();
        let provider = served.map(|t| t.provider.name.as_str()).unwrap_or("-");
        let target = served.map(|t| &*t.label).unwrap_or("-");
        tracing::info!(
            target: "aigw::request",
            model = %self.model,
            provider,
            target,
            status,
            attempts = attempts.len(),
            latency_ms = format_args!("{latency_ms:.2}"),
            stream = self.stream,
            prompt_tokens = usage.map(|u| u.prompt_tokens),
            completion_tokens = usage.map(|u| u.completion_tokens),
            failed_attempts = %failed.join("; "),
            attempt_log = %describe_attempts(&self.route, attempts, skipped),
            error = error.unwrap_or(""),
            "chat completion"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn chunk(id: &str, delta: Value) -> String {
        serde_json::json!({"id": id, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        .to_string()
    }

    #[test]
    fn the_transcript_gives_the_stream_id_and_the_text_so_far() {
        let mut t = Transcript::default();
        t.record(&chunk(
            "c1",
            serde_json::json!({"role": "assistant", "content": ""}),
        ));
        t.record(&chunk("c1", serde_json::json!({"content": "Hello"})));
        t.record(&chunk("c2", serde_json::json!({"content": " wor"})));
        // A usage chunk has no choices.
        t.record(r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":1}}"#);
        assert_eq!(
            t.partial(),
            Some((Some("c1".to_owned()), "Hello wor".to_owned()))
        );
    }

    #[test]
    fn streamed_tool_calls_and_other_choices_cannot_be_continued() {
        let mut t = Transcript::default();
        t.record(&chunk(
            "c1",
            serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
        ));
        assert_eq!(t.partial(), None);
        let mut t = Transcript::default();
        t.record(
            &serde_json::json!({"id": "c", "choices": [{"index": 1, "delta": {"content": "x"}}]})
                .to_string(),
        );
        assert_eq!(t.partial(), None);
        let mut t = Transcript::default();
        t.record("{not json");
        assert_eq!(t.partial(), None);
    }

    #[test]
    fn a_transcript_past_its_cap_turns_continuation_off() {
        let mut t = Transcript::default();
        let big = "x".repeat(MAX_TRANSCRIPT_BYTES / 2 + 1);
        t.record(&chunk("c", serde_json::json!({ "content": big })));
        t.record(&chunk("c", serde_json::json!({ "content": big })));
        assert_eq!(t.partial(), None);
        assert!(t.text.is_empty(), "the memory is given back");
    }

    #[test]
    fn continuation_bodies_append_the_partial_answer_and_for_prompts_a_request_to_go_on() {
        let body = br#"{"model":"fast","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let c = continuation_bodies(body, "Hello wor").unwrap();
        let prefill: Value = serde_json::from_str(&c.prefill).unwrap();
        let messages = prefill["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[1],
            serde_json::json!({"role": "assistant", "content": "Hello wor"})
        );
        assert_eq!(prefill["stream"], true);
        let prompt: Value = serde_json::from_str(&c.prompt).unwrap();
        let messages = prompt["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"], "Hello wor");
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"], CONTINUE_PROMPT);
        // Nothing but the role went out: start over, unchanged.
        let fresh = continuation_bodies(body, "").unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&fresh.prompt).unwrap()["messages"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(continuation_bodies(br#"{"model":"m"}"#, "x").is_none());
    }

    #[test]
    fn rejoined_chunks_take_the_first_streams_id_and_drop_the_second_role() {
        let next = chunk(
            "other",
            serde_json::json!({"role": "assistant", "content": " more"}),
        );
        let joined: Value = serde_json::from_str(&rejoin(&next, Some("c1"))).unwrap();
        assert_eq!(joined["id"], "c1");
        assert_eq!(
            joined["choices"][0]["delta"],
            serde_json::json!({"content": " more"})
        );
        assert_eq!(rejoin("not json", Some("c1")), "not json");
    }

    #[test]
    fn attempt_descriptions_name_target_kind_outcome_and_times() {
        use aigw_router::{AttemptKind, Policy, Route};
        let route: ServedRoute = Route::new(Vec::new(), Policy::default());
        let attempts = [Attempt {
            target: 9,
            kind: AttemptKind::Retry,
            at: Duration::from_millis(52),
            latency: Duration::from_micros(1500),
            outcome: Outcome::Failed(
                Failure::new(FailureClass::Unavailable, "boom").with_status(503),
            ),
        }];
        let skipped = [Skip {
            target: 9,
            reason: SkipReason::Cooling(Duration::from_millis(6500)),
        }];
        assert_eq!(
            describe_attempts(&route, &attempts, &skipped),
            " retry unavailable(503) at=52.0ms took=1.5ms,  skipped cooling for=6.5s"
        );
    }
}
