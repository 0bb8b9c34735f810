//! The `search` tool plugin: web search through a self-hosted SearXNG, Brave Search or Tavily,
//! whichever the operator enables (in that order by default).
//!
//! Tool: `web_search {query, limit?, freshness?}` → `{"results": [{title, url, snippet}],
//! "source"}`, trimmed to `limit`. Upstreams: `searxng` (endpoint `base`, no key), `brave`
//! (header `X-Subscription-Token`), `tavily` (`Authorization: Bearer`). See `searxng.rs`,
//! `brave.rs`, `tavily.rs` for each API's quirks, `docs/tools/search.md` for the tool.

mod brave;
mod searxng;
mod snippet;
mod tavily;

use aigw_plugin_sdk::args::Args;
use aigw_plugin_sdk::schema;
use aigw_plugin_sdk::{
    CredentialPlacement, Failure, NamedUrl, Tool, ToolDescriptor, ToolSpec, ToolTarget, Upstream,
};
use serde_json::{Value, json};

pub struct Search;

aigw_plugin_sdk::export_tool!(Search);

/// Results stay fresh this long: the web moves slower than a quote, and Brave and Tavily charge
/// per request.
const CACHE_TTL_SECONDS: u32 = 3600;

const MAX_LIMIT: i64 = 20;
const DEFAULT_LIMIT: i64 = 5;

/// How recent the results must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Day,
    Week,
    Month,
    Year,
}

/// What a call asks for, whichever upstream serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    pub text: &'a str,
    pub limit: usize,
    pub freshness: Option<Freshness>,
}

/// One result in the shape every upstream answers in.
pub struct Hit<'a> {
    pub title: &'a str,
    pub url: &'a str,
    pub snippet: Option<&'a str>,
}

impl<'a> Hit<'a> {
    /// The hits of an upstream's result list (`None`: no list, no hits): each item's `title`
    /// (empty when absent), `url` (an item without one is no hit) and the snippet under
    /// `snippet_field` (`content`, Brave's `description`).
    pub fn all(items: Option<&'a Value>, snippet_field: &str) -> Vec<Hit<'a>> {
        items
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                Some(Hit {
                    title: item
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    url: item.get("url").and_then(Value::as_str)?,
                    snippet: item.get(snippet_field).and_then(Value::as_str),
                })
            })
            .collect()
    }
}

/// The result: at most `limit` hits, their snippets cleaned and shortened.
pub fn result(hits: Vec<Hit<'_>>, limit: usize, source: &str) -> Value {
    let results: Vec<Value> = hits
        .into_iter()
        .filter(|hit| !hit.url.is_empty())
        .take(limit)
        .map(|hit| {
            json!({
                "title": snippet::clean(hit.title),
                "url": hit.url,
                "snippet": hit.snippet.map(snippet::clean).map(|text| snippet::shorten(&text)).unwrap_or_default(),
            })
        })
        .collect();
    json!({"results": results, "source": source})
}

fn web_search_spec() -> ToolSpec {
    ToolSpec {
        name: "web_search".to_owned(),
        title: "Web search".to_owned(),
        description: "Searches the web: the top results' titles, addresses and snippets. Use it \
                      for current events, facts to check, or pages to cite."
            .to_owned(),
        parameters: schema::object(
            json!({
                "query": schema::text("What to search for", 400),
                "limit": schema::integer("How many results (default 5)", 1, MAX_LIMIT),
                "freshness": schema::one_of("Only results from the last day, week, month or year", &["day", "week", "month", "year"]),
            }),
            &["query"],
        ),
        output: Some(schema::object(
            json!({
                "results": schema::array("The results, best first", schema::object(json!({
                    "title": schema::string("The page's title"),
                    "url": schema::string("Its address"),
                    "snippet": schema::string("What the page says about the query (may be empty)"),
                }), &["title", "url", "snippet"])),
                "source": schema::one_of("Which upstream answered", &[searxng::UPSTREAM, brave::UPSTREAM, tavily::UPSTREAM]),
            }),
            &["results", "source"],
        )),
        cache_ttl_seconds: CACHE_TTL_SECONDS,
    }
}

impl Tool for Search {
    fn describe() -> ToolDescriptor {
        ToolDescriptor {
            name: "search".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tools: vec![web_search_spec()],
            upstreams: vec![
                Upstream {
                    name: searxng::UPSTREAM.to_owned(),
                    endpoints: vec![NamedUrl::new("base", "http://127.0.0.1:8888")],
                    credential: CredentialPlacement::None,
                    credential_required: false,
                },
                Upstream {
                    name: brave::UPSTREAM.to_owned(),
                    endpoints: vec![NamedUrl::new("base", "https://api.search.brave.com")],
                    credential: CredentialPlacement::Header {
                        name: "X-Subscription-Token".to_owned(),
                        prefix: String::new(),
                    },
                    credential_required: true,
                },
                Upstream {
                    name: tavily::UPSTREAM.to_owned(),
                    endpoints: vec![NamedUrl::new("base", "https://api.tavily.com")],
                    credential: CredentialPlacement::bearer(),
                    credential_required: true,
                },
            ],
        }
    }

    fn invoke(name: &str, args: Value, target: &ToolTarget) -> Result<Value, Failure> {
        if name != "web_search" {
            return Err(Failure::InvalidRequest(format!(
                "the search plugin has no tool named {name:?}"
            )));
        }
        let args = Args(&args);
        let freshness = match args.one_of("freshness", &["day", "week", "month", "year"])? {
            Some("day") => Some(Freshness::Day),
            Some("week") => Some(Freshness::Week),
            Some("month") => Some(Freshness::Month),
            Some(_) => Some(Freshness::Year),
            None => None,
        };
        let query = Query {
            text: args.required_string("query")?,
            limit: usize::try_from(
                args.integer("limit", 1, MAX_LIMIT)?
                    .unwrap_or(DEFAULT_LIMIT),
            )
            .unwrap_or(5),
            freshness,
        };
        let base = target.endpoint("base")?;
        match target.upstream.as_str() {
            searxng::UPSTREAM => searxng::search(base, &query),
            brave::UPSTREAM => brave::search(base, &query),
            tavily::UPSTREAM => tavily::search(base, &query),
            other => Err(Failure::Unavailable(format!(
                "the search plugin has no upstream named {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
