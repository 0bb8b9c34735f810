//! `GET /admin/history`: the last hour the dashboard charts, from the process's telemetry
//! history (this process's requests only: each replica keeps its own). Buckets of
//! `bucket_seconds`, oldest first; a bucket that saw no request is left out (the chart draws it
//! as zero).

use aigw_telemetry::{HistoryBucket, history};
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::Body;
use crate::gateway::Gateway;
use crate::routes::Route;

/// The path this module answers.
pub(crate) const PATH: &str = "/admin/history";
/// Its route: a read-only view.
pub(crate) const ROUTE: Route = Route::new(PATH, "GET, HEAD");

pub(crate) fn history(gateway: &Gateway) -> Response<Body> {
    let snapshot = gateway.telemetry().history.snapshot();
    let body = json!({
        "object": "aigw.history",
        "now": snapshot.now.as_secs(),
        "bucket_seconds": snapshot.bucket.as_secs(),
        "buckets_kept": history::BUCKETS,
        "buckets": snapshot.buckets.iter().map(bucket).collect::<Vec<_>>(),
    });
    crate::service::json(StatusCode::OK, Bytes::from(body.to_string()))
}

fn bucket(bucket: &HistoryBucket) -> Value {
    // Tenths of a millisecond: enough for a chart, short on the wire.
    let ms =
        |d: Option<std::time::Duration>| d.map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0);
    let target_errors: Map<String, Value> = bucket
        .target_failures
        .iter()
        .map(|(target, count)| (target.clone(), json!(count)))
        .collect();
    json!({
        "start": bucket.start.as_secs(),
        "requests": bucket.requests,
        "server_errors": bucket.server_errors,
        "rate_limited": bucket.rate_limited,
        "client_errors": bucket.client_errors,
        "failovers": bucket.failovers,
        "latency_p50_ms": ms(bucket.latency_p50),
        "latency_p95_ms": ms(bucket.latency_p95),
        "target_errors": target_errors,
    })
}
