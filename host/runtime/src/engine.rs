//! The one place that configures wasmtime: pooling allocator, epoch interruption, memory caps,
//! the on-disk cache of compiled components, and the linker of each world (assembled from
//! [`crate::imports`]).
//!
//! # The compiled-component cache
//!
//! Compiling a component takes tens of milliseconds for a Rust guest and seconds for a Python or
//! JS one; a gateway that restarts (or a test suite that starts many) pays it for every plugin
//! each time. With [`RuntimeOptions::compile_cache`] set, wasmtime's own cache keeps each
//! compiled artifact in that directory: its key is the SHA-256 of the component's bytes, the
//! engine's compiler settings and the wasmtime version, so an entry is only ever read back by
//! the same wasmtime compiling the same bytes the same way (a stale entry is never hit). An
//! entry that was garbled on disk fails zstd decompression or wasmtime's header checks when it
//! is loaded, and the component is compiled again (and the entry rewritten). The workspace
//! forbids `unsafe`, which rules out `Component::deserialize` of our own files: going through
//! `Config::cache` leaves the trust in artifacts to wasmtime's checks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use crate::imports::{self, Services};
use crate::inspect::WorldKind;
use crate::state::HostState;

/// How often the epoch advances. A running call's deadline is checked on each tick, so this is
/// the granularity of plugin deadlines; a busy guest also yields to tokio on every tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The environment variable for profiling: `perfmap` turns on wasmtime's perf map; `valgrind`
/// allocates instances on demand with memory reservations of the memory cap (valgrind cannot
/// reserve the pool's terabytes of address space), so the gateway runs under callgrind, whose
/// instruction counts repeat where a shared machine's timings do not. Not for serving: guest
/// memory accesses then carry bounds checks.
pub const PROFILER_ENV: &str = "AIGW_WASM_PROFILER";

/// Limits every plugin instance runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall time one plugin call may take before it is interrupted.
    pub call_timeout: Duration,
    /// Wall time making one instance may take (its memory image laid out, start functions
    /// run). Separate from `call_timeout` because a Python or JS component's instantiation sets
    /// up tens of MiB and, on a loaded machine, can take longer than a call should.
    pub instantiate_timeout: Duration,
    /// Cap on each instance's linear memory.
    pub memory_bytes: usize,
    /// Warm instances kept per plugin, ready to take a call.
    pub warm_instances: usize,
    /// Instances that may be alive at once across all plugins (pool slots), per engine: the
    /// plugins that need the component model's async ABI have a pool of their own.
    pub max_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_millis(1000),
            instantiate_timeout: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            warm_instances: 4,
            max_instances: 1000,
        }
    }
}

/// Everything a runtime is configured with.
#[derive(Default)]
pub struct RuntimeOptions {
    pub limits: Limits,
    pub services: Services,
    /// Where compiled components are cached across restarts; `None`: compile every time.
    pub compile_cache: Option<PathBuf>,
}

/// What the compiled-component cache did since the runtime started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Compiles answered from the cache (the entry was read and accepted by wasmtime).
    pub hits: u64,
    /// Compiles that ran the compiler and wrote a new entry. A compile whose entry could not be
    /// written (a full disk) is in neither count.
    pub misses: u64,
}

/// An engine and the linker of each world on it.
pub(crate) struct Engines {
    pub(crate) engine: Engine,
    /// Links `provider-plugin`: `log` only, so a provider plugin importing anything else is
    /// refused at load (invariant 1: the host owns all I/O).
    pub(crate) provider_linker: Linker<HostState>,
    /// Links `tool-plugin`: `log`, `outbound`, `memory`.
    pub(crate) tool_linker: Linker<HostState>,
}

impl Engines {
    fn new(config: &Config) -> Result<Engines, wasmtime::Error> {
        let engine = Engine::new(config)?;
        let mut provider_linker = Linker::new(&engine);
        imports::link_provider(&mut provider_linker)?;
        let mut tool_linker = Linker::new(&engine);
        imports::link_tool(&mut tool_linker)?;
        Ok(Engines {
            engine,
            provider_linker,
            tool_linker,
        })
    }

    pub(crate) fn linker(&self, world: WorldKind) -> &Linker<HostState> {
        match world {
            WorldKind::Provider => &self.provider_linker,
            WorldKind::Tool => &self.tool_linker,
        }
    }
}

/// The wasmtime engines and their linkers, the services imports use, and the epoch ticker.
/// One per process, shared by all plugins.
///
/// Two engines, because the component model's async ABI costs every call: with wasmtime's
/// concurrency support on, each `call_async` goes through its task machinery (a guest task, a
/// work queue, its bookkeeping) instead of straight onto a fiber, ~14,000 instructions of a
/// JSON request's ~235,000. No plugin of ours needs it (the WIT has no `async` function, stream
/// or future), but some toolchains emit its built-ins anyway (componentize-qjs's `task.cancel`).
/// So a plugin is compiled for the `lean` engine (concurrency support off) when it validates
/// there, and for the `full` one (wasmtime's defaults), made the first time a plugin needs it,
/// otherwise.
pub struct Runtime {
    pub(crate) lean: Engines,
    /// Made by the first load that needs it; a failure to make it is kept, like the engine.
    full: Arc<OnceLock<Result<Engines, String>>>,
    pub(crate) limits: Limits,
    pub(crate) services: Arc<Services>,
    /// The compiled-component cache, when one is configured and its directory is usable.
    cache: Option<Cache>,
    ticker: Arc<AtomicBool>,
}

