//! The `news` tool plugin: top headlines and article search from NewsAPI.org, or from GNews when
//! NewsAPI cannot serve (both need a free key, which the host adds).
//!
//! Tools: `news_headlines {category?, country?, limit?}` and `news_search {query, from?, limit?,
//! language?}`. Upstreams, in order: `newsapi` (header `X-Api-Key`), `gnews` (query `apikey`).
//! Both answer in one shape ([`articles_schema`]); an empty result is an answer, not a failure.
//! See `newsapi.rs` and `gnews.rs` for each API's quirks, `docs/tools/news.md` for the tools.

mod gnews;
mod newsapi;

use aigw_plugin_sdk::args::Args;
use aigw_plugin_sdk::schema;
use aigw_plugin_sdk::{
    CredentialPlacement, Failure, NamedUrl, Tool, ToolDescriptor, ToolSpec, ToolTarget, Upstream,
};
use serde_json::{Value, json};

pub struct News;

aigw_plugin_sdk::export_tool!(News);

/// Results stay fresh this long: both free plans allow about 100 requests a day.
const CACHE_TTL_SECONDS: u32 = 600;

/// The categories both APIs know.
const CATEGORIES: [&str; 7] = [
    "business",
    "entertainment",
    "general",
    "health",
    "science",
    "sports",
    "technology",
];

const MAX_LIMIT: i64 = 20;
const DEFAULT_LIMIT: i64 = 5;

/// The longest description kept per article: enough to judge it, short enough for a prompt.
const MAX_DESCRIPTION_CHARS: usize = 300;

/// What a call asks for, whichever upstream serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Headlines {
        category: Option<&'a str>,
        country: String,
        limit: usize,
    },
    Search {
        query: &'a str,
        from: Option<&'a str>,
        language: Option<String>,
        limit: usize,
    },
}

/// One article in the shape both upstreams answer in.
pub struct Article<'a> {
    pub title: &'a str,
    pub source: Option<&'a str>,
    pub url: &'a str,
    pub published_at: Option<&'a str>,
    pub description: Option<&'a str>,
}

impl Article<'_> {
    fn to_json(&self) -> Value {
        json!({
            "title": self.title,
            "source": self.source,
            "url": self.url,
            "published_at": self.published_at,
            "description": self.description.map(shorten),
        })
    }
}

