//! The mock tool APIs themselves (`aigw_tests::mock::tools`): each must answer in its API's real
//! shape, check the key where the real API takes it, and keep its magic values, or the tool
//! plugins' end-to-end tests prove nothing. These run without the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;

use aigw_tests::mock::tools::{ToolApi, ToolMock, parse_query};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn get(url: String, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (
        status,
        media,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn open_meteo_has_no_results_key_for_an_unknown_place_and_no_retry_after() {
    let mock = ToolMock::start(ToolApi::OpenMeteo).await;
    let (status, media, berlin) =
        get(format!("{}/v1/search?name=Berlin&count=1", mock.url()), &[]).await;
    assert_eq!(
        (status, media.as_str()),
        (200, "application/json; charset=utf-8")
    );
    assert_eq!(berlin["results"][0]["latitude"], 52.52437);
    let (_, _, nowhere) = get(format!("{}/v1/search?name=Nowhere", mock.url()), &[]).await;
    assert!(nowhere.get("results").is_none(), "{nowhere}");
    assert!(nowhere["generationtime_ms"].is_number());
    let response = reqwest::get(format!("{}/v1/search?name=RATE", mock.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], true);
    assert!(body["reason"].as_str().unwrap().starts_with("Minutely"));
    let (status, _, bad) = get(
        format!(
            "{}/v1/forecast?latitude=1&longitude=2&current=tempeture_2m",
            mock.url()
        ),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        bad["reason"],
        "Cannot initialize WeatherVariable from invalid String value tempeture_2m for key current"
    );
    let (status, _, days) = get(format!("{}/v1/forecast?latitude=1&longitude=2&daily=weather_code&timezone=auto&forecast_days=17", mock.url()), &[]).await;
    assert_eq!(status, 400, "{days}");
}

#[tokio::test]
async fn finnhub_checks_its_header_and_zeroes_an_unknown_symbol() {
    let mock = ToolMock::start(ToolApi::Finnhub)
        .await
        .with_api_key("right");
    let quote = |symbol: &str| format!("{}/api/v1/quote?symbol={symbol}", mock.url());
    let (status, _, body) = get(quote("AAPL"), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Please use an API key."))
    );
    let (status, _, body) = get(quote("AAPL"), &[("X-Finnhub-Token", "wrong")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Invalid API key"))
    );
    let (status, _, body) = get(format!("{}&token=right", quote("AAPL")), &[]).await;
    assert_eq!(status, 200, "the token query parameter works too: {body}");
    let (_, _, body) = get(quote("ZZZZ"), &[("X-Finnhub-Token", "right")]).await;
    assert_eq!(
        body,
        json!({"c": 0, "d": null, "dp": null, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0})
    );
    let recorded = mock.requests();
    assert_eq!(recorded[1].header("x-finnhub-token"), Some("wrong"));
    assert_eq!(recorded[2].param("token"), Some("right"));
}

#[tokio::test]
async fn alpha_vantage_answers_every_error_with_http_200() {
    let mock = ToolMock::start(ToolApi::AlphaVantage).await;
    let query = |rest: &str| format!("{}/query?function=GLOBAL_QUOTE&{rest}", mock.url());
    for (rest, field) in [
        ("symbol=IBM", "Error Message"),
        ("symbol=IBM&apikey=limited", "Note"),
        ("symbol=IBM&apikey=spent", "Information"),
        ("symbol=RATE&apikey=k", "Information"),
    ] {
        let (status, _, body) = get(query(rest), &[]).await;
        assert_eq!(status, 200, "{rest}");
        assert!(body.get(field).is_some(), "{rest}: {body}");
    }
    let (_, _, unknown) = get(query("symbol=ZZZZ&apikey=k"), &[]).await;
    assert_eq!(unknown, json!({"Global Quote": {}}));
    let (_, _, ibm) = get(query("symbol=IBM&apikey=k"), &[]).await;
    let price = ibm["Global Quote"]["05. price"].as_str().unwrap();
    assert!(price.parse::<f64>().is_ok(), "numbers are strings: {price}");
    assert!(
        ibm["Global Quote"]["10. change percent"]
            .as_str()
            .unwrap()
            .ends_with('%')
    );
}

#[tokio::test]
async fn newsapi_and_gnews_speak_their_own_error_envelopes() {
    let newsapi = ToolMock::start(ToolApi::NewsApi).await;
    let headlines = format!("{}/v2/top-headlines?country=us", newsapi.url());
    let (status, _, body) = get(headlines.clone(), &[]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("apiKeyMissing"))
    );
    let (status, _, body) = get(headlines.clone(), &[("X-Api-Key", "spent")]).await;
    assert_eq!(
        (status, body["status"].as_str(), body["code"].as_str()),
        (429, Some("error"), Some("apiKeyExhausted"))
    );
    let (status, _, body) = get(headlines, &[("Authorization", "Bearer fine")]).await;
    assert_eq!(status, 200);
    assert_eq!(body["articles"][1]["title"], "[Removed]");

    let gnews = ToolMock::start(ToolApi::GNews).await;
    let (status, _, body) = get(
        format!("{}/api/v4/top-headlines?apikey=spent", gnews.url()),
        &[],
    )
    .await;
    assert_eq!(status, 403, "GNews' daily quota is a 403");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("request limit for today")
    );
    let (status, _, body) = get(format!("{}/api/v4/search?apikey=k", gnews.url()), &[]).await;
    assert_eq!(
        (status, body["errors"]["q"].as_str()),
        (400, Some("The q parameter is required."))
    );
    let (_, _, body) = get(
        format!("{}/api/v4/search?q=Nothing&apikey=k", gnews.url()),
        &[],
    )
    .await;
    assert_eq!(body, json!({"totalArticles": 0, "articles": []}));
}

#[tokio::test]
async fn searxng_refuses_anything_but_json_and_reports_unresponsive_engines() {
    let mock = ToolMock::start(ToolApi::SearXng).await;
    let (status, media, _) = get(format!("{}/search?q=rust", mock.url()), &[]).await;
    assert_eq!((status, media.as_str()), (403, "text/html; charset=utf-8"));
    let (status, _, body) = get(format!("{}/search?q=rust&format=json", mock.url()), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"].as_array().unwrap().len(), 10);
    let (_, _, down) = get(format!("{}/?q=ENGINES-DOWN&format=json", mock.url()), &[]).await;
    assert_eq!(down["results"], json!([]));
    assert_eq!(
        down["unresponsive_engines"][0],
        json!(["google", "timeout"])
    );
}

#[tokio::test]
async fn brave_answers_a_bad_key_with_422_and_counts_windows_in_its_headers() {
    let mock = ToolMock::start(ToolApi::Brave).await;
    let search = format!("{}/res/v1/web/search?q=rust&count=3", mock.url());
    let (status, _, body) = get(search.clone(), &[("X-Subscription-Token", "bad")]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("SUBSCRIPTION_TOKEN_INVALID"))
    );
    let (status, _, body) = get(search.clone(), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("VALIDATION"))
    );
    let response = reqwest::Client::new()
        .get(&search)
        .header("X-Subscription-Token", "limited")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-ratelimit-reset"], "1, 1419704");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0, 1959");
    let (_, _, body) = get(search, &[("X-Subscription-Token", "k")]).await;
    let results = body["web"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(
        results[0]["description"]
            .as_str()
            .unwrap()
            .contains("<strong>rust</strong>")
    );
}

