//! Key-value entries, shaped like LangGraph's Store. An entry lives in a tenant [`Namespace`],
//! at a path (LangGraph's "namespace" tuple: `["users", "42", "prefs"]`) under a key, and holds
//! a JSON object. Each put bumps its version (1 for a new entry), so writers can
//! compare-and-set (`if_version`); each records the agent that wrote it; an entry may have a
//! time to live, after which no read returns it and the sweeper ([`spawn_sweeper`]) deletes it.
//! Search takes a path prefix, a field filter ([`parse_filter`]) and a natural-language query
//! ranked by FTS5's bm25 over the value's strings ([`Index`]); listing namespaces takes a
//! prefix, a suffix (`*` matching any label) and a depth to truncate to.
//!
//! Every operation is confined to the caller's namespace: the namespace is part of every
//! statement's `WHERE`, so another tenant's entry is simply not there. "Now" is the store's
//! clock ([`Store::now_ms`]), so tests move time instead of waiting.

mod filter;
mod sweep;
mod text;

use std::collections::BTreeSet;
use std::time::Duration;

use libsql::{Connection, Row, Value as Sql};
use serde_json::{Map, Value};

pub use filter::{Condition, MAX_FILTER_FIELD_BYTES, MAX_FILTER_FIELDS, Op, parse_filter};
pub use sweep::{SWEEP_BATCH, Sweeper, spawn_sweeper, sweep_expired};
pub use text::{
    FieldPath, Index, MAX_INDEX_FIELD_BYTES, MAX_INDEX_FIELDS, MAX_QUERY_BYTES, MAX_QUERY_TERMS,
};

