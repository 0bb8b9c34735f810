//! One attempt of a chat completion on one target, as the failover engine asks for it
//! ([`Upstream`]): encode the request with the target's plugin, send it through the egress,
//! and decode the answer — whole, following multi-step APIs (polls, at the plugin's pace, up to
//! the attempt's deadline), or up to a stream's first chunk, the moment the attempt commits (a
//! stream may continue in another request's body: the decoder's stream-side follow).

use std::time::Duration;

use aigw_egress::{EgressError, ErrorKind, SendOptions};
use aigw_router::{Failure, FailureClass, Timeouts, Upstream};
use aigw_runtime::{
    CallError, Chunk, FaultKind, Follow, HttpRequest, HttpResponse, ResponseHead, Step,
    StreamDecoder, StreamEnd, Usage,
};
use tokio::time::Instant;
use tracing::Instrument;

use super::continuation::Continuation;
use crate::gateway::{Gateway, RouteTarget};
use crate::trace::{self, RequestTrace};

/// How many `follow` steps one answer may take. The attempt's deadline is the real bound on a
/// polled answer (a plugin asks for a pause between polls); this stops a plugin that follows
/// without pausing from spinning until then.
const MAX_FOLLOW_STEPS: usize = 1000;

/// The HTTP client's bound on a streamed exchange: the stream's own limits (first chunk,
/// stall, total) are enforced while it is read, so this only has to be longer than any.
const STREAM_EXCHANGE: Duration = Duration::from_secs(24 * 3600);

/// What one successful attempt produced.
pub(crate) enum Answer {
    Complete { json: String, usage: Option<Usage> },
    Stream(Box<OpenStream>),
}

/// A stream that produced its first chunks: from here on it is committed to the client.
pub(crate) struct OpenStream {
    pub(crate) body: aigw_egress::Body,
    pub(crate) decoder: StreamDecoder,
    /// The chunks read before commitment, not yet sent.
    pub(crate) first: Vec<Chunk>,
    /// The decoder's `finish` said done: the stream is complete once `first` is out.
    pub(crate) finished: bool,
    /// Follow requests sent so far (a stream continued in another request's body).
    pub(crate) follows: usize,
    /// The target's limits: `stall` between reads, `total` for the whole attempt.
    pub(crate) timeouts: Timeouts,
    /// When the whole attempt must be over.
    pub(crate) deadline: Instant,
    /// The trace context its follow requests carry (its attempt's).
    pub(crate) trace_context: Vec<(String, String)>,
}

/// One chat completion request, tried against targets by the failover engine.
pub(crate) struct Call<'a> {
    pub(crate) gateway: &'a Gateway,
    pub(crate) body: &'a str,
    /// Set when continuing a broken stream: the body depends on the target.
    pub(crate) continuation: Option<&'a Continuation>,
    pub(crate) stream: bool,
    /// The request's trace: each attempt's span is its child.
    pub(crate) trace: &'a RequestTrace,
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
            Some(c) => c.body_for(target.prefill),
            None => self.body,
        };
        let span = self.trace.attempt(target);
        let answer = async {
            let context = self.trace.upstream_context();
            if self.stream {
                self.open_stream(target, body, timeouts, context)
                    .await
                    .map(|s| Answer::Stream(Box::new(s)))
            } else {
                self.complete(target, body, timeouts, &context).await
            }
        }
        .instrument(span.span.clone())
        .await
        .map_err(|failure| scrubbed(self.gateway, failure));
        span.settle(answer.as_ref().err());
        answer
    }
}

