//! `GET /admin/targets`: what the failover engine knows about every target — breaker state,
//! rate-limit cooldown, whether its credential was rejected, recent latency, served and failed
//! counts, the last error (upstream text; never a credential) and the recent failures (time,
//! class, status, the start of the message), newest first.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::Body;
use crate::gateway::Gateway;
use crate::routes::Route;

/// The path this module answers.
pub(crate) const PATH: &str = "/admin/targets";
/// Its route: a read-only view.
pub(crate) const ROUTE: Route = Route::new(PATH, "GET, HEAD");

pub(crate) fn targets(gateway: &Gateway) -> Response<Body> {
    let targets: Vec<Value> = gateway
        .targets()
        .into_iter()
        .map(|(label, health, routes)| {
            let snapshot = health.snapshot();
            let failed: Map<String, Value> = snapshot
                .failed
                .iter()
                .map(|(class, count)| ((*class).to_owned(), json!(count)))
                .collect();
            let ms = |d: std::time::Duration| (d.as_secs_f64() * 1000.0).round() as u64;
            json!({
                "target": &*label,
                "routes": routes,
                "state": snapshot.state.as_str(),
                "misconfigured": snapshot.misconfigured,
                "consecutive_failures": snapshot.consecutive_failures,
                "cooldown_remaining_ms": ms(snapshot.cooling_for),
                "open_remaining_ms": ms(snapshot.open_for),
                "latency_ewma_ms": snapshot
                    .latency_ewma
                    .map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0),
                "served": snapshot.served,
                "failed": failed,
                "last_error": snapshot.last_error.as_ref().map(|(_, message)| message),
                "last_error_age_ms": snapshot.last_error.as_ref().map(|(age, _)| ms(*age)),
                "recent_errors": snapshot
                    .recent_failures
                    .iter()
                    .map(|failure| json!({
                        "at": failure.unix_time.as_secs(),
                        "age_ms": ms(failure.age),
                        "class": failure.class,
                        "status": failure.status,
                        "message": &failure.message,
                    }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    crate::service::json(
        StatusCode::OK,
        Bytes::from(json!({ "targets": targets }).to_string()),
    )
}
