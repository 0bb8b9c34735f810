//! Brave's Web Search API (`docs/wire-formats.md`, Brave): `GET /res/v1/web/search?q=…&count=…`,
//! the key in `X-Subscription-Token` (the host's). Quirks:
//!
//! - **A bad key is 422 `SUBSCRIPTION_TOKEN_INVALID`**, not 401, and a missing one 422
//!   `VALIDATION`: `error.code` is read before the status.
//! - Rate-limit headers hold one value per window (`X-RateLimit-Reset: 1, 1419704`: per second,
//!   then per month); the exhausted window says how long to wait (`answer::retry_after`).
//! - Descriptions mark matches with `<strong>`; no `web` key at all when nothing matched.
//! - `count` at most 20; `freshness` is `pd`, `pw`, `pm` or `py`.

use std::time::SystemTime;

use aigw_plugin_sdk::query::Url;
use aigw_plugin_sdk::{Failure, HttpResponse, answer, http};
use serde_json::Value;

use crate::{Freshness, Hit, Query};

pub const UPSTREAM: &str = "brave";
const API: &str = "Brave Search";

pub fn search(base: &str, query: &Query<'_>) -> Result<Value, Failure> {
    let url = Url::new(base, "/res/v1/web/search")
        .param("q", query.text)
        .param("count", query.limit.min(20).to_string())
        .param_opt(
            "freshness",
            query.freshness.map(|freshness| match freshness {
                Freshness::Day => "pd",
                Freshness::Week => "pw",
                Freshness::Month => "pm",
                Freshness::Year => "py",
            }),
        )
        .build();
    let response = http::get(&url, &[])?;
    if let Some(failure) = by_code(&response) {
        return Err(failure);
    }
    let body = answer::json(API, &response)?;
    let hits = Hit::all(body.pointer("/web/results"), "description");
    Ok(crate::result(hits, query.limit, UPSTREAM))
}

/// The failure an `ErrorResponse` stands for by its `error.code`, whatever its status.
fn by_code(response: &HttpResponse) -> Option<Failure> {
    if (200..300).contains(&response.status) {
        return None;
    }
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    let error = body.get("error")?;
    let code = error.get("code").and_then(Value::as_str)?;
    let detail = error
        .get("detail")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let message = format!("{API}: {detail} ({code})");
    Some(match code {
        "SUBSCRIPTION_TOKEN_INVALID" => Failure::Unauthorized(message),
        // A missing token is a VALIDATION error on the header; any other is the request's.
        "VALIDATION"
            if body
                .to_string()
                .to_ascii_lowercase()
                .contains("subscription") =>
        {
            Failure::Unauthorized(message)
        }
        "VALIDATION" => Failure::InvalidRequest(message),
        "RATE_LIMITED" => Failure::RateLimited {
            retry_after_seconds: answer::retry_after(&response.headers, SystemTime::now()),
            message,
        },
        // The plan does not include what was asked (an option, a resource).
        "OPTION_NOT_IN_PLAN" | "RESOURCE_NOT_ALLOWED" => Failure::Unauthorized(message),
        "USAGE_LIMIT_EXCEEDED" => Failure::NoCredit(message),
        _ => answer::failure_with(response, message),
    })
}
