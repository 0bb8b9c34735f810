//! The aigw binary. It owns the command line (`serve`, `check`), reading and validating the
//! config, loading the plugins it names, wiring providers and routes into the server, and
//! telemetry (human or JSON logs on stderr). The one line it prints on stdout is
//! `listening on ADDR`, once the socket is bound, so scripts and tests can find an ephemeral port.

mod config;
mod logs;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use aigw_access::{Directory, Ledger, Limiter, Prices};
use aigw_egress::Egress;
use aigw_memory::Store;
use aigw_router::HealthRegistry;
use aigw_runtime::{
    MemoryLimits, MemoryStore, OutboundLimits, Plugin, Runtime, Services, ToolPlugin,
};
use aigw_server::tools::{PluginTools, Toolbox};
use aigw_server::{
    Auth, ConnectionLimits, Gateway, MAX_REMEMBERED_TARGETS, PluginMemory, Provider, RemoteServer,
    Service, Tls,
};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;

// Every request allocates a few dozen small buffers (headers, JSON, plugin arguments); under
// load glibc malloc/free showed up at ~7 % of aigw's profile. mimalloc's thread-local free lists
// measured faster on `cargo xtask bench` (see ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "aigw",
    version,
    about = "An AI gateway: the OpenAI API in front of many providers, with failover."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The config file.
        #[arg(long, short, default_value = "aigw.toml")]
        config: PathBuf,
        /// Listen address; overrides `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Validate the config, load its plugins, and print the resolved routes.
    Check {
        #[arg(long, short, default_value = "aigw.toml")]
        config: PathBuf,
    },
    /// Print every model the config exposes, as `GET /v1/models` lists them.
    Models {
        #[arg(long, short, default_value = "aigw.toml")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("aigw: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            log_format,
        } => {
            logs::init(log_format);
            runtime.block_on(serve(config, listen))
        }
        Command::Check { config } => {
            logs::init(LogFormat::Human);
            runtime.block_on(check(config))
        }
        Command::Models { config } => {
            logs::init(LogFormat::Human);
            runtime.block_on(models(config))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aigw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(config::load(path, &|name| std::env::var(name).ok())?)
}

/// Refuses to serve without authentication on an address other machines can reach, unless
/// the config says so explicitly (`[auth] allow_unauthenticated = true`).
fn refuse_open_exposure(config: &Config, address: SocketAddr) -> anyhow::Result<()> {
    if config.auth.admin_key.is_some()
        || config.auth.allow_unauthenticated
        || address.ip().is_loopback()
    {
        return Ok(());
    }
    anyhow::bail!(
        "{}: refusing to listen on {address} with authentication off: anyone who can reach it \
         could spend the providers' credits and read the memory. Set `[auth] admin_key` (e.g. \
         \"${{{env}}}\", or the environment variable {env}) to require virtual keys, listen on \
         a loopback address (127.0.0.1), or set `[auth] allow_unauthenticated = true` if \
         something in front of aigw authenticates every request",
        config.path.display(),
        env = config::ADMIN_KEY_ENV,
    )
}

/// Loads every plugin the config names (each file once) and builds the gateway.
/// `memory` is the process's store, which tool plugins reach through their `memory` import
/// (`None` for the commands that serve nothing). `health` is where target health lives: a fresh registry when the process starts, the running
/// state's ([`Gateway::health`]) when a state is rebuilt to replace it ([`Service::swap`]), so
/// breakers and cooldowns survive.
async fn build(
    config: &Config,
    health: Arc<HealthRegistry>,
    memory: Option<&Arc<Store>>,
) -> anyhow::Result<Gateway> {
    // Tool plugins' sends leave through their own pooled egress, with the outbound connect
    // timeout (each call's grants and credential come with the call).
    let connect_timeout = OutboundLimits::default().connect_timeout;
    let tool_egress = Egress::new([connect_timeout])
        .map_err(|e| anyhow::anyhow!("cannot build the tool plugins' egress: {e}"))?;
    let services = Services {
        egress: Some(tool_egress),
        memory: memory.map(|store| {
            Arc::new(PluginMemory::new(Arc::clone(store)).with_redaction(config.redaction.clone()))
                as Arc<dyn MemoryStore>
        }),
        memory_limits: MemoryLimits {
            quota: config.plugins.memory_quota,
            ..MemoryLimits::default()
        },
        ..Services::default()
    };
    let runtime = Runtime::with_services(config.plugins.limits.clone(), services)
        .map_err(|e| anyhow::anyhow!("cannot configure the wasm engine: {e:#}"))?;

    let mut plugins: HashMap<&Path, Arc<Plugin>> = HashMap::new();
    let mut providers = Vec::with_capacity(config.providers.len());
    for options in &config.providers {
        let plugin = match plugins.get(options.plugin.as_path()) {
            Some(plugin) => Arc::clone(plugin),
            None => {
                let plugin = Plugin::load(&runtime, &options.plugin)
                    .await
                    .with_context(|| {
                        format!(
                            "{}: provider `{}` (build the plugins with `cargo xtask plugins`)",
                            config.path.display(),
                            options.name
                        )
                    })?;
                plugins.insert(&options.plugin, Arc::clone(&plugin));
                plugin
            }
        };
        let provider = Provider::new(options, plugin)
            .with_context(|| format!("{}: provider `{}`", config.path.display(), options.name))?;
        if let Some(why) = &provider.missing_credential {
            tracing::warn!(
                provider = %provider.name,
                "provider has no credential ({why}); its targets will be skipped until it is set"
            );
        }
        providers.push(provider);
    }
    let plugins_of: Vec<(String, String)> = providers
        .iter()
        .map(|p| (p.name.clone(), p.plugin.descriptor().name.clone()))
        .collect();
    let prices = Prices::new(config.prices.clone(), plugins_of);
    let tools = tools(config, &runtime, &health, connect_timeout)
        .await?
        .with_remote(remote_servers(config)?);
    Ok(
        Gateway::new(providers, config.routes.clone(), health, &config.server)?
            .with_redaction(config.redaction.clone())
            .with_prices(Arc::new(prices))
            .with_tools(Arc::new(tools)),
    )
}

