//! The operator's API under `/admin`: what the failover engine knows of every target
//! ([`targets`]), the virtual keys ([`keys`]) and their teams ([`teams`]), usage and spend
//! ([`usage`]). With authentication on, every path under
//! `/admin` needs the admin key, checked before this module is reached (`auth.rs`); each
//! submodule declares its routes, and this module dispatches to them.

pub(crate) mod keys;
mod targets;
mod teams;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use aigw_access::Directory;
use bytes::Bytes;
use http::{Method, Request, Response};

use crate::Body;
use crate::gateway::Gateway;
use crate::routes::Route;
use crate::service::{dispatched, no_route};

/// Every route under `/admin`.
pub(crate) const ROUTES: &[Route] = &[
    targets::ROUTE,
    keys::COLLECTION,
    keys::KEY,
    keys::ROTATE,
    teams::COLLECTION,
    teams::TEAM,
    usage::ROUTE,
];

/// Whether `path` is the operator's: `/admin` or under it (routes other modules add under it
/// are covered by the same admin-key check).
pub(crate) fn owns(path: &str) -> bool {
    path.strip_prefix("/admin")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Answers a request whose path is under `/admin`. `directory` is the process's key directory
/// when authentication is on (a change to a key reloads it at once).
pub(crate) async fn handle<B>(
    gateway: &Gateway,
    directory: Option<&Arc<Directory>>,
    body_read_timeout: Duration,
    request: Request<B>,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = request.uri().path();
    if path == targets::PATH {
        if let Err(refused) = dispatched(&targets::ROUTE, request.method()) {
            return *refused;
        }
        return targets::targets(gateway);
    }
    if path == usage::PATH {
        if let Err(refused) = dispatched(&usage::ROUTE, request.method()) {
            return *refused;
        }
        return usage::usage(gateway, request.uri().query()).await;
    }
    if keys::owns(path) {
        return keys::answer(gateway, directory, body_read_timeout, request)
            .await
            .unwrap_or_else(|error| error.response());
    }
    if teams::owns(path) {
        return teams::answer(gateway, directory, body_read_timeout, request)
            .await
            .unwrap_or_else(|error| error.response());
    }
    let method: &Method = request.method();
    no_route(method, path).response()
}