impl Call<'_> {
    async fn complete(
        &self,
        target: &RouteTarget,
        body: &str,
        timeouts: &Timeouts,
        context: &[(String, String)],
    ) -> Result<Answer, Failure> {
        let deadline = Instant::now() + timeouts.total;
        let provider = &target.provider;
        let plugin = &provider.plugin;
        let mut request = plugin
            .encode(&target.plugin_target, body)
            .await
            .map_err(|e| encode_failure(e, &provider.name))?;
        let mut follows = 0;
        loop {
            let whole = deadline.saturating_duration_since(Instant::now());
            let response = send(self.gateway, target, request, timeouts, whole, context).await?;
            let status = response.status;
            let response = read_whole(self.gateway, response).await?;
            match plugin.decode(&target.plugin_target, response).await {
                Ok(Step::Done(completion)) => {
                    return Ok(Answer::Complete {
                        json: completion.json,
                        usage: completion.usage,
                    });
                }
                Ok(Step::Follow(next)) => {
                    follows += 1;
                    request = pause_for(next, follows, target, timeouts, deadline).await?;
                }
                Err(e) => return Err(call_failure(e, &provider.name, Some(status))),
            }
        }
    }

    /// Sends a streamed request and reads until the first chunk: until then, any failure
    /// lets the engine fail over without the client seeing a byte.
    async fn open_stream(
        &self,
        target: &RouteTarget,
        body: &str,
        timeouts: &Timeouts,
        context: Vec<(String, String)>,
    ) -> Result<OpenStream, Failure> {
        let deadline = Instant::now() + timeouts.total;
        let provider = &target.provider;
        let plugin = &provider.plugin;
        let request = plugin
            .encode(&target.plugin_target, body)
            .await
            .map_err(|e| encode_failure(e, &provider.name))?;
        // The stream's own limits (stall, total) are enforced while reading it.
        let response = send(
            self.gateway,
            target,
            request,
            timeouts,
            STREAM_EXCHANGE,
            &context,
        )
        .await?;
        let head = ResponseHead {
            status: response.status,
            headers: response.headers.to_pairs(),
        };
        let mut body = streamed_body(self.gateway, target, response).await?;
        let mut decoder = plugin
            .stream_decoder(&target.plugin_target, head)
            .await
            .map_err(|e| call_failure(e, &provider.name, None))?;
        let mut follows = 0;
        // Read until the decoder yields chunks (the commitment) or says the stream is done.
        let (first, finished) = loop {
            match body.chunk().await {
                Ok(Some(piece)) => {
                    let chunks = decoder
                        .feed(&piece)
                        .await
                        .map_err(|e| call_failure(e, &provider.name, None))?;
                    if !chunks.is_empty() {
                        break (chunks, false);
                    }
                }
                Ok(None) => match decoder.finish().await {
                    Ok(StreamEnd::Done(last)) => break (last, true),
                    Ok(StreamEnd::Follow(next)) => {
                        follows += 1;
                        let stream = (follows, deadline, &context[..]);
                        body = follow_stream(self.gateway, target, next, timeouts, stream).await?;
                    }
                    Err(e) => return Err(call_failure(e, &provider.name, None)),
                },
                Err(e) => {
                    return Err(Failure::new(
                        FailureClass::Unavailable,
                        format!("before the stream's first chunk: {e}"),
                    ));
                }
            }
        };
        Ok(OpenStream {
            body,
            decoder,
            first,
            finished,
            follows,
            timeouts: *timeouts,
            deadline,
            trace_context: context,
        })
    }
}

/// Sends a request through the egress (the provider's grants and credential) and waits for the
/// response headers, within `first_byte`; `whole` bounds the exchange, body included.
async fn send(
    gateway: &Gateway,
    target: &RouteTarget,
    request: HttpRequest,
    timeouts: &Timeouts,
    whole: Duration,
    trace_context: &[(String, String)],
) -> Result<aigw_egress::Response, Failure> {
    let provider = &target.provider;
    let mut headers = request.headers;
    trace::propagate(&mut headers, trace_context);
    let request = aigw_egress::Request {
        method: request.method,
        url: request.url,
        headers,
        body: request.body,
    };
    let options = SendOptions {
        grants: &provider.grants,
        credential: provider.credential.as_ref(),
        connect_timeout: timeouts.connect,
        timeout: whole,
    };
    match tokio::time::timeout(timeouts.first_byte, gateway.egress.send(request, options)).await {
        Ok(result) => result.map_err(|error| send_failure(error, target)),
        Err(_) => Err(Failure::new(
            FailureClass::Timeout,
            format!(
                "no response within {} ms (first byte)",
                timeouts.first_byte.as_millis()
            ),
        )),
    }
}

/// Waits the pause a plugin asked for before following with another request (a poll), unless
/// it would end past the attempt's deadline or the plugin has followed too often.
async fn pause_for(
    follow: Follow,
    follows: usize,
    target: &RouteTarget,
    timeouts: &Timeouts,
    deadline: Instant,
) -> Result<HttpRequest, Failure> {
    if follows > MAX_FOLLOW_STEPS {
        return Err(Failure::new(
            FailureClass::BadResponse,
            format!(
                "plugin `{}` did not finish within {MAX_FOLLOW_STEPS} follow steps",
                target.provider.name
            ),
        ));
    }
    let at = Instant::now() + follow.after;
    if at >= deadline {
        return Err(Failure::new(
            FailureClass::Timeout,
            format!(
                "no complete answer within {} ms ({follows} follow steps; the upstream was still \
                 working)",
                timeouts.total.as_millis()
            ),
        ));
    }
    tokio::time::sleep_until(at).await;
    Ok(follow.request)
}

/// Sends the request a stream decoder asked to follow (its body continues the stream), after
/// the decoder's pause; a non-2xx answer is classified by the plugin's `decode`. `stream` is
/// where the stream stands: follows so far, its deadline, its attempt's trace context.
pub(crate) async fn follow_stream(
    gateway: &Gateway,
    target: &RouteTarget,
    follow: Follow,
    timeouts: &Timeouts,
    (follows, deadline, trace_context): (usize, Instant, &[(String, String)]),
) -> Result<aigw_egress::Body, Failure> {
    let request = pause_for(follow, follows, target, timeouts, deadline).await?;
    let response = send(
        gateway,
        target,
        request,
        timeouts,
        STREAM_EXCHANGE,
        trace_context,
    )
    .await?;
    streamed_body(gateway, target, response).await
}

