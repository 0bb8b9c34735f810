//! The plugin runtime of aigw. It owns everything wasmtime: the one engine configuration (pooling
//! allocator, epoch interruption, per-instance memory cap), the bindings generated from the
//! `aigw:plugin` WIT package, loading and validating provider plugins, and a small pool of warm
//! instances per plugin so that a call costs microseconds, not a fresh instantiation. A plugin that
//! traps, runs past its deadline or exceeds its memory cap fails that one call with a classified
//! [`Fault`]; its instance is discarded and the runtime keeps serving.

mod bindings;
mod convert;
mod engine;
mod instance;
mod plugin;
mod types;

pub use engine::{EPOCH_TICK, Limits, Runtime};
pub use plugin::{LoadError, Plugin, PluginTarget, StreamDecoder};
pub use types::{
    Chunk, Completion, CredentialPlacement, Descriptor, Failure, HttpRequest, HttpResponse, Step,
    Usage,
};

/// How a plugin call went wrong inside the sandbox (not an upstream failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The guest trapped: a panic, an abort, an invalid operation.
    Trap,
    /// The call ran past its deadline and was interrupted.
    Deadline,
    /// The guest tried to grow its memory past the cap.
    MemoryLimit,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Deadline => "deadline",
            FaultKind::MemoryLimit => "memory_limit",
        }
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
