//! Who is asking: the [`Principal`] every request is answered for, found from the credential it
//! presents. With authentication off (no admin key configured) every request is
//! [`Principal::Open`] — today's loopback-only gateway; with it on, a client surface needs a
//! virtual key and `/admin` the admin key.

use std::sync::Arc;

use aigw_access::Key;
use http::HeaderMap;

/// Whom a request is answered for.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    /// Authentication is off: everything is allowed, nothing is limited.
    Open,
    /// A client holding a valid virtual key.
    Key(Arc<Key>),
    /// The operator, holding the admin key.
    Admin,
}

impl Principal {
    /// The key, when the request presented one.
    pub(crate) fn key(&self) -> Option<&Arc<Key>> {
        match self {
            Principal::Key(key) => Some(key),
            Principal::Open | Principal::Admin => None,
        }
    }
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