/// The body of a 2xx answer to a streamed request; any other answer is read whole and given to
/// the plugin's `decode` to classify.
async fn streamed_body(
    gateway: &Gateway,
    target: &RouteTarget,
    response: aigw_egress::Response,
) -> Result<aigw_egress::Body, Failure> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(response.body);
    }
    let provider = &target.provider;
    // Bounded by the engine's first-byte limit around the whole attempt.
    let answer = read_whole(gateway, response).await?;
    Err(
        match provider.plugin.decode(&target.plugin_target, answer).await {
            Err(e) => call_failure(e, &provider.name, Some(status)),
            Ok(_) => Failure::new(
                FailureClass::BadResponse,
                format!("upstream answered {status} to a streamed request"),
            )
            .with_status(status),
        },
    )
}

/// Reads a whole answer for the plugin to decode, at most `[server] max_upstream_body_bytes`
/// of it: a larger answer is the upstream's failure (a bad response), not the process's memory.
async fn read_whole(
    gateway: &Gateway,
    response: aigw_egress::Response,
) -> Result<HttpResponse, Failure> {
    let headers = response.headers.to_pairs();
    let limit = gateway.server.max_upstream_body_bytes;
    let body = response
        .body
        .collect(limit)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Timeout => Failure::new(FailureClass::Timeout, e.message()),
            ErrorKind::TooLarge => Failure::new(
                FailureClass::BadResponse,
                format!("upstream {} (server.max_upstream_body_bytes)", e.message()),
            ),
            // The connection broke mid-answer: a transport failure (502), whatever the status.
            _ => Failure::new(FailureClass::Connect, e.message()),
        })?;
    Ok(HttpResponse {
        status: response.status,
        headers,
        body,
    })
}

/// Classifies an egress error on send (never an upstream answer). The failure names the kind of
/// transport failure only: it reaches the client, `/admin/targets` and the request's log line.
/// What only an operator may see (the upstream's URL) goes to a log line of its own.
fn send_failure(error: EgressError, target: &RouteTarget) -> Failure {
    let class = match error.kind() {
        ErrorKind::Timeout => FailureClass::Timeout,
        ErrorKind::Connect | ErrorKind::BodyBroken | ErrorKind::Setup => FailureClass::Connect,
        // Only bodies have a size limit; a send never answers this.
        ErrorKind::TooLarge => FailureClass::BadResponse,
        // The plugin built a request the host will not send: a malformed one, or one to an
        // origin the provider was not granted.
        ErrorKind::InvalidRequest | ErrorKind::Denied => FailureClass::PluginFault,
    };
    if error.detail() != error.message() {
        tracing::warn!(
            target = %target.label,
            detail = error.detail(),
            "upstream transport failure"
        );
    }
    Failure::new(class, error.message())
}

/// The failure with every credential the host knows masked in its upstream text: it is about to
/// be relayed to the client, kept as the target's last error and logged.
pub(crate) fn scrubbed(gateway: &Gateway, mut failure: Failure) -> Failure {
    if let std::borrow::Cow::Owned(clean) = gateway.scrubber.scrub(&failure.message) {
        failure.message = clean;
    }
    failure
}

/// Maps an `encode` error. A fault while encoding (a trap, the deadline, the memory cap)
/// happened on the client's body alone, before anything reached the upstream: it is the
/// request's failure, answered at once and never counted against the target, so that a few
/// hostile bodies cannot open a healthy target's breaker for every client of its routes. A
/// failure the plugin classified is mapped as for any call.
pub(crate) fn encode_failure(error: CallError, provider: &str) -> Failure {
    match error {
        CallError::Fault(fault) => match fault.kind {
            FaultKind::Trap | FaultKind::Deadline | FaultKind::MemoryLimit => Failure::new(
                FailureClass::RequestFault,
                format!(
                    "plugin of provider `{provider}` failed on this request ({}): {}",
                    fault.kind.as_str(),
                    fault.message
                ),
            ),
            // The gateway's own limits: mapped as for any call.
            FaultKind::Capacity | FaultKind::Lost => {
                call_failure(CallError::Fault(fault), provider, None)
            }
        },
        failure @ CallError::Failure(_) => call_failure(failure, provider, None),
    }
}

/// Maps a plugin call error onto the engine's failure classes. A fault on an upstream answer
/// (`decode`, the stream decoder) is the target's; `encode`'s go through [`encode_failure`].
pub(crate) fn call_failure(error: CallError, provider: &str, status: Option<u16>) -> Failure {
    use aigw_runtime::Failure as Plugin;
    let failure = match error {
        // The gateway's own limits (no instance slot left, a shared decoder instance lost to
        // another stream): neither the target's failure nor the request's.
        CallError::Fault(fault) if fault.kind.is_gateways() => {
            return Failure::new(
                FailureClass::Overloaded,
                format!(
                    "gateway overloaded ({}): {}",
                    fault.kind.as_str(),
                    fault.message
                ),
            );
        }
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
        Plugin::NoCredit(_) => (FailureClass::NoCredit, None),
        Plugin::BadResponse(_) => (FailureClass::BadResponse, None),
    };
    let mut out = Failure::new(class, failure.message()).with_retry_after(retry_after);
    out.status = status;
    out
}