use crate::quota::{self, Quota, QuotaExceeded, Usage};
use crate::{Namespace, Store, StoreError};
use filter::Statement;

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest path label, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;
/// The most labels of a path.
pub const MAX_DEPTH: usize = 16;
/// The largest value, as JSON, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// The most entries one search returns.
pub const MAX_SEARCH_LIMIT: usize = 1000;
/// The most namespaces one listing returns.
pub const MAX_LIST_LIMIT: usize = 1000;
/// The largest offset of a search or a listing (deeper pages cost a scan of what they skip).
pub const MAX_OFFSET: usize = 1_000_000;
/// The longest time to live (ten years).
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Why an entry operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EntryError {
    /// A field of the request is not acceptable; `param` names it (`namespace[1]`, `filter.x`).
    #[error("{param}: {message}")]
    Invalid { param: String, message: String },
    /// A field is over its size limit.
    #[error("{param}: {message}")]
    TooLarge { param: String, message: String },
    /// `if_version` did not hold: the entry is at `current` (0: it does not exist).
    #[error("the entry's version is {current}, not {expected} (if_version)")]
    Conflict { expected: u64, current: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EntryError {
    pub(crate) fn invalid(param: &str, message: &str) -> EntryError {
        EntryError::Invalid {
            param: param.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl From<libsql::Error> for EntryError {
    fn from(error: libsql::Error) -> EntryError {
        EntryError::Store(error.into())
    }
}

/// An entry's path: its labels, each non-empty, at most [`MAX_LABEL_BYTES`], without `.`
/// (LangGraph's rule, which also lets the store keep a path as its labels joined by `.`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EntryPath(Vec<String>);

impl EntryPath {
    /// The path of an entry: 1 to [`MAX_DEPTH`] labels. `param` names the field in errors
    /// (label `i` is `{param}[i]`).
    pub fn parse(labels: Vec<String>, param: &str) -> Result<EntryPath, EntryError> {
        if labels.is_empty() {
            return Err(EntryError::invalid(
                param,
                "a namespace needs at least one label",
            ));
        }
        EntryPath::prefix(labels, param)
    }

    /// A path prefix: like [`EntryPath::parse`], but may be empty (every path).
    pub fn prefix(labels: Vec<String>, param: &str) -> Result<EntryPath, EntryError> {
        if labels.len() > MAX_DEPTH {
            return Err(EntryError::invalid(
                param,
                &format!("a namespace has at most {MAX_DEPTH} labels"),
            ));
        }
        for (i, label) in labels.iter().enumerate() {
            if label.is_empty() || label.len() > MAX_LABEL_BYTES || label.contains('.') {
                return Err(EntryError::invalid(
                    &format!("{param}[{i}]"),
                    &format!(
                        "a namespace label is 1 to {MAX_LABEL_BYTES} bytes and holds no `.` \
                         (got {:?})",
                        label.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        Ok(EntryPath(labels))
    }

    pub fn labels(&self) -> &[String] {
        &self.0
    }

    fn stored(&self) -> String {
        self.0.join(".")
    }

    fn from_stored(text: &str) -> EntryPath {
        EntryPath(text.split('.').map(str::to_owned).collect())
    }
}

/// Checks an entry key: 1 to [`MAX_KEY_BYTES`] bytes.
pub fn check_key(key: &str, param: &str) -> Result<(), EntryError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(EntryError::invalid(
            param,
            &format!("a key is 1 to {MAX_KEY_BYTES} bytes long"),
        ));
    }
    Ok(())
}

/// A stored entry as its reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: EntryPath,
    pub key: String,
    pub value: Map<String, Value>,
    /// 1 when created, one more at each put.
    pub version: u64,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When it stops being returned (`None`: never).
    pub expires_at_ms: Option<i64>,
    pub ttl: Option<Duration>,
    /// Who wrote it last (`x-aigw-agent`, `plugin:<name>`), if it was named.
    pub agent: Option<String>,
}

/// A put: the entry's whole new state.
#[derive(Debug, Clone, PartialEq)]
pub struct Put {
    pub path: EntryPath,
    pub key: String,
    pub value: Map<String, Value>,
    pub index: Index,
    /// Expire this long after the put (and after each refreshing read).
    pub ttl: Option<Duration>,
    /// Compare-and-set: `Some(0)`, the entry must not exist; `Some(n)`, it must be at version n.
    pub if_version: Option<u64>,
    pub agent: Option<String>,
}

/// A search of the entries under a path prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub prefix: EntryPath,
    pub filter: Vec<Condition>,
    /// Natural-language query; hits are ranked by bm25 and scored.
    pub query: Option<String>,
    pub limit: usize,
    pub offset: usize,
    /// Restart the time to live of the entries returned.
    pub refresh_ttl: bool,
}

/// A search result: the entry and, for a ranked search, its score (higher is better).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub entry: Entry,
    pub score: Option<f64>,
}

/// A listing of the paths in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListNamespaces {
    /// Paths starting with these labels (`*` matches any one label).
    pub prefix: EntryPath,
    /// Paths ending with these labels (`*` matches any one label).
    pub suffix: EntryPath,
    /// Paths longer than this are cut to it (and duplicates dropped).
    pub max_depth: Option<usize>,
    pub limit: usize,
    pub offset: usize,
}

const COLUMNS: &str = "e.id, e.path, e.key, e.value, e.version, e.created_at, e.updated_at, \
                       e.expires_at, e.ttl_ms, e.agent";

/// The `WHERE` term keeping expired entries out: `now` is bound at `now`.
fn live(now: &str) -> String {
    format!("(e.expires_at IS NULL OR e.expires_at > {now})")
}

fn decode(row: &Row) -> Result<(i64, Entry), StoreError> {
    let value: String = row.get(3)?;
    let value = match serde_json::from_str::<Value>(&value) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(StoreError::Sql(
                "an entry's stored value is not a JSON object".into(),
            ));
        }
    };
    let ttl: Option<i64> = row.get(8)?;
    Ok((
        row.get(0)?,
        Entry {
            path: EntryPath::from_stored(&row.get::<String>(1)?),
            key: row.get(2)?,
            value,
            version: u64::try_from(row.get::<i64>(4)?).unwrap_or(0),
            created_at_ms: row.get(5)?,
            updated_at_ms: row.get(6)?,
            expires_at_ms: row.get(7)?,
            ttl: ttl.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            agent: row.get(9)?,
        },
    ))
}

fn check_ttl(ttl: Duration, param: &str) -> Result<i64, EntryError> {
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(EntryError::invalid(
            param,
            &format!(
                "a time to live is more than 0 and at most {} minutes",
                MAX_TTL.as_secs() / 60
            ),
        ));
    }
    Ok(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1))
}

