//! NewsAPI.org (`docs/wire-formats.md`, NewsAPI): `GET /v2/top-headlines` and `GET
//! /v2/everything`, the key in `X-Api-Key` (the host's). Quirks:
//!
//! - Errors are `{"status":"error","code":…,"message":…}` with 400/401/429/500; the `code`
//!   says more than the status (`apiKeyExhausted` is the plan's daily quota, not a bad key), so
//!   it is read first.
//! - Articles taken down since are still listed, as `"[Removed]"` with URL
//!   `https://removed.com`: they are dropped, so a few more than the limit are asked for
//!   ([`SPARE`]) and the rest trimmed.

use aigw_plugin_sdk::query::Url;
use aigw_plugin_sdk::{Failure, HttpResponse, answer, http};
use serde_json::Value;

use crate::{Article, Request};

pub const UPSTREAM: &str = "newsapi";
const API: &str = "NewsAPI";

/// How many articles beyond the limit a request asks for, to make up for `[Removed]` ones.
const SPARE: usize = 5;

fn page_size(limit: usize) -> String {
    (limit + SPARE).min(100).to_string()
}

pub fn call(base: &str, request: &Request<'_>) -> Result<Value, Failure> {
    let (url, limit) = match request {
        Request::Headlines {
            category,
            country,
            limit,
        } => (
            Url::new(base, "/v2/top-headlines")
                .param("country", country)
                .param_opt("category", *category)
                .param("pageSize", page_size(*limit)),
            *limit,
        ),
        Request::Search {
            query,
            from,
            language,
            limit,
        } => (
            Url::new(base, "/v2/everything")
                .param("q", query)
                .param_opt("from", *from)
                .param_opt("language", language.as_deref())
                .param("sortBy", "publishedAt")
                .param("pageSize", page_size(*limit)),
            *limit,
        ),
    };
    let response = http::get(&url.build(), &[])?;
    let body = read(&response)?;
    let articles: Vec<Article<'_>> = body
        .get("articles")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(article)
        .collect();
    let total = body.get("totalResults").and_then(Value::as_u64);
    Ok(crate::result(articles, total, limit, UPSTREAM))
}

fn article(item: &Value) -> Option<Article<'_>> {
    let title = item.get("title").and_then(Value::as_str)?;
    let url = item.get("url").and_then(Value::as_str)?;
    if title == "[Removed]" || url == "https://removed.com" {
        return None;
    }
    Some(Article {
        title,
        source: item.pointer("/source/name").and_then(Value::as_str),
        url,
        published_at: item.get("publishedAt").and_then(Value::as_str),
        description: item.get("description").and_then(Value::as_str),
    })
}

/// A good answer's JSON, or the failure its `code` (else its status) stands for.
fn read(response: &HttpResponse) -> Result<Value, Failure> {
    let body = match answer::json(API, response) {
        Ok(body) => body,
        Err(failure) => {
            let body: Option<Value> = serde_json::from_slice(&response.body).ok();
            return Err(body
                .as_ref()
                .and_then(|b| by_code(b, response))
                .unwrap_or(failure));
        }
    };
    match body.get("status").and_then(Value::as_str) {
        Some("error") => Err(by_code(&body, response).unwrap_or_else(|| {
            Failure::Unavailable(format!("{API} answered status \"error\" without a code"))
        })),
        _ => Ok(body),
    }
}

fn by_code(body: &Value, response: &HttpResponse) -> Option<Failure> {
    let code = body.get("code").and_then(Value::as_str)?;
    let message = format!(
        "{API}: {} ({code})",
        body.get("message")
            .and_then(Value::as_str)
            .unwrap_or("error")
    );
    Some(match code {
        "rateLimited" => Failure::RateLimited {
            retry_after_seconds: answer::retry_after(
                &response.headers,
                std::time::SystemTime::now(),
            ),
            message,
        },
        "apiKeyInvalid" | "apiKeyMissing" | "apiKeyDisabled" => Failure::Unauthorized(message),
        // The developer plan's 100 requests a day are spent: the operator must wait or upgrade.
        "apiKeyExhausted" => Failure::NoCredit(message),
        "parameterInvalid" | "parametersMissing" | "sourcesTooMany" | "sourceDoesNotExist" => {
            Failure::InvalidRequest(message)
        }
        "unexpectedError" => Failure::Unavailable(message),
        _ => answer::failure_with(response, message),
    })
}
