//! JSON endpoints take JSON only. A web page may make a browser POST `text/plain`, a form, or a
//! body with no type at all to any address without asking first (a "simple" CORS request), so
//! a gateway on localhost that answered those would answer, and bill, any site its user visits.
//! `application/json` is not one of the types a page can send unasked: requiring it makes the
//! browser send a preflight, which the gateway refuses unless the page's origin is configured.

use http::{HeaderMap, StatusCode, header};

use crate::error::ApiError;

/// The longest stretch of a refused type quoted back in the error.
const QUOTED: usize = 100;

/// Refuses a request whose `Content-Type` is not `application/json` (parameters such as
/// `charset` allowed, any case): 415.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers.get(header::CONTENT_TYPE);
    let is_json = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        return Ok(());
    }
    let sent = match value {
        None => "none was sent".to_owned(),
        Some(v) => {
            let text = String::from_utf8_lossy(v.as_bytes());
            format!("got `{}`", text.chars().take(QUOTED).collect::<String>())
        }
    };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request_error",
        format!("the Content-Type header must be application/json ({sent})"),
    )
    .code("unsupported_media_type"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn with(content_type: Option<&str>) -> Result<(), ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
        }
        require_json(&headers)
    }

    #[test]
    fn json_with_or_without_parameters_is_accepted_in_any_case() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            " application/json ",
        ] {
            assert!(with(Some(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn anything_else_is_a_415_naming_the_header() {
        for bad in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            Some("text/plain; application/json"),
            None,
        ] {
            let error = with(bad).unwrap_err();
            assert_eq!(error.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad:?}");
            assert!(error.message.contains("Content-Type"), "{}", error.message);
        }
        assert!(
            with(Some("text/plain"))
                .unwrap_err()
                .message
                .contains("`text/plain`")
        );
    }
}
