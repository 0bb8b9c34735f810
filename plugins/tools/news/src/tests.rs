use aigw_plugin_sdk::testing::Upstream;
use aigw_plugin_sdk::{CredentialPlacement, Failure, HttpRequest, NamedUrl, Tool, ToolTarget};
use serde_json::{Value, json};

use super::News;

const NEWSAPI_HEADLINES: &str = include_str!("../tests/fixtures/newsapi_headlines.json");
const NEWSAPI_EMPTY: &str = include_str!("../tests/fixtures/newsapi_empty.json");
const NEWSAPI_RATE_LIMITED: &str = include_str!("../tests/fixtures/newsapi_rate_limited.json");
const NEWSAPI_KEY_INVALID: &str = include_str!("../tests/fixtures/newsapi_key_invalid.json");
const NEWSAPI_KEY_EXHAUSTED: &str = include_str!("../tests/fixtures/newsapi_key_exhausted.json");
const NEWSAPI_PARAMETER_INVALID: &str =
    include_str!("../tests/fixtures/newsapi_parameter_invalid.json");
const GNEWS_SEARCH: &str = include_str!("../tests/fixtures/gnews_search.json");
const GNEWS_EMPTY: &str = include_str!("../tests/fixtures/gnews_empty.json");
const GNEWS_QUOTA: &str = include_str!("../tests/fixtures/gnews_quota.json");
const GNEWS_UNAUTHORIZED: &str = include_str!("../tests/fixtures/gnews_unauthorized.json");
const GNEWS_TOO_MANY: &str = include_str!("../tests/fixtures/gnews_too_many.json");

fn target(upstream: &str) -> ToolTarget {
    ToolTarget {
        upstream: upstream.to_owned(),
        endpoints: vec![NamedUrl::new("base", "http://news.test")],
    }
}

fn call(
    upstream: &str,
    answer: Upstream,
    tool: &str,
    args: Value,
) -> (Result<Value, Failure>, Vec<HttpRequest>) {
    answer.run(|| News::invoke(tool, args, &target(upstream)))
}

#[test]
fn describes_two_tools_over_newsapi_then_gnews() {
    let descriptor = News::describe();
    let names: Vec<&str> = descriptor.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["news_headlines", "news_search"]);
    assert_eq!(descriptor.tools[1].parameters["required"], json!(["query"]));
    assert!(
        descriptor
            .tools
            .iter()
            .all(|t| t.cache_ttl_seconds == 600 && t.parameters["additionalProperties"] == false)
    );
    let upstreams: Vec<&str> = descriptor
        .upstreams
        .iter()
        .map(|u| u.name.as_str())
        .collect();
    assert_eq!(upstreams, ["newsapi", "gnews"]);
    assert_eq!(
        descriptor.upstreams[0].credential,
        CredentialPlacement::Header {
            name: "X-Api-Key".into(),
            prefix: String::new()
        }
    );
    assert_eq!(
        descriptor.upstreams[1].credential,
        CredentialPlacement::Query("apikey".into())
    );
}

#[test]
fn newsapi_headlines_drop_removed_articles_and_keep_the_rest_compact() {
    let answer = Upstream::new().json("/v2/top-headlines", 200, NEWSAPI_HEADLINES);
    let (result, sent) = call(
        "newsapi",
        answer,
        "news_headlines",
        json!({"category": "technology", "country": "GB", "limit": 5}),
    );
    assert_eq!(
        sent[0].url,
        "http://news.test/v2/top-headlines?country=gb&category=technology&pageSize=10"
    );
    let result = result.unwrap();
    assert_eq!(result["source"], "newsapi");
    assert_eq!(result["total_results"], 38);
    let articles = result["articles"].as_array().unwrap();
    assert_eq!(articles.len(), 2, "the [Removed] article is dropped");
    assert_eq!(
        articles[0],
        json!({"title": "A new chip doubles battery life", "source": "The Verge",
               "url": "https://www.theverge.com/2025/6/1/chip", "published_at": "2025-06-01T12:00:00Z",
               "description": "The company says its latest laptop chip runs twice as long on a charge."})
    );
    assert_eq!(articles[1]["description"], Value::Null);
}

#[test]
fn results_are_trimmed_to_the_limit() {
    let answer = Upstream::new().json("/v2/top-headlines", 200, NEWSAPI_HEADLINES);
    let (result, _) = call("newsapi", answer, "news_headlines", json!({"limit": 1}));
    assert_eq!(result.unwrap()["articles"].as_array().unwrap().len(), 1);
}

#[test]
fn newsapi_search_asks_for_the_newest_first() {
    let answer = Upstream::new().json("/v2/everything", 200, NEWSAPI_EMPTY);
    let (result, sent) = call(
        "newsapi",
        answer,
        "news_search",
        json!({"query": "open source AI", "from": "2025-05-01", "language": "en"}),
    );
    assert_eq!(
        sent[0].url,
        "http://news.test/v2/everything?q=open%20source%20AI&from=2025-05-01&language=en&sortBy=publishedAt&pageSize=10"
    );
    assert_eq!(
        result.unwrap(),
        json!({"articles": [], "total_results": 0, "source": "newsapi"})
    );
}

