//! The route table: every path template the server answers and the methods each takes. Each
//! handler module declares its own routes as consts next to its dispatch, which answers a
//! method it does not take with `405` and these methods in `Allow`; [`routes`] lists them all,
//! so `docs/openapi.json` is checked against the same table the server dispatches from.

use http::Method;

/// One route: a path template and the methods it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path, with `{name}` standing for one path segment (`/v1/conversations/{conversation_id}`),
    /// as OpenAPI writes templates.
    pub path: &'static str,
    /// The methods, as the `Allow` header of a `405` lists them (`"GET, POST, DELETE"`). `HEAD`
    /// is answered wherever `GET` is, listed or not.
    pub allow: &'static str,
}

impl Route {
    pub(crate) const fn new(path: &'static str, allow: &'static str) -> Route {
        Route { path, allow }
    }

    /// The methods this route takes, in `Allow` order.
    pub fn methods(&self) -> impl Iterator<Item = &'static str> {
        self.allow.split(", ")
    }

    /// Whether `method` is one of them (`HEAD` counts as `GET`). No allocation: this runs on
    /// every request of the route.
    pub fn allows(&self, method: &Method) -> bool {
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        self.methods().any(|m| m == method)
    }
}

/// Every route the server answers, in dispatch order: the gateway's own (chat, models, health,
/// readiness), the operator's (`/admin`: targets, keys), the memory's (the Conversations
/// API, the key-value store), the tool service's, then MCP's.
pub fn routes() -> Vec<Route> {
    [
        crate::service::ROUTES,
        &[crate::metrics::ROUTE],
        crate::admin::ROUTES,
        crate::memory::conversations::ROUTES,
        crate::memory::entries::ROUTES,
        crate::tools::rest::ROUTES,
        &[crate::mcp::ROUTE],
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_head() {
        let route = Route::new("/x/{id}", "GET, POST, DELETE");
        assert_eq!(
            route.methods().collect::<Vec<_>>(),
            ["GET", "POST", "DELETE"]
        );
        assert!(route.allows(&Method::HEAD));
        assert!(route.allows(&Method::DELETE));
        assert!(!route.allows(&Method::PUT));
        assert!(!Route::new("/y", "POST").allows(&Method::HEAD));
    }

    #[test]
    fn every_route_is_listed_once() {
        let all = routes();
        for (i, route) in all.iter().enumerate() {
            assert!(route.path.starts_with('/'), "{route:?}");
            assert!(
                all[i + 1..].iter().all(|other| other.path != route.path),
                "{} is declared twice",
                route.path
            );
        }
    }
}