/// The `[mcp_servers.<name>]` clients, each with its own pooled egress client (its connect
/// timeout is the server's).
fn remote_servers(config: &Config) -> anyhow::Result<Vec<Arc<RemoteServer>>> {
    config
        .mcp_servers
        .iter()
        .map(|options| {
            let server = Egress::new([options.connect_timeout])
                .and_then(|egress| RemoteServer::new(options.clone(), egress))
                .with_context(|| {
                    format!("{}: [mcp_servers.{}]", config.path.display(), options.name)
                })?;
            Ok(Arc::new(server))
        })
        .collect()
}

/// Loads every tool plugin the config enables and builds the toolbox over their upstreams
/// (whose health lives in `health`). An upstream or endpoint the plugin does not describe, or
/// a tool schema that does not compile, stops the start with its place in the file.
async fn tools(
    config: &Config,
    runtime: &Arc<Runtime>,
    health: &HealthRegistry,
    connect_timeout: std::time::Duration,
) -> anyhow::Result<Toolbox> {
    let mut plugins = Vec::with_capacity(config.tools.len());
    for configured in &config.tools {
        let options = &configured.options;
        let plugin = ToolPlugin::load(runtime, &options.plugin)
            .await
            .with_context(|| {
                format!(
                    "{}: [tools.{}] (build the plugins with `cargo xtask plugins`)",
                    config.path.display(),
                    options.name
                )
            })?;
        let built = PluginTools::new(options, plugin, health, connect_timeout)
            .map_err(|e| configured.locate(&config.path, &e))?;
        for upstream in &built.upstreams {
            if let Some(why) = &upstream.left_out {
                tracing::warn!(
                    tool_plugin = %built.name,
                    upstream = %upstream.name,
                    "tool upstream left out: it needs a credential ({why})"
                );
            }
        }
        plugins.push(Arc::new(built));
    }
    Toolbox::new(plugins).map_err(|e| anyhow::anyhow!("{}: {e}", config.path.display()))
}

/// Every target the config names (routes' targets and the plugins' listed models) that has no
/// price: each costs 0, which an operator should know.
fn unpriced(gateway: &Gateway) -> Vec<String> {
    Gateway::listed_models(&gateway.providers, &gateway.routes)
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| id.contains('/') && !gateway.routes.contains_key(id))
        .filter(|label| gateway.prices.get(label).is_none())
        .collect()
}

/// A registry for a process that knows nothing about its targets yet.
fn fresh_health(config: &Config) -> Arc<HealthRegistry> {
    Arc::new(HealthRegistry::new(
        config.failover.clone(),
        MAX_REMEMBERED_TARGETS,
    ))
}

