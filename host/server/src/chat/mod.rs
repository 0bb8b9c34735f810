//! `POST /v1/chat/completions`: read the request head, walk the route with the failover engine,
//! and answer as JSON or as a server-sent event stream.
//!
//! One idea per file: [`head`] (the fields the gateway reads, the one parse), [`shape`] (what
//! that parse checks: the request's shape and size, before any plugin sees it), [`attempt`] (one
//! try on one target: encode, send, decode, up to commitment), [`relay`] (a committed stream
//! to the client, continued elsewhere when it breaks), [`continuation`] (pure functions over
//! what the client received), [`record`] (the one place a finished request is reported),
//! [`session`] (a request naming a conversation: its history sent, its turn recorded),
//! [`items`] (conversation items and chat messages, both ways), [`tool_loop`] (a request
//! naming aigw tools: the gateway runs the model's calls to them and asks again), [`merge`]
//! (that loop's steps streamed as one answer), [`toolbox`] (the loop's tools: the tool
//! service acting for the request's key) and [`cache`] (the response cache: a hit answers
//! before any target is walked; a complete answer is kept beside the response).

pub(crate) mod attempt;
pub(crate) mod cache;
mod continuation;
mod estimate;
mod head;
mod items;
mod merge;
pub(crate) mod record;
mod relay;
pub(crate) mod session;
mod shape;
mod tool_loop;
mod toolbox;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aigw_router::{Request, Strategy};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use tracing::Instrument;

use self::attempt::{Answer, Call};
use self::record::{Accounting, Asker, Finished, RequestRecord, debug_header, label};
use self::relay::StreamContext;
use crate::auth::Principal;
use crate::body::Body;
use crate::error::ApiError;
use crate::gateway::{Gateway, RouteTarget};
use crate::limits;
use crate::peer::Peer;
use crate::routes::Route;
use crate::streams::{Client, StreamSlots};
use crate::trace::RequestTrace;

/// The path this module answers.
pub(crate) const PATH: &str = "/v1/chat/completions";
/// Its route: chat completions are only ever posted.
pub(crate) const ROUTE: Route = Route::new(PATH, "POST");

/// SSE frames buffered towards a slow client before the upstream read waits.
const STREAM_BUFFER: usize = 32;

/// Options of one request that do not come from its JSON body.
#[derive(Debug, Clone)]
pub(crate) struct RequestOptions {
    /// `x-aigw-debug: attempts`: describe every attempt in a response header.
    pub debug_attempts: bool,
    /// The client connection, when the request came on a socket (not in-process).
    pub peer: Option<Peer>,
    /// Open streams per client.
    pub streams: Arc<StreamSlots>,
    /// The conversation the request continues (`x-aigw-conversation`), if it names one.
    pub session: Option<session::Requested>,
    /// Whom the request is answered for: its key's grants and limits apply.
    pub principal: Principal,
    /// What the request's headers ask of the response cache.
    pub cache: cache::Asked,
}

/// Seeds each request's weighted order and jitter differently, without a lock or a syscall.
pub(crate) fn next_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0x5DEE_CE66_D1CE_4E5B);
    COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
}

pub(crate) async fn handle(
    gateway: Arc<Gateway>,
    body: Bytes,
    options: RequestOptions,
    trace: RequestTrace,
) -> Response<Body> {
    // Every answer for a key with a rate limit carries OpenAI's rate-limit headers; an open
    // gateway's requests skip this (one match, nothing allocated).
    let Principal::Key(key) = &options.principal else {
        return answer(gateway, body, options, trace).await;
    };
    let key = Arc::clone(key);
    let mut response = answer(Arc::clone(&gateway), body, options, trace).await;
    limits::add_headers(&gateway, &key, response.headers_mut());
    response
}

