//! `GET /admin/dashboard`: the operator's page, one static shell (HTML, its script and its
//! style, compiled in with `include_str!`: no build step, no CDN, no framework). The shell
//! holds no data and is served without a credential — a browser cannot attach `Authorization`
//! to a navigation — and asks for the admin key, which it keeps in `sessionStorage` and sends
//! as `Authorization: Bearer` on its `fetch`es of the admin JSON (`/admin/targets`,
//! `/admin/history`, …), each checked like any other admin call. No cookie is set, so no other
//! site can make the browser call the admin API on the operator's behalf (no CSRF).
//!
//! The page's Content-Security-Policy allows only the shell's own script and style (no inline
//! code at all, so no hash to keep in step), connections to its own origin, no framing; the
//! script writes every value with `textContent`, so stored conversation text can never run.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::Body;
use crate::routes::Route;

/// The page.
pub(crate) const PATH: &str = "/admin/dashboard";
const SCRIPT_PATH: &str = "/admin/dashboard/dashboard.js";
const STYLE_PATH: &str = "/admin/dashboard/dashboard.css";

pub(crate) const PAGE: Route = Route::new(PATH, "GET, HEAD");
pub(crate) const SCRIPT: Route = Route::new(SCRIPT_PATH, "GET, HEAD");
pub(crate) const STYLE: Route = Route::new(STYLE_PATH, "GET, HEAD");

const HTML: &str = include_str!("dashboard/index.html");
const JS: &str = include_str!("dashboard/dashboard.js");
const CSS: &str = include_str!("dashboard/dashboard.css");

/// What the page may load and do: its own script, style and API, nothing inline, never framed.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is one of the shell's files, served without a credential.
pub(crate) fn is_shell(path: &str) -> bool {
    matches!(path, PATH | SCRIPT_PATH | STYLE_PATH)
}

/// The shell's route for `path`, if it is one of its files.
pub(crate) fn route(path: &str) -> Option<&'static Route> {
    match path {
        PATH => Some(&PAGE),
        SCRIPT_PATH => Some(&SCRIPT),
        STYLE_PATH => Some(&STYLE),
        _ => None,
    }
}

/// The file at `path` (one [`is_shell`] accepts), with the page's security headers.
pub(crate) fn file(path: &str) -> Response<Body> {
    let (body, content_type) = match path {
        SCRIPT_PATH => (JS, "text/javascript; charset=utf-8"),
        STYLE_PATH => (CSS, "text/css; charset=utf-8"),
        _ => (HTML, "text/html; charset=utf-8"),
    };
    let mut response = Response::new(Body::full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // A new aigw's page replaces the old one at once.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_has_no_inline_code_for_the_policy_to_refuse() {
        // `script-src 'self'` refuses inline scripts and handlers: the page must have none.
        assert!(!HTML.contains("<script>"), "an inline script");
        assert!(!HTML.contains("<style"), "an inline style");
        let handler = HTML.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "an inline handler: on{handler:?}");
        assert!(HTML.contains(r#"<script src="/admin/dashboard/dashboard.js""#));
        assert!(HTML.contains(r#"href="/admin/dashboard/dashboard.css""#));
        // Data is written as text, never parsed as markup.
        assert!(!JS.contains("innerHTML"));
        assert!(!JS.contains("insertAdjacentHTML"));
        assert!(!JS.contains("document.write"));
    }

    #[test]
    fn every_file_carries_the_security_headers() {
        for path in [PATH, SCRIPT_PATH, STYLE_PATH] {
            assert!(is_shell(path));
            let response = file(path);
            let headers = response.headers();
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        }
        assert!(!is_shell("/admin/dashboard/other.js"));
        assert!(!is_shell("/admin/targets"));
    }
}
