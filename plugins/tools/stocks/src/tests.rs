use aigw_plugin_sdk::testing::{Upstream, response};
use aigw_plugin_sdk::{CredentialPlacement, Failure, HttpRequest, NamedUrl, Tool, ToolTarget};
use serde_json::{Value, json};

use super::Stocks;

const FINNHUB_QUOTE: &str = include_str!("../tests/fixtures/finnhub_quote.json");
const FINNHUB_UNKNOWN: &str = include_str!("../tests/fixtures/finnhub_unknown.json");
const FINNHUB_429: &str = include_str!("../tests/fixtures/finnhub_429.json");
const FINNHUB_401: &str = include_str!("../tests/fixtures/finnhub_401.json");
const FINNHUB_403: &str = include_str!("../tests/fixtures/finnhub_403.json");
const AV_QUOTE: &str = include_str!("../tests/fixtures/alphavantage_quote.json");
const AV_UNKNOWN: &str = include_str!("../tests/fixtures/alphavantage_unknown.json");
const AV_DAILY: &str = include_str!("../tests/fixtures/alphavantage_daily_limit.json");
const AV_NOTE: &str = include_str!("../tests/fixtures/alphavantage_note.json");
const AV_BAD_KEY: &str = include_str!("../tests/fixtures/alphavantage_bad_key.json");
const AV_INVALID: &str = include_str!("../tests/fixtures/alphavantage_invalid_call.json");

fn target(upstream: &str) -> ToolTarget {
    ToolTarget {
        upstream: upstream.to_owned(),
        endpoints: vec![NamedUrl::new("base", "http://quotes.test")],
    }
}

fn quote(
    upstream: &str,
    answer: Upstream,
    symbol: &str,
) -> (Result<Value, Failure>, Vec<HttpRequest>) {
    answer.run(|| Stocks::invoke("stocks_quote", json!({"symbol": symbol}), &target(upstream)))
}

fn finnhub(status: u16, body: &str, symbol: &str) -> (Result<Value, Failure>, Vec<HttpRequest>) {
    quote(
        "finnhub",
        Upstream::new().json("/api/v1/quote", status, body),
        symbol,
    )
}

fn alphavantage(body: &str, symbol: &str) -> (Result<Value, Failure>, Vec<HttpRequest>) {
    quote(
        "alphavantage",
        Upstream::new().json("/query", 200, body),
        symbol,
    )
}

#[test]
fn describes_finnhub_then_alpha_vantage_with_their_key_placements() {
    let descriptor = Stocks::describe();
    assert_eq!(descriptor.name, "stocks");
    assert_eq!(descriptor.tools.len(), 1);
    let tool = &descriptor.tools[0];
    assert_eq!(tool.name, "stocks_quote");
    assert_eq!(tool.cache_ttl_seconds, 60);
    assert_eq!(tool.parameters["required"], json!(["symbol"]));
    assert_eq!(tool.parameters["additionalProperties"], false);
    let names: Vec<&str> = descriptor
        .upstreams
        .iter()
        .map(|u| u.name.as_str())
        .collect();
    assert_eq!(names, ["finnhub", "alphavantage"]);
    assert_eq!(
        descriptor.upstreams[0].credential,
        CredentialPlacement::Header {
            name: "X-Finnhub-Token".into(),
            prefix: String::new()
        }
    );
    assert_eq!(
        descriptor.upstreams[1].credential,
        CredentialPlacement::Query("apikey".into())
    );
    assert!(descriptor.upstreams.iter().all(|u| u.credential_required));
    assert_eq!(
        descriptor.upstreams[0].endpoints,
        vec![NamedUrl::new("base", "https://finnhub.io")]
    );
    assert_eq!(
        descriptor.upstreams[1].endpoints,
        vec![NamedUrl::new("base", "https://www.alphavantage.co")]
    );
}

#[test]
fn a_finnhub_quote_reads_its_one_letter_fields() {
    let (result, sent) = finnhub(200, FINNHUB_QUOTE, "aapl");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url, "http://quotes.test/api/v1/quote?symbol=AAPL");
    assert!(
        !sent[0]
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("x-finnhub-token")),
        "the plugin never sets the key: the host does"
    );
    assert_eq!(
        result.unwrap(),
        json!({"symbol": "AAPL", "price": 261.74, "change": 2.65, "change_percent": 1.0228,
               "open": 261.07, "high": 263.31, "low": 260.68, "previous_close": 259.09,
               "volume": null, "as_of": "2025-10-30T20:00:00Z", "source": "finnhub"})
    );
}

