//! The gateway's shared memory for tool plugins: the host's `memory` import (`wit/memory.wit`)
//! in plain Rust types, so a plugin handles JSON values and a Rust error enum, never the
//! generated bindings or JSON text.
//!
//! Every operation acts in the namespace of the call that invoked the plugin; the host sets it
//! and a plugin never names it. Key-value entries live under a *path* of labels and a *key*
//! (LangGraph's Store shape); conversations hold Responses items.
//!
//! ```ignore
//! use aigw_plugin_sdk::memory::{self, Put, Search};
//! use serde_json::json;
//!
//! // Store, read back, compare-and-set, search, forget.
//! let version = memory::put(&["users", "42"], "prefs", &json!({"units": "metric"}))?;
//! let entry = memory::get(&["users", "42"], "prefs")?.expect("just written");
//! assert_eq!(entry.value["units"], "metric");
//! memory::put_with(&["users", "42"], "prefs", &json!({"units": "imperial"}),
//!                  Put { if_version: Some(version), ttl_seconds: Some(3600) })?;
//! let hits = memory::search(&["users"], Search { query: Some("imperial"), ..Search::default() })?;
//! memory::delete(&["users", "42"], "prefs")?;
//!
//! // Conversations are created over HTTP; a plugin appends to and reads them.
//! let ids = memory::append_items("conv_1", &[json!({"type": "message", "role": "user",
//!                                                  "content": "hi"})])?;
//! let items = memory::list_items("conv_1", 20)?;
//! ```
//!
//! A [`MemoryError`] is the host's answer, not a failure of the plugin: a plugin decides what it
//! means for its tool (a `Conflict` is usually "read again and retry"). [`MemoryError::failure`]
//! gives the natural [`Failure`] for a tool that just wants to pass it on.
//!
//! Natively (plugins' unit tests) there is no host: every operation is
//! [`MemoryError::Unavailable`].

use serde_json::Value;

use crate::types::Failure;

/// Why a memory operation did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryError {
    /// The conversation named is not in this namespace (a missing entry is `None` from
    /// [`get`] and `false` from [`delete`], not this).
    NotFound,
    /// [`put_with`]'s `if_version` found another version: the entry's current one (0: it does
    /// not exist).
    Conflict { current: u64 },
    /// A value, item, query or filter over the host's size limit; the message names it.
    TooLarge(String),
    /// The plugin's quota in this namespace, or its operations in this call, ran out.
    Quota(String),
    /// The arguments were refused (an empty label, a value that is not an object, …).
    Invalid(String),
    /// Memory cannot be reached now: no store, no namespace for this call, the store busy.
    Unavailable(String),
}

impl MemoryError {
    /// The variant's name in the WIT (`not-found`, `conflict`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            MemoryError::NotFound => "not-found",
            MemoryError::Conflict { .. } => "conflict",
            MemoryError::TooLarge(_) => "too-large",
            MemoryError::Quota(_) => "quota",
            MemoryError::Invalid(_) => "invalid",
            MemoryError::Unavailable(_) => "unavailable",
        }
    }

    /// The tool failure this error becomes when a plugin just passes it on: the caller's
    /// mistake for `not-found`, `conflict`, `too-large`, `invalid` (`invalid-request`), the
    /// gateway's for `quota` and `unavailable` (`unavailable`: the host may fail over).
    pub fn failure(&self) -> Failure {
        let message = format!("memory: {self}");
        match self {
            MemoryError::Quota(_) | MemoryError::Unavailable(_) => Failure::Unavailable(message),
            _ => Failure::InvalidRequest(message),
        }
    }
}

impl std::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryError::NotFound => f.write_str("conversation not found"),
            MemoryError::Conflict { current } => {
                write!(f, "conflict: the entry is at version {current}")
            }
            MemoryError::TooLarge(m) => write!(f, "too large: {m}"),
            MemoryError::Quota(m) => write!(f, "quota: {m}"),
            MemoryError::Invalid(m) => write!(f, "invalid: {m}"),
            MemoryError::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for MemoryError {}

impl From<MemoryError> for Failure {
    fn from(error: MemoryError) -> Failure {
        error.failure()
    }
}

/// A key-value entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: Vec<String>,
    pub key: String,
    /// The stored JSON object (text the host sent that is not JSON is kept as a string, so
    /// nothing is lost; the host only stores objects).
    pub value: Value,
    /// 1 when created, one more with each put: what [`Put::if_version`] compares with.
    pub version: u64,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// When it expires; `None`: never.
    pub expires_at_ms: Option<u64>,
    /// Who wrote it last (`x-aigw-agent` over HTTP, `plugin:<name>` for a plugin).
    pub agent: Option<String>,
}

