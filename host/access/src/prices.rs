//! Prices and the cost of tokens. A [`Price`] is what a target charges per million input and
//! output tokens, in USD; [`Prices`] is the gateway's table, looked up by target label
//! (`provider/model`, the provider being the configured provider's name): the operator's
//! `[prices."provider/model"]` first, else the published price of the provider's plugin for
//! that model ([`defaults`]), else none — an unpriced target costs 0.
//!
//! Arithmetic is in integers so sums are exact: a price is held as pico-USD per token (USD per
//! million tokens × 10⁶: 0.05 USD/M is 50,000 pico-USD a token, so any price the operator writes
//! with up to six decimals is held exactly), and a cost is micro-USD, rounded to the nearest
//! (half up) once per priced part ([`Price::cost`]): one request's error is under a micro-USD
//! per target it used.

pub mod defaults;

use std::collections::HashMap;
use std::fmt;

/// Token counts one attempt consumed, as its provider reported them (or the gateway estimated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tokens {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
}

impl Tokens {
    pub fn new(input: u64, output: u64) -> Tokens {
        Tokens { input, output }
    }
}

impl std::ops::Add for Tokens {
    type Output = Tokens;
    fn add(self, other: Tokens) -> Tokens {
        Tokens {
            input: self.input.saturating_add(other.input),
            output: self.output.saturating_add(other.output),
        }
    }
}

/// The most a price may be, in USD per million tokens: far above any published price, so only
/// a typo is refused, and small enough that no cost arithmetic can overflow.
pub const MAX_USD_PER_MILLION: f64 = 1_000_000.0;

/// Pico-USD in a micro-USD.
const PICO_PER_MICRO: u128 = 1_000_000;

/// What a target charges, per token, for input and for output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Price {
    input_pico_usd: u64,
    output_pico_usd: u64,
}

/// Why a price cannot be used: it is negative, not a number, or absurdly large.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceError {
    pub which: &'static str,
    pub value: f64,
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} price must be a number of USD per million tokens from 0 to {MAX_USD_PER_MILLION}, not {}",
            self.which, self.value
        )
    }
}

impl std::error::Error for PriceError {}

impl Price {
    /// A price of `input` and `output` USD per million tokens (what providers publish).
    pub fn per_million(input: f64, output: f64) -> Result<Price, PriceError> {
        Ok(Price {
            input_pico_usd: pico_per_token(input, "input")?,
            output_pico_usd: pico_per_token(output, "output")?,
        })
    }

    /// The input price in USD per million tokens.
    pub fn input_per_million(&self) -> f64 {
        self.input_pico_usd as f64 / 1e6
    }

    /// The output price in USD per million tokens.
    pub fn output_per_million(&self) -> f64 {
        self.output_pico_usd as f64 / 1e6
    }

    /// The input price in pico-USD per token (exact).
    pub fn input_pico_usd(&self) -> u64 {
        self.input_pico_usd
    }

    /// The output price in pico-USD per token (exact).
    pub fn output_pico_usd(&self) -> u64 {
        self.output_pico_usd
    }

    /// What `tokens` cost at this price, in pico-USD (exact; for comparing estimates).
    pub fn cost_pico_usd(&self, tokens: Tokens) -> u128 {
        u128::from(tokens.input) * u128::from(self.input_pico_usd)
            + u128::from(tokens.output) * u128::from(self.output_pico_usd)
    }

    /// What `tokens` cost at this price, in micro-USD, rounded to the nearest (half up).
    pub fn cost(&self, tokens: Tokens) -> u64 {
        let micro = (self.cost_pico_usd(tokens) + PICO_PER_MICRO / 2) / PICO_PER_MICRO;
        u64::try_from(micro).unwrap_or(u64::MAX)
    }
}

/// USD per million tokens → pico-USD per token, rounded to the nearest.
fn pico_per_token(usd_per_million: f64, which: &'static str) -> Result<u64, PriceError> {
    if !(usd_per_million.is_finite() && (0.0..=MAX_USD_PER_MILLION).contains(&usd_per_million)) {
        return Err(PriceError {
            which,
            value: usd_per_million,
        });
    }
    // In range, so the product fits a u64 (at most 10¹²).
    Ok((usd_per_million * 1e6).round() as u64)
}

/// The gateway's price table, by target label (`provider/model`).
#[derive(Debug, Clone, Default)]
pub struct Prices {
    /// `[prices."provider/model"]`, as the operator configured them.
    configured: HashMap<String, Price>,
    /// Each configured provider's plugin (its descriptor's name), whose published prices are
    /// the defaults of the provider's targets.
    plugins: HashMap<String, String>,
}

impl Prices {
    /// The table of `configured` prices (by target label) over the published defaults of each
    /// provider's plugin (`providers`: provider name → plugin name).
    pub fn new(
        configured: impl IntoIterator<Item = (String, Price)>,
        providers: impl IntoIterator<Item = (String, String)>,
    ) -> Prices {
        Prices {
            configured: configured.into_iter().collect(),
            plugins: providers.into_iter().collect(),
        }
    }

