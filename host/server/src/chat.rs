//! `POST /v1/chat/completions`: parse the request once, walk the route with the failover
//! engine, and answer as JSON or as a server-sent event stream.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_router::{Failure, FailureClass, Served, Upstream};
use aigw_runtime::{CallError, Chunk, HttpResponse, Step, StreamDecoder, Usage};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::sync::mpsc;

use crate::body::Body;
use crate::error::ApiError;
use crate::gateway::{Gateway, RouteTarget};

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

pub(crate) async fn handle(gateway: Arc<Gateway>, body: Bytes) -> Response<Body> {
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
    let Some(targets) = gateway.resolve(model) else {
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
        stream,
    };
    let outcome = aigw_router::serve(&call, &targets).await;
    let log = RequestLog {
        model,
        targets: Arc::clone(&targets),
        started,
        stream,
    };
    match outcome {
        Ok(served) => answer(served, &targets, include_usage, log),
        Err(exhausted) => {
            let error = ApiError::exhausted(&exhausted, |i| label(&targets, i));
            log.emit(
                error.status.as_u16(),
                &exhausted.attempts,
                None,
                None,
                Some(&error.message),
            );
            let mut response = error.response();
            response.headers_mut().insert(
                "x-aigw-attempts",
                HeaderValue::from(exhausted.attempts.len()),
            );
            response
        }
    }
}

fn label(targets: &[RouteTarget], index: usize) -> String {
    targets
        .get(index)
        .map(|t| t.label.to_string())
        .unwrap_or_default()
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
    timeout: Duration,
}

/// One chat completion request, tried against targets by the failover engine.
struct Call<'a> {
    gateway: &'a Gateway,
    body: &'a str,
    stream: bool,
}

impl Upstream for Call<'_> {
    type Target = RouteTarget;
    type Output = Answer;

    async fn attempt(&self, target: &RouteTarget) -> Result<Answer, Failure> {
        let provider = &target.provider;
        if let Some(why) = &provider.missing_credential {
            return Err(Failure::new(
                FailureClass::Unauthorized,
                format!("provider `{}` has no credential: {why}", provider.name),
            ));
        }
        let timeout = provider.timeout;
        let within_time = async {
            if self.stream {
                self.open_stream(target)
                    .await
                    .map(|s| Answer::Stream(Box::new(s)))
            } else {
                self.complete(target).await
            }
        };
        match tokio::time::timeout(timeout, within_time).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                FailureClass::Timeout,
                if self.stream {
                    format!("no stream chunk within {} ms", timeout.as_millis())
                } else {
                    format!("no complete answer within {} ms", timeout.as_millis())
                },
            )),
        }
    }
}