async fn answer(
    gateway: Arc<Gateway>,
    mut body: Bytes,
    mut options: RequestOptions,
    trace: RequestTrace,
) -> Response<Body> {
    let started = Instant::now();
    let mut turn = None;
    let conversation = options.session.as_ref().map(|s| s.conversation.clone());
    if let Some(requested) = options.session.take() {
        // The client's own body is checked before the store is asked; the body sent on holds
        // the history too.
        if let Err(error) = head::parse(&body) {
            return error.response();
        }
        match session::open(&gateway, requested, &body).await {
            Ok((sent, opened)) => {
                body = sent;
                turn = Some(opened);
            }
            Err(error) => return error.response(),
        }
    }
    let head = match head::parse(&body) {
        Ok(head) => head,
        Err(error) => return error.response(),
    };
    trace.requested(&head.model, conversation.as_deref());
    let Some(route) = gateway.resolve(&head.model) else {
        // A key is told only of the models it may use.
        let known: Vec<&str> = gateway
            .known_models
            .iter()
            .map(String::as_str)
            .filter(|m| options.principal.key().is_none_or(|k| k.may_use_model(m)))
            .collect();
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "the model `{}` does not exist; known models: {}",
                head.model,
                known.join(", ")
            ),
        )
        .param("model")
        .code("model_not_found")
        .response();
    };
    if let Some(key) = options.principal.key()
        && !key.may_use_model(&head.model)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            format!(
                "aigw key limit: this key may not use the model `{}`",
                head.model
            ),
        )
        .param("model")
        .code("model_not_allowed")
        .response();
    }
    // A request naming aigw tools (or for a route that offers some) runs the tool loop; its
    // tools are checked now, before any upstream is asked. Others pay one flag check (set by
    // the shape pass) and, with routes offering tools, one map lookup.
    let route_tools = match gateway.route_tools.is_empty() {
        true => None,
        false => gateway.route_tools.get(&*head.model),
    };
    let tooled = match (head.aigw_tools, route_tools) {
        (false, None) => None,
        (_, route_tools) => {
            let tools = toolbox::ChatTools::new(&gateway, &options.principal);
            let route_tools = route_tools.map_or(&[][..], Vec::as_slice);
            match tool_loop::prepare(head.text, &tools, route_tools) {
                Ok(prepared) => Some((prepared, tools)),
                Err(error) => return error.response(),
            }
        }
    };
    // The key's limits, before any target is tried; the ticket is charged when the request is
    // reported (its record), and frees its concurrency slot however the request ends.
    let ticket = match options.principal.key() {
        Some(key) => match limits::admit(&gateway, key).await {
            Ok(ticket) => ticket,
            Err(refused) => return refused.response(),
        },
        None => None,
    };
    // A stream holds its client's slot from here until it ends, however it ends.
    let slot = match (&options.peer, head.stream) {
        (Some(peer), true) => {
            let max = gateway.server.max_streams_per_client;
            let client = match options.principal.key() {
                Some(key) => Client::Key(key.id.clone()),
                None => Client::Address(peer.addr.ip()),
            };
            match options.streams.take(client, max) {
                Some(slot) => Some(slot),
                None => {
                    return ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        format!(
                            "this client already has {max} streams open \
                             (server.max_streams_per_client); retry when one ends"
                        ),
                    )
                    .code("too_many_streams")
                    .response();
                }
            }
        }
        _ => None,
    };
    let mut record = RequestRecord::new(
        head.model.to_string(),
        Arc::clone(&route),
        started,
        head.stream,
        Accounting::new(
            Arc::clone(&gateway.prices),
            gateway.usage.clone(),
            Arc::clone(&gateway.telemetry),
            options.principal.key().map(|key| key.id.as_str()),
        ),
    );
    if let Some(ticket) = ticket {
        record.charge_to(ticket);
    }
    record.traced(
        trace,
        Asker {
            key: options.principal.key().cloned(),
            conversation,
        },
    );
    // The response cache, for routes with a TTL: a request running aigw tools or naming a
    // conversation is never answered from it nor kept in it. Other routes pay one map lookup.
    let plan = cache::Plan::new(
        &gateway.response_cache,
        gateway.memory.as_ref(),
        &head.model,
        head.text,
        options.principal.key().map(|key| key.id.as_str()),
        &options.cache,
        tooled.is_some() || turn.is_some(),
    );
    if let Some((prepared, tools)) = tooled {
        let tool_loop = tool_loop::Loop {
            gateway: Arc::clone(&gateway),
            route,
            tools: Arc::new(tools),
            prepared,
            stream: head.stream,
            include_usage: head.include_usage,
            debug_attempts: options.debug_attempts,
            record,
            turn,
            peer: options.peer.clone(),
            _slot: slot,
        };
        // Boxed: the loop's future is the largest this function awaits (~7 KB); held inline it
        // would grow every request's future by that much, and that future is moved several
        // times on its way into hyper's connection (each move copies all of it).
        let mut response = Box::pin(tool_loop.answer()).await;
        if let Some(value) = plan.header() {
            response.headers_mut().insert(cache::CACHE_HEADER, value);
        }
        return response;
    }
    // A hit is the whole answer: no target is walked (the key's admission above still
    // counted the request).
    if let Some(hit) = plan.lookup().await {
        return cached(hit, head.stream, head.include_usage, record);
    }
    record.cache(plan.status());
    let call = Call {
        gateway: &gateway,
        body: head.text,
        continuation: None,
        stream: head.stream,
        trace: record.trace(),
    };
    let costs = match route.policy.strategy {
        Strategy::Cost => estimate::costs(&route, &gateway.prices, head.text),
        Strategy::Weighted | Strategy::Latency => Vec::new(),
    };
    let request = Request {
        stream: head.stream,
        seed: next_seed(),
        exclude: Vec::new(),
        costs,
    };
    let include_usage = head.include_usage;
    let outcome = aigw_router::serve(&call, &route, &request).await;
    let served = match outcome {
        Ok(served) => served,
        Err(exhausted) => {
            record.walked(&exhausted.attempts);
            let error = ApiError::exhausted(&exhausted, record.model(), |i| label(&route, i));
            let mut response = error.response();
            let headers = response.headers_mut();
            headers.insert(
                "x-aigw-attempts",
                HeaderValue::from(exhausted.attempts.len()),
            );
            if options.debug_attempts {
                debug_header(headers, &route, &exhausted.attempts, &exhausted.skipped);
            }
            if let Some(value) = plan.header() {
                headers.insert(cache::CACHE_HEADER, value);
            }
            record.finish(Finished {
                status: error.status.as_u16(),
                attempts: &exhausted.attempts,
                skipped: &exhausted.skipped,
                served: None,
                usage: None,
                broken: &[],
                error: Some(&error.message),
                answer: None,
            });
            return response;
        }
    };
    record.walked(&served.attempts);
    let Some(entry) = route.entries.get(served.target) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the engine named a target outside the route",
        )
        .response();
    };
    let target = &entry.target;
    let (output, commitment) = served.commit(&request);
    let head = |response: &mut Response<Body>, content_type: &'static str| {
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        served_headers(headers, target, commitment.attempts.len());
        if options.debug_attempts {
            debug_header(headers, &route, &commitment.attempts, &commitment.skipped);
        }
        if let Some(value) = plan.header() {
            headers.insert(cache::CACHE_HEADER, value);
        }
    };
    match output {
        Answer::Complete { json, usage } => {
            // A session's turn is recorded before the answer goes out: a follow-up request
            // the client sends after reading it sees the turn.
            if let Some(turn) = turn
                && let Err(error) = turn.record_completion(&gateway, json.as_bytes()).await
            {
                record.finish(Finished {
                    status: error.status.as_u16(),
                    attempts: &commitment.attempts,
                    skipped: &commitment.skipped,
                    served: Some(target),
                    usage,
                    broken: &[],
                    error: Some(&error.message),
                    answer: None,
                });
                return error.response();
            }
            record.finish(Finished {
                status: 200,
                attempts: &commitment.attempts,
                skipped: &commitment.skipped,
                served: Some(target),
                usage,
                broken: &[],
                error: None,
                answer: Some(&json),
            });
            let json = Bytes::from(json);
            if let Some(keep) = plan.keep() {
                keep.answer(json.clone());
            }
            let mut response = Response::new(Body::full(json));
            head(&mut response, "application/json");
            response
        }
        Answer::Stream(open) => {
            let context = StreamContext {
                gateway: Arc::clone(&gateway),
                route: Arc::clone(&route),
                body: body.clone(),
                include_usage,
                record,
                peer: options.peer.clone(),
                turn,
                slot,
                cache: plan.keep(),
            };
            let mut response = Response::new(Body::Full(None));
            head(&mut response, "text/event-stream");
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // The relay owns the rest of the request, in its span, run as the body is read.
            let span = context.record.trace().span.clone();
            *response.body_mut() = Body::stream(STREAM_BUFFER, |tx| {
                relay::pump(*open, commitment, tx, context).instrument(span)
            });
            response
        }
    }
}

