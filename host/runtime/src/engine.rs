//! The one place that configures wasmtime: pooling allocator, epoch interruption, memory caps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::ProviderPlugin;
use crate::instance::HostState;

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

/// The wasmtime engine, the linker shared by all plugins, and the epoch ticker.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) limits: Limits,
    ticker: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(limits: Limits) -> Result<Arc<Runtime>, wasmtime::Error> {
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

        let mut linker = Linker::new(&engine);
        // Rust guests import wasi:cli/io through std even when they do no I/O; the contexts we
        // give them are empty (no files, env, network), so linking WASI grants nothing.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        ProviderPlugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;

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
            linker,
            limits,
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
