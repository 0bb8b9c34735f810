//! NewsAPI.org (`GET /v2/top-headlines`, `/v2/everything`; key in `X-Api-Key`, `apiKey` or
//! `Authorization: Bearer`) and GNews (`GET /api/v4/top-headlines`, `/api/v4/search`; key in
//! `apikey`): NewsAPI's `{"status":"error","code"}` bodies, GNews' `{"errors":[…]}` and its 403
//! for the daily quota.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{Account, Body, Call, bot_wall, json, not_found};

/// How many articles each search has in all.
const TOTAL: usize = 12;

/// `TOTAL` deterministic articles about `topic`, `(title, url, source, published, description)`.
fn articles(topic: &str) -> Vec<(String, String, &'static str, String, String)> {
    const SOURCES: [&str; 4] = ["Reuters", "The Verge", "BBC News", "Ars Technica"];
    let slug: String = topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    (0..TOTAL)
        .map(|i| {
            (
                format!("{topic}: story {}", i + 1),
                format!("https://news.example.com/{slug}/{}", i + 1),
                SOURCES[i % SOURCES.len()],
                format!("2025-06-01T{:02}:00:00Z", 23 - i),
                format!("What happened with {topic}, part {}.", i + 1),
            )
        })
        .collect()
}

fn topic_of(call: &Call<'_>, search_param: &str, headlines: bool) -> Option<String> {
    if headlines {
        Some(format!(
            "{} {}",
            call.param("country").unwrap_or("world"),
            call.param("category").unwrap_or("general")
        ))
    } else {
        call.param(search_param).map(str::to_owned)
    }
}

fn count(call: &Call<'_>, name: &str, default: usize, max: usize) -> usize {
    call.param(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .min(max)
}

fn newsapi_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &json!({"status": "error", "code": code, "message": message}),
    )
}

pub(crate) fn newsapi(call: &Call<'_>) -> Response<Body> {
    let headlines = match call.request.path.as_str() {
        "/v2/top-headlines" => true,
        "/v2/everything" => false,
        _ => return not_found(call.request),
    };
    let rate_limited = || {
        newsapi_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rateLimited",
            "You have been rate limited. Back off for a while before trying the request again.",
        )
    };
    match call.account() {
        Account::Missing => {
            return newsapi_error(
                StatusCode::UNAUTHORIZED,
                "apiKeyMissing",
                "Your API key is missing. Append this to the URL with the apiKey param, or use the x-api-key HTTP header.",
            );
        }
        Account::Bad => {
            return newsapi_error(
                StatusCode::UNAUTHORIZED,
                "apiKeyInvalid",
                "Your API key is invalid or incorrect. Check your key, or go to https://newsapi.org to create a free API key.",
            );
        }
        Account::Limited => return rate_limited(),
        Account::Spent => {
            return newsapi_error(
                StatusCode::TOO_MANY_REQUESTS,
                "apiKeyExhausted",
                "Your API key has no more requests available.",
            );
        }
        Account::Good => {}
    }
    let query = call.param("q");
    if headlines
        && query.is_none()
        && call.param("country").is_none()
        && call.param("category").is_none()
        && call.param("sources").is_none()
    {
        return newsapi_error(
            StatusCode::BAD_REQUEST,
            "parametersMissing",
            "Required parameters are missing, the scope of your search is too broad. Please set any of the following required parameters and try again: sources, q, country, category.",
        );
    }
    if !headlines && query.is_none() {
        return newsapi_error(
            StatusCode::BAD_REQUEST,
            "parametersMissing",
            "Required parameters are missing. Please set any of the following parameters and try again: q, qInTitle, sources, domains.",
        );
    }
    if call.param("from").is_some_and(|from| from < "2025-05-01") {
        return newsapi_error(
            StatusCode::UPGRADE_REQUIRED,
            "parameterInvalid",
            &format!(
                "You are trying to request results too far in the past. Your plan permits you to request articles as far back as 2025-05-01, but you have requested {}. You may need to upgrade to a paid plan.",
                call.param("from").unwrap_or_default()
            ),
        );
    }
    match query {
        Some("RATE") => return rate_limited(),
        Some("ERROR") => {
            return newsapi_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpectedError",
                "This shouldn't happen, and if it does then it's our fault, not yours. Try the request again shortly.",
            );
        }
        Some("HTML") => return bot_wall(),
        Some("Nothing") => {
            return json(
                StatusCode::OK,
                &json!({"status": "ok", "totalResults": 0, "articles": []}),
            );
        }
        _ => {}
    }
    let Some(topic) = topic_of(call, "q", headlines && query.is_none()) else {
        return not_found(call.request);
    };
    let page_size = count(call, "pageSize", 20, 100);
    let mut listed: Vec<Value> = articles(&topic)
        .into_iter()
        .map(|(title, url, source, published, description)| {
            json!({
                "source": {"id": null, "name": source}, "author": null, "title": title,
                "description": description, "url": url, "urlToImage": null,
                "publishedAt": published, "content": "First 200 chars… [+1234 chars]",
            })
        })
        .collect();
    // NewsAPI still lists articles taken down since: second place, every time.
    listed.insert(
        1,
        json!({
            "source": {"id": null, "name": "[Removed]"}, "author": null, "title": "[Removed]",
            "description": "[Removed]", "url": "https://removed.com", "urlToImage": null,
            "publishedAt": "1970-01-01T00:00:00Z", "content": "[Removed]",
        }),
    );
    listed.truncate(page_size);
    json(
        StatusCode::OK,
        &json!({"status": "ok", "totalResults": TOTAL + 1, "articles": listed}),
    )
}

