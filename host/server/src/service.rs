//! The service: what answers an HTTP request, socket or not. It holds the served state
//! ([`Gateway`]) behind an atomic pointer, so a new state built from a config can replace the
//! old one while requests are served: each request takes the state current when it starts and
//! finishes on it (a stream included), and target health survives the swap because both
//! states share the router's registry. [`Service::handle`] is also the in-process entry for
//! handler tests (no socket). Before any handler a request passes the edge's checks: its `Host`
//! ([`AllowedHosts`]), CORS ([`Cors`]), a JSON content type on JSON endpoints, and a time limit
//! on reading its body. Once shutdown begins ([`Service::begin_draining`]) readiness answers 503
//! and no HTTP/1 connection is kept alive after its answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Limited};

use tracing::Instrument;

use crate::admin::logging::LogControl;
use crate::admin::plugins::PluginControl;
use crate::auth::{Auth, Principal};
use crate::body::Body;
use crate::cors::Cors;
use crate::drain::Draining;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::hosts::AllowedHosts;
use crate::options::ServerOptions;
use crate::peer::Peer;
use crate::routes::Route;
use crate::streams::StreamSlots;
use crate::trace::RequestTrace;
use crate::{admin, chat, content_type, mcp, memory, tools};

const MODELS_PATH: &str = "/v1/models";
const HEALTHZ_PATH: &str = "/healthz";
const READYZ_PATH: &str = "/readyz";

/// The routes answered here or by a handler whose path is matched here (chat, admin); the
/// memory's prefixes declare their own.
pub(crate) const ROUTES: &[Route] = &[
    chat::ROUTE,
    Route::new(MODELS_PATH, "GET, HEAD"),
    Route::new(HEALTHZ_PATH, "GET, HEAD"),
    Route::new(READYZ_PATH, "GET, HEAD"),
];

/// Answers requests from the current served state.
pub struct Service {
    state: ArcSwap<Gateway>,
    edge: Edge,
}

/// What a request must pass before any handler; fixed for the process (the served state swaps,
/// the listen address does not).
struct Edge {
    hosts: AllowedHosts,
    cors: Cors,
    body_read_timeout: Duration,
    /// Open streams per client; outlives swaps, as the streams do.
    streams: Arc<StreamSlots>,
    /// Who may ask; `None`: authentication is off and every request is [`Principal::Open`].
    auth: Option<Auth>,
    /// The binary's plugin registry, which `/admin/plugins` reads and changes; `None`: no
    /// plugin can be swapped (in-process services).
    plugins: Option<Arc<dyn PluginControl>>,
    /// The binary's log filter, which `/admin/logging` reads and changes; `None`: fixed.
    logging: Option<Arc<dyn LogControl>>,
    /// On once shutdown began: readiness is false and no connection is kept alive.
    draining: Draining,
}

impl Service {
    /// A service for in-process use: any `Host`, no CORS origin, the default body-read limit.
    pub fn new(gateway: Gateway) -> Service {
        let defaults = ServerOptions::default();
        Service {
            state: ArcSwap::from_pointee(gateway),
            edge: Edge {
                hosts: AllowedHosts::Any,
                cors: Cors::default(),
                body_read_timeout: defaults.body_read_timeout,
                streams: Arc::default(),
                auth: None,
                plugins: None,
                logging: None,
                draining: Draining::default(),
            },
        }
    }

    /// A service configured by `[server]`, listening on `listening` (the bound address, whose
    /// names are the allowed hosts unless `options` lists them).
    pub fn with_options(
        gateway: Gateway,
        options: &ServerOptions,
        listening: SocketAddr,
    ) -> Service {
        Service {
            state: ArcSwap::from_pointee(gateway),
            edge: Edge {
                hosts: AllowedHosts::new(listening.ip(), options.allowed_hosts.as_deref()),
                cors: Cors::new(&options.cors_origins),
                body_read_timeout: options.body_read_timeout,
                streams: Arc::default(),
                auth: None,
                plugins: None,
                logging: None,
                draining: Draining::default(),
            },
        }
    }

    /// This service with authentication on: `/admin` needs the admin key, every client
    /// surface a virtual key (`/healthz` and `/readyz` stay open).
    pub fn with_auth(mut self, auth: Auth) -> Service {
        self.edge.auth = Some(auth);
        self
    }

