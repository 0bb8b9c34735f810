//! A grant pattern: the one shape in which a key names what it may use (models, tools, memory
//! namespaces). `name` matches itself only; `prefix*` matches every name starting with `prefix`
//! (so `groq/*` is every model of the provider `groq`, `team-a:*` every namespace under
//! `team-a:`); `*` alone matches everything. No other wildcard: a grant is read at a glance.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One entry of a grant list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    /// Reads `text`; a `*` anywhere but at the end is refused (the message is for the client).
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("a pattern may not be empty".into());
        }
        match text.find('*') {
            None => Ok(Pattern::Exact(text.to_owned())),
            Some(at) if at == text.len() - 1 => Ok(Pattern::Prefix(text[..at].to_owned())),
            Some(_) => Err(format!(
                "`{text}`: `*` may only end a pattern (like `groq/*`)"
            )),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == name,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }

    /// Whether this pattern names exactly one name (it can be a default).
    pub fn exact(&self) -> Option<&str> {
        match self {
            Pattern::Exact(name) => Some(name),
            Pattern::Prefix(_) => None,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(name) => f.write_str(name),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Pattern, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn exact_prefix_and_everything() {
        let exact = Pattern::parse("fast").unwrap();
        assert!(exact.matches("fast"));
        assert!(!exact.matches("faster"));
        let provider = Pattern::parse("groq/*").unwrap();
        assert!(provider.matches("groq/llama-3.1-8b-instant"));
        assert!(!provider.matches("groqx/llama"));
        assert!(!provider.matches("openrouter/groq/x"));
        let all = Pattern::parse("*").unwrap();
        assert!(all.matches("anything"));
        assert_eq!(provider.to_string(), "groq/*");
    }

    #[test]
    fn a_star_inside_or_nothing_is_refused() {
        assert!(Pattern::parse("gr*q").unwrap_err().contains("may only end"));
        assert!(Pattern::parse("").is_err());
        let json: Result<Pattern, _> = serde_json::from_str("\"*x\"");
        assert!(json.is_err());
    }
}
