//! The four built-in tool plugins (`dist/plugins/{weather,stocks,news,search}.wasm`) through the
//! real binary and REST, over the mock tool APIs (`aigw_tests::mock::tools`): every upstream of
//! `[tools.<name>]` pointed at its API's mock, the keys given in the config. Failover between a
//! tool's upstreams on each failure class the plugins report (rate limited, bad key, no credit,
//! JSON disabled), no failover for the caller's own mistake (an unknown symbol or place), the
//! shared cache, and the key reaching its own upstream only, never the client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use aigw_tests::gateway::{Gateway, GatewayBuilder, status_and_json};
use aigw_tests::mock::tools::{ToolApi, ToolMock};
use aigw_tests::setup::{error_message, plugins_section, toml_str};
use serde_json::{Value, json};

/// The keys the config gives the upstreams (the mocks read `limited`, `bad`, `spent` as those
/// accounts; any other key is a good one).
const FINNHUB_KEY: &str = "fh-SECRET-e2e-1a2b3c";
const ALPHAVANTAGE_KEY: &str = "av-SECRET-e2e-4d5e6f";

/// One `[[tools.<tool>.upstream]]` table: its name, the mock every endpoint points at, the key.
fn upstream(
    tool: &str,
    name: &str,
    endpoints: &[&str],
    mock: &ToolMock,
    key: Option<&str>,
) -> String {
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|endpoint| format!("{endpoint} = {}", toml_str(&mock.url())))
        .collect();
    let key = key.map_or(String::new(), |key| {
        format!("api_key = {}\n", toml_str(key))
    });
    format!(
        "[[tools.{tool}.upstream]]\nname = {}\nendpoints = {{ {} }}\n{key}",
        toml_str(name),
        endpoints.join(", ")
    )
}

fn config(db: &Path, tools: &[String]) -> String {
    format!(
        "{}\n[memory]\npath = {}\n\n{}",
        plugins_section(),
        toml_str(&db.to_string_lossy()),
        tools.join("\n")
    )
}

async fn start(db: &Path, tools: &[String]) -> Gateway {
    GatewayBuilder::default().start(&config(db, tools)).await
}

/// What an invoke answered: status, `x-aigw-cache`, body.
async fn invoke(gateway: &Gateway, tool: &str, arguments: Value) -> (u16, Option<String>, Value) {
    let response = gateway
        .client()
        .post(gateway.url(&format!("/v1/tools/{tool}/invoke")))
        .json(&json!({ "arguments": arguments }))
        .send()
        .await
        .unwrap();
    let cache = response
        .headers()
        .get("x-aigw-cache")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, _, body) = status_and_json(response).await;
    (status, cache, body)
}

/// `[tools.stocks]` with Finnhub then Alpha Vantage, each with its key.
struct Stocks {
    finnhub: ToolMock,
    alphavantage: ToolMock,
    _dir: tempfile::TempDir,
    gateway: Gateway,
}

impl Stocks {
    async fn start(finnhub_key: &str) -> Stocks {
        let dir = tempfile::tempdir().unwrap();
        let finnhub = ToolMock::start(ToolApi::Finnhub).await;
        let alphavantage = ToolMock::start(ToolApi::AlphaVantage).await;
        let tools = [
            "[tools.stocks]\n".to_owned(),
            upstream("stocks", "finnhub", &["base"], &finnhub, Some(finnhub_key)),
            upstream(
                "stocks",
                "alphavantage",
                &["base"],
                &alphavantage,
                Some(ALPHAVANTAGE_KEY),
            ),
        ];
        let gateway = start(&dir.path().join("aigw.db"), &tools).await;
        Stocks {
            finnhub,
            alphavantage,
            _dir: dir,
            gateway,
        }
    }
}

#[tokio::test]
async fn a_rate_limited_finnhub_fails_over_to_alpha_vantage() {
    let stocks = Stocks::start("limited").await;
    let (status, _, body) =
        invoke(&stocks.gateway, "stocks_quote", json!({"symbol": "MSFT"})).await;
    assert_eq!(status, 200, "{body}\n{}", stocks.gateway.stderr());
    assert_eq!(body["upstream"], "alphavantage");
    assert_eq!(body["result"]["source"], "alphavantage");
    assert_eq!(body["result"]["symbol"], "MSFT");
    assert!(body["result"]["price"].as_f64().unwrap() > 0.0, "{body}");

    let finnhub = stocks.finnhub.requests();
    assert_eq!(finnhub.len(), 1, "one attempt on Finnhub");
    assert_eq!(finnhub[0].header("x-finnhub-token"), Some("limited"));
    let alphavantage = stocks.alphavantage.requests();
    assert_eq!(alphavantage.len(), 1);
    assert_eq!(
        alphavantage[0].param("apikey"),
        Some(ALPHAVANTAGE_KEY),
        "its key in the query"
    );
    assert_eq!(
        alphavantage[0].header("x-finnhub-token"),
        None,
        "Finnhub's key stays with Finnhub"
    );
    let text = body.to_string();
    assert!(
        !text.contains(ALPHAVANTAGE_KEY) && !text.contains("limited"),
        "{text}"
    );
}