impl Call<'_> {
    async fn complete(&self, target: &RouteTarget) -> Result<Answer, Failure> {
        let provider = &target.provider;
        let plugin = &provider.plugin;
        let mut request = plugin
            .encode(&target.plugin_target, self.body)
            .await
            .map_err(|e| call_failure(e, &provider.name, None))?;
        for _ in 0..MAX_FOLLOW_STEPS {
            let response = self
                .gateway
                .egress
                .send(provider, request, provider.timeout)
                .await?;
            let status = response.status().as_u16();
            let response = read_whole(response, provider.timeout).await?;
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
    async fn open_stream(&self, target: &RouteTarget) -> Result<OpenStream, Failure> {
        let provider = &target.provider;
        let plugin = &provider.plugin;
        let request = plugin
            .encode(&target.plugin_target, self.body)
            .await
            .map_err(|e| call_failure(e, &provider.name, None))?;
        let mut response = self
            .gateway
            .egress
            .send(provider, request, Duration::from_secs(24 * 3600))
            .await?;
        let status = response.status();
        if !status.is_success() {
            let answer = read_whole(response, provider.timeout).await?;
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
        loop {
            match response.chunk().await {
                Ok(Some(piece)) => {
                    let first = decoder
                        .feed(&piece)
                        .await
                        .map_err(|e| call_failure(e, &provider.name, None))?;
                    if !first.is_empty() {
                        return Ok(OpenStream {
                            response,
                            decoder,
                            first,
                            finished: false,
                            timeout: provider.timeout,
                        });
                    }
                }
                Ok(None) => {
                    let first = decoder
                        .finish()
                        .await
                        .map_err(|e| call_failure(e, &provider.name, None))?;
                    return Ok(OpenStream {
                        response,
                        decoder,
                        first,
                        finished: true,
                        timeout: provider.timeout,
                    });
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

fn answer(
    served: Served<Answer>,
    targets: &Arc<[RouteTarget]>,
    include_usage: bool,
    log: RequestLog,
) -> Response<Body> {
    let Some(target) = targets.get(served.target).cloned() else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "lost target",
        )
        .response();
    };
    match served.output {
        Answer::Complete { json, usage } => {
            log.emit(200, &served.attempts, Some(&target), usage, None);
            let mut response = Response::new(Body::full(json));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            served_headers(&mut response, &target, served.attempts.len());
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
            tokio::spawn(pump(*open, tx, include_usage, log, served.attempts, target));
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

/// Forwards chunks to the client; returns false once the client has gone. The chunks one
/// upstream read produced go out as one write: a frame per chunk cost a syscall per chunk.
async fn forward(
    chunks: Vec<Chunk>,
    tx: &mpsc::Sender<Bytes>,
    include_usage: bool,
    usage: &mut Option<Usage>,
    done: bool,
) -> bool {
    let mut out = Vec::new();
    for chunk in chunks {
        if let Some(u) = chunk.usage {
            *usage = Some(u);
            if !include_usage {
                continue;
            }
        }
        push_frame(&mut out, chunk.json.as_bytes());
    }
    if done {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
    out.is_empty() || tx.send(Bytes::from(out)).await.is_ok()
}

/// Carries a committed stream to the client. A failure after this point cannot fail over
/// (bytes already went out): it ends the stream with an error event and no `[DONE]`, so the
/// client never mistakes a cut answer for a complete one (invariant 6).
async fn pump(
    open: OpenStream,
    tx: mpsc::Sender<Bytes>,
    include_usage: bool,
    log: RequestLog,
    attempts: Vec<aigw_router::Attempt>,
    target: RouteTarget,
) {
    let OpenStream {
        mut response,
        mut decoder,
        first,
        mut finished,
        timeout,
    } = open;
    let mut usage = None;
    let mut pending = first;
    let failure = loop {
        // `finished` means the decoder's `finish` succeeded: only then does `[DONE]` go out.
        let sent = forward(
            std::mem::take(&mut pending),
            &tx,
            include_usage,
            &mut usage,
            finished,
        )
        .await;
        if !sent {
            log.emit(
                499,
                &attempts,
                Some(&target),
                usage,
                Some("client went away"),
            );
            return;
        }
        if finished {
            break None;
        }
        let piece = match tokio::time::timeout(timeout, response.chunk()).await {
            Err(_) => {
                break Some(Failure::new(
                    FailureClass::Timeout,
                    format!("stream stalled: no data for {} ms", timeout.as_millis()),
                ));
            }
            Ok(Err(e)) => {
                break Some(Failure::new(
                    FailureClass::Unavailable,
                    format!("upstream stream broke off: {e}"),
                ));
            }
            Ok(Ok(piece)) => piece,
        };
        let decoded = match &piece {
            Some(bytes) => decoder.feed(bytes).await,
            None => {
                finished = true;
                decoder.finish().await
            }
        };
        match decoded {
            Ok(chunks) => pending = chunks,
            Err(e) => break Some(call_failure(e, &target.provider.name, None)),
        }
    };
    match failure {
        None => {
            decoder.close().await;
            log.emit(200, &attempts, Some(&target), usage, None);
        }
        Some(failure) => {
            let message = format!("{}: {}", target.label, failure.message);
            let event = ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", message.clone())
                .code(failure.class.as_str());
            let mut out = Vec::new();
            push_frame(&mut out, &event.json());
            let _ = tx.send(Bytes::from(out)).await;
            log.emit(502, &attempts, Some(&target), usage, Some(&message));
        }
    }
}

/// The one log line each request gets.
struct RequestLog {
    model: String,
    targets: Arc<[RouteTarget]>,
    started: Instant,
    stream: bool,
}

impl RequestLog {
    fn emit(
        &self,
        status: u16,
        attempts: &[aigw_router::Attempt],
        served: Option<&RouteTarget>,
        usage: Option<Usage>,
        error: Option<&str>,
    ) {
        // The line is off below `info`: skip building its fields too.
        if !tracing::enabled!(target: "aigw::request", tracing::Level::INFO) {
            return;
        }
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let failed: Vec<String> = attempts
            .iter()
            .filter_map(|a| {
                a.failure
                    .as_ref()
                    .map(|f| format!("{} {}", label(&self.targets, a.target), f))
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
            error = error.unwrap_or(""),
            "chat completion"
        );
    }
}
