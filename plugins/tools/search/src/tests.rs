use aigw_plugin_sdk::testing::{Upstream, response};
use aigw_plugin_sdk::{CredentialPlacement, Failure, HttpRequest, NamedUrl, Tool, ToolTarget};
use serde_json::{Value, json};

use super::Search;

const SEARXNG: &str = include_str!("../tests/fixtures/searxng_results.json");
const SEARXNG_EMPTY: &str = include_str!("../tests/fixtures/searxng_empty.json");
const SEARXNG_DOWN: &str = include_str!("../tests/fixtures/searxng_engines_down.json");
const SEARXNG_403: &str = include_str!("../tests/fixtures/searxng_403.html");
const BRAVE: &str = include_str!("../tests/fixtures/brave_results.json");
const BRAVE_NO_WEB: &str = include_str!("../tests/fixtures/brave_no_web.json");
const BRAVE_TOKEN_INVALID: &str = include_str!("../tests/fixtures/brave_token_invalid.json");
const BRAVE_MISSING_TOKEN: &str = include_str!("../tests/fixtures/brave_missing_token.json");
const BRAVE_RATE_LIMITED: &str = include_str!("../tests/fixtures/brave_rate_limited.json");
const TAVILY: &str = include_str!("../tests/fixtures/tavily_results.json");
const TAVILY_401: &str = include_str!("../tests/fixtures/tavily_401.json");
const TAVILY_432: &str = include_str!("../tests/fixtures/tavily_432.json");
const TAVILY_429: &str = include_str!("../tests/fixtures/tavily_429.json");

fn target(upstream: &str) -> ToolTarget {
    ToolTarget {
        upstream: upstream.to_owned(),
        endpoints: vec![NamedUrl::new("base", "http://search.test")],
    }
}

fn search(
    upstream: &str,
    answer: Upstream,
    args: Value,
) -> (Result<Value, Failure>, Vec<HttpRequest>) {
    answer.run(|| Search::invoke("web_search", args, &target(upstream)))
}

#[test]
fn describes_searxng_brave_and_tavily_in_that_order() {
    let descriptor = Search::describe();
    assert_eq!(descriptor.tools.len(), 1);
    let tool = &descriptor.tools[0];
    assert_eq!(tool.name, "web_search");
    assert_eq!(tool.cache_ttl_seconds, 3600);
    assert_eq!(tool.parameters["required"], json!(["query"]));
    assert_eq!(tool.parameters["additionalProperties"], false);
    let names: Vec<&str> = descriptor
        .upstreams
        .iter()
        .map(|u| u.name.as_str())
        .collect();
    assert_eq!(names, ["searxng", "brave", "tavily"]);
    assert_eq!(
        descriptor.upstreams[0].endpoints,
        vec![NamedUrl::new("base", "http://127.0.0.1:8888")]
    );
    assert_eq!(
        descriptor.upstreams[0].credential,
        CredentialPlacement::None
    );
    assert!(!descriptor.upstreams[0].credential_required);
    assert_eq!(
        descriptor.upstreams[1].credential,
        CredentialPlacement::Header {
            name: "X-Subscription-Token".into(),
            prefix: String::new()
        }
    );
    assert_eq!(
        descriptor.upstreams[2].credential,
        CredentialPlacement::bearer()
    );
}

#[test]
fn searxng_results_are_compact_and_trimmed_to_the_limit() {
    let answer = Upstream::new().json("/search", 200, SEARXNG);
    let (result, sent) = search(
        "searxng",
        answer,
        json!({"query": "searxng", "limit": 2, "freshness": "week"}),
    );
    assert_eq!(
        sent[0].url,
        "http://search.test/search?q=searxng&format=json&time_range=month"
    );
    assert_eq!(
        result.unwrap(),
        json!({"results": [
            {"title": "SearXNG", "url": "https://github.com/searxng/searxng", "snippet": "Privacy-respecting, hackable metasearch engine"},
            {"title": "Welcome to SearXNG", "url": "https://docs.searxng.org/", "snippet": "SearXNG is a free internet metasearch engine which aggregates results from up to 251 search services."},
        ], "source": "searxng"})
    );
}