#[tokio::test]
async fn a_bad_finnhub_key_fails_over_and_finnhub_is_then_skipped() {
    let stocks = Stocks::start("bad").await;
    let (status, _, first) =
        invoke(&stocks.gateway, "stocks_quote", json!({"symbol": "IBM"})).await;
    assert_eq!(status, 200, "{first}\n{}", stocks.gateway.stderr());
    assert_eq!(first["upstream"], "alphavantage");
    let (status, _, second) =
        invoke(&stocks.gateway, "stocks_quote", json!({"symbol": "AAPL"})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["upstream"], "alphavantage");
    assert_eq!(
        stocks.finnhub.requests().len(),
        1,
        "a rejected key takes Finnhub out: the second call does not try it"
    );
    assert_eq!(stocks.alphavantage.requests().len(), 2);
}

#[tokio::test]
async fn an_unknown_symbol_is_the_callers_mistake_and_no_upstream_is_tried_after_it() {
    let stocks = Stocks::start(FINNHUB_KEY).await;
    let (status, _, body) =
        invoke(&stocks.gateway, "stocks_quote", json!({"symbol": "ZZZZ"})).await;
    assert_eq!(status, 400, "{body}");
    let message = error_message(&body);
    assert!(message.contains("ZZZZ"), "{message}");
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(stocks.finnhub.requests().len(), 1);
    assert!(
        stocks.alphavantage.requests().is_empty(),
        "no failover for an unknown symbol"
    );
    assert_eq!(
        stocks.finnhub.requests()[0].header("x-finnhub-token"),
        Some(FINNHUB_KEY)
    );
}

#[tokio::test]
async fn arguments_outside_the_schema_are_refused_before_any_upstream() {
    let stocks = Stocks::start(FINNHUB_KEY).await;
    for (arguments, field) in [
        (json!({"symbol": "AAPL&symbol=MSFT"}), "symbol"),
        (json!({}), "symbol"),
        (json!({"symbol": "AAPL", "exchange": "US"}), "exchange"),
    ] {
        let (status, _, body) = invoke(&stocks.gateway, "stocks_quote", arguments.clone()).await;
        assert_eq!(status, 400, "{arguments}: {body}");
        assert_eq!(body["error"]["code"], "invalid_tool_arguments", "{body}");
        // The field is the parameter, or (an argument the schema does not have) named in the
        // message about the arguments object.
        let param = body["error"]["param"].as_str().unwrap_or_default();
        assert!(
            param.contains(field) || error_message(&body).contains(field),
            "{arguments}: {body}"
        );
    }
    assert!(stocks.finnhub.requests().is_empty());
    assert!(stocks.alphavantage.requests().is_empty());
}

#[tokio::test]
async fn weather_answers_once_then_from_the_shared_cache_and_names_an_unknown_place() {
    let dir = tempfile::tempdir().unwrap();
    let meteo = ToolMock::start(ToolApi::OpenMeteo).await;
    let tools = [
        "[tools.weather]\n".to_owned(),
        upstream(
            "weather",
            "open-meteo",
            &["geocoding", "forecast"],
            &meteo,
            None,
        ),
    ];
    let gateway = start(&dir.path().join("aigw.db"), &tools).await;
    let (status, cache, first) =
        invoke(&gateway, "weather_current", json!({"city": "Berlin"})).await;
    assert_eq!(status, 200, "{first}\n{}", gateway.stderr());
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(first["upstream"], "open-meteo");
    assert_eq!(first["result"]["location"]["name"], "Berlin");
    assert!(
        first["result"]["current"]["conditions"].is_string(),
        "{first}"
    );
    let (status, cache, second) =
        invoke(&gateway, "weather_current", json!({"city": "Berlin"})).await;
    assert_eq!(status, 200);
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(second["result"], first["result"]);
    let paths: Vec<String> = meteo.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/v1/search", "/v1/forecast"],
        "the hit reached no upstream"
    );

    let (status, _, unknown) =
        invoke(&gateway, "weather_current", json!({"city": "Nowhere"})).await;
    assert_eq!(status, 400, "{unknown}");
    assert!(error_message(&unknown).contains("\"Nowhere\""), "{unknown}");
    let (status, _, limited) = invoke(&gateway, "weather_current", json!({"city": "RATE"})).await;
    assert_eq!(status, 429, "{limited}");
}

