//! One plugin instance of either world: its store (with the [`HostState`]), its typed bindings,
//! the start and end of each call on it, and the classification of a call that faulted. A call
//! that faults leaves the instance poisoned; callers drop it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, Store, UpdateDeadline};

use crate::bindings::provider::{ProviderPlugin, ProviderPluginPre};
use crate::bindings::tool::{ToolPlugin, ToolPluginPre};
use crate::context::CallContext;
use crate::imports::Services;
use crate::state::HostState;
use crate::{Fault, FaultKind};

/// A world's generated bindings, instantiable from its pre-linked component.
pub(crate) trait World: Sized + Send + 'static {
    type Pre: Send + Sync;

    fn engine(pre: &Self::Pre) -> &Engine;

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send + 'a;
}

impl World for ProviderPlugin {
    type Pre = ProviderPluginPre<HostState>;

    fn engine(pre: &Self::Pre) -> &Engine {
        pre.engine()
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send + 'a {
        pre.instantiate_async(store)
    }
}

impl World for ToolPlugin {
    type Pre = ToolPluginPre<HostState>;

    fn engine(pre: &Self::Pre) -> &Engine {
        pre.engine()
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send + 'a {
        pre.instantiate_async(store)
    }
}

pub(crate) struct Instance<W> {
    pub(crate) store: Store<HostState>,
    pub(crate) bindings: W,
}

impl<W: World> Instance<W> {
    pub(crate) async fn new(
        pre: &W::Pre,
        plugin: Arc<str>,
        memory_bytes: usize,
        instantiate_timeout: Duration,
        services: Arc<Services>,
    ) -> Result<Instance<W>, Fault> {
        let state = HostState::new(plugin, memory_bytes, services);
        let mut store = Store::new(W::engine(pre), state);
        store.limiter(|s| &mut s.memory_cap);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            match state.clock {
                Some(clock) if clock.expired() => {
                    state.deadline_hit = true;
                    Ok(UpdateDeadline::Interrupt)
                }
                // Still within its time: let other tasks run, check again next tick.
                _ => Ok(UpdateDeadline::Yield(1)),
            }
        });
        // Instantiation runs guest code (start functions) under a deadline too, and with the
        // empty context: an import used while instantiating acts for nobody.
        store.data_mut().begin_call(instantiate_timeout, None);
        store.set_epoch_deadline(1);
        match W::instantiate(pre, &mut store).await {
            Ok(bindings) => {
                store.data_mut().end_call();
                Ok(Instance { store, bindings })
            }
            Err(error) => {
                let mut fault = classify(&mut store, error);
                fault.message = format!("instantiating plugin: {}", fault.message);
                Err(fault)
            }
        }
    }
}

impl<W> Instance<W> {
    /// Starts one call: its deadline and whom it is for (`None` for provider calls).
    pub(crate) fn begin(&mut self, timeout: Duration, call: Option<CallContext>) {
        self.store.data_mut().begin_call(timeout, call);
        self.store.set_epoch_deadline(1);
    }

    /// Ends a call that returned normally: clock stopped, context and per-call state cleared.
    pub(crate) fn end(&mut self) {
        self.store.data_mut().end_call();
    }

    /// Turns a wasmtime error from a call into a classified fault. The instance must be dropped.
    pub(crate) fn fault(mut self, error: wasmtime::Error) -> Fault {
        classify(&mut self.store, error)
    }
}

fn classify(store: &mut Store<HostState>, error: wasmtime::Error) -> Fault {
    // The pooling allocator's slots (instances, memories, fiber stacks) are all taken: the
    // gateway's own limit, not anything the guest did.
    if let Some(limit) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return Fault {
            kind: FaultKind::Capacity,
            message: format!("no plugin instance could be made: {limit} (plugins.max_instances)"),
        };
    }
    let state = store.data();
    let stderr = state.stderr.text();
    let (kind, mut message) = if state.deadline_hit {
        let timeout = state.clock.map(|c| c.timeout).unwrap_or_default();
        (
            FaultKind::Deadline,
            format!("plugin exceeded its deadline of {} ms", timeout.as_millis()),
        )
    } else if state.memory_cap.hit {
        (
            FaultKind::MemoryLimit,
            format!(
                "plugin exceeded its memory limit of {} bytes",
                state.memory_cap.max_bytes
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
