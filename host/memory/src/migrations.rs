//! The store's schema, as numbered migrations applied in order when the store opens. The version
//! reached is kept in `aigw_schema`; a database whose version is newer than this binary knows is
//! refused, because an older aigw writing into a newer schema could corrupt what the newer one
//! expects. A migration is never edited once released: a change is a new migration.

use libsql::Connection;

use crate::StoreError;

/// Migrations in order; the schema version is how many have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: the store's own bookkeeping.
    "CREATE TABLE IF NOT EXISTS aigw_meta (
         key   TEXT PRIMARY KEY NOT NULL,
         value TEXT NOT NULL
     ) STRICT;
     INSERT OR IGNORE INTO aigw_meta (key, value) VALUES ('created_by', 'aigw');",
    // 2: conversations and their items (the OpenAI Conversations API's model). An item's `seq`
    // is the one total order of every item (AUTOINCREMENT: never reused, even after a delete,
    // so a cursor never comes to name another item). `text` is what full-text search sees of
    // an item; the FTS table reads it from `conversation_items` (external content) and the
    // triggers keep the index in step with the rows.
    "CREATE TABLE conversations (
         seq        INTEGER PRIMARY KEY,
         id         TEXT NOT NULL UNIQUE,
         namespace  TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         metadata   TEXT NOT NULL,
         agent      TEXT
     ) STRICT;
     CREATE TABLE conversation_items (
         seq          INTEGER PRIMARY KEY AUTOINCREMENT,
         id           TEXT NOT NULL UNIQUE,
         conversation INTEGER NOT NULL REFERENCES conversations (seq) ON DELETE CASCADE,
         namespace    TEXT NOT NULL,
         item         TEXT NOT NULL,
         text         TEXT NOT NULL,
         agent        TEXT,
         created_at   INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX conversation_items_by_conversation ON conversation_items (conversation, seq);
     CREATE VIRTUAL TABLE conversation_items_fts USING fts5 (
         text, content = 'conversation_items', content_rowid = 'seq'
     );
     CREATE TRIGGER conversation_items_fts_insert AFTER INSERT ON conversation_items BEGIN
         INSERT INTO conversation_items_fts (rowid, text) VALUES (new.seq, new.text);
     END;
     CREATE TRIGGER conversation_items_fts_delete AFTER DELETE ON conversation_items BEGIN
         INSERT INTO conversation_items_fts (conversation_items_fts, rowid, text)
             VALUES ('delete', old.seq, old.text);
     END;
     CREATE TRIGGER conversation_items_fts_update AFTER UPDATE ON conversation_items BEGIN
         INSERT INTO conversation_items_fts (conversation_items_fts, rowid, text)
             VALUES ('delete', old.seq, old.text);
         INSERT INTO conversation_items_fts (rowid, text) VALUES (new.seq, new.text);
     END;",
    // 3: key-value entries (LangGraph's Store). `path` is the entry's labels joined by `.`
    // (labels hold no `.`), so a path prefix is a range of the unique index. Times are
    // milliseconds since the Unix epoch; `expires_at` is NULL for an entry that never expires.
    // The full-text index is contentless (the indexed text is derived from the value, not a
    // column), its rowid the entry's id; `contentless_delete` lets a put or a sweep drop it.
    "CREATE TABLE entries (
         id         INTEGER PRIMARY KEY,
         namespace  TEXT NOT NULL,
         path       TEXT NOT NULL,
         key        TEXT NOT NULL,
         value      TEXT NOT NULL,
         version    INTEGER NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL,
         expires_at INTEGER,
         ttl_ms     INTEGER,
         agent      TEXT,
         UNIQUE (namespace, path, key)
     ) STRICT;
     CREATE INDEX entries_recent ON entries (namespace, updated_at);
     CREATE INDEX entries_agent ON entries (namespace, agent);
     CREATE INDEX entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
     CREATE VIRTUAL TABLE entries_fts USING fts5(
         text, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
     );",
    // 4: what each plugin writer holds per namespace (records and bytes of JSON), the count a
    // writer's quota is checked against on every write it makes. Triggers keep it in step with
    // every change to entries and items, whoever makes it (a put, a delete, the sweeper, a
    // cascade from a deleted conversation), so the check reads one row instead of every row
    // the writer holds (a plugin at 10,000 entries: ~0.1 ms instead of 5-8 ms on the writer).
    // Only agents named `plugin:<name>` are counted: quotas are for plugins, and other writes
    // pay nothing for them.
    "CREATE TABLE writer_usage (
         namespace TEXT NOT NULL,
         agent     TEXT NOT NULL,
         records   INTEGER NOT NULL,
         bytes     INTEGER NOT NULL,
         PRIMARY KEY (namespace, agent)
     ) STRICT, WITHOUT ROWID;
     INSERT INTO writer_usage (namespace, agent, records, bytes)
         SELECT namespace, agent, COUNT(*), SUM(size) FROM (
             SELECT namespace, agent, length(CAST(value AS BLOB)) AS size FROM entries
                 WHERE agent GLOB 'plugin:*'
             UNION ALL
             SELECT namespace, agent, length(CAST(item AS BLOB)) FROM conversation_items
                 WHERE agent GLOB 'plugin:*'
         ) GROUP BY namespace, agent;
     CREATE TRIGGER entries_usage_insert AFTER INSERT ON entries
         WHEN new.agent GLOB 'plugin:*' BEGIN
         INSERT INTO writer_usage (namespace, agent, records, bytes)
             VALUES (new.namespace, new.agent, 1, length(CAST(new.value AS BLOB)))
             ON CONFLICT (namespace, agent) DO UPDATE
             SET records = records + 1, bytes = bytes + excluded.bytes;
     END;
     CREATE TRIGGER entries_usage_delete AFTER DELETE ON entries
         WHEN old.agent GLOB 'plugin:*' BEGIN
         UPDATE writer_usage
             SET records = records - 1, bytes = bytes - length(CAST(old.value AS BLOB))
             WHERE namespace = old.namespace AND agent = old.agent;
     END;
     CREATE TRIGGER entries_usage_update_old AFTER UPDATE OF value, agent ON entries
         WHEN old.agent GLOB 'plugin:*' BEGIN
         UPDATE writer_usage
             SET records = records - 1, bytes = bytes - length(CAST(old.value AS BLOB))
             WHERE namespace = old.namespace AND agent = old.agent;
     END;
     CREATE TRIGGER entries_usage_update_new AFTER UPDATE OF value, agent ON entries
         WHEN new.agent GLOB 'plugin:*' BEGIN
         INSERT INTO writer_usage (namespace, agent, records, bytes)
             VALUES (new.namespace, new.agent, 1, length(CAST(new.value AS BLOB)))
             ON CONFLICT (namespace, agent) DO UPDATE
             SET records = records + 1, bytes = bytes + excluded.bytes;
     END;
     CREATE TRIGGER conversation_items_usage_insert AFTER INSERT ON conversation_items
         WHEN new.agent GLOB 'plugin:*' BEGIN
         INSERT INTO writer_usage (namespace, agent, records, bytes)
             VALUES (new.namespace, new.agent, 1, length(CAST(new.item AS BLOB)))
             ON CONFLICT (namespace, agent) DO UPDATE
             SET records = records + 1, bytes = bytes + excluded.bytes;
     END;
     CREATE TRIGGER conversation_items_usage_delete AFTER DELETE ON conversation_items
         WHEN old.agent GLOB 'plugin:*' BEGIN
         UPDATE writer_usage
             SET records = records - 1, bytes = bytes - length(CAST(old.item AS BLOB))
             WHERE namespace = old.namespace AND agent = old.agent;
     END;
     CREATE TRIGGER conversation_items_usage_update_old AFTER UPDATE OF item, agent
         ON conversation_items WHEN old.agent GLOB 'plugin:*' BEGIN
         UPDATE writer_usage
             SET records = records - 1, bytes = bytes - length(CAST(old.item AS BLOB))
             WHERE namespace = old.namespace AND agent = old.agent;
     END;
     CREATE TRIGGER conversation_items_usage_update_new AFTER UPDATE OF item, agent
         ON conversation_items WHEN new.agent GLOB 'plugin:*' BEGIN
         INSERT INTO writer_usage (namespace, agent, records, bytes)
             VALUES (new.namespace, new.agent, 1, length(CAST(new.item AS BLOB)))
             ON CONFLICT (namespace, agent) DO UPDATE
             SET records = records + 1, bytes = bytes + excluded.bytes;
     END;",
    // 5: virtual keys (aigw-access). Only the SHA-256 of a secret is stored; `hint` is what
    // admin output shows of it. `spec` is the key's grants and limits as JSON (`KeySpec`).
    // `key_changes.serial` grows with every change to a key or team, so each process's
    // in-memory directory knows when to reload without reading every key. A rotation with a
    // grace period keeps the old secret's hash in `previous_hash` until `previous_until`.
    "CREATE TABLE keys (
         id             TEXT PRIMARY KEY NOT NULL,
         hash           BLOB NOT NULL UNIQUE,
         hint           TEXT NOT NULL,
         spec           TEXT NOT NULL,
         created_at     INTEGER NOT NULL,
         updated_at     INTEGER NOT NULL,
         revoked_at     INTEGER,
         previous_hash  BLOB,
         previous_until INTEGER
     ) STRICT;
     CREATE TABLE teams (
         id         TEXT PRIMARY KEY NOT NULL,
         spec       TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE key_changes (
         id     INTEGER PRIMARY KEY CHECK (id = 1),
         serial INTEGER NOT NULL
     ) STRICT;
     INSERT INTO key_changes (id, serial) VALUES (1, 0);",
    // 6: quota allowances shared by every process on the database (aigw-access's limiter).
    // `allowance` counts what was handed out per subject (`key:<id>`, `team:<id>`), metric and
    // window; a process leases a slice and spends it locally. `holds` are leases of a level
    // (concurrent requests) that expire unless renewed, so a dead process's slots come back.
    "CREATE TABLE allowance (
         subject      TEXT NOT NULL,
         metric       TEXT NOT NULL,
         window_start INTEGER NOT NULL,
         used         INTEGER NOT NULL,
         PRIMARY KEY (subject, metric, window_start)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE holds (
         subject    TEXT NOT NULL,
         metric     TEXT NOT NULL,
         holder     TEXT NOT NULL,
         amount     INTEGER NOT NULL,
         expires_at INTEGER NOT NULL,
         PRIMARY KEY (subject, metric, holder)
     ) STRICT, WITHOUT ROWID;",
    // 7: usage and spend per key, served target and UTC day (`GET /admin/usage`). Spend is
    // in micro-USD so sums stay exact.
    "CREATE TABLE usage (
         day             TEXT NOT NULL,
         key_id          TEXT NOT NULL,
         model           TEXT NOT NULL,
         requests        INTEGER NOT NULL,
         input_tokens    INTEGER NOT NULL,
         output_tokens   INTEGER NOT NULL,
         spend_micro_usd INTEGER NOT NULL,
         PRIMARY KEY (day, key_id, model)
     ) STRICT, WITHOUT ROWID;",
    // 8: the shared cache (tool results; later other answers) and MCP sessions, so every
    // process on the database answers from the same cache and serves any session. A cache
    // row is `scope` (what cached it, e.g. `tool:weather_current`) and `key` (a digest of
    // what was asked); rows past `expires_at` are never served and are swept. An MCP session
    // belongs to the key that opened it (`key_id`, `-` without authentication); it ends when
    // deleted or when idle past `expires_at` (renewed as it is used).
    "CREATE TABLE cache (
         scope      TEXT NOT NULL,
         key        TEXT NOT NULL,
         value      BLOB NOT NULL,
         created_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL,
         PRIMARY KEY (scope, key)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX cache_expiry ON cache (expires_at);
     CREATE TABLE mcp_sessions (
         id               TEXT PRIMARY KEY NOT NULL,
         key_id           TEXT NOT NULL,
         protocol_version TEXT NOT NULL,
         client           TEXT NOT NULL,
         created_at       INTEGER NOT NULL,
         expires_at       INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX mcp_sessions_expiry ON mcp_sessions (expires_at);",
    // 9: a namespace's conversations in creation order, for the operator's listing by
    // namespace (the dashboard) and the list of namespaces holding any.
    "CREATE INDEX conversations_by_namespace ON conversations (namespace, seq);",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`], one transaction per migration; returns the version
/// it found.
pub(crate) async fn apply(connection: &Connection) -> Result<i64, StoreError> {
    connection
        .execute(
            "CREATE TABLE IF NOT EXISTS aigw_schema (version INTEGER NOT NULL) STRICT",
            (),
        )
        .await?;
    let found = current(connection).await?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        let tx = connection
            .transaction_with_behavior(libsql::TransactionBehavior::Immediate)
            .await?;
        tx.execute_batch(sql)
            .await
            .map_err(|e| StoreError::Migration {
                version,
                message: e.to_string(),
            })?;
        tx.execute("DELETE FROM aigw_schema", ()).await?;
        tx.execute("INSERT INTO aigw_schema (version) VALUES (?1)", [version])
            .await?;
        tx.commit().await?;
        tracing::info!(version, "memory store: schema migrated");
    }
    Ok(found)
}

/// The schema version recorded in the database (0 for a new one).
pub(crate) async fn current(connection: &Connection) -> Result<i64, StoreError> {
    let mut rows = connection
        .query("SELECT max(version) FROM aigw_schema", ())
        .await?;
    let version = match rows.next().await? {
        Some(row) => row.get::<Option<i64>>(0)?.unwrap_or(0),
        None => 0,
    };
    Ok(version)
}
