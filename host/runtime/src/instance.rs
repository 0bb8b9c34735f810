//! One warm plugin instance: its store, the per-call clock and limits, and the host imports it
//! sees (`log`). A call that faults leaves the instance poisoned; callers drop it.

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::aigw::plugin::{log, types};
use crate::bindings::{ProviderPlugin, ProviderPluginPre};
use crate::{Fault, FaultKind};

/// Bytes of a guest's stderr kept, so a panic message can be reported with its fault.
const STDERR_CAPTURE: usize = 4096;
/// Longest plugin log message forwarded to the host's log.
const LOG_MESSAGE_MAX: usize = 4096;

pub(crate) struct HostState {
    plugin: String,
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    memory: MemoryCap,
    /// Set while a call runs; the epoch callback interrupts the call once it is over time.
    clock: Option<(Instant, Duration)>,
    deadline_hit: bool,
}

struct MemoryCap {
    max_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            // An error (rather than `Ok(false)`) traps at the `memory.grow`, so the call ends
            // here and is reported as a memory fault instead of whatever the guest does on OOM.
            wasmtime::bail!(
                "plugin memory limit of {} bytes reached (asked for {desired})",
                self.max_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn emit(&mut self, level: log::Level, mut message: String) {
        if message.len() > LOG_MESSAGE_MAX {
            let mut end = LOG_MESSAGE_MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let plugin = self.plugin.as_str();
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

pub(crate) struct Instance {
    pub(crate) store: Store<HostState>,
    pub(crate) bindings: ProviderPlugin,
}

impl Instance {
    pub(crate) async fn new(
        pre: &ProviderPluginPre<HostState>,
        plugin: &str,
        memory_bytes: usize,
        call_timeout: Duration,
    ) -> Result<Instance, Fault> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let wasi = WasiCtxBuilder::new().stderr(stderr.clone()).build();
        let state = HostState {
            plugin: plugin.to_owned(),
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory: MemoryCap {
                max_bytes: memory_bytes,
                hit: false,
            },
            clock: None,
            deadline_hit: false,
        };
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            match state.clock {
                Some((started, timeout)) if started.elapsed() >= timeout => {
                    state.deadline_hit = true;
                    Ok(UpdateDeadline::Interrupt)
                }
                // Still within its time: let other tasks run, check again next tick.
                _ => Ok(UpdateDeadline::Yield(1)),
            }
        });
        store.data_mut().clock = Some((Instant::now(), call_timeout));
        store.set_epoch_deadline(1);
        let instantiated = pre.instantiate_async(&mut store).await;
        store.data_mut().clock = None;
        match instantiated {
            Ok(bindings) => Ok(Instance { store, bindings }),
            Err(error) => {
                let mut fault = classify(&mut store, error);
                fault.message = format!("instantiating plugin: {}", fault.message);
                Err(fault)
            }
        }
    }

    /// Starts the clock for one call.
    pub(crate) fn arm(&mut self, timeout: Duration) {
        self.store.data_mut().clock = Some((Instant::now(), timeout));
        self.store.set_epoch_deadline(1);
    }

    /// Stops the clock after a call returned normally.
    pub(crate) fn disarm(&mut self) {
        self.store.data_mut().clock = None;
    }

    /// Turns a wasmtime error from a call into a classified fault. The instance must be dropped.
    pub(crate) fn fault(mut self, error: wasmtime::Error) -> Fault {
        classify(&mut self.store, error)
    }
}

fn classify(store: &mut Store<HostState>, error: wasmtime::Error) -> Fault {
    let state = store.data();
    let stderr = String::from_utf8_lossy(&state.stderr.contents())
        .trim()
        .to_owned();
    let (kind, mut message) = if state.deadline_hit {
        let timeout = state.clock.map(|(_, t)| t).unwrap_or_default();
        (
            FaultKind::Deadline,
            format!(
                "plugin call exceeded its deadline of {} ms",
                timeout.as_millis()
            ),
        )
    } else if state.memory.hit {
        (
            FaultKind::MemoryLimit,
            format!(
                "plugin exceeded its memory limit of {} bytes",
                state.memory.max_bytes
            ),
        )
    } else if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        (FaultKind::Trap, format!("plugin trapped: {trap}"))
    } else {
        (FaultKind::Trap, format!("plugin call failed: {error:#}"))
    };
    if !stderr.is_empty() {
        message.push_str(": ");
        message.push_str(&stderr);
    }
    Fault { kind, message }
}
