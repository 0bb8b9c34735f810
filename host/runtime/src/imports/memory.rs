//! The `memory` import: the gateway's key-value entries and conversation items, reached by a
//! tool plugin through a [`MemoryStore`] the host configures, scoped to the call's namespace.
//!
//! Grant check: a call may touch memory only if its [`CallContext`] names a namespace, and every
//! operation is confined to that namespace (the guest names paths, keys and conversations, never
//! the namespace). With no store configured every operation answers [`NO_STORE`]; with no
//! namespace, [`NO_NAMESPACE`] (both `unavailable`). The runtime does not know where memory lives:
//! the store is a trait the gateway implements over its database, so wasmtime and SQLite never
//! meet in one crate.
//!
//! Two kinds of bounds. Per call ([`MemoryLimits`], checked here before the store is asked):
//! operations per call, key/label/path/value/item/query sizes, items per append, what one read
//! returns, how long one operation may wait. Per plugin and namespace ([`MemoryQuota`]: entries
//! and bytes a plugin may hold in one namespace): only the store can count what is held, and two
//! calls may write at once, so the runtime hands the quota with each write ([`MemoryScope`]) and
//! the implementation enforces it atomically with the write. The time an operation waits on the
//! store is not charged to the call's deadline, which bounds the guest's own work.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker};

use crate::bindings::tool::aigw::plugin::memory::{self, Entry, Item, SearchHit};
use crate::context::CallContext;
use crate::convert;
use crate::imports::Services;
use crate::state::{Clock, HostState};
use crate::types::{
    MemoryEntry, MemoryError, MemoryItem, MemoryPut, MemorySearch, MemorySearchHit,
};

/// What every memory operation answers (as `unavailable`) when the host has no store.
pub const NO_STORE: &str = "memory is not available: no store is configured";
/// What every memory operation answers (as `unavailable`) when the call names no namespace.
pub const NO_NAMESPACE: &str = "no memory namespace granted to this call";

/// A store operation in flight.
pub type MemoryFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, MemoryError>> + Send + 'a>>;

/// Whom an operation acts for: the call's namespace, the plugin, and the plugin's quota there.
/// The runtime builds it from the call's context; a guest has no say in any of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryScope {
    /// The tenant namespace of the call; every read and write stays inside it.
    pub namespace: Arc<str>,
    /// The plugin's name (its file name without `.wasm`).
    pub plugin: Arc<str>,
    /// What the plugin may hold in this namespace; a write that would exceed it is refused.
    pub quota: MemoryQuota,
}

impl MemoryScope {
    /// The agent the store records on what this plugin writes: `plugin:<name>`. It is also what
    /// the quota counts: everything in the namespace last written by this agent.
    pub fn agent(&self) -> String {
        format!("plugin:{}", self.plugin)
    }
}

/// How much one plugin may hold in one namespace: entries (key-value entries and conversation
/// items it wrote) and their bytes (values' and items' JSON text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryQuota {
    pub entries: u64,
    pub bytes: u64,
}

impl Default for MemoryQuota {
    fn default() -> Self {
        MemoryQuota {
            entries: 10_000,
            bytes: 64 << 20,
        }
    }
}

