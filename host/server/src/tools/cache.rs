//! The tool service's use of the shared cache: a result is kept per tool and canonical
//! arguments (object keys sorted, compact JSON, SHA-256), for the tool's TTL, in the store every
//! process on one database shares (the digest: [`crate::canonical`]); an equal call within it is answered without an upstream.
//! Only answers are cached, never failures. A store that cannot be read or written costs the
//! cache, never the call: the call goes to an upstream (a read) or is answered uncached (a
//! write), and the failure is logged.

use std::time::Duration;

use aigw_memory::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What is kept of an answer.
#[derive(Serialize, Deserialize)]
pub(super) struct Kept {
    pub(super) value: Value,
    pub(super) upstream: Option<String>,
}

/// The cache row of one call: scope `tool:<name>`, key the arguments' digest.
pub(super) struct Slot {
    scope: String,
    key: String,
}

impl Slot {
    pub(super) fn new(tool: &str, arguments: &Value) -> Slot {
        Slot {
            scope: format!("tool:{tool}"),
            key: crate::canonical::digest(arguments),
        }
    }

    /// The fresh answer kept for this call, if any.
    pub(super) async fn get(&self, store: &Store) -> Option<Kept> {
        match aigw_memory::cache::get(store, &self.scope, &self.key).await {
            Ok(Some(cached)) => match serde_json::from_slice(&cached.value) {
                Ok(kept) => Some(kept),
                Err(e) => {
                    tracing::warn!(scope = %self.scope, error = %e, "cache: an unreadable row");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(scope = %self.scope, error = %e, "cache: read failed");
                None
            }
        }
    }

    /// Keeps `kept` for `ttl`.
    pub(super) async fn put(&self, store: &Store, kept: &Kept, ttl: Duration) {
        let Ok(bytes) = serde_json::to_vec(kept) else {
            return;
        };
        if let Err(e) = aigw_memory::cache::put(store, &self.scope, &self.key, bytes, ttl).await {
            tracing::warn!(scope = %self.scope, error = %e, "cache: write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_arguments_in_any_order_share_a_row_and_others_do_not() {
        let a = Slot::new(
            "weather_current",
            &json!({"city": "Paris", "opts": {"b": 1, "a": [2, {"y": 1, "x": 0}]}}),
        );
        let b = Slot::new(
            "weather_current",
            &json!({"opts": {"a": [2, {"x": 0, "y": 1}], "b": 1}, "city": "Paris"}),
        );
        assert_eq!(a.key, b.key);
        assert_eq!(a.scope, "tool:weather_current");
        assert_eq!(a.key.len(), 64);
        let other = Slot::new("weather_current", &json!({"city": "Lyon"}));
        assert_ne!(a.key, other.key);
        let tool = Slot::new(
            "weather_forecast",
            &json!({"city": "Paris", "opts": {"b": 1, "a": [2, {"y": 1, "x": 0}]}}),
        );
        assert_eq!(tool.key, a.key);
        assert_ne!(tool.scope, a.scope);
        // Array order is meaning, not layout.
        assert_ne!(
            Slot::new("t", &json!({"a": [1, 2]})).key,
            Slot::new("t", &json!({"a": [2, 1]})).key
        );
    }
}
