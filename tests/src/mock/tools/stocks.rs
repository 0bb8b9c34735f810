//! Finnhub (`GET /api/v1/quote`, key in `X-Finnhub-Token` or `token`) and Alpha Vantage (`GET
//! /query?function=GLOBAL_QUOTE`, key in `apikey`): Finnhub's all-zero quote for an unknown
//! symbol, Alpha Vantage's errors with HTTP 200 and its numbers as strings.

use http::{Response, StatusCode};
use serde_json::json;

use super::{Account, Body, Call, bot_wall, derived, json, not_found};

/// The Unix time of every Finnhub quote (2025-10-30T20:00:00Z).
pub const QUOTE_TIME: i64 = 1_761_854_400;

/// A symbol's deterministic prices: current, previous close.
fn prices(symbol: &str) -> (f64, f64) {
    let cents = 1_000 + derived(symbol, 50_000);
    let previous = 1_000 + derived(&format!("{symbol}/previous"), 50_000);
    (cents as f64 / 100.0, previous as f64 / 100.0)
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

pub(crate) fn finnhub(call: &Call<'_>) -> Response<Body> {
    if call.request.path != "/api/v1/quote" {
        return not_found(call.request);
    }
    let limited = || {
        json(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": "API limit reached. Please try again later. Remaining Limit: 0"}),
        )
    };
    match call.account() {
        Account::Missing => {
            return json(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "Please use an API key."}),
            );
        }
        Account::Bad => {
            return json(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "Invalid API key"}),
            );
        }
        Account::Limited | Account::Spent => return limited(),
        Account::Good => {}
    }
    let Some(symbol) = call.param("symbol") else {
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"error": "Wrong symbol"}),
        );
    };
    match symbol {
        "ZZZZ" => json(
            StatusCode::OK,
            &json!({"c": 0, "d": null, "dp": null, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}),
        ),
        "RATE" => limited(),
        "ERROR" => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "Internal server error"}),
        ),
        "HTML" => bot_wall(),
        symbol => {
            let (current, previous) = prices(symbol);
            let change = round(current - previous, 2);
            json(
                StatusCode::OK,
                &json!({
                    "c": current, "d": change, "dp": round(change / previous * 100.0, 4),
                    "h": round(current * 1.01, 2), "l": round(current * 0.99, 2),
                    "o": round(previous * 1.002, 2), "pc": previous, "t": QUOTE_TIME,
                }),
            )
        }
    }
}

pub(crate) fn alphavantage(call: &Call<'_>) -> Response<Body> {
    if call.request.path != "/query" {
        return not_found(call.request);
    }
    let ok = |body| json(StatusCode::OK, &body);
    let daily_limit = || {
        ok(
            json!({"Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."}),
        )
    };
    match call.account() {
        Account::Missing | Account::Bad => {
            return ok(
                json!({"Error Message": "the parameter apikey is invalid or missing. Please claim your free API key on (https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."}),
            );
        }
        Account::Limited => {
            return ok(
                json!({"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API call frequency."}),
            );
        }
        Account::Spent => return daily_limit(),
        Account::Good => {}
    }
    let function = call.param("function");
    let symbol = call.param("symbol");
    let (Some("GLOBAL_QUOTE"), Some(symbol)) = (function, symbol) else {
        return ok(json!({"Error Message": format!(
            "Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) for {}.",
            function.unwrap_or("")
        )}));
    };
    match symbol {
        "ZZZZ" => ok(json!({"Global Quote": {}})),
        "RATE" => daily_limit(),
        "HTML" => bot_wall(),
        symbol => {
            let (current, previous) = prices(symbol);
            let change = current - previous;
            let money = |value: f64| format!("{value:.4}");
            ok(json!({"Global Quote": {
                "01. symbol": symbol,
                "02. open": money(previous * 1.002),
                "03. high": money(current * 1.01),
                "04. low": money(current * 0.99),
                "05. price": money(current),
                "06. volume": (1_000_000 + derived(symbol, 9_000_000)).to_string(),
                "07. latest trading day": "2025-10-30",
                "08. previous close": money(previous),
                "09. change": money(change),
                "10. change percent": format!("{:.4}%", change / previous * 100.0),
            }}))
        }
    }
}
