//! What a `[tools.<name>]` table configures, as the binary's config produces it: which tool
//! plugin, its per-send limits, the cache TTL override, and the upstreams enabled (in order of
//! preference) with their endpoints and credentials. Plain data; [`super::PluginTools::new`]
//! checks it against the plugin's descriptor.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `[tools.<name>]`.
#[derive(Debug, Clone)]
pub struct ToolOptions {
    /// The table's name: how logs, `aigw check` and errors name this tool plugin.
    pub name: String,
    /// The plugin file.
    pub plugin: PathBuf,
    /// Each upstream send's whole exchange (connect, answer, body).
    pub timeout: Duration,
    /// The largest upstream answer body a send reads; a larger one fails the call.
    pub max_response_bytes: usize,
    /// Overrides every tool's own TTL; `Some(ZERO)` disables the cache.
    pub cache_ttl: Option<Duration>,
    /// `[[tools.<name>.upstream]]` in order of preference; `None`: every upstream of the
    /// plugin in its order, with no credential.
    pub upstreams: Option<Vec<ToolUpstreamOptions>>,
}

impl Default for ToolOptions {
    fn default() -> ToolOptions {
        ToolOptions {
            name: String::new(),
            plugin: PathBuf::new(),
            timeout: Duration::from_millis(10_000),
            max_response_bytes: 1 << 20,
            cache_ttl: None,
            upstreams: None,
        }
    }
}

/// One `[[tools.<name>.upstream]]` table.
#[derive(Clone, Default)]
pub struct ToolUpstreamOptions {
    /// One of the plugin's upstreams.
    pub name: String,
    /// Endpoint name → URL, overriding the plugin's defaults.
    pub endpoints: Vec<(String, String)>,
    /// The operator's key for this upstream.
    pub api_key: Option<String>,
    /// Why no key is set although one was configured (e.g. "FINNHUB_API_KEY is not set").
    pub api_key_missing: Option<String>,
}

impl fmt::Debug for ToolUpstreamOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolUpstreamOptions")
            .field("name", &self.name)
            .field("endpoints", &self.endpoints)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("api_key_missing", &self.api_key_missing)
            .finish()
    }
}
