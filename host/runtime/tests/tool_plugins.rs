//! The built-in tool plugins (`dist/plugins/{weather,stocks,news,search}.wasm`) end to end in the
//! runtime: each call runs with a `CallContext` whose upstream points the plugin's endpoints at
//! the in-process mock of that API (`aigw_tests::mock::tools`), whose grants are exactly the
//! mock's origin, and whose credential is placed the way the plugin's descriptor says. The tests
//! prove the mock saw the key where the real API wants it, that the plugin's result never holds
//! it, and that every quirk and error class comes back classified for the host's failover.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aigw_egress::{Credential, Egress, Grants, Origin, Placement, Secret};
use aigw_runtime::{
    CallContext, CallError, Failure, Limits, OutboundLimits, Runtime, Services, ToolPlugin,
    ToolTarget,
};
use aigw_tests::mock::tools::{ToolApi, ToolMock, ToolRequest};
use aigw_tests::paths;
use serde_json::{Value, json};

/// The key every test configures; the mock accepts only it (`with_api_key`).
const SECRET: &str = "tool-secret-0123456789";

fn limits() -> Limits {
    Limits {
        call_timeout: Duration::from_secs(5),
        memory_bytes: 64 << 20,
        warm_instances: 1,
        max_instances: 8,
        ..Limits::default()
    }
}

async fn load(name: &str) -> Arc<ToolPlugin> {
    let outbound = OutboundLimits::default();
    let services = Services {
        egress: Some(Egress::new([outbound.connect_timeout]).unwrap()),
        outbound_limits: outbound,
        ..Services::default()
    };
    let runtime = Runtime::with_services(limits(), services).unwrap();
    ToolPlugin::load(&runtime, &paths::built(&format!("plugins/{name}.wasm")))
        .await
        .unwrap()
}

/// One plugin, one mock API, and the key the operator gave that upstream.
struct Bench {
    plugin: Arc<ToolPlugin>,
    mock: ToolMock,
    upstream: &'static str,
    key: Option<&'static str>,
}

impl Bench {
    async fn new(plugin: &str, api: ToolApi) -> Bench {
        Bench {
            plugin: load(plugin).await,
            mock: ToolMock::start(api).await.with_api_key(SECRET),
            upstream: api.name(),
            key: Some(SECRET),
        }
    }

    /// With `key` as the operator's credential (`bad`, `limited`, `spent`, none), which the
    /// mock reads as that account's state.
    async fn keyed(plugin: &str, api: ToolApi, key: Option<&'static str>) -> Bench {
        Bench {
            plugin: load(plugin).await,
            mock: ToolMock::start(api).await,
            upstream: api.name(),
            key,
        }
    }

    /// The context of a call on this upstream: every endpoint the descriptor names pointed at
    /// the mock, the mock's origin granted, the key placed as the descriptor says.
    fn context(&self) -> CallContext {
        let descriptor = self.plugin.descriptor();
        let upstream = descriptor
            .upstreams
            .iter()
            .find(|u| u.name == self.upstream)
            .unwrap_or_else(|| panic!("the plugin has no upstream {}", self.upstream));
        let url = self.mock.url();
        let credential = self.key.and_then(|key| match &upstream.credential {
            Placement::None => None,
            placement => Some(
                Credential::new(Secret::new(key.to_owned()), placement.clone(), &url, &[]).unwrap(),
            ),
        });
        CallContext {
            key: Some(Arc::from("test-key")),
            grants: Grants::new([Origin::of(&url).unwrap()]),
            credential,
            upstream: ToolTarget {
                upstream: self.upstream.to_owned(),
                endpoints: upstream
                    .endpoints
                    .iter()
                    .map(|(name, _)| (name.clone(), url.clone()))
                    .collect(),
            },
            ..CallContext::default()
        }
    }

    async fn call(&self, tool: &str, args: Value) -> Result<Value, Failure> {
        self.call_with(&self.context(), tool, args).await
    }