    /// This service with `/admin/plugins` answered over `control` (the binary's registry,
    /// which swaps new states in through [`Service::swap`]).
    pub fn with_plugins(mut self, control: Arc<dyn PluginControl>) -> Service {
        self.edge.plugins = Some(control);
        self
    }

    /// This service with `/admin/logging` answered over `control` (the binary's subscriber).
    pub fn with_logging(mut self, control: Arc<dyn LogControl>) -> Service {
        self.edge.logging = Some(control);
        self
    }

    /// Shutdown began: `/readyz` answers 503 `draining` from now on (`/healthz` stays 200), and
    /// every answer says `Connection: close`, so clients and load balancers take their next
    /// request elsewhere. Irreversible: a draining process only ends.
    pub fn begin_draining(&self) {
        self.edge.draining.begin();
    }

    /// Whether [`Service::begin_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.edge.draining.is_on()
    }

    /// The state new requests are answered from.
    pub fn state(&self) -> Arc<Gateway> {
        self.state.load_full()
    }

    /// Replaces the served state; requests already running finish on the old one, which is
    /// returned (and freed when the last of them ends). `next` should share the current
    /// state's health registry (build it with [`Gateway::health`]) so targets keep their
    /// breakers, cooldowns and latency.
    pub fn swap(&self, next: Gateway) -> Arc<Gateway> {
        self.state.swap(Arc::new(next))
    }

    /// Answers one request.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let edge = &self.edge;
        tracing::debug!(method = %request.method(), path = request.uri().path(), "request");
        if let Err(refused) = edge.hosts.check(request.uri(), request.headers()) {
            tracing::debug!(reason = refused.message.as_str(), "request refused");
            return refused.response();
        }
        if let Some(preflight) = edge.cors.preflight(request.method(), request.headers()) {
            return preflight;
        }
        let origin = edge.cors.origin_of(request.headers());
        // HTTP/2 has no `Connection` header: its clients are told by the graceful shutdown's
        // GOAWAY instead.
        let http1 = request.version() <= Version::HTTP_11;
        let mut response = route(self.state(), edge, request).await;
        edge.cors.expose(origin.as_ref(), &mut response);
        if http1 && edge.draining.is_on() {
            // hyper then closes the connection after this answer.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// `response` to a request refused before its body was read: with a body still on the wire,
/// the connection cannot carry another request, so the client is told not to reuse it (else its
/// next request on the pooled connection meets the close).
fn closing_if_unread(mut response: Response<Body>, headers: &http::HeaderMap) -> Response<Body> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    if declared || headers.contains_key(header::TRANSFER_ENCODING) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn route<B>(gateway: Arc<Gateway>, edge: &Edge, request: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = request.uri().path();
    // HEAD is GET without the body (hyper sends the headers only), as health checkers expect.
    let method = match request.method() {
        &Method::HEAD => &Method::GET,
        method => method,
    };
    // Before any handler: with authentication off every request is answered openly (the
    // binary refuses a non-loopback listen address then).
    let principal = match &edge.auth {
        None => Principal::Open,
        Some(auth) => match auth.check(path, request.headers()) {
            Ok(principal) => principal,
            Err(refused) => return closing_if_unread(*refused, request.headers()),
        },
    };
    match (method, path) {
        (&Method::POST, chat::PATH) => {
            let session = match chat::session::requested(&principal, request.headers()) {
                Ok(session) => session,
                Err(refused) => return refused.response(),
            };
            let trace = RequestTrace::start(request.headers());
            let span = trace.span.clone();
            let options = chat::RequestOptions {
                // The attempt log names every target of the route and its health: with
                // authentication on, a key's holder is not told more than what served it.
                debug_attempts: matches!(principal, Principal::Open)
                    && request
                        .headers()
                        .get("x-aigw-debug")
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"attempts")),
                peer: request.extensions().get::<Peer>().cloned(),
                streams: Arc::clone(&edge.streams),
                session,
                principal,
                cache: chat::cache::Asked::from_headers(request.headers()),
            };
            if let Err(refused) = content_type::require_json(request.headers()) {
                return refused.response();
            }
            match read_body(&gateway, edge.body_read_timeout, request).await {
                Ok(body) => {
                    // Boxed: the chat future (~10 KB) is by far the largest of any route's; inline
                    // it would make every request's future (health checks' too) that big, and
                    // each move of it on its way into hyper's connection copies all of it.
                    let response = Box::pin(chat::handle(gateway, body, options, trace))
                        .instrument(span.clone())
                        .await;
                    // Answers refused before the request's record (a 404 model, a 429) end
                    // the span here; a record says its own status when it is reported.
                    if !span.is_disabled() && response.status() != StatusCode::OK {
                        span.record(
                            aigw_telemetry::names::HTTP_RESPONSE_STATUS_CODE,
                            i64::from(response.status().as_u16()),
                        );
                    }
                    response
                }
                Err(error) => {
                    let mut response = error.response();
                    if error.status == StatusCode::REQUEST_TIMEOUT {
                        // The rest of the body may still come: this connection is done.
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    response
                }
            }
        }
        (_, path) if tools::rest::owns(path) => {
            tools::rest::handle(gateway, &principal, edge.body_read_timeout, request).await
        }
        (_, path) if memory::entries::owns(path) => {
            memory::entries::handle(gateway, &principal, edge.body_read_timeout, request).await
        }
        (&Method::GET, MODELS_PATH) => json(StatusCode::OK, gateway.models_body(principal.key())),
        (&Method::GET, HEALTHZ_PATH) => {
            json(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
        }
        (&Method::GET, READYZ_PATH) if edge.draining.is_on() => draining(),
        (&Method::GET, READYZ_PATH) => readiness(&gateway),
        (method, crate::metrics::PATH) => {
            crate::metrics::answer(&gateway, method, request.headers())
        }
        (_, path) if admin::owns(path) => {
            let directory = edge.auth.as_ref().map(Auth::directory);
            let plugins = edge.plugins.as_deref();
            admin::handle(
                &gateway,
                directory,
                plugins,
                edge.logging.as_deref(),
                edge.body_read_timeout,
                request,
            )
            .await
        }
        (_, mcp::PATH) if gateway.mcp.enabled => {
            mcp::handle(
                Arc::clone(&gateway),
                &principal,
                (&edge.hosts, &edge.cors),
                edge.body_read_timeout,
                request,
            )
            .await
        }
        (_, path) if path.starts_with(memory::conversations::PREFIX) => {
            memory::conversations::handle(&gateway, &principal, edge.body_read_timeout, request)
                .await
        }
        // A known path with another method: 405 naming the route's methods.
        (_, other) => match ROUTES.iter().find(|route| route.path == other) {
            Some(route) => method_not_allowed(route.allow),
            None => no_route(request.method(), other).response(),
        },
    }
}

/// A path no route answers.
pub(crate) fn no_route(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no route for {method} {path}"),
    )
    .code("unknown_url")
}

