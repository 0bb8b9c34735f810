//! The config file: TOML, strict (an unknown key is an error naming the file, line and key),
//! `${ENV}` expansion in string values, parsed raw and then validated into [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
pub const DEFAULT_PLUGINS_DIR: &str = "dist/plugins";
pub const DEFAULT_WARM_INSTANCES: usize = 4;
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_MEMORY_LIMIT_MIB: usize = 64;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;
pub const DEFAULT_RETRIES: u32 = 1;
pub const MAX_RETRIES: u32 = 5;
pub const DEFAULT_RETRY_BUDGET: f64 = 0.2;
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
pub const DEFAULT_BREAKER_COOLDOWN_MS: u64 = 30_000;
pub const DEFAULT_MISCONFIGURED_COOLDOWN_MS: u64 = 300_000;
pub const DEFAULT_RATE_LIMIT_BACKOFF_MS: u64 = 1_000;
pub const DEFAULT_RATE_LIMIT_BACKOFF_MAX_MS: u64 = 60_000;
pub const DEFAULT_RETRY_DELAY_MS: u64 = 50;

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    plugins: RawPlugins,
    #[serde(default)]
    providers: BTreeMap<String, Spanned<RawProvider>>,
    #[serde(default)]
    models: BTreeMap<String, Spanned<RawModel>>,
    #[serde(default)]
    failover: RawFailover,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPlugins {
    dir: Option<Spanned<String>>,
    warm_instances: Option<Spanned<u64>>,
    max_instances: Option<Spanned<u64>>,
    call_timeout_ms: Option<Spanned<u64>>,
    memory_limit_mib: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    plugin: Spanned<String>,
    base_url: Option<Spanned<String>>,
    api_key: Option<Spanned<String>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    first_byte_timeout_ms: Option<Spanned<u64>>,
    stall_timeout_ms: Option<Spanned<u64>>,
    total_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    targets: Spanned<Vec<Spanned<RawTarget>>>,
    strategy: Option<Spanned<String>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    first_byte_timeout_ms: Option<Spanned<u64>>,
    stall_timeout_ms: Option<Spanned<u64>>,
    total_timeout_ms: Option<Spanned<u64>>,
    retries: Option<Spanned<u64>>,
    retry_budget: Option<Spanned<f64>>,
    hedge_after_ms: Option<Spanned<u64>>,
}

