//! The HTTP side of aigw. It owns the hyper 1 server, the OpenAI-compatible routes
//! (`/v1/chat/completions`, `/v1/models`, `/v1/conversations` and `/v1/store/` over the memory
//! store), the MCP server at `/mcp` (both revisions, over the gateway's tools), the route table they dispatch from ([`routes()`], which `docs/openapi.json` is checked
//! against), health and readiness, the operators' view of targets (`/admin/targets`), request and connection limits, the edge's checks (`Host`, CORS, content
//! type), errors in the OpenAI shape, server-sent event streams
//! (and continuing them when an upstream breaks), HTTPS ([`serve_tls`], with a certificate
//! reloaded when its files change), and the served state requests are answered
//! from, swappable while serving ([`Service`]). What to serve comes from a [`Gateway`] built by
//! the binary; which target serves is decided by `aigw-router`; translation happens in plugins
//! through `aigw-runtime`; every byte to an upstream leaves through `aigw-egress`.

mod accept;
mod admin;
mod auth;
mod body;
mod chat;
mod connection;
mod content_type;
mod cors;
mod error;
mod gateway;
mod hosts;
mod limits;
mod mcp;
mod memory;
mod options;
mod peer;
mod redact;
mod routes;
mod scrub;
mod service;
mod streams;
mod tls;
pub mod tools;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use auth::{Auth, Principal};
pub use body::Body;
pub use connection::ConnectionLimits;

/// How long open connections may take to finish once shutdown begins.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);
pub use error::ApiError;
pub use gateway::{
    Gateway, GatewayError, MAX_REMEMBERED_TARGETS, Provider, RouteTarget, ServedRoute,
};
pub use memory::plugins::PluginMemory;
pub use options::{
    AuthOptions, McpOptions, ProviderOptions, RedactionOptions, RouteOptions, ServerOptions,
    SessionOptions, TargetOptions, TimeoutOverrides, TlsOptions, ToolLoopOptions,
};
pub use redact::{RedactionError, Redactor};
pub use routes::{Route, routes};
pub use service::Service;
pub use tls::{Tls, TlsError, TlsFile};
pub use tools::remote::{McpServerOptions, RemoteServer};

/// Serves `service` on `listener` until `shutdown` completes, then lets open connections finish.
/// `limits` bounds how long a client may take and how many connections may be open.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, service, limits, None, shutdown).await
}

/// [`serve`] over HTTPS only: every connection begins with a TLS handshake, which counts
/// against the header-read timeout like the first request's head (a client that connects and
/// never finishes its handshake is closed at that limit). The certificate is reloaded when its
/// files change, for as long as this runs.
pub async fn serve_tls(
    listener: TcpListener,
    service: Arc<Service>,
    limits: ConnectionLimits,
    tls: &Tls,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let _reloading = tls.spawn_reloads();
    serve_with(listener, service, limits, Some(tls.acceptor()), shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    service: Arc<Service>,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper reads while it answers, so the end of a client's data is seen at once; `peer`
    // keeps it from hyper while a request is in flight, so a half-closed client still gets
    // its answer and one that left is found by probing.
    builder.http1().half_close(false);
    // The connection's watch times request heads and idle spells (hyper's would run both as one).
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    let mut slots = connection::Slots::new(limits.max_connections);
    tokio::pin!(shutdown);
    let mut failures = accept::AcceptFailures::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                failures.succeeded();
                accepted
            }
            Err(e) => {
                // Out of file descriptors and the like: keep serving the open connections, and
                // neither spin nor flood the log while the condition lasts.
                let backoff = failures.failed();
                if let Some(unsaid) = backoff.report {
                    tracing::warn!(
                        error = %e,
                        retry_in_ms = backoff.pause.as_millis() as u64,
                        failures_since_last_line = unsaid,
                        "accept failed"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        // At the cap: closed at once (see `connection`).
        let Some(slot) = slots.take() else { continue };
        let _ = stream.set_nodelay(true);
        // The peer sees the client's TCP stream (its end of data, below any TLS), the watch
        // every byte from the accept on (a handshake is part of the first head's time).
        let (stream, client) = peer::PeerIo::new(stream, peer);
        let (stream, watch) = connection::Watch::new(stream, &limits);
        let connection = Connection {
            builder: Arc::clone(&builder),
            graceful: graceful.watcher(),
            service: Arc::clone(&service),
            watch,
            client,
            peer,
        };
        match &tls {
            None => {
                tokio::spawn(async move {
                    let _slot = slot;
                    connection.run(stream).await;
                });
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                tokio::spawn(async move {
                    let _slot = slot;
                    // Biased: a finished handshake wins over a limit that ran out meanwhile.
                    let stream = tokio::select! {
                        biased;
                        done = handshake => match done {
                            Ok(stream) => stream,
                            Err(e) => {
                                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                                return;
                            }
                        },
                        expired = connection.watch.expired() => {
                            tracing::debug!(
                                %peer, ?expired, "connection closed by its time limit during the TLS handshake"
                            );
                            return;
                        }
                    };
                    connection.run(stream).await;
                });
            }
        }
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

/// One accepted connection, ready to be served once its byte stream is (after any handshake).
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    graceful: Watcher,
    service: Arc<Service>,
    watch: connection::Watch,
    client: peer::Peer,
    peer: SocketAddr,
}

impl Connection {
    /// Serves requests on `io` until the client leaves, a time limit closes it, or shutdown.
    async fn run<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            builder,
            graceful,
            service: answering,
            watch,
            client,
            peer,
        } = self;
        let requests = watch.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            let answering = Arc::clone(&answering);
            let busy = (requests.request(), client.answering());
            request.extensions_mut().insert(client.clone());
            async move {
                let response = answering.handle(request).await;
                Ok::<_, Infallible>(response.map(|body| connection::Guarded::new(body, busy)))
            }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let connection = graceful.watch(connection.into_owned());
        // Biased: polled on every wake of the connection, no random draw each time.
        tokio::select! {
            biased;
            ended = connection => if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            },
            expired = watch.expired() => {
                tracing::debug!(%peer, ?expired, "connection closed by its time limit");
            }
        }
    }
}
