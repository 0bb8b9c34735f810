//! What the host keeps in each instance's store: the WASI context (empty but for stderr), the
//! memory cap, the per-call clock, the per-call context and each import's per-call state.
//!
//! Everything that belongs to one call (clock, context, import counters, stderr) is set by
//! [`HostState::begin_call`] and cleared by [`HostState::end_call`]; an instance whose call
//! faulted or was cancelled is dropped with its state, never returned to a pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::context::CallContext;
use crate::imports::{Services, log, memory, outbound};
use crate::stderr::StderrCapture;

pub(crate) struct HostState {
    /// The plugin's name, for log lines and fault messages.
    pub(crate) plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) stderr: StderrCapture,
    pub(crate) memory_cap: MemoryCap,
    /// Set while a call runs; the epoch callback interrupts the call once it is over time.
    pub(crate) clock: Option<Clock>,
    pub(crate) deadline_hit: bool,
    /// Who the running call is for. `None` outside a call and for provider calls: an import
    /// that needs a caller answers "not granted" rather than act for anyone.
    pub(crate) call: Option<CallContext>,
    /// What the host offers imports (egress, memory store, their limits); shared by instances.
    pub(crate) services: Arc<Services>,
    pub(crate) log: log::CallState,
    pub(crate) outbound: outbound::CallState,
    pub(crate) memory: memory::CallState,
}

/// The deadline of the running call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) started: Instant,
    pub(crate) timeout: Duration,
}

impl Clock {
    pub(crate) fn expired(&self) -> bool {
        self.started.elapsed() >= self.timeout
    }

    /// Moves the start forward by `waited`: time the host spent serving an import (an outbound
    /// request) is not the guest's, so a call's deadline bounds its own work. Host waits have
    /// their own limits.
    pub(crate) fn exclude(&mut self, waited: Duration) {
        self.started += waited;
    }
}

/// The per-instance memory cap, which records that it was hit: wasmtime reports a limiter error
/// as a plain error, not a `Trap`, so the flag is how the fault is classified.
pub(crate) struct MemoryCap {
    pub(crate) max_bytes: usize,
    pub(crate) hit: bool,
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

impl HostState {
    pub(crate) fn new(plugin: Arc<str>, memory_bytes: usize, services: Arc<Services>) -> HostState {
        let stderr = StderrCapture::default();
        // No files, env, args, sockets or stdin: Rust guests import wasi:cli through std even
        // when they do no I/O, and get nothing from it but a captured stderr.
        let wasi = WasiCtxBuilder::new().stderr(stderr.clone()).build();
        HostState {
            plugin,
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory_cap: MemoryCap {
                max_bytes: memory_bytes,
                hit: false,
            },
            clock: None,
            deadline_hit: false,
            call: None,
            services,
            log: log::CallState::default(),
            outbound: outbound::CallState::default(),
            memory: memory::CallState::default(),
        }
    }

    /// Starts one call: its deadline and whom it is for.
    pub(crate) fn begin_call(&mut self, timeout: Duration, call: Option<CallContext>) {
        self.clock = Some(Clock {
            started: Instant::now(),
            timeout,
        });
        self.call = call;
    }

    /// Ends a call that returned normally, so the next call on this instance starts from
    /// nothing: no deadline, no caller, no import counters, no stderr.
    pub(crate) fn end_call(&mut self) {
        self.clock = None;
        self.call = None;
        self.log.end_call(&self.plugin);
        self.outbound.end_call();
        self.memory.end_call();
        self.stderr.clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_a_call_forgets_its_caller_clock_and_stderr() {
        let mut state = HostState::new(Arc::from("p"), 1 << 20, Arc::new(Services::default()));
        let caller = CallContext {
            namespace: Some(Arc::from("tenant-a")),
            key: Some(Arc::from("key-a")),
            grants: aigw_egress::Grants::none(),
            ..CallContext::default()
        };
        state.begin_call(Duration::from_millis(100), Some(caller.clone()));
        assert!(state.clock.is_some());
        assert_eq!(
            state.call.as_ref().and_then(|c| c.namespace.as_deref()),
            Some("tenant-a")
        );
        state.stderr.append(b"panicked");
        state.end_call();
        assert!(state.clock.is_none());
        assert!(state.call.is_none(), "an idle instance holds no caller");
        assert_eq!(state.stderr.text(), "");
        // The caller's namespace is no longer shared with the idle instance.
        let namespace = caller.namespace.as_ref().map(Arc::strong_count);
        assert_eq!(namespace, Some(1));
    }
}
