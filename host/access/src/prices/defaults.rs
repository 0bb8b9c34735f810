//! The published prices of the bundled provider plugins' models: what a target costs when the
//! operator configured no price for it. Keyed by plugin (its descriptor's `name`) and model (as
//! the plugin's descriptor lists it), so every provider using a plugin gets them.
//!
//! Each price is the provider's own published pay-as-you-go rate in USD per million tokens, as
//! transcribed (with the provider's pricing page as its source) by the `pydantic/genai-prices`
//! database at commit `47df840` (2026-08-21); the page is named in each row. Where a provider
//! publishes no single price for a model, there is no row and the model is unpriced: Hugging
//! Face (the price is the routed inference provider's, which the gateway does not know),
//! Replicate (billed per model version, often by time), and two of Novita's models
//! (`deepseek/deepseek-v3`, `qwen/qwen3-32b-fp8`) with no published row. Gemini 2.5 Pro's
//! price is its rate for prompts up to 200k tokens (longer prompts cost 2×): the table holds
//! one rate per direction.
//!
//! Prices change; an operator who needs them exact sets `[prices."provider/model"]`.

use super::Price;

/// One published price.
#[derive(Debug, PartialEq)]
pub struct Published {
    /// The plugin's descriptor name.
    pub plugin: &'static str,
    /// The model as the plugin's descriptor lists it.
    pub model: &'static str,
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
    /// Where the provider publishes it.
    pub source: &'static str,
}

impl Published {
    pub fn price(&self) -> Price {
        // Every row is in range (a test checks it).
        Price::per_million(self.input, self.output).unwrap_or_default()
    }
}

/// When the table was read from its sources.
pub const AS_OF: &str = "2026-08-21";

const GROQ: &str = "https://groq.com/pricing/";
const CEREBRAS: &str = "https://www.cerebras.ai/pricing (developer tier)";
const GEMINI: &str = "https://ai.google.dev/gemini-api/docs/pricing";
const NOVITA: &str = "https://novita.ai/pricing";
const OPENROUTER: &str = "https://openrouter.ai/models";

const fn row(
    plugin: &'static str,
    model: &'static str,
    input: f64,
    output: f64,
    source: &'static str,
) -> Published {
    Published {
        plugin,
        model,
        input,
        output,
        source,
    }
}

/// Every published price, by plugin then model.
pub const PUBLISHED: &[Published] = &[
    row("cerebras", "llama3.1-8b", 0.10, 0.10, CEREBRAS),
    row("cerebras", "llama-3.3-70b", 0.85, 1.20, CEREBRAS),
    row("cerebras", "gpt-oss-120b", 0.35, 0.75, CEREBRAS),
    row("cerebras", "qwen-3-32b", 0.40, 0.80, CEREBRAS),
    row("gemini", "gemini-2.5-flash", 0.30, 2.50, GEMINI),
    row("gemini", "gemini-2.5-flash-lite", 0.10, 0.40, GEMINI),
    row("gemini", "gemini-2.5-pro", 1.25, 10.0, GEMINI),
    row("gemini", "gemini-2.0-flash", 0.10, 0.40, GEMINI),
    row("groq", "llama-3.1-8b-instant", 0.05, 0.08, GROQ),
    row("groq", "llama-3.3-70b-versatile", 0.59, 0.79, GROQ),
    row("groq", "openai/gpt-oss-20b", 0.075, 0.30, GROQ),
    row("groq", "openai/gpt-oss-120b", 0.15, 0.60, GROQ),
    row("groq", "qwen/qwen3-32b", 0.29, 0.59, GROQ),
    row(
        "novita",
        "meta-llama/llama-3.3-70b-instruct",
        0.39,
        0.39,
        NOVITA,
    ),
    row(
        "novita",
        "meta-llama/llama-3.1-8b-instruct",
        0.05,
        0.05,
        NOVITA,
    ),
    row("novita", "deepseek/deepseek-r1", 4.0, 4.0, NOVITA),
    row("openrouter", "openai/gpt-4o", 2.50, 10.0, OPENROUTER),
    row("openrouter", "openai/gpt-4o-mini", 0.15, 0.60, OPENROUTER),
    row(
        "openrouter",
        "anthropic/claude-sonnet-4",
        3.0,
        15.0,
        OPENROUTER,
    ),
    row(
        "openrouter",
        "google/gemini-2.5-flash",
        0.30,
        2.50,
        OPENROUTER,
    ),
    // OpenRouter's `:free` variants are free (and rate-limited).
    row(
        "openrouter",
        "meta-llama/llama-3.3-70b-instruct:free",
        0.0,
        0.0,
        OPENROUTER,
    ),
];

/// The published price of `model` on `plugin`'s provider, if there is one.
pub fn published(plugin: &str, model: &str) -> Option<&'static Published> {
    PUBLISHED
        .iter()
        .find(|p| p.plugin == plugin && p.model == model)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn every_published_price_is_valid_and_listed_once() {
        for (i, p) in PUBLISHED.iter().enumerate() {
            let price = Price::per_million(p.input, p.output).unwrap();
            assert_eq!(p.price(), price);
            assert_eq!(price.input_per_million(), p.input, "{}", p.model);
            assert!(
                PUBLISHED[..i]
                    .iter()
                    .all(|q| (q.plugin, q.model) != (p.plugin, p.model)),
                "{}/{} is listed twice",
                p.plugin,
                p.model
            );
            assert!(p.source.starts_with("https://"), "{}", p.source);
        }
    }

    #[test]
    fn a_published_price_is_found_by_plugin_and_model() {
        let p = published("groq", "llama-3.1-8b-instant").unwrap();
        assert_eq!((p.input, p.output), (0.05, 0.08));
        assert!(published("groq", "llama3.1-8b").is_none());
        assert!(published("cerebras", "llama3.1-8b").is_some());
        assert!(published("huggingface", "Qwen/Qwen3-8B").is_none());
    }
}
