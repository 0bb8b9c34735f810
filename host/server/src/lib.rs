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

// A chat request's future nests the attempt, plugin-call and tool spans' `Instrumented`
// wrappers inside hyper's: its layout goes deeper than the default limit of 128.
#![recursion_limit = "256"]

mod accept;
mod admin;
mod auth;
mod body;
mod canonical;
mod chat;
mod connection;
mod content_type;
mod cors;
mod drain;
mod error;
mod gateway;
mod hosts;
mod limits;
mod mcp;
mod memory;
mod metrics;
mod options;
mod peer;
mod redact;
mod routes;
mod scrub;
mod service;
mod streams;
mod tls;
pub mod tools;
mod trace;
mod workers;

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

pub use admin::logging::{LogChange, LogControl, LogSetting};
pub use admin::plugins::{
    Pending, PluginControl, PluginEntry, PluginError, PreviousVersion, Put,
    valid_name as valid_plugin_name,
};
pub use auth::{Auth, Principal};
pub use body::Body;
pub use chat::cache::ResponseCacheOptions;
pub use connection::ConnectionLimits;
pub use drain::Drain;
pub use error::ApiError;
pub use gateway::{
    Gateway, GatewayError, MAX_REMEMBERED_TARGETS, Provider, RouteTarget, ServedRoute,
};
pub use memory::plugins::PluginMemory;
pub use metrics::serve_metrics;
pub use options::{
    AuthOptions, McpOptions, ProviderOptions, RedactionOptions, RouteOptions, ServerOptions,
    SessionOptions, TargetOptions, TimeoutOverrides, TlsOptions, ToolLoopOptions,
};
pub use redact::{RedactionError, Redactor};
pub use routes::{Route, routes};
pub use service::Service;
pub use tls::{Tls, TlsError, TlsFile};
pub use tools::remote::{McpServerOptions, RemoteServer};
pub use workers::Workers;

/// Serves `service` on `listener` until `shutdown` completes, then drains as the [`Drain`] it
/// yields says (`drain.rs`): readiness false, the listener closed after the delay, what is in
/// flight finished or ended at the grace's deadline. `limits` bounds how long a client may take
/// and how many connections may be open; each connection is served on one of `workers`' loops.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    limits: ConnectionLimits,
    workers: &Workers,
    shutdown: impl Future<Output = Drain>,
) -> std::io::Result<()> {
    serve_with(listener, service, limits, workers, None, shutdown).await
}

/// [`serve`] over HTTPS only: every connection begins with a TLS handshake, which counts
/// against the header-read timeout like the first request's head (a client that connects and
/// never finishes its handshake is closed at that limit). The certificate is reloaded when its
/// files change, for as long as this runs.
pub async fn serve_tls(
    listener: TcpListener,
    service: Arc<Service>,
    limits: ConnectionLimits,
    workers: &Workers,
    tls: &Tls,
    shutdown: impl Future<Output = Drain>,
) -> std::io::Result<()> {
    let _reloading = tls.spawn_reloads();
    serve_with(
        listener,
        service,
        limits,
        workers,
        Some(tls.acceptor()),
        shutdown,
    )
    .await
}

