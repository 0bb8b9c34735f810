//! One attempt of a chat completion on one target, as the failover engine asks for it
//! ([`Upstream`]): encode the request with the target's plugin, send it through the egress,
//! and decode the answer — whole, following multi-step APIs, or up to a stream's first chunk,
//! the moment the attempt commits.

use std::time::Duration;

use aigw_router::{Failure, FailureClass, Timeouts, Upstream};
use aigw_runtime::{CallError, Chunk, HttpResponse, Step, StreamDecoder, Usage};

use super::continuation::Continuation;
use crate::gateway::{Gateway, RouteTarget};

/// How many `follow` steps one answer may take (polling APIs); a plugin looping forever on
/// `follow` fails the attempt instead of holding the request.
const MAX_FOLLOW_STEPS: usize = 64;

/// What one successful attempt produced.
pub(crate) enum Answer {
    Complete { json: String, usage: Option<Usage> },
    Stream(Box<OpenStream>),
}

/// A stream that produced its first chunks: from here on it is committed to the client.
pub(crate) struct OpenStream {
    pub(crate) response: reqwest::Response,
    pub(crate) decoder: StreamDecoder,
    /// The chunks read before commitment, not yet sent.
    pub(crate) first: Vec<Chunk>,
    /// The decoder's `finish` succeeded: the stream is complete once `first` is out.
    pub(crate) finished: bool,
    /// The longest silence allowed between two upstream reads.
    pub(crate) stall: Duration,
    /// When the whole attempt must be over.
    pub(crate) deadline: tokio::time::Instant,
    pub(crate) total: Duration,
}

/// One chat completion request, tried against targets by the failover engine.
pub(crate) struct Call<'a> {
    pub(crate) gateway: &'a Gateway,
    pub(crate) body: &'a str,
    /// Set when continuing a broken stream: the body depends on the target.
    pub(crate) continuation: Option<&'a Continuation>,
    pub(crate) stream: bool,
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
pub(crate) fn call_failure(error: CallError, provider: &str, status: Option<u16>) -> Failure {
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