fn check_page(limit: usize, max: usize, offset: usize) -> Result<(), EntryError> {
    if limit == 0 || limit > max {
        return Err(EntryError::invalid(
            "limit",
            &format!("limit is 1 to {max}"),
        ));
    }
    if offset > MAX_OFFSET {
        return Err(EntryError::invalid(
            "offset",
            &format!("offset is at most {MAX_OFFSET}"),
        ));
    }
    Ok(())
}

/// Writes an entry (creating it, or replacing its value, time to live and index) and returns
/// it as stored. An expired entry counts as absent: its key starts over at version 1.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory entries.put", otel.kind = "internal", aigw.memory.operation = "entries.put"))]
pub async fn put(store: &Store, namespace: &Namespace, put: Put) -> Result<Entry, EntryError> {
    match write(store, namespace, put, None).await? {
        Ok(entry) => Ok(entry),
        // Without a quota nothing can exceed one; say so rather than panic if it ever did.
        Err(exceeded) => Err(EntryError::Store(StoreError::Sql(format!(
            "a put without a quota was refused by one: {exceeded:?}"
        )))),
    }
}

/// [`put`] for a writer with a [`Quota`] (a tool plugin): the entry is written only if the
/// quota's agent, holding it too, stays within the quota; replacing an entry the agent holds
/// gives its room back first. The count and the write are one write on the writer. The entry
/// is recorded as written by the quota's agent.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory entries.put_within_quota", otel.kind = "internal", aigw.memory.operation = "entries.put_within_quota"))]
pub async fn put_within_quota(
    store: &Store,
    namespace: &Namespace,
    put: Put,
    quota: &Quota,
) -> Result<Result<Entry, QuotaExceeded>, EntryError> {
    write(store, namespace, put, Some(quota)).await
}

/// The one put: the checks, then (on the writer) the quota if there is one, then the write.
async fn write(
    store: &Store,
    namespace: &Namespace,
    put: Put,
    quota: Option<&Quota>,
) -> Result<Result<Entry, QuotaExceeded>, EntryError> {
    check_key(&put.key, "key")?;
    if put.path.0.is_empty() {
        return Err(EntryError::invalid(
            "namespace",
            "a namespace needs at least one label",
        ));
    }
    let ttl_ms = put.ttl.map(|ttl| check_ttl(ttl, "ttl")).transpose()?;
    let value_text = Value::Object(put.value.clone()).to_string();
    if value_text.len() > MAX_VALUE_BYTES {
        return Err(EntryError::TooLarge {
            param: "value".into(),
            message: format!(
                "the value is {} bytes as JSON, more than the limit of {MAX_VALUE_BYTES}",
                value_text.len()
            ),
        });
    }
    let text = text::indexed_text(&put.value, &put.index);
    let now = store.now_ms();
    let namespace = namespace.as_str().to_owned();
    let Put {
        path,
        key,
        value,
        ttl,
        if_version,
        agent,
        ..
    } = put;
    let agent = match quota {
        Some(quota) => Some(quota.agent.clone()),
        None => agent,
    };
    let (stored_path, written_key, written_agent) = (path.stored(), key.clone(), agent.clone());
    let quota = quota.cloned();
    let outcome = store
        .write(move |c| {
            Box::pin(async move {
                if let Some(quota) = &quota {
                    let replaced =
                        held_entry(c, &namespace, &stored_path, &written_key, &quota.agent, now)
                            .await?;
                    let added = Usage {
                        records: 1,
                        bytes: value_text.len() as u64,
                    };
                    if let Err(exceeded) =
                        quota::check(c, &namespace, quota, replaced, added, now).await?
                    {
                        return Ok(Err(exceeded));
                    }
                }
                let written = write_entry(
                    c,
                    &namespace,
                    &stored_path,
                    &written_key,
                    &value_text,
                    &text,
                    ttl_ms,
                    if_version,
                    written_agent,
                    now,
                )
                .await?;
                Ok(Ok(written))
            })
        })
        .await?;
    let (version, created_at_ms) = match outcome {
        Err(exceeded) => return Ok(Err(exceeded)),
        Ok(written) => written?,
    };
    Ok(Ok(Entry {
        path,
        key,
        value,
        version,
        created_at_ms,
        updated_at_ms: now,
        expires_at_ms: ttl_ms.map(|t| now.saturating_add(t)),
        ttl,
        agent,
    }))
}