async fn serve(config_path: PathBuf, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let config = read_config(&config_path)?;
    let address = listen.unwrap_or(config.server.listen);
    refuse_open_exposure(&config, address)?;
    survive_file_size_limit();
    // Opened (and migrated) before anything listens: a store that cannot be used, or whose
    // schema is newer than this binary's, stops the start with its reason.
    let store = Arc::new(
        Store::open(config.memory.clone())
            .await
            .with_context(|| format!("{}: [memory]", config_path.display()))?,
    );
    // Deletes expired entries until the store is dropped (it holds the store weakly).
    let _sweeper = aigw_memory::entries::spawn_sweeper(&store, config.memory.sweep_interval);
    // The same for the shared cache's expired rows (tool results).
    let _cache_sweeper = aigw_memory::cache::spawn_sweeper(&store, config.memory.sweep_interval);
    // Usage gathers in memory and is written every interval (held weakly by the flusher) and
    // once more when serving ends.
    let ledger = Arc::new(Ledger::new(Arc::clone(&store)));
    let _flusher = aigw_access::usage::spawn_flusher(&ledger, config.usage.flush_interval);
    // Keys' limits, shared with every process on the same store; its background work renews
    // this process's holds and gives back idle leases.
    let limiter = Limiter::new(Arc::clone(&store), config.limits.clone());
    let _tender = limiter.spawn_tender();
    let gateway = build(&config, fresh_health(&config), Some(&store))
        .await?
        .with_memory(Arc::clone(&store))
        .with_usage(Arc::clone(&ledger))
        .with_sessions(config.sessions)
        .with_mcp(config.mcp.clone())
        .with_tool_loop(config.tool_loop)
        .with_route_tools(config.route_tools.clone().into_iter().collect())
        .with_limiter(limiter.clone());
    // External MCP servers are listed in the background (the gateway serves without waiting)
    // and again every refresh, while the served state holds them.
    let _listers: Vec<_> = gateway
        .tools
        .remote()
        .iter()
        .map(RemoteServer::spawn_lister)
        .collect();
    // Checked when the config was read; loaded again here, for serving.
    let tls = match &config.server.tls {
        None => None,
        Some(options) => Some(
            Tls::new(options)
                .with_context(|| format!("{}: [server] tls", config_path.display()))?,
        ),
    };
    let unpriced = unpriced(&gateway);
    if !unpriced.is_empty() {
        tracing::warn!(
            targets = %unpriced.join(", "),
            "targets without a price cost 0 in usage and spend; set [prices.\"provider/model\"]"
        );
    }
    // Loaded before anything listens: the first request is checked against every key.
    let auth = match &config.auth.admin_key {
        None => None,
        Some(admin_key) => {
            let directory = Directory::load(Arc::clone(&store))
                .await
                .with_context(|| format!("{}: loading the virtual keys", config_path.display()))?;
            Some((Auth::new(admin_key, Arc::clone(&directory)), directory))
        }
    };
    // Refreshes until the directory is dropped, at the end of `serve`.
    let _refresher = auth
        .as_ref()
        .map(|(_, directory)| directory.spawn_refresher(config.auth.key_refresh));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(
        address = %bound,
        scheme = if tls.is_some() { "https" } else { "http" },
        providers = gateway.providers.len(),
        routes = gateway.routes.len(),
        authentication = if auth.is_some() { "on" } else { "off" },
        "aigw is serving"
    );
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {bound}")?;
        stdout.flush()?;
    }
    let mut service = Service::with_options(gateway, &config.server, bound);
    let mut directory = None;
    if let Some((auth, loaded)) = auth {
        service = service.with_auth(auth);
        directory = Some(loaded);
    }
    let service = Arc::new(service);
    let limits = ConnectionLimits::from(&config.server);
    let served = match &tls {
        None => aigw_server::serve(listener, service, limits, shutdown_signal()).await,
        Some(tls) => {
            aigw_server::serve_tls(listener, service, limits, tls, shutdown_signal()).await
        }
    };
    // What the last requests used reaches the store before it closes, however serving ended.
    match ledger.flush().await {
        Ok(rows) => tracing::debug!(rows, "usage flushed"),
        Err(e) => tracing::warn!(error = %e, "usage: the last flush failed; it is lost"),
    }
    // Unspent leases and held slots go back now, not when they would expire.
    if let Err(e) = limiter.close().await {
        tracing::warn!(error = %e, "limits: could not give back this process's allowance");
    }
    served?;
    drop(ledger);
    drop(directory);
    drop(store);
    tracing::info!("aigw stopped");
    Ok(())
}

