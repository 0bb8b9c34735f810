//! Tool plugins' memory: the runtime's [`MemoryStore`] over the process's [`Store`], so what a
//! plugin writes is what agents read over HTTP and back. The runtime checked the call's limits
//! and hands each operation its [`MemoryScope`] (the call's namespace, the plugin, its quota);
//! here it becomes the store's types: the plugin is recorded as the agent `plugin:<name>` on
//! what it writes, a plugin's items are normalised (and redacted) exactly as a client's are over HTTP, and
//! each write is checked against the plugin's quota in the write's own transaction.
//!
//! Errors become the plugin's [`MemoryError`]: a refused argument is `invalid` with the store's
//! message, a busy or closed store `unavailable`, and any other store failure `unavailable`
//! too, its detail logged and not shown (as over HTTP).

use std::sync::Arc;

use aigw_memory::conversations::{self, ConversationError, NewItem};
use aigw_memory::entries::{self, Entry, EntryError, EntryPath, Index, Put, Search};
use aigw_memory::{Namespace, Quota, QuotaExceeded, Store, StoreError};
use aigw_runtime::{
    MemoryEntry, MemoryError, MemoryFuture, MemoryItem, MemoryPut, MemoryScope, MemorySearch,
    MemorySearchHit, MemoryStore,
};
use serde_json::{Map, Value};

use super::items;
use crate::redact::Redactor;

/// The memory tool plugins reach: the process's store.
pub struct PluginMemory {
    store: Arc<Store>,
    redactor: Redactor,
}

impl PluginMemory {
    pub fn new(store: Arc<Store>) -> PluginMemory {
        PluginMemory {
            store,
            redactor: Redactor::default(),
        }
    }

    /// Redacts `redactor`'s patterns in what plugins write, as the gateway does for clients.
    pub fn with_redaction(mut self, redactor: Redactor) -> PluginMemory {
        self.redactor = redactor;
        self
    }
}

/// The namespace the runtime handed over. The server sets it from a checked caller, so a bad
/// one is the host's fault, not the plugin's.
fn namespace(scope: &MemoryScope) -> Result<Namespace, MemoryError> {
    Namespace::parse(&scope.namespace).map_err(|e| {
        tracing::error!(plugin = %scope.plugin, error = %e, "a plugin call has a bad memory namespace");
        MemoryError::Unavailable("memory: this call's namespace is not usable".into())
    })
}

fn quota(scope: &MemoryScope) -> Quota {
    Quota {
        agent: scope.agent(),
        records: scope.quota.entries,
        bytes: scope.quota.bytes,
    }
}

fn object(json: &str, what: &str) -> Result<Map<String, Value>, MemoryError> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(MemoryError::Invalid(format!(
            "{what} must be a JSON object"
        ))),
        Err(e) => Err(MemoryError::Invalid(format!("{what} is not JSON: {e}"))),
    }
}

fn store_error(error: StoreError) -> MemoryError {
    match error {
        StoreError::Unavailable(detail) => {
            tracing::warn!(
                error = detail.as_str(),
                "memory store unavailable to a plugin"
            );
            MemoryError::Unavailable(
                "memory: the store is busy or its disk is full; retry later".into(),
            )
        }
        StoreError::Closed => MemoryError::Unavailable("memory: the store is shutting down".into()),
        other => {
            tracing::error!(error = %other, "memory store failed a plugin's operation");
            MemoryError::Unavailable(
                "memory: the store failed; the error is in the gateway's log".into(),
            )
        }
    }
}

fn entry_error(error: EntryError) -> MemoryError {
    match error {
        EntryError::Invalid { .. } => MemoryError::Invalid(format!("memory: {error}")),
        EntryError::TooLarge { .. } => MemoryError::TooLarge(format!("memory: {error}")),
        EntryError::Conflict { current, .. } => MemoryError::Conflict { current },
        EntryError::Store(e) => store_error(e),
    }
}

fn conversation_error(error: ConversationError) -> MemoryError {
    match error {
        ConversationError::ConversationNotFound => MemoryError::NotFound,
        ConversationError::ItemTooLarge { .. } => MemoryError::TooLarge(format!("memory: {error}")),
        ConversationError::Store(e) => store_error(e),
        other => MemoryError::Invalid(format!("memory: {other}")),
    }
}

fn quota_error(exceeded: QuotaExceeded) -> MemoryError {
    MemoryError::Quota(format!("memory: {exceeded}"))
}