fn gnews_errors(status: StatusCode, errors: Value) -> Response<Body> {
    json(status, &json!({"errors": errors}))
}

pub(crate) fn gnews(call: &Call<'_>) -> Response<Body> {
    let headlines = match call.request.path.as_str() {
        "/api/v4/top-headlines" => true,
        "/api/v4/search" => false,
        _ => return not_found(call.request),
    };
    let too_many = || {
        gnews_errors(
            StatusCode::TOO_MANY_REQUESTS,
            json!(["You have made more requests per second than you are allowed."]),
        )
    };
    match call.account() {
        Account::Missing => {
            return gnews_errors(
                StatusCode::UNAUTHORIZED,
                json!(["You did not provide an API key."]),
            );
        }
        Account::Bad => {
            return gnews_errors(
                StatusCode::UNAUTHORIZED,
                json!(["Your API key is invalid."]),
            );
        }
        Account::Limited => return too_many(),
        Account::Spent => {
            return gnews_errors(
                StatusCode::FORBIDDEN,
                json!([
                    "You have reached your request limit for today, the next reset will be tomorrow at midnight UTC. If you need more requests, you can upgrade your subscription here: https://gnews.io/#pricing"
                ]),
            );
        }
        Account::Good => {}
    }
    if !headlines && call.param("q").is_none() {
        return gnews_errors(
            StatusCode::BAD_REQUEST,
            json!({"q": "The q parameter is required."}),
        );
    }
    match call.param("q") {
        Some("RATE") => return too_many(),
        Some("ERROR") => {
            return gnews_errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!(["Internal server error."]),
            );
        }
        Some("HTML") => return bot_wall(),
        Some("Nothing") => {
            return json(StatusCode::OK, &json!({"totalArticles": 0, "articles": []}));
        }
        _ => {}
    }
    let Some(topic) = topic_of(call, "q", headlines) else {
        return not_found(call.request);
    };
    let max = count(call, "max", 10, 10);
    let listed: Vec<Value> = articles(&topic)
        .into_iter()
        .take(max)
        .enumerate()
        .map(|(i, (title, url, source, published, description))| {
            json!({
                "id": format!("{:08x}", i), "title": title, "description": description,
                "content": "… [1234 chars]", "url": url, "image": null, "publishedAt": published,
                "lang": call.param("lang").unwrap_or("en"),
                "source": {"id": source.to_ascii_lowercase(), "name": source, "url": "https://news.example.com", "country": "us"},
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({"totalArticles": TOTAL, "articles": listed}),
    )
}