#[tokio::test]
async fn tavily_takes_a_bearer_key_and_answers_432_when_the_credits_are_spent() {
    let mock = ToolMock::start(ToolApi::Tavily).await;
    let post = |key: &'static str| {
        let url = format!("{}/search", mock.url());
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&json!({"query": "mcp", "max_results": 2}))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = post("spent").await;
    assert_eq!(status, 432);
    assert!(
        body["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("usage limit")
    );
    let (status, body) = post("bad").await;
    assert_eq!(
        (status, body["detail"]["error"].as_str()),
        (401, Some("Unauthorized: missing or invalid API key."))
    );
    let (status, body) = post("tvly-good").await;
    assert_eq!(status, 200);
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn paths_the_api_does_not_serve_are_404() {
    for api in ToolApi::ALL {
        let mock = ToolMock::start(api).await;
        let response = reqwest::get(format!("{}/v9/nothing-here", mock.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{api:?}");
    }
}

#[test]
fn queries_decode_percent_escapes_and_plus_signs() {
    assert_eq!(
        parse_query("q=S%C3%A3o+Paulo&x=%zz&flag"),
        vec![
            ("q".to_owned(), "São Paulo".to_owned()),
            ("x".to_owned(), "%zz".to_owned()),
            ("flag".to_owned(), String::new()),
        ]
    );
}

#[tokio::test]
async fn the_mock_upstream_binary_serves_a_tool_api() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--tool-api", "finnhub"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let addr = line.strip_prefix("listening on ").unwrap();
    let (status, _, body) = get(
        format!("http://{addr}/api/v1/quote?symbol=ZZZZ"),
        &[("X-Finnhub-Token", "k")],
    )
    .await;
    assert_eq!((status, body["t"].as_i64()), (200, Some(0)));
    child.kill().await.unwrap();

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_mock-upstream"))
        .args(["--tool-api", "yahoo"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("open-meteo, finnhub"));
}