pub(crate) fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The method a request of `route` is dispatched on (`HEAD` as `GET`, as everywhere), or the
/// 405 naming the route's methods when it takes none like it (boxed: the usual answer is the
/// method).
pub(crate) fn dispatched(route: &Route, method: &Method) -> Result<Method, Box<Response<Body>>> {
    if !route.allows(method) {
        return Err(Box::new(method_not_allowed(route.allow)));
    }
    Ok(match method {
        &Method::HEAD => Method::GET,
        method => method.clone(),
    })
}

pub(crate) fn method_not_allowed(allowed: &'static str) -> Response<Body> {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("method not allowed; use {allowed}"),
    )
    .code("method_not_allowed")
    .response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

/// Readiness while draining: 503 with `"status": "draining"` for health checkers, in the OpenAI
/// error envelope like every other error.
fn draining() -> Response<Body> {
    let body = serde_json::json!({
        "status": "draining",
        "error": {
            "message": "aigw is shutting down: send new requests to another instance",
            "type": "server_error",
            "param": null,
            "code": "draining",
        },
    });
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        Bytes::from(body.to_string()),
    )
}

/// Ready once every plugin is loaded and warm, which the binary ensures before it listens;
/// the body lists providers that cannot serve for want of a credential.
fn readiness(gateway: &Gateway) -> Response<Body> {
    let mut missing: Vec<&str> = gateway
        .providers
        .values()
        .filter(|p| p.missing_credential.is_some())
        .map(|p| p.name.as_str())
        .collect();
    missing.sort_unstable();
    let body = serde_json::json!({
        "status": "ready",
        "providers": gateway.providers.len(),
        "providers_without_credentials": missing,
    });
    json(StatusCode::OK, Bytes::from(body.to_string()))
}

