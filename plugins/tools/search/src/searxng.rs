//! SearXNG's search API (`docs/wire-formats.md`, SearXNG): `GET /search?q=…&format=json` on the
//! operator's own instance, no key. Quirks:
//!
//! - **JSON must be enabled** in the instance's `settings.yml` (`search.formats`); otherwise it
//!   answers **403**, which says nothing about a key: the failure says what to change.
//! - No result count parameter: the answer is trimmed here.
//! - An empty `results` with `unresponsive_engines` means the engines failed, not that the web
//!   has nothing: `unavailable`, so the host tries the next upstream.
//! - `time_range` knows `day`, `month` and `year`: a week asks for the month.

use aigw_plugin_sdk::query::Url;
use aigw_plugin_sdk::{Failure, answer, http};
use serde_json::Value;

use crate::{Freshness, Hit, Query};

pub const UPSTREAM: &str = "searxng";
const API: &str = "SearXNG";

pub fn search(base: &str, query: &Query<'_>) -> Result<Value, Failure> {
    let url = Url::new(base, "/search")
        .param("q", query.text)
        .param("format", "json")
        .param_opt(
            "time_range",
            query.freshness.map(|freshness| match freshness {
                Freshness::Day => "day",
                Freshness::Week | Freshness::Month => "month",
                Freshness::Year => "year",
            }),
        )
        .build();
    let response = http::get(&url, &[])?;
    if response.status == 403 {
        return Err(Failure::Unavailable(format!(
            "{API} refused format=json (HTTP 403): JSON output is disabled on this instance; \
             add `json` to `search.formats` in its settings.yml"
        )));
    }
    let body = answer::json(API, &response)?;
    let hits = Hit::all(body.get("results"), "content");
    if hits.is_empty() {
        let unresponsive = unresponsive_engines(&body);
        if !unresponsive.is_empty() {
            return Err(Failure::Unavailable(format!(
                "{API} found nothing and its engines did not answer: {}",
                unresponsive.join(", ")
            )));
        }
    }
    Ok(crate::result(hits, query.limit, UPSTREAM))
}

/// `[["google", "timeout"], …]` as `google (timeout)`.
fn unresponsive_engines(body: &Value) -> Vec<String> {
    body.get("unresponsive_engines")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|pair| {
            let engine = pair.get(0)?.as_str()?;
            Some(match pair.get(1).and_then(Value::as_str) {
                Some(why) => format!("{engine} ({why})"),
                None => engine.to_owned(),
            })
        })
        .collect()
}
