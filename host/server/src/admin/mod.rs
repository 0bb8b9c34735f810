//! The operator's API under `/admin`: what the failover engine knows of every target
//! ([`targets`]), the virtual keys ([`keys`]) and their teams ([`teams`]), usage and spend
//! ([`usage`]), the loaded plugins and their hot swap ([`plugins`]), the log's level
//! ([`logging`]), the last hour's history ([`history`]), conversations browsed by namespace
//! ([`conversations`]) and the dashboard page drawing all of it ([`dashboard`]). With
//! authentication on, every path under `/admin` but the dashboard's static shell needs the admin
//! key, checked before this module is reached (`auth.rs`); each submodule declares its routes,
//! and this module dispatches to them.

mod conversations;
pub(crate) mod dashboard;
mod history;
pub(crate) mod keys;
pub(crate) mod logging;
pub(crate) mod plugins;
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
    plugins::COLLECTION,
    plugins::PLUGIN,
    plugins::ROLLBACK,
    logging::ROUTE,
    history::ROUTE,
    conversations::COLLECTION,
    conversations::ITEMS,
    conversations::NAMESPACES,
    dashboard::PAGE,
    dashboard::SCRIPT,
    dashboard::STYLE,
];

/// Whether `path` is the operator's: `/admin` or under it (routes other modules add under it
/// are covered by the same admin-key check).
pub(crate) fn owns(path: &str) -> bool {
    under(path, "/admin")
}

/// Which resource under a collection's path a request names: the collection itself, one item
/// (`/{id}`), or an item's one action (`/{id}/<action>`: a key's `rotate`, a plugin's
/// `rollback`).
pub(crate) enum Resource<'p> {
    Collection,
    Item(&'p str),
    Action(&'p str),
}

impl Resource<'_> {
    /// The path's resource under `prefix`, whose items have the one `action`; `None` for any
    /// other path (a 404 naming it).
    pub(crate) fn of<'p>(path: &'p str, prefix: &str, action: &str) -> Option<Resource<'p>> {
        let rest = path.strip_prefix(prefix)?;
        if rest.is_empty() {
            return Some(Resource::Collection);
        }
        let mut segments = rest.strip_prefix('/')?.split('/');
        let id = segments.next().filter(|id| !id.is_empty())?;
        match (segments.next(), segments.next()) {
            (None, _) => Some(Resource::Item(id)),
            (Some(a), None) if a == action => Some(Resource::Action(id)),
            _ => None,
        }
    }

    /// The route of this resource among a collection's three.
    pub(crate) fn route(
        &self,
        collection: &'static Route,
        item: &'static Route,
        action: &'static Route,
    ) -> &'static Route {
        match self {
            Resource::Collection => collection,
            Resource::Item(_) => item,
            Resource::Action(_) => action,
        }
    }
}

/// Whether `path` is `prefix` or under it.
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Answers a request whose path is under `/admin`. `directory` is the process's key directory
/// when authentication is on (a change to a key reloads it at once).
pub(crate) async fn handle<B>(
    gateway: &Gateway,
    directory: Option<&Arc<Directory>>,
    plugins: Option<&dyn plugins::PluginControl>,
    logging: Option<&dyn logging::LogControl>,
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
    if path == history::PATH {
        if let Err(refused) = dispatched(&history::ROUTE, request.method()) {
            return *refused;
        }
        return history::history(gateway);
    }
    if let Some(route) = dashboard::route(path) {
        if let Err(refused) = dispatched(route, request.method()) {
            return *refused;
        }
        return dashboard::file(path);
    }
    if conversations::owns(path) {
        return conversations::answer(gateway, request.method(), path, request.uri().query())
            .await
            .unwrap_or_else(|error| error.response());
    }
    if path == usage::PATH {
        if let Err(refused) = dispatched(&usage::ROUTE, request.method()) {
            return *refused;
        }
        return usage::usage(gateway, request.uri().query()).await;
    }
    if path == logging::PATH {
        return logging::answer(logging, body_read_timeout, request)
            .await
            .unwrap_or_else(|error| error.response());
    }
    if keys::owns(path) {
        return keys::answer(gateway, directory, body_read_timeout, request)
            .await
            .unwrap_or_else(|error| error.response());
    }
    if plugins::owns(path) {
        return plugins::answer(plugins, body_read_timeout, request)
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
