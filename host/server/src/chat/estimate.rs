//! What a request is expected to cost on each target of a route with `strategy = "cost"`,
//! before any target is asked: the engine orders the route's equal-priority targets by it.
//!
//! Prompt tokens are estimated as the body's bytes / 4 (about four bytes of English JSON a
//! token; the JSON framing counts too, but it counts the same on every target, so the order
//! is what matters, not the number). Output tokens are the request's own bound,
//! `max_completion_tokens` else `max_tokens`, else [`DEFAULT_OUTPUT_TOKENS`]: a request that
//! asks for a long answer is priced by its output, one that sends a long prompt by its input,
//! so the cheapest target can differ from one request to the next when targets' input and
//! output prices differ. Reading the bound is a second parse of the body, done only for cost
//! routes (the request head's one parse does not keep it).

use aigw_access::{Prices, Tokens};
use serde::Deserialize;

use crate::gateway::ServedRoute;

/// The output tokens expected of a request that sets no bound: a short answer.
pub(crate) const DEFAULT_OUTPUT_TOKENS: u64 = 256;

/// The request's output bounds; every other field is skipped.
#[derive(Deserialize)]
struct Bounds {
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
}

/// The tokens `body` (a chat completion request, already checked) is expected to consume.
pub(crate) fn tokens(body: &str) -> Tokens {
    let output = serde_json::from_str::<Bounds>(body)
        .ok()
        .and_then(|b| b.max_completion_tokens.or(b.max_tokens))
        .unwrap_or(DEFAULT_OUTPUT_TOKENS);
    Tokens::new((body.len() as u64).div_ceil(4), output)
}

/// The estimated cost of `body` on each entry of `route`, in pico-USD, by entry index; `None`
/// for an unpriced target.
pub(crate) fn costs(route: &ServedRoute, prices: &Prices, body: &str) -> Vec<Option<u128>> {
    let tokens = tokens(body);
    route
        .entries
        .iter()
        .map(|e| prices.get(&e.target.label).map(|p| p.cost_pico_usd(tokens)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn prompt_tokens_are_a_quarter_of_the_bytes_and_output_the_requests_bound() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let t = tokens(body);
        assert_eq!(t.input, (body.len() as u64).div_ceil(4));
        assert_eq!(t.output, DEFAULT_OUTPUT_TOKENS);
        let body = r#"{"model":"m","max_tokens":9000,"messages":[]}"#;
        assert_eq!(tokens(body).output, 9000);
        // The newer name wins over the deprecated one; null is not a bound.
        let body = r#"{"max_tokens":10,"max_completion_tokens":20,"messages":[]}"#;
        assert_eq!(tokens(body).output, 20);
        let body = r#"{"max_tokens":null,"messages":[]}"#;
        assert_eq!(tokens(body).output, DEFAULT_OUTPUT_TOKENS);
    }
}
