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