    /// The price of the target `label` (`provider/model`), and where it comes from; `None`
    /// when it is unpriced.
    pub fn lookup(&self, label: &str) -> Option<(Price, Source)> {
        if let Some(price) = self.configured.get(label) {
            return Some((*price, Source::Configured));
        }
        let (provider, model) = label.split_once('/')?;
        let plugin = self.plugins.get(provider)?;
        defaults::published(plugin, model).map(|p| (p.price(), Source::Published(p)))
    }

    /// The price of the target `label`, `None` when it is unpriced.
    pub fn get(&self, label: &str) -> Option<Price> {
        self.lookup(label).map(|(price, _)| price)
    }

    /// What `tokens` consumed on the target `label` cost, in micro-USD; 0 when it is unpriced.
    pub fn cost(&self, label: &str, tokens: Tokens) -> u64 {
        self.get(label).map_or(0, |price| price.cost(tokens))
    }
}

/// Where a target's price comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// The operator's `[prices]` table.
    Configured,
    /// The provider's published price, bundled with aigw.
    Published(&'static defaults::Published),
}

/// Micro-USD as USD, for JSON and logs.
pub fn usd(micro_usd: u64) -> f64 {
    micro_usd as f64 / 1e6
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn costs_are_tokens_times_the_price_in_micro_usd() {
        // USD per million tokens is micro-USD per token.
        let price = Price::per_million(0.05, 0.08).unwrap();
        assert_eq!(price.cost(Tokens::new(1_000, 0)), 50);
        assert_eq!(price.cost(Tokens::new(0, 1_000)), 80);
        assert_eq!(price.cost(Tokens::new(1_000_000, 1_000_000)), 130_000);
        let dear = Price::per_million(15.0, 75.0).unwrap();
        assert_eq!(dear.cost(Tokens::new(3, 7)), 45 + 525);
    }

    #[test]
    fn a_cost_is_rounded_to_the_nearest_micro_usd_half_up() {
        let price = Price::per_million(0.05, 0.08).unwrap();
        // 9 × 0.05 = 0.45 → 0; 10 × 0.05 = 0.5 → 1; 29 × 0.05 = 1.45 → 1.
        assert_eq!(price.cost(Tokens::new(9, 0)), 0);
        assert_eq!(price.cost(Tokens::new(10, 0)), 1);
        assert_eq!(price.cost(Tokens::new(29, 0)), 1);
        // Input and output are summed before rounding: 0.25 + 0.32 = 0.57 → 1.
        assert_eq!(price.cost(Tokens::new(5, 4)), 1);
        assert_eq!(price.cost_pico_usd(Tokens::new(5, 4)), 570_000);
    }

    #[test]
    fn prices_with_six_decimals_are_held_exactly() {
        let price = Price::per_million(0.000001, 123.456789).unwrap();
        assert_eq!(price.input_pico_usd(), 1);
        assert_eq!(price.output_pico_usd(), 123_456_789);
        assert_eq!(price.output_per_million(), 123.456789);
    }

    #[test]
    fn negative_not_finite_and_absurd_prices_are_refused() {
        for (input, output, which) in [
            (-0.01, 1.0, "input"),
            (1.0, f64::NAN, "output"),
            (f64::INFINITY, 1.0, "input"),
            (1.0, MAX_USD_PER_MILLION * 2.0, "output"),
        ] {
            let error = Price::per_million(input, output).unwrap_err();
            assert_eq!(error.which, which);
            assert!(
                error.to_string().contains("USD per million tokens"),
                "{error}"
            );
        }
        assert!(Price::per_million(0.0, MAX_USD_PER_MILLION).is_ok());
    }

    #[test]
    fn the_largest_cost_does_not_overflow() {
        let price = Price::per_million(MAX_USD_PER_MILLION, MAX_USD_PER_MILLION).unwrap();
        let cost = price.cost(Tokens::new(u64::MAX, u64::MAX));
        assert_eq!(cost, u64::MAX);
    }

    #[test]
    fn configured_prices_come_first_then_the_plugins_published_ones_then_none() {
        let mine = Price::per_million(1.0, 2.0).unwrap();
        let prices = Prices::new(
            [("fast/llama-3.1-8b-instant".to_owned(), mine)],
            [
                ("fast".to_owned(), "groq".to_owned()),
                ("cheap".to_owned(), "groq".to_owned()),
                ("local".to_owned(), "openai-compatible".to_owned()),
            ],
        );
        assert_eq!(
            prices.lookup("fast/llama-3.1-8b-instant"),
            Some((mine, Source::Configured))
        );
        // Another provider over the same plugin gets the plugin's published price.
        let (published, source) = prices.lookup("cheap/llama-3.1-8b-instant").unwrap();
        assert!(matches!(source, Source::Published(p) if p.plugin == "groq"));
        assert_eq!(
            Some(published),
            defaults::published("groq", "llama-3.1-8b-instant").map(|p| p.price())
        );
        // A model its plugin publishes no price for, an unknown provider, a bad label.
        assert_eq!(prices.get("cheap/not-a-model"), None);
        assert_eq!(prices.get("local/llama-3.1-8b-instant"), None);
        assert_eq!(prices.get("nobody/llama-3.1-8b-instant"), None);
        assert_eq!(prices.get("no-slash"), None);
        assert_eq!(prices.cost("local/x", Tokens::new(1_000, 1_000)), 0);
        assert_eq!(
            prices.cost("fast/llama-3.1-8b-instant", Tokens::new(10, 10)),
            30
        );
    }
}
