//! Who is asking: the [`Principal`] every request is answered for, found from the credential it
//! presents. With authentication off (no admin key configured) every request is
//! [`Principal::Open`] — the loopback-only gateway of before; with it on ([`Auth`]), `/healthz`
//! and `/readyz` stay open for health checkers, and the dashboard's static shell (which holds
//! no data and asks for the admin key itself) for browsers; every other `/admin` path needs the
//! admin key, and
//! every other path a virtual key the [`Directory`] knows. The check runs before any handler,
//! reads only memory (the directory), and a refusal never shows the presented secret (at most
//! its hint, as OpenAI's "Incorrect API key provided: sk-…abcd" does).

use std::sync::Arc;

use aigw_access::{Directory, Key, SecretHash};
use aigw_egress::Secret;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::body::Body;
use crate::error::ApiError;

/// Paths answered without a credential: what load balancers and orchestrators probe.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];
/// Every path under it is the operator's and needs the admin key.
const ADMIN_PREFIX: &str = "/admin";

/// Whom a request is answered for.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Authentication is off: everything is allowed, nothing is limited.
    Open,
    /// A client holding a valid virtual key.
    Key(Arc<Key>),
    /// The operator, holding the admin key.
    Admin,
}

impl Principal {
    /// The key, when the request presented one.
    pub fn key(&self) -> Option<&Arc<Key>> {
        match self {
            Principal::Key(key) => Some(key),
            Principal::Open | Principal::Admin => None,
        }
    }
}

/// Authentication on: the admin key (kept only as its hash) and the directory of virtual keys.
pub struct Auth {
    admin: SecretHash,
    directory: Arc<Directory>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.directory.len())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Requests need `admin_key` on `/admin` and a key of `directory` elsewhere.
    pub fn new(admin_key: &Secret, directory: Arc<Directory>) -> Auth {
        Auth {
            admin: SecretHash::of(admin_key.expose()),
            directory,
        }
    }

    /// The directory keys are found in (and the admin API refreshes after a change).
    pub(crate) fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Whom a request for `path` with `headers` is answered for, or its refusal (401, or 403
    /// for a virtual key on `/admin`).
    pub(crate) fn check(
        &self,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Principal, Box<Response<Body>>> {
        if OPEN_PATHS.contains(&path) || crate::admin::dashboard::is_shell(path) {
            return Ok(Principal::Open);
        }
        let presented = presented(headers);
        // Hashed once; compared with the admin key's hash in constant time (`SecretHash`'s
        // equality), then looked up by it.
        let hash = presented.map(SecretHash::of);
        let is_admin = hash.as_ref().is_some_and(|h| *h == self.admin);
        let key = || hash.as_ref().and_then(|h| self.directory.lookup_hash(h));
        if is_admin_path(path) {
            if is_admin {
                return Ok(Principal::Admin);
            }
            let error = match presented {
                Some(_) if key().is_some() => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "invalid_request_error",
                    format!("{path} needs aigw's admin key; a virtual key cannot use it"),
                )
                .code("admin_key_required"),
                other => invalid_key(other, "/admin paths need aigw's admin key"),
            };
            return Err(refusal(&error));
        }
        if is_admin {
            return Err(refusal(
                &ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_request_error",
                    "This is aigw's admin key, which only /admin paths accept; client calls need a \
                     virtual key (make one with POST /admin/keys)",
                )
                .code("invalid_api_key"),
            ));
        }
        match key() {
            Some(key) => Ok(Principal::Key(key)),
            None => Err(refusal(&invalid_key(
                presented,
                "Client calls need an aigw virtual key",
            ))),
        }
    }
}

/// Whether `path` is one of the operator's (`/admin` or under it).
fn is_admin_path(path: &str) -> bool {
    crate::admin::under(path, ADMIN_PREFIX) || path == crate::metrics::PATH
}

/// 401 `invalid_api_key`, as OpenAI answers it: no key, or one not known (or revoked, or
/// expired: a client is not told which). Only the hint of a presented key is shown.
fn invalid_key(presented: Option<&str>, needed: &str) -> ApiError {
    let message = match presented {
        None => format!(
            "You didn't provide an API key. {needed}, sent as `Authorization: Bearer <key>`"
        ),
        Some(p) => format!(
            "Incorrect API key provided: {}. {needed}; a revoked, rotated or expired key no \
             longer works",
            aigw_access::hint(p)
        ),
    };
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
        .code("invalid_api_key")
}

fn refusal(error: &ApiError) -> Box<Response<Body>> {
    tracing::debug!(
        status = error.status.as_u16(),
        code = error.code,
        "request refused by authentication"
    );
    let mut response = error.response();
    if error.status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    Box::new(response)
}

/// The credential a request presents, from the headers OpenAI-style clients send it in:
/// `Authorization: Bearer <key>` (OpenAI's SDKs), `x-api-key` (Anthropic's), `api-key` (Azure
/// OpenAI's). `None` when it presents none.
pub(crate) fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    ["x-api-key", "api-key"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn keys_are_found_in_the_three_headers_clients_use() {
        assert_eq!(
            presented(&headers(&[("authorization", "Bearer sk-aigw-1")])),
            Some("sk-aigw-1")
        );
        assert_eq!(
            presented(&headers(&[("authorization", "bearer  sk-aigw-2 ")])),
            Some("sk-aigw-2")
        );
        assert_eq!(
            presented(&headers(&[("x-api-key", "sk-aigw-3")])),
            Some("sk-aigw-3")
        );
        assert_eq!(
            presented(&headers(&[("api-key", "sk-aigw-4")])),
            Some("sk-aigw-4")
        );
        assert_eq!(presented(&headers(&[])), None);
        assert_eq!(presented(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(presented(&headers(&[("authorization", "Bearer ")])), None);
    }
}
