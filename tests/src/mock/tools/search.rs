//! SearXNG (`GET /search` or `/`, `format=json`, no key), Brave (`GET /res/v1/web/search`, key in
//! `X-Subscription-Token`) and Tavily (`POST /search`, `Authorization: Bearer`): SearXNG's 403 when
//! JSON is off and empty results with unresponsive engines, Brave's 422 for a bad key and its
//! multi-window rate-limit headers, Tavily's `{"detail":{"error"}}` and 432.

use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use super::{Account, Body, Call, bot_wall, json, not_found, text};

/// How many results each query has.
const RESULTS: usize = 10;

/// `RESULTS` deterministic results for `query`: `(title, url, snippet)`.
fn results(query: &str) -> Vec<(String, String, String)> {
    let slug: String = query
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    (0..RESULTS)
        .map(|i| {
            (
                format!("{query} — result {}", i + 1),
                format!("https://example.com/{slug}/{}", i + 1),
                format!("Everything about {query}, page {}.", i + 1),
            )
        })
        .collect()
}

fn count(call: &Call<'_>, name: &str, default: usize, max: usize) -> usize {
    call.param(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .min(max)
}

const FORBIDDEN_PAGE: &str = "<!doctype html>\n<html lang=en>\n<title>403 Forbidden</title>\n<h1>Forbidden</h1>\n<p>You don&#39;t have the permission to access the requested resource. It is either read-protected or not readable by the server.</p>\n";

pub(crate) fn searxng(call: &Call<'_>) -> Response<Body> {
    if call.request.method != "GET" || !matches!(call.request.path.as_str(), "/search" | "/") {
        return not_found(call.request);
    }
    let query = call.param("q").unwrap_or_default();
    if call.param("format") != Some("json") || query == "FORBIDDEN" {
        return text(
            StatusCode::FORBIDDEN,
            "text/html; charset=utf-8",
            FORBIDDEN_PAGE,
        );
    }
    let answer = |results: Vec<Value>, unresponsive: Value| {
        json(
            StatusCode::OK,
            &json!({
                "query": query, "number_of_results": 0, "results": results, "answers": [],
                "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": unresponsive,
            }),
        )
    };
    match query {
        "" => text(
            StatusCode::BAD_REQUEST,
            "text/html; charset=utf-8",
            "<p>No query</p>",
        ),
        "RATE" => text(
            StatusCode::TOO_MANY_REQUESTS,
            "text/plain; charset=utf-8",
            "Too Many Requests",
        ),
        "ERROR" => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html; charset=utf-8",
            "<h1>Internal Server Error</h1>",
        ),
        "HTML" => bot_wall(),
        "Nothing" => answer(Vec::new(), json!([])),
        "ENGINES-DOWN" => answer(
            Vec::new(),
            json!([["google", "timeout"], ["duckduckgo", "CAPTCHA"]]),
        ),
        query => {
            let listed = results(query)
                .into_iter()
                .enumerate()
                .map(|(i, (title, url, snippet))| {
                    json!({
                        "url": url, "title": title, "content": snippet, "engine": "duckduckgo",
                        "engines": ["duckduckgo", "brave"], "positions": [i + 1], "score": 1.0 / (i as f64 + 1.0),
                        "category": "general", "publishedDate": null,
                    })
                })
                .collect();
            answer(listed, json!([["google", "timeout"]]))
        }
    }
}

fn brave_error(status: StatusCode, code: &str, detail: &str, meta: Value) -> Response<Body> {
    json(
        status,
        &json!({"type": "ErrorResponse", "error": {"id": "2b2e5b9c-1f0a-4d1e-9a55-7c1f0e3d9a10", "status": status.as_u16(), "code": code, "detail": detail, "meta": meta}, "time": 1_763_000_000}),
    )
}

