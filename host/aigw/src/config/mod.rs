//! The config file: TOML, strict (an unknown key is an error naming the file, line and key),
//! `${ENV}` expansion in string values. Each section is read raw, with the place of every
//! value, and validated by its own function straight into the shape that serves it: the
//! server's options, the runtime's plugin limits, the engine's failover settings, the memory
//! store's options, the redaction patterns, the limiter's, the MCP server's. Their
//! `Default` impls are the defaults (and `docs/config.md` is checked against them).

mod auth;
mod env;
mod failover;
mod limits;
mod mcp;
mod mcp_servers;
mod memory;
mod metrics;
mod models;
mod plugins;
mod prices;
mod providers;
mod redaction;
mod response_cache;
mod server;
mod tool_loop;
mod tools;
mod tracing;
mod usage;
mod values;

#[cfg(test)]
mod docs;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_security;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use aigw_access::{LimiterOptions, Price, UsageOptions};
use aigw_memory::StoreOptions;
use aigw_router::HealthSettings;
use aigw_server::{
    AuthOptions, McpOptions, McpServerOptions, ProviderOptions, Redactor, ResponseCacheOptions,
    RouteOptions, ServerOptions, SessionOptions, ToolLoopOptions,
};
use serde::Deserialize;
use toml::Spanned;

pub use auth::ADMIN_KEY_ENV;
pub use plugins::Plugins;
pub(crate) use plugins::default_cache_dir;
pub use tools::ConfiguredTool;
pub use tracing::{DEFAULT_SAMPLE_RATIO, DEFAULT_SERVICE_NAME, DEFAULT_TIMEOUT, TracingOptions};

use values::Values;

/// A config error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => {
                write!(
                    f,
                    "{}:{line}:{column}: {}",
                    self.path.display(),
                    self.message
                )
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The file as written: each section is validated by its module.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    plugins: plugins::RawPlugins,
    #[serde(default)]
    providers: BTreeMap<String, Spanned<providers::RawProvider>>,
    #[serde(default)]
    models: BTreeMap<String, Spanned<models::RawModel>>,
    #[serde(default)]
    failover: failover::RawFailover,
    #[serde(default)]
    memory: memory::RawMemory,
    #[serde(default)]
    redaction: redaction::RawRedaction,
    #[serde(default)]
    limits: limits::RawLimits,
    #[serde(default)]
    prices: BTreeMap<String, Spanned<prices::RawPrice>>,
    #[serde(default)]
    usage: usage::RawUsage,
    #[serde(default)]
    auth: auth::RawAuth,
    #[serde(default)]
    mcp_servers: BTreeMap<String, Spanned<mcp_servers::RawMcpServer>>,
    #[serde(default)]
    tool_loop: tool_loop::RawToolLoop,
    #[serde(default)]
    tools: BTreeMap<String, Spanned<tools::RawTool>>,
    #[serde(default)]
    mcp: mcp::RawMcp,
    #[serde(default)]
    response_cache: response_cache::RawResponseCache,
    #[serde(default)]
    metrics: metrics::RawMetrics,
    #[serde(default)]
    tracing: tracing::RawTracing,
}

/// The validated config, in the shapes that serve it.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerOptions,
    /// `[plugins]`.
    pub plugins: Plugins,
    /// `[providers.<name>]`, in name order.
    pub providers: Vec<ProviderOptions>,
    /// `[models.<alias>]`, by alias.
    pub routes: BTreeMap<String, RouteOptions>,
    /// `[failover]`.
    pub failover: HealthSettings,
    /// `[memory]`.
    pub memory: StoreOptions,
    /// `[memory]`'s session bounds.
    pub sessions: SessionOptions,
    /// `[redaction]`, compiled.
    pub redaction: Redactor,
    /// `[prices."provider/model"]`, by target label.
    pub prices: BTreeMap<String, Price>,
    /// `[usage]`.
    pub usage: UsageOptions,
    /// `[limits]`.
    pub limits: LimiterOptions,
    /// `[auth]`.
    pub auth: AuthOptions,
    /// `[mcp_servers.<name>]`, in name order.
    pub mcp_servers: Vec<McpServerOptions>,
    /// `[tool_loop]`.
    pub tool_loop: ToolLoopOptions,
    /// `[models.<alias>] tools`, by alias (only the aliases that set it).
    pub route_tools: BTreeMap<String, Vec<String>>,
    /// `[tools.<name>]`, in name order.
    pub tools: Vec<ConfiguredTool>,
    /// `[mcp]`.
    pub mcp: McpOptions,
    /// `[response_cache]` with each `[models.<alias>] cache_ttl_s`.
    pub response_cache: ResponseCacheOptions,
    /// `[metrics]`.
    pub metrics: metrics::Metrics,
    /// `[tracing]`.
    pub tracing: TracingOptions,
}

/// Reads and validates the config at `path`. `env` looks up variables for `${VAR}` expansion.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_owned(),
        at: None,
        message: format!("cannot read the config file: {e}"),
    })?;
    parse(path, &text, env)
}

/// Validates `text`, the config at `path`. `env` looks up variables for `${VAR}` expansion.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let values = Values { path, text, env };
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| values.error(e.span(), e.message().trim()))?;
    // Relative paths start at the config file's folder.
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let server = server::validate(&raw.server, base, &values)?;
    let plugins = plugins::validate(&raw.plugins, base, &values)?;
    let providers = providers::validate(&raw.providers, base, &plugins.dir, &values)?;
    let failover = failover::validate(&raw.failover, &values)?;
    let routes = models::validate(&raw.models, &providers, &values)?;
    let memory = memory::validate(&raw.memory, base, &values)?;
    let sessions = memory::sessions(&raw.memory, &values)?;
    let redaction = redaction::validate(&raw.redaction, &values)?;
    let prices = prices::validate(&raw.prices, &providers, &values)?;
    let usage = usage::validate(&raw.usage, &values)?;
    let limits = limits::validate(&raw.limits, &values)?;
    let auth = auth::validate(&raw.auth, base, &values)?;
    let mcp_servers = mcp_servers::validate(&raw.mcp_servers, base, &values)?;
    let tool_loop = tool_loop::validate(&raw.tool_loop, &values)?;
    let route_tools = tool_loop::route_tools(&raw.models, &values)?;
    let tools = tools::validate(&raw.tools, base, &plugins.dir, &values)?;
    let mcp = mcp::validate(&raw.mcp, &values)?;
    let response_cache = response_cache::validate(&raw.response_cache, &raw.models, &values)?;
    let metrics = metrics::validate(&raw.metrics, &values)?;
    let tracing = tracing::validate(&raw.tracing, &values)?;
    Ok(Config {
        path: path.to_owned(),
        server,
        plugins,
        providers,
        routes,
        failover,
        memory,
        sessions,
        redaction,
        prices,
        usage,
        limits,
        auth,
        mcp_servers,
        tool_loop,
        route_tools,
        tools,
        mcp,
        response_cache,
        metrics,
        tracing,
    })
}
