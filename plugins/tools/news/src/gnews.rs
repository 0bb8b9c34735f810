//! GNews (`docs/wire-formats.md`, GNews): `GET /api/v4/top-headlines` and `GET /api/v4/search`,
//! the key in the `apikey` query parameter (the host's). Quirks:
//!
//! - **403 is the daily quota** (100 requests a day on the free plan), not a bad key: `no-credit`.
//!   429 is too many requests per second, 401 a missing or bad key.
//! - Error bodies are `{"errors": […]}` (a list of texts; some answers use an object of field →
//!   text): read whichever came.
//! - `from` wants a full ISO 8601 time; the tool's date gets midnight UTC.
//! - At most 10 articles per request on the free plan (`max`).

use aigw_plugin_sdk::query::Url;
use aigw_plugin_sdk::{Failure, HttpResponse, answer, http};
use serde_json::Value;

use crate::{Article, Request};

pub const UPSTREAM: &str = "gnews";
const API: &str = "GNews";

/// The free plan's most articles per request.
const MAX_PER_REQUEST: usize = 10;

pub fn call(base: &str, request: &Request<'_>) -> Result<Value, Failure> {
    let (url, limit) = match request {
        Request::Headlines {
            category,
            country,
            limit,
        } => (
            Url::new(base, "/api/v4/top-headlines")
                .param("category", category.unwrap_or("general"))
                .param("country", country)
                .param("max", (*limit).min(MAX_PER_REQUEST).to_string()),
            *limit,
        ),
        Request::Search {
            query,
            from,
            language,
            limit,
        } => (
            Url::new(base, "/api/v4/search")
                .param("q", query)
                .param_opt("lang", language.as_deref())
                .param_opt("from", from.map(|date| format!("{date}T00:00:00Z")))
                .param("sortby", "publishedAt")
                .param("max", (*limit).min(MAX_PER_REQUEST).to_string()),
            *limit,
        ),
    };
    let response = http::get(&url.build(), &[])?;
    let body = answer::json(API, &response).map_err(|failure| classify(&response, failure))?;
    let articles: Vec<Article<'_>> = body
        .get("articles")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            Some(Article {
                title: item.get("title").and_then(Value::as_str)?,
                source: item.pointer("/source/name").and_then(Value::as_str),
                url: item.get("url").and_then(Value::as_str)?,
                published_at: item.get("publishedAt").and_then(Value::as_str),
                description: item.get("description").and_then(Value::as_str),
            })
        })
        .collect();
    let total = body.get("totalArticles").and_then(Value::as_u64);
    Ok(crate::result(articles, total, limit, UPSTREAM))
}

/// GNews' statuses, its 403 first; the message from its `errors`.
fn classify(response: &HttpResponse, failure: Failure) -> Failure {
    if (200..300).contains(&response.status) || answer::is_html(response) {
        return failure;
    }
    let message = match errors(&response.body) {
        Some(errors) => format!("{API}: {errors}"),
        None => failure.message().to_owned(),
    };
    match response.status {
        403 => Failure::NoCredit(message),
        _ => answer::failure_with(response, message),
    }
}

/// The texts of `{"errors": ["…"]}` or `{"errors": {"field": "…"}}`, joined.
fn errors(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let texts: Vec<String> = match body.get("errors")? {
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Value::Object(fields) => fields
            .iter()
            .filter_map(|(field, text)| Some(format!("{field}: {}", text.as_str()?)))
            .collect(),
        Value::String(text) => vec![text.clone()],
        _ => Vec::new(),
    };
    (!texts.is_empty()).then(|| texts.join("; "))
}