impl Runtime {
    /// A runtime whose tool plugins get no services: no egress, no memory store. Enough for
    /// provider plugins, which import only `log`.
    pub fn new(limits: Limits) -> Result<Arc<Runtime>, wasmtime::Error> {
        Runtime::with_services(limits, Services::default())
    }

    /// A runtime whose tool plugins' imports use `services`, with no compile cache.
    pub fn with_services(
        limits: Limits,
        services: Services,
    ) -> Result<Arc<Runtime>, wasmtime::Error> {
        Runtime::configure(RuntimeOptions {
            limits,
            services,
            compile_cache: None,
        })
    }

    /// A runtime with every option. A compile-cache directory that cannot be created or used is
    /// logged and the runtime compiles without a cache: a cache never stops the gateway.
    pub fn configure(options: RuntimeOptions) -> Result<Arc<Runtime>, wasmtime::Error> {
        let RuntimeOptions {
            limits,
            services,
            compile_cache,
        } = options;
        services.check().map_err(wasmtime::Error::msg)?;
        let cache = compile_cache.and_then(|dir| open_cache(&dir));
        let mut lean_config = config(&limits, cache.clone());
        lean_config.concurrency_support(false);
        let lean = Engines::new(&lean_config)?;

        let full = Arc::new(OnceLock::<Result<Engines, String>>::new());
        let ticker = Arc::new(AtomicBool::new(true));
        let running = Arc::clone(&ticker);
        let ticking = lean.engine.clone();
        let ticking_full = Arc::clone(&full);
        thread::Builder::new()
            .name("aigw-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                    if let Some(Ok(full)) = ticking_full.get() {
                        full.engine.increment_epoch();
                    }
                }
            })
            .map_err(wasmtime::Error::from)?;

        Ok(Arc::new(Runtime {
            lean,
            full,
            limits,
            services: Arc::new(services),
            cache,
            ticker,
        }))
    }

    /// The engine with wasmtime's concurrency support, made now if no plugin needed it before
    /// (a load racing this one waits for it rather than making a second).
    pub(crate) fn full(&self) -> Result<&Engines, String> {
        self.full
            .get_or_init(|| {
                Engines::new(&config(&self.limits, self.cache.clone()))
                    .map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Hits and misses of the compiled-component cache since this runtime started (zeros
    /// without a cache). Counted by wasmtime's cache itself.
    pub fn cache_stats(&self) -> CacheStats {
        match &self.cache {
            Some(cache) => CacheStats {
                hits: cache.cache_hits() as u64,
                misses: cache.cache_misses() as u64,
            },
            None => CacheStats::default(),
        }
    }

    /// The compile cache's directory, when one is in use.
    pub fn compile_cache_dir(&self) -> Option<&std::path::Path> {
        self.cache.as_ref().map(|c| c.directory().as_path())
    }
}

/// The engine configuration every plugin runs under (wasmtime's defaults otherwise).
fn config(limits: &Limits, cache: Option<Cache>) -> Config {
    let mut config = Config::new();
    config.cache(cache);
    config.epoch_interruption(true);
    // A profiling aid: `AIGW_WASM_PROFILER=perfmap` has wasmtime write /tmp/perf-<pid>.map,
    // so `perf report` names the plugins' own functions instead of bare JIT addresses.
    let profiler = std::env::var_os(PROFILER_ENV);
    if profiler.as_ref().is_some_and(|v| v == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if profiler.is_some_and(|v| v == "valgrind") {
        config
            .memory_reservation(limits.memory_bytes as u64)
            .memory_guard_size(0)
            .memory_reservation_for_growth(0)
            .allocation_strategy(InstanceAllocationStrategy::OnDemand);
        return config;
    }
    let mut pool = PoolingAllocationConfig::new();
    // Slots are reserved up front; a plugin asking for more than its cap fails its call
    // instead of growing the host (design invariant 5).
    pool.total_component_instances(limits.max_instances)
        .total_memories(limits.max_instances.saturating_mul(2))
        .total_tables(limits.max_instances.saturating_mul(4))
        .total_core_instances(limits.max_instances.saturating_mul(8))
        .max_memory_size(limits.memory_bytes);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// wasmtime's cache in `dir`, or `None` (logged) when the directory cannot be made or used.
/// wasmtime wants an absolute path; a relative one is taken from the working directory.
fn open_cache(dir: &std::path::Path) -> Option<Cache> {
    let dir = match std::path::absolute(dir) {
        Ok(dir) => dir,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "compile cache disabled: {e}");
            return None;
        }
    };
    let mut config = CacheConfig::new();
    config.with_directory(&dir);
    match Cache::new(config) {
        Ok(cache) => Some(cache),
        Err(e) => {
            tracing::warn!(
                dir = %dir.display(),
                "compile cache disabled, plugins are compiled at every start: {e:#}"
            );
            None
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}