/// What the live entry at `path`/`key` takes of `agent`'s quota: nothing unless the agent
/// wrote it last.
async fn held_entry(
    c: &Connection,
    namespace: &str,
    path: &str,
    key: &str,
    agent: &str,
    now: i64,
) -> Result<Usage, StoreError> {
    let mut rows = c
        .query(
            "SELECT length(CAST(value AS BLOB)) FROM entries
             WHERE namespace = ?1 AND path = ?2 AND key = ?3 AND agent = ?4
               AND (expires_at IS NULL OR expires_at > ?5)",
            (namespace, path, key, agent, now),
        )
        .await?;
    Ok(match rows.next().await? {
        Some(row) => Usage {
            records: 1,
            bytes: u64::try_from(row.get::<i64>(0)?).unwrap_or(0),
        },
        None => Usage::default(),
    })
}

/// The put's statements, on the writer: the version and creation time written, or the
/// conflict (nothing written).
#[allow(clippy::too_many_arguments)]
async fn write_entry(
    c: &Connection,
    namespace: &str,
    path: &str,
    key: &str,
    value: &str,
    text: &str,
    ttl_ms: Option<i64>,
    if_version: Option<u64>,
    agent: Option<String>,
    now: i64,
) -> Result<Result<(u64, i64), EntryError>, StoreError> {
    let mut rows = c
        .query(
            "SELECT id, version, created_at, expires_at FROM entries
             WHERE namespace = ?1 AND path = ?2 AND key = ?3",
            (namespace, path, key),
        )
        .await?;
    let existing = match rows.next().await? {
        Some(row) => Some((
            row.get::<i64>(0)?,
            row.get::<i64>(1)?,
            row.get::<i64>(2)?,
            row.get::<Option<i64>>(3)?,
        )),
        None => None,
    };
    drop(rows);
    let alive = existing.filter(|(_, _, _, expires)| expires.is_none_or(|at| at > now));
    let current = alive.map_or(0, |(_, version, _, _)| u64::try_from(version).unwrap_or(0));
    if let Some(expected) = if_version
        && expected != current
    {
        return Ok(Err(EntryError::Conflict { expected, current }));
    }
    let expires_at = ttl_ms.map(|t| now.saturating_add(t));
    let (version, created_at) = match alive {
        Some((_, _, created_at, _)) => (current + 1, created_at),
        None => (1, now),
    };
    let id = match existing {
        Some((id, ..)) => {
            c.execute("DELETE FROM entries_fts WHERE rowid = ?1", [id])
                .await?;
            c.execute(
                "UPDATE entries SET value = ?1, version = ?2, created_at = ?3, updated_at = ?4,
                     expires_at = ?5, ttl_ms = ?6, agent = ?7
                 WHERE id = ?8",
                vec![
                    Sql::from(value.to_owned()),
                    Sql::from(i64::try_from(version).unwrap_or(i64::MAX)),
                    Sql::from(created_at),
                    Sql::from(now),
                    opt_int(expires_at),
                    opt_int(ttl_ms),
                    opt_text(agent),
                    Sql::from(id),
                ],
            )
            .await?;
            id
        }
        None => {
            let mut rows = c
                .query(
                    "INSERT INTO entries (namespace, path, key, value, version, created_at,
                         updated_at, expires_at, ttl_ms, agent)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?6, ?7, ?8) RETURNING id",
                    vec![
                        Sql::from(namespace.to_owned()),
                        Sql::from(path.to_owned()),
                        Sql::from(key.to_owned()),
                        Sql::from(value.to_owned()),
                        Sql::from(now),
                        opt_int(expires_at),
                        opt_int(ttl_ms),
                        opt_text(agent),
                    ],
                )
                .await?;
            let id = match rows.next().await? {
                Some(row) => row.get::<i64>(0)?,
                None => return Err(StoreError::Sql("INSERT … RETURNING gave no id".into())),
            };
            drop(rows);
            id
        }
    };
    if !text.is_empty() {
        c.execute(
            "INSERT INTO entries_fts (rowid, text) VALUES (?1, ?2)",
            (id, text),
        )
        .await?;
    }
    Ok(Ok((version, created_at)))
}

