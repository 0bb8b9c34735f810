//! The one place that configures wasmtime: pooling allocator, epoch interruption, memory caps,
//! and the linker of each world (assembled from [`crate::imports`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::imports::{self, Services};
use crate::state::HostState;

/// How often the epoch advances. A running call's deadline is checked on each tick, so this is
/// the granularity of plugin deadlines; a busy guest also yields to tokio on every tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits every plugin instance runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall time one plugin call may take before it is interrupted.
    pub call_timeout: Duration,
    /// Cap on each instance's linear memory.
    pub memory_bytes: usize,
    /// Warm instances kept per plugin, ready to take a call.
    pub warm_instances: usize,
    /// Instances that may be alive at once across all plugins (pool slots).
    pub max_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_millis(1000),
            memory_bytes: 64 << 20,
            warm_instances: 4,
            max_instances: 1000,
        }
    }
}

/// The wasmtime engine, the linker of each world, the services imports use, and the epoch
/// ticker. One per process, shared by all plugins.
pub struct Runtime {
    pub(crate) engine: Engine,
    /// Links `provider-plugin`: `log` only, so a provider plugin importing anything else is
    /// refused at load (invariant 1: the host owns all I/O).
    pub(crate) provider_linker: Linker<HostState>,
    /// Links `tool-plugin`: `log`, `outbound`, `memory`.
    pub(crate) tool_linker: Linker<HostState>,
    pub(crate) limits: Limits,
    pub(crate) services: Arc<Services>,
    ticker: Arc<AtomicBool>,
}

impl Runtime {
    /// A runtime whose tool plugins get no services: no egress, no memory store. Enough for
    /// provider plugins, which import only `log`.
    pub fn new(limits: Limits) -> Result<Arc<Runtime>, wasmtime::Error> {
        Runtime::with_services(limits, Services::default())
    }

    /// A runtime whose tool plugins' imports use `services`.
    pub fn with_services(
        limits: Limits,
        services: Services,
    ) -> Result<Arc<Runtime>, wasmtime::Error> {
        services.check().map_err(wasmtime::Error::msg)?;
        let mut config = Config::new();
        config.epoch_interruption(true);
        let mut pool = PoolingAllocationConfig::new();
        // Slots are reserved up front; a plugin asking for more than its cap fails its call
        // instead of growing the host (design invariant 5).
        pool.total_component_instances(limits.max_instances)
            .total_memories(limits.max_instances.saturating_mul(2))
            .total_tables(limits.max_instances.saturating_mul(4))
            .total_core_instances(limits.max_instances.saturating_mul(8))
            .max_memory_size(limits.memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let mut provider_linker = Linker::new(&engine);
        imports::link_provider(&mut provider_linker)?;
        let mut tool_linker = Linker::new(&engine);
        imports::link_tool(&mut tool_linker)?;

        let ticker = Arc::new(AtomicBool::new(true));
        let running = Arc::clone(&ticker);
        let ticking = engine.clone();
        thread::Builder::new()
            .name("aigw-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(wasmtime::Error::from)?;

        Ok(Arc::new(Runtime {
            engine,
            provider_linker,
            tool_linker,
            limits,
            services: Arc::new(services),
            ticker,
        }))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}
