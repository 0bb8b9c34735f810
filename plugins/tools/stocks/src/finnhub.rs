//! Finnhub's quote (`docs/wire-formats.md`, Finnhub): `GET /api/v1/quote?symbol=…`, the key in
//! `X-Finnhub-Token` (the host's). Quirks:
//!
//! - **An unknown symbol is HTTP 200 with zeros** (`{"c":0,"d":null,…,"t":0}`): `t == 0` means
//!   not found.
//! - 429 `{"error":"API limit reached. …"}` (no `retry-after`), 401 for a bad key, 403
//!   `{"error":"You don't have access to this resource."}` for what the plan does not cover.

use aigw_plugin_sdk::query::Url;
use aigw_plugin_sdk::{Failure, answer, http};
use serde_json::{Value, json};

use crate::time::iso8601;

pub const UPSTREAM: &str = "finnhub";
const API: &str = "Finnhub";

pub fn quote(base: &str, symbol: &str) -> Result<Value, Failure> {
    let url = Url::new(base, "/api/v1/quote")
        .param("symbol", symbol)
        .build();
    let body = answer::json(API, &http::get(&url, &[])?)?;
    let number = |field: &str| body.get(field).and_then(Value::as_f64);
    let time = body.get("t").and_then(Value::as_i64).unwrap_or(0);
    if time == 0 {
        return Err(crate::unknown(symbol, API));
    }
    let price = number("c").ok_or_else(|| {
        Failure::BadResponse(format!("{API}'s quote for {symbol} has no price (\"c\")"))
    })?;
    Ok(json!({
        "symbol": symbol,
        "price": price,
        "change": number("d"),
        "change_percent": number("dp"),
        "open": number("o"),
        "high": number("h"),
        "low": number("l"),
        "previous_close": number("pc"),
        "volume": Value::Null,
        "as_of": iso8601(time),
        "source": UPSTREAM,
    }))
}
