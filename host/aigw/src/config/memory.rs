//! `[memory]`: where the shared memory store lives, what an acknowledged write survives and how
//! large a conversation item may be, validated into the store's own [`StoreOptions`] (whose
//! `new` holds the defaults), and how much history a session-aware chat completion is sent,
//! validated into the server's [`SessionOptions`].

use std::path::Path;

use aigw_memory::{Durability, StoreOptions};
use aigw_server::SessionOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

/// The database file when `[memory] path` is not set: beside the config file.
pub(super) const DEFAULT_PATH: &str = "aigw.db";

/// URLs of a libsql server (sqld, Turso), which a file path must not be mistaken for.
const REMOTE_SCHEMES: [&str; 5] = ["libsql://", "https://", "http://", "wss://", "ws://"];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMemory {
    path: Option<Spanned<String>>,
    durability: Option<Spanned<String>>,
    busy_timeout_ms: Number,
    max_item_bytes: Number,
    sweep_interval_secs: Number,
    session_max_items: Number,
    session_max_tokens: Number,
}

/// The most history items a request may be sent: a bound on the store read and the body.
const MAX_SESSION_ITEMS: u32 = 10_000;
/// The most history tokens: far above any model's context, so only a typo is refused.
const MAX_SESSION_TOKENS: u32 = 10_000_000;

/// `base` is the config file's folder, which a relative `path` starts from.
pub(super) fn validate(
    raw: &RawMemory,
    base: &Path,
    values: &Values,
) -> Result<StoreOptions, ConfigError> {
    let path = match &raw.path {
        None => DEFAULT_PATH.to_owned(),
        Some(v) => {
            let path = values.expand(v, "memory.path")?;
            if let Some(scheme) = REMOTE_SCHEMES.iter().find(|s| path.starts_with(**s)) {
                return Err(values.error(
                    Some(v.span()),
                    format!(
                        "`memory.path` is a {scheme} URL: aigw's store is a database file                          (several gateways on one machine may share it); a libsql server is not                          supported yet (docs/memory.md, \"Replicas\")"
                    ),
                ));
            }
            path
        }
    };
    let mut options = StoreOptions::new(base.join(path));
    if let Some(v) = &raw.durability {
        let name = values.expand(v, "memory.durability")?;
        options.durability = match Durability::ALL.into_iter().find(|d| d.name() == name) {
            Some(durability) => durability,
            None => {
                let other = name;
                return Err(values.error(
                    Some(v.span()),
                    format!(
                        "`memory.durability` must be \"process\" (an acknowledged write survives \
                         the gateway's crash) or \"power\" (it survives power loss too), not \
                         {other:?}"
                    ),
                ));
            }
        };
    }
    options.busy_timeout = values.millis(
        &raw.busy_timeout_ms,
        "memory.busy_timeout_ms",
        options.busy_timeout,
    )?;
    let max_item_bytes = values.positive(
        &raw.max_item_bytes,
        "memory.max_item_bytes",
        options.max_item_bytes as u64,
    )?;
    options.max_item_bytes = usize::try_from(max_item_bytes).unwrap_or(usize::MAX);
    options.sweep_interval = std::time::Duration::from_secs(values.positive(
        &raw.sweep_interval_secs,
        "memory.sweep_interval_secs",
        options.sweep_interval.as_secs(),
    )?);
    Ok(options)
}

/// The session bounds of `[memory]`; 0 sends no history (turns are still recorded).
pub(super) fn sessions(raw: &RawMemory, values: &Values) -> Result<SessionOptions, ConfigError> {
    let mut sessions = SessionOptions::default();
    if let Some(v) = &raw.session_max_items {
        sessions.max_items = values.u32_in(v, "memory.session_max_items", 0, MAX_SESSION_ITEMS)?;
    }
    if let Some(v) = &raw.session_max_tokens {
        sessions.max_tokens =
            values.u32_in(v, "memory.session_max_tokens", 0, MAX_SESSION_TOKENS)?;
    }
    Ok(sessions)
}
