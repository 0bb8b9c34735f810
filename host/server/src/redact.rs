//! Redaction: the operator's patterns (`[redaction] patterns`, social security numbers, card
//! numbers, internal hostnames) masked in what the gateway keeps. The one place that decides it:
//! memory writes call [`Redactor::item`] (a conversation item, whoever writes it: a client over
//! HTTP, a chat turn recorded in a session, a tool plugin) and [`Redactor::value`] (a key-value
//! entry's value) before the write; the [`crate::scrub::Scrubber`] applies [`Redactor::redact`]
//! after masking credentials, so upstream text that is logged, relayed or kept as a target's last
//! error is redacted too.
//!
//! Cost: all patterns are compiled into one regex (one pass over each string, not one per
//! pattern), only on those paths: memory writes and failures. The chat hot path (a request,
//! its upstream answer) never runs a pattern; with no patterns configured every call returns at
//! once without looking at the text.

use std::borrow::Cow;
use std::fmt;

use regex::{NoExpand, Regex};
use serde_json::{Map, Value};

use crate::options::RedactionOptions;

/// The fields of a conversation item that structure it rather than say something: never
/// redacted, so a broad pattern cannot turn a `"role": "user"` into something no reader knows.
const ITEM_STRUCTURE: [&str; 6] = ["type", "role", "id", "call_id", "status", "name"];

/// The configured patterns, compiled; [`Redactor::default`] redacts nothing.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// All patterns as one alternation; `None`: none configured.
    patterns: Option<Regex>,
    replacement: String,
}

/// A pattern that does not compile: which one (0-based, as listed) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionError {
    pub index: usize,
    pub message: String,
}

impl fmt::Display for RedactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pattern {}: {}", self.index + 1, self.message)
    }
}

impl std::error::Error for RedactionError {}

impl Redactor {
    /// Compiles `options.patterns`; the first that is not a valid regex is the error.
    pub fn new(options: &RedactionOptions) -> Result<Redactor, RedactionError> {
        for (index, pattern) in options.patterns.iter().enumerate() {
            let error = |message: String| RedactionError { index, message };
            match Regex::new(pattern) {
                Err(e) => return Err(error(e.to_string())),
                // `""`, `x*`: a match at every position, the replacement between every character.
                Ok(regex) if regex.is_match("") => {
                    return Err(error(
                        "it matches the empty text, so it would insert the replacement \
                         everywhere; make it match at least one character"
                            .to_owned(),
                    ));
                }
                Ok(_) => {}
            }
        }
        if options.patterns.is_empty() {
            return Ok(Redactor {
                patterns: None,
                replacement: options.replacement.clone(),
            });
        }
        // Each in its own group, so a pattern's `|` or inline flags stay its own.
        let joined = options
            .patterns
            .iter()
            .map(|p| format!("(?:{p})"))
            .collect::<Vec<_>>()
            .join("|");
        let patterns = Regex::new(&joined).map_err(|e| RedactionError {
            index: options.patterns.len() - 1,
            message: format!("the patterns together do not compile: {e}"),
        })?;
        Ok(Redactor {
            patterns: Some(patterns),
            replacement: options.replacement.clone(),
        })
    }

    /// Whether any pattern is configured.
    pub fn is_active(&self) -> bool {
        self.patterns.is_some()
    }

