//! What full-text search sees of an entry, and what it looks for. An entry's indexed text is
//! the string leaves of its value, or of only the fields its put named (LangGraph's `index`:
//! `["title", "sections[*].body"]`, `"$"` for the whole value, `false` for nothing). A query is
//! natural language, as LangGraph's is: it is cut into words, each matched as an FTS5 term, any
//! of them may match, and bm25 ranks the entries holding more of them (and rarer ones) first.
//! Quoting every word keeps FTS5's own syntax (`NEAR`, `*`, `"`, `-`) out of clients' hands, so
//! no query is a syntax error.

use serde_json::{Map, Value};

use super::EntryError;

/// The most fields one put may name in `index`.
pub const MAX_INDEX_FIELDS: usize = 32;
/// The longest `index` field path, in bytes.
pub const MAX_INDEX_FIELD_BYTES: usize = 256;
/// The longest search query, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// The most words of a query that are searched for (the rest are ignored).
pub const MAX_QUERY_TERMS: usize = 32;

/// Which parts of a value full-text search indexes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Index {
    /// Every string in the value (LangGraph's `index=None` with a text index configured).
    #[default]
    All,
    /// Nothing: the entry is found by path and filter only (`index=false`).
    Off,
    /// The strings under these fields only.
    Fields(Vec<FieldPath>),
}

/// A field of a value, as LangGraph's `index` names it: `a.b`, `a[*].b`, `a[0]`, or `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Every,
    At(usize),
}

impl FieldPath {
    /// Parses `text`; `param` names it in the error (`index[2]`).
    pub fn parse(text: &str, param: &str) -> Result<FieldPath, EntryError> {
        let invalid = |message: &str| EntryError::invalid(param, message);
        if text.is_empty() || text.len() > MAX_INDEX_FIELD_BYTES {
            return Err(invalid(&format!(
                "a field path must be 1 to {MAX_INDEX_FIELD_BYTES} bytes long"
            )));
        }
        if text == "$" {
            return Ok(FieldPath(Vec::new()));
        }
        let mut steps = Vec::new();
        for part in text.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(at) => (&part[..at], &part[at..]),
                None => (part, ""),
            };
            if name.is_empty() {
                return Err(invalid(&format!(
                    "{text:?} is not a field path (`a.b`, `a[*].b`, `a[0]` or `$`)"
                )));
            }
            steps.push(Step::Field(name.to_owned()));
            while !rest.is_empty() {
                let Some(close) = rest.find(']') else {
                    return Err(invalid(&format!("{text:?}: a `[` is not closed")));
                };
                let inside = &rest[1..close];
                steps.push(if inside == "*" {
                    Step::Every
                } else {
                    Step::At(inside.parse().map_err(|_| {
                        invalid(&format!(
                            "{text:?}: `[{inside}]` is neither `[*]` nor an array position"
                        ))
                    })?)
                });
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(invalid(&format!("{text:?}: a `.` must follow `]`")));
                }
            }
        }
        Ok(FieldPath(steps))
    }
}

/// The text the full-text index holds for `value` under `index` (empty: not indexed).
pub(crate) fn indexed_text(value: &Map<String, Value>, index: &Index) -> String {
    let mut text = String::new();
    match index {
        Index::Off => {}
        Index::All => {
            for v in value.values() {
                strings(v, &mut text);
            }
        }
        Index::Fields(fields) => {
            let root = Value::Object(value.clone());
            for field in fields {
                select(&root, &field.0, &mut text);
            }
        }
    }
    text
}

fn select(value: &Value, steps: &[Step], text: &mut String) {
    let Some((step, rest)) = steps.split_first() else {
        strings(value, text);
        return;
    };
    match (step, value) {
        (Step::Field(name), Value::Object(map)) => {
            if let Some(v) = map.get(name) {
                select(v, rest, text);
            }
        }
        (Step::Every, Value::Array(items)) => {
            for item in items {
                select(item, rest, text);
            }
        }
        (Step::At(n), Value::Array(items)) => {
            if let Some(item) = items.get(*n) {
                select(item, rest, text);
            }
        }
        _ => {}
    }
}

/// Every string leaf of `value`, one per line.
fn strings(value: &Value, text: &mut String) {
    match value {
        Value::String(s) => {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(s);
        }
        Value::Array(items) => items.iter().for_each(|v| strings(v, text)),
        Value::Object(map) => map.values().for_each(|v| strings(v, text)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The FTS5 expression for a natural-language `query`: its words, each quoted, any of them
/// matching. `None` when it holds no word (then the search is not ranked).
pub(crate) fn match_expression(query: &str) -> Option<String> {
    let terms: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(MAX_QUERY_TERMS)
        .map(|word| format!("\"{word}\""))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" OR "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn index_selects_the_named_strings() {
        let value = object(json!({
            "title": "Tea",
            "n": 3,
            "sections": [{"body": "green"}, {"body": "black", "x": "no"}],
            "tags": ["a", "b"],
        }));
        assert_eq!(indexed_text(&value, &Index::Off), "");
        let all = indexed_text(&value, &Index::All);
        for word in ["Tea", "green", "black", "no", "a", "b"] {
            assert!(all.lines().any(|l| l == word), "{word} in {all:?}");
        }
        let fields = |paths: &[&str]| {
            Index::Fields(
                paths
                    .iter()
                    .map(|p| FieldPath::parse(p, "index").unwrap())
                    .collect(),
            )
        };
        assert_eq!(
            indexed_text(&value, &fields(&["title", "sections[*].body"])),
            "Tea\ngreen\nblack"
        );
        assert_eq!(indexed_text(&value, &fields(&["sections[1].x"])), "no");
        assert_eq!(
            indexed_text(&value, &fields(&["tags[0]", "missing.a"])),
            "a"
        );
        assert_eq!(indexed_text(&value, &fields(&["$"])), all);
    }

    #[test]
    fn bad_field_paths_name_the_param() {
        for bad in ["", "a..b", ".a", "a[", "a[x]", "a[0]b", "[0]"] {
            let error = FieldPath::parse(bad, "index[1]").unwrap_err();
            assert!(
                matches!(&error, EntryError::Invalid { param, .. } if param == "index[1]"),
                "{bad:?}: {error:?}"
            );
        }
    }

    #[test]
    fn queries_become_quoted_terms() {
        assert_eq!(
            match_expression("what's \"NEAR\" tea-time?").as_deref(),
            Some("\"what\" OR \"s\" OR \"NEAR\" OR \"tea\" OR \"time\"")
        );
        assert_eq!(match_expression(" ?!* "), None);
        assert_eq!(
            match_expression("thé vert").as_deref(),
            Some("\"thé\" OR \"vert\"")
        );
    }
}