/// A request answered from the response cache: the kept answer as it was, or replayed as a
/// stream. It consumed no tokens: the record charges nothing and reports the hit.
fn cached(
    hit: cache::Hit,
    stream: bool,
    include_usage: bool,
    mut record: RequestRecord,
) -> Response<Body> {
    let (body, content_type) = match stream {
        true => (
            Bytes::from(cache::replay(&hit.answer, include_usage)),
            "text/event-stream",
        ),
        false => (hit.json, "application/json"),
    };
    let mut response = Response::new(Body::full(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if stream {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    headers.insert(cache::CACHE_HEADER, HeaderValue::from_static("hit"));
    headers.insert("x-aigw-attempts", HeaderValue::from(0));
    record.cache(Some("hit"));
    record.finish(Finished {
        status: 200,
        attempts: &[],
        skipped: &[],
        served: None,
        usage: None,
        broken: &[],
        error: None,
        answer: None,
    });
    response
}

/// The headers naming what served: the provider, the target, and how many attempts it took.
fn served_headers(headers: &mut http::HeaderMap, target: &RouteTarget, attempts: usize) {
    if let Ok(v) = HeaderValue::from_str(&target.provider.name) {
        headers.insert("x-aigw-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&target.label) {
        headers.insert("x-aigw-target", v);
    }
    headers.insert("x-aigw-attempts", HeaderValue::from(attempts));
}