    async fn call_with(
        &self,
        context: &CallContext,
        tool: &str,
        args: Value,
    ) -> Result<Value, Failure> {
        match self.plugin.invoke(context, tool, &args.to_string()).await {
            Ok(text) => {
                assert!(
                    !text.contains(SECRET),
                    "the plugin's result must never hold the key: {text}"
                );
                Ok(serde_json::from_str(&text).unwrap())
            }
            Err(CallError::Failure(failure)) => {
                assert!(
                    !failure.message().contains(SECRET),
                    "a failure must never hold the key: {failure:?}"
                );
                Err(failure)
            }
            Err(CallError::Fault(fault)) => panic!("the plugin faulted: {fault:?}"),
        }
    }

    fn requests(&self) -> Vec<ToolRequest> {
        self.mock.requests()
    }
}

fn expect_failure(result: Result<Value, Failure>) -> Failure {
    match result {
        Err(failure) => failure,
        Ok(value) => panic!("expected a failure, got {value}"),
    }
}

// ----------------------------------------------------------------------------------- weather

#[tokio::test]
async fn weather_geocodes_then_forecasts_without_a_key() {
    let bench = Bench::new("weather", ToolApi::OpenMeteo).await;
    let current = bench
        .call("weather_current", json!({"city": "Berlin"}))
        .await
        .unwrap();
    assert_eq!(current["location"]["name"], "Berlin");
    assert_eq!(current["location"]["latitude"], 52.52437);
    assert!(current["current"]["temperature"].is_number(), "{current}");
    assert!(current["current"]["conditions"].is_string(), "{current}");
    assert_eq!(current["units"]["temperature"], "°C");
    let requests = bench.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/search", "/v1/forecast"]);
    assert_eq!(requests[0].param("name"), Some("Berlin"));
    assert_eq!(requests[1].param("latitude"), Some("52.52437"));

    let forecast = bench
        .call(
            "weather_forecast",
            json!({"city": "Paris", "days": 3, "units": "imperial"}),
        )
        .await
        .unwrap();
    let days = forecast["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[0]["date"], "2025-06-01");
    assert_eq!(forecast["units"]["temperature"], "°F");
    assert_eq!(
        bench.requests()[3].param("temperature_unit"),
        Some("fahrenheit")
    );
}

#[tokio::test]
async fn weather_for_an_unknown_place_is_an_invalid_request_naming_it() {
    let bench = Bench::new("weather", ToolApi::OpenMeteo).await;
    let failure = expect_failure(
        bench
            .call("weather_current", json!({"city": "Nowhere"}))
            .await,
    );
    assert!(matches!(failure, Failure::InvalidRequest(_)), "{failure:?}");
    assert!(failure.message().contains("\"Nowhere\""), "{failure:?}");
    assert_eq!(
        bench.requests().len(),
        1,
        "no forecast for a place that does not exist"
    );
}

#[tokio::test]
async fn weather_rate_limits_wait_for_the_window_their_reason_names() {
    let bench = Bench::new("weather", ToolApi::OpenMeteo).await;
    let minutely = expect_failure(bench.call("weather_current", json!({"city": "RATE"})).await);
    assert!(
        matches!(
            minutely,
            Failure::RateLimited {
                retry_after_seconds: Some(60),
                ..
            }
        ),
        "{minutely:?}"
    );
    let daily = expect_failure(
        bench
            .call("weather_current", json!({"city": "RATE-DAILY"}))
            .await,
    );
    assert!(
        matches!(
            daily,
            Failure::RateLimited {
                retry_after_seconds: Some(86_400),
                ..
            }
        ),
        "{daily:?}"
    );
    let forecast = expect_failure(
        bench
            .call("weather_forecast", json!({"city": "RATE-FORECAST"}))
            .await,
    );
    assert!(
        matches!(forecast, Failure::RateLimited { .. }),
        "{forecast:?}"
    );
}

#[tokio::test]
async fn weather_server_errors_and_bot_walls_are_unavailable() {
    let bench = Bench::new("weather", ToolApi::OpenMeteo).await;
    for city in ["ERROR", "HTML"] {
        let failure = expect_failure(bench.call("weather_current", json!({"city": city})).await);
        assert!(
            matches!(failure, Failure::Unavailable(_)),
            "{city}: {failure:?}"
        );
    }
}

#[tokio::test]
async fn weather_reaches_nothing_it_was_not_granted() {
    let bench = Bench::new("weather", ToolApi::OpenMeteo).await;
    let context = CallContext {
        grants: Grants::none(),
        ..bench.context()
    };
    let failure = bench
        .call_with(&context, "weather_current", json!({"city": "Berlin"}))
        .await;
    assert!(failure.is_err(), "{failure:?}");
    assert!(
        bench.requests().is_empty(),
        "refused before a connection opened"
    );
}

// ------------------------------------------------------------------------------------ stocks

#[tokio::test]
async fn stocks_finnhub_gets_its_key_in_the_header() {
    let bench = Bench::new("stocks", ToolApi::Finnhub).await;
    let quote = bench
        .call("stocks_quote", json!({"symbol": "aapl"}))
        .await
        .unwrap();
    assert_eq!(quote["symbol"], "AAPL");
    assert_eq!(quote["source"], "finnhub");
    assert_eq!(quote["as_of"], "2025-10-30T20:00:00Z");
    assert!(quote["price"].as_f64().unwrap() > 0.0, "{quote}");
    let request = &bench.requests()[0];
    assert_eq!(request.path, "/api/v1/quote");
    assert_eq!(request.header("x-finnhub-token"), Some(SECRET));
    assert_eq!(request.param("token"), None);
}

#[tokio::test]
async fn stocks_alphavantage_gets_its_key_in_the_query_and_answers_in_the_same_shape() {
    let finnhub = Bench::new("stocks", ToolApi::Finnhub).await;
    let alphavantage = Bench::new("stocks", ToolApi::AlphaVantage).await;
    let from_finnhub = finnhub
        .call("stocks_quote", json!({"symbol": "IBM"}))
        .await
        .unwrap();
    let from_av = alphavantage
        .call("stocks_quote", json!({"symbol": "IBM"}))
        .await
        .unwrap();
    assert_eq!(from_av["source"], "alphavantage");
    assert_eq!(
        from_av["price"], from_finnhub["price"],
        "one price per symbol in the mocks"
    );
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&from_av), keys(&from_finnhub));
    let request = &alphavantage.requests()[0];
    assert_eq!(request.param("apikey"), Some(SECRET));
    assert_eq!(request.param("function"), Some("GLOBAL_QUOTE"));
    assert_eq!(request.header("x-finnhub-token"), None);
}