/// One entry [`search`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub entry: Entry,
    /// Full-text relevance, higher is better; `None` for a search without a query.
    pub score: Option<f64>,
}

/// One conversation item, in the Responses item shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Assigned by the host (`msg_…`, `fc_…`).
    pub id: String,
    /// The item, its `id` included.
    pub item: Value,
    pub agent: Option<String>,
}

/// The options of [`put_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Put {
    /// Forget the entry this long after this put; `None`: keep it.
    pub ttl_seconds: Option<u32>,
    /// Compare-and-set: only if the entry is at this version (`Some(0)`: only if it does not
    /// exist), else [`MemoryError::Conflict`].
    pub if_version: Option<u64>,
}

/// What [`search`] looks for. The default: every entry under the prefix, the 10 most recently
/// updated.
#[derive(Debug, Clone, PartialEq)]
pub struct Search<'a> {
    /// A full-text query over the values' text, best match first.
    pub query: Option<&'a str>,
    /// Fields the value must match: plain values (equality) or operator objects
    /// (`{"$gt": 3}`; `$eq $ne $gt $gte $lt $lte`).
    pub filter: Option<&'a Value>,
    /// At most this many (the host caps it).
    pub limit: u32,
}

impl Default for Search<'_> {
    fn default() -> Self {
        Search {
            query: None,
            filter: None,
            limit: 10,
        }
    }
}

/// The entry under `path` and `key`; `None` when there is none (or it expired).
pub fn get(path: &[impl AsRef<str>], key: &str) -> Result<Option<Entry>, MemoryError> {
    imp::get(&labels(path), key)
}

/// Stores `value` (a JSON object) under `path` and `key`, creating or replacing the entry; its
/// new version.
pub fn put(path: &[impl AsRef<str>], key: &str, value: &Value) -> Result<u64, MemoryError> {
    put_with(path, key, value, Put::default())
}

/// [`put`] with a TTL and/or compare-and-set.
pub fn put_with(
    path: &[impl AsRef<str>],
    key: &str,
    value: &Value,
    options: Put,
) -> Result<u64, MemoryError> {
    imp::put(&labels(path), key, &crate::json::text(value), options)
}

/// Removes the entry under `path` and `key`; whether there was one.
pub fn delete(path: &[impl AsRef<str>], key: &str) -> Result<bool, MemoryError> {
    imp::delete(&labels(path), key)
}

/// Entries whose path starts with `prefix` (empty: every path).
pub fn search(
    prefix: &[impl AsRef<str>],
    search: Search<'_>,
) -> Result<Vec<SearchHit>, MemoryError> {
    let filter = search.filter.map(Value::to_string);
    imp::search(
        &labels(prefix),
        search.query,
        filter.as_deref(),
        search.limit,
    )
}

/// The last `limit` items of `conversation` (the host caps it), oldest first.
pub fn list_items(conversation: &str, limit: u32) -> Result<Vec<Item>, MemoryError> {
    imp::list_items(conversation, limit)
}

/// Appends `items` (Responses input items) to `conversation`, all or none; their ids in order.
pub fn append_items(conversation: &str, items: &[Value]) -> Result<Vec<String>, MemoryError> {
    let items: Vec<String> = items.iter().map(Value::to_string).collect();
    imp::append_items(conversation, &items)
}

fn labels(path: &[impl AsRef<str>]) -> Vec<String> {
    path.iter().map(|l| l.as_ref().to_owned()).collect()
}

