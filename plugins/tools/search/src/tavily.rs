//! Tavily's search (`docs/wire-formats.md`, Tavily): `POST /search` with a JSON body, the key as
//! `Authorization: Bearer` (the host's). Quirks:
//!
//! - Errors are `{"detail": {"error": "…"}}`: 401 a bad key, 429 the rate limit, and **432 (the
//!   plan's credits) and 433 (the pay-as-you-go limit) are `no-credit`**.
//! - `max_results` caps the answer; `time_range` is `day`, `week`, `month` or `year`.

use aigw_plugin_sdk::{Failure, HttpResponse, answer, http};
use serde_json::{Value, json};

use crate::{Freshness, Hit, Query};

pub const UPSTREAM: &str = "tavily";
const API: &str = "Tavily";

pub fn search(base: &str, query: &Query<'_>) -> Result<Value, Failure> {
    let mut body = json!({
        "query": query.text,
        "max_results": query.limit,
        "search_depth": "basic",
        "topic": "general",
        "include_answer": false,
        "include_raw_content": false,
        "include_images": false,
    });
    if let Some(freshness) = query.freshness {
        body["time_range"] = json!(match freshness {
            Freshness::Day => "day",
            Freshness::Week => "week",
            Freshness::Month => "month",
            Freshness::Year => "year",
        });
    }
    let url = format!("{}/search", base.trim_end_matches('/'));
    let response = http::post_json(&url, &[], &body)?;
    let answer = answer::json(API, &response).map_err(|failure| classify(&response, failure))?;
    let hits = Hit::all(answer.get("results"), "content");
    Ok(crate::result(hits, query.limit, UPSTREAM))
}

fn classify(response: &HttpResponse, failure: Failure) -> Failure {
    if (200..300).contains(&response.status) || answer::is_html(response) {
        return failure;
    }
    let detail = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|body| {
            let detail = body.get("detail")?;
            detail
                .get("error")
                .and_then(Value::as_str)
                .or_else(|| detail.as_str())
                .map(str::to_owned)
        });
    let message = match detail {
        Some(detail) => format!("{API}: {detail}"),
        None => failure.message().to_owned(),
    };
    match response.status {
        432 | 433 => Failure::NoCredit(message),
        _ => answer::failure_with(response, message),
    }
}