/// Where tool plugins' memory lives. Every method gets the call's [`MemoryScope`], so an
/// implementation keeps namespaces apart, records the plugin as the writer, and enforces the
/// quota in the same transaction as each write. Arguments arrive checked against
/// [`MemoryLimits`]; what only the store knows (a value that is not a JSON object, a label with
/// `.`, a malformed filter) it answers with [`MemoryError::Invalid`].
pub trait MemoryStore: Send + Sync + 'static {
    /// The entry under `path` and `key`, unless missing or expired.
    fn get(
        &self,
        scope: MemoryScope,
        path: Vec<String>,
        key: String,
    ) -> MemoryFuture<'_, Option<MemoryEntry>>;
    /// Creates or replaces an entry; its new version. A failed compare-and-set is
    /// [`MemoryError::Conflict`], a write past the quota [`MemoryError::Quota`].
    fn put(&self, scope: MemoryScope, put: MemoryPut) -> MemoryFuture<'_, u64>;
    /// Removes an entry; whether there was one.
    fn delete(&self, scope: MemoryScope, path: Vec<String>, key: String) -> MemoryFuture<'_, bool>;
    fn search(
        &self,
        scope: MemoryScope,
        search: MemorySearch,
    ) -> MemoryFuture<'_, Vec<MemorySearchHit>>;
    /// The last `limit` items of a conversation, oldest first; [`MemoryError::NotFound`] when
    /// the conversation is not in the namespace.
    fn list_items(
        &self,
        scope: MemoryScope,
        conversation: String,
        limit: u32,
    ) -> MemoryFuture<'_, Vec<MemoryItem>>;
    /// Appends items (Responses items as JSON) to a conversation, all or none; their ids.
    fn append_items(
        &self,
        scope: MemoryScope,
        conversation: String,
        items_json: Vec<String>,
    ) -> MemoryFuture<'_, Vec<String>>;
}

/// Bounds on what one call may ask of memory, and the quota each plugin has per namespace.
#[derive(Debug, Clone)]
pub struct MemoryLimits {
    pub operations_per_call: u32,
    /// Longest entry key and conversation id, in bytes.
    pub key_bytes: usize,
    /// Longest path label, in bytes.
    pub label_bytes: usize,
    /// Most labels in a path.
    pub path_labels: usize,
    /// Largest entry value and conversation item (JSON text), in bytes.
    pub value_bytes: usize,
    /// Largest search query and filter (JSON text), in bytes.
    pub query_bytes: usize,
    /// Most items one `append-items` may add.
    pub items_per_append: usize,
    /// Most items one `list-items` returns.
    pub items_per_read: u32,
    /// Most hits one `search` returns.
    pub hits_per_search: u32,
    /// How long one operation may wait on the store before it fails.
    pub operation_timeout: Duration,
    /// What each plugin may hold in each namespace.
    pub quota: MemoryQuota,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            operations_per_call: 256,
            key_bytes: 1024,
            label_bytes: 256,
            path_labels: 16,
            value_bytes: 64 << 10,
            query_bytes: 4 << 10,
            items_per_append: 100,
            items_per_read: 100,
            hits_per_search: 100,
            operation_timeout: Duration::from_secs(2),
            quota: MemoryQuota::default(),
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

/// What the `memory` import sees of the store: the services, the plugin, the caller, the clock,
/// its counter.
pub(crate) struct MemoryHost<'a> {
    services: &'a Services,
    plugin: &'a Arc<str>,
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
        plugin: &s.plugin,
        call: s.call.as_ref(),
        clock: &mut s.clock,
        state: &mut s.memory,
    })
}

/// A store and the scope an operation acts in: what an operation gets once the grant check
/// passed.
struct Granted<'a> {
    store: &'a dyn MemoryStore,
    scope: MemoryScope,
}

