//! Alpha Vantage's `GLOBAL_QUOTE` (`docs/wire-formats.md`, Alpha Vantage): `GET
//! /query?function=GLOBAL_QUOTE&symbol=…`, the key in the `apikey` query parameter (the host's).
//! Quirks:
//!
//! - **Every error is HTTP 200**: `{"Error Message": …}` (a bad call; a bad or missing key says
//!   `apikey`), `{"Information": …}` (the rate limit or the plan's daily quota; older keys get
//!   `"Note"`), and an unknown symbol is `{"Global Quote": {}}`.
//! - Every number is a string (`"167.1500"`), the change percent ends in `%`.

use aigw_plugin_sdk::query::Url;
use aigw_plugin_sdk::{Failure, answer, http};
use serde_json::{Map, Value, json};

pub const UPSTREAM: &str = "alphavantage";
const API: &str = "Alpha Vantage";

pub fn quote(base: &str, symbol: &str) -> Result<Value, Failure> {
    let url = Url::new(base, "/query")
        .param("function", "GLOBAL_QUOTE")
        .param("symbol", symbol)
        .build();
    let body = answer::json(API, &http::get(&url, &[])?)?;
    if let Some(failure) = error_in_200(&body) {
        return Err(failure);
    }
    let quote = body
        .get("Global Quote")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Failure::BadResponse(format!("{API} answered without a \"Global Quote\""))
        })?;
    if quote.is_empty() {
        return Err(crate::unknown(symbol, API));
    }
    let price = number(quote, "05. price")
        .ok_or_else(|| Failure::BadResponse(format!("{API}'s quote for {symbol} has no price")))?;
    Ok(json!({
        "symbol": quote.get("01. symbol").and_then(Value::as_str).unwrap_or(symbol),
        "price": price,
        "change": number(quote, "09. change"),
        "change_percent": number(quote, "10. change percent"),
        "open": number(quote, "02. open"),
        "high": number(quote, "03. high"),
        "low": number(quote, "04. low"),
        "previous_close": number(quote, "08. previous close"),
        "volume": number(quote, "06. volume"),
        "as_of": quote.get("07. latest trading day").and_then(Value::as_str).unwrap_or_default(),
        "source": UPSTREAM,
    }))
}

/// A field holding a number as a string (`"167.1500"`, `"0.5293%"`).
fn number(quote: &Map<String, Value>, field: &str) -> Option<f64> {
    let text = quote.get(field)?.as_str()?;
    text.trim().trim_end_matches('%').parse().ok()
}

/// The error an HTTP 200 body holds, if it holds one.
fn error_in_200(body: &Value) -> Option<Failure> {
    if let Some(message) = body.get("Error Message").and_then(Value::as_str) {
        let text = format!("{API}: {message}");
        return Some(if message.to_ascii_lowercase().contains("apikey") {
            Failure::Unauthorized(text)
        } else {
            Failure::InvalidRequest(text)
        });
    }
    let message = body
        .get("Information")
        .or_else(|| body.get("Note"))
        .and_then(Value::as_str)?;
    let text = format!("{API}: {message}");
    let lower = message.to_ascii_lowercase();
    Some(
        if lower.contains("per minute") || lower.contains("per second") {
            Failure::RateLimited {
                retry_after_seconds: Some(60),
                message: text,
            }
        } else if lower.contains("per day") || lower.contains("daily") {
            // The plan's requests for today are spent (the message also offers premium plans):
            // waiting minutes does not cure it.
            Failure::NoCredit(text)
        } else if lower.contains("premium endpoint") {
            // This key's plan does not cover the endpoint: another upstream's key may.
            Failure::Unauthorized(text)
        } else {
            Failure::RateLimited {
                retry_after_seconds: None,
                message: text,
            }
        },
    )
}
