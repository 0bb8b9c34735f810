//! A [`MemoryStore`] kept in maps, for the runtime's tests: it keys everything by the namespace
//! the runtime hands it, so a test that sees one tenant's data from another would catch the
//! runtime passing the wrong one; it enforces the quota it is handed the way the real store
//! does (everything the plugin's agent wrote in the namespace, counted with the write), and it
//! records every scope it saw.

#![allow(dead_code)] // each test file uses part of it

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aigw_runtime::{
    MemoryEntry, MemoryError, MemoryFuture, MemoryItem, MemoryPut, MemoryScope, MemorySearch,
    MemorySearchHit, MemoryStore,
};
use serde_json::Value;

#[derive(Default)]
pub struct FakeMemory {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (namespace, path, key) → entry.
    entries: BTreeMap<(String, Vec<String>, String), MemoryEntry>,
    /// (namespace, conversation) → items, oldest first.
    conversations: HashMap<(String, String), Vec<MemoryItem>>,
    next_item: u64,
    scopes: Vec<MemoryScope>,
}

impl State {
    /// What `agent` holds in `namespace`: (records, bytes), leaving out the entry `except`.
    fn held(
        &self,
        namespace: &str,
        agent: &str,
        except: Option<&(String, Vec<String>, String)>,
    ) -> (u64, u64) {
        let mut held = (0, 0);
        for (id, entry) in &self.entries {
            if id.0 == namespace && entry.agent.as_deref() == Some(agent) && Some(id) != except {
                held.0 += 1;
                held.1 += entry.value_json.len() as u64;
            }
        }
        for ((ns, _), items) in &self.conversations {
            for item in items
                .iter()
                .filter(|i| ns == namespace && i.agent.as_deref() == Some(agent))
            {
                held.0 += 1;
                held.1 += item.item_json.len() as u64;
            }
        }
        held
    }

    fn check_quota(
        &self,
        scope: &MemoryScope,
        held: (u64, u64),
        more: (u64, u64),
    ) -> Result<(), MemoryError> {
        let (entries, bytes) = (held.0 + more.0, held.1 + more.1);
        if entries > scope.quota.entries || bytes > scope.quota.bytes {
            return Err(MemoryError::Quota(format!(
                "plugin {} would hold {entries} entries and {bytes} bytes in this namespace \
                 (quota: {} and {})",
                scope.plugin, scope.quota.entries, scope.quota.bytes
            )));
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn object(json: &str, what: &str) -> Result<serde_json::Map<String, Value>, MemoryError> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(MemoryError::Invalid(format!(
            "{what} must be a JSON object"
        ))),
    }
}

impl FakeMemory {
    /// Creates an empty conversation (plugins only append to conversations made over HTTP).
    pub fn create_conversation(&self, namespace: &str, id: &str) {
        let mut state = self.state.lock().unwrap();
        state
            .conversations
            .insert((namespace.to_owned(), id.to_owned()), Vec::new());
    }

    /// Every scope an operation reached the store with, in order.
    pub fn scopes(&self) -> Vec<MemoryScope> {
        self.state.lock().unwrap().scopes.clone()
    }

    /// The entries of `namespace`, as (path, key) pairs.
    pub fn keys(&self, namespace: &str) -> Vec<(Vec<String>, String)> {
        let state = self.state.lock().unwrap();
        state
            .entries
            .keys()
            .filter(|(ns, _, _)| ns == namespace)
            .map(|(_, path, key)| (path.clone(), key.clone()))
            .collect()
    }

    fn with<T: Send + 'static>(
        &self,
        scope: MemoryScope,
        operation: impl FnOnce(&mut State, &MemoryScope) -> Result<T, MemoryError>,
    ) -> MemoryFuture<'_, T> {
        let mut state = self.state.lock().unwrap();
        let result = operation(&mut state, &scope);
        state.scopes.push(scope);
        Box::pin(async move { result })
    }
}