impl<'a> MemoryHost<'a> {
    /// The grant check, then the per-call budget. It comes before any check of the arguments,
    /// so a call without a store or a namespace hears that, whatever it asked. The store is
    /// borrowed from the services, not the host, so the clock stays usable.
    fn grant(&mut self) -> Result<Granted<'a>, MemoryError> {
        let services: &'a Services = self.services;
        let unavailable = |why: &str| MemoryError::Unavailable(why.to_owned());
        let store = services
            .memory
            .as_deref()
            .ok_or_else(|| unavailable(NO_STORE))?;
        let namespace = self
            .call
            .and_then(|c| c.namespace.clone())
            .ok_or_else(|| unavailable(NO_NAMESPACE))?;
        let limit = services.memory_limits.operations_per_call;
        if self.state.operations >= limit {
            return Err(MemoryError::Quota(format!(
                "memory: more than {limit} operations in one call"
            )));
        }
        self.state.operations += 1;
        Ok(Granted {
            store,
            scope: MemoryScope {
                namespace,
                plugin: Arc::clone(self.plugin),
                quota: services.memory_limits.quota,
            },
        })
    }

    fn limits(&self) -> &MemoryLimits {
        &self.services.memory_limits
    }

    /// A key or conversation id: 1 to `key_bytes` bytes.
    fn check_name(&self, what: &str, name: &str) -> Result<(), MemoryError> {
        let max = self.limits().key_bytes;
        if name.is_empty() || name.len() > max {
            return Err(MemoryError::Invalid(format!(
                "memory: a {what} must be 1 to {max} bytes long"
            )));
        }
        Ok(())
    }

    /// A path of labels, each 1 to `label_bytes` bytes, at most `path_labels` of them; an
    /// entry's own path has at least one (a search prefix may be empty).
    fn check_path(&self, path: &[String], entry: bool) -> Result<(), MemoryError> {
        let limits = self.limits();
        if entry && path.is_empty() {
            return Err(MemoryError::Invalid(
                "memory: an entry's path needs at least one label".into(),
            ));
        }
        if path.len() > limits.path_labels {
            return Err(MemoryError::Invalid(format!(
                "memory: a path has at most {} labels, not {}",
                limits.path_labels,
                path.len()
            )));
        }
        if let Some(i) = path
            .iter()
            .position(|l| l.is_empty() || l.len() > limits.label_bytes)
        {
            return Err(MemoryError::Invalid(format!(
                "memory: path label {i} must be 1 to {} bytes long",
                limits.label_bytes
            )));
        }
        Ok(())
    }

    fn check_size(&self, what: &str, text: &str, max: usize) -> Result<(), MemoryError> {
        if text.len() > max {
            return Err(MemoryError::TooLarge(format!(
                "memory: {what} of {} bytes is over the limit of {max}",
                text.len()
            )));
        }
        Ok(())
    }

    /// Runs a store operation within its own timeout, without charging its wait to the call's
    /// deadline.
    async fn waited<T>(&mut self, operation: MemoryFuture<'_, T>) -> Result<T, MemoryError> {
        let timeout = self.limits().operation_timeout;
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, operation)
            .await
            .unwrap_or_else(|_| {
                Err(MemoryError::Unavailable(format!(
                    "memory: the store did not answer within {} ms",
                    timeout.as_millis()
                )))
            });
        if let Some(clock) = self.clock.as_mut() {
            clock.exclude(started.elapsed());
        }
        result
    }

    async fn get_entry(
        &mut self,
        path: Vec<String>,
        key: String,
    ) -> Result<Option<MemoryEntry>, MemoryError> {
        let granted = self.grant()?;
        self.check_path(&path, true)?;
        self.check_name("key", &key)?;
        self.waited(granted.store.get(granted.scope, path, key))
            .await
    }

    async fn put_entry(&mut self, put: MemoryPut) -> Result<u64, MemoryError> {
        let granted = self.grant()?;
        self.check_path(&put.path, true)?;
        self.check_name("key", &put.key)?;
        self.check_size("a value", &put.value_json, self.limits().value_bytes)?;
        self.waited(granted.store.put(granted.scope, put)).await
    }

    async fn delete_entry(&mut self, path: Vec<String>, key: String) -> Result<bool, MemoryError> {
        let granted = self.grant()?;
        self.check_path(&path, true)?;
        self.check_name("key", &key)?;
        self.waited(granted.store.delete(granted.scope, path, key))
            .await
    }

    async fn search_entries(
        &mut self,
        mut search: MemorySearch,
    ) -> Result<Vec<MemorySearchHit>, MemoryError> {
        let granted = self.grant()?;
        self.check_path(&search.path_prefix, false)?;
        let max = self.limits().query_bytes;
        if let Some(query) = &search.query {
            self.check_size("a query", query, max)?;
        }
        if let Some(filter) = &search.filter_json {
            self.check_size("a filter", filter, max)?;
        }
        search.limit = search.limit.min(self.limits().hits_per_search);
        if search.limit == 0 {
            return Ok(Vec::new());
        }
        self.waited(granted.store.search(granted.scope, search))
            .await
    }

    async fn read_items(
        &mut self,
        conversation: String,
        limit: u32,
    ) -> Result<Vec<MemoryItem>, MemoryError> {
        let granted = self.grant()?;
        self.check_name("conversation id", &conversation)?;
        let limit = limit.min(self.limits().items_per_read);
        self.waited(granted.store.list_items(granted.scope, conversation, limit))
            .await
    }

    async fn add_items(
        &mut self,
        conversation: String,
        items_json: Vec<String>,
    ) -> Result<Vec<String>, MemoryError> {
        let granted = self.grant()?;
        self.check_name("conversation id", &conversation)?;
        let most = self.limits().items_per_append;
        if items_json.is_empty() || items_json.len() > most {
            return Err(MemoryError::Invalid(format!(
                "memory: append 1 to {most} items at a time, not {}",
                items_json.len()
            )));
        }
        let max = self.limits().value_bytes;
        for (i, item) in items_json.iter().enumerate() {
            self.check_size(&format!("item {i}"), item, max)?;
        }
        self.waited(
            granted
                .store
                .append_items(granted.scope, conversation, items_json),
        )
        .await
    }
}