#[test]
fn searxng_nothing_found_is_an_answer_but_engines_down_is_unavailable() {
    let (empty, _) = search(
        "searxng",
        Upstream::new().json("/search", 200, SEARXNG_EMPTY),
        json!({"query": "qwxzv fjkdl"}),
    );
    assert_eq!(empty.unwrap(), json!({"results": [], "source": "searxng"}));
    let (down, _) = search(
        "searxng",
        Upstream::new().json("/search", 200, SEARXNG_DOWN),
        json!({"query": "searxng"}),
    );
    let down = down.unwrap_err();
    assert!(matches!(down, Failure::Unavailable(_)), "{down:?}");
    assert!(
        down.message()
            .contains("google (timeout), duckduckgo (CAPTCHA)"),
        "{down:?}"
    );
}

#[test]
fn searxng_403_says_json_is_disabled() {
    let page = response(
        403,
        &[("content-type", "text/html; charset=utf-8")],
        SEARXNG_403,
    );
    let (result, _) = search(
        "searxng",
        Upstream::new().answer("/search", page),
        json!({"query": "x"}),
    );
    let failure = result.unwrap_err();
    assert!(matches!(failure, Failure::Unavailable(_)), "{failure:?}");
    assert!(failure.message().contains("search.formats"), "{failure:?}");
}

#[test]
fn searxng_bot_limiter_is_a_rate_limit() {
    let (result, _) = search(
        "searxng",
        Upstream::new().answer(
            "/search",
            response(429, &[("content-type", "text/plain")], "Too Many Requests"),
        ),
        json!({"query": "x"}),
    );
    assert!(
        matches!(result, Err(Failure::RateLimited { .. })),
        "{result:?}"
    );
}

#[test]
fn brave_results_lose_their_markup() {
    let answer = Upstream::new().json("/res/v1/web/search", 200, BRAVE);
    let (result, sent) = search(
        "brave",
        answer,
        json!({"query": "searxng", "freshness": "day", "limit": 20}),
    );
    assert_eq!(
        sent[0].url,
        "http://search.test/res/v1/web/search?q=searxng&count=20&freshness=pd"
    );
    let result = result.unwrap();
    assert_eq!(result["source"], "brave");
    assert_eq!(
        result["results"][0]["snippet"],
        "SearXNG is a free internet metasearch engine which aggregates results from various search services and databases."
    );
    assert_eq!(
        result["results"][1]["snippet"],
        "Privacy-respecting, hackable metasearch engine & more"
    );
    let (empty, _) = search(
        "brave",
        Upstream::new().json("/res/v1/web/search", 200, BRAVE_NO_WEB),
        json!({"query": "qwxzv fjkdl"}),
    );
    assert_eq!(empty.unwrap()["results"], json!([]));
}

#[test]
fn brave_reads_the_error_code_before_the_status() {
    let (invalid, _) = search(
        "brave",
        Upstream::new().json("/res/", 422, BRAVE_TOKEN_INVALID),
        json!({"query": "x"}),
    );
    let invalid = invalid.unwrap_err();
    assert!(
        matches!(invalid, Failure::Unauthorized(_)),
        "a bad key is 422, still unauthorized: {invalid:?}"
    );
    assert!(invalid.message().contains("SUBSCRIPTION_TOKEN_INVALID"));
    let (missing, _) = search(
        "brave",
        Upstream::new().json("/res/", 422, BRAVE_MISSING_TOKEN),
        json!({"query": "x"}),
    );
    assert!(
        matches!(missing, Err(Failure::Unauthorized(_))),
        "{missing:?}"
    );
}

