//! Reading a tool upstream's answer: the JSON of a good one, the classified [`Failure`] of a bad
//! one, so the host fails over the same way for every tool API.
//!
//! | upstream says | failure |
//! |---|---|
//! | 429 | `rate-limited`, waiting what `retry-after` or the (multi-window) `x-ratelimit-reset` says |
//! | 401, 403 | `unauthorized` (the key) |
//! | 402 | `no-credit` (the plan's quota) |
//! | 408, 5xx | `unavailable` |
//! | other 4xx | `invalid-request` (the arguments) |
//! | HTML where JSON was expected (a proxy's error page, a bot wall; any status) | `unavailable` |
//! | a 2xx that is not JSON | `bad-response` |
//!
//! APIs whose error codes say more than their statuses (Brave's 422 for a bad key, NewsAPI's
//! `apiKeyExhausted`, Alpha Vantage's errors with HTTP 200) check those first and use
//! [`failure_with`] for the rest.

use std::time::SystemTime;

use serde_json::Value;

use crate::failure::{UpstreamError, retry_after_seconds};
use crate::types::{Failure, Header, HttpResponse, header_value};

/// The body of a 2xx JSON answer from `api`; any other answer as its [`Failure`].
pub fn json(api: &str, response: &HttpResponse) -> Result<Value, Failure> {
    if is_html(response) {
        return Err(html(api, response.status));
    }
    if !(200..300).contains(&response.status) {
        return Err(failure(api, response));
    }
    serde_json::from_slice(&response.body).map_err(|e| {
        Failure::BadResponse(format!(
            "{api} answered HTTP {} with a body that is not JSON: {e}",
            response.status
        ))
    })
}

/// Whether the answer is an HTML page (by its media type, or a body starting with `<`).
pub fn is_html(response: &HttpResponse) -> bool {
    let by_type = response.header("content-type").is_some_and(|value| {
        let media = value.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case("text/html")
            || media.eq_ignore_ascii_case("application/xhtml+xml")
    });
    by_type || response.body.trim_ascii_start().first() == Some(&b'<')
}

fn html(api: &str, status: u16) -> Failure {
    Failure::Unavailable(format!(
        "{api} answered HTTP {status} with an HTML page where JSON was expected (a proxy or a bot wall in the way?)"
    ))
}

/// The failure a non-2xx answer from `api` stands for, its message from the body.
pub fn failure(api: &str, response: &HttpResponse) -> Failure {
    let error = UpstreamError::parse(&response.body);
    let message = match (error.message, error.code) {
        (Some(message), _) => format!("{api}: {message}"),
        (None, Some(code)) => format!("{api} answered HTTP {} ({code})", response.status),
        (None, None) => format!("{api} answered HTTP {}", response.status),
    };
    failure_with(response, message)
}

/// The failure a non-2xx answer stands for by its status and headers, with `message`.
pub fn failure_with(response: &HttpResponse, message: String) -> Failure {
    if is_html(response) {
        return Failure::Unavailable(message);
    }
    match response.status {
        429 => Failure::RateLimited {
            retry_after_seconds: retry_after(&response.headers, SystemTime::now()),
            message,
        },
        401 | 403 => Failure::Unauthorized(message),
        402 => Failure::NoCredit(message),
        408 | 500..=599 => Failure::Unavailable(message),
        400..=499 => Failure::InvalidRequest(message),
        status => Failure::BadResponse(format!("unexpected HTTP status {status}: {message}")),
    }
}

/// How long to wait, in whole seconds: `retry-after` (seconds or an HTTP date), else the
/// `x-ratelimit-reset` header. That one may hold one value per window, comma-separated (Brave:
/// `X-RateLimit-Reset: 1, 1419704`, the per-second window first, then the monthly one): the
/// window whose `x-ratelimit-remaining` is 0 decides, else the first.
pub fn retry_after(headers: &[Header], now: SystemTime) -> Option<u32> {
    if header_value(headers, "retry-after").is_some()
        && let Some(seconds) = retry_after_seconds(headers, None, now)
    {
        return Some(seconds);
    }
    let resets = windows(header_value(headers, "x-ratelimit-reset")?);
    let remaining = header_value(headers, "x-ratelimit-remaining")
        .map(windows)
        .unwrap_or_default();
    let exhausted = remaining
        .iter()
        .position(|left| *left == Some(0.0))
        .and_then(|window| resets.get(window).copied().flatten());
    let seconds = exhausted.or_else(|| resets.first().copied().flatten())?;
    Some(seconds.max(0.0).ceil().min(f64::from(u32::MAX)) as u32)
}

/// The comma-separated numbers of a multi-window header (`1, 1419704`); a part that is not a
/// number is `None`.
fn windows(value: &str) -> Vec<Option<f64>> {
    value
        .split(',')
        .map(|part| part.trim().parse::<f64>().ok().filter(|n| n.is_finite()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn statuses_map_to_classes() {
        let of = |status| failure("api", &response(status, &[], r#"{"error":"nope"}"#));
        assert!(matches!(
            of(429),
            Failure::RateLimited {
                retry_after_seconds: None,
                ..
            }
        ));
        assert!(matches!(of(401), Failure::Unauthorized(_)));
        assert!(matches!(of(403), Failure::Unauthorized(_)));
        assert!(matches!(of(402), Failure::NoCredit(_)));
        assert!(matches!(of(503), Failure::Unavailable(_)));
        assert!(matches!(of(400), Failure::InvalidRequest(_)));
        assert_eq!(of(404).message(), "api: nope");
    }

    #[test]
    fn html_is_unavailable_whatever_the_status() {
        let page = response(
            200,
            &[("content-type", "text/html; charset=utf-8")],
            "<!doctype html><p>checking your browser</p>",
        );
        let failure = json("stooq", &page).unwrap_err();
        assert!(matches!(failure, Failure::Unavailable(_)), "{failure:?}");
        assert!(failure.message().contains("HTML"));
        let untyped = response(502, &[], "  <html>bad gateway</html>");
        assert!(matches!(json("x", &untyped), Err(Failure::Unavailable(_))));
    }

    #[test]
    fn a_2xx_that_is_not_json_is_a_bad_response() {
        let failure = json("x", &response(200, &[], "Symbol,Date\nAAPL,N/D")).unwrap_err();
        assert!(matches!(failure, Failure::BadResponse(_)), "{failure:?}");
        assert_eq!(
            json("x", &response(200, &[], r#"{"a":1}"#)).unwrap()["a"],
            1
        );
    }

    #[test]
    fn multi_window_resets_pick_the_exhausted_window() {
        let now = SystemTime::now();
        let headers = |pairs: &[(&str, &str)]| -> Vec<Header> {
            pairs.iter().map(|(n, v)| Header::new(*n, *v)).collect()
        };
        let per_second = headers(&[
            ("X-RateLimit-Reset", "1, 1419704"),
            ("X-RateLimit-Remaining", "0, 14000"),
        ]);
        assert_eq!(retry_after(&per_second, now), Some(1));
        let monthly = headers(&[
            ("X-RateLimit-Reset", "1, 1419704"),
            ("X-RateLimit-Remaining", "1, 0"),
        ]);
        assert_eq!(retry_after(&monthly, now), Some(1_419_704));
        let first = headers(&[("x-ratelimit-reset", "0.4, 90")]);
        assert_eq!(retry_after(&first, now), Some(1));
        let header = headers(&[("retry-after", "12"), ("x-ratelimit-reset", "1, 5")]);
        assert_eq!(retry_after(&header, now), Some(12));
        assert_eq!(retry_after(&[], now), None);
    }
}
