//! Canonical JSON and its digest: one spelling per JSON value (object keys sorted, compact,
//! numbers and strings as serde_json writes them) and the SHA-256 of it in hex. Every cache key
//! of the gateway is one of these digests (a tool call's arguments, a chat completion's
//! semantic fields), so equal requests however their keys were ordered share one cache row.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The SHA-256 of `value`'s canonical spelling, as 64 lowercase hex digits.
pub(crate) fn digest(value: &Value) -> String {
    let mut canonical = String::new();
    write(value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut key = String::with_capacity(64);
    for byte in digest {
        key.push(hex(byte >> 4));
        key.push(hex(byte & 0x0f));
    }
    key
}

fn hex(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// `value` as compact JSON with every object's keys sorted.
pub(crate) fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_escapes_them() {
        let mut out = String::new();
        write(&json!({"b": "x\"y", "a\n": 1.5, "c": null}), &mut out);
        assert_eq!(out, r#"{"a\n":1.5,"b":"x\"y","c":null}"#);
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_canonical_spelling() {
        // sha256("{}")
        assert_eq!(
            digest(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(
            digest(&json!({"a": [1, {"y": 1, "x": 0}], "b": 2})),
            digest(&json!({"b": 2, "a": [1, {"x": 0, "y": 1}]}))
        );
        assert_ne!(digest(&json!([1, 2])), digest(&json!([2, 1])));
    }
}