async fn serve_with(
    listener: TcpListener,
    service: Arc<Service>,
    limits: ConnectionLimits,
    workers: &Workers,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = Drain>,
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
    let deadline = drain::Deadline::new();
    tokio::pin!(shutdown);
    // Until the signal, then until the drain's delay is over: the listener still accepts while
    // readiness says draining, so what a load balancer sends before it notices is served.
    let mut draining: Option<(Drain, tokio::time::Instant)> = None;
    let mut failures = accept::AcceptFailures::default();
    loop {
        let stop_accepting = async move {
            match draining {
                None => std::future::pending::<()>().await,
                Some((drain, began)) => tokio::time::sleep_until(began + drain.delay).await,
            }
        };
        let accepted = tokio::select! {
            biased;
            drain = &mut shutdown, if draining.is_none() => {
                service.begin_draining();
                tracing::info!(
                    drain_delay_ms = drain.delay.as_millis() as u64,
                    shutdown_grace_ms = drain.grace.as_millis() as u64,
                    open_connections = slots.open(),
                    "shutdown: draining (readiness is false; the listener closes after the drain delay)"
                );
                draining = Some((drain, tokio::time::Instant::now()));
                continue;
            }
            () = stop_accepting => break,
            accepted = listener.accept() => accepted,
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
                // The signal is taken at the loop's top (it may come during the pause).
                tokio::time::sleep(backoff.pause).await;
                continue;
            }
        };
        // At the cap: closed at once (see `connection`).
        let Some(slot) = slots.take() else { continue };
        let _ = stream.set_nodelay(true);
        // Served on a worker's loop: the socket leaves this runtime's reactor here and joins
        // that loop's when its task starts there.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(error = %e, %peer, "an accepted connection could not be handed over");
                continue;
            }
        };
        let accepted = Accepted {
            builder: Arc::clone(&builder),
            graceful: graceful.watcher(),
            service: Arc::clone(&service),
            limits,
            ending: deadline.watch(),
            tls: tls.clone(),
            peer,
        };
        workers.spawn(move || async move {
            let _slot = slot;
            accepted.serve(stream).await;
        });
    }
    // Only a drain leaves the loop.
    let Some((drain, began)) = draining else {
        return Ok(());
    };
    // New connections are refused from here on; hyper closes idle kept-alive connections at
    // once and each busy one after its answer.
    drop(listener);
    tracing::info!(
        open_connections = slots.open(),
        "shutdown: the listener is closed; waiting for requests and streams in flight"
    );
    let finished = graceful.shutdown();
    tokio::pin!(finished);
    if tokio::time::timeout_at(began + drain.grace, &mut finished)
        .await
        .is_ok()
    {
        tracing::info!("shutdown: every connection finished");
        return Ok(());
    }
    let open = slots.open();
    // Streams end with an error event and write their record; what still hangs on (a request
    // waiting on its upstream, a client not reading) is cut when the process exits.
    deadline.reached();
    let cut = tokio::time::timeout(DEADLINE_WRAP_UP, &mut finished)
        .await
        .is_err();
    tracing::warn!(
        open_connections = open,
        cut_connections = if cut { slots.open() } else { 0 },
        shutdown_grace_ms = drain.grace.as_millis() as u64,
        "shutdown: the grace ran out with connections still open; their streams were ended \
         with an error event"
    );
    Ok(())
}

/// How long the streams ended at the shutdown deadline have to write their error event and
/// record before the serve loop returns regardless.
const DEADLINE_WRAP_UP: std::time::Duration = std::time::Duration::from_secs(1);

/// A connection just accepted, on its way to the worker loop that serves it.
struct Accepted {
    builder: Arc<auto::Builder<TokioExecutor>>,
    graceful: Watcher,
    service: Arc<Service>,
    limits: ConnectionLimits,
    ending: drain::DeadlineWatch,
    tls: Option<TlsAcceptor>,
    peer: SocketAddr,
}

impl Accepted {
    /// On the serving loop: the socket joins its reactor, then the handshake (if any) and the
    /// requests until the connection ends.
    async fn serve(self, stream: std::net::TcpStream) {
        let Accepted {
            builder,
            graceful,
            service,
            limits,
            ending,
            tls,
            peer,
        } = self;
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(error = %e, %peer, "an accepted connection could not be served");
                return;
            }
        };
        // The peer sees the client's TCP stream (its end of data, below any TLS), the watch
        // every byte from the accept on (a handshake is part of the first head's time).
        let (stream, client) = peer::PeerIo::new(stream, peer);
        let client = client.ending_at(ending);
        let (stream, watch) = connection::Watch::new(stream, &limits);
        let connection = Connection {
            builder,
            graceful,
            service,
            watch,
            client,
            peer,
        };
        let Some(acceptor) = tls else {
            return connection.run(stream).await;
        };
        let handshake = acceptor.accept(stream);
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
    }
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