#[tokio::test]
async fn stocks_unknown_symbols_are_invalid_requests_on_both_upstreams() {
    for api in [ToolApi::Finnhub, ToolApi::AlphaVantage] {
        let bench = Bench::new("stocks", api).await;
        let failure = expect_failure(bench.call("stocks_quote", json!({"symbol": "ZZZZ"})).await);
        assert!(
            matches!(failure, Failure::InvalidRequest(_)),
            "{api:?}: {failure:?}"
        );
        assert!(failure.message().contains("ZZZZ"), "{failure:?}");
    }
}

#[tokio::test]
async fn stocks_account_states_are_classified_per_upstream() {
    let cases = [
        (ToolApi::Finnhub, Some("bad"), "unauthorized"),
        (ToolApi::Finnhub, None, "unauthorized"),
        (ToolApi::Finnhub, Some("limited"), "rate-limited"),
        (ToolApi::AlphaVantage, Some("bad"), "unauthorized"),
        (ToolApi::AlphaVantage, Some("limited"), "rate-limited"),
        (ToolApi::AlphaVantage, Some("spent"), "no-credit"),
    ];
    for (api, key, class) in cases {
        let bench = Bench::keyed("stocks", api, key).await;
        let failure = expect_failure(bench.call("stocks_quote", json!({"symbol": "AAPL"})).await);
        assert_eq!(
            class_of(&failure),
            class,
            "{api:?} with key {key:?}: {failure:?}"
        );
    }
}

// -------------------------------------------------------------------------------------- news

#[tokio::test]
async fn news_newsapi_headlines_drop_removed_articles_and_trim_to_the_limit() {
    let bench = Bench::new("news", ToolApi::NewsApi).await;
    let result = bench
        .call(
            "news_headlines",
            json!({"category": "technology", "limit": 3}),
        )
        .await
        .unwrap();
    let articles = result["articles"].as_array().unwrap();
    assert_eq!(articles.len(), 3);
    assert!(
        articles.iter().all(|a| a["title"] != "[Removed]"),
        "{result}"
    );
    assert_eq!(result["source"], "newsapi");
    let request = &bench.requests()[0];
    assert_eq!(request.path, "/v2/top-headlines");
    assert_eq!(request.header("x-api-key"), Some(SECRET));
    assert_eq!(request.param("country"), Some("us"));
    assert_eq!(request.param("category"), Some("technology"));
}

