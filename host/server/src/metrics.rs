//! `GET /metrics`: the process's metrics for a Prometheus scraper. On the main listener it needs
//! the admin key (the auth check treats it as an `/admin` path; open when authentication is
//! off, which means loopback only); [`serve_metrics`] serves it alone, without credentials, on
//! the separate `[metrics] listen` address. The counters come from the telemetry every request
//! record feeds; what describes the current state is read here, at scrape time: breakers and
//! cooldowns from the router's health registry, each loaded plugin's call counters and warm
//! pool from the runtime, the store's counters and file size.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use aigw_runtime::{CALL_DURATION_BOUNDS_US, CallStats};
use aigw_telemetry::{Durations, Format, MemoryState, PluginState, Scrape, TargetState};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::body::Body;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::routes::Route;
use crate::service::Service;

/// The path this module answers.
pub(crate) const PATH: &str = "/metrics";
/// Its route: a read-only view.
pub(crate) const ROUTE: Route = Route::new(PATH, "GET, HEAD");

/// Answers `GET /metrics` from `gateway`'s telemetry, in the format `headers` ask for
/// (OpenMetrics when `Accept` names it, else Prometheus text 0.0.4).
pub(crate) fn answer(
    gateway: &Gateway,
    method: &Method,
    headers: &http::HeaderMap,
) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return crate::service::method_not_allowed(ROUTE.allow);
    }
    let metrics = &gateway.telemetry().metrics;
    if !metrics.enabled() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "metrics are off ([metrics] enabled = false)",
        )
        .code("metrics_disabled")
        .response();
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let body = metrics.encode(scrape(gateway), format);
    let mut response = Response::new(Body::full(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// What the current state says now.
fn scrape(gateway: &Gateway) -> Scrape {
    let targets = gateway
        .health()
        .all()
        .into_iter()
        .map(|(target, health)| {
            let snapshot = health.snapshot();
            TargetState {
                target,
                state: snapshot.state.as_str(),
                out_for: snapshot.cooling_for.max(snapshot.open_for),
                failures: snapshot.failed,
            }
        })
        .collect();
    // A plugin may back several providers: each is written once, under its own name.
    let mut seen = HashSet::new();
    let mut plugins = Vec::new();
    let mut providers: Vec<_> = gateway.providers.values().collect();
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    for provider in providers {
        let plugin = &provider.plugin;
        let name = plugin.descriptor().name.clone();
        if seen.insert(name.clone()) {
            plugins.push(plugin_state(
                name,
                plugin.call_stats(),
                plugin.warm_instances(),
            ));
        }
    }
    for tools in gateway.tools.plugins() {
        let plugin = &tools.plugin;
        let name = plugin.name().to_owned();
        if seen.insert(name.clone()) {
            plugins.push(plugin_state(
                name,
                plugin.call_stats(),
                plugin.warm_instances(),
            ));
        }
    }
    let memory = gateway.memory.as_ref().map(|store| {
        let stats = store.stats();
        let bounds = aigw_memory::OPERATION_DURATION_BOUNDS_US;
        MemoryState {
            reads: stats.reads,
            writes: stats.writes,
            read_duration: durations(&bounds, &stats.read_buckets, stats.read_time),
            write_duration: durations(&bounds, &stats.write_buckets, stats.write_time),
            database_bytes: store.database_bytes(),
        }
    });
    Scrape {
        targets,
        plugins,
        memory,
    }
}

fn plugin_state(plugin: String, stats: CallStats, warm: usize) -> PluginState {
    PluginState {
        plugin,
        calls: stats.calls,
        duration: durations(
            &CALL_DURATION_BOUNDS_US,
            &stats.duration_buckets,
            stats.duration_total,
        ),
        faults: stats.faults,
        pool_size: warm as u64,
    }
}

/// Bucket counts over bounds in microseconds (one more count than bounds: past the last) as
/// the exposition's seconds.
fn durations(bounds_us: &[u64], counts: &[u64], total: std::time::Duration) -> Durations {
    Durations {
        buckets: bounds_us
            .iter()
            .zip(counts)
            .map(|(bound, count)| (*bound as f64 / 1e6, *count))
            .collect(),
        sum_seconds: total.as_secs_f64(),
        count: counts.iter().sum(),
    }
}

/// How long the metrics listener waits for a request head.
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `/metrics` alone on `listener`, without credentials, from `service`'s current state,
/// until `shutdown` completes: for a scraper on a private network (`[metrics] listen`). Every
/// other path is a 404.
pub async fn serve_metrics(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            // A failed accept (a reset before it, no descriptors left) is the client's or
            // the moment's; the listener goes on.
            Err(error) => {
                tracing::debug!(%error, "metrics listener: accept failed");
                continue;
            }
        };
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let answer = service_fn(move |request: Request<Incoming>| {
                let service = Arc::clone(&service);
                async move {
                    let response = if request.uri().path() == PATH {
                        answer(&service.state(), request.method(), request.headers())
                    } else {
                        crate::service::no_route(request.method(), request.uri().path()).response()
                    };
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // A client that never finishes its request head does not hold a task forever.
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT);
            let _ = builder.serve_connection(TokioIo::new(stream), answer).await;
        });
    }
}