/// What a test expects of a failure.
type Expect = fn(&Failure) -> bool;

#[test]
fn newsapi_error_codes_decide_before_statuses() {
    let cases: [(u16, &str, Expect); 4] = [
        (429, NEWSAPI_RATE_LIMITED, |f| {
            matches!(f, Failure::RateLimited { .. })
        }),
        (401, NEWSAPI_KEY_INVALID, |f| {
            matches!(f, Failure::Unauthorized(_))
        }),
        (429, NEWSAPI_KEY_EXHAUSTED, |f| {
            matches!(f, Failure::NoCredit(_))
        }),
        (426, NEWSAPI_PARAMETER_INVALID, |f| {
            matches!(f, Failure::InvalidRequest(_))
        }),
    ];
    for (status, body, expected) in cases {
        let answer = Upstream::new().json("/v2/", status, body);
        let (result, _) = call("newsapi", answer, "news_search", json!({"query": "x"}));
        let failure = result.unwrap_err();
        assert!(expected(&failure), "{status} {body}: {failure:?}");
        assert!(failure.message().starts_with("NewsAPI: "), "{failure:?}");
    }
    let answer = Upstream::new().json("/v2/", 200, NEWSAPI_KEY_EXHAUSTED);
    let (result, _) = call("newsapi", answer, "news_headlines", json!({}));
    assert!(
        matches!(result, Err(Failure::NoCredit(_))),
        "status error with HTTP 200: {result:?}"
    );
}

#[test]
fn gnews_search_reads_its_articles_and_gets_a_full_time() {
    let answer = Upstream::new().json("/api/v4/search", 200, GNEWS_SEARCH);
    let (result, sent) = call(
        "gnews",
        answer,
        "news_search",
        json!({"query": "AI", "from": "2025-05-01", "limit": 20}),
    );
    assert_eq!(
        sent[0].url,
        "http://news.test/api/v4/search?q=AI&from=2025-05-01T00%3A00%3A00Z&sortby=publishedAt&max=10"
    );
    let result = result.unwrap();
    assert_eq!(result["source"], "gnews");
    assert_eq!(result["total_results"], 1234);
    assert_eq!(result["articles"][0]["source"], "CNN");
    assert_eq!(
        result["articles"][1]["url"],
        "https://example-news.com/chips"
    );
}

#[test]
fn gnews_headlines_default_to_general() {
    let answer = Upstream::new().json("/api/v4/top-headlines", 200, GNEWS_EMPTY);
    let (result, sent) = call("gnews", answer, "news_headlines", json!({}));
    assert_eq!(
        sent[0].url,
        "http://news.test/api/v4/top-headlines?category=general&country=us&max=5"
    );
    assert_eq!(result.unwrap()["articles"], json!([]));
}

#[test]
fn gnews_403_is_the_daily_quota_not_a_bad_key() {
    let (quota, _) = call(
        "gnews",
        Upstream::new().json("/api/v4/", 403, GNEWS_QUOTA),
        "news_headlines",
        json!({}),
    );
    let quota = quota.unwrap_err();
    assert!(matches!(quota, Failure::NoCredit(_)), "{quota:?}");
    assert!(
        quota.message().contains("request limit for today"),
        "{quota:?}"
    );
    let (bad_key, _) = call(
        "gnews",
        Upstream::new().json("/api/v4/", 401, GNEWS_UNAUTHORIZED),
        "news_headlines",
        json!({}),
    );
    assert!(
        matches!(bad_key, Err(Failure::Unauthorized(ref m)) if m.contains("invalid")),
        "{bad_key:?}"
    );
    let (too_many, _) = call(
        "gnews",
        Upstream::new().json("/api/v4/", 429, GNEWS_TOO_MANY),
        "news_headlines",
        json!({}),
    );
    assert!(
        matches!(too_many, Err(Failure::RateLimited { .. })),
        "{too_many:?}"
    );
    let (down, _) = call(
        "gnews",
        Upstream::new().json("/api/v4/", 503, "{}"),
        "news_headlines",
        json!({}),
    );
    assert!(matches!(down, Err(Failure::Unavailable(_))), "{down:?}");
}

#[test]
fn arguments_are_checked_before_any_request() {
    for (tool, args) in [
        ("news_search", json!({})),
        ("news_search", json!({"query": "x", "from": "yesterday"})),
        ("news_headlines", json!({"country": "usa"})),
        ("news_headlines", json!({"category": "weather"})),
        ("news_headlines", json!({"limit": 50})),
        ("news_weather", json!({})),
    ] {
        let (result, sent) = call("newsapi", Upstream::new(), tool, args.clone());
        assert!(
            matches!(result, Err(Failure::InvalidRequest(_))),
            "{args}: {result:?}"
        );
        assert!(sent.is_empty());
    }
}