impl MemoryStore for FakeMemory {
    fn get(
        &self,
        scope: MemoryScope,
        path: Vec<String>,
        key: String,
    ) -> MemoryFuture<'_, Option<MemoryEntry>> {
        self.with(scope, |state, scope| {
            let id = (scope.namespace.to_string(), path, key);
            Ok(state.entries.get(&id).cloned())
        })
    }

    fn put(&self, scope: MemoryScope, put: MemoryPut) -> MemoryFuture<'_, u64> {
        self.with(scope, |state, scope| {
            object(&put.value_json, "a value")?;
            let id = (
                scope.namespace.to_string(),
                put.path.clone(),
                put.key.clone(),
            );
            let current = state.entries.get(&id).map_or(0, |e| e.version);
            if let Some(wanted) = put.if_version
                && wanted != current
            {
                return Err(MemoryError::Conflict { current });
            }
            let agent = scope.agent();
            let held = state.held(&scope.namespace, &agent, Some(&id));
            state.check_quota(scope, held, (1, put.value_json.len() as u64))?;
            let now = now_ms();
            let created = state.entries.get(&id).map_or(now, |e| e.created_at_ms);
            let entry = MemoryEntry {
                path: put.path,
                key: put.key,
                value_json: put.value_json,
                version: current + 1,
                created_at_ms: created,
                updated_at_ms: now,
                expires_at_ms: put.ttl.map(|ttl| now + ttl.as_millis() as u64),
                agent: Some(agent),
            };
            state.entries.insert(id, entry);
            Ok(current + 1)
        })
    }

    fn delete(&self, scope: MemoryScope, path: Vec<String>, key: String) -> MemoryFuture<'_, bool> {
        self.with(scope, |state, scope| {
            let id = (scope.namespace.to_string(), path, key);
            Ok(state.entries.remove(&id).is_some())
        })
    }

    /// Prefix match on the path; the query matches values whose text contains it, scored by how
    /// often; the filter is top-level equality.
    fn search(
        &self,
        scope: MemoryScope,
        search: MemorySearch,
    ) -> MemoryFuture<'_, Vec<MemorySearchHit>> {
        self.with(scope, |state, scope| {
            let filter = match &search.filter_json {
                Some(f) => Some(object(f, "a filter")?),
                None => None,
            };
            let mut hits = Vec::new();
            for ((ns, path, _), entry) in &state.entries {
                if ns.as_str() != &*scope.namespace || !path.starts_with(&search.path_prefix) {
                    continue;
                }
                let value = object(&entry.value_json, "a value")?;
                if let Some(filter) = &filter
                    && filter.iter().any(|(k, v)| value.get(k) != Some(v))
                {
                    continue;
                }
                let score = match &search.query {
                    Some(q) => match entry.value_json.matches(q.as_str()).count() {
                        0 => continue,
                        n => Some(n as f64),
                    },
                    None => None,
                };
                hits.push(MemorySearchHit {
                    entry: entry.clone(),
                    score,
                });
            }
            hits.sort_by(|a, b| {
                b.score
                    .partial_cmp(&a.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            hits.truncate(search.limit as usize);
            Ok(hits)
        })
    }

    fn list_items(
        &self,
        scope: MemoryScope,
        conversation: String,
        limit: u32,
    ) -> MemoryFuture<'_, Vec<MemoryItem>> {
        self.with(scope, |state, scope| {
            let items = state
                .conversations
                .get(&(scope.namespace.to_string(), conversation))
                .ok_or(MemoryError::NotFound)?;
            let skip = items.len().saturating_sub(limit as usize);
            Ok(items[skip..].to_vec())
        })
    }

    fn append_items(
        &self,
        scope: MemoryScope,
        conversation: String,
        items_json: Vec<String>,
    ) -> MemoryFuture<'_, Vec<String>> {
        self.with(scope, |state, scope| {
            let key = (scope.namespace.to_string(), conversation);
            if !state.conversations.contains_key(&key) {
                return Err(MemoryError::NotFound);
            }
            let agent = scope.agent();
            let mut items = Vec::new();
            for (i, json) in items_json.iter().enumerate() {
                let mut item = object(json, &format!("item {i}"))?;
                state.next_item += 1;
                let id = format!("msg_{}", state.next_item);
                item.insert("id".into(), Value::String(id.clone()));
                items.push(MemoryItem {
                    id,
                    item_json: Value::Object(item).to_string(),
                    agent: Some(agent.clone()),
                });
            }
            let bytes = items.iter().map(|i| i.item_json.len() as u64).sum();
            let held = state.held(&scope.namespace, &agent, None);
            state.check_quota(scope, held, (items.len() as u64, bytes))?;
            let ids = items.iter().map(|i| i.id.clone()).collect();
            state.conversations.entry(key).or_default().extend(items);
            Ok(ids)
        })
    }
}