/// One entry of `targets`: `"provider/model"` or `{ target = "provider/model", … }`.
enum RawTarget {
    Plain(String),
    Table(Box<RawTargetTable>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetTable {
    // Optional here so that a missing `target` gets an error naming the route and entry.
    target: Option<Spanned<String>>,
    priority: Option<Spanned<u64>>,
    weight: Option<Spanned<u64>>,
    context_window: Option<Spanned<u64>>,
    prefill: Option<Spanned<bool>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    first_byte_timeout_ms: Option<Spanned<u64>>,
    stall_timeout_ms: Option<Spanned<u64>>,
    total_timeout_ms: Option<Spanned<u64>>,
}

// Hand-written rather than `#[serde(untagged)]`: untagged buffers the value and loses both the
// span and the name of an unknown key; delegating the table to `RawTargetTable` keeps them.
impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawTarget;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a \"provider/model\" string or a table like { target = \"provider/model\" }",
                )
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<RawTarget, E> {
                Ok(RawTarget::Plain(value.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<RawTarget, E> {
                Ok(RawTarget::Plain(value))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawTarget, A::Error> {
                RawTargetTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|table| RawTarget::Table(Box::new(table)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFailover {
    breaker_failures: Option<Spanned<u64>>,
    breaker_cooldown_ms: Option<Spanned<u64>>,
    misconfigured_cooldown_ms: Option<Spanned<u64>>,
    rate_limit_backoff_ms: Option<Spanned<u64>>,
    rate_limit_backoff_max_ms: Option<Spanned<u64>>,
    retry_delay_ms: Option<Spanned<u64>>,
}

/// The validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub plugins: PluginsConfig,
    pub providers: Vec<ProviderConfig>,
    pub models: Vec<ModelConfig>,
    pub failover: FailoverConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginsConfig {
    pub dir: PathBuf,
    pub warm_instances: usize,
    pub max_instances: u32,
    pub call_timeout: Duration,
    pub memory_limit_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub plugin: PathBuf,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// Why `api_key` is absent although configured (an unset variable).
    pub api_key_missing: Option<String>,
    pub connect_timeout: Duration,
    /// Fallback for every phase that has no specific timeout (`timeout_ms`).
    pub timeout: Duration,
    /// `first_byte_timeout_ms`, `stall_timeout_ms`, `total_timeout_ms`. `connect` is always
    /// `None` here: the provider's connect timeout is `connect_timeout`.
    pub timeouts: TimeoutOverrides,
}

/// A route: `[models.<alias>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub alias: String,
    /// In the order they are listed; `priority` (lower first) decides the order they are tried.
    pub targets: Vec<TargetConfig>,
    pub strategy: RouteStrategy,
    /// Defaults for this route's targets (a target's own keys win).
    pub timeouts: TimeoutOverrides,
    /// Same-target retries per target per request (on 5xx, reset, connect failure); 0..=5.
    pub retries: u32,
    /// Retries may be at most this fraction of the route's requests; 0.0..=1.0.
    pub retry_budget: f64,
    /// When to start a hedged attempt (see the README's failover section); `None`: no hedging.
    pub hedge_after: Option<Duration>,
}

/// One target of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    pub provider: String,
    pub model: String,
    /// Lower is tried first; defaults to the entry's position in `targets`.
    pub priority: u32,
    /// Share among targets of equal priority; at least 1.
    pub weight: u32,
    /// The model's context window in tokens, when known.
    pub context_window: Option<u32>,
    pub prefill: bool,
    pub timeouts: TimeoutOverrides,
}

/// Time limits set at one level (target, route or provider), unset ones coming from the level
/// below: target > route > provider's specific key > provider's `timeout_ms` (connect: target >
/// route > provider's `connect_timeout_ms`). The server's own type, so the config hands over
/// exactly what the server resolves.
pub use aigw_server::TimeoutOverrides;

/// How a route orders targets of equal priority (`strategy`): the engine's own type.
pub use aigw_router::Strategy as RouteStrategy;

/// `[failover]`: the engine's settings for breakers, cooldowns and retries, as the engine
/// defines them (its `Default` is the documented defaults).
pub use aigw_router::HealthSettings as FailoverConfig;

/// Reads and validates the config at `path`. `env` looks up variables for `${VAR}` expansion.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_owned(),
        at: None,
        message: format!("cannot read the config file: {e}"),
    })?;
    parse(path, &text, env)
}

struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            at: span.map(|s| line_column(self.text, s.start)),
            message: message.into(),
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let at = Locator { path, text };
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| at.error(e.span(), e.message().trim()))?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));

    // Expands `${VAR}` in a value (at `span`) that must resolve.
    let expand_at = |value: &str, span: Range<usize>, key: &str| -> Result<String, ConfigError> {
        expand_env(value, env).map_err(|var| {
            at.error(
                Some(span),
                format!("`{key}`: environment variable {var} is not set"),
            )
        })
    };
    let expand = |value: &Spanned<String>, key: &str| expand_at(value.get_ref(), value.span(), key);
    let positive = |value: &Option<Spanned<u64>>, key: &str, default: u64| match value {
        None => Ok(default),
        Some(v) if *v.get_ref() == 0 => {
            Err(at.error(Some(v.span()), format!("`{key}` must be greater than 0")))
        }
        Some(v) => Ok(*v.get_ref()),
    };
    // An optional duration in ms: absent is `None`, 0 is an error.
    let optional_ms = |value: &Option<Spanned<u64>>, key: &str| {
        value
            .as_ref()
            .map(|_| positive(value, key, 0).map(Duration::from_millis))
            .transpose()
    };
    // An integer in `min..=max`.
    let u32_in = |value: &Spanned<u64>, key: &str, min: u32, max: u32| {
        let v = *value.get_ref();
        let message = if v < u64::from(min) {
            format!("`{key}` must be at least {min}")
        } else {
            match u32::try_from(v) {
                Ok(v) if v <= max => return Ok(v),
                _ => format!("`{key}` must be at most {max}"),
            }
        };
        Err(at.error(Some(value.span()), message))
    };
    // The four per-phase timeouts of a provider, route or target; `prefix` names the table.
    let timeouts = |prefix: &str,
                    connect: &Option<Spanned<u64>>,
                    first_byte: &Option<Spanned<u64>>,
                    stall: &Option<Spanned<u64>>,
                    total: &Option<Spanned<u64>>|
     -> Result<TimeoutOverrides, ConfigError> {
        Ok(TimeoutOverrides {
            connect: optional_ms(connect, &format!("{prefix}.connect_timeout_ms"))?,
            first_byte: optional_ms(first_byte, &format!("{prefix}.first_byte_timeout_ms"))?,
            stall: optional_ms(stall, &format!("{prefix}.stall_timeout_ms"))?,
            total: optional_ms(total, &format!("{prefix}.total_timeout_ms"))?,
        })
    };

    let listen = match &raw.server.listen {
        None => DEFAULT_LISTEN.to_owned(),
        Some(v) => expand(v, "server.listen")?,
    };
    let listen: SocketAddr = listen.parse().map_err(|e| {
        at.error(
            raw.server.listen.as_ref().map(Spanned::span),
            format!("`server.listen` must be an address like 127.0.0.1:8080: {e}"),
        )
    })?;
    let max_body_bytes = positive(
        &raw.server.max_body_bytes,
        "server.max_body_bytes",
        DEFAULT_MAX_BODY_BYTES as u64,
    )? as usize;

    let dir = match &raw.plugins.dir {
        None => DEFAULT_PLUGINS_DIR.to_owned(),
        Some(v) => expand(v, "plugins.dir")?,
    };
    let memory_mib = positive(
        &raw.plugins.memory_limit_mib,
        "plugins.memory_limit_mib",
        DEFAULT_MEMORY_LIMIT_MIB as u64,
    )?;
    let max_instances = positive(
        &raw.plugins.max_instances,
        "plugins.max_instances",
        u64::from(DEFAULT_MAX_INSTANCES),
    )?;
    let plugins = PluginsConfig {
        dir: base.join(dir),
        warm_instances: positive(
            &raw.plugins.warm_instances,
            "plugins.warm_instances",
            DEFAULT_WARM_INSTANCES as u64,
        )? as usize,
        max_instances: u32::try_from(max_instances).unwrap_or(u32::MAX),
        call_timeout: Duration::from_millis(positive(
            &raw.plugins.call_timeout_ms,
            "plugins.call_timeout_ms",
            DEFAULT_CALL_TIMEOUT_MS,
        )?),
        memory_limit_bytes: (memory_mib as usize).saturating_mul(1 << 20),
    };

    let mut providers = Vec::with_capacity(raw.providers.len());
    for (name, spanned) in &raw.providers {
        let key = |field: &str| format!("providers.{name}.{field}");
        if name.is_empty() || name.contains('/') {
            return Err(at.error(
                Some(spanned.span()),
                format!("provider name `{name}` must be non-empty and contain no `/`"),
            ));
        }
        let p = spanned.get_ref();
        let plugin_name = expand(&p.plugin, &key("plugin"))?;
        let plugin = if plugin_name.ends_with(".wasm") || plugin_name.contains('/') {
            base.join(&plugin_name)
        } else {
            plugins.dir.join(format!("{plugin_name}.wasm"))
        };
        let base_url = match &p.base_url {
            None => None,
            Some(v) => {
                let url = expand(v, &key("base_url"))?;
                match url::Url::parse(&url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    _ => {
                        return Err(at.error(
                            Some(v.span()),
                            format!("`{}` must be an http(s) URL, got {url:?}", key("base_url")),
                        ));
                    }
                }
                Some(url)
            }
        };
        // A key whose variable is unset is reported at start, not fatal: the provider's
        // targets are skipped with a clear error until it is set.
        let (api_key, api_key_missing) = match &p.api_key {
            None => (None, None),
            Some(v) => match expand_env(v.get_ref(), env) {
                Ok(key) if key.is_empty() => (None, Some("api_key is empty".to_owned())),
                Ok(key) => (Some(key), None),
                Err(var) => (None, Some(format!("{var} is not set"))),
            },
        };
        providers.push(ProviderConfig {
            name: name.clone(),
            plugin,
            base_url,
            api_key,
            api_key_missing,
            connect_timeout: Duration::from_millis(positive(
                &p.connect_timeout_ms,
                &key("connect_timeout_ms"),
                DEFAULT_CONNECT_TIMEOUT_MS,
            )?),
            timeout: Duration::from_millis(positive(
                &p.timeout_ms,
                &key("timeout_ms"),
                DEFAULT_TIMEOUT_MS,
            )?),
            // The provider's connect timeout is `connect_timeout` (it has a default).
            timeouts: timeouts(
                &format!("providers.{name}"),
                &None,
                &p.first_byte_timeout_ms,
                &p.stall_timeout_ms,
                &p.total_timeout_ms,
            )?,
        });
    }

    let f = &raw.failover;
    let rate_limit_backoff = positive(
        &f.rate_limit_backoff_ms,
        "failover.rate_limit_backoff_ms",
        DEFAULT_RATE_LIMIT_BACKOFF_MS,
    )?;
    let rate_limit_backoff_max = positive(
        &f.rate_limit_backoff_max_ms,
        "failover.rate_limit_backoff_max_ms",
        DEFAULT_RATE_LIMIT_BACKOFF_MAX_MS,
    )?;
    if rate_limit_backoff_max < rate_limit_backoff {
        let (span, message) = match &f.rate_limit_backoff_max_ms {
            Some(max) => (
                Some(max.span()),
                format!(
                    "`failover.rate_limit_backoff_max_ms` ({rate_limit_backoff_max}) must be at \
                     least `failover.rate_limit_backoff_ms` ({rate_limit_backoff})"
                ),
            ),
            None => (
                f.rate_limit_backoff_ms.as_ref().map(Spanned::span),
                format!(
                    "`failover.rate_limit_backoff_ms` ({rate_limit_backoff}) exceeds the default \
                     `failover.rate_limit_backoff_max_ms` ({rate_limit_backoff_max}); set that too"
                ),
            ),
        };
        return Err(at.error(span, message));
    }
    let failover = FailoverConfig {
        breaker_failures: f
            .breaker_failures
            .as_ref()
            .map(|v| u32_in(v, "failover.breaker_failures", 1, u32::MAX))
            .transpose()?
            .unwrap_or(DEFAULT_BREAKER_FAILURES),
        breaker_cooldown: Duration::from_millis(positive(
            &f.breaker_cooldown_ms,
            "failover.breaker_cooldown_ms",
            DEFAULT_BREAKER_COOLDOWN_MS,
        )?),
        misconfigured_cooldown: Duration::from_millis(positive(
            &f.misconfigured_cooldown_ms,
            "failover.misconfigured_cooldown_ms",
            DEFAULT_MISCONFIGURED_COOLDOWN_MS,
        )?),
        rate_limit_backoff: Duration::from_millis(rate_limit_backoff),
        rate_limit_backoff_max: Duration::from_millis(rate_limit_backoff_max),
        // 0 is allowed: retry at once.
        retry_delay: Duration::from_millis(
            f.retry_delay_ms
                .as_ref()
                .map_or(DEFAULT_RETRY_DELAY_MS, |v| *v.get_ref()),
        ),
    };

    let mut models = Vec::with_capacity(raw.models.len());
    for (alias, spanned) in &raw.models {
        let m = spanned.get_ref();
        let key = |field: &str| format!("models.{alias}.{field}");
        let targets = &m.targets;
        if targets.get_ref().is_empty() {
            return Err(at.error(
                Some(targets.span()),
                format!("`models.{alias}.targets` must name at least one `provider/model`"),
            ));
        }
        let mut resolved = Vec::with_capacity(targets.get_ref().len());
        for (index, entry) in targets.get_ref().iter().enumerate() {
            let entry_key = format!("models.{alias}.targets[{index}]");
            // The `provider/model` string, its span, the key errors about it name, and the
            // table it came from (`None` for the plain string form).
            let (value, span, target_key, table) = match entry.get_ref() {
                RawTarget::Plain(value) => (value, entry.span(), key("targets"), None),
                RawTarget::Table(table) => match &table.target {
                    Some(target) => (
                        target.get_ref(),
                        target.span(),
                        format!("{entry_key}.target"),
                        Some(table),
                    ),
                    None => {
                        return Err(at.error(
                            Some(entry.span()),
                            format!(
                                "`{entry_key}`: missing key `target` (a \"provider/model\" string)"
                            ),
                        ));
                    }
                },
            };
            let value = expand_at(value, span.clone(), &target_key)?;
            let Some((provider, model)) = value.split_once('/') else {
                return Err(at.error(
                    Some(span),
                    format!("`{target_key}`: {value:?} must be `provider/model`"),
                ));
            };
            if !raw.providers.contains_key(provider) {
                let known: Vec<&str> = raw.providers.keys().map(String::as_str).collect();
                return Err(at.error(
                    Some(span),
                    format!(
                        "`{target_key}`: unknown provider `{provider}` (configured: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            if model.is_empty() {
                return Err(at.error(
                    Some(span),
                    format!("`{target_key}`: {value:?} has no model"),
                ));
            }
            let mut target = TargetConfig {
                provider: provider.to_owned(),
                model: model.to_owned(),
                // A plain list is tried in its order.
                priority: u32::try_from(index).unwrap_or(u32::MAX),
                weight: 1,
                context_window: None,
                prefill: false,
                timeouts: TimeoutOverrides::default(),
            };
            if let Some(t) = table {
                let field = |name: &str| format!("{entry_key}.{name}");
                if let Some(v) = &t.priority {
                    target.priority = u32_in(v, &field("priority"), 0, u32::MAX)?;
                }
                if let Some(v) = &t.weight {
                    target.weight = u32_in(v, &field("weight"), 1, u32::MAX)?;
                }
                target.context_window = t
                    .context_window
                    .as_ref()
                    .map(|v| u32_in(v, &field("context_window"), 1, u32::MAX))
                    .transpose()?;
                target.prefill = t.prefill.as_ref().is_some_and(|v| *v.get_ref());
                target.timeouts = timeouts(
                    &entry_key,
                    &t.connect_timeout_ms,
                    &t.first_byte_timeout_ms,
                    &t.stall_timeout_ms,
                    &t.total_timeout_ms,
                )?;
            }
            resolved.push(target);
        }
        let strategy = match &m.strategy {
            None => RouteStrategy::Weighted,
            Some(v) => match expand(v, &key("strategy"))?.as_str() {
                "weighted" => RouteStrategy::Weighted,
                "latency" => RouteStrategy::Latency,
                other => {
                    return Err(at.error(
                        Some(v.span()),
                        format!(
                            "`{}` must be \"weighted\" or \"latency\", got {other:?}",
                            key("strategy")
                        ),
                    ));
                }
            },
        };
        let retry_budget = match &m.retry_budget {
            None => DEFAULT_RETRY_BUDGET,
            Some(v) if (0.0..=1.0).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                return Err(at.error(
                    Some(v.span()),
                    format!(
                        "`{}` must be between 0.0 and 1.0, got {}",
                        key("retry_budget"),
                        v.get_ref()
                    ),
                ));
            }
        };
        models.push(ModelConfig {
            alias: alias.clone(),
            targets: resolved,
            strategy,
            timeouts: timeouts(
                &format!("models.{alias}"),
                &m.connect_timeout_ms,
                &m.first_byte_timeout_ms,
                &m.stall_timeout_ms,
                &m.total_timeout_ms,
            )?,
            retries: m
                .retries
                .as_ref()
                .map(|v| u32_in(v, &key("retries"), 0, MAX_RETRIES))
                .transpose()?
                .unwrap_or(DEFAULT_RETRIES),
            retry_budget,
            hedge_after: optional_ms(&m.hedge_after_ms, &key("hedge_after_ms"))?,
        });
    }

    Ok(Config {
        path: path.to_owned(),
        listen,
        max_body_bytes,
        plugins,
        providers,
        models,
        failover,
    })
}

/// Expands `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. Err names the unset variable.
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                out.push_str(rest);
                break;
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match (env(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(name.to_owned()),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/aigw/aigw.toml"), text, &no_env)
    }

    #[test]
    fn empty_config_gets_the_documented_defaults() {
        let c = parse_str("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.plugins.dir, PathBuf::from("/etc/aigw/dist/plugins"));
        assert_eq!(c.plugins.warm_instances, 4);
        assert_eq!(c.plugins.call_timeout, Duration::from_secs(1));
        assert_eq!(c.plugins.memory_limit_bytes, 64 << 20);
        assert!(c.providers.is_empty() && c.models.is_empty());
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let err = parse_str("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/etc/aigw/aigw.toml:3:1: "), "{text}");
        assert!(text.contains("unknown field `lisen`"), "{text}");
    }

    #[test]
    fn unknown_key_inside_a_provider_is_located() {
        let err = parse_str("[providers.groq]\nplugin = \"groq\"\napi_kee = \"x\"\n").unwrap_err();
        assert_eq!(err.at, Some((3, 1)), "{err}");
        assert!(err.message.contains("unknown field `api_kee`"), "{err}");
    }

    #[test]
    fn providers_and_routes_resolve_in_order() {
        let c = parse(
            Path::new("/srv/aigw.toml"),
            r#"
[plugins]
dir = "plugins"
[providers.groq]
plugin = "groq"
api_key = "${GROQ_API_KEY}"
timeout_ms = 300
[providers.local]
plugin = "/opt/p/openai-compatible.wasm"
base_url = "http://127.0.0.1:11434/v1"
[models.fast]
targets = ["groq/llama-3.1-8b-instant", "local/llama3.2"]
"#,
            &|name| (name == "GROQ_API_KEY").then(|| "gsk_test".to_owned()),
        )
        .unwrap();
        assert_eq!(c.providers.len(), 2);
        let groq = &c.providers[0];
        assert_eq!(groq.name, "groq");
        assert_eq!(groq.plugin, PathBuf::from("/srv/plugins/groq.wasm"));
        assert_eq!(groq.api_key.as_deref(), Some("gsk_test"));
        assert_eq!(groq.timeout, Duration::from_millis(300));
        assert_eq!(groq.connect_timeout, Duration::from_secs(5));
        let local = &c.providers[1];
        assert_eq!(local.plugin, PathBuf::from("/opt/p/openai-compatible.wasm"));
        assert_eq!(local.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(c.models[0].alias, "fast");
        let pairs: Vec<(&str, &str)> = c.models[0]
            .targets
            .iter()
            .map(|t| (t.provider.as_str(), t.model.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("groq", "llama-3.1-8b-instant"), ("local", "llama3.2")]
        );
    }

    #[test]
    fn unset_api_key_variable_is_reported_not_fatal() {
        let c = parse_str("[providers.groq]\nplugin = \"groq\"\napi_key = \"${GROQ_API_KEY}\"\n")
            .unwrap();
        assert_eq!(c.providers[0].api_key, None);
        assert_eq!(
            c.providers[0].api_key_missing.as_deref(),
            Some("GROQ_API_KEY is not set")
        );
    }

    #[test]
    fn unset_variable_elsewhere_is_an_error_at_its_line() {
        let err =
            parse_str("[providers.groq]\nplugin = \"groq\"\nbase_url = \"${BASE}\"\n").unwrap_err();
        assert_eq!(err.at, Some((3, 12)));
        assert!(err.message.contains("BASE is not set"), "{err}");
        assert!(err.message.contains("providers.groq.base_url"), "{err}");
    }

    #[test]
    fn target_with_unknown_provider_is_located_and_lists_known_ones() {
        let err = parse_str(
            "[providers.groq]\nplugin = \"groq\"\n[models.fast]\ntargets = [\"groq/a\", \"nope/b\"]\n",
        )
        .unwrap_err();
        assert_eq!(err.at, Some((4, 22)));
        assert!(
            err.message
                .contains("unknown provider `nope` (configured: groq)"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_rejected_with_their_key() {
        for (text, needle) in [
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
            ("[server]\nmax_body_bytes = 0\n", "server.max_body_bytes"),
            (
                "[providers.g]\nplugin = \"g\"\nbase_url = \"ftp://x\"\n",
                "providers.g.base_url",
            ),
            ("[models.m]\ntargets = []\n", "models.m.targets"),
            ("[models.m]\ntargets = [\"no-slash\"]\n", "provider/model"),
            ("[server]\nlisten = 5\n", "invalid type"),
        ] {
            let err = parse_str(text).unwrap_err();
            assert!(err.at.is_some(), "{text}: {err}");
            assert!(err.message.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn env_expansion_handles_defaults_escapes_and_unset() {
        let env = |n: &str| (n == "A").then(|| "1".to_owned());
        assert_eq!(expand_env("x${A}y", &env).unwrap(), "x1y");
        assert_eq!(expand_env("${B:-two}", &env).unwrap(), "two");
        assert_eq!(expand_env("$$5 $x", &env).unwrap(), "$5 $x");
        assert_eq!(expand_env("${B}", &env).unwrap_err(), "B");
    }

    const TWO_PROVIDERS: &str =
        "[providers.groq]\nplugin = \"groq\"\n[providers.cerebras]\nplugin = \"cerebras\"\n";

    /// Parses `TWO_PROVIDERS` followed by `rest` (so `rest` starts at line 5).
    fn with_providers(rest: &str) -> Result<Config, ConfigError> {
        parse_str(&format!("{TWO_PROVIDERS}{rest}"))
    }

    fn ms(millis: u64) -> Option<Duration> {
        Some(Duration::from_millis(millis))
    }

    #[test]
    fn plain_string_targets_are_tried_in_list_order_with_weight_1() {
        let c =
            with_providers("[models.m]\ntargets = [\"groq/a\", \"cerebras/b/c\", \"groq/d\"]\n")
                .unwrap();
        let t = &c.models[0].targets;
        let got: Vec<(&str, &str, u32, u32)> = t
            .iter()
            .map(|t| (t.provider.as_str(), t.model.as_str(), t.priority, t.weight))
            .collect();
        assert_eq!(
            got,
            [
                ("groq", "a", 0, 1),
                ("cerebras", "b/c", 1, 1),
                ("groq", "d", 2, 1)
            ]
        );
        for target in t {
            assert_eq!(target.context_window, None);
            assert!(!target.prefill);
            assert_eq!(target.timeouts, TimeoutOverrides::default());
        }
    }

    #[test]
    fn table_target_takes_every_key() {
        let c = with_providers(
            r#"[models.smart]
targets = [
  "groq/llama-3.3-70b-versatile",
  { target = "cerebras/llama-3.3-70b", priority = 0, weight = 3, context_window = 65536,
    prefill = true, connect_timeout_ms = 2000, first_byte_timeout_ms = 10000,
    stall_timeout_ms = 5000, total_timeout_ms = 120000 },
  { target = "groq/llama-3.1-8b-instant" },
]
"#,
        )
        .unwrap();
        let t = &c.models[0].targets;
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[1],
            TargetConfig {
                provider: "cerebras".to_owned(),
                model: "llama-3.3-70b".to_owned(),
                priority: 0,
                weight: 3,
                context_window: Some(65536),
                prefill: true,
                timeouts: TimeoutOverrides {
                    connect: ms(2000),
                    first_byte: ms(10_000),
                    stall: ms(5000),
                    total: ms(120_000),
                },
            }
        );
        // A table with only `target` gets the same defaults as a plain string at its position.
        assert_eq!(
            t[2],
            TargetConfig {
                provider: "groq".to_owned(),
                model: "llama-3.1-8b-instant".to_owned(),
                priority: 2,
                weight: 1,
                context_window: None,
                prefill: false,
                timeouts: TimeoutOverrides::default(),
            }
        );
        assert_eq!((t[0].priority, t[0].weight), (0, 1));
    }

    #[test]
    fn route_keys_have_defaults_and_can_be_set() {
        let c = with_providers(
            r#"[models.plain]
targets = ["groq/a"]
[models.tuned]
targets = ["groq/a", "cerebras/b"]
strategy = "latency"
connect_timeout_ms = 3000
first_byte_timeout_ms = 15000
stall_timeout_ms = 10000
total_timeout_ms = 300000
retries = 0
retry_budget = 1
hedge_after_ms = 400
"#,
        )
        .unwrap();
        let plain = &c.models[0];
        assert_eq!(plain.alias, "plain");
        assert_eq!(plain.strategy, RouteStrategy::Weighted);
        assert_eq!(plain.timeouts, TimeoutOverrides::default());
        assert_eq!(plain.retries, 1);
        assert_eq!(plain.retry_budget, 0.2);
        assert_eq!(plain.hedge_after, None);
        let tuned = &c.models[1];
        assert_eq!(tuned.alias, "tuned");
        assert_eq!(tuned.strategy, RouteStrategy::Latency);
        assert_eq!(
            tuned.timeouts,
            TimeoutOverrides {
                connect: ms(3000),
                first_byte: ms(15_000),
                stall: ms(10_000),
                total: ms(300_000),
            }
        );
        assert_eq!(tuned.retries, 0);
        assert_eq!(tuned.retry_budget, 1.0);
        assert_eq!(tuned.hedge_after, ms(400));
        // Route timeouts are defaults for the engine, not copied into the targets.
        assert_eq!(tuned.targets[0].timeouts, TimeoutOverrides::default());
    }

    #[test]
    fn targets_and_strategy_expand_environment_variables() {
        let c = parse(
            Path::new("/etc/aigw/aigw.toml"),
            &format!(
                "{TWO_PROVIDERS}[models.m]\ntargets = [\"${{FAST:-groq/a}}\", {{ target = \"cerebras/${{MODEL}}\" }}]\nstrategy = \"${{STRATEGY}}\"\n"
            ),
            &|name| match name {
                "MODEL" => Some("llama-3.3-70b".to_owned()),
                "STRATEGY" => Some("latency".to_owned()),
                _ => None,
            },
        )
        .unwrap();
        let m = &c.models[0];
        assert_eq!(
            (m.targets[0].provider.as_str(), m.targets[0].model.as_str()),
            ("groq", "a")
        );
        assert_eq!(m.targets[1].model, "llama-3.3-70b");
        assert_eq!(m.strategy, RouteStrategy::Latency);

        let err =
            with_providers("[models.m]\ntargets = [{ target = \"groq/${MODEL}\" }]\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/aigw/aigw.toml:6:23: `models.m.targets[0].target`: environment variable MODEL is not set"
        );
    }

    #[test]
    fn provider_phase_timeouts_are_optional() {
        let c = parse_str(
            "[providers.a]\nplugin = \"a\"\n[providers.b]\nplugin = \"b\"\nfirst_byte_timeout_ms = 7000\nstall_timeout_ms = 8000\ntotal_timeout_ms = 9000\n",
        )
        .unwrap();
        assert_eq!(c.providers[0].timeouts, TimeoutOverrides::default());
        assert_eq!(
            c.providers[1].timeouts,
            TimeoutOverrides {
                connect: None,
                first_byte: ms(7000),
                stall: ms(8000),
                total: ms(9000),
            }
        );
        assert_eq!(c.providers[1].connect_timeout, Duration::from_secs(5));
        assert_eq!(c.providers[1].timeout, Duration::from_secs(120));
    }

    #[test]
    fn failover_section_has_defaults_and_can_be_set() {
        let defaults = parse_str("").unwrap().failover;
        assert_eq!(defaults, FailoverConfig::default());
        assert_eq!(
            defaults,
            FailoverConfig {
                breaker_failures: 5,
                breaker_cooldown: Duration::from_secs(30),
                misconfigured_cooldown: Duration::from_secs(300),
                rate_limit_backoff: Duration::from_secs(1),
                rate_limit_backoff_max: Duration::from_secs(60),
                retry_delay: Duration::from_millis(50),
            }
        );
        let set = parse_str(
            r#"[failover]
breaker_failures = 2
breaker_cooldown_ms = 1000
misconfigured_cooldown_ms = 2000
rate_limit_backoff_ms = 250
rate_limit_backoff_max_ms = 250
retry_delay_ms = 0
"#,
        )
        .unwrap()
        .failover;
        assert_eq!(
            set,
            FailoverConfig {
                breaker_failures: 2,
                breaker_cooldown: Duration::from_secs(1),
                misconfigured_cooldown: Duration::from_secs(2),
                rate_limit_backoff: Duration::from_millis(250),
                rate_limit_backoff_max: Duration::from_millis(250),
                retry_delay: Duration::ZERO,
            }
        );
    }

    #[test]
    fn new_keys_are_checked_with_file_line_column_and_key() {
        let route = |rest: &str| format!("{TWO_PROVIDERS}[models.smart]\n{rest}");
        let cases = [
            (
                route("targets = [{ target = \"groq/a\", weight = 0 }]\n"),
                "6:42",
                "`models.smart.targets[0].weight` must be at least 1",
            ),
            (
                route("targets = [{ target = \"groq/a\", wieght = 2 }]\n"),
                "6:33",
                "unknown field `wieght`, expected one of `target`, `priority`, `weight`",
            ),
            (
                route("targets = [\"groq/a\", { priority = 1 }]\n"),
                "6:22",
                "`models.smart.targets[1]`: missing key `target`",
            ),
            (
                route("targets = [{ target = \"nope/a\" }]\n"),
                "6:23",
                "`models.smart.targets[0].target`: unknown provider `nope` (configured: cerebras, groq)",
            ),
            (
                route("targets = [{ target = \"groq\" }]\n"),
                "6:23",
                "`models.smart.targets[0].target`: \"groq\" must be `provider/model`",
            ),
            (
                route("targets = [{ target = \"groq/a\", context_window = 0 }]\n"),
                "6:50",
                "`models.smart.targets[0].context_window` must be at least 1",
            ),
            (
                route("targets = [{ target = \"groq/a\", total_timeout_ms = 0 }]\n"),
                "6:52",
                "`models.smart.targets[0].total_timeout_ms` must be greater than 0",
            ),
            (
                route("targets = [\"groq/a\"]\nstrategy = \"fastest\"\n"),
                "7:12",
                "`models.smart.strategy` must be \"weighted\" or \"latency\", got \"fastest\"",
            ),
            (
                route("targets = [\"groq/a\"]\nretry_budget = 1.5\n"),
                "7:16",
                "`models.smart.retry_budget` must be between 0.0 and 1.0, got 1.5",
            ),
            (
                route("targets = [\"groq/a\"]\nretries = 6\n"),
                "7:11",
                "`models.smart.retries` must be at most 5",
            ),
            (
                route("targets = [\"groq/a\"]\nstall_timeout_ms = 0\n"),
                "7:20",
                "`models.smart.stall_timeout_ms` must be greater than 0",
            ),
            (
                route("targets = [\"groq/a\"]\nhedge_after_ms = 0\n"),
                "7:18",
                "`models.smart.hedge_after_ms` must be greater than 0",
            ),
            (
                route("targets = [\"groq/a\"]\nretry = 1\n"),
                "7:1",
                "unknown field `retry`",
            ),
            (
                "[providers.groq]\nplugin = \"groq\"\nfirst_byte_timeout_ms = 0\n".to_owned(),
                "3:25",
                "`providers.groq.first_byte_timeout_ms` must be greater than 0",
            ),
            (
                "[failover]\nrate_limit_backoff_ms = 5000\nrate_limit_backoff_max_ms = 4000\n"
                    .to_owned(),
                "3:29",
                "`failover.rate_limit_backoff_max_ms` (4000) must be at least \
                 `failover.rate_limit_backoff_ms` (5000)",
            ),
            (
                "[failover]\nrate_limit_backoff_ms = 90000\n".to_owned(),
                "2:25",
                "`failover.rate_limit_backoff_ms` (90000) exceeds the default \
                 `failover.rate_limit_backoff_max_ms` (60000)",
            ),
            (
                "[failover]\nbreaker_failures = 0\n".to_owned(),
                "2:20",
                "`failover.breaker_failures` must be at least 1",
            ),
            (
                "[failover]\nbreaker_cooldown_ms = 0\n".to_owned(),
                "2:23",
                "`failover.breaker_cooldown_ms` must be greater than 0",
            ),
            (
                "[failover]\nretry_delay = 10\n".to_owned(),
                "2:1",
                "unknown field `retry_delay`",
            ),
        ];
        for (text, place, needle) in cases {
            let err = parse_str(&text).unwrap_err().to_string();
            let prefix = format!("/etc/aigw/aigw.toml:{place}: ");
            assert!(err.starts_with(&prefix), "{text}\n{err}\nwanted {prefix}");
            assert!(err.contains(needle), "{text}\n{err}\nwanted {needle}");
        }
    }
}
