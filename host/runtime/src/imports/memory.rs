//! The `memory` import: key-value entries and session histories a tool plugin shares across
//! calls, kept by a [`MemoryStore`] the host configures and scoped to the call's namespace.
//!
//! Grant check: a call may touch memory only if its [`CallContext`] names a namespace, and every
//! operation is confined to that namespace (the guest names keys and sessions, never the
//! namespace). With no store configured every operation answers
//! [`NO_STORE`]; with no namespace, [`NO_NAMESPACE`]. The store is a seam: aigw ships none yet
//! (a persistent one comes later), and the runtime never pretends to remember.
//!
//! Per-call limits ([`MemoryLimits`], defaults in brackets): operations per call [256], key and
//! session name length [512 bytes], value and message content size [64 KiB], messages per
//! history read [100], time one operation may wait on the store [2 s]. That wait does not count
//! against the call's deadline, which bounds the guest's own work.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker};

use crate::bindings::tool::aigw::plugin::memory::{self, Message};
use crate::context::CallContext;
use crate::convert;
use crate::imports::Services;
use crate::state::{Clock, HostState};
use crate::types::MemoryMessage;

/// What every memory operation answers when the host has no store.
pub const NO_STORE: &str = "memory is not available: no store is configured";
/// What every memory operation answers when the call's context names no namespace.
pub const NO_NAMESPACE: &str = "no memory namespace granted to this call";

/// A store operation in flight; its error is the message the plugin sees.
pub type MemoryFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Where tool plugins' memory lives. Every method names the namespace: the runtime passes the
/// call's own, so an implementation keeps namespaces apart and nothing else.
pub trait MemoryStore: Send + Sync + 'static {
    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> MemoryFuture<'a, Option<String>>;
    /// Stores `value` under `key`, forgotten after `ttl` if given.
    fn set<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: String,
        ttl: Option<Duration>,
    ) -> MemoryFuture<'a, ()>;
    /// Removes `key`; whether it was there.
    fn delete<'a>(&'a self, namespace: &'a str, key: &'a str) -> MemoryFuture<'a, bool>;
    /// The last `limit` messages of `session`, oldest first.
    fn history<'a>(
        &'a self,
        namespace: &'a str,
        session: &'a str,
        limit: u32,
    ) -> MemoryFuture<'a, Vec<MemoryMessage>>;
    fn append<'a>(
        &'a self,
        namespace: &'a str,
        session: &'a str,
        message: MemoryMessage,
    ) -> MemoryFuture<'a, ()>;
}

/// Bounds on what one call may ask of memory.
#[derive(Debug, Clone)]
pub struct MemoryLimits {
    pub operations_per_call: u32,
    pub key_bytes: usize,
    pub value_bytes: usize,
    pub history_messages: u32,
    /// How long one operation may wait on the store before it fails.
    pub operation_timeout: Duration,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            operations_per_call: 256,
            key_bytes: 512,
            value_bytes: 64 << 10,
            history_messages: 100,
            operation_timeout: Duration::from_secs(2),
        }
    }
}

/// Operations made by the running call.
#[derive(Debug, Default)]
pub(crate) struct CallState {
    operations: u32,
}

impl CallState {
    pub(crate) fn end_call(&mut self) {
        self.operations = 0;
    }
}

/// What the `memory` import sees of the store: the services, the caller, the clock, its counter.
pub(crate) struct MemoryHost<'a> {
    services: &'a Services,
    call: Option<&'a CallContext>,
    clock: &'a mut Option<Clock>,
    state: &'a mut CallState,
}

struct MemoryImport;

impl HasData for MemoryImport {
    type Data<'a> = MemoryHost<'a>;
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    memory::add_to_linker::<HostState, MemoryImport>(linker, |s| MemoryHost {
        services: &s.services,
        call: s.call.as_ref(),
        clock: &mut s.clock,
        state: &mut s.memory,
    })
}

/// A store confined to one namespace: what an operation gets once the grant check passed.
struct Scope<'a> {
    store: &'a dyn MemoryStore,
    namespace: &'a str,
}

impl<'a> MemoryHost<'a> {
    /// The grant check, then the per-call budget: the store and the call's namespace. It comes
    /// before any check of the arguments, so a call without a store or a namespace hears that,
    /// whatever it asked. The scope
    /// borrows the services and the context, not the host, so the clock stays usable.
    fn scope(&mut self) -> Result<Scope<'a>, String> {
        let services: &'a Services = self.services;
        let store = services.memory.as_deref().ok_or(NO_STORE)?;
        let namespace = self
            .call
            .and_then(|c| c.namespace.as_deref())
            .ok_or(NO_NAMESPACE)?;
        let limit = services.memory_limits.operations_per_call;
        if self.state.operations >= limit {
            return Err(format!("memory: more than {limit} operations in one call"));
        }
        self.state.operations += 1;
        Ok(Scope { store, namespace })
    }

    fn check_name(&self, what: &str, name: &str) -> Result<(), String> {
        let max = self.services.memory_limits.key_bytes;
        if name.is_empty() || name.len() > max {
            return Err(format!("memory: a {what} must be 1 to {max} bytes long"));
        }
        Ok(())
    }

    fn check_value(&self, what: &str, value: &str) -> Result<(), String> {
        let max = self.services.memory_limits.value_bytes;
        if value.len() > max {
            return Err(format!(
                "memory: {what} of {} bytes is over the limit of {max}",
                value.len()
            ));
        }
        Ok(())
    }

    /// Runs a store operation within its own timeout, without charging its wait to the call's
    /// deadline.
    async fn waited<T>(&mut self, operation: MemoryFuture<'_, T>) -> Result<T, String> {
        let timeout = self.services.memory_limits.operation_timeout;
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, operation)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "memory: the store did not answer within {} ms",
                    timeout.as_millis()
                ))
            });
        if let Some(clock) = self.clock.as_mut() {
            clock.exclude(started.elapsed());
        }
        result
    }
}

impl memory::Host for MemoryHost<'_> {
    async fn get(&mut self, key: String) -> Result<Option<String>, String> {
        let scope = self.scope()?;
        self.check_name("key", &key)?;
        self.waited(scope.store.get(scope.namespace, &key)).await
    }

    async fn set(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: Option<u32>,
    ) -> Result<(), String> {
        let scope = self.scope()?;
        self.check_name("key", &key)?;
        self.check_value("a value", &value)?;
        let ttl = ttl_seconds.map(|s| Duration::from_secs(u64::from(s)));
        self.waited(scope.store.set(scope.namespace, &key, value, ttl))
            .await
    }

    async fn delete(&mut self, key: String) -> Result<bool, String> {
        let scope = self.scope()?;
        self.check_name("key", &key)?;
        self.waited(scope.store.delete(scope.namespace, &key)).await
    }

    async fn history(&mut self, session: String, limit: u32) -> Result<Vec<Message>, String> {
        let scope = self.scope()?;
        self.check_name("session", &session)?;
        let limit = limit.min(self.services.memory_limits.history_messages);
        let messages = self
            .waited(scope.store.history(scope.namespace, &session, limit))
            .await?;
        Ok(messages.into_iter().map(convert::to_wit_message).collect())
    }

    async fn append(&mut self, session: String, message: Message) -> Result<(), String> {
        let scope = self.scope()?;
        self.check_name("session", &session)?;
        self.check_value("a message", &message.content)?;
        let message = convert::memory_message(message);
        self.waited(scope.store.append(scope.namespace, &session, message))
            .await
    }
}