/// JSON text from the host, as JSON; text that is not JSON is kept as a string.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{Entry, Item, MemoryError, Put, SearchHit, parsed};
    use crate::tool_bindings::aigw::plugin::memory as wit;

    fn error(e: wit::MemoryError) -> MemoryError {
        match e {
            wit::MemoryError::NotFound => MemoryError::NotFound,
            wit::MemoryError::Conflict(current) => MemoryError::Conflict { current },
            wit::MemoryError::TooLarge(m) => MemoryError::TooLarge(m),
            wit::MemoryError::Quota(m) => MemoryError::Quota(m),
            wit::MemoryError::Invalid(m) => MemoryError::Invalid(m),
            wit::MemoryError::Unavailable(m) => MemoryError::Unavailable(m),
        }
    }

    fn entry(e: wit::Entry) -> Entry {
        Entry {
            value: parsed(&e.value_json),
            path: e.path,
            key: e.key,
            version: e.version,
            created_at_ms: e.created_at_ms,
            updated_at_ms: e.updated_at_ms,
            expires_at_ms: e.expires_at_ms,
            agent: e.agent,
        }
    }

    pub(super) fn get(path: &[String], key: &str) -> Result<Option<Entry>, MemoryError> {
        wit::get(path, key).map(|e| e.map(entry)).map_err(error)
    }

    pub(super) fn put(
        path: &[String],
        key: &str,
        value_json: &str,
        options: Put,
    ) -> Result<u64, MemoryError> {
        wit::put(
            path,
            key,
            value_json,
            options.ttl_seconds,
            options.if_version,
        )
        .map_err(error)
    }

    pub(super) fn delete(path: &[String], key: &str) -> Result<bool, MemoryError> {
        wit::delete(path, key).map_err(error)
    }

    pub(super) fn search(
        prefix: &[String],
        query: Option<&str>,
        filter_json: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SearchHit>, MemoryError> {
        wit::search(prefix, query, filter_json, limit)
            .map(|hits| {
                hits.into_iter()
                    .map(|h| SearchHit {
                        entry: entry(h.entry),
                        score: h.score,
                    })
                    .collect()
            })
            .map_err(error)
    }

    pub(super) fn list_items(conversation: &str, limit: u32) -> Result<Vec<Item>, MemoryError> {
        wit::list_items(conversation, limit)
            .map(|items| {
                items
                    .into_iter()
                    .map(|i| Item {
                        item: parsed(&i.item_json),
                        id: i.id,
                        agent: i.agent,
                    })
                    .collect()
            })
            .map_err(error)
    }

    pub(super) fn append_items(
        conversation: &str,
        items_json: &[String],
    ) -> Result<Vec<String>, MemoryError> {
        wit::append_items(conversation, items_json).map_err(error)
    }
}

/// Outside a component there is no host memory: every operation is `unavailable`.
#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{Entry, Item, MemoryError, Put, SearchHit};

    fn none<T>() -> Result<T, MemoryError> {
        Err(MemoryError::Unavailable(
            "no host memory outside a component".to_owned(),
        ))
    }

    pub(super) fn get(_: &[String], _: &str) -> Result<Option<Entry>, MemoryError> {
        none()
    }

    pub(super) fn put(_: &[String], _: &str, _: &str, _: Put) -> Result<u64, MemoryError> {
        none()
    }

    pub(super) fn delete(_: &[String], _: &str) -> Result<bool, MemoryError> {
        none()
    }

    pub(super) fn search(
        _: &[String],
        _: Option<&str>,
        _: Option<&str>,
        _: u32,
    ) -> Result<Vec<SearchHit>, MemoryError> {
        none()
    }

    pub(super) fn list_items(_: &str, _: u32) -> Result<Vec<Item>, MemoryError> {
        none()
    }

    pub(super) fn append_items(_: &str, _: &[String]) -> Result<Vec<String>, MemoryError> {
        none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn without_a_host_every_operation_is_unavailable() {
        let unavailable = |e: MemoryError| matches!(e, MemoryError::Unavailable(_));
        assert!(unavailable(get(&["a"], "k").unwrap_err()));
        assert!(unavailable(put(&["a"], "k", &json!({})).unwrap_err()));
        assert!(unavailable(delete(&["a"], "k").unwrap_err()));
        let no_prefix: [&str; 0] = [];
        assert!(unavailable(
            search(&no_prefix, Search::default()).unwrap_err()
        ));
        assert!(unavailable(list_items("c", 1).unwrap_err()));
        assert!(unavailable(append_items("c", &[json!({})]).unwrap_err()));
    }

    #[test]
    fn an_error_passed_on_is_the_callers_or_the_gateways_failure() {
        let conflict = MemoryError::Conflict { current: 3 };
        assert_eq!(conflict.kind(), "conflict");
        assert_eq!(
            Failure::from(conflict),
            Failure::InvalidRequest("memory: conflict: the entry is at version 3".into())
        );
        assert!(matches!(
            MemoryError::Quota("100 entries".into()).failure(),
            Failure::Unavailable(m) if m == "memory: quota: 100 entries"
        ));
        assert!(matches!(
            MemoryError::Unavailable("busy".into()).failure(),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            MemoryError::NotFound.failure(),
            Failure::InvalidRequest(_)
        ));
    }

    #[test]
    fn host_text_that_is_not_json_is_kept() {
        assert_eq!(parsed(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(parsed("oops"), json!("oops"));
    }
}