/// A write past the process's file-size limit (`ulimit -f`) raises SIGXFSZ, whose default is to
/// kill the process: one memory write would take every connection down. With a handler the write
/// fails instead (EFBIG), the store answers 503 like a full disk, and the gateway keeps serving.
fn survive_file_size_limit() {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ)) {
        Ok(mut signal) => {
            tokio::spawn(async move {
                while signal.recv().await.is_some() {
                    tracing::warn!("a write went past the file-size limit (ulimit -f); it failed");
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot handle SIGXFSZ"),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn check(config_path: PathBuf) -> anyhow::Result<()> {
    let config = read_config(&config_path)?;
    let gateway = build(&config, fresh_health(&config), None).await?;
    let mut out = String::new();
    out.push_str(&format!("{}: ok\n", config.path.display()));
    out.push_str(&format!("listen: {}\n", config.server.listen));
    if let Some(tls) = &config.server.tls {
        out.push_str(&format!(
            "tls: cert {}, key {} (reloaded on change)\n",
            tls.cert.display(),
            tls.key.display()
        ));
    }
    if config.redaction.is_active() {
        out.push_str("redaction: on (memory writes and logged upstream text)\n");
    }
    out.push_str("providers:\n");
    let mut names: Vec<&String> = gateway.providers.keys().collect();
    names.sort();
    for name in names {
        let Some(p) = gateway.providers.get(name) else {
            continue;
        };
        let d = p.plugin.descriptor();
        let credential = match (&p.credential, &p.missing_credential) {
            (Some(_), _) => "set".to_owned(),
            (None, Some(why)) => format!("MISSING ({why}): its targets are skipped"),
            (None, None) => "none needed".to_owned(),
        };
        out.push_str(&format!(
            "  {name}: plugin {} {} ({}), base_url {}, credential {credential}\n",
            d.name,
            d.version,
            p.plugin.path().display(),
            p.base_url
        ));
    }
    if !gateway.tools.is_empty() {
        out.push_str("tools:\n");
        for plugin in gateway.tools.plugins() {
            let d = plugin.plugin.descriptor();
            out.push_str(&format!(
                "  {}: plugin {} {} ({}), timeout {} ms, max response {} bytes\n",
                plugin.name,
                d.name,
                d.version,
                plugin.plugin.path().display(),
                plugin.limits.send_timeout.as_millis(),
                plugin.limits.response_body_bytes,
            ));
            for upstream in &plugin.upstreams {
                let endpoints: Vec<String> = upstream
                    .endpoints
                    .iter()
                    .map(|(name, url)| format!("{name} {url}"))
                    .collect();
                let state = match (&upstream.left_out, upstream.credential) {
                    (Some(why), _) => format!("LEFT OUT (needs a credential: {why})"),
                    (None, true) => "credential set".to_owned(),
                    (None, false) => "no credential".to_owned(),
                };
                out.push_str(&format!(
                    "    upstream {}: {state}; endpoints {}\n",
                    upstream.name,
                    endpoints.join(", ")
                ));
            }
        }
        let names: Vec<Arc<str>> = gateway.tools.all().map(|t| Arc::clone(&t.name)).collect();
        out.push_str(&format!("  offered: {}\n", names.join(", ")));
    }
    out.push_str("routes:\n");
    let mut aliases: Vec<&String> = gateway.routes.keys().collect();
    aliases.sort();
    for alias in aliases {
        let Some(route) = gateway.routes.get(alias) else {
            continue;
        };
        let policy = &route.policy;
        out.push_str(&format!(
            "  {alias}: strategy {:?}, retries {}, hedge {}\n",
            policy.strategy,
            policy.retries,
            policy
                .hedge_after
                .map_or("off".to_owned(), |d| format!("after {} ms", d.as_millis()))
        ));
        for e in &route.entries {
            let t = &e.timeouts;
            let price = gateway
                .prices
                .get(&e.target.label)
                .map_or("unpriced".to_owned(), |p| {
                    format!(
                        "USD/M in {} out {}",
                        p.input_per_million(),
                        p.output_per_million()
                    )
                });
            out.push_str(&format!(
                "    {} (priority {}, weight {}, window {}, prefill {}, price {price}; timeouts \
                 ms: connect {}, first byte {}, stall {}, total {})\n",
                e.target.label,
                e.priority,
                e.weight,
                e.context_window
                    .map_or("unknown".to_owned(), |w| w.to_string()),
                e.target.prefill,
                t.connect.as_millis(),
                t.first_byte.as_millis(),
                t.stall.as_millis(),
                t.total.as_millis(),
            ));
        }
    }
    out.push_str("direct: any <provider>/<model> of the providers above\n");
    let unpriced = unpriced(&gateway);
    if unpriced.is_empty() {
        out.push_str("unpriced: none\n");
    } else {
        out.push_str("unpriced (they cost 0; set [prices.\"provider/model\"]):\n");
        for label in unpriced {
            out.push_str(&format!("  {label}\n"));
        }
    }
    print!("{out}");
    Ok(())
}

async fn models(config_path: PathBuf) -> anyhow::Result<()> {
    let config = read_config(&config_path)?;
    let gateway = build(&config, fresh_health(&config), None).await?;
    let listed = Gateway::listed_models(&gateway.providers, &gateway.routes);
    let width = listed
        .iter()
        .map(|(id, _)| id.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!("{:<width$}  OWNED BY\n", "MODEL");
    for (id, owner) in &listed {
        out.push_str(&format!("{id:<width$}  {owner}\n"));
    }
    print!("{out}");
    Ok(())
}