#[tokio::test]
async fn a_searxng_without_json_fails_over_to_brave() {
    let dir = tempfile::tempdir().unwrap();
    let searxng = ToolMock::start(ToolApi::SearXng).await;
    let brave = ToolMock::start(ToolApi::Brave).await;
    let tavily = ToolMock::start(ToolApi::Tavily).await;
    let tools = [
        "[tools.search]\n".to_owned(),
        upstream("search", "searxng", &["base"], &searxng, None),
        upstream(
            "search",
            "brave",
            &["base"],
            &brave,
            Some("brave-SECRET-key"),
        ),
        upstream(
            "search",
            "tavily",
            &["base"],
            &tavily,
            Some("tvly-SECRET-key"),
        ),
    ];
    let gateway = start(&dir.path().join("aigw.db"), &tools).await;
    let (status, _, body) = invoke(
        &gateway,
        "web_search",
        json!({"query": "FORBIDDEN", "limit": 2}),
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", gateway.stderr());
    assert_eq!(body["upstream"], "brave");
    assert_eq!(body["result"]["results"].as_array().unwrap().len(), 2);
    assert_eq!(searxng.requests().len(), 1);
    assert_eq!(
        brave.requests()[0].header("x-subscription-token"),
        Some("brave-SECRET-key")
    );
    assert!(tavily.requests().is_empty());
    // The line is written by the connection's event loop once it has answered, so wait for it.
    let why = gateway
        .wait_for_log(Duration::from_secs(10), |l| l.contains("search.formats"))
        .await;
    assert!(
        why.is_some(),
        "the log says why SearXNG failed: {}",
        gateway.stderr()
    );
}

#[tokio::test]
async fn a_newsapi_out_of_requests_fails_over_to_gnews() {
    let dir = tempfile::tempdir().unwrap();
    let newsapi = ToolMock::start(ToolApi::NewsApi).await;
    let gnews = ToolMock::start(ToolApi::GNews).await;
    let tools = [
        "[tools.news]\n".to_owned(),
        upstream("news", "newsapi", &["base"], &newsapi, Some("spent")),
        upstream("news", "gnews", &["base"], &gnews, Some("gnews-SECRET-key")),
    ];
    let gateway = start(&dir.path().join("aigw.db"), &tools).await;
    let (status, _, body) = invoke(
        &gateway,
        "news_search",
        json!({"query": "open source", "limit": 3}),
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", gateway.stderr());
    assert_eq!(body["upstream"], "gnews");
    assert_eq!(body["result"]["articles"].as_array().unwrap().len(), 3);
    assert_eq!(newsapi.requests()[0].header("x-api-key"), Some("spent"));
    assert_eq!(
        gnews.requests()[0].param("apikey"),
        Some("gnews-SECRET-key")
    );
    assert!(!body.to_string().contains("gnews-SECRET-key"));
}

#[tokio::test]
async fn every_built_in_tool_is_listed_as_a_function() {
    let dir = tempfile::tempdir().unwrap();
    let meteo = ToolMock::start(ToolApi::OpenMeteo).await;
    let finnhub = ToolMock::start(ToolApi::Finnhub).await;
    let newsapi = ToolMock::start(ToolApi::NewsApi).await;
    let searxng = ToolMock::start(ToolApi::SearXng).await;
    let tools = [
        "[tools.weather]\n".to_owned(),
        upstream(
            "weather",
            "open-meteo",
            &["geocoding", "forecast"],
            &meteo,
            None,
        ),
        "[tools.stocks]\n".to_owned(),
        upstream("stocks", "finnhub", &["base"], &finnhub, Some(FINNHUB_KEY)),
        "[tools.news]\n".to_owned(),
        upstream("news", "newsapi", &["base"], &newsapi, Some("newsapi-key")),
        "[tools.search]\n".to_owned(),
        upstream("search", "searxng", &["base"], &searxng, None),
    ];
    let gateway = start(&dir.path().join("aigw.db"), &tools).await;
    let response = gateway
        .client()
        .get(gateway.url("/v1/tools"))
        .send()
        .await
        .unwrap();
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "news_headlines",
            "news_search",
            "stocks_quote",
            "weather_current",
            "weather_forecast",
            "web_search"
        ]
    );
    for tool in body["data"].as_array().unwrap() {
        assert_eq!(tool["type"], "function");
        assert_eq!(
            tool["function"]["parameters"]["additionalProperties"], false,
            "{tool}"
        );
        assert!(!tool["function"]["description"].as_str().unwrap().is_empty());
    }
}
