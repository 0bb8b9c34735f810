//! The aigw binary. It owns the command line (`serve`, `check`), reading and validating the
//! config, loading the plugins it names, wiring providers and routes into the server, and
//! telemetry (human or JSON logs on stderr). The one line it prints on stdout is
//! `listening on ADDR`, once the socket is bound, so scripts and tests can find an ephemeral port.

mod config;
mod log_batch;
mod log_fields;
mod logs;
mod otlp;
mod plugin_cli;
mod registry;
mod reload;
mod state;
mod swap;
mod watch;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use aigw_access::{Directory, Ledger, Limiter};
use aigw_memory::Store;
use aigw_router::HealthRegistry;
use aigw_server::{
    Auth, ConnectionLimits, Drain, Gateway, LogControl, MAX_REMEMBERED_TARGETS, PluginControl,
    RemoteServer, Service, Tls, Workers,
};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::registry::Registry;
use crate::state::Process;
use crate::swap::{Running, Swapper};

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
    /// Write, build and check plugins: `aigw plugin new|build|check`.
    Plugin {
        #[command(subcommand)]
        command: plugin_cli::PluginCommand,
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
        } => runtime.block_on(serve(config, listen, log_format)),
        Command::Check { config } => {
            logs::init(LogFormat::Human, None);
            runtime.block_on(check(config))
        }
        Command::Models { config } => {
            logs::init(LogFormat::Human, None);
            runtime.block_on(models(config))
        }
        Command::Plugin { command } => {
            logs::init(LogFormat::Human, None);
            runtime.block_on(plugin_cli::run(command))
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

/// Loads every plugin the config names (each file once) into a fresh registry and builds the
/// gateway, for the commands that serve nothing (`check`, `models`).
async fn build_once(config: &Config) -> anyhow::Result<Gateway> {
    let process = Process::new(config, None)?;
    let registry = Registry::default();
    state::load_missing(config, &process.runtime, &registry).await?;
    let gateway = state::build(
        config,
        &registry.snapshot(),
        fresh_health(config),
        &process,
        state::remote_servers(config)?,
    )?;
    state::warn_about(&gateway);
    Ok(gateway)
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

async fn serve(
    config_path: PathBuf,
    listen: Option<SocketAddr>,
    log_format: LogFormat,
) -> anyhow::Result<()> {
    let config_text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("{}: cannot read the config file", config_path.display()))?;
    let config = config::parse(&config_path, &config_text, &|name| std::env::var(name).ok())?;
    // The log starts once `[tracing]` is known: its subscriber holds the OTLP layer, if any.
    let export = otlp::resolve(&config.tracing, &|name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("{}: [tracing]: {e}", config_path.display()))?;
    let traces = match &export {
        None => None,
        Some(export) => Some(
            otlp::provider(export, tokio::runtime::Handle::current())
                .map_err(|e| anyhow::anyhow!("{}: [tracing]: {e}", config_path.display()))?,
        ),
    };
    let logging = logs::init(log_format, traces);
    if let Some(export) = &export {
        tracing::info!(
            endpoint = %export.endpoint,
            service = %export.service_name,
            sampler = ?export.sampler,
            "traces are exported over OTLP/HTTP"
        );
    }
    let config_table: toml::Table = config_text
        .parse()
        .with_context(|| format!("{}", config_path.display()))?;
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
    // One wasm runtime for the process: every state (at start, after a swap or a reload)
    // takes its plugins from one registry, so an unchanged plugin is never compiled again.
    let mut process = Process::new(&config, Some(&store))?;
    process.ledger = Some(Arc::clone(&ledger));
    process.limiter = Some(limiter.clone());
    let registry = Registry::default();
    state::load_missing(&config, &process.runtime, &registry).await?;
    let gateway = state::build(
        &config,
        &registry.snapshot(),
        fresh_health(&config),
        &process,
        state::remote_servers(&config)?,
    )?;
    state::warn_about(&gateway);
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
    // Before the listener: a stop sent as soon as the address is printed must drain, not be
    // lost or kill the process.
    let signals = StopSignals::listen().context("cannot listen for stop signals")?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    let watch_interval = config.plugins.watch_interval;
    let server_options = config.server.clone();
    // Bound before anything is announced: an address that cannot be had stops the start.
    let metrics_listener = match config.metrics.listen {
        Some(address) if config.metrics.options.enabled => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (metrics.listen)"))?,
        ),
        _ => None,
    };
    let swapper = Arc::new(Swapper::new(
        process,
        registry,
        Running {
            config,
            table: config_table,
        },
    ));
    let mut service = Service::with_options(gateway, &server_options, bound)
        .with_plugins(Arc::clone(&swapper) as Arc<dyn PluginControl>)
        .with_logging(Arc::clone(&logging.switch) as Arc<dyn LogControl>);
    let mut directory = None;
    let authenticated = auth.is_some();
    if let Some((auth, loaded)) = auth {
        service = service.with_auth(auth);
        directory = Some(loaded);
    }
    let service = Arc::new(service);
    swapper.attach(&service);
    // `/metrics` alone, without credentials; ends with the process.
    let _metrics = match metrics_listener {
        Some(listener) => {
            let address = listener.local_addr()?;
            tracing::info!(
                address = %address,
                "serving /metrics without credentials on its own listener (metrics.listen)"
            );
            let served =
                aigw_server::serve_metrics(listener, Arc::clone(&service), std::future::pending());
            Some(AbortOnDrop(tokio::spawn(served)))
        }
        None => None,
    };
    // Both hold the swapper weakly and end with it.
    let _watcher = watch_interval.map(|interval| watch::spawn(&swapper, interval));
    let _reloader = reload::spawn(&swapper, config_path.clone(), watch_interval);
    // The loops connections are served on; a thread that cannot be had stops the start. Each
    // writes the log lines it gathered whenever it is about to wait (`log_batch`).
    let workers = Workers::start(server_options.workers, Arc::new(log_batch::flush_thread))
        .context("cannot start the worker threads")?;
    // Announced once the watchers have taken stock, so a file written after this line is a
    // change they see.
    let state = service.state();
    tracing::info!(
        address = %bound,
        scheme = if tls.is_some() { "https" } else { "http" },
        providers = state.providers.len(),
        routes = state.routes.len(),
        authentication = if authenticated { "on" } else { "off" },
        workers = workers.count(),
        "aigw is serving"
    );
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {bound}")?;
        stdout.flush()?;
    }
    drop(state);
    let limits = ConnectionLimits::from(&server_options);
    let stop = stop_requested(signals, Drain::from(&server_options));
    // Returns once every stream ended and wrote its record (or the grace ran out): only then is
    // the store flushed.
    let served = match &tls {
        None => aigw_server::serve(listener, service, limits, &workers, stop).await,
        Some(tls) => aigw_server::serve_tls(listener, service, limits, &workers, tls, stop).await,
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
    // The last spans reach the collector before the process exits (within the export
    // timeout); the SDK's shutdown blocks, so off the async threads.
    if let Some(traces) = logging.traces {
        let flushed = tokio::task::spawn_blocking(move || traces.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("aigw: the last traces could not be exported: {e}");
        }
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

/// A task that ends when its handle is dropped (the metrics listener, with `serve`).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The signals that stop the gateway: SIGTERM (an orchestrator's stop) and SIGINT (Ctrl-C).
struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

/// Which signal came.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Terminate,
    Interrupt,
}

impl StopSignals {
    /// Listens from now on: a signal that comes before the first `next` is not lost.
    fn listen() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    async fn next(&mut self) -> Stop {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => Stop::Terminate,
                _ = self.interrupt.recv() => Stop::Interrupt,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Stop::Interrupt
        }
    }
}

/// Resolves at the first stop signal with how to drain: SIGTERM as configured, SIGINT without
/// the drain delay (a terminal is behind no load balancer). From then on a second signal ends
/// the process at once, exit status 1: whoever sends it wants out now, and what is in flight
/// and the usage not yet flushed are lost.
async fn stop_requested(mut signals: StopSignals, drain: Drain) -> Drain {
    let stop = signals.next().await;
    tokio::spawn(async move {
        let again = signals.next().await;
        tracing::warn!(signal = ?again, "a second stop signal while draining: exiting now");
        std::process::exit(1);
    });
    tracing::info!(signal = ?stop, "stop signal received");
    match stop {
        Stop::Terminate => drain,
        Stop::Interrupt => drain.without_delay(),
    }
}

async fn check(config_path: PathBuf) -> anyhow::Result<()> {
    let config = read_config(&config_path)?;
    let gateway = build_once(&config).await?;
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
    let gateway = build_once(&config).await?;
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
