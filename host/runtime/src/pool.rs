//! The warm instance pool of one plugin, for either world.
//!
//! A fresh instance costs more than the call itself (groq: ~13 µs to instantiate against ~9 µs
//! for a warm encode + decode, `plugin_bench`; about a millisecond for Python or JS guests), so
//! each plugin keeps `Limits::warm_instances` instances in a lock-free [`ArrayQueue`] (taking
//! and returning one is on every call's path). A call pops one, or instantiates a fresh one when
//! all are busy; an instance goes back only after its call returned normally and was ended. A faulted instance is never returned (wasmtime
//! refuses to re-enter it): a fresh one takes its place at once, so faults do not drain the pool.
//! A call whose future is dropped mid-way (a client that went away, a hedged loser) drops its
//! instance with it; the pool refills on the next busy call.
//!
//! # Warm instances are shared across tenants
//!
//! One pool serves every caller of a plugin, and a guest's globals survive between calls on a
//! warm instance. Isolation between tenants is the host's job, kept by three rules:
//!
//! 1. **Capabilities live in host state, per call.** Whom a call is for (namespace, key, egress
//!    grants: [`CallContext`](crate::CallContext)) is set in the store when the call starts and
//!    cleared when it ends; every import acts only through it (no namespace: no memory; no grant:
//!    nothing leaves the host). A guest holds no handle, token or URL that would let an import act
//!    for anyone but the current caller, so nothing a guest remembers can make an import act for
//!    another tenant. Instantiation and `describe` run with the empty context, and an instance
//!    serves one call at a time (it is out of the pool while its call runs), so two callers'
//!    contexts never meet in one store.
//! 2. **Host-side per-instance state is per call too.** Import counters and the captured stderr
//!    (which ends up in fault messages, and those in client-facing errors) are emptied when a
//!    call ends, so a fault message carries only the failing call's own output.
//! 3. **A plugin keeps no per-request state in globals** (the SDK contract). What a guest does
//!    keep is data it was handed. A plugin is operator-installed code: trusted with the requests
//!    it translates, sandboxed against faults, not against itself.
//!
//! What rule 3 leaves open, stated so it is a choice and not an accident: a tool plugin that
//! *caches* what it fetched or read (an outbound response, a memory value) in a global could
//! hand one tenant's data, obtained under that tenant's grants or namespace, to a later tenant
//! who has neither (`tests/tools.rs` shows it with a guest that keeps what its static
//! constructor read: Rust runs constructors at an instance's first export call, so on a fresh
//! instance that is a caller's call, and the import rightly acts for that caller). The host cannot see guest globals, so it cannot prevent this; only a fresh
//! instance per call (or per tenant) would. That costs an instantiation per call (tens of µs for
//! a Rust guest, ~1 ms for Python or JS), small next to the network round trip a tool call
//! usually makes, and is the remedy if an operator must run tool plugins it does not trust with
//! cross-tenant data. Provider plugins receive nothing per caller but the request they
//! translate, so sharing their warm instances adds no capability to leak, only data.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::Fault;
use crate::context::CallContext;
use crate::engine::Runtime;
use crate::instance::{Instance, World};

pub(crate) struct Pool<W: World> {
    runtime: Arc<Runtime>,
    pre: W::Pre,
    /// The plugin's name, for logs and the instances' `log` import.
    plugin: Arc<str>,
    warm: ArrayQueue<Instance<W>>,
}

impl<W: World> Pool<W> {
    /// Whether the plugin was compiled for the engine with the component model's async ABI
    /// (see [`Runtime`]): its calls go through wasmtime's task machinery.
    pub(crate) fn async_abi(&self) -> bool {
        W::engine(&self.pre).get_concurrency_support()
    }

    /// An empty pool; [`Pool::fill`] warms it.
    pub(crate) fn new(runtime: &Arc<Runtime>, pre: W::Pre, plugin: Arc<str>) -> Pool<W> {
        Pool {
            runtime: Arc::clone(runtime),
            warm: ArrayQueue::new(runtime.limits.warm_instances.max(1)),
            pre,
            plugin,
        }
    }

    /// Instantiates until `Limits::warm_instances` are warm.
    pub(crate) async fn fill(&self) -> Result<(), Fault> {
        while self.warm.len() < self.runtime.limits.warm_instances {
            let instance = self.instantiate().await?;
            if self.warm.push(instance).is_err() {
                break;
            }
        }
        Ok(())
    }

    /// The same pool under the plugin's described name (a provider names itself only once its
    /// first instance answered `describe`).
    pub(crate) fn renamed(self, plugin: Arc<str>) -> Pool<W> {
        Pool { plugin, ..self }
    }

    pub(crate) fn plugin(&self) -> &Arc<str> {
        &self.plugin
    }

    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Warm instances ready right now.
    pub(crate) fn warm(&self) -> usize {
        self.warm.len()
    }

    /// A fresh instance, not taken from the pool.
    pub(crate) async fn instantiate(&self) -> Result<Instance<W>, Fault> {
        let limits = &self.runtime.limits;
        Instance::new(
            &self.pre,
            Arc::clone(&self.plugin),
            limits.memory_bytes,
            limits.instantiate_timeout,
            Arc::clone(&self.runtime.services),
        )
        .await
    }

    /// An instance out of the pool: a warm one, or a fresh one when all are busy (tens of µs;
    /// it joins the pool when given back if there is room).
    pub(crate) async fn take(&self) -> Result<Instance<W>, Fault> {
        match self.warm.pop() {
            Some(instance) => Ok(instance),
            None => self.instantiate().await,
        }
    }

    /// An instance with a call begun on it: deadline armed, context set.
    pub(crate) async fn begin(&self, call: Option<CallContext>) -> Result<Instance<W>, Fault> {
        let mut instance = self.take().await?;
        instance.begin(self.runtime.limits.call_timeout, call);
        Ok(instance)
    }

    /// Ends the call begun by [`Pool::begin`]: a normal return ends it and pools the instance,
    /// a fault replaces the instance.
    pub(crate) async fn finish<T>(
        &self,
        mut instance: Instance<W>,
        result: wasmtime::Result<T>,
    ) -> Result<T, Fault> {
        match result {
            Ok(answer) => {
                instance.end();
                self.release(instance);
                Ok(answer)
            }
            Err(error) => Err(self.discard(instance, error).await),
        }
    }

    /// Returns an instance whose call has ended. A full pool means the burst is over: the extra
    /// instance is dropped.
    pub(crate) fn release(&self, instance: Instance<W>) {
        let _ = self.warm.push(instance);
    }

    /// Classifies a fault, drops the poisoned instance (wasmtime refuses to re-enter it) and
    /// puts a fresh one in its place, so faults do not drain the warm pool.
    pub(crate) async fn discard(&self, instance: Instance<W>, error: wasmtime::Error) -> Fault {
        let fault = instance.fault(error);
        tracing::warn!(plugin = %self.plugin, kind = fault.kind.as_str(), "{}", fault.message);
        if let Ok(fresh) = self.instantiate().await {
            self.release(fresh);
        }
        fault
    }
}