fn millis(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

fn to_entry(entry: Entry) -> MemoryEntry {
    MemoryEntry {
        path: entry.path.labels().to_vec(),
        key: entry.key,
        value_json: Value::Object(entry.value).to_string(),
        version: entry.version,
        created_at_ms: millis(entry.created_at_ms),
        updated_at_ms: millis(entry.updated_at_ms),
        expires_at_ms: entry.expires_at_ms.map(millis),
        agent: entry.agent,
    }
}

fn to_item(item: conversations::Item) -> MemoryItem {
    MemoryItem {
        id: item.id,
        item_json: Value::Object(item.item).to_string(),
        agent: item.agent,
    }
}

impl PluginMemory {
    async fn get_entry(
        &self,
        scope: MemoryScope,
        path: Vec<String>,
        key: String,
    ) -> Result<Option<MemoryEntry>, MemoryError> {
        let namespace = namespace(&scope)?;
        let path = EntryPath::parse(path, "path").map_err(entry_error)?;
        let entry = entries::get(&self.store, &namespace, &path, &key, false)
            .await
            .map_err(entry_error)?;
        Ok(entry.map(to_entry))
    }

    async fn put_entry(&self, scope: MemoryScope, put: MemoryPut) -> Result<u64, MemoryError> {
        let namespace = namespace(&scope)?;
        let mut value = object(&put.value_json, "value")?;
        self.redactor.value(&mut value);
        let put = Put {
            path: EntryPath::parse(put.path, "path").map_err(entry_error)?,
            key: put.key,
            value,
            index: Index::default(),
            ttl: put.ttl,
            if_version: put.if_version,
            agent: Some(scope.agent()),
        };
        let stored = entries::put_within_quota(&self.store, &namespace, put, &quota(&scope))
            .await
            .map_err(entry_error)?
            .map_err(quota_error)?;
        Ok(stored.version)
    }

    async fn delete_entry(
        &self,
        scope: MemoryScope,
        path: Vec<String>,
        key: String,
    ) -> Result<bool, MemoryError> {
        let namespace = namespace(&scope)?;
        let path = EntryPath::parse(path, "path").map_err(entry_error)?;
        entries::delete(&self.store, &namespace, &path, &key)
            .await
            .map_err(entry_error)
    }

    async fn search_entries(
        &self,
        scope: MemoryScope,
        search: MemorySearch,
    ) -> Result<Vec<MemorySearchHit>, MemoryError> {
        let namespace = namespace(&scope)?;
        let filter = match &search.filter_json {
            Some(json) => {
                entries::parse_filter(&object(json, "filter")?, "filter").map_err(entry_error)?
            }
            None => Vec::new(),
        };
        let search = Search {
            prefix: EntryPath::prefix(search.path_prefix, "path_prefix").map_err(entry_error)?,
            filter,
            query: search.query,
            limit: search.limit as usize,
            offset: 0,
            refresh_ttl: false,
        };
        let hits = entries::search(&self.store, &namespace, search)
            .await
            .map_err(entry_error)?;
        Ok(hits
            .into_iter()
            .map(|hit| MemorySearchHit {
                entry: to_entry(hit.entry),
                score: hit.score,
            })
            .collect())
    }

    async fn read_items(
        &self,
        scope: MemoryScope,
        conversation: String,
        limit: u32,
    ) -> Result<Vec<MemoryItem>, MemoryError> {
        let namespace = namespace(&scope)?;
        let items = conversations::recent(&self.store, &namespace, &conversation, limit as usize)
            .await
            .map_err(store_error)?
            .ok_or(MemoryError::NotFound)?;
        Ok(items.into_iter().map(to_item).collect())
    }

    async fn add_items(
        &self,
        scope: MemoryScope,
        conversation: String,
        items_json: Vec<String>,
    ) -> Result<Vec<String>, MemoryError> {
        let namespace = namespace(&scope)?;
        let agent = scope.agent();
        let mut new = Vec::with_capacity(items_json.len());
        for (i, json) in items_json.iter().enumerate() {
            let value: Value = serde_json::from_str(json)
                .map_err(|e| MemoryError::Invalid(format!("memory: item {i} is not JSON: {e}")))?;
            let mut item = items::normalise(value, i)
                .map_err(|e| MemoryError::Invalid(format!("memory: {}", e.message)))?;
            self.redactor.item(&mut item);
            new.push(NewItem {
                item,
                agent: Some(agent.clone()),
            });
        }
        let stored = conversations::append_within_quota(
            &self.store,
            &namespace,
            &conversation,
            new,
            &quota(&scope),
        )
        .await
        .map_err(conversation_error)?
        .map_err(quota_error)?;
        Ok(stored.into_iter().map(|item| item.id).collect())
    }
}

impl MemoryStore for PluginMemory {
    fn get(
        &self,
        scope: MemoryScope,
        path: Vec<String>,
        key: String,
    ) -> MemoryFuture<'_, Option<MemoryEntry>> {
        Box::pin(self.get_entry(scope, path, key))
    }

    fn put(&self, scope: MemoryScope, put: MemoryPut) -> MemoryFuture<'_, u64> {
        Box::pin(self.put_entry(scope, put))
    }

    fn delete(&self, scope: MemoryScope, path: Vec<String>, key: String) -> MemoryFuture<'_, bool> {
        Box::pin(self.delete_entry(scope, path, key))
    }

    fn search(
        &self,
        scope: MemoryScope,
        search: MemorySearch,
    ) -> MemoryFuture<'_, Vec<MemorySearchHit>> {
        Box::pin(self.search_entries(scope, search))
    }

    fn list_items(
        &self,
        scope: MemoryScope,
        conversation: String,
        limit: u32,
    ) -> MemoryFuture<'_, Vec<MemoryItem>> {
        Box::pin(self.read_items(scope, conversation, limit))
    }

    fn append_items(
        &self,
        scope: MemoryScope,
        conversation: String,
        items_json: Vec<String>,
    ) -> MemoryFuture<'_, Vec<String>> {
        Box::pin(self.add_items(scope, conversation, items_json))
    }
}