fn opt_int(v: Option<i64>) -> Sql {
    v.map_or(Sql::Null, Sql::Integer)
}

fn opt_text(v: Option<String>) -> Sql {
    v.map_or(Sql::Null, Sql::Text)
}

/// The live entry at `path`/`key`, if any. With `refresh_ttl`, an entry with a time to live
/// starts it over.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory entries.get", otel.kind = "internal", aigw.memory.operation = "entries.get"))]
pub async fn get(
    store: &Store,
    namespace: &Namespace,
    path: &EntryPath,
    key: &str,
    refresh_ttl: bool,
) -> Result<Option<Entry>, EntryError> {
    check_key(key, "key")?;
    let now = store.now_ms();
    let (namespace, stored, key) = (namespace.as_str().to_owned(), path.stored(), key.to_owned());
    let found = store
        .read(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {COLUMNS} FROM entries e
                     WHERE e.namespace = ?1 AND e.path = ?2 AND e.key = ?3 AND {}",
                    live("?4")
                );
                let mut rows = c.query(&sql, (namespace, stored, key, now)).await?;
                match rows.next().await? {
                    Some(row) => Ok(Some(decode(&row)?)),
                    None => Ok(None),
                }
            })
        })
        .await?;
    let Some((id, mut entry)) = found else {
        return Ok(None);
    };
    if refresh_ttl && entry.ttl.is_some() {
        refresh(store, vec![id], now).await?;
        entry.expires_at_ms = entry
            .ttl
            .map(|ttl| now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)));
    }
    Ok(Some(entry))
}