    /// `text` with every match replaced (borrowed, not copied, when nothing matches).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.patterns {
            None => Cow::Borrowed(text),
            Some(patterns) => patterns.replace_all(text, NoExpand(&self.replacement)),
        }
    }

    /// Redacts every string in a stored value (an entry's value), at any depth.
    pub(crate) fn value(&self, value: &mut Map<String, Value>) {
        if self.is_active() {
            for field in value.values_mut() {
                self.strings(field, &[]);
            }
        }
    }

    /// Redacts every string in a conversation item but the fields that structure it
    /// ([`ITEM_STRUCTURE`]), at any depth (content parts, tool arguments, outputs).
    pub(crate) fn item(&self, item: &mut Map<String, Value>) {
        if self.is_active() {
            for (key, field) in item.iter_mut() {
                if !ITEM_STRUCTURE.contains(&key.as_str()) {
                    self.strings(field, &ITEM_STRUCTURE);
                }
            }
        }
    }

    fn strings(&self, value: &mut Value, skipped: &[&str]) {
        match value {
            Value::String(text) => {
                if let Cow::Owned(redacted) = self.redact(text) {
                    *text = redacted;
                }
            }
            Value::Array(list) => {
                for v in list {
                    self.strings(v, skipped);
                }
            }
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if !skipped.contains(&key.as_str()) {
                        self.strings(v, skipped);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    const SSN: &str = r"\b\d{3}-\d{2}-\d{4}\b";

    fn redactor(patterns: &[&str]) -> Redactor {
        Redactor::new(&RedactionOptions {
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
            ..RedactionOptions::default()
        })
        .unwrap()
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn every_pattern_is_replaced_and_other_text_left_alone() {
        let r = redactor(&[SSN, r"(?i)card:\s*\d+"]);
        assert_eq!(
            r.redact("ssn 123-45-6789, CARD: 4111 and 123-45-6789x"),
            "ssn [REDACTED], [REDACTED] and 123-45-6789x"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        // A pattern's alternation stays its own.
        let r = redactor(&["a|b", "zz"]);
        assert_eq!(r.redact("a b c zz"), "[REDACTED] [REDACTED] c [REDACTED]");
    }

    #[test]
    fn the_replacement_is_literal() {
        let r = Redactor::new(&RedactionOptions {
            patterns: vec![r"(\d+)".to_owned()],
            replacement: "$1 <gone>".to_owned(),
        })
        .unwrap();
        assert_eq!(r.redact("pin 1234"), "pin $1 <gone>");
    }

    #[test]
    fn no_patterns_redact_nothing() {
        let r = Redactor::new(&RedactionOptions::default()).unwrap();
        assert!(!r.is_active());
        assert!(matches!(r.redact("123-45-6789"), Cow::Borrowed(_)));
        let mut value = object(json!({"ssn": "123-45-6789"}));
        r.value(&mut value);
        assert_eq!(value["ssn"], "123-45-6789");
        assert!(!Redactor::default().is_active());
    }

    #[test]
    fn a_bad_pattern_is_named_by_its_place() {
        let e = Redactor::new(&RedactionOptions {
            patterns: vec![SSN.to_owned(), "(unclosed".to_owned()],
            ..RedactionOptions::default()
        })
        .unwrap_err();
        assert_eq!(e.index, 1);
        assert!(e.to_string().starts_with("pattern 2: "), "{e}");
        assert!(e.message.contains("unclosed group"), "{e}");
        for empty in ["", "x*", "(a|)"] {
            let e = Redactor::new(&RedactionOptions {
                patterns: vec![empty.to_owned()],
                ..RedactionOptions::default()
            })
            .unwrap_err();
            assert!(
                e.message.contains("matches the empty text"),
                "{empty:?}: {e}"
            );
        }
    }

    #[test]
    fn every_string_of_a_value_is_redacted_at_any_depth() {
        let r = redactor(&[SSN]);
        let mut value = object(json!({
            "ssn": "123-45-6789",
            "nested": {"list": ["ok", "mine is 987-65-4321"], "n": 123456789},
            "type": "123-45-6789",
        }));
        r.value(&mut value);
        assert_eq!(
            Value::Object(value),
            json!({
                "ssn": "[REDACTED]",
                "nested": {"list": ["ok", "mine is [REDACTED]"], "n": 123456789},
                "type": "[REDACTED]",
            })
        );
    }

    #[test]
    fn an_items_content_is_redacted_and_its_structure_kept() {
        let r = redactor(&[SSN, "user|message|function_call"]);
        let mut item = object(json!({
            "type": "message",
            "role": "user",
            "id": "msg_1",
            "content": [{"type": "input_text", "text": "my ssn is 123-45-6789, user"}],
        }));
        r.item(&mut item);
        assert_eq!(
            Value::Object(item),
            json!({
                "type": "message",
                "role": "user",
                "id": "msg_1",
                "content": [{"type": "input_text", "text": "my ssn is [REDACTED], [REDACTED]"}],
            })
        );
        let mut call = object(json!({
            "type": "function_call", "call_id": "c1", "name": "lookup",
            "arguments": "{\"ssn\":\"123-45-6789\"}",
        }));
        r.item(&mut call);
        assert_eq!(call["arguments"], "{\"ssn\":\"[REDACTED]\"}");
        assert_eq!(call["type"], "function_call");
    }
}