#[test]
fn brave_rate_limits_wait_for_the_exhausted_window() {
    let limited = |remaining: &str| {
        response(
            429,
            &[
                ("content-type", "application/json"),
                ("X-RateLimit-Limit", "1, 2000"),
                ("X-RateLimit-Policy", "1;w=1, 2000;w=2592000"),
                ("X-RateLimit-Remaining", remaining),
                ("X-RateLimit-Reset", "1, 1419704"),
            ],
            BRAVE_RATE_LIMITED,
        )
    };
    let (per_second, _) = search(
        "brave",
        Upstream::new().answer("/res/", limited("0, 1959")),
        json!({"query": "x"}),
    );
    assert!(
        matches!(
            per_second,
            Err(Failure::RateLimited {
                retry_after_seconds: Some(1),
                ..
            })
        ),
        "{per_second:?}"
    );
    let (monthly, _) = search(
        "brave",
        Upstream::new().answer("/res/", limited("1, 0")),
        json!({"query": "x"}),
    );
    assert!(
        matches!(
            monthly,
            Err(Failure::RateLimited {
                retry_after_seconds: Some(1_419_704),
                ..
            })
        ),
        "{monthly:?}"
    );
}

#[test]
fn tavily_posts_json_and_reads_its_results() {
    let answer = Upstream::new().json("/search", 200, TAVILY);
    let (result, sent) = search(
        "tavily",
        answer,
        json!({"query": "latest on MCP spec", "limit": 3, "freshness": "week"}),
    );
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].url, "http://search.test/search");
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["query"], "latest on MCP spec");
    assert_eq!(body["max_results"], 3);
    assert_eq!(body["time_range"], "week");
    assert!(
        body.get("api_key").is_none(),
        "the key goes in the header, by the host"
    );
    assert!(
        sent[0]
            .headers
            .iter()
            .any(|h| h.name == "content-type" && h.value == "application/json")
    );
    let result = result.unwrap();
    assert_eq!(
        result["results"][0]["url"],
        "https://modelcontextprotocol.io/specification"
    );
    assert_eq!(result["source"], "tavily");
}

#[test]
fn tavily_432_and_433_are_no_credit() {
    for status in [432, 433] {
        let (result, _) = search(
            "tavily",
            Upstream::new().json("/search", status, TAVILY_432),
            json!({"query": "x"}),
        );
        let failure = result.unwrap_err();
        assert!(
            matches!(failure, Failure::NoCredit(_)),
            "{status}: {failure:?}"
        );
        assert!(failure.message().contains("usage limit"), "{failure:?}");
    }
    let (bad_key, _) = search(
        "tavily",
        Upstream::new().json("/search", 401, TAVILY_401),
        json!({"query": "x"}),
    );
    assert!(
        matches!(bad_key, Err(Failure::Unauthorized(ref m)) if m.contains("invalid API key")),
        "{bad_key:?}"
    );
    let (limited, _) = search(
        "tavily",
        Upstream::new().json("/search", 429, TAVILY_429),
        json!({"query": "x"}),
    );
    assert!(
        matches!(limited, Err(Failure::RateLimited { .. })),
        "{limited:?}"
    );
}

#[test]
fn queries_are_encoded_and_arguments_checked() {
    let (_, sent) = search(
        "searxng",
        Upstream::new().json("/search", 200, SEARXNG_EMPTY),
        json!({"query": "a&format=html"}),
    );
    assert!(
        sent[0]
            .url
            .starts_with("http://search.test/search?q=a%26format%3Dhtml&format=json"),
        "{}",
        sent[0].url
    );
    for args in [
        json!({}),
        json!({"query": " "}),
        json!({"query": "x", "limit": 0}),
        json!({"query": "x", "freshness": "hour"}),
    ] {
        let (result, sent) = search("brave", Upstream::new(), args.clone());
        assert!(
            matches!(result, Err(Failure::InvalidRequest(_))),
            "{args}: {result:?}"
        );
        assert!(sent.is_empty());
    }
}