/// Starts the time to live of the live entries `ids` over from `now`.
async fn refresh(store: &Store, ids: Vec<i64>, now: i64) -> Result<(), StoreError> {
    store
        .write(move |c| {
            Box::pin(async move {
                for id in ids {
                    c.execute(
                        "UPDATE entries SET expires_at = ?2 + ttl_ms
                         WHERE id = ?1 AND ttl_ms IS NOT NULL AND expires_at > ?2",
                        (id, now),
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
}

/// Deletes the entry at `path`/`key`; whether a live one was there.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory entries.delete", otel.kind = "internal", aigw.memory.operation = "entries.delete"))]
pub async fn delete(
    store: &Store,
    namespace: &Namespace,
    path: &EntryPath,
    key: &str,
) -> Result<bool, EntryError> {
    check_key(key, "key")?;
    let now = store.now_ms();
    let (namespace, stored, key) = (namespace.as_str().to_owned(), path.stored(), key.to_owned());
    let deleted = store
        .write(move |c| {
            Box::pin(async move {
                let mut rows = c
                    .query(
                        "DELETE FROM entries WHERE namespace = ?1 AND path = ?2 AND key = ?3
                         RETURNING id, expires_at",
                        (namespace, stored, key),
                    )
                    .await?;
                let gone = match rows.next().await? {
                    Some(row) => Some((row.get::<i64>(0)?, row.get::<Option<i64>>(1)?)),
                    None => None,
                };
                drop(rows);
                let Some((id, expires_at)) = gone else {
                    return Ok(false);
                };
                c.execute("DELETE FROM entries_fts WHERE rowid = ?1", [id])
                    .await?;
                Ok(expires_at.is_none_or(|at| at > now))
            })
        })
        .await?;
    Ok(deleted)
}

/// The live entries under `search.prefix` that pass its filter: ranked by bm25 (best first,
/// each with its score) when it has a query, else the most recently updated first.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory entries.search", otel.kind = "internal", aigw.memory.operation = "entries.search"))]
pub async fn search(
    store: &Store,
    namespace: &Namespace,
    search: Search,
) -> Result<Vec<Hit>, EntryError> {
    let now = store.now_ms();
    let Statement { text, params } = search_statement(namespace, &search, now)?;
    let found = store
        .read(move |c| {
            Box::pin(async move {
                let mut rows = c.query(&text, params).await?;
                let mut hits = Vec::new();
                while let Some(row) = rows.next().await? {
                    let (id, entry) = decode(&row)?;
                    let score: Option<f64> = row.get(10)?;
                    hits.push((id, Hit { entry, score }));
                }
                Ok(hits)
            })
        })
        .await?;
    if search.refresh_ttl {
        let ids: Vec<i64> = found
            .iter()
            .filter(|(_, hit)| hit.entry.ttl.is_some())
            .map(|(id, _)| *id)
            .collect();
        if !ids.is_empty() {
            refresh(store, ids, now).await?;
        }
    }
    Ok(found.into_iter().map(|(_, hit)| hit).collect())
}

/// SQLite's plan for `search` (`EXPLAIN QUERY PLAN`, one line per step): for operators and
/// tests to check that a search uses the full-text and namespace indexes.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory entries.search_plan", otel.kind = "internal", aigw.memory.operation = "entries.search_plan"))]
pub async fn search_plan(
    store: &Store,
    namespace: &Namespace,
    search: &Search,
) -> Result<Vec<String>, EntryError> {
    let Statement { text, params } = search_statement(namespace, search, store.now_ms())?;
    let plan = store
        .read(move |c| {
            Box::pin(async move {
                let mut rows = c
                    .query(&format!("EXPLAIN QUERY PLAN {text}"), params)
                    .await?;
                let mut plan = Vec::new();
                while let Some(row) = rows.next().await? {
                    plan.push(row.get::<String>(3)?);
                }
                Ok(plan)
            })
        })
        .await?;
    Ok(plan)
}

fn search_statement(
    namespace: &Namespace,
    search: &Search,
    now: i64,
) -> Result<Statement, EntryError> {
    check_page(search.limit, MAX_SEARCH_LIMIT, search.offset)?;
    if search
        .query
        .as_ref()
        .is_some_and(|q| q.len() > MAX_QUERY_BYTES)
    {
        return Err(EntryError::invalid(
            "query",
            &format!("a query is at most {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let expression = search.query.as_deref().and_then(text::match_expression);
    let mut statement = Statement::default();
    let namespace_param = statement.bind(namespace.as_str().to_owned());
    let now_param = statement.bind(now);
    match &expression {
        Some(expression) => {
            let matching = statement.bind(expression.clone());
            statement.text = format!(
                "SELECT {COLUMNS}, -bm25(entries_fts) AS score
                 FROM entries_fts JOIN entries e ON e.id = entries_fts.rowid
                 WHERE entries_fts MATCH {matching} AND e.namespace = {namespace_param} AND {}",
                live(&now_param)
            );
        }
        None => {
            statement.text = format!(
                "SELECT {COLUMNS}, NULL AS score FROM entries e
                 WHERE e.namespace = {namespace_param} AND {}",
                live(&now_param)
            );
        }
    }
    prefix_range(&mut statement, &search.prefix.0);
    for condition in &search.filter {
        statement.condition("e.value", condition);
    }
    let limit = statement.bind(i64::try_from(search.limit).unwrap_or(i64::MAX));
    let offset = statement.bind(i64::try_from(search.offset).unwrap_or(i64::MAX));
    statement.text.push_str(if expression.is_some() {
        " ORDER BY score DESC, e.updated_at DESC, e.id DESC"
    } else {
        " ORDER BY e.updated_at DESC, e.id DESC"
    });
    statement
        .text
        .push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
    Ok(statement)
}

/// Appends the `WHERE` terms for paths starting with `labels` (a range of the unique index:
/// the path itself, or `labels.` up to but excluding `labels/`, `/` following `.`).
fn prefix_range(statement: &mut Statement, labels: &[String]) {
    if labels.is_empty() {
        return;
    }
    let exact = labels.join(".");
    let low = statement.bind(format!("{exact}."));
    let high = statement.bind(format!("{exact}/"));
    let exact = statement.bind(exact);
    statement.text.push_str(&format!(
        " AND (e.path = {exact} OR (e.path >= {low} AND e.path < {high}))"
    ));
}

/// The distinct paths of live entries matching `list`, sorted, cut to `max_depth`, paged.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory entries.list_namespaces", otel.kind = "internal", aigw.memory.operation = "entries.list_namespaces"))]
pub async fn list_namespaces(
    store: &Store,
    namespace: &Namespace,
    list: ListNamespaces,
) -> Result<Vec<Vec<String>>, EntryError> {
    check_page(list.limit, MAX_LIST_LIMIT, list.offset)?;
    if list.max_depth == Some(0) {
        return Err(EntryError::invalid("max_depth", "max_depth is at least 1"));
    }
    let now = store.now_ms();
    let mut statement = Statement::default();
    let namespace_param = statement.bind(namespace.as_str().to_owned());
    let now_param = statement.bind(now);
    statement.text = format!(
        "SELECT DISTINCT e.path FROM entries e WHERE e.namespace = {namespace_param} AND {}",
        live(&now_param)
    );
    // The labels before the first wildcard narrow the scan to a range.
    let literal: Vec<String> = list
        .prefix
        .0
        .iter()
        .take_while(|label| label.as_str() != "*")
        .cloned()
        .collect();
    prefix_range(&mut statement, &literal);
    let Statement { text, params } = statement;
    let paths = store
        .read(move |c| {
            Box::pin(async move {
                let mut rows = c.query(&text, params).await?;
                let mut paths = Vec::new();
                while let Some(row) = rows.next().await? {
                    paths.push(row.get::<String>(0)?);
                }
                Ok(paths)
            })
        })
        .await?;
    let matches = |labels: &[String], pattern: &[String]| {
        labels
            .iter()
            .zip(pattern)
            .all(|(label, want)| want == "*" || label == want)
    };
    let mut listed = BTreeSet::new();
    for path in paths {
        let mut labels = EntryPath::from_stored(&path).0;
        let (prefix, suffix) = (&list.prefix.0, &list.suffix.0);
        if labels.len() < prefix.len() || labels.len() < suffix.len() {
            continue;
        }
        if !matches(&labels, prefix) || !matches(&labels[labels.len() - suffix.len()..], suffix) {
            continue;
        }
        if let Some(depth) = list.max_depth {
            labels.truncate(depth);
        }
        listed.insert(labels);
    }
    Ok(listed
        .into_iter()
        .skip(list.offset)
        .take(list.limit)
        .collect())
}
