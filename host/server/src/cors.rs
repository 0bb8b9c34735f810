//! Which web pages may call the API from a browser (CORS). None by default: a page on another
//! origin then cannot read any answer, and cannot send a JSON POST at all, since the browser
//! asks first (a preflight) and the gateway says no. An operator who serves browser apps lists
//! their origins (`server.cors_origins`); those get the `Access-Control-Allow-*` headers, and no
//! other origin ever does.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::body::Body;
use crate::error::ApiError;

/// The longest stretch of a refused origin quoted back in the error.
const QUOTED: usize = 100;

/// Request headers a preflight may always ask for: the ones an OpenAI client sends.
const ALWAYS_ALLOWED_HEADERS: &str = "authorization, content-type";

/// The origins whose pages may call the API; empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Lowercase serialized origins (`https://app.example.com:8443`).
    origins: Vec<String>,
}

impl Cors {
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            origins: origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// The request's `Origin` when it is one of ours, for [`Cors::expose`].
    pub(crate) fn origin_of(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        self.allowed(headers).cloned()
    }

    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(text))
            .then_some(origin)
    }

    /// The answer to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`), or
    /// `None` when the request is not one. An allowed origin gets 204 and the headers; any
    /// other (every origin, when none is configured) gets 403 and none of them.
    pub(crate) fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let Some(origin) = self.allowed(headers) else {
            return Some(self.refusal(headers.get(header::ORIGIN)).response());
        };
        let mut response = Response::new(Body::full(bytes::Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            allowed_headers(headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS)),
        );
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        out.insert(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Some(response)
    }

    /// Adds the headers that let an allowed origin's page read `response` (`allowed`: what
    /// [`Cors::origin_of`] said of its request). Nothing for other origins, nor for any request
    /// when no origin is configured.
    pub(crate) fn expose(&self, allowed: Option<&HeaderValue>, response: &mut Response<Body>) {
        if self.origins.is_empty() {
            return;
        }
        let headers = response.headers_mut();
        // The answer depends on the Origin: caches must not hand one origin's to another.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = allowed {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
    }

    fn refusal(&self, origin: Option<&HeaderValue>) -> ApiError {
        let origin = origin.map_or_else(
            || "no origin".to_owned(),
            |o| {
                let text = String::from_utf8_lossy(o.as_bytes());
                let quoted: String = text.chars().take(QUOTED).collect();
                format!("`{quoted}`")
            },
        );
        let configured = if self.origins.is_empty() {
            "none is allowed: server.cors_origins is empty".to_owned()
        } else {
            format!("allowed: {}", self.origins.join(", "))
        };
        ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            format!("cross-origin requests from {origin} are not allowed ({configured})"),
        )
        .code("cors_not_allowed")
    }
}

/// `authorization, content-type` plus what the preflight asked for (an OpenAI SDK in a
/// browser sends its own `x-stainless-*` headers): once the origin is allowed, which headers
/// its page sends is not a question of trust.
fn allowed_headers(requested: Option<&HeaderValue>) -> HeaderValue {
    let always = HeaderValue::from_static(ALWAYS_ALLOWED_HEADERS);
    let Some(requested) = requested.and_then(|v| v.to_str().ok()) else {
        return always;
    };
    let mut names = ALWAYS_ALLOWED_HEADERS.to_owned();
    for name in requested.split(',').map(str::trim) {
        let known = ALWAYS_ALLOWED_HEADERS
            .split(", ")
            .any(|a| a.eq_ignore_ascii_case(name));
        if !name.is_empty() && !known {
            names.push_str(", ");
            names.push_str(name);
        }
    }
    HeaderValue::from_str(&names).unwrap_or(always)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn preflight_headers(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, origin.parse().unwrap());
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("content-type, x-stainless-os"),
        );
        headers
    }

    #[test]
    fn with_no_origin_configured_a_preflight_is_refused_without_cors_headers() {
        let cors = Cors::default();
        let response = cors
            .preflight(&Method::OPTIONS, &preflight_headers("https://app.example"))
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(
            response
                .headers()
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{:?}",
            response.headers()
        );
        let mut answer = Response::new(Body::full(bytes::Bytes::new()));
        let origin = cors.origin_of(&preflight_headers("https://app.example"));
        cors.expose(origin.as_ref(), &mut answer);
        assert!(answer.headers().is_empty());
    }

    #[test]
    fn an_allowed_origin_gets_the_headers_and_another_does_not() {
        let cors = Cors::new(&["https://App.example/".to_owned()]);
        let response = cors
            .preflight(&Method::OPTIONS, &preflight_headers("https://app.example"))
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let headers = response.headers();
        assert_eq!(
            headers["access-control-allow-origin"],
            "https://app.example"
        );
        assert_eq!(
            headers["access-control-allow-methods"],
            "GET, HEAD, POST, PUT, DELETE"
        );
        assert_eq!(
            headers["access-control-allow-headers"],
            "authorization, content-type, x-stainless-os"
        );
        assert!(headers["vary"].to_str().unwrap().contains("Origin"));

        let other = cors
            .preflight(&Method::OPTIONS, &preflight_headers("https://evil.example"))
            .unwrap();
        assert_eq!(other.status(), StatusCode::FORBIDDEN);
        assert!(!other.headers().contains_key("access-control-allow-origin"));

        let mut answer = Response::new(Body::full(bytes::Bytes::new()));
        let evil = cors.origin_of(&preflight_headers("https://evil.example"));
        cors.expose(evil.as_ref(), &mut answer);
        assert!(!answer.headers().contains_key("access-control-allow-origin"));
        assert_eq!(answer.headers()["vary"], "Origin");
        let app = cors.origin_of(&preflight_headers("https://app.example"));
        cors.expose(app.as_ref(), &mut answer);
        assert_eq!(
            answer.headers()["access-control-allow-origin"],
            "https://app.example"
        );
    }

    #[test]
    fn only_options_with_a_requested_method_is_a_preflight() {
        let cors = Cors::default();
        let mut plain = preflight_headers("https://app.example");
        plain.remove(header::ACCESS_CONTROL_REQUEST_METHOD);
        assert!(cors.preflight(&Method::OPTIONS, &plain).is_none());
        assert!(
            cors.preflight(&Method::POST, &preflight_headers("https://a.example"))
                .is_none()
        );
    }
}
