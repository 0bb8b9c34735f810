//! The HTTP side of aigw. It owns the hyper 1 server, the OpenAI-compatible routes
//! (`/v1/chat/completions`, `/v1/models`), health and readiness, the operators' view of targets
//! (`/admin/targets`), request limits, errors in the OpenAI shape, server-sent event streams
//! (and continuing them when an upstream breaks), and the served state requests are answered
//! from. What to serve comes from a [`Gateway`] built by the binary; which target serves is
//! decided by `aigw-router`; translation happens in plugins through `aigw-runtime`; every byte
//! to an upstream leaves through `aigw-egress`.

mod admin;
mod body;
mod chat;
mod error;
mod gateway;
mod options;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub use body::Body;

/// How long open connections may take to finish once shutdown begins.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);
pub use error::ApiError;
pub use gateway::{Gateway, GatewayError, Provider, RouteTarget, ServedRoute};
pub use options::{ProviderOptions, RouteOptions, ServerOptions, TargetOptions, TimeoutOverrides};

/// Serves `gateway` on `listener` until `shutdown` completes, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the open connections.
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = Arc::clone(&gateway);
        let service = service_fn(move |request| {
            let gateway = Arc::clone(&gateway);
            async move { Ok::<_, Infallible>(route(gateway, request, peer).await) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    // Let in-flight requests finish, but do not let a long stream hold the process forever.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {} s after shutdown began; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

async fn route(
    gateway: Arc<Gateway>,
    request: Request<Incoming>,
    _peer: SocketAddr,
) -> Response<Body> {
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::POST, "/v1/chat/completions") => {
            let options = chat::RequestOptions {
                debug_attempts: request
                    .headers()
                    .get("x-aigw-debug")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"attempts")),
            };
            match read_body(&gateway, request).await {
                Ok(body) => chat::handle(gateway, body, options).await,
                Err(error) => error.response(),
            }
        }
        (&Method::GET, "/v1/models") => json(StatusCode::OK, gateway.models_json.clone()),
        (&Method::GET, "/healthz") => {
            json(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
        }
        (&Method::GET, "/readyz") => readiness(&gateway),
        (&Method::GET, "/admin/targets") => admin::targets(&gateway),
        (_, "/v1/chat/completions") => method_not_allowed("POST"),
        (_, "/v1/models" | "/healthz" | "/readyz" | "/admin/targets") => method_not_allowed("GET"),
        (_, other) => ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no route for {} {other}", request.method()),
        )
        .code("unknown_url")
        .response(),
    }
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn method_not_allowed(allowed: &'static str) -> Response<Body> {
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

async fn read_body(gateway: &Gateway, request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = gateway.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("request body is larger than the limit of {limit} bytes"),
        )
        .code("request_too_large")
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(
            ApiError::invalid_request(format!("could not read the request body: {e}"))
                .code("body_read_error"),
        ),
    }
}
