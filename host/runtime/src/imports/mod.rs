//! The host imports plugins link against, one module per WIT interface. Each module owns its
//! link step (`add_to_linker`), its per-call state (reset when a call ends) and its grant check
//! (what it asks of the call's [`CallContext`](crate::CallContext) before acting).
//!
//! A world's linker is assembled here from the modules it imports, so a plugin can only link
//! what its world offers: a provider plugin that imports `outbound` is refused at load.

pub(crate) mod log;
pub(crate) mod memory;
pub(crate) mod outbound;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::types;
use crate::state::HostState;

use self::memory::{MemoryLimits, MemoryStore};
use self::outbound::OutboundLimits;

/// What the host offers the imports of a runtime's tool plugins. The default offers nothing: no
/// egress (every send fails), no memory store (every memory operation fails).
#[derive(Default)]
pub struct Services {
    /// The egress tool plugins' requests go through: the same one the server uses.
    pub egress: Option<aigw_egress::Egress>,
    pub outbound_limits: OutboundLimits,
    pub memory: Option<Arc<dyn MemoryStore>>,
    pub memory_limits: MemoryLimits,
}

impl Services {
    /// Refuses settings that would fail every call later: an egress without a client for the
    /// outbound connect timeout.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(egress) = &self.egress {
            let wanted = self.outbound_limits.connect_timeout;
            if !egress.connect_timeouts().any(|t| t == wanted) {
                return Err(format!(
                    "the egress has no client for the outbound connect timeout of {} ms",
                    wanted.as_millis()
                ));
            }
        }
        Ok(())
    }
}

/// The `provider-plugin` world's imports: `log` (and the empty WASI context std needs).
pub(crate) fn link_provider(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link_common(linker)
}

/// The `tool-plugin` world's imports: `log`, `outbound`, `memory`.
pub(crate) fn link_tool(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link_common(linker)?;
    outbound::add_to_linker(linker)?;
    memory::add_to_linker(linker)
}

fn link_common(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // Rust guests import wasi:cli/io through std even when they do no I/O; the contexts we
    // give them are empty (no files, env, network), so linking WASI grants nothing.
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    log::add_to_linker(linker)
}

/// `types` holds only type definitions; its host trait has nothing to implement.
impl types::Host for HostState {}