#[tokio::test]
async fn news_gnews_search_gets_its_key_in_the_query() {
    let bench = Bench::new("news", ToolApi::GNews).await;
    let result = bench
        .call(
            "news_search",
            json!({"query": "open source", "from": "2025-05-20"}),
        )
        .await
        .unwrap();
    assert_eq!(result["articles"].as_array().unwrap().len(), 5);
    assert_eq!(result["source"], "gnews");
    let request = &bench.requests()[0];
    assert_eq!(request.path, "/api/v4/search");
    assert_eq!(request.param("apikey"), Some(SECRET));
    assert_eq!(request.param("q"), Some("open source"));
    assert_eq!(request.param("from"), Some("2025-05-20T00:00:00Z"));
    let empty = bench
        .call("news_search", json!({"query": "Nothing"}))
        .await
        .unwrap();
    assert_eq!(empty["articles"], json!([]));
}

#[tokio::test]
async fn news_account_states_are_classified_per_upstream() {
    let cases = [
        (ToolApi::NewsApi, None, "unauthorized"),
        (ToolApi::NewsApi, Some("bad"), "unauthorized"),
        (ToolApi::NewsApi, Some("limited"), "rate-limited"),
        (ToolApi::NewsApi, Some("spent"), "no-credit"),
        (ToolApi::GNews, Some("bad"), "unauthorized"),
        (ToolApi::GNews, Some("limited"), "rate-limited"),
        (ToolApi::GNews, Some("spent"), "no-credit"),
    ];
    for (api, key, class) in cases {
        let bench = Bench::keyed("news", api, key).await;
        let failure = expect_failure(bench.call("news_headlines", json!({})).await);
        assert_eq!(
            class_of(&failure),
            class,
            "{api:?} with key {key:?}: {failure:?}"
        );
    }
    let too_old = Bench::new("news", ToolApi::NewsApi).await;
    let failure = expect_failure(
        too_old
            .call("news_search", json!({"query": "x", "from": "2024-01-01"}))
            .await,
    );
    assert_eq!(class_of(&failure), "invalid-request", "{failure:?}");
}

// ------------------------------------------------------------------------------------ search

#[tokio::test]
async fn search_searxng_answers_compact_results_and_says_when_json_is_off() {
    let bench = Bench::new("search", ToolApi::SearXng).await;
    let result = bench
        .call("web_search", json!({"query": "rust wasm", "limit": 3}))
        .await
        .unwrap();
    let results = result["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0],
        json!({"title": "rust wasm — result 1", "url": "https://example.com/rust-wasm/1", "snippet": "Everything about rust wasm, page 1."})
    );
    assert_eq!(bench.requests()[0].param("format"), Some("json"));
    let off = expect_failure(
        bench
            .call("web_search", json!({"query": "FORBIDDEN"}))
            .await,
    );
    assert!(matches!(off, Failure::Unavailable(_)), "{off:?}");
    assert!(off.message().contains("search.formats"), "{off:?}");
    let down = expect_failure(
        bench
            .call("web_search", json!({"query": "ENGINES-DOWN"}))
            .await,
    );
    assert!(matches!(down, Failure::Unavailable(_)), "{down:?}");
    let none = bench
        .call("web_search", json!({"query": "Nothing"}))
        .await
        .unwrap();
    assert_eq!(none["results"], json!([]));
}

#[tokio::test]
async fn search_brave_bad_key_is_422_and_still_unauthorized() {
    let bench = Bench::new("search", ToolApi::Brave).await;
    let result = bench
        .call("web_search", json!({"query": "rust", "freshness": "week"}))
        .await
        .unwrap();
    assert_eq!(result["source"], "brave");
    assert_eq!(
        result["results"][0]["snippet"],
        "Everything about rust, page 1."
    );
    let request = &bench.requests()[0];
    assert_eq!(request.header("x-subscription-token"), Some(SECRET));
    assert_eq!(request.param("freshness"), Some("pw"));

    let bad = Bench::keyed("search", ToolApi::Brave, Some("bad")).await;
    let failure = expect_failure(bad.call("web_search", json!({"query": "rust"})).await);
    assert!(matches!(failure, Failure::Unauthorized(_)), "{failure:?}");
    assert!(
        failure.message().contains("SUBSCRIPTION_TOKEN_INVALID"),
        "{failure:?}"
    );
}

