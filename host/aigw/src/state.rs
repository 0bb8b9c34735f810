//! Building a served state ([`Gateway`]) from a config and the registry's plugins. The process
//! has one wasm runtime, one store, ledger and limiter ([`Process`]); every state built for it
//! (at start, by a plugin swap, by a config reload) shares them, takes its plugins from the
//! [`Registry`] (loading from its file only a plugin the registry lacks) and shares target
//! health with the state it replaces.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aigw_access::{Ledger, Limiter, Prices};
use aigw_egress::Egress;
use aigw_memory::Store;
use aigw_router::HealthRegistry;
use aigw_runtime::{
    MemoryLimits, MemoryStore, OutboundLimits, Runtime, RuntimeOptions, Services, WorldKind,
};
use aigw_server::tools::{PluginTools, Toolbox};
use aigw_server::{Gateway, PluginMemory, Provider, RemoteServer};
use aigw_telemetry::Telemetry;
use anyhow::Context;

use crate::config::Config;
use crate::registry::{Registry, Source, Version, name_of};

/// What every state of this process shares.
pub struct Process {
    pub runtime: Arc<Runtime>,
    /// The connect timeout of the tool plugins' egress (each `PluginTools` must use it).
    pub connect_timeout: Duration,
    pub store: Option<Arc<Store>>,
    pub ledger: Option<Arc<Ledger>>,
    pub limiter: Option<Limiter>,
    /// The process's metrics and history: every state reports to it.
    pub telemetry: Arc<Telemetry>,
}

impl Process {
    /// The process's wasm runtime, configured by `[plugins]` (its limits and compile cache are
    /// fixed for the process). `memory` is the store tool plugins reach through their `memory`
    /// import (`None` for the commands that serve nothing).
    pub fn new(config: &Config, memory: Option<&Arc<Store>>) -> anyhow::Result<Process> {
        // Tool plugins' sends leave through their own pooled egress, with the outbound connect
        // timeout (each call's grants and credential come with the call).
        let connect_timeout = OutboundLimits::default().connect_timeout;
        let tool_egress = Egress::new([connect_timeout])
            .map_err(|e| anyhow::anyhow!("cannot build the tool plugins' egress: {e}"))?;
        let services = Services {
            egress: Some(tool_egress),
            memory: memory.map(|store| {
                Arc::new(
                    PluginMemory::new(Arc::clone(store)).with_redaction(config.redaction.clone()),
                ) as Arc<dyn MemoryStore>
            }),
            memory_limits: MemoryLimits {
                quota: config.plugins.memory_quota,
                ..MemoryLimits::default()
            },
            ..Services::default()
        };
        let runtime = Runtime::configure(RuntimeOptions {
            limits: config.plugins.limits.clone(),
            services,
            compile_cache: config.plugins.compile_cache.clone(),
        })
        .map_err(|e| anyhow::anyhow!("cannot configure the wasm engine: {e:#}"))?;
        Ok(Process {
            runtime,
            connect_timeout,
            store: memory.cloned(),
            ledger: None,
            limiter: None,
            telemetry: Arc::new(Telemetry::with_metrics(config.metrics.options)),
        })
    }
}

/// Every plugin file `config` names, by registry name (providers' and tools').
pub fn named_plugins(config: &Config) -> Vec<(String, PathBuf)> {
    let mut named: Vec<(String, PathBuf)> = config
        .providers
        .iter()
        .map(|p| p.plugin.clone())
        .chain(config.tools.iter().map(|t| t.options.plugin.clone()))
        .map(|path| (name_of(&path), path))
        .collect();
    named.sort();
    named.dedup();
    named
}

/// Who uses the plugin `name` in `config`: `providers.<name>`, `tools.<name>`.
pub fn used_by(config: &Config, name: &str) -> Vec<String> {
    let providers = config
        .providers
        .iter()
        .filter(|p| name_of(&p.plugin) == name)
        .map(|p| format!("providers.{}", p.name));
    let tools = config
        .tools
        .iter()
        .filter(|t| name_of(&t.options.plugin) == name)
        .map(|t| format!("tools.{}", t.options.name));
    providers.chain(tools).collect()
}