/// The WIT face of the operations above: generated types in, plain types to the store,
/// generated types out (through [`convert`]).
impl memory::Host for MemoryHost<'_> {
    async fn get(
        &mut self,
        path: Vec<String>,
        key: String,
    ) -> Result<Option<Entry>, memory::MemoryError> {
        let entry = self.get_entry(path, key).await;
        entry
            .map(|e| e.map(convert::to_wit_entry))
            .map_err(convert::to_wit_memory_error)
    }

    async fn put(
        &mut self,
        path: Vec<String>,
        key: String,
        value_json: String,
        ttl_seconds: Option<u32>,
        if_version: Option<u64>,
    ) -> Result<u64, memory::MemoryError> {
        let put = MemoryPut {
            path,
            key,
            value_json,
            ttl: ttl_seconds.map(|s| Duration::from_secs(u64::from(s))),
            if_version,
        };
        self.put_entry(put)
            .await
            .map_err(convert::to_wit_memory_error)
    }

    async fn delete(
        &mut self,
        path: Vec<String>,
        key: String,
    ) -> Result<bool, memory::MemoryError> {
        self.delete_entry(path, key)
            .await
            .map_err(convert::to_wit_memory_error)
    }

    async fn search(
        &mut self,
        path_prefix: Vec<String>,
        query: Option<String>,
        filter_json: Option<String>,
        limit: u32,
    ) -> Result<Vec<SearchHit>, memory::MemoryError> {
        let search = MemorySearch {
            path_prefix,
            query,
            filter_json,
            limit,
        };
        let hits = self.search_entries(search).await;
        hits.map(|h| h.into_iter().map(convert::to_wit_hit).collect())
            .map_err(convert::to_wit_memory_error)
    }

    async fn list_items(
        &mut self,
        conversation: String,
        limit: u32,
    ) -> Result<Vec<Item>, memory::MemoryError> {
        let items = self.read_items(conversation, limit).await;
        items
            .map(|i| i.into_iter().map(convert::to_wit_item).collect())
            .map_err(convert::to_wit_memory_error)
    }

    async fn append_items(
        &mut self,
        conversation: String,
        items_json: Vec<String>,
    ) -> Result<Vec<String>, memory::MemoryError> {
        self.add_items(conversation, items_json)
            .await
            .map_err(convert::to_wit_memory_error)
    }
}