/// Brave's headers: one value per window, the per-second window first, then the monthly one.
fn with_rate_headers(mut response: Response<Body>, remaining: &'static str) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from_static("1, 2000"));
    headers.insert(
        "x-ratelimit-policy",
        HeaderValue::from_static("1;w=1, 2000;w=2592000"),
    );
    headers.insert("x-ratelimit-remaining", HeaderValue::from_static(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from_static("1, 1419704"));
    response
}

pub(crate) fn brave(call: &Call<'_>) -> Response<Body> {
    if call.request.path != "/res/v1/web/search" {
        return not_found(call.request);
    }
    let limited = |remaining| {
        with_rate_headers(
            brave_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "Request rate limit exceeded for plan.",
                json!({"plan": "Free", "rate_limit": 1, "rate_current": 2, "quota_limit": 2000, "quota_current": 41, "component": "rate_limiter"}),
            ),
            remaining,
        )
    };
    match call.account() {
        Account::Missing => {
            return brave_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION",
                "Unable to validate request parameter(s)",
                json!({"errors": [{"type": "missing", "loc": ["header", "x-subscription-token"], "msg": "Field required", "input": null}]}),
            );
        }
        Account::Bad => {
            return brave_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "SUBSCRIPTION_TOKEN_INVALID",
                "The provided subscription token is invalid.",
                json!({"component": "authentication"}),
            );
        }
        Account::Limited => return limited("0, 1959"),
        Account::Spent => return limited("1, 0"),
        Account::Good => {}
    }
    let Some(query) = call.param("q") else {
        return brave_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION",
            "Unable to validate request parameter(s)",
            json!({"errors": [{"type": "missing", "loc": ["query", "q"], "msg": "Field required", "input": null}]}),
        );
    };
    let answer = match query {
        "RATE" => return limited("0, 1959"),
        "ERROR" => {
            return brave_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "An internal error occurred.",
                json!({}),
            );
        }
        "HTML" => return bot_wall(),
        "Nothing" => {
            json!({"type": "search", "query": {"original": query, "more_results_available": false}, "mixed": {"type": "mixed", "main": []}})
        }
        query => {
            let listed: Vec<Value> = results(query)
                .into_iter()
                .take(count(call, "count", 20, 20))
                .map(|(title, url, snippet)| {
                    json!({
                        "title": title, "url": url,
                        "description": snippet.replace(query, &format!("<strong>{query}</strong>")),
                        "age": "2 days ago", "language": "en", "profile": {"name": "Example", "url": url},
                        "meta_url": {"hostname": "example.com"},
                    })
                })
                .collect();
            json!({"type": "search", "query": {"original": query}, "web": {"type": "search", "results": listed, "family_friendly": true}})
        }
    };
    with_rate_headers(json(StatusCode::OK, &answer), "0, 1958")
}

fn tavily_error(status: u16, message: &str) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &json!({"detail": {"error": message}}))
}

pub(crate) fn tavily(call: &Call<'_>) -> Response<Body> {
    if call.request.method != "POST" || call.request.path != "/search" {
        return not_found(call.request);
    }
    let limited = || {
        tavily_error(
            429,
            "Your request has been blocked due to excessive requests. Please reduce rate of requests.",
        )
    };
    match call.account() {
        Account::Missing | Account::Bad => {
            return tavily_error(401, "Unauthorized: missing or invalid API key.");
        }
        Account::Limited => return limited(),
        Account::Spent => {
            return tavily_error(
                432,
                "This request exceeds your plan's set usage limit. Please upgrade your plan or contact support@tavily.com",
            );
        }
        Account::Good => {}
    }
    let body: Value = serde_json::from_slice(&call.request.body).unwrap_or(Value::Null);
    let Some(query) = body.get("query").and_then(Value::as_str) else {
        return tavily_error(400, "Query is missing.");
    };
    match query {
        "RATE" => return limited(),
        "ERROR" => return tavily_error(500, "Internal Server Error"),
        "HTML" => return bot_wall(),
        _ => {}
    }
    let max = body
        .get("max_results")
        .and_then(Value::as_u64)
        .unwrap_or(5)
        .min(20) as usize;
    let listed: Vec<Value> = if query == "Nothing" {
        Vec::new()
    } else {
        results(query)
            .into_iter()
            .take(max)
            .enumerate()
            .map(|(i, (title, url, snippet))| json!({"title": title, "url": url, "content": snippet, "score": 0.9 - i as f64 / 20.0, "raw_content": null}))
            .collect()
    };
    json(
        StatusCode::OK,
        &json!({"query": query, "follow_up_questions": null, "answer": null, "images": [], "results": listed, "response_time": 1.09}),
    )
}