/// Loads every plugin `config` names that `registry` does not hold yet, from its file. Two
/// files of one name are refused: the registry (and the admin API) names plugins by file stem.
pub async fn load_missing(
    config: &Config,
    runtime: &Arc<Runtime>,
    registry: &Registry,
) -> anyhow::Result<()> {
    let named = named_plugins(config);
    for pair in named.windows(2) {
        if let [(a, path_a), (b, path_b)] = pair
            && a == b
        {
            anyhow::bail!(
                "{}: the plugin files {} and {} are both named `{a}`; plugins are named by \
                 their file name, so rename one",
                config.path.display(),
                path_a.display(),
                path_b.display()
            );
        }
    }
    for (name, path) in named {
        if registry.current(&name).is_some() {
            continue;
        }
        let version = load_file(runtime, &path).await.with_context(|| {
            format!(
                "{}: plugin `{name}` (build the plugins with `cargo xtask plugins`)",
                config.path.display()
            )
        })?;
        tracing::info!(
            plugin = %name,
            version = version.plugin.version(),
            digest = %short(version.digest()),
            file = %path.display(),
            "plugin loaded"
        );
        registry.install(&name, Arc::new(version), registry.previous(&name));
    }
    Ok(())
}

/// Reads and loads the plugin file `path`.
pub async fn load_file(runtime: &Arc<Runtime>, path: &Path) -> anyhow::Result<Version> {
    let bytes = tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let kept: Arc<[u8]> = Arc::from(bytes.as_slice());
    // The label is the file: `aigw check` shows it, logs name the plugin by its stem.
    let plugin = aigw_runtime::load(runtime, &path.display().to_string(), bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?;
    Ok(Version {
        plugin,
        bytes: kept,
        source: Source::File(path.to_owned()),
        loaded_at: SystemTime::now(),
    })
}

/// The served state `config` describes, over `plugins` (by registry name: every plugin the
/// config names must be there), sharing `health` and the process's parts, with `remote` as its
/// MCP servers (whose listers the caller starts, or keeps from the state this replaces).
pub fn build(
    config: &Config,
    plugins: &BTreeMap<String, Arc<Version>>,
    health: Arc<HealthRegistry>,
    process: &Process,
    remote: Vec<Arc<RemoteServer>>,
) -> anyhow::Result<Gateway> {
    let plugin = |name: &str, kind: WorldKind, user: &str| -> anyhow::Result<&Arc<Version>> {
        let version = plugins
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("{user}: the plugin `{name}` is not loaded"))?;
        if version.kind() != kind {
            anyhow::bail!(
                "{user}: the plugin `{name}` is a {} plugin; it needs a {} plugin",
                version.kind().as_str(),
                kind.as_str()
            );
        }
        Ok(version)
    };
    let mut providers = Vec::with_capacity(config.providers.len());
    for options in &config.providers {
        let user = format!("{}: provider `{}`", config.path.display(), options.name);
        let version = plugin(&name_of(&options.plugin), WorldKind::Provider, &user)?;
        let Some(loaded) = version.provider() else {
            anyhow::bail!("{user}: not a provider plugin");
        };
        let provider = Provider::new(options, loaded).with_context(|| user.clone())?;
        providers.push(provider);
    }
    let plugins_of: Vec<(String, String)> = providers
        .iter()
        .map(|p| (p.name.clone(), p.plugin.descriptor().name.clone()))
        .collect();
    let prices = Prices::new(config.prices.clone(), plugins_of);
    let mut tool_plugins = Vec::with_capacity(config.tools.len());
    for configured in &config.tools {
        let options = &configured.options;
        let user = format!("{}: [tools.{}]", config.path.display(), options.name);
        let version = plugin(&name_of(&options.plugin), WorldKind::Tool, &user)?;
        let Some(loaded) = version.tool() else {
            anyhow::bail!("{user}: not a tool plugin");
        };
        let built = PluginTools::new(options, loaded, &health, process.connect_timeout)
            .map_err(|e| configured.locate(&config.path, &e))?;
        tool_plugins.push(Arc::new(built));
    }
    let tools = Toolbox::new(tool_plugins)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.path.display()))?
        .with_remote(remote);
    let mut gateway = Gateway::new(providers, config.routes.clone(), health, &config.server)?
        .with_redaction(config.redaction.clone())
        .with_prices(Arc::new(prices))
        .with_tools(Arc::new(tools))
        .with_sessions(config.sessions)
        .with_mcp(config.mcp.clone())
        .with_tool_loop(config.tool_loop)
        .with_route_tools(config.route_tools.clone().into_iter().collect())
        .with_response_cache(config.response_cache.clone())
        .with_telemetry(Arc::clone(&process.telemetry));
    if let Some(store) = &process.store {
        gateway = gateway.with_memory(Arc::clone(store));
    }
    if let Some(ledger) = &process.ledger {
        gateway = gateway.with_usage(Arc::clone(ledger));
    }
    if let Some(limiter) = &process.limiter {
        gateway = gateway.with_limiter(limiter.clone());
    }
    Ok(gateway)
}