/// The result: at most `limit` articles, and how many the upstream says it has.
pub fn result(articles: Vec<Article<'_>>, total: Option<u64>, limit: usize, source: &str) -> Value {
    let articles: Vec<Value> = articles.iter().take(limit).map(Article::to_json).collect();
    json!({"articles": articles, "total_results": total, "source": source})
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_DESCRIPTION_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

pub fn articles_schema() -> Value {
    schema::object(
        json!({
            "articles": schema::array("The articles, newest or most relevant first", schema::object(json!({
                "title": schema::string("The headline"),
                "source": schema::nullable_string("The publication"),
                "url": schema::string("The article's address"),
                "published_at": schema::nullable_string("When it was published (ISO 8601)"),
                "description": schema::nullable_string("Its summary, shortened"),
            }), &["title", "url"])),
            "total_results": {"type": ["integer", "null"], "description": "How many the upstream has in all"},
            "source": schema::one_of("Which upstream answered", &[newsapi::UPSTREAM, gnews::UPSTREAM]),
        }),
        &["articles", "source"],
    )
}

fn limit_schema() -> Value {
    schema::integer("How many articles (default 5)", 1, MAX_LIMIT)
}

fn headlines_spec() -> ToolSpec {
    ToolSpec {
        name: "news_headlines".to_owned(),
        title: "News headlines".to_owned(),
        description: "Today's top news headlines, optionally for one category and country."
            .to_owned(),
        parameters: schema::object(
            json!({
                "category": schema::one_of("The section (default: all)", &CATEGORIES),
                "country": {"type": "string", "description": "ISO 3166 two-letter country code (default us)", "pattern": "^[A-Za-z]{2}$"},
                "limit": limit_schema(),
            }),
            &[],
        ),
        output: Some(articles_schema()),
        cache_ttl_seconds: CACHE_TTL_SECONDS,
    }
}

fn search_spec() -> ToolSpec {
    ToolSpec {
        name: "news_search".to_owned(),
        title: "News search".to_owned(),
        description: "Searches recent news articles (about the last month) for words or a phrase, newest first."
            .to_owned(),
        parameters: schema::object(
            json!({
                "query": schema::text("What to search for; quotes for a phrase, AND / OR / NOT", 500),
                "from": {"type": "string", "description": "The oldest publication date, YYYY-MM-DD", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "language": {"type": "string", "description": "ISO 639-1 two-letter language code, e.g. en", "pattern": "^[A-Za-z]{2}$"},
                "limit": limit_schema(),
            }),
            &["query"],
        ),
        output: Some(articles_schema()),
        cache_ttl_seconds: CACHE_TTL_SECONDS,
    }
}

impl Tool for News {
    fn describe() -> ToolDescriptor {
        ToolDescriptor {
            name: "news".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tools: vec![headlines_spec(), search_spec()],
            upstreams: vec![
                Upstream {
                    name: newsapi::UPSTREAM.to_owned(),
                    endpoints: vec![NamedUrl::new("base", "https://newsapi.org")],
                    credential: CredentialPlacement::Header {
                        name: "X-Api-Key".to_owned(),
                        prefix: String::new(),
                    },
                    credential_required: true,
                },
                Upstream {
                    name: gnews::UPSTREAM.to_owned(),
                    endpoints: vec![NamedUrl::new("base", "https://gnews.io")],
                    credential: CredentialPlacement::Query("apikey".to_owned()),
                    credential_required: true,
                },
            ],
        }
    }

    fn invoke(name: &str, args: Value, target: &ToolTarget) -> Result<Value, Failure> {
        let args = Args(&args);
        let limit = usize::try_from(
            args.integer("limit", 1, MAX_LIMIT)?
                .unwrap_or(DEFAULT_LIMIT),
        )
        .unwrap_or(5);
        let request = match name {
            "news_headlines" => Request::Headlines {
                category: args.one_of("category", &CATEGORIES)?,
                country: two_letters(&args, "country")?.unwrap_or_else(|| "us".to_owned()),
                limit,
            },
            "news_search" => Request::Search {
                query: args.required_string("query")?,
                from: date(&args, "from")?,
                language: two_letters(&args, "language")?,
                limit,
            },
            other => {
                return Err(Failure::InvalidRequest(format!(
                    "the news plugin has no tool named {other:?}"
                )));
            }
        };
        let base = target.endpoint("base")?;
        match target.upstream.as_str() {
            newsapi::UPSTREAM => newsapi::call(base, &request),
            gnews::UPSTREAM => gnews::call(base, &request),
            other => Err(Failure::Unavailable(format!(
                "the news plugin has no upstream named {other:?}"
            ))),
        }
    }
}

/// A two-letter code (country, language), in the lower case both APIs want.
fn two_letters(args: &Args<'_>, field: &str) -> Result<Option<String>, Failure> {
    match args.string(field)? {
        Some(code) if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(code.to_ascii_lowercase()))
        }
        Some(_) => Err(Failure::InvalidRequest(format!(
            "argument {field:?} must be a two-letter code"
        ))),
        None => Ok(None),
    }
}

/// A `YYYY-MM-DD` date.
fn date<'a>(args: &Args<'a>, field: &str) -> Result<Option<&'a str>, Failure> {
    match args.string(field)? {
        Some(text) => {
            let bytes = text.as_bytes();
            let shaped = bytes.len() == 10
                && bytes[4] == b'-'
                && bytes[7] == b'-'
                && bytes
                    .iter()
                    .enumerate()
                    .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
            if shaped {
                Ok(Some(text))
            } else {
                Err(Failure::InvalidRequest(format!(
                    "argument {field:?} must be a date, YYYY-MM-DD"
                )))
            }
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests;