#[tokio::test]
async fn search_brave_rate_limits_wait_for_the_exhausted_window() {
    let per_second = Bench::keyed("search", ToolApi::Brave, Some("limited")).await;
    let failure = expect_failure(
        per_second
            .call("web_search", json!({"query": "rust"}))
            .await,
    );
    assert!(
        matches!(
            failure,
            Failure::RateLimited {
                retry_after_seconds: Some(1),
                ..
            }
        ),
        "{failure:?}"
    );
    let monthly = Bench::keyed("search", ToolApi::Brave, Some("spent")).await;
    let failure = expect_failure(monthly.call("web_search", json!({"query": "rust"})).await);
    assert!(
        matches!(
            failure,
            Failure::RateLimited {
                retry_after_seconds: Some(1_419_704),
                ..
            }
        ),
        "{failure:?}"
    );
}

#[tokio::test]
async fn search_tavily_posts_with_a_bearer_key_and_432_is_no_credit() {
    let bench = Bench::new("search", ToolApi::Tavily).await;
    let result = bench
        .call("web_search", json!({"query": "mcp", "limit": 2}))
        .await
        .unwrap();
    assert_eq!(result["results"].as_array().unwrap().len(), 2);
    let request = &bench.requests()[0];
    assert_eq!(request.method, "POST");
    let bearer = format!("Bearer {SECRET}");
    assert_eq!(request.header("authorization"), Some(bearer.as_str()));
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["max_results"], 2);

    let spent = Bench::keyed("search", ToolApi::Tavily, Some("spent")).await;
    let failure = expect_failure(spent.call("web_search", json!({"query": "mcp"})).await);
    assert!(matches!(failure, Failure::NoCredit(_)), "{failure:?}");
    let bad = Bench::keyed("search", ToolApi::Tavily, Some("bad")).await;
    let failure = expect_failure(bad.call("web_search", json!({"query": "mcp"})).await);
    assert!(matches!(failure, Failure::Unauthorized(_)), "{failure:?}");
}

#[tokio::test]
async fn every_plugin_describes_its_tools_and_upstreams() {
    let expected = [
        (
            "weather",
            vec!["weather_current", "weather_forecast"],
            vec!["open-meteo"],
        ),
        (
            "stocks",
            vec!["stocks_quote"],
            vec!["finnhub", "alphavantage"],
        ),
        (
            "news",
            vec!["news_headlines", "news_search"],
            vec!["newsapi", "gnews"],
        ),
        (
            "search",
            vec!["web_search"],
            vec!["searxng", "brave", "tavily"],
        ),
    ];
    for (name, tools, upstreams) in expected {
        let plugin = load(name).await;
        let descriptor = plugin.descriptor();
        assert_eq!(descriptor.name, name);
        let described: Vec<&str> = descriptor.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(described, tools, "{name}");
        let described: Vec<&str> = descriptor
            .upstreams
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(described, upstreams, "{name}");
        for tool in &descriptor.tools {
            let schema: Value = serde_json::from_str(&tool.parameters_schema).unwrap();
            assert_eq!(schema["additionalProperties"], false, "{}", tool.name);
            assert!(tool.output_schema.is_some(), "{}", tool.name);
            assert!(tool.cache_ttl > Duration::ZERO, "{}", tool.name);
        }
    }
}

/// A failure's class in the WIT's words.
fn class_of(failure: &Failure) -> &'static str {
    match failure {
        Failure::RateLimited { .. } => "rate-limited",
        Failure::Unavailable(_) => "unavailable",
        Failure::ContextLengthExceeded(_) => "context-length-exceeded",
        Failure::InvalidRequest(_) => "invalid-request",
        Failure::ContentFiltered(_) => "content-filtered",
        Failure::Unauthorized(_) => "unauthorized",
        Failure::NoCredit(_) => "no-credit",
        Failure::BadResponse(_) => "bad-response",
    }
}