/// The warnings a freshly built state deserves (missing credentials, upstreams left out).
pub fn warn_about(gateway: &Gateway) {
    let mut providers: Vec<_> = gateway.providers.values().collect();
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    for provider in providers {
        if let Some(why) = &provider.missing_credential {
            tracing::warn!(
                provider = %provider.name,
                "provider has no credential ({why}); its targets will be skipped until it is set"
            );
        }
    }
    for built in gateway.tools.plugins() {
        for upstream in &built.upstreams {
            if let Some(why) = &upstream.left_out {
                tracing::warn!(
                    tool_plugin = %built.name,
                    upstream = %upstream.name,
                    "tool upstream left out: it needs a credential ({why})"
                );
            }
        }
    }
}

/// The `[mcp_servers.<name>]` clients, each with its own pooled egress client (its connect
/// timeout is the server's).
pub fn remote_servers(config: &Config) -> anyhow::Result<Vec<Arc<RemoteServer>>> {
    config
        .mcp_servers
        .iter()
        .map(|options| remote_server(config, options))
        .collect()
}

/// One `[mcp_servers.<name>]` client.
pub fn remote_server(
    config: &Config,
    options: &aigw_server::McpServerOptions,
) -> anyhow::Result<Arc<RemoteServer>> {
    let server = Egress::new([options.connect_timeout])
        .and_then(|egress| RemoteServer::new(options.clone(), egress))
        .with_context(|| format!("{}: [mcp_servers.{}]", config.path.display(), options.name))?;
    Ok(Arc::new(server))
}

/// A digest shortened for a log line (`sha256:0123456789ab`).
pub fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// Plugins by name, for a state built around one replaced (`name` → `version`).
pub fn with_replaced(
    registry: &Registry,
    name: &str,
    version: Option<Arc<Version>>,
) -> BTreeMap<String, Arc<Version>> {
    let mut plugins = registry.snapshot();
    match version {
        Some(version) => {
            plugins.insert(name.to_owned(), version);
        }
        None => {
            plugins.remove(name);
        }
    }
    plugins
}

/// Remote MCP servers of a running state, by name (kept by a swap or an unchanged reload so
/// their listing goes on without a gap).
pub fn remote_by_name(gateway: &Gateway) -> HashMap<String, Arc<RemoteServer>> {
    gateway
        .tools
        .remote()
        .iter()
        .map(|server| (server.name().to_owned(), Arc::clone(server)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_is_named_by_its_file_stem_and_used_by_whoever_names_it() {
        let text = "[providers.groq]\nplugin = \"groq\"\n\n[providers.backup]\nplugin = \"groq\"\n\n\
                    [providers.local]\nplugin = \"/srv/plugins/openai-compatible.wasm\"\n\n\
                    [tools.weather]\n";
        let config =
            crate::config::parse(Path::new("/etc/aigw/aigw.toml"), text, &|_| None).unwrap();
        let named: Vec<String> = named_plugins(&config).into_iter().map(|(n, _)| n).collect();
        assert_eq!(named, ["groq", "openai-compatible", "weather"]);
        assert_eq!(
            used_by(&config, "groq"),
            ["providers.backup", "providers.groq"]
        );
        assert_eq!(used_by(&config, "openai-compatible"), ["providers.local"]);
        assert_eq!(used_by(&config, "weather"), ["tools.weather"]);
        assert!(used_by(&config, "spare").is_empty());
    }
}
