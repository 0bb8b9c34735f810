//! The plugin runtime of aigw. It owns everything wasmtime: the one engine configuration (pooling
//! allocator, epoch interruption, per-instance memory cap), the bindings generated from the
//! `aigw:plugin` WIT package for both worlds (`provider-plugin`, `tool-plugin`), the host imports
//! (`log`, `outbound` through `aigw-egress`, `memory` through a [`MemoryStore`]), each acting only
//! through the per-call [`CallContext`], and a warm instance pool per plugin so that a call costs
//! microseconds, not a fresh instantiation. A component's world and WIT version are read from its
//! bytes before it is compiled ([`inspect`]), so a plugin of the wrong kind or an unsupported
//! version is refused in microseconds; compiled components can be cached on disk across
//! restarts ([`RuntimeOptions::compile_cache`]). Provider plugins ([`Plugin`]) translate requests;
//! tool plugins ([`ToolPlugin`]) offer tools to agents. A plugin that traps, runs past its
//! deadline or exceeds its memory cap fails that one call with a classified [`Fault`]; its
//! instance is discarded and the runtime keeps serving.

mod bindings;
mod calls;
mod context;
mod convert;
mod decoders;
mod engine;
mod imports;
mod inspect;
mod instance;
mod load;
mod plugin;
mod pool;
mod spans;
mod state;
mod stderr;
mod tool;
mod types;
mod versions;

pub use calls::{CALL_DURATION_BOUNDS_US, CallStats};
pub use context::CallContext;
pub use decoders::DECODERS_PER_INSTANCE;
pub use engine::{CacheStats, EPOCH_TICK, Limits, Runtime, RuntimeOptions};
pub use imports::Services;
pub use imports::memory::{
    MemoryFuture, MemoryLimits, MemoryQuota, MemoryScope, MemoryStore, NO_NAMESPACE, NO_STORE,
};
pub use imports::outbound::{NO_EGRESS, OutboundLimits};
pub use inspect::{ComponentFacts, WorldKind, digest, inspect};
pub use load::{LoadedPlugin, load};
pub use plugin::{LoadError, MAX_STREAM_LINE, Plugin, PluginTarget, StreamDecoder};
pub use tool::ToolPlugin;
pub use types::{
    Chunk, Completion, Descriptor, Failure, Follow, HttpRequest, HttpResponse, MemoryEntry,
    MemoryError, MemoryItem, MemoryPut, MemorySearch, MemorySearchHit, ResponseHead, Step,
    StreamEnd, ToolDescriptor, ToolSpec, ToolTarget, ToolUpstream, Usage,
};
pub use versions::{SUPPORTED_WIT_VERSIONS, WIT_PACKAGE, is_supported};

/// How a plugin call went wrong inside the sandbox (not an upstream failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The guest trapped: a panic, an abort, an invalid operation.
    Trap,
    /// The call ran past its deadline and was interrupted.
    Deadline,
    /// The guest tried to grow its memory past the cap.
    MemoryLimit,
    /// No instance could be made: the gateway's own limit on instances (or fiber stacks) is
    /// reached. Nothing about the guest, the request or the target.
    Capacity,
    /// The instance hosting a stream decoder faulted on another stream's call, and took this
    /// decoder with it.
    Lost,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Deadline => "deadline",
            FaultKind::MemoryLimit => "memory_limit",
            FaultKind::Capacity => "capacity",
            FaultKind::Lost => "lost",
        }
    }

    /// Whether the fault is the gateway's own (its limits, a shared instance lost elsewhere)
    /// rather than the guest's answer to this call.
    pub fn is_gateways(self) -> bool {
        matches!(self, FaultKind::Capacity | FaultKind::Lost)
    }
}

/// A plugin call that faulted. The instance it ran on has been discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Fault {
    pub kind: FaultKind,
    pub message: String,
}

/// The result of a plugin call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The plugin classified an upstream failure.
    Failure(Failure),
    /// The plugin itself misbehaved.
    Fault(Fault),
}

impl From<Fault> for CallError {
    fn from(fault: Fault) -> Self {
        CallError::Fault(fault)
    }
}
