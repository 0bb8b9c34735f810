//! The `stocks` tool plugin: a stock's latest quote from Finnhub, or from Alpha Vantage when
//! Finnhub cannot serve (both need a free key, which the host adds).
//!
//! Tool: `stocks_quote {symbol}`. Upstreams, in order: `finnhub` (header `X-Finnhub-Token`),
//! `alphavantage` (query `apikey`). Both answer in one shape ([`quote_schema`]); an unknown
//! symbol is the caller's `invalid-request` (Finnhub's all-zero quote, Alpha Vantage's empty
//! `Global Quote`), so the host does not try the next upstream for it. See `finnhub.rs` and
//! `alphavantage.rs` for each API's quirks, `docs/tools/stocks.md` for the tool.

mod alphavantage;
mod finnhub;
mod time;

use aigw_plugin_sdk::args::Args;
use aigw_plugin_sdk::schema;
use aigw_plugin_sdk::{
    CredentialPlacement, Failure, NamedUrl, Tool, ToolDescriptor, ToolSpec, ToolTarget, Upstream,
};
use serde_json::{Value, json};

pub struct Stocks;

aigw_plugin_sdk::export_tool!(Stocks);

/// Quotes stay fresh this long: long enough to spare a free plan's quota, short for a price.
const CACHE_TTL_SECONDS: u32 = 60;

/// The longest symbol either API knows (`BRK.B`, `RDS-A`, `BINANCE:BTCUSDT`).
const MAX_SYMBOL: usize = 24;

/// The one shape both upstreams answer in.
pub fn quote_schema() -> Value {
    schema::object(
        json!({
            "symbol": schema::string("The symbol quoted"),
            "price": {"type": "number", "description": "The latest price"},
            "change": schema::nullable_number("Change since the previous close"),
            "change_percent": schema::nullable_number("Change since the previous close, in percent"),
            "open": schema::nullable_number("The day's open"),
            "high": schema::nullable_number("The day's high"),
            "low": schema::nullable_number("The day's low"),
            "previous_close": schema::nullable_number("The previous close"),
            "volume": schema::nullable_number("The day's volume (null when the upstream does not say)"),
            "as_of": schema::string("When: an ISO 8601 UTC time, or the trading day"),
            "source": schema::one_of("Which upstream answered", &[finnhub::UPSTREAM, alphavantage::UPSTREAM]),
        }),
        &["symbol", "price", "as_of", "source"],
    )
}

fn quote_spec() -> ToolSpec {
    ToolSpec {
        name: "stocks_quote".to_owned(),
        title: "Stock quote".to_owned(),
        description: "The latest quote for a stock or ETF by its ticker symbol (e.g. AAPL, MSFT, \
                      BRK.B): price, change since the previous close, the day's open, high and low."
            .to_owned(),
        parameters: schema::object(
            json!({
                "symbol": {
                    "type": "string",
                    "description": "The ticker symbol, e.g. AAPL",
                    "pattern": "^[A-Za-z0-9.:^=-]{1,24}$",
                },
            }),
            &["symbol"],
        ),
        output: Some(quote_schema()),
        cache_ttl_seconds: CACHE_TTL_SECONDS,
    }
}

impl Tool for Stocks {
    fn describe() -> ToolDescriptor {
        ToolDescriptor {
            name: "stocks".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tools: vec![quote_spec()],
            upstreams: vec![
                Upstream {
                    name: finnhub::UPSTREAM.to_owned(),
                    endpoints: vec![NamedUrl::new("base", "https://finnhub.io")],
                    credential: CredentialPlacement::Header {
                        name: "X-Finnhub-Token".to_owned(),
                        prefix: String::new(),
                    },
                    credential_required: true,
                },
                Upstream {
                    name: alphavantage::UPSTREAM.to_owned(),
                    endpoints: vec![NamedUrl::new("base", "https://www.alphavantage.co")],
                    credential: CredentialPlacement::Query("apikey".to_owned()),
                    credential_required: true,
                },
            ],
        }
    }

    fn invoke(name: &str, args: Value, target: &ToolTarget) -> Result<Value, Failure> {
        if name != "stocks_quote" {
            return Err(Failure::InvalidRequest(format!(
                "the stocks plugin has no tool named {name:?}"
            )));
        }
        let symbol = symbol(Args(&args).required_string("symbol")?)?;
        let base = target.endpoint("base")?;
        match target.upstream.as_str() {
            finnhub::UPSTREAM => finnhub::quote(base, &symbol),
            alphavantage::UPSTREAM => alphavantage::quote(base, &symbol),
            other => Err(Failure::Unavailable(format!(
                "the stocks plugin has no upstream named {other:?}"
            ))),
        }
    }
}

/// The symbol as both APIs want it: upper case, only the characters tickers use.
fn symbol(text: &str) -> Result<String, Failure> {
    let valid = text.len() <= MAX_SYMBOL
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'^' | b'=' | b'-'));
    if !valid {
        return Err(Failure::InvalidRequest(format!(
            "{text:?} is not a ticker symbol (1-{MAX_SYMBOL} of A-Z 0-9 . : ^ = -)"
        )));
    }
    Ok(text.to_ascii_uppercase())
}

/// An unknown symbol, in the words both upstreams' answers come to.
fn unknown(symbol: &str, upstream: &str) -> Failure {
    Failure::InvalidRequest(format!("{upstream} knows no symbol {symbol:?}"))
}

#[cfg(test)]
mod tests;