#[test]
fn an_alpha_vantage_quote_reads_numbers_from_strings() {
    let (result, sent) = alphavantage(AV_QUOTE, "IBM");
    assert_eq!(
        sent[0].url,
        "http://quotes.test/query?function=GLOBAL_QUOTE&symbol=IBM"
    );
    assert!(!sent[0].url.contains("apikey"), "the host adds the key");
    assert_eq!(
        result.unwrap(),
        json!({"symbol": "IBM", "price": 167.15, "change": 0.88, "change_percent": 0.5293,
               "open": 167.5, "high": 168.93, "low": 166.11, "previous_close": 166.27,
               "volume": 3_123_456.0, "as_of": "2024-05-10", "source": "alphavantage"})
    );
}

#[test]
fn both_upstreams_answer_in_one_shape() {
    let keys = |value: &Value| -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let from_finnhub = finnhub(200, FINNHUB_QUOTE, "IBM").0.unwrap();
    let from_av = alphavantage(AV_QUOTE, "IBM").0.unwrap();
    assert_eq!(keys(&from_finnhub), keys(&from_av));
    let schema = super::quote_schema();
    let mut declared: Vec<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    declared.sort();
    assert_eq!(keys(&from_av), declared);
}

#[test]
fn an_unknown_symbol_is_the_callers_mistake_on_both() {
    let (finnhub_zero, _) = finnhub(200, FINNHUB_UNKNOWN, "ZZZZ");
    let (av_empty, _) = alphavantage(AV_UNKNOWN, "ZZZZ");
    for failure in [finnhub_zero.unwrap_err(), av_empty.unwrap_err()] {
        assert!(matches!(failure, Failure::InvalidRequest(_)), "{failure:?}");
        assert!(failure.message().contains("\"ZZZZ\""), "{failure:?}");
    }
}

#[test]
fn finnhub_errors_are_classified_by_status() {
    let (limited, _) = finnhub(429, FINNHUB_429, "AAPL");
    let limited = limited.unwrap_err();
    assert!(
        matches!(limited, Failure::RateLimited { .. }),
        "{limited:?}"
    );
    assert!(limited.message().contains("API limit reached"));
    let (bad_key, _) = finnhub(401, FINNHUB_401, "AAPL");
    assert!(
        matches!(bad_key, Err(Failure::Unauthorized(_))),
        "{bad_key:?}"
    );
    let (no_access, _) = finnhub(403, FINNHUB_403, "AAPL");
    assert!(
        matches!(no_access, Err(Failure::Unauthorized(_))),
        "{no_access:?}"
    );
    let (down, _) = finnhub(502, "", "AAPL");
    assert!(matches!(down, Err(Failure::Unavailable(_))), "{down:?}");
}

#[test]
fn alpha_vantage_errors_arrive_with_http_200() {
    let (daily, _) = alphavantage(AV_DAILY, "IBM");
    assert!(
        matches!(daily, Err(Failure::NoCredit(ref m)) if m.contains("25 requests per day")),
        "{daily:?}"
    );
    let (note, _) = alphavantage(AV_NOTE, "IBM");
    assert!(
        matches!(
            note,
            Err(Failure::RateLimited {
                retry_after_seconds: Some(60),
                ..
            })
        ),
        "{note:?}"
    );
    let (bad_key, _) = alphavantage(AV_BAD_KEY, "IBM");
    assert!(
        matches!(bad_key, Err(Failure::Unauthorized(_))),
        "{bad_key:?}"
    );
    let (invalid, _) = alphavantage(AV_INVALID, "IBM");
    assert!(
        matches!(invalid, Err(Failure::InvalidRequest(_))),
        "{invalid:?}"
    );
}

#[test]
fn an_html_page_with_http_200_is_unavailable() {
    let page = response(
        200,
        &[("content-type", "text/html")],
        "<html><body>Just a moment...</body></html>",
    );
    let (result, _) = quote(
        "alphavantage",
        Upstream::new().answer("/query", page),
        "IBM",
    );
    assert!(matches!(result, Err(Failure::Unavailable(_))), "{result:?}");
}

#[test]
fn symbols_are_checked_before_any_request() {
    for bad in ["AAPL&symbol=MSFT", "A B", "", "X".repeat(25).as_str()] {
        let (result, sent) = finnhub(200, FINNHUB_QUOTE, bad);
        assert!(
            matches!(result, Err(Failure::InvalidRequest(_))),
            "{bad:?}: {result:?}"
        );
        assert!(sent.is_empty(), "{bad:?}");
    }
    let (result, sent) = finnhub(200, FINNHUB_QUOTE, "brk.b");
    assert!(result.is_ok());
    assert!(sent[0].url.ends_with("symbol=BRK.B"));
}

#[test]
fn an_unknown_upstream_is_unavailable() {
    let (result, sent) = quote("stooq", Upstream::new(), "AAPL");
    assert!(matches!(result, Err(Failure::Unavailable(_))), "{result:?}");
    assert!(sent.is_empty());
}