/// The whole body, within the size limit and within `timeout` of the head (a client that
/// uploads slowly or stalls mid-body gets 408 and the connection is closed).
pub(crate) async fn read_body<B>(
    gateway: &Gateway,
    timeout: Duration,
    request: Request<B>,
) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = gateway.server.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("request body is larger than the limit of {limit} bytes"),
        )
        .code("request_too_large")
    };
    read_limited(limit, timeout, request, too_large).await
}

/// The largest refused body read and dropped before its 413 is answered (see [`read_limited`]);
/// a larger one is answered at once, and its client may see the connection reset.
const LINGER_BYTES: u64 = 16 << 20;

/// How long a refused body is read before its 413 is answered regardless.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Reads a body to its end (or its first error), dropping every frame.
async fn drain<B: http_body::Body>(body: B) {
    let mut body = std::pin::pin!(body);
    while let Some(Ok(_)) = body.frame().await {}
}

/// The whole body, at most `limit` bytes (else `too_large`'s error, answered as soon as the
/// declared length or the bytes read pass it) and within `timeout` of the head. For bodies with
/// their own cap (a plugin upload) as well as [`read_body`]'s.
pub(crate) async fn read_limited<B>(
    limit: usize,
    timeout: Duration,
    request: Request<B>,
    too_large: impl Fn() -> ApiError,
) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > limit as u64) {
        // Answering while the client is still sending, then closing with its bytes unread,
        // makes the kernel reset the connection, and the client sees a reset instead of the
        // 413: read and drop what it sends first (nginx's lingering close), within a bound.
        if len <= LINGER_BYTES {
            let _ =
                tokio::time::timeout(LINGER_TIME.min(timeout), drain(request.into_body())).await;
        }
        return Err(too_large());
    }
    let read = tokio::time::timeout(timeout, Limited::new(request.into_body(), limit).collect());
    let Ok(read) = read.await else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!(
                "the request body did not arrive within {} ms (server.body_read_timeout_ms)",
                timeout.as_millis()
            ),
        )
        .code("request_timeout"));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(
            ApiError::invalid_request(format!("could not read the request body: {e}"))
                .code("body_read_error"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use http_body::Frame;

    use super::*;

    fn refused() -> Response<Body> {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", "no").response()
    }

    #[test]
    fn a_refusal_with_a_body_on_the_wire_closes_the_connection() {
        let mut headers = http::HeaderMap::new();
        assert!(
            closing_if_unread(refused(), &headers)
                .headers()
                .get(header::CONNECTION)
                .is_none()
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(
            closing_if_unread(refused(), &headers)
                .headers()
                .get(header::CONNECTION)
                .is_none()
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        let closing = closing_if_unread(refused(), &headers);
        assert_eq!(closing.headers()[header::CONNECTION], "close");
        let mut chunked = http::HeaderMap::new();
        chunked.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let closing = closing_if_unread(refused(), &chunked);
        assert_eq!(closing.headers()[header::CONNECTION], "close");
    }

    /// A body of `frames` 1 KiB frames that counts how many were read.
    struct Counted {
        left: usize,
        read: Arc<AtomicUsize>,
    }

    impl http_body::Body for Counted {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            self.read.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![0u8; 1024])))))
        }
    }

    #[tokio::test]
    async fn a_body_refused_by_its_declared_length_is_read_before_the_answer() {
        let read = Arc::new(AtomicUsize::new(0));
        let request = Request::builder()
            .header(header::CONTENT_LENGTH, "8192")
            .body(Counted {
                left: 8,
                read: Arc::clone(&read),
            })
            .unwrap();
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "big",
            )
        };
        let error = read_limited(1024, Duration::from_secs(5), request, too_large)
            .await
            .unwrap_err();
        assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
        // Every frame the client sent was read (and dropped) before the 413.
        assert_eq!(read.load(Ordering::Relaxed), 8);
    }
}
